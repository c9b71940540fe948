//! The matching engine alone: inputs per second on one thread, and the latency of
//! one `apply` (p50/p99/p99.9, printed after criterion's figures).
//!
//! `cargo bench -p aex --bench matching`
//!
//! The flow resembles the demo's customers: 100 symbols, random side, limit
//! prices within 10 ticks of a reference (so many orders trade), quantities
//! 1-100; 81% Day limits, 13% IOC limits, 6% market orders; each Day order
//! is cancelled once 10,000 newer ones are open (most have traded by then:
//! those cancels are rejected as unknown), which keeps the books bounded.
//! About 45% of the inputs are cancels. Generating the flow (a xorshift
//! and a few branches) is inside the measured time.

use aex::*;
use criterion::{criterion_group, Criterion, Throughput};
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Instant;

const SYMBOLS: u16 = 100;

/// Day orders a customer keeps open: the oldest beyond this is cancelled.
const OPEN: usize = 10_000;

struct Flow {
    x: u64,
    seq: Seq,
    client_id: ClientOrderId,
    open: VecDeque<ClientOrderId>,
}

impl Flow {
    fn new() -> Flow {
        Flow { x: 0x9e37_79b9_7f4a_7c15, seq: 0, client_id: 0, open: VecDeque::with_capacity(OPEN + 1) }
    }

    fn rand(&mut self) -> u64 {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        self.x
    }

    fn next(&mut self) -> SequencedInput {
        self.seq += 1;
        let input = match self.open.len() > OPEN {
            true => {
                let client_id = self.open.pop_front().unwrap_or_default();
                let (session, symbol) = owner(client_id);
                Input::Cancel { session, client_id, symbol }
            }
            false => {
                let r = self.rand();
                self.client_id += 1;
                let (session, symbol) = owner(self.client_id);
                let side = if (r >> 40) & 1 == 0 { Side::Buy } else { Side::Sell };
                let offset = ((r >> 41) % 21) as Price; // 0..=20 around 1000
                let (kind, price, tif) = match (r >> 16) % 100 {
                    0..=5 => (OrderType::Market, 0, TimeInForce::Ioc),
                    6..=18 => (OrderType::Limit, 990 + offset, TimeInForce::Ioc),
                    _ => {
                        self.open.push_back(self.client_id);
                        (OrderType::Limit, 990 + offset, TimeInForce::Day)
                    }
                };
                let qty = 1 + ((r >> 48) % 100) as Qty;
                Input::Enter(NewOrder { session, client_id: self.client_id, symbol, side, price, qty, kind, tif })
            }
        };
        SequencedInput { seq: self.seq, epoch: 1, time: self.seq * 1000, input }
    }
}

/// The session and symbol of a client order id (so cancels can name them).
fn owner(client_id: ClientOrderId) -> (SessionId, SymbolIndex) {
    let h = client_id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((h >> 20) as SessionId % 64, 1 + ((h >> 40) % u64::from(SYMBOLS)) as SymbolIndex)
}

fn engine() -> Engine {
    Engine::new(1..=SYMBOLS, EngineConfig::default())
}

/// Runs the flow until the books reach their steady size.
fn warm(e: &mut Engine, flow: &mut Flow, out: &mut Outputs) {
    for _ in 0..200_000 {
        e.apply_into(&flow.next(), out).unwrap();
    }
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));
    g.bench_function("apply", |b| {
        let (mut e, mut flow, mut out) = (engine(), Flow::new(), Outputs::default());
        warm(&mut e, &mut flow, &mut out);
        b.iter(|| {
            let input = flow.next();
            e.apply_into(&input, &mut out).unwrap();
            black_box(out.responses.len());
        })
    });
    g.finish();
}

/// Per-apply latency over 1,000,000 inputs after warming up.
fn latency() {
    let (mut e, mut flow, mut out) = (engine(), Flow::new(), Outputs::default());
    warm(&mut e, &mut flow, &mut out);
    let warm_resting = e.resting_orders();
    let n = 1_000_000;
    let mut ns = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let input = flow.next();
        let t = Instant::now();
        e.apply_into(&input, &mut out).unwrap();
        ns.push(t.elapsed().as_nanos() as u64);
    }
    let wall = started.elapsed();
    ns.sort_unstable();
    let p = |q: f64| ns[((n as f64 * q) as usize).min(n - 1)];
    println!(
        "engine latency: {} inputs, {:.0} inputs/s with timing, p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns; \
         {} orders resting (from {})",
        n,
        n as f64 / wall.as_secs_f64(),
        p(0.5),
        p(0.99),
        p(0.999),
        ns[n - 1],
        e.resting_orders(),
        warm_resting
    );
}

criterion_group!(benches, throughput);

fn main() {
    benches();
    latency();
    Criterion::default().configure_from_args().final_summary();
}
