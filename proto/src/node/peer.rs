//! The peer table: every host this node knows, by its key, with its
//! session slots (the current session, the previous one kept for packets in
//! flight, and a responder's next one until the initiator confirms it);
//! installing and promoting sessions; sealing a payload on a peer's current
//! session, which is how every DATA packet leaves; the local indices
//! sessions and handshakes share; and the configured bootstrap addresses.

use super::{Event, Io, Node, TrafficCounters};
use crate::keys::PublicKey;
use crate::liveness::PeerLiveness;
use crate::session::{Handshake, Session};
use crate::stats::DropReason;
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long the host with the higher key waits before dialling a host it
/// just learned of (the other one dials first).
const DIAL_DEFER: Duration = Duration::from_secs(3);

/// Most peers held: every host the gossip table holds, and room for
/// configured peers and new ones not yet in gossip. Beyond it a peer
/// without a record gives way ([`DropReason::PeerEvicted`]).
pub const MAX_PEERS: usize = crate::gossip::table::MAX_HOSTS + 256;

/// A host this node knows, by its key.
#[derive(Debug)]
pub(super) struct Peer {
    pub(super) key: PublicKey,
    pub(super) name: String,
    /// The underlay address of its direct session (or the last one tried).
    pub(super) endpoint: Option<SocketAddr>,
    /// Other addresses it might be reached at (from gossip).
    pub(super) candidates: Vec<SocketAddr>,
    /// Newest usable session.
    pub(super) current: Option<Session>,
    /// The one before, kept until it expires so in-flight packets open.
    pub(super) previous: Option<Session>,
    /// A responder-side IK session not yet confirmed by the initiator.
    pub(super) next: Option<Session>,
    /// Whether it answers: what was heard and sent, probes, the verdict.
    pub(super) live: PeerLiveness,
    /// Suspicions it announced in the current second: (second start, count).
    pub(super) suspicions: (Instant, u32),
    pub(super) rtt: Option<Duration>,
    /// Local index of our handshake in flight to it.
    pub(super) in_flight: Option<u32>,
    pub(super) attempts: u32,
    pub(super) next_attempt: Instant,
    /// Highest handshake timestamp seen from it (IK replay defence).
    pub(super) last_hs_timestamp: u64,
    /// Frames queued for it (plaintext of one DATA packet), sent on flush.
    pub(super) bundle: Vec<u8>,
    pub(super) traffic: TrafficCounters,
    /// Its certificate, from its last handshake (network-authority mode).
    pub(super) cert: Option<weavers_cert::HostCert>,
    /// Pongs it sent back (each updates `rtt`).
    pub(super) pongs: u64,
    /// Until when its path counts as lossy (a local TCP sender
    /// retransmitted to it): super-frames to it go as segments (`lossy`).
    pub(super) lossy_until: Option<Instant>,
    /// The parity group being built for it while its path is lossy (`fec`).
    pub(super) fec_tx: crate::fec::Encoder,
    /// Whether it is in the node's list of peers with a group open.
    pub(super) fec_listed: bool,
    /// The plaintexts it sent last, kept while it sends parity (`fec`).
    pub(super) fec_rx: crate::fec::Decoder,
    /// Until when its plaintexts are kept: renewed by each parity it sends.
    pub(super) fec_rx_until: Option<Instant>,
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
            live: PeerLiveness::new(),
            suspicions: (now, 0),
            rtt: None,
            in_flight: None,
            attempts: 0,
            next_attempt: now,
            last_hs_timestamp: 0,
            bundle: Vec::new(),
            traffic: TrafficCounters::default(),
            cert: None,
            pongs: 0,
            lossy_until: None,
            fec_tx: crate::fec::Encoder::default(),
            fec_listed: false,
            fec_rx: crate::fec::Decoder::default(),
            fec_rx_until: None,
        }
    }

    /// A live direct session: one is up, and liveness does not find the
    /// peer down.
    pub(super) fn is_connected(&self) -> bool {
        self.current.is_some() && !self.live.is_down()
    }

    /// The session with this local index, and which slot holds it.
    pub(super) fn session_mut(&mut self, local_index: u32) -> Option<(&mut Session, Slot)> {
        for (slot, s) in
            [(Slot::Current, &mut self.current), (Slot::Previous, &mut self.previous), (Slot::Next, &mut self.next)]
        {
            if let Some(s) = s.as_mut().filter(|s| s.local_index == local_index) {
                return Some((s, slot));
            }
        }
        None
    }

    /// Takes what a handshake proved: the certificate (network-authority
    /// mode), whose name wins, else the name it announced.
    pub(super) fn set_identity(&mut self, announced: &str, cert: Option<weavers_cert::HostCert>) {
        match cert {
            Some(c) => {
                self.name = c.name().to_owned();
                self.cert = Some(c);
            }
            None => self.set_name(announced),
        }
    }

    /// Takes the name a handshake or a record announced, if it is a valid
    /// one (a certified name stays).
    pub(super) fn set_name(&mut self, name: &str) {
        if self.cert.is_none() && !name.is_empty() && name.len() <= crate::gossip::record::MAX_NAME_LEN {
            self.name = name.to_string();
        }
    }
}

/// A host to remember across a restart: what [`Node::known_peers`] gives
/// and [`Node::add_known_peer`] takes back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownPeer {
    /// Its identity.
    pub key: PublicKey,
    /// Where its last direct session was (or was last tried).
    pub endpoint: SocketAddr,
    /// The name it announced.
    pub name: String,
    /// The highest handshake timestamp accepted from it (its clock, in
    /// milliseconds; 0 if none): an IK initiation must carry a greater
    /// one, so a captured initiation cannot be replayed.
    pub last_handshake: u64,
}

/// Which of a peer's session slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    Current,
    Previous,
    Next,
}

/// A configured `--peer` address, whose key is learned by an XX handshake.
#[derive(Debug)]
pub(super) struct Bootstrap {
    pub(super) addr: SocketAddr,
    pub(super) key: Option<PublicKey>,
    pub(super) in_flight: Option<u32>,
    pub(super) attempts: u32,
    pub(super) next_attempt: Instant,
}

/// Who an outgoing handshake is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Target {
    Peer(PublicKey),
    Bootstrap(SocketAddr),
}

/// A handshake this node started.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub(super) hs: Handshake,
    pub(super) target: Target,
    /// The initiation as sent (for a cookie reply).
    pub(super) init: crate::cookie::PendingInit,
}

/// An XX handshake this node answered, waiting for the final message.
#[derive(Debug)]
pub(super) struct Incoming {
    pub(super) hs: Handshake,
    pub(super) remote_index: u32,
}

/// The local indices in use. Sessions and handshakes in flight share one
/// index space: a packet names the receiver's index, whatever it is for.
#[derive(Debug, Default)]
pub(super) struct Indices {
    /// Established sessions (in any slot), to the peer holding them.
    pub(super) sessions: HashMap<u32, PublicKey>,
    /// Handshakes this node started.
    pub(super) outgoing: HashMap<u32, Outgoing>,
    /// XX handshakes this node answered.
    pub(super) incoming: HashMap<u32, Incoming>,
}

impl Indices {
    /// An index not in use (never 0).
    fn fresh(&self, rng: &mut StdRng) -> u32 {
        loop {
            let i: u32 = rng.gen();
            if i != 0
                && !self.sessions.contains_key(&i)
                && !self.outgoing.contains_key(&i)
                && !self.incoming.contains_key(&i)
            {
                return i;
            }
        }
    }
}

impl Node {
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
            self.indices.outgoing.remove(&i);
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
    /// reconnected by an IK handshake. Its last handshake timestamp is
    /// restored too: an IK initiation captured before the restart is then
    /// still refused as a replay.
    pub fn add_known_peer(&mut self, known: &KnownPeer, now: Instant) {
        if known.key == self.public_key() {
            return;
        }
        let p = self.peer_entry(known.key, now);
        if p.endpoint.is_none() {
            p.endpoint = Some(known.endpoint);
        }
        if p.name.is_empty() {
            p.name = known.name.chars().take(crate::gossip::record::MAX_NAME_LEN).collect();
        }
        p.last_hs_timestamp = p.last_hs_timestamp.max(known.last_handshake);
    }

    /// Hosts worth remembering across a restart (those with an endpoint).
    pub fn known_peers(&self) -> Vec<KnownPeer> {
        self.peers
            .values()
            .filter_map(|p| {
                Some(KnownPeer {
                    key: p.key,
                    endpoint: p.endpoint?,
                    name: p.name.clone(),
                    last_handshake: p.last_hs_timestamp,
                })
            })
            .collect()
    }

    /// The peer with this key, added if it is new.
    pub(super) fn peer_entry(&mut self, key: PublicKey, now: Instant) -> &mut Peer {
        if !self.peers.contains_key(&key) {
            if self.peers.len() >= MAX_PEERS {
                self.evict_peer();
            }
            self.by_short.insert(key.short_id(), key);
            self.emit(Event::PeersChanged);
            self.routes_dirty = true;
        }
        // Of two hosts that learn of each other, the one with the lower key
        // dials first; the other waits a little before it tries too (in
        // case only it can reach the first). A forming mesh of N hosts then
        // runs about N*(N-1)/2 handshakes instead of twice that.
        let first_dial = if key > self.public_key() { now } else { now + DIAL_DEFER };
        self.peers.entry(key).or_insert_with(|| Peer::new(key, first_dial))
    }

    /// Makes room in a full peer table: forgets a peer without a gossip
    /// record that no configured address leads to, one without a live
    /// session first. Peers with a record are bounded by the gossip table,
    /// configured ones by the operator; so the table stays bounded even if
    /// none can go.
    fn evict_peer(&mut self) {
        let configured = |k: &PublicKey| self.bootstraps.iter().any(|b| b.key == Some(*k));
        let victim = self
            .peers
            .values()
            .filter(|p| self.gossip.table().get(&p.key).is_none() && !configured(&p.key))
            .min_by_key(|p| p.is_connected())
            .map(|p| p.key);
        if let Some(k) = victim {
            self.drop_peer(&k);
            self.drops.count(DropReason::PeerEvicted);
        }
    }

    /// Forgets a peer: its sessions, its handshake in flight, the MACs
    /// behind it.
    pub(super) fn drop_peer(&mut self, key: &PublicKey) {
        if let Some(p) = self.peers.remove(key) {
            for s in [&p.current, &p.previous, &p.next].into_iter().flatten() {
                self.indices.sessions.remove(&s.local_index);
            }
            if let Some(i) = p.in_flight {
                self.indices.outgoing.remove(&i);
            }
            self.by_short.remove(&key.short_id());
            self.macs.sweep(self.start, |k| k == key);
            self.gossip.peer_down(key);
            self.members_dirty = true;
            self.emit(Event::PeersChanged);
            self.routes_dirty = true;
            self.remote_groups_dirty = true;
        }
    }

    /// A local index not in use.
    pub(super) fn fresh_index(&mut self) -> u32 {
        self.indices.fresh(&mut self.rng)
    }

    /// Makes `session` the current one of the peer `key` (whose entry the
    /// caller made); the current one becomes the previous, and the handshake
    /// in flight to it is done with.
    pub(super) fn install_session(&mut self, now: Instant, key: PublicKey, session: Session) {
        let index = session.local_index;
        let p = self.peers.get_mut(&key).expect("peer entry made by caller");
        if let Some(old) = p.previous.take() {
            self.indices.sessions.remove(&old.local_index);
        }
        p.previous = p.current.replace(session);
        p.attempts = 0;
        p.next_attempt = now;
        if let Some(i) = p.in_flight.take() {
            self.indices.outgoing.remove(&i);
        }
        self.indices.sessions.insert(index, key);
        self.routes_dirty = true;
        self.members_dirty = true;
        self.emit(Event::PeersChanged);
    }

    /// A responder-side session got its first authenticated packet.
    pub(super) fn promote_next(&mut self, key: &PublicKey) {
        if let Some(p) = self.peers.get_mut(key) {
            if let Some(s) = p.next.take() {
                if let Some(old) = p.previous.take() {
                    self.indices.sessions.remove(&old.local_index);
                }
                p.previous = p.current.replace(s);
                self.routes_dirty = true;
                self.members_dirty = true;
            }
        }
    }

    /// Seals `self.plain[..len]` on `to`'s current session and sends it.
    pub(super) fn seal_plain_to(&mut self, now: Instant, to: PublicKey, len: usize, io: &mut impl Io) -> bool {
        let Some(p) = self.peers.get_mut(&to) else {
            self.drops.count(DropReason::NoRoute);
            return false;
        };
        let (Some(s), Some(ep)) = (p.current.as_mut(), p.endpoint) else {
            self.drops.count(DropReason::NoRoute);
            return false;
        };
        match s.seal(&self.plain[..len], &mut self.sealed) {
            Ok(n) => {
                p.live.sent(now);
                io.send(ep, &self.sealed[..n]);
                if p.lossy_until.is_some() {
                    let (session, counter) = (s.remote_index, s.sent() - 1);
                    self.fec_sent(to, session, counter, false, len, io);
                }
                true
            }
            Err(_) => {
                // Exhausted: the timers will rekey; drop meanwhile.
                self.drops.count(DropReason::NoRoute);
                false
            }
        }
    }
}
