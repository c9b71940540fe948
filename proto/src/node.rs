//! The mesh node: everything one host does, as a state machine.
//!
//! The daemon calls [`Node::handle_datagram`] for each UDP datagram,
//! [`Node::handle_frame`] for each frame read from the TAP (and
//! [`Node::flush`] after each batch of them), and [`Node::handle_timeout`]
//! when [`Node::poll_timeout`] has passed. The node answers through an
//! [`Io`]: datagrams to send, frames to deliver; and through
//! [`Node::poll_event`]: state the daemon should save or rebuild. It owns
//! its scratch buffers, so the per-packet path allocates nothing. It has no
//! clock of its own: every call that needs the time takes `now`, and
//! [`Config::unix_ms`] ties that to the wall clock.
//!
//! This file holds the node's state, its configuration and its entry
//! points. Each concern has its own submodule; each uses (items and `Node`
//! methods) only this file and the submodules listed before it, so there
//! is no cycle between them. The payload encodings are in [`crate::wire`].
//!
//! - `peer`: the peer table: each peer's session slots (installing a new
//!   session, promoting a confirmed one), sealing on the current session,
//!   the local session indices, the configured bootstrap addresses.
//! - `routes`: next hops, direct or through a relay.
//! - `relay`: relaying: wrapping a frame for a relay on send, sealed end
//!   to end for its destination; passing a relayed payload on unopened, or
//!   opening it when it is for this host.
//! - `offload`: reassembling messages that came in pieces (super-frames,
//!   control messages too big for a datagram).
//! - `lossy`: which peers' paths lose packets, as TCP retransmissions
//!   sent to them show.
//! - `send`: payloads out to peers: frames bundled per peer and flushed,
//!   relayed or cut in pieces (super-frames to lossy peers into plain TCP
//!   segments); control messages; keepalive pings.
//! - `trust`: network-authority mode: peers' certificates, revocations,
//!   the permissions they give.
//! - `multicast`: snooping, the querier, pruned replication, group counters.
//! - `ipam`: the shared address ring and this host's allocations.
//! - `dns`: the overlay DNS entries.
//! - `gossip`: the own record (built, signed, published), what other
//!   hosts' records change here, forgetting hosts gone for long.
//! - `liveness`: which peers this host monitors, probes, suspicions, and
//!   what a peer found down changes.
//! - `handshake`: Noise handshakes, started and answered, and the sessions
//!   they install; mac1, budgets and cookies before any of it.
//! - `recv`: DATA packets in: opened, their payloads dispatched, frames
//!   delivered to the TAP.
//! - `timers`: the periodic connection upkeep: handshake timeouts and
//!   backoff, session expiry, dialling, rekeys.
//! - `info`: snapshots for the API.

mod dns;
mod fec;
mod gossip;
mod handshake;
mod info;
mod ipam;
mod liveness;
mod lossy;
mod multicast;
mod offload;
mod peer;
mod recv;
mod relay;
mod routes;
mod send;
mod timers;
mod trust;

use crate::gossip::record::{PeerRecord, SignedRecord};
use crate::gossip::sync::{Gossip, SyncConfig};
use crate::groups::{LocalGroups, RemoteIndex};
use crate::keys::{NetworkKey, PublicKey, ShortId, StaticKeypair};
use crate::liveness::{LocalHealth, ProbeConfig};
use crate::mac::{self, Mac, MacTable};
use crate::snoop::{self, FrameClass};
use crate::stats::{DropReason, Drops};
use crate::vnet::VNET_HDR_LEN;
use crate::wire::{self, Packet, ETH_HEADER_LEN};
use peer::{Bootstrap, Indices, Peer};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

pub(crate) use handshake::HandshakePayload;
pub use info::Probe;
pub(crate) use offload::{Reassembly, MAX_CONTROL_PER_PEER, MAX_FRAMES_PER_PEER, MAX_MESSAGE, MAX_PARTIAL_TOTAL};
pub use peer::{KnownPeer, MAX_PEERS};
pub use trust::{Trust, DIGEST_INTERVAL, MAX_REVOCATIONS};
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
    /// Liveness probing (who is pinged how often, when a peer is down).
    pub probe: ProbeConfig,
    /// Start a new handshake when the current session is this old.
    pub rekey_after: Duration,
    /// Never use a session older than this.
    pub reject_after: Duration,
    /// Give up on a handshake message unanswered this long.
    pub handshake_timeout: Duration,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// One anti-entropy round (a digest to one random peer) this often.
    pub gossip_interval: Duration,
    /// Raise the own record's version this often even without change (a
    /// safety net: anti-entropy keeps records current).
    pub refresh_interval: Duration,
    /// Forget a host this host has not reached (directly or through a
    /// relay) and whose record has not advanced for this long.
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
            tick: Duration::from_millis(100),
            probe: ProbeConfig::default(),
            rekey_after: Duration::from_secs(120),
            reject_after: Duration::from_secs(180),
            handshake_timeout: Duration::from_secs(2),
            max_backoff: Duration::from_secs(30),
            gossip_interval: Duration::from_secs(2),
            refresh_interval: Duration::from_secs(1800),
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
    /// This host's name, announced in handshakes and gossip.
    pub name: String,
    /// This host's static key pair: its identity in the mesh.
    pub keypair: StaticKeypair,
    /// The key from the mesh password, mixed into every handshake.
    pub network_key: NetworkKey,
    /// Largest frame payload carried (the overlay MTU, without the 14-byte
    /// Ethernet header).
    pub overlay_mtu: usize,
    /// Timer settings.
    pub timers: Timers,
    /// Wall-clock milliseconds at start: the base of gossip versions and
    /// handshake timestamps, so they keep growing across restarts.
    pub unix_ms: u64,
    /// Seed for session indices, jitter and the random bits of the relay
    /// epoch ([`crate::e2e::epoch`]): fresh at every start.
    pub seed: u64,
    /// The range IPAM shares out (`--ipalloc-range`).
    pub ipam_range: crate::ipam::Range,
    /// Network-authority mode (`--ca`, `--cert`): peers need a valid
    /// certificate, and their permissions apply. `None`: password mode,
    /// every holder of the network key is trusted.
    pub trust: Option<Trust>,
}

/// Something the daemon should act on, from [`Node::poll_event`]. Each is
/// queued at most once until it is polled: it says "changed since you last
/// heard", not how often.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A peer was learned, dropped or (re)connected, or a handshake from it
    /// was accepted: save [`Node::known_peers`] (peers.json), so a restart
    /// reconnects and still refuses replayed handshakes.
    PeersChanged,
    /// The IPAM ring or this host's allocations changed: save
    /// [`Node::ipam_snapshot`] (ipam.json). Space this host gives away
    /// leaves at the next [`Node::handle_timeout`], so saving before that
    /// keeps it from being handed out twice.
    IpamChanged,
    /// The entries [`Node::dns_view`] shows may have changed (any host's):
    /// rebuild the DNS server's table from it. Also queued once at start.
    DnsChanged,
    /// This host's own DNS entries changed: save [`Node::dns_own_entries`]
    /// (dns.json).
    OwnDnsChanged,
    /// A new revocation was taken: save [`Node::revocations`].
    RevocationsChanged,
}

/// Mixed into the seed for the random bits of the relay epoch (a stream of
/// its own, so the node's other draws stay as they were).
const RELAY_EPOCH_SEED: u64 = 0x7265_6c61_7965_706f;
/// Mixed into the seed for the key of the flow table's hash.
const FLOW_HASH_SEED: u64 = 0x666c_6f77_7461_626c;

/// How often the slow periodic work runs (see `Node::next_housekeeping`).
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// Largest plaintext: a relayed maximum datagram. Scratch buffers hold this.
const BUF_LEN: usize = wire::MAX_DATAGRAM + 64;

/// One host of the mesh, without I/O.
pub struct Node {
    cfg: Config,
    /// `now` when the node was made: the base of [`Node::stamp`] and ping tokens.
    start: Instant,
    last_stamp: u64,
    rng: StdRng,
    next_tick: Instant,
    /// When [`Node::expire_sessions`] next scans (see there).
    next_session_scan: Instant,
    /// When the slow periodic work (forgetting hosts gone for long, MAC
    /// ageing) next runs: every [`HOUSEKEEPING`], not every tick, since it
    /// scans tables as large as the mesh.
    next_housekeeping: Instant,
    /// Events not polled yet, each at most once.
    events: VecDeque<Event>,
    drops: Drops,
    /// Times a connected peer was declared down by liveness.
    peers_down: u64,

    // ---- peers and handshakes (`peer`, `handshake`, `timers`) ----
    peers: HashMap<PublicKey, Peer>,
    by_short: HashMap<ShortId, PublicKey>,
    /// Local indices of sessions and handshakes in flight.
    indices: Indices,
    bootstraps: Vec<Bootstrap>,
    /// MAC keys, budgets and cookies: what keeps handshakes cheap.
    guard: handshake::Guard,
    handshakes: HandshakeCounts,
    /// Network-authority mode's state (`trust`).
    trust: Option<trust::TrustState>,

    // ---- gossip (`gossip`) ----
    /// The own record being built (published when it differs).
    own: PeerRecord,
    /// The group filters members want, before fitting into `own`.
    own_groups: gossip::OwnGroups,
    /// Publish the own record at the next chance even if unchanged (a
    /// newer version of it was seen).
    force_publish: bool,
    /// When the own record was last published.
    own_refreshed: Instant,
    /// Every host's signed record, this one's too, and the protocol.
    gossip: Gossip,
    /// Addresses peers see this host at.
    observed: gossip::Observed,
    /// The table's DNS change count the daemon was last told about.
    dns_changes_seen: u64,
    /// Peers to ping at the next chance (a record said they cannot reach us).
    pending_pings: Vec<PublicKey>,

    // ---- liveness (`liveness`) ----
    /// The peers this host monitors.
    monitored: Vec<PublicKey>,
    /// This host's own health as a prober (see [`crate::liveness`]).
    health: LocalHealth,
    /// Times this host's tick ran [`crate::liveness::STALL`] or more late.
    stalls: u64,
    /// The set of connected peers changed: recompute `monitored`.
    members_dirty: bool,

    // ---- routes (`routes`) ----
    hops: HashMap<PublicKey, PublicKey>,
    routes_dirty: bool,

    // ---- frames (`send`, `recv`, `relay`, `offload`) ----
    macs: MacTable,
    /// Scratch list of a frame's destinations (no allocation per frame).
    targets: Vec<PublicKey>,
    /// Peers with frames queued in their bundle.
    bundled: Vec<PublicKey>,
    /// The id of the next message sent in pieces.
    next_message_id: u32,
    /// Outgoing plaintext is built here...
    plain: Box<[u8]>,
    /// ...and sealed here.
    sealed: Box<[u8]>,
    /// Incoming plaintext.
    rx: Box<[u8]>,
    /// Messages that came in pieces, being put together.
    reassembly: offload::Reassembly,
    /// End-to-end keys of relayed payloads.
    relay_keys: crate::e2e::RelayKeys,
    /// TCP flows sent to peers, watched for retransmissions (`lossy`).
    flows: crate::flows::FlowTable,
    /// One segment of a super-frame being cut (`send`).
    seg_buf: Box<[u8]>,
    seg_stats: lossy::SegStats,
    /// Peers with a parity group open, closed at the next flush (`fec`).
    fec_open: Vec<PublicKey>,
    /// A parity body being built, and a datagram rebuilt from one
    /// (allocated at first use: most nodes never see a lossy path).
    fec_buf: Vec<u8>,
    /// Parities held until the batch ends (full groups': at most
    /// [`crate::fec::DEFERRED`]): their peer and what was owed, the
    /// payloads (kind byte and body) one after another in
    /// `fec_deferred_payloads`.
    fec_deferred: Vec<(PublicKey, crate::fec::Owed)>,
    fec_deferred_payloads: Vec<u8>,
    fec_out: Vec<u8>,
    fec_stats: fec::FecStats,
    /// TCP segments from peers being joined into a super-frame (`recv`).
    gro: crate::coalesce::Coalescer,

    // ---- multicast (`multicast`) ----
    local_groups: LocalGroups,
    remote_groups: RemoteIndex,
    remote_groups_dirty: bool,
    group_counters: HashMap<IpAddr, multicast::Counters>,
    querier: multicast::Querier,

    // ---- services carried in gossip (`dns`, `ipam`) ----
    /// Overlay DNS entries.
    dns: dns::DnsState,
    /// The shared address range and this host's allocations.
    ipam: ipam::IpamState,
}

impl Node {
    /// A node with no peers yet.
    pub fn new(cfg: Config, now: Instant) -> Self {
        let own = PeerRecord::new(cfg.keypair.public, cfg.unix_ms, &cfg.name);
        let signed = SignedRecord::sign(&own, &cfg.keypair);
        let sync = SyncConfig { interval: cfg.timers.gossip_interval };
        let gossip = Gossip::new((signed, own.clone()), sync, cfg.seed ^ 0x9e37_79b9, now);
        Node {
            start: now,
            last_stamp: cfg.unix_ms,
            rng: StdRng::seed_from_u64(cfg.seed),
            next_tick: now,
            next_session_scan: now,
            next_housekeeping: now,
            events: VecDeque::from([Event::DnsChanged]),
            drops: Drops::default(),
            peers_down: 0,
            peers: HashMap::new(),
            by_short: HashMap::new(),
            indices: Indices::default(),
            bootstraps: Vec::new(),
            guard: handshake::Guard::new(&cfg.network_key, &cfg.keypair.public, now),
            handshakes: HandshakeCounts::default(),
            trust: cfg.trust.as_ref().map(|t| trust::TrustState::new(t, now)),
            own,
            own_groups: gossip::OwnGroups::default(),
            force_publish: false,
            own_refreshed: now,
            gossip,
            observed: gossip::Observed::default(),
            dns_changes_seen: 0,
            pending_pings: Vec::new(),
            monitored: Vec::new(),
            health: LocalHealth::default(),
            stalls: 0,
            members_dirty: true,
            hops: HashMap::new(),
            routes_dirty: true,
            macs: MacTable::new(cfg.timers.mac_ageing),
            targets: Vec::new(),
            bundled: Vec::new(),
            next_message_id: 0,
            plain: vec![0u8; BUF_LEN].into_boxed_slice(),
            sealed: vec![0u8; BUF_LEN].into_boxed_slice(),
            rx: vec![0u8; BUF_LEN].into_boxed_slice(),
            reassembly: offload::Reassembly::default(),
            relay_keys: crate::e2e::RelayKeys::new(
                &cfg.keypair,
                crate::e2e::epoch(cfg.unix_ms, StdRng::seed_from_u64(cfg.seed ^ RELAY_EPOCH_SEED).gen()),
            ),
            flows: crate::flows::FlowTable::new(StdRng::seed_from_u64(cfg.seed ^ FLOW_HASH_SEED).gen()),
            seg_buf: vec![0u8; cfg.overlay_mtu + ETH_HEADER_LEN].into_boxed_slice(),
            seg_stats: lossy::SegStats::default(),
            fec_open: Vec::new(),
            fec_buf: Vec::new(),
            fec_deferred: Vec::new(),
            fec_deferred_payloads: Vec::new(),
            fec_out: Vec::new(),
            fec_stats: fec::FecStats::default(),
            gro: crate::coalesce::Coalescer::default(),
            local_groups: LocalGroups::new(),
            remote_groups: RemoteIndex::default(),
            remote_groups_dirty: false,
            group_counters: HashMap::new(),
            querier: multicast::Querier::new(&cfg.keypair.public, now),
            dns: dns::DnsState::default(),
            ipam: ipam::IpamState::new(cfg.ipam_range),
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

    /// When [`Node::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    /// The next thing the daemon should act on (see [`Event`]), oldest
    /// first; None when nothing changed since the last call. The daemon
    /// calls it until None after each batch of calls into the node.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Handles one datagram from the underlay.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8], io: &mut impl Io) {
        let packet = match Packet::parse(datagram) {
            Ok(p) => p,
            Err(_) => return self.drops.count(DropReason::Malformed),
        };
        match packet {
            Packet::HandshakeInit { sender, pattern, hint, noise, macs } => {
                self.on_init(now, from, sender, pattern, hint, noise, macs, io)
            }
            Packet::HandshakeResponse { sender, receiver, noise, macs } => {
                self.on_response(now, from, sender, receiver, noise, macs, io)
            }
            Packet::HandshakeFinal { sender, receiver, noise } => self.on_final(now, from, sender, receiver, noise, io),
            Packet::Data { receiver, counter, ciphertext } => {
                self.on_data(now, from, receiver, counter, ciphertext, io)
            }
            Packet::CookieReply { receiver, nonce, sealed } => self.on_cookie(now, from, receiver, nonce, sealed, io),
        }
    }

    /// Handles one Ethernet frame read from the TAP (sent by a local member).
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8], io: &mut impl Io) {
        self.handle_any_frame(now, frame, None, io)
    }

    /// Handles a segmentation-offload super-frame read from a TAP with
    /// `IFF_VNET_HDR`, with its header: it travels whole, in fragments.
    pub fn handle_offloaded_frame(
        &mut self,
        now: Instant,
        vnet_hdr: &[u8; VNET_HDR_LEN],
        frame: &[u8],
        io: &mut impl Io,
    ) {
        self.handle_any_frame(now, frame, Some(vnet_hdr), io)
    }

    /// Sends a local frame where it is wanted: to the peer behind a known
    /// unicast MAC, to the group's subscribers, or to every reachable peer.
    /// IGMP/MLD messages feed the group table instead.
    fn handle_any_frame(&mut self, now: Instant, frame: &[u8], offload: Option<&[u8; VNET_HDR_LEN]>, io: &mut impl Io) {
        if frame.len() < ETH_HEADER_LEN {
            return self.drops.count(DropReason::Malformed);
        }
        if offload.is_none() && frame.len() > self.cfg.overlay_mtu + ETH_HEADER_LEN {
            return self.drops.count(DropReason::Oversize);
        }
        if frame.len() > offload::MAX_MESSAGE - VNET_HDR_LEN {
            return self.drops.count(DropReason::Oversize);
        }
        self.refresh_routes(now);
        let (dst, src) = macs_of(frame);
        // A source seen locally is not behind any peer (it may have moved here).
        self.macs.forget(&src);
        if !mac::is_group(&dst) {
            if let Some(owner) = self.macs.lookup(&dst, now) {
                self.note_tcp(now, owner, frame);
                self.send_frame(now, owner, frame, offload, io);
                return;
            }
        } else if dst != [0xff; 6] {
            match snoop::classify(frame) {
                FrameClass::Control(msg) => return self.on_membership(now, src, msg),
                FrameClass::Multicast { group, source } => {
                    return self.replicate(now, group, source, frame, offload, io);
                }
                FrameClass::Other => {}
            }
        }
        // Broadcast, non-IP multicast and unknown unicast: every peer we can reach.
        let mut targets = std::mem::take(&mut self.targets);
        targets.clear();
        targets.extend(self.hops.keys().copied());
        if targets.is_empty() {
            self.drops.count(DropReason::NoRoute);
        }
        for k in &targets {
            self.send_frame(now, *k, frame, offload, io);
        }
        self.targets = targets;
    }

    /// Does whatever is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, io: &mut impl Io) {
        if now < self.next_tick {
            return;
        }
        self.stalled(now.saturating_duration_since(self.next_tick));
        self.next_tick = now + self.cfg.timers.tick;
        self.expire_handshakes(now);
        self.expire_sessions(now);
        self.trust_tick(now, io);
        self.dial_bootstraps(now, io);
        self.maintain_peers(now, io);
        self.liveness_tick(now, io);
        self.expire_members(now);
        self.expire_fragments(now);
        self.ipam_tick(now, io);
        self.querier_tick(now, io);
        self.gossip_tick(now, io);
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + HOUSEKEEPING;
            self.forget_stale(now);
            self.drain_gossip(now, io);
            self.macs.sweep(now, |_| false);
            self.expire_lossy(now);
        }
        self.flush(io);
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

    /// Times since start a connected peer was declared down by liveness
    /// probing (a host that died, a path that broke, or a false failure).
    pub fn peers_down(&self) -> u64 {
        self.peers_down
    }

    /// This host's health as a prober: 0 when sound, up to
    /// [`crate::liveness::MAX_HEALTH`] when its own probes fail or it
    /// stalls (its probe timeouts are then that many times longer, plus 1).
    pub fn local_health(&self) -> u32 {
        self.health.score()
    }

    /// Times this host's periodic work ran 200 ms or more late (starved of
    /// CPU or busy); time it did not run is not charged to its peers.
    pub fn stalls(&self) -> u64 {
        self.stalls
    }

    /// Queues `ev` for [`Node::poll_event`] unless it is already queued.
    fn emit(&mut self, ev: Event) {
        if !self.events.contains(&ev) {
            self.events.push_back(ev);
        }
    }

    /// Milliseconds on this host's clock that only grow (across restarts
    /// too). Saturating: a stamp can never wrap (versions far ahead of the
    /// clock are refused by every receiver, see [`crate::gossip::record`]).
    fn stamp(&mut self, now: Instant) -> u64 {
        let t = self.clock_ms(now);
        self.last_stamp = t.max(self.last_stamp.saturating_add(1));
        self.last_stamp
    }

    /// This host's wall clock in milliseconds, as of `now`.
    fn clock_ms(&self, now: Instant) -> u64 {
        self.cfg.unix_ms.saturating_add(now.saturating_duration_since(self.start).as_millis() as u64)
    }
}

/// The destination and source MACs of a frame at least an Ethernet header long.
fn macs_of(frame: &[u8]) -> (Mac, Mac) {
    let mut dst = [0u8; 6];
    let mut src = [0u8; 6];
    dst.copy_from_slice(&frame[0..6]);
    src.copy_from_slice(&frame[6..12]);
    (dst, src)
}

#[cfg(test)]
mod tests;
