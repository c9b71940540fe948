//! Network-authority mode: who may be a peer, and what a peer may do.
//!
//! With a [`Trust`] in the [`Config`](super::Config), every handshake
//! carries the sender's certificate (inside the Noise payload, so only the
//! other end sees it) and a peer is accepted only if its certificate was
//! signed by this network's authority, is inside its period, names the key
//! the handshake proved, and is not revoked. The certificate's permissions
//! then decide which group frames go to the peer and are taken from it
//! (`multicast`), and which of its names the DNS answers (`dns`).
//!
//! Revocations come from the daemon ([`Node::add_revocation`], given by
//! `weavers ca revoke`) or from a peer ([`Kind::Revocation`]). One that
//! verifies and is new is kept (the newest per name: a later one voids a
//! superset), passed on to every connected peer (so it floods the mesh in
//! the time of a few round trips, each host sending it once per peer), and
//! every peer whose certificate it voids is dropped at once; such a peer's
//! key stays barred, so gossip does not bring it back. A host that was
//! away gets every revocation from each peer it connects to; one that
//! missed the flood with its sessions up finds out by anti-entropy: every
//! [`DIGEST_INTERVAL`] a host keeping revocations sends a digest of them
//! to one random peer, which answers a different digest with its own
//! revocations and its digest, and the first host then sends its own.
//! Expiry is checked once a second for every peer.
//!
//! Costs: one Ed25519 verification per handshake (plus the Noise
//! handshake's own work); memory one certificate per peer and one
//! revocation per revoked name (at most [`MAX_REVOCATIONS`]).

use super::{Event, Io, Node};
use crate::keys::PublicKey;
use crate::stats::DropReason;
use crate::wire::Kind;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use weavers_cert::{Authority, CertError, HostCert, Permissions, Revocation, RevocationBody};

/// Revoked names kept at most; more are refused (and counted).
pub const MAX_REVOCATIONS: usize = 4096;

/// How often every peer's certificate period is checked again.
const RECHECK: Duration = Duration::from_secs(1);

/// How often a host keeping revocations sends their digest to a peer.
pub const DIGEST_INTERVAL: Duration = Duration::from_secs(2);

/// What network-authority mode starts with.
#[derive(Clone, Debug)]
pub struct Trust {
    /// The authority (`--ca`).
    pub authority: Authority,
    /// This host's certificate (`--cert`).
    pub cert: HostCert,
    /// Revocations saved from before (each is verified again).
    pub revocations: Vec<Vec<u8>>,
}

/// The node's side of it.
#[derive(Debug)]
pub(super) struct TrustState {
    authority: Authority,
    /// This host's certificate (the tests' rogue swaps it behind its
    /// peers' backs).
    pub(super) own: HostCert,
    /// The newest revocation of each name.
    revoked: HashMap<String, Revocation>,
    /// Keys of peers cut off by a revocation.
    barred: HashSet<PublicKey>,
    /// New revocations to pass on, with the peer each came from.
    outbox: Vec<(Vec<u8>, Option<PublicKey>)>,
    /// When each peer's differing digest was last answered with our
    /// revocations: at most once per [`DIGEST_INTERVAL`] each, so a peer
    /// cannot turn ten-byte digests into our whole list again and again.
    answered: HashMap<PublicKey, Instant>,
    next_check: Instant,
    next_digest: Instant,
}

impl TrustState {
    /// The state for `trust`; saved revocations that do not verify are
    /// skipped (the daemon reports them when it reads its file).
    pub(super) fn new(trust: &Trust, now: Instant) -> TrustState {
        let mut s = TrustState {
            authority: trust.authority.clone(),
            own: trust.cert.clone(),
            revoked: HashMap::new(),
            barred: HashSet::new(),
            outbox: Vec::new(),
            answered: HashMap::new(),
            next_check: now,
            next_digest: now + DIGEST_INTERVAL,
        };
        for r in &trust.revocations {
            if let Ok(r) = Revocation::decode(r, &s.authority) {
                s.insert(r);
            }
        }
        s
    }

    /// Keeps `r` if it is newer than what is known for its name; whether
    /// it was.
    fn insert(&mut self, r: Revocation) -> bool {
        let name = r.body().name.clone();
        match self.revoked.get(&name) {
            Some(old) if old.body().revoked_at >= r.body().revoked_at => false,
            None if self.revoked.len() >= MAX_REVOCATIONS => false,
            _ => {
                self.revoked.insert(name, r);
                true
            }
        }
    }

    /// A digest of the set kept: 8 bytes of BLAKE2s over every revocation,
    /// by name; zeros for none.
    fn digest(&self) -> [u8; 8] {
        use blake2::{Blake2s256, Digest};
        if self.revoked.is_empty() {
            return [0; 8];
        }
        let mut names: Vec<&String> = self.revoked.keys().collect();
        names.sort();
        let mut h = Blake2s256::new();
        for n in names {
            let e = self.revoked[n].encoded();
            h.update((e.len() as u32).to_be_bytes());
            h.update(e);
        }
        h.finalize()[..8].try_into().expect("8 bytes")
    }

    fn is_revoked(&self, cert: &HostCert) -> bool {
        self.revoked.get(cert.name()).is_some_and(|r| r.revokes(cert))
    }

    /// Checks a peer's certificate: signed by the authority, inside its
    /// period at `unix_s`, for `key`, not revoked.
    fn check(&self, key: &PublicKey, bytes: &[u8], unix_s: u64) -> Result<HostCert, CertError> {
        let cert = HostCert::decode(bytes)?;
        if cert.body().public_key != key.0 {
            return Err(CertError::KeyMismatch);
        }
        cert.verify(&self.authority, unix_s)?;
        if self.is_revoked(&cert) {
            return Err(CertError::Revoked);
        }
        Ok(cert)
    }
}

impl Node {
    /// Seconds since the epoch, by this host's clock.
    fn unix_s(&self, now: Instant) -> u64 {
        self.clock_ms(now) / 1000
    }

    /// This host's certificate as it goes into handshakes (network-authority
    /// mode only).
    pub(super) fn own_cert_bytes(&self) -> Option<Vec<u8>> {
        self.trust.as_ref().map(|t| t.own.encoded().to_vec())
    }

    /// Whether `key` was cut off by a revocation.
    pub(super) fn is_barred(&self, key: &PublicKey) -> bool {
        self.trust.as_ref().is_some_and(|t| t.barred.contains(key))
    }

    /// The certificate check of a handshake that proved `key`: Ok(None) in
    /// password mode, Ok(Some(cert)) when it is valid, Err after counting
    /// the refusal.
    pub(super) fn admit_cert(
        &mut self,
        now: Instant,
        key: &PublicKey,
        cert: Option<&[u8]>,
    ) -> Result<Option<HostCert>, ()> {
        let unix_s = self.unix_s(now);
        let Some(t) = &mut self.trust else { return Ok(None) };
        let checked = match cert {
            Some(bytes) => t.check(key, bytes, unix_s),
            None => Err(CertError::Malformed("host certificate (none sent)")),
        };
        match checked {
            Ok(c) => {
                // A certificate issued after its revocation: welcome back.
                t.barred.remove(key);
                if self.peers.get(key).and_then(|p| p.cert.as_ref()) != Some(&c) {
                    // Which of its names the DNS answers may change.
                    self.emit(Event::DnsChanged);
                }
                Ok(Some(c))
            }
            Err(_) => {
                self.handshakes.certs_refused += 1;
                self.drops.count(DropReason::BadCertificate);
                Err(())
            }
        }
    }

    /// A certificate carried in `key`'s record (network-authority mode):
    /// taken as that host's when it checks out and is newer than the one
    /// known (a host this one has no session with is known only this way);
    /// a bad one is counted.
    pub(super) fn adopt_record_cert(&mut self, now: Instant, key: PublicKey, bytes: &[u8]) {
        let unix_s = self.unix_s(now);
        let Some(t) = &self.trust else { return };
        let cert = match t.check(&key, bytes, unix_s) {
            Ok(c) => c,
            Err(_) => return self.drops.count(DropReason::BadCertificate),
        };
        let Some(p) = self.peers.get_mut(&key) else { return };
        if p.cert.as_ref().is_some_and(|old| old.body().not_before >= cert.body().not_before) {
            return;
        }
        p.name = cert.name().to_owned();
        p.cert = Some(cert);
        self.remote_groups_dirty = true;
        self.emit(Event::DnsChanged);
    }

    /// Replaces this host's certificate (a renewal): it must verify and be
    /// for this host's key. Handshakes from now on carry it.
    pub fn set_own_cert(&mut self, cert: HostCert, now: Instant) -> Result<(), CertError> {
        let unix_s = self.unix_s(now);
        let own = self.public_key();
        let Some(t) = &mut self.trust else { return Err(CertError::Malformed("no authority configured")) };
        if cert.body().public_key != own.0 {
            return Err(CertError::KeyMismatch);
        }
        cert.verify(&t.authority, unix_s)?;
        if t.is_revoked(&cert) {
            return Err(CertError::Revoked);
        }
        t.own = cert;
        Ok(())
    }

    /// This host's certificate, in network-authority mode.
    pub fn own_cert(&self) -> Option<&HostCert> {
        self.trust.as_ref().map(|t| &t.own)
    }

    /// Takes a revocation (its binary form) from the daemon: checked,
    /// kept, and every peer it voids dropped; it goes to every peer at the
    /// next [`Node::handle_timeout`], which is due at once. Returns what it
    /// says and whether it was new.
    pub fn add_revocation(&mut self, now: Instant, bytes: &[u8]) -> Result<(RevocationBody, bool), CertError> {
        let Some(t) = &self.trust else { return Err(CertError::Malformed("no authority configured")) };
        let r = Revocation::decode(bytes, &t.authority)?;
        let body = r.body().clone();
        let new = self.apply_revocation(None, r);
        if new {
            self.next_tick = self.next_tick.min(now);
        }
        Ok((body, new))
    }

    /// Every revocation this host keeps (binary forms), to save.
    pub fn revocations(&self) -> Vec<Vec<u8>> {
        let mut v: Vec<&Revocation> = self.trust.iter().flat_map(|t| t.revoked.values()).collect();
        v.sort_by(|a, b| a.body().name.cmp(&b.body().name));
        v.into_iter().map(|r| r.encoded().to_vec()).collect()
    }

    /// Every revocation this host keeps: (name, revoked at), by name.
    pub fn revocation_list(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .trust
            .iter()
            .flat_map(|t| t.revoked.values())
            .map(|r| (r.body().name.clone(), r.body().revoked_at))
            .collect();
        v.sort();
        v
    }

    /// A revocation from the direct peer `from`.
    pub(super) fn on_revocation(&mut self, now: Instant, from: PublicKey, body: &[u8], io: &mut impl Io) {
        let Some(t) = &self.trust else { return self.drops.count(DropReason::BadPayload) };
        match Revocation::decode(body, &t.authority) {
            Ok(r) => {
                if self.apply_revocation(Some(from), r) {
                    self.pass_revocations_on(now, io);
                }
            }
            Err(_) => self.drops.count(DropReason::BadCertificate),
        }
    }

    /// Keeps `r` if new; then drops the peers it voids and queues it to be
    /// passed on (not back to `from`). Whether it was new.
    fn apply_revocation(&mut self, from: Option<PublicKey>, r: Revocation) -> bool {
        let t = self.trust.as_mut().expect("authority mode");
        let encoded = r.encoded().to_vec();
        if !t.insert(r) {
            return false;
        }
        let void: Vec<PublicKey> =
            self.peers.values().filter(|p| p.cert.as_ref().is_some_and(|c| t.is_revoked(c))).map(|p| p.key).collect();
        t.barred.extend(void.iter().copied());
        t.outbox.push((encoded, from));
        self.emit(Event::RevocationsChanged);
        for k in void {
            self.drop_peer(&k);
        }
        true
    }

    /// Sends the queued new revocations to every peer with a session
    /// (except the one each came from).
    fn pass_revocations_on(&mut self, now: Instant, io: &mut impl Io) {
        let Some(t) = &mut self.trust else { return };
        let outbox = std::mem::take(&mut t.outbox);
        let peers: Vec<PublicKey> = self.peers.values().filter(|p| p.current.is_some()).map(|p| p.key).collect();
        for (encoded, from) in outbox {
            for k in peers.iter().filter(|k| Some(**k) != from) {
                self.send_control(now, *k, Kind::Revocation, &encoded, io);
            }
        }
    }

    /// Sends every revocation this host keeps to `to` (a peer just
    /// connected for the first time).
    pub(super) fn send_revocations(&mut self, now: Instant, to: PublicKey, io: &mut impl Io) {
        let all = self.revocations();
        for r in all {
            self.send_control(now, to, Kind::Revocation, &r, io);
        }
    }

    /// A peer's digest of its revocations: when it differs from this
    /// host's, send ours (and, unless it was an answer, our digest).
    pub(super) fn on_revocation_digest(&mut self, now: Instant, from: PublicKey, body: &[u8], io: &mut impl Io) {
        let Some(t) = &self.trust else { return self.drops.count(DropReason::BadPayload) };
        let [flag, d @ ..] = body else { return self.drops.count(DropReason::BadPayload) };
        let (Ok(theirs), true) = (<[u8; 8]>::try_from(d), *flag <= 1) else {
            return self.drops.count(DropReason::BadPayload);
        };
        let ours = t.digest();
        if theirs == ours {
            return;
        }
        let t = self.trust.as_mut().expect("checked above");
        if t.answered.get(&from).is_some_and(|at| now.saturating_duration_since(*at) < DIGEST_INTERVAL) {
            return self.drops.count(DropReason::RateLimited);
        }
        if t.answered.len() >= 4096 {
            t.answered.retain(|_, at| now.saturating_duration_since(*at) < DIGEST_INTERVAL);
        }
        t.answered.insert(from, now);
        self.send_revocations(now, from, io);
        if *flag == 0 {
            let mut m = [1u8; 9];
            m[1..].copy_from_slice(&ours);
            self.send_control(now, from, Kind::RevocationDigest, &m, io);
        }
    }

    /// Anti-entropy of revocations: the digest to one random connected peer
    /// every [`DIGEST_INTERVAL`], when this host keeps any.
    fn send_revocation_digest(&mut self, now: Instant, io: &mut impl Io) {
        let Some(t) = &mut self.trust else { return };
        if now < t.next_digest {
            return;
        }
        t.next_digest = now + DIGEST_INTERVAL;
        if t.revoked.is_empty() {
            return;
        }
        let mut m = [0u8; 9];
        m[1..].copy_from_slice(&t.digest());
        let connected: Vec<PublicKey> = self.peers.values().filter(|p| p.is_connected()).map(|p| p.key).collect();
        if connected.is_empty() {
            return;
        }
        let to = connected[rand::Rng::gen_range(&mut self.rng, 0..connected.len())];
        self.send_control(now, to, Kind::RevocationDigest, &m, io);
    }

    /// Drops peers whose certificate expired (checked once a second), and
    /// sends the revocation digest when due.
    pub(super) fn trust_tick(&mut self, now: Instant, io: &mut impl Io) {
        self.pass_revocations_on(now, io);
        self.send_revocation_digest(now, io);
        let unix_s = self.unix_s(now);
        let Some(t) = &mut self.trust else { return };
        if now < t.next_check {
            return;
        }
        t.next_check = now + RECHECK;
        let expired: Vec<PublicKey> = self
            .peers
            .values()
            .filter(|p| p.cert.as_ref().is_some_and(|c| c.body().not_after < unix_s))
            .map(|p| p.key)
            .collect();
        for k in expired {
            self.drop_peer(&k);
        }
    }

    /// Whether the peer `key` may receive `group` (always in password mode,
    /// and for link-local groups, which carry the network's own plumbing).
    pub(super) fn may_subscribe(&self, key: &PublicKey, group: IpAddr) -> bool {
        self.peer_may(key, group, Permissions::may_subscribe)
    }

    /// Whether the peer `key` may send to `group` (as
    /// [`Node::may_subscribe`]).
    pub(super) fn may_publish(&self, key: &PublicKey, group: IpAddr) -> bool {
        self.peer_may(key, group, Permissions::may_publish)
    }

    /// `allows` of the peer's certificate for `group`, with the exemptions
    /// of [`Node::may_subscribe`]; a peer without a known certificate may
    /// nothing.
    fn peer_may(&self, key: &PublicKey, group: IpAddr, allows: fn(&Permissions, IpAddr) -> bool) -> bool {
        if self.trust.is_none() || crate::snoop::is_link_local_group(&group) {
            return true;
        }
        self.peers.get(key).and_then(|p| p.cert.as_ref()).is_some_and(|c| allows(c.permissions(), group))
    }

    /// Whether this host may send to `group`.
    pub(super) fn may_publish_own(&self, group: IpAddr) -> bool {
        match &self.trust {
            Some(t) if !crate::snoop::is_link_local_group(&group) => t.own.permissions().may_publish(group),
            _ => true,
        }
    }

    /// Whether the host `key` may have the (normalised) DNS name `name`:
    /// always in password mode; else its certificate must allow it (this
    /// host's own, or a peer's from its handshake or its record).
    pub(super) fn may_register(&self, key: &PublicKey, name: &str) -> bool {
        let Some(t) = &self.trust else { return true };
        if *key == self.public_key() {
            return t.own.permissions().may_register(name);
        }
        self.peers.get(key).and_then(|p| p.cert.as_ref()).is_some_and(|c| c.permissions().may_register(name))
    }
}
