//! The session layer's costs: full handshakes per second (XX and IK),
//! seal+open of 64-byte and 1400-byte frames, what a junk initiation
//! costs a responder (refused at mac1; answered with a cookie under load;
//! and, for comparison, refused by Noise as before mac1 existed), and the
//! network key's derivation from the password (what one offline password
//! guess costs).
//!
//! `cargo bench -p weavers-proto --bench session`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;
use weavers_proto::hsmac::Mac1Key;
use weavers_proto::keys::{NetworkKey, StaticKeypair};
use weavers_proto::node::{Config, Io, Node, Timers};
use weavers_proto::session::{Handshake, Session};
use weavers_proto::wire::{Packet, Pattern, INIT_HEADER_LEN, MAC_LEN};

fn handshake(pattern: Pattern, a: &StaticKeypair, b: &StaticKeypair, psk: &NetworkKey) -> (Session, Session) {
    let now = Instant::now();
    let mut i = Handshake::initiator(pattern, a, psk, Some(&b.public), now).unwrap();
    let mut r = Handshake::responder(pattern, b, psk, now).unwrap();
    let (mut m, mut p) = ([0u8; 512], [0u8; 512]);
    loop {
        let n = i.write(b"", &mut m).unwrap();
        r.read(&m[..n], &mut p).unwrap();
        if i.is_finished() && r.is_finished() {
            break;
        }
        let n = r.write(b"", &mut m).unwrap();
        i.read(&m[..n], &mut p).unwrap();
        if i.is_finished() && r.is_finished() {
            break;
        }
    }
    (i.into_session(1, 2, now).unwrap(), r.into_session(2, 1, now).unwrap())
}

fn handshakes(c: &mut Criterion) {
    let a = StaticKeypair::generate();
    let b = StaticKeypair::generate();
    let psk = NetworkKey([7; 32]);
    let mut g = c.benchmark_group("handshake");
    g.throughput(Throughput::Elements(1));
    for (name, p) in [("xx", Pattern::Xx), ("ik", Pattern::Ik)] {
        g.bench_function(name, |bench| bench.iter(|| black_box(handshake(p, &a, &b, &psk))));
    }
    g.finish();
}

fn seal_open(c: &mut Criterion) {
    let a = StaticKeypair::generate();
    let b = StaticKeypair::generate();
    let psk = NetworkKey([7; 32]);
    let (mut tx, mut rx) = handshake(Pattern::Ik, &a, &b, &psk);
    let mut g = c.benchmark_group("seal_open");
    for size in [64usize, 1400] {
        let frame = vec![0xabu8; size];
        let mut wire = vec![0u8; size + 64];
        let mut out = vec![0u8; size + 64];
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |bench, _| {
            bench.iter(|| {
                let n = tx.seal(&frame, &mut wire).unwrap();
                let Ok(Packet::Data { counter, ciphertext, .. }) = Packet::parse(&wire[..n]) else { unreachable!() };
                black_box(rx.open(counter, ciphertext, &mut out).unwrap())
            })
        });
    }
    g.finish();
}

/// The two AEADs snow offers (through ring, the `ring-accelerated` feature),
/// on the same transport path weavers uses (explicit nonces): which one to
/// pick is a measurement, not a belief.
fn ciphers(c: &mut Criterion) {
    let mut g = c.benchmark_group("cipher_seal_open");
    for cipher in ["ChaChaPoly", "AESGCM"] {
        let params: snow::params::NoiseParams = format!("Noise_NN_25519_{cipher}_BLAKE2s").parse().unwrap();
        let mut i = snow::Builder::new(params.clone()).build_initiator().unwrap();
        let mut r = snow::Builder::new(params).build_responder().unwrap();
        let (mut m, mut p) = ([0u8; 256], [0u8; 256]);
        let n = i.write_message(&[], &mut m).unwrap();
        r.read_message(&m[..n], &mut p).unwrap();
        let n = r.write_message(&[], &mut m).unwrap();
        i.read_message(&m[..n], &mut p).unwrap();
        let (tx, rx) = (i.into_stateless_transport_mode().unwrap(), r.into_stateless_transport_mode().unwrap());
        for size in [64usize, 1400] {
            let frame = vec![0xabu8; size];
            let mut wire = vec![0u8; size + 16];
            let mut out = vec![0u8; size];
            let mut nonce = 0u64;
            g.throughput(Throughput::Elements(1));
            g.bench_function(BenchmarkId::new(cipher, size), |bench| {
                bench.iter(|| {
                    nonce += 1;
                    let n = tx.write_message(nonce, &frame, &mut wire).unwrap();
                    black_box(rx.read_message(nonce, &wire[..n], &mut out).unwrap())
                })
            });
        }
    }
    g.finish();
}

/// An Io that only counts what the node sends.
struct Sink(usize);

impl Io for Sink {
    fn send(&mut self, _: SocketAddr, d: &[u8]) {
        self.0 += d.len();
    }
    fn deliver(&mut self, _: &[u8]) {}
    fn deliver_offloaded(&mut self, _: &[u8; weavers_proto::vnet::VNET_HDR_LEN], _: &[u8]) {}
}

/// An initiation of `pattern` with a Noise body of `body` bytes of junk;
/// with `mac1`, a valid mac1 under it.
fn junk_initiation(pattern: Pattern, body: usize, mac1: Option<&Mac1Key>) -> Vec<u8> {
    let mut m = vec![1, 1, 0, 0, 0, 7, pattern as u8, 0, 0, 0, 0];
    m.extend((0..body + 2 * MAC_LEN).map(|i| (i * 131 % 251) as u8));
    if let Some(k) = mac1 {
        let at = m.len() - 2 * MAC_LEN;
        let tag = k.mac(&m[..at]);
        m[at..at + MAC_LEN].copy_from_slice(&tag);
        m[at + MAC_LEN..].fill(0);
    }
    m
}

/// What one junk initiation costs a responder.
fn junk(c: &mut Criterion) {
    let psk = NetworkKey::derive(b"bench", "weavers").unwrap();
    let responder = StaticKeypair::generate();
    let now = Instant::now();
    let cfg = Config {
        name: "r".into(),
        keypair: responder.clone(),
        network_key: psk.clone(),
        overlay_mtu: 1400,
        timers: Timers::default(),
        unix_ms: 1_700_000_000_000,
        seed: 1,
        ipam_range: Default::default(),
        trust: None,
    };
    let mut node = Node::new(cfg, now);
    let from: SocketAddr = "192.0.2.1:6783".parse().unwrap();
    let mut io = Sink(0);
    // An IK initiation's size: ephemeral, encrypted static, a payload of
    // about 60 bytes with its tag.
    let stranger = junk_initiation(Pattern::Ik, 32 + 48 + 76, None);
    let mut g = c.benchmark_group("junk_initiation");
    g.throughput(Throughput::Elements(1));
    g.bench_function("mac1_check", |b| {
        let key = Mac1Key::new(&psk, Some(&responder.public));
        let at = stranger.len() - 2 * MAC_LEN;
        let tag: [u8; MAC_LEN] = stranger[at..at + MAC_LEN].try_into().unwrap();
        b.iter(|| black_box(key.verify(black_box(&stranger[..at]), &tag)))
    });
    g.bench_function("refused_at_mac1", |b| b.iter(|| node.handle_datagram(now, from, black_box(&stranger), &mut io)));
    // A member's junk once the global budget is spent: a cookie reply.
    let member = junk_initiation(Pattern::Xx, 48, Some(&Mac1Key::new(&psk, None)));
    for i in 0..2000u32 {
        let src = SocketAddr::from(((0x0a00_0000 + i).to_be_bytes(), 6783));
        node.handle_datagram(now, src, &member, &mut io);
    }
    let before = node.handshakes().cookies_sent;
    g.bench_function("cookie_reply_under_load", |b| {
        b.iter(|| node.handle_datagram(now, from, black_box(&member), &mut io))
    });
    assert!(node.handshakes().cookies_sent > before, "the node was under load");
    // What the same stranger's IK initiation cost before mac1: the Noise
    // responder up to the failed decryption of its static key.
    g.bench_function("refused_by_noise_without_mac1", |b| {
        let noise = &stranger[INIT_HEADER_LEN..stranger.len() - 2 * MAC_LEN];
        let mut out = vec![0u8; 512];
        b.iter(|| {
            let mut hs = Handshake::responder(Pattern::Ik, &responder, &psk, now).unwrap();
            black_box(hs.read(black_box(noise), &mut out).is_err())
        })
    });
    g.finish();
}

/// Argon2id with the parameters the daemon uses: the time one password
/// guess costs, quoted in the README.
fn network_key(c: &mut Criterion) {
    let mut g = c.benchmark_group("network_key");
    g.sample_size(10);
    g.bench_function("derive", |bench| {
        bench.iter(|| black_box(NetworkKey::derive(black_box(b"correct horse battery staple"), "weavers").unwrap()))
    });
    g.finish();
}

criterion_group!(benches, handshakes, seal_open, ciphers, junk, network_key);
criterion_main!(benches);
