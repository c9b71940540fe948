//! Several nodes on a simulated underlay under a fake clock.

use super::*;
use crate::mac::Mac;
use rand::Rng;
use std::collections::{HashSet, VecDeque};
use weavers_api::PeerState;

/// What one node emitted during a call.
#[derive(Default)]
struct Out {
    sent: Vec<(SocketAddr, Vec<u8>)>,
    delivered: Vec<Vec<u8>>,
    offloaded: Vec<([u8; crate::vnet::VNET_HDR_LEN], Vec<u8>)>,
}

impl Io for Out {
    fn send(&mut self, to: SocketAddr, d: &[u8]) {
        self.sent.push((to, d.to_vec()));
    }
    fn deliver(&mut self, f: &[u8]) {
        self.delivered.push(f.to_vec());
    }
    fn deliver_offloaded(&mut self, h: &[u8; crate::vnet::VNET_HDR_LEN], f: &[u8]) {
        self.offloaded.push((*h, f.to_vec()));
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
    /// Underlay MTU: a datagram whose IPv4 packet (28 bytes of IP and UDP
    /// headers more) exceeds it is dropped, as an underlay that drops IP
    /// fragments would. `None`: any size crosses.
    mtu: Option<usize>,
    /// Datagrams dropped for exceeding `mtu`.
    too_big: usize,
    rng: StdRng,
    delivered: Vec<Vec<Vec<u8>>>,
    offloaded: Vec<Vec<([u8; crate::vnet::VNET_HDR_LEN], Vec<u8>)>>,
    /// Every datagram that crossed the underlay, for replay and inspection.
    wire_log: Vec<(usize, usize, Vec<u8>)>,
    /// Hosts whose process does not run (stalled): no timers; datagrams
    /// for them wait in `parked` until [`Net::resume`].
    paused: HashSet<usize>,
    parked: Vec<(usize, usize, Vec<u8>)>,
}

fn timers() -> Timers {
    Timers { forget_after: Duration::from_secs(60), ..Timers::default() }
}

/// The network key of `password`, derived once per test process: Argon2
/// costs a good part of a second, and the tests start hundreds of nodes.
fn network_key(password: &[u8]) -> NetworkKey {
    static KEYS: std::sync::OnceLock<std::sync::Mutex<HashMap<Vec<u8>, NetworkKey>>> = std::sync::OnceLock::new();
    let mut keys = KEYS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    keys.entry(password.to_vec())
        .or_insert_with(|| NetworkKey::derive(password, crate::keys::DEFAULT_NETWORK).expect("valid password"))
        .clone()
}

fn config(i: usize, password: &[u8]) -> Config {
    Config {
        name: format!("h{}", i + 1),
        keypair: StaticKeypair::generate(),
        network_key: network_key(password),
        overlay_mtu: crate::wire::overlay_mtu(1500, false),
        timers: timers(),
        unix_ms: 1_700_000_000_000,
        seed: i as u64,
        ipam_range: crate::ipam::Range::default(),
        trust: None,
    }
}

impl Net {
    fn new(n: usize) -> Self {
        Self::with_passwords(&vec![&b"pw"[..]; n])
    }

    fn with_passwords(pw: &[&[u8]]) -> Self {
        Self::with_configs(pw.iter().enumerate().map(|(i, p)| config(i, p)).collect())
    }

    fn with_configs(cfgs: Vec<Config>) -> Self {
        let now = Instant::now();
        let n = cfgs.len();
        let nodes: Vec<Option<Node>> = cfgs.into_iter().map(|c| Some(Node::new(c, now))).collect();
        Net {
            keys: nodes.iter().map(|n| n.as_ref().unwrap().public_key()).collect(),
            nodes,
            addrs: (0..n).map(|i| SocketAddr::from(([10, 0, 0, i as u8 + 1], 6783))).collect(),
            now,
            in_flight: VecDeque::new(),
            blocked: HashSet::new(),
            loss: 0.0,
            reorder: false,
            mtu: None,
            too_big: 0,
            rng: StdRng::seed_from_u64(7),
            delivered: vec![Vec::new(); n],
            offloaded: vec![Vec::new(); n],
            wire_log: Vec::new(),
            paused: HashSet::new(),
            parked: Vec::new(),
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
            if self.mtu.is_some_and(|m| d.len() + 28 > m) {
                self.too_big += 1;
                continue;
            }
            if self.blocked.contains(&(i, j)) || self.blocked.contains(&(j, i)) || self.rng.gen::<f64>() < self.loss {
                continue;
            }
            self.in_flight.push_back((i, j, d));
        }
        self.delivered[i].extend(out.delivered);
        self.offloaded[i].extend(out.offloaded);
    }

    /// Delivers everything in flight (and what it causes) without moving
    /// the clock; each node flushes once nothing is in flight (the end of a
    /// daemon's batch: TCP segments held to be joined are delivered).
    fn settle(&mut self) {
        self.settle_batch();
        while self.nodes.iter().any(|n| n.as_ref().is_some_and(|n| n.gro.is_holding())) {
            for i in 0..self.nodes.len() {
                let mut out = Out::default();
                if let Some(n) = self.nodes[i].as_mut() {
                    n.flush(&mut out);
                }
                self.collect(i, out);
            }
            self.settle_batch();
        }
    }

    fn settle_batch(&mut self) {
        // A tick of n hosts may rightly send a few datagrams per pair.
        let limit = 100_000.max(8 * self.nodes.len() * self.nodes.len());
        let mut rounds = 0;
        while !self.in_flight.is_empty() {
            rounds += 1;
            assert!(rounds < limit, "datagram storm");
            if self.reorder && self.in_flight.len() > 1 {
                let k = self.rng.gen_range(0..self.in_flight.len());
                self.in_flight.swap(0, k);
            }
            let (i, j, d) = self.in_flight.pop_front().unwrap();
            if self.paused.contains(&j) {
                self.parked.push((i, j, d));
                continue;
            }
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
                if let Some(n) = self.nodes[i].as_mut().filter(|_| !self.paused.contains(&i)) {
                    n.handle_timeout(now, &mut out);
                }
                self.collect(i, out);
            }
            self.settle();
            self.now += Duration::from_millis(50);
        }
    }

    /// Stops host `i`'s process (as SIGSTOP, or a starved one would).
    fn pause(&mut self, i: usize) {
        self.paused.insert(i);
    }

    /// Lets host `i` run again: its timers run first (late), then what
    /// waited for it is read, as a daemon woken by its timer would.
    fn resume(&mut self, i: usize) {
        self.paused.remove(&i);
        let (mine, rest) = std::mem::take(&mut self.parked).into_iter().partition(|(_, j, _)| *j == i);
        self.parked = rest;
        let now = self.now;
        let mut out = Out::default();
        self.node(i).handle_timeout(now, &mut out);
        self.collect(i, out);
        self.in_flight.extend(mine);
        self.settle();
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
        self.node(i).flush(&mut out);
        self.collect(i, out);
        self.settle();
    }

    /// Markers of the test frames (EtherType 0x88b5) delivered to node i.
    fn markers(&self, i: usize) -> Vec<u32> {
        self.delivered[i]
            .iter()
            .filter(|f| f[12..14] == [0x88, 0xb5])
            .map(|f| u32::from_be_bytes(f[14..18].try_into().unwrap()))
            .collect()
    }

    /// Hands a frame to node i as if read from its TAP.
    fn inject(&mut self, i: usize, frame: &[u8]) {
        let now = self.now;
        let mut out = Out::default();
        self.node(i).handle_frame(now, frame, &mut out);
        self.node(i).flush(&mut out);
        self.collect(i, out);
        self.settle();
    }

    /// UDP datagrams to `group` delivered to node i, by their 4-byte marker.
    fn group_markers(&self, i: usize, group: [u8; 4]) -> Vec<u32> {
        self.delivered[i]
            .iter()
            .filter(|f| f[12..14] == [8, 0] && f[23] == 17 && f[30..34] == group)
            .map(|f| u32::from_be_bytes(f[42..46].try_into().unwrap()))
            .collect()
    }

    /// Data datagrams that crossed the underlay from i to j so far.
    fn data_datagrams(&self, i: usize, j: usize) -> usize {
        self.wire_log.iter().filter(|(a, b, d)| *a == i && *b == j && d[1] == 4).count()
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

/// Polls node i's events until there are none.
fn events(net: &mut Net, i: usize) -> Vec<Event> {
    std::iter::from_fn(|| net.node(i).poll_event()).collect()
}

#[test]
fn each_change_is_reported_once_until_polled() {
    let mut net = Net::new(2);
    assert_eq!(events(&mut net, 0), [Event::DnsChanged], "the DNS view was never handed out");
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    assert!(net.all_connected());
    // The peer was learned, then its session installed: two changes, one event.
    let got = events(&mut net, 0);
    assert_eq!(got.iter().filter(|e| **e == Event::PeersChanged).count(), 1, "{got:?}");
    assert_eq!(net.node(0).poll_event(), None);

    // Two own entries added: the own entries and the view changed, once each.
    let now = net.now;
    net.node(0).dns_add("a.mesh", "10.0.0.1".parse().unwrap(), None, now).unwrap();
    net.node(0).dns_add("b.mesh", "10.0.0.2".parse().unwrap(), None, now).unwrap();
    let got = events(&mut net, 0);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.contains(&Event::OwnDnsChanged) && got.contains(&Event::DnsChanged), "{got:?}");
    // The other host's view changed through gossip; its own entries did not.
    events(&mut net, 1);
    net.run(Duration::from_secs(1));
    let got = events(&mut net, 1);
    assert!(got.contains(&Event::DnsChanged) && !got.contains(&Event::OwnDnsChanged), "{got:?}");

    // The range gets seeded by one host and adopted by the other: both save it.
    net.run(Duration::from_secs(3));
    for i in 0..2 {
        let got = events(&mut net, i);
        assert!(got.contains(&Event::IpamChanged), "h{}: {got:?}", i + 1);
    }
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
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f[14..18].copy_from_slice(&(m as u32).to_be_bytes());
        net.node(0).handle_frame(now, &f, &mut out);
        if m % 7 == 0 {
            net.node(0).flush(&mut out);
        }
        net.collect(0, out);
    }
    let mut out = Out::default();
    net.node(0).flush(&mut out);
    net.collect(0, out);
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
    // Refused at mac1: not one handshake attempted for the stranger.
    assert!(net.node(0).drops().get(DropReason::BadMac1) > 0);
    assert!(net.node(0).handshakes().mac1_refused > 0);
    assert_eq!(net.node(0).handshakes().failed, 0);
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

/// The IK initiations that went from node `from` to node `to`.
fn ik_initiations(net: &Net, from: usize, to: usize) -> Vec<Vec<u8>> {
    net.wire_log
        .iter()
        .filter(|(i, j, d)| {
            (*i, *j) == (from, to)
                && matches!(Packet::parse(d), Ok(Packet::HandshakeInit { pattern: crate::wire::Pattern::Ik, .. }))
        })
        .map(|(_, _, d)| d.clone())
        .collect()
}

#[test]
fn an_ik_initiation_captured_before_a_restart_is_refused_after_it() {
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(3));
    assert!(net.all_connected());
    // h1 saves its known peers whenever it says they changed, as the
    // daemon does (peers.json); h2 rekeys by IK after two minutes.
    let mut saved = net.node(0).known_peers();
    for _ in 0..130 {
        net.run(Duration::from_secs(1));
        if events(&mut net, 0).contains(&Event::PeersChanged) {
            saved = net.node(0).known_peers();
        }
    }
    let replay = ik_initiations(&net, 1, 0).pop().expect("h2 rekeyed by IK");
    assert_eq!(net.node(0).drops().get(DropReason::Replay), 0, "h1 took every initiation so far");
    let stamp = saved.iter().find(|k| k.key == net.key(1)).map(|k| k.last_handshake);
    assert!(stamp.is_some_and(|s| s > 0), "h1 saved h2's handshake timestamp: {saved:?}");

    // h1 restarts with its key and what it saved; an attacker replays the
    // captured initiation to it.
    let mut cfg = config(0, b"pw");
    cfg.keypair = net.nodes[0].take().unwrap().cfg.keypair.clone();
    cfg.unix_ms += 200_000;
    let (now, from) = (net.now, net.addrs[1]);
    let restarted = |known: &[KnownPeer]| {
        let mut n = Node::new(cfg.clone(), now);
        for k in known {
            n.add_known_peer(k, now);
        }
        n
    };
    let answers = |n: &mut Node| {
        let mut out = Out::default();
        n.handle_datagram(now, from, &replay, &mut out);
        !out.sent.is_empty()
    };
    let forgetful: Vec<KnownPeer> = saved.iter().map(|k| KnownPeer { last_handshake: 0, ..k.clone() }).collect();
    assert!(answers(&mut restarted(&forgetful)), "without the saved timestamp the replay would be answered");
    let mut h1 = restarted(&saved);
    assert!(!answers(&mut h1), "the replayed initiation is answered after the restart");
    assert_eq!(h1.drops().get(DropReason::Replay), 1);
    assert_eq!(h1.handshakes().completed, 0);

    // The real h2 still gets back in, with newer timestamps.
    net.nodes[0] = Some(h1);
    net.run(Duration::from_secs(10));
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
    let too_big = net.node(0).overlay_mtu() + 15;
    net.node(0).handle_frame(now, &vec![0xff; too_big], &mut out);
    net.node(0).handle_frame(now, &[0xff; 10], &mut out);
    assert!(out.sent.is_empty());
    assert_eq!(net.node(0).drops().get(DropReason::Oversize), 1);
    assert_eq!(net.node(0).drops().get(DropReason::Malformed), 1);
}

// ---- multicast ----

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet+IPv4 frame from `src` to `dst` with `proto` and `payload`.
fn ipv4_frame(src_mac: Mac, src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x01, 0x00, 0x5e, dst[1] & 0x7f, dst[2], dst[3]];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 1, proto, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(payload);
    f
}

fn igmp(msg_type: u8, group: [u8; 4], extra: &[u8]) -> Vec<u8> {
    let mut m = vec![msg_type, 0, 0, 0];
    m.extend_from_slice(&group);
    m.extend_from_slice(extra);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn host_ip(i: usize) -> [u8; 4] {
    [10, 40, 0, i as u8 + 1]
}

/// IGMPv2 join of `group` by node i's member.
fn join_v2(i: usize, group: [u8; 4]) -> Vec<u8> {
    ipv4_frame(mac_of(i), host_ip(i), group, 2, &igmp(0x16, group, &[]))
}

/// IGMPv2 leave.
fn leave_v2(i: usize, group: [u8; 4]) -> Vec<u8> {
    ipv4_frame(mac_of(i), host_ip(i), [224, 0, 0, 2], 2, &igmp(0x17, group, &[]))
}

/// IGMPv3 report with one record of `kind` for `group` with `sources`.
fn report_v3(i: usize, kind: u8, group: [u8; 4], sources: &[[u8; 4]]) -> Vec<u8> {
    let mut m = vec![0x22, 0, 0, 0, 0, 0, 0, 1, kind, 0, 0, sources.len() as u8];
    m.extend_from_slice(&group);
    for s in sources {
        m.extend_from_slice(s);
    }
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4_frame(mac_of(i), host_ip(i), [224, 0, 0, 22], 2, &m)
}

/// A UDP datagram from node i's member to `group` carrying `marker`.
fn udp_to_group(i: usize, group: [u8; 4], marker: u32) -> Vec<u8> {
    let mut udp = vec![0x30, 0x39, 0x30, 0x39, 0, 12, 0, 0];
    udp.extend_from_slice(&marker.to_be_bytes());
    ipv4_frame(mac_of(i), host_ip(i), group, 17, &udp)
}

fn four_hosts_connected() -> Net {
    let mut net = Net::new(4);
    for i in 1..4 {
        net.bootstrap(i, 0);
    }
    net.run(Duration::from_secs(3));
    assert!(net.all_connected());
    net
}

const G: [u8; 4] = [239, 1, 1, 1];

#[test]
fn group_traffic_reaches_only_the_hosts_that_joined() {
    let mut net = four_hosts_connected();
    net.inject(1, &join_v2(1, G));
    net.inject(2, &report_v3(2, 2, G, &[])); // IGMPv3 IS_EX {}
    net.run(Duration::from_secs(1)); // a join reaches every peer within a second
    let before = net.data_datagrams(0, 3);
    for m in 0..100 {
        net.inject(0, &udp_to_group(0, G, m));
    }
    assert_eq!(net.group_markers(1, G), (0..100).collect::<Vec<_>>());
    assert_eq!(net.group_markers(2, G), (0..100).collect::<Vec<_>>());
    assert!(net.group_markers(3, G).is_empty());
    assert_eq!(net.data_datagrams(0, 3), before, "not one group frame towards the host without listeners");
    let now = net.now;
    let g = net.node(0).group_infos(now).into_iter().find(|g| g.group == "239.1.1.1").unwrap();
    assert_eq!(g.counters.local_frames, 100);
    assert_eq!(g.counters.sent_frames, 200);
    assert_eq!(g.subscribed_peers.len(), 2);
    let g3 = net.node(1).group_infos(now).into_iter().find(|g| g.group == "239.1.1.1").unwrap();
    assert_eq!(g3.counters.delivered_frames, 100);
    assert_eq!(g3.local_members.len(), 1);
}

#[test]
fn membership_reports_never_cross_the_mesh() {
    let mut net = four_hosts_connected();
    let before: Vec<usize> = (1..4).map(|j| net.data_datagrams(0, j)).collect();
    net.inject(0, &join_v2(0, G));
    net.inject(0, &report_v3(0, 2, G, &[]));
    net.inject(0, &leave_v2(0, G));
    let after: Vec<usize> = (1..4).map(|j| net.data_datagrams(0, j)).collect();
    assert_eq!(before, after, "IGMP stays on its host");
}

#[test]
fn startup_queries_ask_members_to_answer_within_a_second() {
    let mut net = Net::new(1);
    // IGMPv3 general queries delivered into h1's bridge: their max response codes (tenths of a second).
    let codes = |net: &Net| -> Vec<u8> {
        net.delivered[0].iter().filter(|f| f[12..14] == [8, 0] && f[23] == 2 && f[38] == 0x11).map(|f| f[39]).collect()
    };
    net.run(Duration::from_secs(1));
    assert_eq!(codes(&net), vec![10], "a (re)started daemon learns its members within a second");
    net.run(Duration::from_secs(70));
    assert_eq!(codes(&net), vec![10, 10, 100], "two startup queries, then the full response interval");
}

#[test]
fn a_leave_stops_delivery_and_silent_members_expire() {
    let mut net = Net::new(3);
    for n in net.nodes.iter_mut().flatten() {
        n.cfg.timers.query_interval = Duration::from_secs(4);
    }
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(3));
    net.inject(1, &join_v2(1, G));
    net.inject(2, &join_v2(2, G));
    net.run(Duration::from_secs(1));
    net.inject(0, &udp_to_group(0, G, 1));
    assert_eq!((net.group_markers(1, G), net.group_markers(2, G)), (vec![1], vec![1]));
    net.inject(1, &leave_v2(1, G));
    net.run(Duration::from_secs(1));
    net.inject(0, &udp_to_group(0, G, 2));
    assert_eq!(net.group_markers(1, G), vec![1], "left");
    assert_eq!(net.group_markers(2, G), vec![1, 2], "the other host still listens");
    // h3's member dies without a word: gone after the membership interval
    // (2 x 4 s + 2 s), though h3 keeps querying.
    net.run(Duration::from_secs(11));
    assert!(net.node(2).queries_sent() >= 2);
    net.inject(0, &udp_to_group(0, G, 3));
    assert_eq!(net.group_markers(2, G), vec![1, 2]);
    assert!(net.node(0).drops().get(DropReason::NoListeners) >= 1, "pruned at the sender");
}

#[test]
fn source_specific_joins_get_only_their_source() {
    let mut net = four_hosts_connected();
    let ssm = [232, 1, 1, 1];
    net.inject(1, &report_v3(1, 1, ssm, &[host_ip(0)])); // IS_IN {h1}
    net.run(Duration::from_secs(1));
    net.inject(0, &udp_to_group(0, ssm, 1));
    net.inject(3, &udp_to_group(3, ssm, 4));
    assert_eq!(net.group_markers(1, ssm), vec![1], "h1's frame only");
}

#[test]
fn link_local_groups_reach_every_host() {
    let mut net = four_hosts_connected();
    let mdns = [224, 0, 0, 251];
    net.inject(0, &udp_to_group(0, mdns, 7));
    for j in 1..4 {
        assert_eq!(net.group_markers(j, mdns), vec![7]);
    }
}

#[test]
fn malformed_membership_messages_are_counted() {
    let mut net = four_hosts_connected();
    let mut bad = join_v2(1, G);
    let n = bad.len();
    bad[n - 1] ^= 0xff; // breaks the IGMP checksum
    net.inject(1, &bad);
    assert_eq!(net.node(1).drops().get(DropReason::BadMembership), 1);
    let now = net.now;
    assert!(net.node(1).group_infos(now).iter().all(|g| g.local_members.is_empty()));
}

#[test]
fn frames_queued_for_a_peer_share_datagrams_within_the_mtu() {
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    let before = net.data_datagrams(0, 1);
    let now = net.now;
    let mut out = Out::default();
    let largest = net.node(0).overlay_mtu() + 14;
    for (m, size) in (0..100u32).map(|m| (m, if m % 10 == 9 { largest } else { 60 })) {
        let mut f = vec![0u8; size];
        f[0..6].copy_from_slice(&mac_of(1));
        f[6..12].copy_from_slice(&mac_of(0));
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f[14..18].copy_from_slice(&m.to_be_bytes());
        net.node(0).handle_frame(now, &f, &mut out);
    }
    net.node(0).flush(&mut out);
    let biggest = out.sent.iter().map(|(_, d)| d.len()).max().unwrap();
    assert!(biggest + 28 <= 1500, "a {biggest}-byte datagram would not fit a 1500-byte IPv4 underlay");
    net.collect(0, out);
    net.settle();
    assert_eq!(net.markers(1), (0..100).collect::<Vec<_>>(), "all delivered, in order");
    let used = net.data_datagrams(0, 1) - before;
    assert!(used <= 20, "100 frames took {used} datagrams");
}

/// Idle datagrams per host and minute in a full mesh of `n`.
fn idle_per_host(n: usize) -> usize {
    let mut net = Net::new(n);
    for i in 1..n {
        net.bootstrap(i, 0);
    }
    net.run(Duration::from_secs(10));
    assert!(net.all_connected());
    net.run(Duration::from_secs(30));
    let count = |net: &Net| {
        (0..n).flat_map(|i| (0..n).map(move |j| (i, j))).map(|(i, j)| net.data_datagrams(i, j)).sum::<usize>()
    };
    let before = count(&net);
    net.run(Duration::from_secs(60));
    (count(&net) - before) / n
}

#[test]
fn an_idle_mesh_stays_quiet() {
    // Per host and minute: it pings the 2 hosts it monitors once a second
    // and is pinged by 2 (240 datagrams with the pongs), sends one gossip
    // summary every 2 s (30), and rekeys now and then: about 280, whatever
    // the mesh's size. (Before liveness by monitors, every pair pinged:
    // a host's cost grew with the mesh.) A record echoed back to its author
    // must not make it stamp a new version (that loop once made ten times
    // this).
    let small = idle_per_host(4);
    let large = idle_per_host(12);
    assert!(small < 320, "{small} datagrams per host in an idle minute (4 hosts)");
    assert!(large < 320, "{large} datagrams per host in an idle minute (12 hosts)");
}

/// A 60 000-byte "super-frame" from node i's member to node j's MAC.
fn super_frame(i: usize, j: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..60_000u32).map(|n| (n % 251) as u8).collect();
    f[0..6].copy_from_slice(&mac_of(j));
    f[6..12].copy_from_slice(&mac_of(i));
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

#[test]
fn offloaded_super_frames_travel_whole_direct_and_relayed() {
    let mut net = Net::new(3);
    net.blocked.insert((0, 2));
    net.bootstrap(0, 1);
    net.bootstrap(2, 1);
    net.run(Duration::from_secs(5));
    let hdr = [1u8, 1, 0x36, 0, 0x14, 0x05, 0x22, 0, 0x10, 0]; // TCPv4, segments of 1300
    for dst in [1, 2] {
        // Teach node 0 where dst's MAC lives.
        net.send_frame(dst, BROADCAST, 100 + dst as u32);
        let f = super_frame(0, dst);
        let now = net.now;
        let mut out = Out::default();
        net.node(0).handle_offloaded_frame(now, &hdr, &f, &mut out);
        assert!(out.sent.iter().all(|(_, d)| d.len() + 28 <= 1500), "every fragment fits the underlay");
        net.collect(0, out);
        net.settle();
        assert_eq!(net.offloaded[dst], vec![(hdr, f)], "to h{} whole, header and all", dst + 1);
    }
    assert!(net.offloaded[1].len() == 1, "h2 relayed h3's copy without delivering it");
}

#[test]
fn a_super_frame_missing_a_fragment_is_dropped_and_bad_fragments_are_counted() {
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    net.send_frame(1, BROADCAST, 1);
    let now = net.now;
    let mut out = Out::default();
    net.node(0).handle_offloaded_frame(now, &[0; 10], &super_frame(0, 1), &mut out);
    out.sent.remove(7);
    net.collect(0, out);
    net.settle();
    assert!(net.offloaded[1].is_empty());
    net.run(Duration::from_secs(2));
    assert_eq!(net.node(1).drops().get(DropReason::Incomplete), 1);
}

/// Polls node i's events until there are none; whether `ev` was among them.
fn polled(net: &mut Net, i: usize, ev: Event) -> bool {
    events(net, i).contains(&ev)
}

/// (name, addr, origin name) of every entry node i's DNS view shows.
fn dns_rows(net: &mut Net, i: usize) -> Vec<(String, String, String)> {
    net.node(i).dns_view().into_iter().map(|v| (v.name, v.addr.to_string(), v.origin_name)).collect()
}

#[test]
fn dns_entries_spread_and_removals_by_any_host_reach_every_host() {
    use crate::dns::{Selector, TOMBSTONE_TTL};
    let mut net = Net::new(3);
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(3));
    assert!(net.all_connected());
    let now = net.now;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    net.node(0).dns_add("AAPL.orders.aex", ip("239.1.0.1"), None, now).unwrap();
    net.node(0).dns_add("aapl.orders.aex.weavers.local.", ip("239.1.0.2"), Some("ctr"), now).unwrap();
    assert!(polled(&mut net, 0, Event::OwnDnsChanged));
    net.run(Duration::from_millis(500));
    let want = |addrs: &[&str]| -> Vec<(String, String, String)> {
        addrs.iter().map(|a| ("aapl.orders.aex".to_string(), a.to_string(), "h1".to_string())).collect()
    };
    for i in 0..3 {
        assert_eq!(dns_rows(&mut net, i), want(&["239.1.0.1", "239.1.0.2"]), "h{}", i + 1);
    }

    // h2 removes one of h1's addresses: gone everywhere within a second,
    // and h1 drops it from its own record.
    polled(&mut net, 2, Event::DnsChanged); // whatever was pending
    let sel = Selector::new(Some("aapl.orders.aex"), Some(ip("239.1.0.1")), None).unwrap();
    let now = net.now;
    let removed = net.node(1).dns_remove(&sel, now).unwrap();
    assert_eq!(removed.len(), 1);
    assert!(!polled(&mut net, 1, Event::OwnDnsChanged), "h2's own entries did not change");
    net.run(Duration::from_secs(1));
    for i in 0..3 {
        assert_eq!(dns_rows(&mut net, i), want(&["239.1.0.2"]), "h{}", i + 1);
    }
    assert!(polled(&mut net, 2, Event::DnsChanged));
    assert_eq!(net.node(0).dns_own_entries().len(), 1);
    assert!(polled(&mut net, 0, Event::OwnDnsChanged), "h1 saves its smaller set");
    // Removing it again changes nothing.
    let now = net.now;
    assert!(net.node(1).dns_remove(&sel, now).unwrap().is_empty());

    // h1 adds it again: newer than the tombstone, so it shows.
    let now = net.now;
    net.node(0).dns_add("aapl.orders.aex", ip("239.1.0.1"), None, now).unwrap();
    net.run(Duration::from_secs(1));
    for i in 0..3 {
        assert_eq!(dns_rows(&mut net, i), want(&["239.1.0.1", "239.1.0.2"]), "h{}", i + 1);
    }

    // By owner, from h3: only the entry that owner registered.
    let now = net.now;
    let removed = net.node(2).dns_remove(&Selector::new(None, None, Some("ctr")).unwrap(), now).unwrap();
    assert_eq!(removed.len(), 1);
    net.run(Duration::from_secs(1));
    for i in 0..3 {
        assert_eq!(dns_rows(&mut net, i), want(&["239.1.0.1"]), "h{}", i + 1);
    }

    // Tombstones are withdrawn once they are done.
    assert!(!net.node(1).own.dns_tombstones.is_empty());
    net.run(TOMBSTONE_TTL + Duration::from_secs(1));
    assert!(net.node(1).own.dns_tombstones.is_empty());
    assert!(net.node(2).own.dns_tombstones.is_empty());
    for i in 0..3 {
        assert_eq!(dns_rows(&mut net, i), want(&["239.1.0.1"]), "h{}", i + 1);
    }
}

// ---- IPAM ----

/// Allocates `owner` on node i, letting the mesh run (donations) until it succeeds.
fn allocate(net: &mut Net, i: usize, owner: &str) -> (std::net::Ipv4Addr, u8) {
    for _ in 0..100 {
        let now = net.now;
        let mut out = Out::default();
        let r = net.node(i).ipam_allocate(now, owner, &mut out);
        net.collect(i, out);
        net.settle();
        match r {
            Ok(a) => return a,
            Err(crate::ipam::IpamError::NoSpace | crate::ipam::IpamError::NotSeeded) => {
                net.run(Duration::from_millis(200))
            }
            Err(e) => panic!("allocation on h{}: {e}", i + 1),
        }
    }
    panic!("no address for {owner} on h{} after 20 s", i + 1);
}

#[test]
fn hosts_started_together_share_the_range_without_duplicates() {
    let mut net = Net::new(3);
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(5));
    let mut seen = std::collections::HashSet::new();
    for i in 0..3 {
        for c in 0..20 {
            let (a, len) = allocate(&mut net, i, &format!("ctr{c}/eth0"));
            assert_eq!(len, 12);
            assert!(crate::ipam::Range::default().offset(a).is_some(), "{a} in range");
            assert!(seen.insert(a), "{a} given twice");
        }
    }
    // Idempotent per owner, and every host agrees who owns what.
    let again = allocate(&mut net, 1, "ctr3/eth0");
    assert!(seen.contains(&again.0));
    net.run(Duration::from_secs(2));
    let spans: Vec<_> = (0..3).map(|i| net.nodes[i].as_ref().unwrap().ipam_status().spans).collect();
    assert!(spans.iter().all(|s| *s == spans[0]), "the ring converged: {spans:?}");
    assert!((0..3).all(|i| net.nodes[i].as_ref().unwrap().ipam_status().problems.is_empty()));
}

// ---- control messages in pieces ----

/// Registers `n` DNS names on node i (as `aex register` does: many names,
/// one record far bigger than a datagram).
fn register_names(net: &mut Net, i: usize, n: usize) {
    let now = net.now;
    for k in 0..n {
        let addr = IpAddr::from([239, 192, (k / 250) as u8, (k % 250) as u8 + 1]);
        net.node(i).dns_add(&format!("sym{k:03}.orders.aex"), addr, None, now).unwrap();
    }
}

/// How many of node i's DNS rows came from node `origin` (by name).
fn names_from(net: &mut Net, i: usize, origin: &str) -> usize {
    dns_rows(net, i).iter().filter(|(_, _, o)| o == origin).count()
}

#[test]
fn a_record_with_300_names_converges_through_an_underlay_that_drops_oversize_datagrams() {
    let mut net = Net::new(3);
    net.mtu = Some(1500);
    // h3 reaches h1 only through h2, so h2 must pass the big record on.
    net.blocked.insert((0, 2));
    net.bootstrap(1, 0);
    net.bootstrap(2, 1);
    net.run(Duration::from_secs(5));
    register_names(&mut net, 0, 300);
    let record = postcard::to_allocvec(&net.node(0).own).unwrap().len();
    assert!(record > 5 * 1400, "the record ({record} bytes) needs many datagrams");
    net.run(Duration::from_secs(2));
    assert_eq!(names_from(&mut net, 1, "h1"), 300, "h2 has every name of h1");
    assert_eq!(names_from(&mut net, 2, "h1"), 300, "h3 too, through h2");
    assert_eq!(net.too_big, 0, "no datagram exceeded the MTU");
    let biggest = net.wire_log.iter().map(|(_, _, d)| d.len()).max().unwrap();
    assert!(biggest + 28 <= 1500, "a {biggest}-byte datagram");
    for i in 0..3 {
        let d = net.node(i).drops();
        assert_eq!((d.get(DropReason::BadPayload), d.get(DropReason::BadGossip)), (0, 0), "h{}", i + 1);
    }
}

#[test]
fn a_big_record_converges_despite_loss_and_reordering_of_its_pieces() {
    let mut net = Net::new(3);
    net.mtu = Some(1500);
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(3));
    assert!(net.all_connected());
    net.loss = 0.1;
    net.reorder = true;
    register_names(&mut net, 0, 300);
    let mut waited = Duration::ZERO;
    while (names_from(&mut net, 1, "h1") != 300 || names_from(&mut net, 2, "h1") != 300)
        && waited < Duration::from_secs(180)
    {
        net.run(Duration::from_secs(5));
        waited += Duration::from_secs(5);
    }
    assert_eq!(names_from(&mut net, 1, "h1"), 300, "h2 after {waited:?}");
    assert_eq!(names_from(&mut net, 2, "h1"), 300, "h3 after {waited:?}");
    let incomplete: u64 = (0..3).map(|i| net.node(i).drops().get(DropReason::Incomplete)).sum();
    assert!(incomplete > 0, "some message lost a piece and was given up (then sent again)");
    assert_eq!(net.too_big, 0);
}

/// Seals `plain` from node i to its direct peer j as one DATA packet and
/// delivers it (the path a buggy or hostile peer with a session takes).
fn send_plain(net: &mut Net, i: usize, j: usize, plain: &[u8]) {
    let (to, now) = (net.key(j), net.now);
    let mut out = Out::default();
    let n = net.node(i);
    n.plain[..plain.len()].copy_from_slice(plain);
    assert!(n.seal_plain_to(now, to, plain.len(), &mut out));
    net.collect(i, out);
    net.settle();
}

/// A Fragment payload: kind byte, header, bytes.
fn piece(id: u32, total: u32, offset: u32, kind: u8, data: &[u8]) -> Vec<u8> {
    let mut p = vec![crate::wire::Kind::Fragment as u8];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&offset.to_be_bytes());
    p.push(kind);
    p.extend_from_slice(data);
    p
}

#[test]
fn hostile_pieces_are_counted_and_memory_stays_bounded() {
    use crate::wire::Kind;
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    assert!(net.all_connected());
    let bad = |net: &mut Net| net.node(0).drops().get(DropReason::BadPayload);
    let gossip = Kind::Gossip as u8;

    // Malformed headers: each one counted, nothing kept.
    let cases = [
        piece(1, 0, 0, gossip, &[1]),                            // empty message
        piece(1, 100, 90, gossip, &[0; 20]),                     // past the end
        piece(1, 100, 0, gossip, &[]),                           // no bytes
        piece(1, 70_000, 0, gossip, &[0; 10]),                   // too long
        piece(1, 100, 0, Kind::Relay as u8, &[0; 10]),           // not a kind that travels in pieces
        piece(1, 100, 0, Kind::Fragment as u8, &[0; 10]),        // nor this
        piece(1, 100, 0, 99, &[0; 10]),                          // unknown kind
        piece(1, 20, 0, Kind::Frame as u8, &[0; 10]),            // a "super-frame" shorter than its headers
        vec![Kind::Fragment as u8, 0, 0, 0, 1, 0, 0, 0, 100, 0], // truncated header
    ];
    for (n, c) in cases.iter().enumerate() {
        let before = bad(&mut net);
        send_plain(&mut net, 1, 0, c);
        assert_eq!(bad(&mut net), before + 1, "case {n}");
    }
    assert_eq!(net.node(0).reassembly.len(), 0);

    // A repeated piece, an overlapping one, and ones that disagree on the
    // length or the kind: refused, the message still completes from good pieces.
    let mut own = net.node(1).published().clone();
    own.version += 1_000_000;
    // Long enough that half of it is a piece of a plausible size.
    for i in 0..20u8 {
        let addr = std::net::IpAddr::from([10, 32, 1, i]);
        own.dns.push(crate::dns::DnsEntry { name: format!("name{i}.example"), addr, owner: None, since: 1 });
    }
    let signed = crate::gossip::SignedRecord::sign(&own, &net.node(1).cfg.keypair);
    let body = crate::gossip::sync::Message::Records(vec![signed.as_bytes().to_vec()]).encode();
    let total = body.len() as u32;
    let half = body.len() / 2;
    send_plain(&mut net, 1, 0, &piece(7, total, 0, gossip, &body[..half]));
    let before = bad(&mut net);
    send_plain(&mut net, 1, 0, &piece(7, total, 0, gossip, &body[..half])); // repeat
    send_plain(&mut net, 1, 0, &piece(7, total, 1, gossip, &body[1..half + 1])); // overlap
    send_plain(&mut net, 1, 0, &piece(7, total + 1, half as u32, gossip, &body[half..])); // other length
    send_plain(&mut net, 1, 0, &piece(7, total, half as u32, Kind::Ipam as u8, &body[half..])); // other kind
    assert_eq!(bad(&mut net), before + 4);
    send_plain(&mut net, 1, 0, &piece(7, total, half as u32, gossip, &body[half..]));
    assert_eq!(net.node(0).reassembly.len(), 0, "whole");
    let key1 = net.key(1);
    assert!(net.node(0).record(&key1).is_some_and(|r| r.version == own_version(&body)), "merged");

    // Control pieces through a relay are refused (control is direct only),
    // even sealed end to end by their real source; garbage that
    // reassembles is a counted bad gossip message.
    let relayed = relay::sealed_by(&mut net, 1, 1, 0, &piece(8, 3000, 0, gossip, &[0; 1000]));
    let before = bad(&mut net);
    send_plain(&mut net, 1, 0, &relayed);
    assert_eq!(bad(&mut net), before + 1);
    assert_eq!(net.node(0).drops().get(DropReason::RelayForged), 0, "it did open");
    let garbage = vec![0xffu8; 3000];
    send_plain(&mut net, 1, 0, &piece(9, 3000, 0, gossip, &garbage[..1500]));
    send_plain(&mut net, 1, 0, &piece(9, 3000, 1500, gossip, &garbage[1500..]));
    assert_eq!(net.node(0).drops().get(DropReason::BadGossip), 1);

    // A flood of messages that never complete, each claiming the largest
    // length: a peer holds at most 4 control messages in reassembly...
    let incomplete = net.node(0).drops().get(DropReason::Incomplete);
    for id in 100..400 {
        send_plain(&mut net, 1, 0, &piece(id, offload::MAX_MESSAGE as u32, 0, gossip, &[0; offload::MIN_PIECE]));
    }
    assert_eq!(net.node(0).reassembly.len(), 4);
    assert_eq!(net.node(0).drops().get(DropReason::Incomplete), incomplete + 296, "each eviction counted");
    // ...and all peers together at most MAX_PARTIAL_TOTAL (fake sources
    // and relays: on_fragment trusts its caller for who sent it).
    let now = net.now;
    let mut out = Out::default();
    for k in 0..1000u32 {
        let src = StaticKeypair::generate().public;
        let p = piece(k, offload::MAX_MESSAGE as u32, 0, Kind::Frame as u8, &[0; offload::MIN_PIECE]);
        net.node(0).on_fragment(now, src, src, &p[1..], false, &mut out);
    }
    let r = &net.node(0).reassembly;
    assert_eq!(r.len(), offload::MAX_PARTIAL_TOTAL);
    assert!(r.bytes() <= offload::MAX_PARTIAL_TOTAL * offload::MAX_MESSAGE);
    assert!(out.sent.is_empty() && out.delivered.is_empty() && out.offloaded.is_empty());
    // Everything left times out, counted, and the link still works.
    net.run(Duration::from_secs(2));
    assert_eq!(net.node(0).reassembly.len(), 0);
    net.send_frame(1, BROADCAST, 1);
    assert_eq!(net.markers(0), vec![1]);
    assert_eq!(net.state(0, 1), Some(PeerState::Connected));
}

fn own_version(body: &[u8]) -> u64 {
    let Some(crate::gossip::sync::Message::Records(r)) = crate::gossip::sync::Message::decode(body) else {
        panic!("a records message")
    };
    crate::gossip::SignedRecord::peek(&r[0]).unwrap().version
}

#[test]
fn any_control_message_too_big_for_a_datagram_goes_in_pieces() {
    use crate::wire::Kind;
    let mut net = Net::new(2);
    net.mtu = Some(1500);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    // A large IPAM-kind message (an odd one: it does not decode) arrives whole.
    let (to, now) = (net.key(0), net.now);
    let mut out = Out::default();
    net.node(1).send_control(now, to, Kind::Ipam, &vec![0xee; 5000], &mut out);
    assert!(out.sent.len() >= 4, "{} datagrams", out.sent.len());
    assert!(out.sent.iter().all(|(_, d)| d.len() + 28 <= 1500));
    net.collect(1, out);
    net.settle();
    assert_eq!(net.too_big, 0);
    assert_eq!(net.node(0).reassembly.len(), 0, "reassembled...");
    assert_eq!(net.node(0).drops().get(DropReason::BadPayload), 1, "...and handed to IPAM, which refused it");
    // Larger than any message may be: refused at the sender, counted.
    let mut out = Out::default();
    net.node(1).send_control(now, to, Kind::Gossip, &vec![0; 70_000], &mut out);
    assert!(out.sent.is_empty());
    assert_eq!(net.node(1).drops().get(DropReason::Oversize), 1);
}

mod fec;
mod flood;
mod formation;
mod info;
mod ipam_records;
mod limits;
mod liveness;
mod lossy;
mod relay;
mod trust;
