//! The gossip protocol on a simulated network of up to a thousand hosts,
//! under a fake clock: convergence, how fast a change spreads, loss and
//! reordering, what an idle mesh costs, hostile messages.

use super::{Event, Gossip, Message, PeerRecord, SignedRecord, SyncConfig, MESSAGE_BUDGET};
use crate::keys::{PublicKey, StaticKeypair};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Simulated wall clock at the start (milliseconds).
const EPOCH_MS: u64 = 1_000_000;
const TICK: Duration = Duration::from_millis(10);

struct Host {
    id: StaticKeypair,
    g: Gossip,
    version: u64,
    bytes_out: u64,
}

/// A message on the simulated wire: (deliver at, sequence, from, to, bytes).
type InFlight = (Instant, u64, usize, usize, Vec<u8>);

/// Hosts running [`Gossip`] over a network with delay, loss and reordering.
struct Sim {
    hosts: Vec<Host>,
    index: HashMap<PublicKey, usize>,
    t0: Instant,
    now: Instant,
    /// (deliver at, sequence) -> (from, to, message)
    wire: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    loss: f64,
    delay: (u64, u64),
    rng: StdRng,
}

impl Sim {
    /// `n` hosts, each knowing only its own record.
    fn new(n: usize, seed: u64, check_signatures: bool) -> Sim {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(seed);
        let hosts: Vec<Host> = (0..n)
            .map(|i| {
                let id = StaticKeypair::from_seed(rng.gen());
                let r = PeerRecord::new(id.public, EPOCH_MS, &format!("h{i}"));
                let mut g = Gossip::new((SignedRecord::sign(&r, &id), r), SyncConfig::default(), rng.gen(), t0);
                if !check_signatures {
                    g.skip_signature_checks();
                }
                Host { id, g, version: EPOCH_MS, bytes_out: 0 }
            })
            .collect();
        let index = hosts.iter().enumerate().map(|(i, h)| (h.id.public, i)).collect();
        Sim { hosts, index, t0, now: t0, wire: BinaryHeap::new(), seq: 0, loss: 0.0, delay: (1, 3), rng }
    }

    fn now_ms(&self) -> u64 {
        EPOCH_MS + self.now.duration_since(self.t0).as_millis() as u64
    }

    /// Sessions between `a` and `b` (both directions).
    fn connect(&mut self, a: usize, b: usize) {
        let (ka, kb) = (self.hosts[a].id.public, self.hosts[b].id.public);
        self.hosts[a].g.peer_up(kb, self.now);
        self.hosts[b].g.peer_up(ka, self.now);
        self.flush(a);
        self.flush(b);
    }

    /// Every host connected to `degree` random others (a sparse mesh: the
    /// origin's push reaches few, anti-entropy does the rest).
    fn connect_random(&mut self, degree: usize) {
        let n = self.hosts.len();
        for a in 0..n {
            for _ in 0..degree / 2 {
                let b = self.rng.gen_range(0..n);
                if b != a {
                    self.connect(a, b);
                }
            }
        }
    }

    fn connect_all(&mut self) {
        let n = self.hosts.len();
        for a in 0..n {
            for b in a + 1..n {
                self.connect(a, b);
            }
        }
    }

    /// Host `i` changes its record (a new version, one more group).
    fn change(&mut self, i: usize) {
        let h = &mut self.hosts[i];
        let mut r = h.g.own().clone();
        h.version = (h.version + 1).max(EPOCH_MS + self.now.duration_since(self.t0).as_millis() as u64);
        r.version = h.version;
        r.name = format!("h{i}-v{}", r.version);
        let s = SignedRecord::sign(&r, &h.id);
        h.g.publish(s, r, self.now);
        self.flush(i);
    }

    fn flush(&mut self, i: usize) {
        while let Some((to, msg)) = self.hosts[i].g.poll_transmit() {
            self.hosts[i].bytes_out += msg.len() as u64;
            if self.rng.gen_bool(self.loss) {
                continue;
            }
            let j = self.index[&to];
            let at = self.now + Duration::from_millis(self.rng.gen_range(self.delay.0..=self.delay.1));
            self.seq += 1;
            self.wire.push(Reverse((at, self.seq, i, j, msg)));
        }
        while self.hosts[i].g.poll_event().is_some() {}
    }

    /// Runs the network and the hosts' timers for `d`.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += TICK;
            let now_ms = self.now_ms();
            while self.wire.peek().is_some_and(|Reverse((at, ..))| *at <= self.now) {
                let Reverse((_, _, from, to, msg)) = self.wire.pop().expect("peeked");
                let k = self.hosts[from].id.public;
                self.hosts[to].g.handle(k, &msg, self.now, now_ms);
                self.flush(to);
            }
            for i in 0..self.hosts.len() {
                if self.hosts[i].g.poll_timeout() <= self.now {
                    self.hosts[i].g.handle_timeout(self.now);
                    self.flush(i);
                }
            }
        }
    }

    /// Runs until `done` holds, in steps of `step`; the time it took.
    fn run_until(&mut self, limit: Duration, step: Duration, done: impl Fn(&Sim) -> bool) -> Option<Duration> {
        let start = self.now;
        while self.now - start < limit {
            if done(self) {
                return Some(self.now - start);
            }
            self.run(step);
        }
        done(self).then(|| self.now - start)
    }

    fn converged(&self) -> bool {
        let n = self.hosts.len();
        let s = self.hosts[0].g.table().summary();
        self.hosts.iter().all(|h| h.g.table().len() == n && h.g.table().summary() == s)
    }

    /// How many hosts hold host `i`'s current version.
    fn holders(&self, i: usize) -> usize {
        let k = self.hosts[i].id.public;
        let v = self.hosts[i].version;
        self.hosts.iter().filter(|h| h.g.table().version(&k) == Some(v)).count()
    }
}

fn rounds(d: Duration) -> f64 {
    d.as_secs_f64() / SyncConfig::default().interval.as_secs_f64()
}

/// Mean anti-entropy rounds for a change to reach every host of a sparse
/// mesh of `n` (degree 6), over `changes` changes by different hosts.
fn spread_rounds(n: usize, changes: usize, seed: u64) -> f64 {
    let mut sim = Sim::new(n, seed, false);
    sim.connect_random(6);
    sim.run_until(Duration::from_secs(600), Duration::from_millis(500), Sim::converged).expect("converges");
    let mut total = 0.0;
    for c in 0..changes {
        let i = (c * 7919) % n;
        sim.change(i);
        let t = sim
            .run_until(Duration::from_secs(300), Duration::from_millis(100), |s| s.holders(i) == n)
            .expect("the change reaches everyone");
        total += rounds(t);
    }
    total / changes as f64
}

/// A thousand hosts, each connected to about six others, start knowing
/// only themselves; they converge, and a change then reaches all of them
/// in a number of rounds that grows with log N: from 125 to 1,000 hosts
/// (three doublings) it takes only a few rounds more.
#[test]
fn thousand_hosts_converge_and_changes_spread_in_log_rounds() {
    let mut sim = Sim::new(1000, 1, false);
    sim.connect_random(6);
    let t = sim.run_until(Duration::from_secs(600), Duration::from_millis(500), Sim::converged);
    let t = t.expect("1,000 hosts converge");
    eprintln!("1000 hosts: converged in {:.1} s ({:.0} rounds)", t.as_secs_f64(), rounds(t));
    assert!(rounds(t) < 40.0, "converged in {:.0} rounds", rounds(t));

    let small = spread_rounds(125, 8, 2);
    let large = spread_rounds(1000, 8, 3);
    eprintln!("a change reaches everyone: 125 hosts {small:.1} rounds, 1000 hosts {large:.1} rounds");
    // Linear growth would be 8x; log N growth adds a constant per doubling.
    assert!(large < small + 3.0 * 3.0, "125: {small:.1} rounds, 1000: {large:.1} rounds");
    assert!(large < 2.5 * (1000f64).log2(), "{large:.1} rounds at 1000 hosts");
}

/// Ten percent of messages lost, and delays from 1 to 80 ms that reorder
/// them: 300 hosts still converge, and a change still reaches everyone.
#[test]
fn converges_under_loss_and_reordering() {
    let mut sim = Sim::new(300, 4, false);
    sim.loss = 0.10;
    sim.delay = (1, 80);
    sim.connect_random(6);
    let t = sim.run_until(Duration::from_secs(600), Duration::from_millis(500), Sim::converged);
    assert!(t.is_some(), "300 hosts with 10% loss converge");
    for i in [0, 150, 299] {
        sim.change(i);
        let t = sim.run_until(Duration::from_secs(120), Duration::from_millis(100), |s| s.holders(i) == 300);
        assert!(t.is_some(), "host {i}'s change reaches everyone");
    }
}

/// In a full mesh the origin's push reaches every host at once (no
/// anti-entropy round needed), and an idle converged mesh costs each host
/// one summary per interval whatever its size: 30 and 120 hosts cost the
/// same per host.
#[test]
fn full_mesh_pushes_at_once_and_idles_at_constant_cost() {
    let mut idle_per_host = Vec::new();
    for n in [30usize, 120] {
        let mut sim = Sim::new(n, 5, true);
        sim.connect_all();
        sim.run_until(Duration::from_secs(60), Duration::from_millis(100), Sim::converged).expect("converges");
        sim.change(n / 2);
        let t = sim.run_until(Duration::from_secs(10), TICK, |s| s.holders(n / 2) == n).expect("spreads");
        assert!(t < Duration::from_millis(50), "{n} hosts: push took {t:?}");
        // Idle: settle, then measure 20 intervals.
        sim.run(Duration::from_secs(5));
        let before: u64 = sim.hosts.iter().map(|h| h.bytes_out).sum();
        let d = SyncConfig::default().interval * 20;
        sim.run(d);
        let after: u64 = sim.hosts.iter().map(|h| h.bytes_out).sum();
        let per_host_per_s = (after - before) as f64 / n as f64 / d.as_secs_f64();
        eprintln!("{n} hosts, full mesh: idle gossip {per_host_per_s:.1} bytes/s per host");
        idle_per_host.push(per_host_per_s);
    }
    assert!(idle_per_host[1] <= idle_per_host[0] * 1.5 + 1.0, "{idle_per_host:?}");
    assert!(idle_per_host[1] < 16.0, "{idle_per_host:?} bytes/s");
}

/// A host joining through one seed gets every record from it; the others
/// learn of it when it connects to them (its record comes with the session).
#[test]
fn a_joining_host_learns_everything_from_one_seed() {
    let mut sim = Sim::new(60, 6, true);
    for a in 0..59 {
        for b in a + 1..59 {
            sim.connect(a, b);
        }
    }
    sim.run(Duration::from_secs(5));
    sim.connect(59, 0);
    let t = sim.run_until(Duration::from_secs(10), TICK, |s| s.hosts[59].g.table().len() == 60).expect("learns all");
    assert!(t <= SyncConfig::default().interval * 2, "took {t:?}");
    for b in 1..59 {
        sim.connect(59, b);
    }
    sim.run_until(Duration::from_secs(5), TICK, Sim::converged).expect("everyone knows the newcomer");
}

/// A record of ours newer than our own (we lost state) is reported once
/// checked, so that the owner can move past it.
#[test]
fn own_newer_record_is_reported() {
    let mut sim = Sim::new(2, 7, true);
    sim.connect(0, 1);
    sim.run(Duration::from_secs(1));
    let id = sim.hosts[0].id.clone();
    let mut r = sim.hosts[0].g.own().clone();
    r.version += 1000;
    let msg = Message::Records(vec![SignedRecord::sign(&r, &id).as_bytes().to_vec()]).encode();
    let from = sim.hosts[1].id.public;
    let g = &mut sim.hosts[0].g;
    g.handle(from, &msg, sim.now, EPOCH_MS + 5_000);
    assert_eq!(g.poll_event(), Some(Event::OwnSeenNewer(r.version)));
}

fn hostile_message() -> impl Strategy<Value = Message> {
    let key = any::<[u8; 32]>().prop_map(PublicKey);
    prop_oneof![
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..5).prop_map(Message::Records),
        any::<u64>().prop_map(Message::Summary),
        proptest::collection::vec(any::<u64>(), 0..70).prop_map(Message::Buckets),
        (any::<u64>(), proptest::collection::vec((key.clone(), any::<u64>()), 0..50))
            .prop_map(|(mask, entries)| Message::Digest { mask, entries }),
        proptest::collection::vec(key, 0..50).prop_map(Message::Want),
    ]
}

proptest! {
    /// Hostile messages, encoded or as raw bytes: never a panic, never a
    /// change to the table, and what the host answers stays bounded.
    #[test]
    fn hostile_messages_change_nothing(msgs in proptest::collection::vec(hostile_message(), 1..20),
                                       raw in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut sim = Sim::new(3, 8, true);
        sim.connect(0, 1);
        sim.connect(0, 2);
        sim.run(Duration::from_secs(1));
        let before = sim.hosts[0].g.table().summary();
        let mallory = PublicKey([9; 32]);
        let now_ms = sim.now_ms();
        let g = &mut sim.hosts[0].g;
        for m in &msgs {
            g.handle(mallory, &m.encode(), sim.now, now_ms);
        }
        g.handle(mallory, &raw, sim.now, now_ms);
        prop_assert_eq!(g.table().summary(), before);
        let mut answered = 0usize;
        while let Some((_, m)) = g.poll_transmit() { answered += m.len(); }
        prop_assert!(answered <= 20 * 4 * MESSAGE_BUDGET + 4096, "answered {} bytes", answered);
    }
}
