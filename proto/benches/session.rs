//! The session layer's costs: full handshakes per second (XX and IK),
//! seal+open of 64-byte and 1400-byte frames, and the network key's
//! derivation from the password (what one offline password guess costs).
//!
//! `cargo bench -p weavers-proto --bench session`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Instant;
use weavers_proto::keys::{NetworkKey, StaticKeypair};
use weavers_proto::session::{Handshake, Session};
use weavers_proto::wire::{Packet, Pattern};

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

criterion_group!(benches, handshakes, seal_open, ciphers, network_key);
criterion_main!(benches);
