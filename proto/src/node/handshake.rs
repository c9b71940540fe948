//! Handshakes: starting them, answering them, and installing the sessions
//! they produce; and what keeps them cheap for strangers ([`Guard`]).
//!
//! An initiation is checked in this order, each step costing nothing that
//! a later one would have to undo:
//!
//! 1. mac1 ([`crate::hsmac`]): one keyed BLAKE2s with a key made at start.
//!    A failure is counted (`mac1_refused`, drop `bad_mac1`) and that is
//!    all: no state, no Diffie-Hellman, no budget spent. Responses are
//!    checked the same way (after finding the handshake they answer, whose
//!    pattern says which key), so a stranger cannot end a handshake in
//!    flight with a forged one either.
//! 2. Whose budget ([`crate::ratelimit`]): a known peer's rekey goes on its
//!    own (an IK initiation from the peer's endpoint whose hint is the
//!    index of one of its live sessions here), an initiation with a valid
//!    mac2 on its source's, anything else on the global budget and its
//!    source's. Past the global budget this host is under load and sends
//!    a cookie reply ([`crate::cookie`]) instead of the handshake.
//! 3. The Noise handshake itself.
//!
//! As initiator, a host keeps each initiation it sent; a cookie reply that
//! opens (only a member can seal one, only for an initiation whose mac1 it
//! saw) is kept for that address, and the initiation goes again at once
//! with mac2, once. What a member can spoof, and why known peers' rekeys
//! are recognised by a session index and an endpoint, is in
//! [`crate::ratelimit`].

use super::peer::{Incoming, Outgoing, Target};
use super::{Event, Io, Node};
use crate::cookie::{self, CookieJar, CookieMinter, PendingInit};
use crate::hsmac::{CookieKey, Mac1Key};
use crate::keys::{NetworkKey, PublicKey};
use crate::ratelimit::{Admission, HandshakeLimiter, Limits};
use crate::session::{Handshake, Session};
use crate::stats::DropReason;
use crate::wire::{self, HandshakeSecond, Macs, PacketType, Pattern, COOKIE_NONCE_LEN, MAC_LEN, SEALED_COOKIE_LEN};
use rand::RngCore;
use std::net::SocketAddr;
use std::time::Instant;

/// What keeps handshakes cheap for strangers: the MAC keys (made once),
/// the budgets, the cookie secret, and the cookies this host was given.
#[derive(Debug)]
pub(super) struct Guard {
    /// mac1 of IK messages to this host (keyed with its static key).
    mac1_ik: Mac1Key,
    /// mac1 of XX messages, either way (the network key alone).
    mac1_xx: Mac1Key,
    /// Cookie replies to IK initiations to this host...
    cookie_ik: CookieKey,
    /// ...and to XX initiations, either way.
    cookie_xx: CookieKey,
    limiter: HandshakeLimiter,
    minter: CookieMinter,
    jar: CookieJar,
}

impl Guard {
    /// The guard of the host `own` in the network of `psk`.
    pub(super) fn new(psk: &NetworkKey, own: &PublicKey, now: Instant) -> Self {
        Guard {
            mac1_ik: Mac1Key::new(psk, Some(own)),
            mac1_xx: Mac1Key::new(psk, None),
            cookie_ik: CookieKey::new(psk, Some(own)),
            cookie_xx: CookieKey::new(psk, None),
            limiter: HandshakeLimiter::new(Limits::default(), now),
            minter: CookieMinter::default(),
            jar: CookieJar::default(),
        }
    }

    /// Addresses this host holds a cookie for.
    #[cfg(test)]
    pub(super) fn cookies_held(&self) -> usize {
        self.jar.len()
    }

    /// The key of mac1 on messages of `pattern` to this host.
    fn mac1_in(&self, pattern: Pattern) -> &Mac1Key {
        match pattern {
            Pattern::Ik => &self.mac1_ik,
            Pattern::Xx => &self.mac1_xx,
        }
    }
}

/// Appends mac1 of `buf[..len]` under `key`; the new length.
fn append_mac1(buf: &mut [u8], len: usize, key: &Mac1Key) -> usize {
    let mac1 = key.mac(&buf[..len]);
    buf[len..len + MAC_LEN].copy_from_slice(&mac1);
    len + MAC_LEN
}

/// Pending XX responder handshakes kept at most (oldest dropped beyond).
const MAX_INCOMING: usize = 1024;

/// The payload inside handshake messages that carry one (the crate's
/// fuzzing harness builds them too).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct HandshakePayload {
    /// Sender's clock (milliseconds, grows across restarts).
    pub(crate) timestamp: u64,
    pub(crate) name: String,
    /// The underlay address the sender sees the receiver at (so that hosts
    /// learn the endpoints to publish in their records).
    pub(crate) observed: Option<SocketAddr>,
    /// The sender's certificate (network-authority mode).
    pub(crate) cert: Option<Vec<u8>>,
}

impl Node {
    /// Starts a handshake to `to`: IK when the peer's key is known.
    pub(super) fn initiate(&mut self, now: Instant, target: Target, to: SocketAddr, io: &mut impl Io) {
        let (pattern, remote) = match target {
            Target::Peer(k) => (Pattern::Ik, Some(k)),
            Target::Bootstrap(_) => (Pattern::Xx, None),
        };
        let mut hs = match Handshake::initiator(pattern, &self.cfg.keypair, &self.cfg.network_key, remote.as_ref(), now)
        {
            Ok(hs) => hs,
            Err(_) => return,
        };
        let payload = match pattern {
            // XX's first message is not encrypted to the responder: say nothing yet.
            Pattern::Xx => Vec::new(),
            Pattern::Ik => self.handshake_payload(now, to),
        };
        let index = self.fresh_index();
        // The responder's index of the session this one replaces: lets it
        // charge a rekey to this host's own budget.
        let hint = remote.and_then(|k| self.peers.get(&k)?.current.as_ref()).map_or(0, |s| s.remote_index);
        let n = wire::write_handshake_header(
            &mut self.sealed,
            PacketType::HandshakeInit,
            index,
            HandshakeSecond::Init { pattern, hint },
        );
        let Ok(m) = hs.write(&payload, &mut self.sealed[n..]) else { return };
        let len = match remote {
            Some(k) => append_mac1(&mut self.sealed, n + m, &Mac1Key::new(&self.cfg.network_key, Some(&k))),
            None => append_mac1(&mut self.sealed, n + m, &self.guard.mac1_xx),
        };
        let mac2 = match self.guard.jar.get(to, now) {
            Some(cookie) => cookie.mac2(&self.sealed[..len]),
            None => [0; MAC_LEN],
        };
        self.sealed[len..len + MAC_LEN].copy_from_slice(&mac2);
        let len = len + MAC_LEN;
        io.send(to, &self.sealed[..len]);
        self.handshakes.initiated += 1;
        let init = PendingInit::new(to, &self.sealed[..len]);
        self.indices.outgoing.insert(index, Outgoing { hs, target, init });
        match target {
            Target::Peer(k) => {
                if let Some(p) = self.peers.get_mut(&k) {
                    p.in_flight = Some(index);
                }
            }
            Target::Bootstrap(a) => {
                if let Some(b) = self.bootstraps.iter_mut().find(|b| b.addr == a) {
                    b.in_flight = Some(index);
                }
            }
        }
    }

    fn handshake_payload(&mut self, now: Instant, to: SocketAddr) -> Vec<u8> {
        let p = HandshakePayload {
            timestamp: self.stamp(now),
            name: self.cfg.name.clone(),
            observed: Some(to),
            cert: self.own_cert_bytes(),
        };
        postcard::to_allocvec(&p).expect("payload serializes")
    }

    fn fail_handshake(&mut self) {
        self.handshakes.failed += 1;
        self.drops.count(DropReason::HandshakeFailed);
    }

    fn refuse_mac1(&mut self) {
        self.handshakes.mac1_refused += 1;
        self.drops.count(DropReason::BadMac1);
    }

    fn refuse_cookie(&mut self) {
        self.handshakes.cookies_refused += 1;
        self.drops.count(DropReason::BadCookie);
    }

    /// The known peer an IK initiation from `from` rekeys with: `hint`
    /// is the index of one of its live sessions here and `from` its
    /// endpoint.
    fn hinted_peer(&self, hint: u32, from: SocketAddr) -> Option<PublicKey> {
        let key = *self.indices.sessions.get(&hint)?;
        (self.peers.get(&key)?.endpoint == Some(from)).then_some(key)
    }

    /// A handshake's first message: its MACs checked and its budget found
    /// (see the module docs), then answered (XX: the responder's half; IK:
    /// the session is made, held as the peer's next until confirmed), or
    /// under load answered with a cookie.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_init(
        &mut self,
        now: Instant,
        from: SocketAddr,
        sender: u32,
        pattern: Pattern,
        hint: u32,
        noise: &[u8],
        macs: Macs<'_>,
        io: &mut impl Io,
    ) {
        if !self.guard.mac1_in(pattern).verify(macs.mac1_covered, macs.mac1) {
            return self.refuse_mac1();
        }
        let peer = if pattern == Pattern::Ik { self.hinted_peer(hint, from) } else { None };
        let proven = macs.mac2.is_some_and(|(covered, mac2)| self.guard.minter.verify_mac2(now, from, covered, mac2));
        match self.guard.limiter.admit(from.ip(), peer, proven, now) {
            Admission::Go => {}
            Admission::Cookie => return self.send_cookie(now, from, sender, pattern, macs.mac1, io),
            Admission::Limited => {
                self.handshakes.rate_limited += 1;
                return self.drops.count(DropReason::RateLimited);
            }
        }
        let Ok(mut hs) = Handshake::responder(pattern, &self.cfg.keypair, &self.cfg.network_key, now) else {
            return self.fail_handshake();
        };
        let Ok(len) = hs.read(noise, &mut self.plain) else { return self.fail_handshake() };
        let index = self.fresh_index();
        match pattern {
            Pattern::Xx => {
                let payload = self.handshake_payload(now, from);
                let n = wire::write_handshake_header(
                    &mut self.sealed,
                    PacketType::HandshakeResponse,
                    index,
                    HandshakeSecond::Receiver(sender),
                );
                let Ok(m) = hs.write(&payload, &mut self.sealed[n..]) else { return self.fail_handshake() };
                let len = append_mac1(&mut self.sealed, n + m, &self.guard.mac1_xx);
                if self.indices.incoming.len() >= MAX_INCOMING {
                    let oldest = self.indices.incoming.iter().min_by_key(|(_, i)| i.hs.started).map(|(k, _)| *k);
                    if let Some(k) = oldest {
                        self.indices.incoming.remove(&k);
                    }
                }
                self.indices.incoming.insert(index, Incoming { hs, remote_index: sender });
                io.send(from, &self.sealed[..len]);
            }
            Pattern::Ik => {
                let Some(key) = hs.remote_static() else { return self.fail_handshake() };
                let Some(payload) = postcard::from_bytes::<HandshakePayload>(&self.plain[..len]).ok() else {
                    return self.fail_handshake();
                };
                if key == self.public_key() {
                    return self.fail_handshake();
                }
                let known_stamp = self.peers.get(&key).map_or(0, |p| p.last_hs_timestamp);
                if payload.timestamp <= known_stamp {
                    // A replayed initiation: answering it would let an
                    // attacker displace the live session.
                    return self.drops.count(DropReason::Replay);
                }
                let Ok(cert) = self.admit_cert(now, &key, payload.cert.as_deref()) else { return };
                let reply = self.handshake_payload(now, from);
                let n = wire::write_handshake_header(
                    &mut self.sealed,
                    PacketType::HandshakeResponse,
                    index,
                    HandshakeSecond::Receiver(sender),
                );
                let Ok(m) = hs.write(&reply, &mut self.sealed[n..]) else { return self.fail_handshake() };
                let Ok(session) = hs.into_session(index, sender, now) else { return self.fail_handshake() };
                let len = append_mac1(&mut self.sealed, n + m, &Mac1Key::new(&self.cfg.network_key, Some(&key)));
                io.send(from, &self.sealed[..len]);
                self.handshakes.completed += 1;
                let p = self.peer_entry(key, now);
                p.last_hs_timestamp = payload.timestamp;
                p.endpoint = Some(from);
                p.set_identity(&payload.name, cert);
                // Saved, so a restart does not accept this initiation again.
                self.emit(Event::PeersChanged);
                if let Some(a) = payload.observed {
                    self.observed.report(a, key);
                }
                let p = self.peers.get_mut(&key).expect("entry made above");
                // Not used for sending until the initiator proves it holds it.
                if let Some(old) = p.next.replace(session) {
                    self.indices.sessions.remove(&old.local_index);
                }
                self.indices.sessions.insert(index, key);
            }
        }
    }

    /// An initiation this host is too loaded to answer now: its source
    /// gets a cookie, sealed to the initiation (see [`crate::cookie`]).
    fn send_cookie(
        &mut self,
        now: Instant,
        to: SocketAddr,
        receiver: u32,
        pattern: Pattern,
        mac1: &[u8; MAC_LEN],
        io: &mut impl Io,
    ) {
        let cookie = self.guard.minter.cookie(now, to, &mut self.rng);
        let mut nonce = [0u8; COOKIE_NONCE_LEN];
        self.rng.fill_bytes(&mut nonce);
        let key = match pattern {
            Pattern::Ik => &self.guard.cookie_ik,
            Pattern::Xx => &self.guard.cookie_xx,
        };
        let sealed = cookie::seal(key, &nonce, mac1, &cookie);
        let n = wire::write_cookie_reply(&mut self.sealed, receiver, &nonce, &sealed);
        io.send(to, &self.sealed[..n]);
        self.handshakes.cookies_sent += 1;
    }

    /// A cookie reply to an initiation this host sent: the cookie is kept
    /// for that address and the initiation sent again with mac2 (once).
    pub(super) fn on_cookie(
        &mut self,
        now: Instant,
        from: SocketAddr,
        receiver: u32,
        nonce: &[u8; COOKIE_NONCE_LEN],
        sealed: &[u8; SEALED_COOKIE_LEN],
        io: &mut impl Io,
    ) {
        let Some(out) = self.indices.outgoing.get_mut(&receiver).filter(|o| o.init.to == from) else {
            return self.refuse_cookie();
        };
        let key = match out.target {
            Target::Peer(k) => CookieKey::new(&self.cfg.network_key, Some(&k)),
            Target::Bootstrap(_) => self.guard.cookie_xx.clone(),
        };
        let Some(cookie) = cookie::open(&key, nonce, out.init.mac1(), sealed) else {
            return self.refuse_cookie();
        };
        if let Some(again) = out.init.retry_with(&cookie) {
            io.send(from, again);
        }
        self.guard.jar.insert(from, cookie, now);
    }

    /// The answer to a handshake this node started: its mac1 checked, then
    /// the session is installed (XX: after sending the final message).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        sender: u32,
        receiver: u32,
        noise: &[u8],
        macs: Macs<'_>,
        io: &mut impl Io,
    ) {
        let Some(pattern) = self.indices.outgoing.get(&receiver).map(|o| o.hs.pattern) else {
            return self.drops.count(DropReason::UnknownSession);
        };
        if !self.guard.mac1_in(pattern).verify(macs.mac1_covered, macs.mac1) {
            return self.refuse_mac1();
        }
        let mut out = self.indices.outgoing.remove(&receiver).expect("looked up above");
        self.clear_in_flight(out.target, receiver);
        let Some((key, payload)) = self.read_peer_message(&mut out.hs, noise) else { return };
        let Ok(cert) = self.admit_cert(now, &key, payload.cert.as_deref()) else { return };
        if out.hs.pattern == Pattern::Xx {
            let mine = self.handshake_payload(now, from);
            let n = wire::write_handshake_header(
                &mut self.sealed,
                PacketType::HandshakeFinal,
                receiver,
                HandshakeSecond::Receiver(sender),
            );
            let Ok(m) = out.hs.write(&mine, &mut self.sealed[n..]) else { return self.fail_handshake() };
            io.send(from, &self.sealed[..n + m]);
        }
        let Ok(session) = out.hs.into_session(receiver, sender, now) else { return self.fail_handshake() };
        if let Target::Bootstrap(addr) = out.target {
            if let Some(b) = self.bootstraps.iter_mut().find(|b| b.addr == addr) {
                b.key = Some(key);
                b.attempts = 0;
            }
        }
        let p = self.peer_entry(key, now);
        p.set_identity(&payload.name, cert);
        p.endpoint = Some(from);
        // The responder proved its key and the password: it is alive.
        p.live.heard(now);
        if let Some(a) = payload.observed {
            self.observed.report(a, key);
        }
        self.install(now, key, session, io);
    }

    /// The final message of an XX handshake this node answered: the
    /// session is installed.
    pub(super) fn on_final(
        &mut self,
        now: Instant,
        from: SocketAddr,
        sender: u32,
        receiver: u32,
        noise: &[u8],
        io: &mut impl Io,
    ) {
        let Some(mut inc) = self.indices.incoming.remove(&receiver) else {
            return self.drops.count(DropReason::UnknownSession);
        };
        if inc.remote_index != sender {
            return self.fail_handshake();
        }
        let Some((key, payload)) = self.read_peer_message(&mut inc.hs, noise) else { return };
        let Ok(cert) = self.admit_cert(now, &key, payload.cert.as_deref()) else { return };
        let Ok(mut session) = inc.hs.into_session(receiver, sender, now) else { return self.fail_handshake() };
        session.confirmed = true;
        let p = self.peer_entry(key, now);
        p.set_identity(&payload.name, cert);
        p.endpoint = Some(from);
        p.last_hs_timestamp = p.last_hs_timestamp.max(payload.timestamp);
        p.live.heard(now);
        if let Some(a) = payload.observed {
            self.observed.report(a, key);
        }
        self.install(now, key, session, io);
    }

    /// Reads the message that reveals the peer (its key and payload);
    /// counts a failure and returns None if it does not verify, does not
    /// decode, or comes from this host itself (our own address as --peer).
    fn read_peer_message(&mut self, hs: &mut Handshake, noise: &[u8]) -> Option<(PublicKey, HandshakePayload)> {
        let found = hs.read(noise, &mut self.plain).ok().and_then(|len| {
            let payload = postcard::from_bytes::<HandshakePayload>(&self.plain[..len]).ok()?;
            let key = hs.remote_static().filter(|k| *k != self.public_key())?;
            Some((key, payload))
        });
        if found.is_none() {
            self.fail_handshake();
        }
        found
    }

    /// Makes `session` the peer's current one and greets the peer on it.
    fn install(&mut self, now: Instant, key: PublicKey, session: Session, io: &mut impl Io) {
        self.handshakes.completed += 1;
        let first = self.peers.get(&key).is_none_or(|p| p.current.is_none());
        self.install_session(now, key, session);
        if first && self.trust.is_some() {
            // A host that was away may have missed revocations.
            self.send_revocations(now, key, io);
        }
        // A ping at once: confirms the session to an IK responder and
        // measures the round trip.
        self.send_ping(now, key, io);
        self.gossip_peer_up(now, key, io);
    }

    fn clear_in_flight(&mut self, target: Target, index: u32) {
        match target {
            Target::Peer(k) => {
                if let Some(p) = self.peers.get_mut(&k).filter(|p| p.in_flight == Some(index)) {
                    p.in_flight = None;
                }
            }
            Target::Bootstrap(a) => {
                if let Some(b) = self.bootstraps.iter_mut().find(|b| b.addr == a && b.in_flight == Some(index)) {
                    b.in_flight = None;
                }
            }
        }
    }
}
