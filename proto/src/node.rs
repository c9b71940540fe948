//! The mesh node: everything one host does, as a state machine.
//!
//! The daemon calls [`Node::handle_datagram`] for each UDP datagram,
//! [`Node::handle_frame`] for each frame read from the TAP, and
//! [`Node::handle_timeout`] when [`Node::poll_timeout`] has passed. The node
//! answers through an [`Io`]: datagrams to send, frames to deliver. It owns
//! its scratch buffers, so the per-packet path allocates nothing.
//!
//! Submodules split it by concern: `handshake` (Noise handshakes and
//! session installation), `forward` (frames from the TAP out to peers,
//! bundling, keepalives), `receive` (DATA packets in, relay), `offload`
//! (messages too big for a datagram in pieces: super-frames, large control
//! messages such as a gossip record with many DNS names),
//! `multicast` (snooping, the querier, pruned replication), `names` (the
//! overlay DNS entries), `timers` (the periodic work) and `info` (snapshots
//! for the API).

mod addresses;
mod forward;
mod handshake;
mod info;
mod multicast;
mod names;
mod offload;
mod receive;
mod timers;

use crate::gossip::{GossipTable, PeerRecord};
use crate::groups::{LocalGroups, RemoteIndex};
use crate::keys::{NetworkKey, PublicKey, ShortId, StaticKeypair};
use crate::mac::MacTable;
use crate::ratelimit::HandshakeLimiter;
use crate::session::{Handshake, Session};
use crate::stats::{DropReason, Drops};
use crate::wire::{self, Packet};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

pub use weavers_api::{HandshakeCounts, TrafficCounters};

/// Where the node's output goes.
pub trait Io {
    /// Sends one datagram on the underlay.
    fn send(&mut self, to: SocketAddr, datagram: &[u8]);
    /// Writes one Ethernet frame to the local bridge (the TAP).
    fn deliver(&mut self, frame: &[u8]);
    /// Writes a reassembled super-frame with its virtio-net header, for a
    /// TAP with offloads (`IFF_VNET_HDR`).
    fn deliver_offloaded(&mut self, vnet_hdr: &[u8; crate::vnet::VNET_HDR_LEN], frame: &[u8]);
}

/// Timer settings. The defaults are what a deployment uses; tests shorten them.
#[derive(Clone, Debug)]
pub struct Timers {
    /// How often the node does its periodic work.
    pub tick: Duration,
    /// Keepalive (ping) interval on an idle or busy session.
    pub keepalive: Duration,
    /// A peer silent this long is no longer connected.
    pub dead_after: Duration,
    /// Start a new handshake when the current session is this old.
    pub rekey_after: Duration,
    /// Never use a session older than this.
    pub reject_after: Duration,
    /// Give up on a handshake message unanswered this long.
    pub handshake_timeout: Duration,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// Full gossip exchange with each connected peer this often.
    pub gossip_interval: Duration,
    /// Raise the own record's version this often even without change.
    pub refresh_interval: Duration,
    /// Forget a host whose record has not advanced this long.
    pub forget_after: Duration,
    /// MAC table ageing.
    pub mac_ageing: Duration,
    /// IGMP/MLD general query interval of this host's querier.
    pub query_interval: Duration,
    /// IGMP/MLD robustness variable.
    pub robustness: u32,
}

impl Timers {
    /// How long members have to answer a query: 10 s, or half the query
    /// interval when that is shorter.
    pub fn query_response_interval(&self) -> Duration {
        Duration::from_secs(10).min(self.query_interval / 2)
    }

    /// How long a membership lasts without a new report (RFC 3376 8.4).
    pub fn membership_interval(&self) -> Duration {
        self.query_interval * self.robustness + self.query_response_interval()
    }
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            tick: Duration::from_millis(250),
            keepalive: Duration::from_secs(5),
            dead_after: Duration::from_secs(15),
            rekey_after: Duration::from_secs(120),
            reject_after: Duration::from_secs(180),
            handshake_timeout: Duration::from_secs(2),
            max_backoff: Duration::from_secs(30),
            gossip_interval: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(60),
            forget_after: Duration::from_secs(600),
            mac_ageing: Duration::from_secs(300),
            query_interval: Duration::from_secs(125),
            robustness: 2,
        }
    }
}

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    pub name: String,
    pub keypair: StaticKeypair,
    pub network_key: NetworkKey,
    /// Largest frame payload carried (the overlay MTU, without the 14-byte
    /// Ethernet header).
    pub overlay_mtu: usize,
    pub timers: Timers,
    /// Wall-clock milliseconds at start: the base of gossip versions and
    /// handshake timestamps, so they keep growing across restarts.
    pub unix_ms: u64,
    /// Seed for session indices and jitter.
    pub seed: u64,
    /// The range IPAM shares out (`--ipalloc-range`).
    pub ipam_range: crate::ipam::Range,
}

/// Largest plaintext: a relayed maximum datagram. Scratch buffers hold this.
const BUF_LEN: usize = wire::MAX_DATAGRAM + 64;
/// Hop limit on relayed frames.
const RELAY_TTL: u8 = 8;

/// A host this node knows, by its key.
#[derive(Debug)]
struct Peer {
    key: PublicKey,
    name: String,
    /// The underlay address of its direct session (or the last one tried).
    endpoint: Option<SocketAddr>,
    /// Other addresses it might be reached at (from gossip).
    candidates: Vec<SocketAddr>,
    /// Newest usable session.
    current: Option<Session>,
    /// The one before, kept until it expires so in-flight packets open.
    previous: Option<Session>,
    /// A responder-side IK session not yet confirmed by the initiator.
    next: Option<Session>,
    /// Last authenticated packet from it.
    last_recv: Option<Instant>,
    last_ping: Option<Instant>,
    rtt: Option<Duration>,
    /// Local index of our handshake in flight to it.
    in_flight: Option<u32>,
    attempts: u32,
    next_attempt: Instant,
    /// Highest handshake timestamp seen from it (IK replay defence).
    last_hs_timestamp: u64,
    /// Frames queued for it (plaintext of one DATA packet), sent on flush.
    bundle: Vec<u8>,
    traffic: TrafficCounters,
}

impl Peer {
    fn new(key: PublicKey, now: Instant) -> Self {
        Peer {
            key,
            name: String::new(),
            endpoint: None,
            candidates: Vec::new(),
            current: None,
            previous: None,
            next: None,
            last_recv: None,
            last_ping: None,
            rtt: None,
            in_flight: None,
            attempts: 0,
            next_attempt: now,
            last_hs_timestamp: 0,
            bundle: Vec::new(),
            traffic: TrafficCounters::default(),
        }
    }

    /// A live direct session: usable and heard from recently.
    fn is_connected(&self, now: Instant, t: &Timers) -> bool {
        self.current.is_some() && self.last_recv.is_some_and(|r| now.saturating_duration_since(r) < t.dead_after)
    }

    fn session_mut(&mut self, local_index: u32) -> Option<(&mut Session, Slot)> {
        for (slot, s) in
            [(Slot::Current, &mut self.current), (Slot::Previous, &mut self.previous), (Slot::Next, &mut self.next)]
        {
            if let Some(s) = s.as_mut().filter(|s| s.local_index == local_index) {
                return Some((s, slot));
            }
        }
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Current,
    Previous,
    Next,
}

/// A configured `--peer` address, whose key is learned by an XX handshake.
#[derive(Debug)]
struct Bootstrap {
    addr: SocketAddr,
    key: Option<PublicKey>,
    in_flight: Option<u32>,
    attempts: u32,
    next_attempt: Instant,
}

/// Who an outgoing handshake is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Peer(PublicKey),
    Bootstrap(SocketAddr),
}

#[derive(Debug)]
struct Outgoing {
    hs: Handshake,
    target: Target,
}

#[derive(Debug)]
struct Incoming {
    hs: Handshake,
    remote_index: u32,
}

/// The payload inside handshake messages that carry one.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct HandshakePayload {
    /// Sender's clock (milliseconds, grows across restarts).
    timestamp: u64,
    name: String,
}

/// One host of the mesh, without I/O.
pub struct Node {
    cfg: Config,
    start: Instant,
    last_stamp: u64,
    rng: StdRng,
    peers: HashMap<PublicKey, Peer>,
    by_short: HashMap<ShortId, PublicKey>,
    /// Local session index to the peer holding it.
    index: HashMap<u32, PublicKey>,
    outgoing: HashMap<u32, Outgoing>,
    incoming: HashMap<u32, Incoming>,
    bootstraps: Vec<Bootstrap>,
    own: PeerRecord,
    own_dirty: bool,
    /// The own record's version last pushed to every peer.
    own_pushed: u64,
    own_refreshed: Instant,
    gossip: GossipTable,
    /// Records to push to connected peers soon.
    gossip_pending: Vec<PublicKey>,
    last_full_gossip: Instant,
    hops: HashMap<PublicKey, PublicKey>,
    routes_dirty: bool,
    macs: MacTable,
    local_groups: LocalGroups,
    remote_groups: RemoteIndex,
    remote_groups_dirty: bool,
    group_counters: HashMap<IpAddr, multicast::Counters>,
    querier: multicast::Querier,
    /// Scratch list of a frame's destinations (no allocation per frame).
    targets: Vec<PublicKey>,
    /// Peers with frames queued in their bundle.
    bundled: Vec<PublicKey>,
    limiter: HandshakeLimiter,
    drops: Drops,
    handshakes: HandshakeCounts,
    next_tick: Instant,
    /// Set when the set of known peers changed (the daemon persists it).
    peers_changed: bool,
    /// Outgoing plaintext is built here...
    plain: Box<[u8]>,
    /// ...and sealed here.
    sealed: Box<[u8]>,
    /// Incoming plaintext.
    rx: Box<[u8]>,
    /// Super-frames being reassembled, and the next id for ours.
    reassembly: offload::Reassembly,
    /// Overlay DNS entries.
    names: names::NameState,
    /// The shared address range and this host's allocations.
    ipam: addresses::IpamState,
}

impl Node {
    /// A node with no peers yet.
    pub fn new(cfg: Config, now: Instant) -> Self {
        let own = PeerRecord {
            key: cfg.keypair.public,
            version: cfg.unix_ms,
            name: cfg.name.clone(),
            overlay_addr: None,
            connections: Vec::new(),
            groups: Vec::new(),
            dns: Vec::new(),
            dns_tombstones: Vec::new(),
            ipam: None,
        };
        Node {
            start: now,
            last_stamp: cfg.unix_ms,
            rng: StdRng::seed_from_u64(cfg.seed),
            peers: HashMap::new(),
            by_short: HashMap::new(),
            index: HashMap::new(),
            outgoing: HashMap::new(),
            incoming: HashMap::new(),
            bootstraps: Vec::new(),
            own,
            own_dirty: true,
            own_pushed: 0,
            own_refreshed: now,
            gossip: GossipTable::new(),
            gossip_pending: Vec::new(),
            last_full_gossip: now,
            hops: HashMap::new(),
            routes_dirty: true,
            macs: MacTable::new(cfg.timers.mac_ageing),
            local_groups: LocalGroups::new(),
            remote_groups: RemoteIndex::default(),
            remote_groups_dirty: false,
            group_counters: HashMap::new(),
            querier: multicast::Querier::new(&cfg.keypair.public, now),
            targets: Vec::new(),
            bundled: Vec::new(),
            limiter: HandshakeLimiter::new(5.0, 20.0, 500.0, now),
            drops: Drops::default(),
            handshakes: HandshakeCounts::default(),
            next_tick: now,
            peers_changed: false,
            plain: vec![0u8; BUF_LEN].into_boxed_slice(),
            sealed: vec![0u8; BUF_LEN].into_boxed_slice(),
            rx: vec![0u8; BUF_LEN].into_boxed_slice(),
            reassembly: offload::Reassembly::default(),
            ipam: addresses::IpamState::new(cfg.ipam_range),
            names: names::NameState::default(),
            cfg,
        }
    }

    /// This host's public key.
    pub fn public_key(&self) -> PublicKey {
        self.cfg.keypair.public
    }

    /// This host's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The overlay MTU this node enforces.
    pub fn overlay_mtu(&self) -> usize {
        self.cfg.overlay_mtu
    }

    /// Connects to `addr` (a `--peer` or `weavers peer add`), learning the
    /// key by an XX handshake. Returns false if it was already configured.
    pub fn add_bootstrap(&mut self, addr: SocketAddr, now: Instant) -> bool {
        if self.bootstraps.iter().any(|b| b.addr == addr) {
            return false;
        }
        self.bootstraps.push(Bootstrap { addr, key: None, in_flight: None, attempts: 0, next_attempt: now });
        self.next_tick = now;
        true
    }

    /// Forgets a configured address and the peer it led to (gossip may
    /// bring that peer back if others still reach it). Returns whether it
    /// was configured.
    pub fn remove_bootstrap(&mut self, addr: SocketAddr) -> bool {
        let Some(pos) = self.bootstraps.iter().position(|b| b.addr == addr) else { return false };
        let b = self.bootstraps.remove(pos);
        if let Some(i) = b.in_flight {
            self.outgoing.remove(&i);
        }
        if let Some(key) = b.key {
            self.drop_peer(&key);
        }
        true
    }

    /// Configured addresses.
    pub fn bootstraps(&self) -> Vec<SocketAddr> {
        self.bootstraps.iter().map(|b| b.addr).collect()
    }

    /// Adds a host known from an earlier run (its key and last endpoint),
    /// reconnected by an IK handshake.
    pub fn add_known_peer(&mut self, key: PublicKey, endpoint: SocketAddr, name: &str, now: Instant) {
        if key == self.public_key() {
            return;
        }
        let p = self.peer_entry(key, now);
        if p.endpoint.is_none() {
            p.endpoint = Some(endpoint);
        }
        if p.name.is_empty() {
            p.name = name.chars().take(crate::gossip::MAX_NAME_LEN).collect();
        }
    }

    /// Hosts worth remembering across a restart: key, endpoint, name.
    pub fn known_peers(&self) -> Vec<(PublicKey, SocketAddr, String)> {
        self.peers.values().filter_map(|p| Some((p.key, p.endpoint?, p.name.clone()))).collect()
    }

    /// True once after the set of known peers changed.
    pub fn take_peers_changed(&mut self) -> bool {
        std::mem::take(&mut self.peers_changed)
    }

    /// Announces (or withdraws) this host's overlay address in gossip.
    pub fn set_overlay_addr(&mut self, addr: Option<(IpAddr, u8)>) {
        if self.own.overlay_addr != addr {
            self.own.overlay_addr = addr;
            self.own_dirty = true;
        }
    }

    /// Overlay addresses other hosts announced.
    pub fn announced_overlay_addrs(&self) -> Vec<(IpAddr, u8)> {
        self.gossip.records().filter_map(|r| r.overlay_addr).collect()
    }

    /// When [`Node::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    /// Handles one datagram from the underlay.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8], io: &mut impl Io) {
        let packet = match Packet::parse(datagram) {
            Ok(p) => p,
            Err(_) => return self.drops.count(DropReason::Malformed),
        };
        match packet {
            Packet::HandshakeInit { sender, pattern, noise } => self.on_init(now, from, sender, pattern, noise, io),
            Packet::HandshakeResponse { sender, receiver, noise } => {
                self.on_response(now, from, sender, receiver, noise, io)
            }
            Packet::HandshakeFinal { sender, receiver, noise } => self.on_final(now, from, sender, receiver, noise, io),
            Packet::Data { receiver, counter, ciphertext } => {
                self.on_data(now, from, receiver, counter, ciphertext, io)
            }
        }
    }

    /// Dropped packets so far.
    pub fn drops(&self) -> &Drops {
        &self.drops
    }

    /// Counts drops the daemon saw (e.g. a full socket buffer).
    pub fn count_drops(&mut self, reason: DropReason, n: u64) {
        self.drops.add(reason, n);
    }

    /// Handshake counters so far.
    pub fn handshakes(&self) -> HandshakeCounts {
        self.handshakes
    }

    // ---- helpers shared by the submodules ----

    fn peer_entry(&mut self, key: PublicKey, now: Instant) -> &mut Peer {
        if !self.peers.contains_key(&key) {
            self.by_short.insert(key.short_id(), key);
            self.peers_changed = true;
            self.routes_dirty = true;
        }
        self.peers.entry(key).or_insert_with(|| Peer::new(key, now))
    }

    fn drop_peer(&mut self, key: &PublicKey) {
        if let Some(p) = self.peers.remove(key) {
            for s in [&p.current, &p.previous, &p.next].into_iter().flatten() {
                self.index.remove(&s.local_index);
            }
            if let Some(i) = p.in_flight {
                self.outgoing.remove(&i);
            }
            self.by_short.remove(&key.short_id());
            self.macs.sweep(self.start, |k| k == key);
            self.peers_changed = true;
            self.routes_dirty = true;
            self.own_dirty = true;
            self.remote_groups_dirty = true;
        }
    }

    /// A session index not in use.
    fn fresh_index(&mut self) -> u32 {
        loop {
            let i: u32 = self.rng.gen();
            if i != 0
                && !self.index.contains_key(&i)
                && !self.outgoing.contains_key(&i)
                && !self.incoming.contains_key(&i)
            {
                return i;
            }
        }
    }

    /// Milliseconds on this host's clock that only grow (across restarts too).
    fn stamp(&mut self, now: Instant) -> u64 {
        let t = self.cfg.unix_ms + now.saturating_duration_since(self.start).as_millis() as u64;
        self.last_stamp = t.max(self.last_stamp + 1);
        self.last_stamp
    }
}

#[cfg(test)]
mod tests;
