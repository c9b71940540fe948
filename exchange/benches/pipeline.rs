//! The engine process's stages without sockets or fsync: an orders packet
//! verified and decoded by the ingress, sequenced and matched, its outputs
//! released by the publisher into sealed market-data and report packets.
//! Per input.
//!
//! `cargo bench -p aex --bench pipeline`

use aex::app::engine::ingress::{Action, Ingress};
use aex::app::engine::keys::EngineKeys;
use aex::app::engine::matcher::Matcher;
use aex::app::engine::publisher::Publisher;
use aex::app::engine::stats::Stats;
use aex::auth::{Keyring, Kind, StreamKey, StreamKind};
use aex::wire::input::encode_input;
use aex::wire::mold::{PacketBuilder, Session};
use aex::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

const GW1: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 40, 0, 2), 4001));
const ENGINE: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 40, 0, 1), 5000));
const N: u64 = 10_000;

fn ring() -> Keyring {
    Keyring::generate([1])
}

fn packets(ring: &Keyring) -> Vec<Vec<u8>> {
    let session = Session::new("g001.001").unwrap();
    let key = StreamKey::derive(ring.gateway(1).unwrap(), StreamKind::Orders, &session);
    (0..N)
        .map(|i| {
            let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
            let order = Input::Enter(NewOrder {
                session: 1 << 24 | 1 << 12 | (1 + (i % 7) as u32),
                client_id: i,
                symbol: 1,
                side,
                price: 95 + (i % 11) as u32,
                qty: 5,
                kind: OrderType::Limit,
                tif: TimeInForce::Day,
            });
            let mut b = PacketBuilder::new(session, i + 1, 1300);
            let mut m = Vec::new();
            encode_input(&order, &mut m);
            b.push(&m);
            let mut p = b.finish();
            key.seal(Kind::Packet, GW1, &mut p);
            p
        })
        .collect()
}

fn pipeline(c: &mut Criterion) {
    let ring = ring();
    let keys = EngineKeys::new(&ring, "eng1", &[1, 2]).unwrap();
    let packets = packets(&ring);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(N));
    g.bench_function("ingress+match+publish", |b| {
        b.iter(|| {
            let stats = Arc::new(Stats::default());
            let md =
                [1u16, 2].map(|s| (s, SocketAddr::from(SocketAddrV4::new(Ipv4Addr::new(239, 192, 2, s as u8), 7702))));
            let mut p = Publisher::new("eng1", md, stats.clone(), keys.clone()).unwrap();
            p.set_source(ENGINE);
            let mut m = Matcher::new(Engine::new([1, 2], EngineConfig::default()), 1, 0);
            let mut ingress = Ingress::new([1, 2], stats, keys.clone(), ENGINE);
            let (mut actions, mut out) = (Vec::new(), Vec::new());
            p.on_gateway(1, GW1, &mut out);
            for (i, d) in packets.iter().enumerate() {
                ingress.on_datagram(GW1, d, i as u64, &mut actions);
                for a in actions.drain(..) {
                    if let Action::Deliver(input) = a {
                        let (rec, o) = m.sequence(input, i as u64).unwrap();
                        p.on_outputs(o);
                        p.on_durable(rec.seq, &mut out);
                    }
                }
                out.clear();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
