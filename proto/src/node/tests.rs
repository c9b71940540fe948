//! Several nodes on a simulated underlay under a fake clock.

use super::*;
use crate::api::PeerState;
use crate::mac::Mac;
use std::collections::{HashSet, VecDeque};

/// What one node emitted during a call.
#[derive(Default)]
struct Out {
    sent: Vec<(SocketAddr, Vec<u8>)>,
    delivered: Vec<Vec<u8>>,
}

impl Io for Out {
    fn send(&mut self, to: SocketAddr, d: &[u8]) {
        self.sent.push((to, d.to_vec()));
    }
    fn deliver(&mut self, f: &[u8]) {
        self.delivered.push(f.to_vec());
    }
}

/// A simulated underlay: datagrams between nodes, with blocking, loss and
/// reordering, and a clock that only moves when the test says.
struct Net {
    nodes: Vec<Option<Node>>,
    keys: Vec<PublicKey>,
    addrs: Vec<SocketAddr>,
    now: Instant,
    in_flight: VecDeque<(usize, usize, Vec<u8>)>,
    blocked: HashSet<(usize, usize)>,
    /// Each datagram is dropped with this probability.
    loss: f64,
    /// Deliver datagrams in a shuffled order.
    reorder: bool,
    rng: StdRng,
    delivered: Vec<Vec<Vec<u8>>>,
    /// Every datagram that crossed the underlay, for replay and inspection.
    wire_log: Vec<(usize, usize, Vec<u8>)>,
}

fn timers() -> Timers {
    Timers { forget_after: Duration::from_secs(60), ..Timers::default() }
}

fn config(i: usize, password: &[u8]) -> Config {
    Config {
        name: format!("h{}", i + 1),
        keypair: StaticKeypair::generate().unwrap(),
        network_key: NetworkKey::from_password(password),
        overlay_mtu: 1400,
        timers: timers(),
        unix_ms: 1_700_000_000_000,
        seed: i as u64,
    }
}

impl Net {
    fn new(n: usize) -> Self {
        Self::with_passwords(&vec![&b"pw"[..]; n])
    }

    fn with_passwords(pw: &[&[u8]]) -> Self {
        let now = Instant::now();
        let nodes: Vec<Option<Node>> = pw.iter().enumerate().map(|(i, p)| Some(Node::new(config(i, p), now))).collect();
        Net {
            keys: nodes.iter().map(|n| n.as_ref().unwrap().public_key()).collect(),
            nodes,
            addrs: (0..pw.len()).map(|i| SocketAddr::from(([10, 0, 0, i as u8 + 1], 6783))).collect(),
            now,
            in_flight: VecDeque::new(),
            blocked: HashSet::new(),
            loss: 0.0,
            reorder: false,
            rng: StdRng::seed_from_u64(7),
            delivered: vec![Vec::new(); pw.len()],
            wire_log: Vec::new(),
        }
    }

    fn node(&mut self, i: usize) -> &mut Node {
        self.nodes[i].as_mut().expect("node running")
    }

    fn key(&self, i: usize) -> PublicKey {
        self.keys[i]
    }

    fn bootstrap(&mut self, i: usize, to: usize) {
        let (a, now) = (self.addrs[to], self.now);
        self.node(i).add_bootstrap(a, now);
    }

    fn collect(&mut self, i: usize, out: Out) {
        for (to, d) in out.sent {
            let j = self.addrs.iter().position(|a| *a == to).expect("known address");
            self.wire_log.push((i, j, d.clone()));
            if self.blocked.contains(&(i, j)) || self.blocked.contains(&(j, i)) || self.rng.gen::<f64>() < self.loss {
                continue;
            }
            self.in_flight.push_back((i, j, d));
        }
        self.delivered[i].extend(out.delivered);
    }

    /// Delivers everything in flight (and what it causes) without moving the clock.
    fn settle(&mut self) {
        let mut rounds = 0;
        while !self.in_flight.is_empty() {
            rounds += 1;
            assert!(rounds < 100_000, "datagram storm");
            if self.reorder && self.in_flight.len() > 1 {
                let k = self.rng.gen_range(0..self.in_flight.len());
                self.in_flight.swap(0, k);
            }
            let (i, j, d) = self.in_flight.pop_front().unwrap();
            let (from, now) = (self.addrs[i], self.now);
            let mut out = Out::default();
            if let Some(n) = self.nodes[j].as_mut() {
                n.handle_datagram(now, from, &d, &mut out);
            }
            self.collect(j, out);
        }
    }

    /// Advances the clock in ticks for `d`, running timers and the underlay.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            for i in 0..self.nodes.len() {
                let now = self.now;
                let mut out = Out::default();
                if let Some(n) = self.nodes[i].as_mut() {
                    n.handle_timeout(now, &mut out);
                }
                self.collect(i, out);
            }
            self.settle();
            self.now += Duration::from_millis(50);
        }
    }

    fn state(&mut self, i: usize, j: usize) -> Option<PeerState> {
        let k = self.key(j).to_base64();
        let now = self.now;
        self.node(i).peer_infos(now).into_iter().find(|p| p.public_key == k).map(|p| p.state)
    }

    fn all_connected(&mut self) -> bool {
        let n = self.nodes.len();
        (0..n).all(|i| (0..n).all(|j| i == j || self.state(i, j) == Some(PeerState::Connected)))
    }

    /// Sends a broadcast frame from node i with a marker payload.
    fn send_frame(&mut self, i: usize, dst: Mac, marker: u32) {
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, i as u8 + 1]);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f[14..18].copy_from_slice(&marker.to_be_bytes());
        let now = self.now;
        let mut out = Out::default();
        self.node(i).handle_frame(now, &f, &mut out);
        self.collect(i, out);
        self.settle();
    }

    fn markers(&self, i: usize) -> Vec<u32> {
        self.delivered[i].iter().map(|f| u32::from_be_bytes(f[14..18].try_into().unwrap())).collect()
    }
}

const BROADCAST: Mac = [0xff; 6];

fn mac_of(i: usize) -> Mac {
    [2, 0, 0, 0, 0, i as u8 + 1]
}

#[test]
fn two_peers_handshake_and_carry_frames() {
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    assert!(net.all_connected());
    net.send_frame(0, BROADCAST, 1);
    net.send_frame(1, BROADCAST, 2);
    assert_eq!(net.markers(1), vec![1]);
    assert_eq!(net.markers(0), vec![2]);
    // Unicast to a learned MAC goes to its owner only.
    net.send_frame(0, mac_of(1), 3);
    assert_eq!(net.markers(1), vec![1, 3]);
    let now = net.now;
    let infos = net.node(0).peer_infos(now);
    assert_eq!(infos[0].name, "h2");
    assert!(infos[0].rtt_us.is_some());
    assert_eq!(infos[0].traffic.tx_frames, 2);
}

#[test]
fn three_peers_bootstrapped_to_one_form_a_full_mesh() {
    let mut net = Net::new(3);
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(3));
    assert!(net.all_connected(), "h2 and h3 find each other through gossip and IK");
    net.send_frame(2, BROADCAST, 9);
    assert_eq!(net.markers(0), vec![9]);
    assert_eq!(net.markers(1), vec![9]);
}

#[test]
fn blocked_pair_talks_through_a_relay() {
    let mut net = Net::new(3);
    net.blocked.insert((0, 2));
    net.bootstrap(0, 1);
    net.bootstrap(2, 1);
    net.run(Duration::from_secs(5));
    assert_eq!(net.state(0, 2), Some(PeerState::Relayed));
    assert_eq!(net.state(2, 0), Some(PeerState::Relayed));
    let now = net.now;
    let row = net.node(0).peer_infos(now).into_iter().find(|p| p.name == "h3").unwrap();
    assert_eq!(row.via.as_deref(), Some("h2"));
    net.send_frame(0, BROADCAST, 5);
    assert_eq!(net.markers(2), vec![5], "relayed through h2");
    assert_eq!(net.markers(1), vec![5], "and h2 got its own copy");
    // Unicast back to the learned MAC of h1, again through the relay.
    net.send_frame(2, mac_of(0), 6);
    assert_eq!(net.markers(0), vec![6]);
    assert_eq!(net.markers(1), vec![5], "h2 relays but does not deliver unicast for h1");
}

#[test]
fn sessions_are_replaced_every_two_minutes_without_losing_frames() {
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    let first = net.node(0).peers.values().next().unwrap().current.as_ref().unwrap().local_index;
    let mut sent = 0;
    for _ in 0..(400 / 5) {
        net.run(Duration::from_secs(5));
        net.send_frame(0, mac_of(1), sent);
        sent += 1;
    }
    let now = net.now;
    let p = net.node(0).peers.values().next().unwrap();
    let s = p.current.as_ref().unwrap();
    assert_ne!(s.local_index, first, "rekeyed");
    assert!(now.saturating_duration_since(s.established) < Duration::from_secs(135));
    assert_eq!(net.markers(1), (0..sent).collect::<Vec<_>>(), "every frame across rekeys");
    assert!(net.node(0).handshakes().completed >= 3);
}

#[test]
fn loss_and_reordering_are_survived() {
    let mut net = Net::new(3);
    net.loss = 0.2;
    net.reorder = true;
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(40));
    assert!(net.all_connected());
    net.loss = 0.0;
    // Reordered data packets are all accepted once (the replay window is not a FIFO).
    for m in 0..200 {
        let now = net.now;
        let mut out = Out::default();
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&mac_of(1));
        f[6..12].copy_from_slice(&mac_of(0));
        f[14..18].copy_from_slice(&(m as u32).to_be_bytes());
        net.node(0).handle_frame(now, &f, &mut out);
        net.collect(0, out);
    }
    net.settle();
    let mut got = net.markers(1);
    got.sort();
    assert_eq!(got, (0..200).collect::<Vec<_>>());
}

#[test]
fn a_host_with_another_password_never_connects() {
    let mut net = Net::with_passwords(&[b"pw", b"pw", b"other"]);
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(10));
    assert_eq!(net.state(0, 1), Some(PeerState::Connected));
    assert_eq!(net.state(0, 2), None, "h1 never learns the stranger's key");
    let now = net.now;
    assert!(net.node(2).peer_infos(now).is_empty(), "nor the stranger h1's");
    net.send_frame(2, BROADCAST, 1);
    assert!(net.markers(0).is_empty() && net.markers(1).is_empty());
    assert!(net.node(0).drops().get(DropReason::HandshakeFailed) > 0);
}

#[test]
fn hostile_datagrams_are_counted_and_dropped() {
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    net.send_frame(1, BROADCAST, 1);
    let data: Vec<Vec<u8>> =
        net.wire_log.iter().filter(|(i, j, d)| *i == 1 && *j == 0 && d[1] == 4).map(|(_, _, d)| d.clone()).collect();
    let from = net.addrs[1];
    let now = net.now;
    let mut rng = StdRng::seed_from_u64(1);
    let mut out = Out::default();
    let n = net.node(0);
    for _ in 0..1000 {
        let len = rng.gen_range(0..200);
        let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        n.handle_datagram(now, from, &junk, &mut out);
    }
    for d in &data {
        n.handle_datagram(now, from, d, &mut out); // replay
        let mut t = d.clone();
        t[13] ^= 0x40; // tamper with the counter: a fresh nonce, a bad tag
        n.handle_datagram(now, from, &t, &mut out);
        n.handle_datagram(now, from, &d[..d.len() / 2], &mut out); // truncate
    }
    assert!(out.delivered.is_empty(), "nothing hostile reaches the bridge");
    assert!(n.drops().get(DropReason::Malformed) > 0);
    assert!(n.drops().get(DropReason::Replay) >= data.len() as u64);
    assert!(n.drops().get(DropReason::Decrypt) >= data.len() as u64);
    net.collect(0, out);
    net.settle();
    net.send_frame(1, BROADCAST, 2);
    assert_eq!(net.markers(0), vec![1, 2], "still forwarding");
}

#[test]
fn a_restarted_host_with_the_same_key_reconnects() {
    let mut net = Net::new(3);
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(3));
    assert!(net.all_connected());
    // h3 dies without a word and comes back with its key and its --peer.
    let mut cfg = config(2, b"pw");
    cfg.keypair = net.nodes[2].take().unwrap().cfg.keypair.clone();
    net.run(Duration::from_secs(20));
    assert_eq!(net.state(0, 2), Some(PeerState::Connecting));
    cfg.unix_ms += 23_000;
    net.nodes[2] = Some(Node::new(cfg, net.now));
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(5));
    assert!(net.all_connected());
}

#[test]
fn a_host_gone_for_good_is_forgotten() {
    let mut net = Net::new(3);
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(3));
    net.nodes[2] = None;
    net.run(Duration::from_secs(30));
    assert_eq!(net.state(1, 2), Some(PeerState::Connecting), "still remembered for a while");
    net.run(Duration::from_secs(60));
    assert_eq!(net.state(1, 2), None, "learned by gossip only, gone after forget_after");
    assert_eq!(net.state(0, 1), Some(PeerState::Connected));
}

#[test]
fn oversize_and_runt_frames_are_dropped() {
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    let now = net.now;
    let mut out = Out::default();
    net.node(0).handle_frame(now, &vec![0xff; 1400 + 15], &mut out);
    net.node(0).handle_frame(now, &[0xff; 10], &mut out);
    assert!(out.sent.is_empty());
    assert_eq!(net.node(0).drops().get(DropReason::Oversize), 1);
    assert_eq!(net.node(0).drops().get(DropReason::Malformed), 1);
}
