//! A small in-test gateway, used by `aex_dr_bench` only (it measures
//! order-to-ack latency of every order itself; `aex_dr` runs the real
//! `aex gateway` and `aex customers`): gateway 1's
//! orders streams (`g001.SSS`, one per symbol) to the symbols' orders
//! groups at a fixed rate, resends of orders not acknowledged after 1 s
//! (same client id), reports from whichever engine sends them (gaps
//! re-requested from it, in stream order lower epochs than the latest
//! dropped), and an
//! acks file of first acknowledgements (`session client_id order_id seq
//! epoch`), as `ARCHITECTURE.md` has the real gateway do.

use aex::events::{Input, NewOrder, Response};
use aex::net::{self, DatagramKind};
use aex::stream::{Receiver, Start};
use aex::types::{OrderType, SessionId, Side, SymbolIndex, TimeInForce};
use aex::wire::input::encode_input;
use aex::wire::mold::{heartbeat, Packet, PacketBuilder, Session};
use aex::wire::report;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the gateway does.
pub struct Opts {
    /// Its overlay address.
    pub bind: Ipv4Addr,
    /// Each symbol with its orders group address (port 7701).
    pub symbols: Vec<(SymbolIndex, SocketAddr)>,
    /// Orders a second.
    pub rate: u32,
    /// How long new orders are sent.
    pub duration: Duration,
    /// How long after that to wait for the last acknowledgements.
    pub drain: Duration,
    /// The acks file.
    pub acks: PathBuf,
    /// Acknowledgements so far (read by the test while it runs).
    pub acked: Arc<AtomicU64>,
    /// Stop early.
    pub stop: Arc<AtomicBool>,
}

/// What it saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Distinct orders sent.
    pub sent: u64,
    /// Orders sent again after 1 s without an ack.
    pub resent: u64,
    /// Orders acknowledged (first acks).
    pub acked: u64,
    /// Orders never acknowledged.
    pub unacked: u64,
    /// Rejections.
    pub rejects: u64,
    /// First acks by epoch of the report.
    pub acks_by_epoch: BTreeMap<u32, u64>,
    /// Order-to-ack latencies (µs, from the first send).
    pub latencies_us: Vec<u64>,
    /// Report messages dropped for an epoch below the latest in stream order.
    pub stale_epoch: u64,
    /// Engines (addresses) reports came from.
    pub engines: Vec<SocketAddr>,
}

struct Pending {
    order: NewOrder,
    first: Instant,
    last: Instant,
}

fn nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// Runs the gateway (call inside the gateway host's namespace).
pub fn run(o: Opts) -> Seen {
    let uni = net::unicast_socket(o.bind, 0, false).unwrap();
    uni.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let sessions: Vec<Session> =
        o.symbols.iter().map(|(s, _)| Session::new(&format!("g001.{s:03}")).unwrap()).collect();
    let mut next_msg = vec![1u64; o.symbols.len()];
    let report_session = Session::new("r.eng1").unwrap();
    let mut rx = Receiver::new(Start::AtOne);
    let mut engine: Option<SocketAddr> = None;
    let mut epoch = 0u32;
    let mut pending: HashMap<(SessionId, u64), Pending> = HashMap::new();
    let mut seen = Seen::default();
    let mut acks = std::io::BufWriter::new(std::fs::File::create(&o.acks).unwrap());
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(o.rate.max(1)));
    let (mut next_order, mut next_hb, mut next_resend) = (start, start, start);
    let mut client_id = 0u64;
    let mut buf = vec![0u8; 65_536];
    // Orders due in one pass go out packed, one packet per symbol (several
    // if they do not fit), as a real gateway's streams do.
    let mut builders: Vec<Option<PacketBuilder>> = (0..o.symbols.len()).map(|_| None).collect();
    let flush = |i: usize, builders: &mut [Option<PacketBuilder>]| {
        if let Some(b) = builders[i].take() {
            let _ = uni.send_to(&b.finish(), o.symbols[i].1);
        }
    };
    let push = |i: usize, next_msg: &mut [u64], builders: &mut [Option<PacketBuilder>], input: &Input| {
        let mut m = Vec::new();
        encode_input(input, &mut m);
        let fits = builders[i].as_mut().is_some_and(|b| b.push(&m));
        if !fits {
            flush(i, builders);
            let mut b = PacketBuilder::new(sessions[i], next_msg[i], 1300);
            assert!(b.push(&m));
            builders[i] = Some(b);
        }
        next_msg[i] += 1;
    };
    let index_of = |symbol: SymbolIndex| o.symbols.iter().position(|(s, _)| *s == symbol).unwrap();
    loop {
        let now = Instant::now();
        let sending = now < start + o.duration && !o.stop.load(Ordering::Relaxed);
        if !sending && (pending.is_empty() || now >= start + o.duration + o.drain || o.stop.load(Ordering::Relaxed)) {
            break;
        }
        while sending && next_order <= now {
            client_id += 1;
            let i = (client_id as usize / 2) % o.symbols.len();
            let side = if client_id.is_multiple_of(2) { Side::Buy } else { Side::Sell };
            let order = NewOrder {
                session: 1 << 24 | 1 << 12 | (1 + (client_id % 8) as u32),
                client_id,
                symbol: o.symbols[i].0,
                side,
                price: if side == Side::Buy { 100 + (client_id % 3) as u32 } else { 99 + (client_id % 3) as u32 },
                qty: 1 + (client_id % 5) as u32,
                kind: OrderType::Limit,
                tif: TimeInForce::Day,
            };
            push(i, &mut next_msg, &mut builders, &Input::Enter(order));
            pending.insert((order.session, client_id), Pending { order, first: now, last: now });
            seen.sent += 1;
            next_order += interval;
        }
        if now >= next_resend {
            next_resend = now + Duration::from_millis(100);
            for p in pending.values_mut().filter(|p| now.duration_since(p.last) >= Duration::from_secs(1)) {
                p.last = now;
                seen.resent += 1;
                push(index_of(p.order.symbol), &mut next_msg, &mut builders, &Input::Enter(p.order));
            }
        }
        for i in 0..o.symbols.len() {
            flush(i, &mut builders);
        }
        if now >= next_hb {
            next_hb = now + Duration::from_millis(200);
            for (i, &(_, group)) in o.symbols.iter().enumerate() {
                let _ = uni.send_to(&heartbeat(sessions[i], next_msg[i]), group);
            }
        }
        if let (Some(e), Some(req)) = (engine, rx.poll_request(report_session, nanos())) {
            let _ = uni.send_to(&req.encode(), e);
        }
        let Ok((n, from)) = uni.recv_from(&mut buf) else { continue };
        let d = &buf[..n];
        if net::classify(d) == Some(DatagramKind::ReRequest) {
            continue;
        }
        let Ok(p) = Packet::decode(d) else { continue };
        if p.session != report_session {
            continue;
        }
        if engine != Some(from) {
            engine = Some(from);
            seen.engines.push(from);
        }
        let a = rx.on_packet(p.seq, p.message_count().into(), nanos());
        for (_, m) in p.messages().skip(a.skip).take(a.take) {
            let Ok(r) = report::decode(m) else { continue };
            // In stream order, as mdfeed does: a retransmitted message keeps
            // its (older) epoch and is good; a lower epoch after a higher
            // one is a fenced engine's.
            if r.epoch < epoch {
                seen.stale_epoch += 1;
                continue;
            }
            epoch = r.epoch;
            match r.response {
                Response::Accepted(ack) => {
                    let key = (ack.order.session, ack.order.client_id);
                    if let Some(p) = pending.remove(&key) {
                        writeln!(acks, "{} {} {} {} {}", key.0, key.1, ack.order_id, ack.seq, r.epoch).unwrap();
                        seen.acked += 1;
                        o.acked.fetch_add(1, Ordering::Relaxed);
                        *seen.acks_by_epoch.entry(r.epoch).or_default() += 1;
                        seen.latencies_us.push(p.first.elapsed().as_micros() as u64);
                    }
                }
                Response::Rejected(_) => seen.rejects += 1,
                _ => {}
            }
        }
    }
    acks.flush().unwrap();
    seen.unacked = pending.len() as u64;
    seen
}
