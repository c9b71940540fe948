//! What authenticating a stream costs per datagram: sealing (one
//! HMAC-SHA256, truncated, over the source address, the body and the
//! trailer) and
//! opening (the same, compared in constant time, plus the time window), for
//! the sizes the exchange sends: a one-order packet (the gateway's orders
//! at low rates, a report, a heartbeat) and a full 1300-byte packet.
//!
//! `cargo bench -p aex --bench auth`

use aex::auth::{seal::unix_ns, Kind, RootKey, StreamKey, StreamKind};
use aex::wire::mold::{PacketBuilder, Session};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::net::SocketAddr;

fn packet(len: usize) -> Vec<u8> {
    let mut b = PacketBuilder::new(Session::new("g001.001").unwrap(), 1, 1300);
    assert!(b.push(&vec![7u8; len - 22]));
    b.finish()
}

fn auth(c: &mut Criterion) {
    let key = StreamKey::derive(&RootKey::random(), StreamKind::Orders, &Session::new("g001.001").unwrap());
    let src: SocketAddr = "10.40.0.2:40000".parse().unwrap();
    let mut g = c.benchmark_group("auth");
    for len in [64, 1300] {
        let body = packet(len);
        g.throughput(Throughput::Bytes(len as u64));
        let mut buf = body.clone();
        g.bench_function(format!("seal {len} B"), |b| {
            b.iter(|| {
                buf.truncate(body.len());
                key.seal(Kind::Packet, src, black_box(&mut buf));
            })
        });
        let mut sealed = body.clone();
        key.seal(Kind::Packet, src, &mut sealed);
        g.bench_function(format!("open {len} B"), |b| {
            b.iter(|| key.open_fresh(src, black_box(&sealed), unix_ns()).unwrap().body.len())
        });
    }
    g.bench_function("derive a stream key", |b| {
        let root = RootKey::random();
        let s = Session::new("g001.042").unwrap();
        b.iter(|| StreamKey::derive(black_box(&root), StreamKind::Orders, &s))
    });
    g.finish();
}

criterion_group!(benches, auth);
criterion_main!(benches);
