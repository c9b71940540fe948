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

/// Polls node i's events until there are none.
fn events(net: &mut Net, i: usize) -> Vec<Event> {
    std::iter::from_fn(|| net.node(i).poll_event()).collect()
}

// ---- frames and messages the test files build ----

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

/// A 60 000-byte "super-frame" from node i's member to node j's MAC.
fn super_frame(i: usize, j: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..60_000u32).map(|n| (n % 251) as u8).collect();
    f[0..6].copy_from_slice(&mac_of(j));
    f[6..12].copy_from_slice(&mac_of(i));
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

/// (name, addr, origin name) of every entry node i's DNS view shows.
fn dns_rows(net: &mut Net, i: usize) -> Vec<(String, String, String)> {
    net.node(i).dns_view().into_iter().map(|v| (v.name, v.addr.to_string(), v.origin_name)).collect()
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

mod datagrams;
mod dns;
mod fec;
mod flood;
mod formation;
mod info;
mod ipam_alloc;
mod ipam_records;
mod limits;
mod liveness;
mod lossy;
mod mesh;
mod multicast;
mod pieces;
mod relay;
mod trust;
