//! What a relayed 64-byte frame costs, end to end through three nodes in
//! one thread: the source sealing it for the relay, the relay opening and
//! re-sealing it, the destination opening and delivering it. Beside it, the
//! same frame sent directly (one seal, one open), for the ratio; and the
//! X25519 a pair of hosts pays once before relaying end to end.
//!
//! `cargo bench -p weavers-proto --bench relay`
//!
//! On the 2 shared cores (release, builds before and after run in turn):
//! relayed 0.89-0.93 us before the end-to-end seal, 1.15-1.23 us with it
//! (one more AES-GCM seal and open, two cache lookups); direct 0.45-0.50 us
//! either way; the X25519 42 us.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use weavers_api::PeerState;
use weavers_proto::keys::{NetworkKey, StaticKeypair};
use weavers_proto::node::{Config, Io, Node, Timers};

/// What one node emitted during a call, buffers reused.
#[derive(Default)]
struct Out {
    sent: Vec<(SocketAddr, Vec<u8>)>,
    n_sent: usize,
    delivered: usize,
}

impl Out {
    fn take(&mut self) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        let n = std::mem::take(&mut self.n_sent);
        self.sent[..n].iter().map(|(a, d)| (*a, d.as_slice()))
    }
}

impl Io for Out {
    fn send(&mut self, to: SocketAddr, d: &[u8]) {
        if self.n_sent == self.sent.len() {
            self.sent.push((to, Vec::with_capacity(2048)));
        }
        let slot = &mut self.sent[self.n_sent];
        slot.0 = to;
        slot.1.clear();
        slot.1.extend_from_slice(d);
        self.n_sent += 1;
    }
    fn deliver(&mut self, _: &[u8]) {
        self.delivered += 1;
    }
    fn deliver_offloaded(&mut self, _: &[u8; weavers_proto::vnet::VNET_HDR_LEN], _: &[u8]) {
        self.delivered += 1;
    }
}

/// Three nodes: 0 and 2 cannot reach each other, 1 relays.
struct Mesh {
    nodes: Vec<Node>,
    addrs: Vec<SocketAddr>,
    outs: Vec<Out>,
    now: Instant,
}

impl Mesh {
    fn new() -> Self {
        let now = Instant::now();
        let psk = NetworkKey([9; 32]);
        let nodes: Vec<Node> = (0..3)
            .map(|i| {
                let cfg = Config {
                    name: format!("h{i}"),
                    keypair: StaticKeypair::generate(),
                    network_key: psk.clone(),
                    overlay_mtu: 1400,
                    timers: Timers::default(),
                    unix_ms: 1_700_000_000_000,
                    seed: i,
                    ipam_range: Default::default(),
                    trust: None,
                };
                Node::new(cfg, now)
            })
            .collect();
        let addrs = (0..3).map(|i| SocketAddr::from(([10, 0, 0, i as u8 + 1], 6783))).collect();
        let mut m = Mesh { nodes, addrs, outs: (0..3).map(|_| Out::default()).collect(), now };
        let relay = m.addrs[1];
        m.nodes[0].add_bootstrap(relay, now);
        m.nodes[2].add_bootstrap(relay, now);
        m
    }

    /// Delivers what node `i` sent, and what that causes, except between 0 and 2.
    fn pump(&mut self, i: usize) {
        let mut queue: Vec<(usize, usize, Vec<u8>)> = Vec::new();
        let collect = |outs: &mut Vec<Out>, addrs: &[SocketAddr], i: usize, queue: &mut Vec<_>| {
            for (to, d) in outs[i].take() {
                let j = addrs.iter().position(|a| *a == to).unwrap();
                if (i, j) != (0, 2) && (i, j) != (2, 0) {
                    queue.push((i, j, d.to_vec()));
                }
            }
        };
        collect(&mut self.outs, &self.addrs, i, &mut queue);
        while let Some((i, j, d)) = queue.pop() {
            let from = self.addrs[i];
            self.nodes[j].handle_datagram(self.now, from, &d, &mut self.outs[j]);
            collect(&mut self.outs, &self.addrs, j, &mut queue);
        }
    }

    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            for i in 0..3 {
                self.nodes[i].handle_timeout(self.now, &mut self.outs[i]);
                self.pump(i);
            }
            self.now += Duration::from_millis(50);
        }
    }

    fn state(&mut self, i: usize, j: usize) -> Option<PeerState> {
        let k = self.nodes[j].public_key().to_base64();
        self.nodes[i].peer_infos(self.now).into_iter().find(|p| p.public_key == k).map(|p| p.state)
    }
}

/// A 64-byte frame from MAC `src` to `dst`.
fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

/// The three stages of one frame through the mesh, without copying
/// datagrams around: node 0 sends, node 1 handles what arrives, node 2 too.
fn one_frame(m: &mut Mesh, f: &[u8], hops: &[usize]) -> usize {
    let now = m.now;
    m.nodes[0].handle_frame(now, f, &mut m.outs[0]);
    m.nodes[0].flush(&mut m.outs[0]);
    let mut from = 0;
    for &j in hops {
        let (a, b) = m.outs.split_at_mut(from.max(j));
        let (src, dst) = if from < j { (&mut a[from], &mut b[0]) } else { (&mut b[0], &mut a[j]) };
        let n = std::mem::take(&mut src.n_sent);
        let addr = m.addrs[from];
        for (_, d) in &src.sent[..n] {
            m.nodes[j].handle_datagram(now, addr, d, dst);
        }
        from = j;
    }
    std::mem::take(&mut m.outs[from].delivered)
}

fn relayed_frame(c: &mut Criterion) {
    let mut m = Mesh::new();
    m.run(Duration::from_secs(6));
    assert_eq!(m.state(0, 2), Some(PeerState::Relayed), "node 0 reaches node 2 through node 1");
    // Let node 0 learn the MACs behind nodes 1 and 2.
    let (mac1, mac2) = ([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]);
    let now = m.now;
    for (i, mac) in [(1, mac1), (2, mac2)] {
        m.nodes[i].handle_frame(now, &frame([0xff; 6], mac), &mut m.outs[i]);
        m.nodes[i].flush(&mut m.outs[i]);
        m.pump(i);
    }
    for o in &mut m.outs {
        o.delivered = 0;
    }
    let src = [2, 0, 0, 0, 0, 1];
    let relayed = frame(mac2, src);
    let direct = frame(mac1, src);
    assert_eq!(one_frame(&mut m, &relayed, &[1, 2]), 1, "the relayed frame arrives");
    assert_eq!(one_frame(&mut m, &direct, &[1]), 1, "the direct frame arrives");

    let mut g = c.benchmark_group("frame_64");
    g.throughput(Throughput::Elements(1));
    g.bench_function("relayed", |b| b.iter(|| one_frame(&mut m, &relayed, &[1, 2])));
    g.bench_function("direct", |b| b.iter(|| one_frame(&mut m, &direct, &[1])));
    g.finish();
    assert_eq!(one_frame(&mut m, &relayed, &[1, 2]), 1, "still arriving after the run");
}

/// The one X25519 a pair of hosts pays the first time one relays to the
/// other (the end-to-end pair secret, `weavers_proto::e2e`).
fn pair_secret(c: &mut Criterion) {
    let (a, b) = (StaticKeypair::generate(), StaticKeypair::generate());
    let mut g = c.benchmark_group("relay_pair");
    g.bench_function("x25519", |bench| {
        bench.iter(|| {
            curve25519_dalek::montgomery::MontgomeryPoint(std::hint::black_box(b.public.0)).mul_clamped(a.private)
        })
    });
    g.finish();
}

criterion_group!(benches, relayed_frame, pair_secret);
criterion_main!(benches);
