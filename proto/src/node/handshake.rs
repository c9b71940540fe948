//! Handshakes: starting them, answering them, and installing the sessions
//! they produce.

use super::peer::{Incoming, Outgoing, Target};
use super::{Event, Io, Node};
use crate::keys::PublicKey;
use crate::session::{Handshake, Session};
use crate::stats::DropReason;
use crate::wire::{self, HandshakeSecond, PacketType, Pattern};
use std::net::SocketAddr;
use std::time::Instant;

/// Pending XX responder handshakes kept at most (oldest dropped beyond).
const MAX_INCOMING: usize = 1024;

/// The payload inside handshake messages that carry one.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct HandshakePayload {
    /// Sender's clock (milliseconds, grows across restarts).
    timestamp: u64,
    name: String,
    /// The underlay address the sender sees the receiver at (so that hosts
    /// learn the endpoints to publish in their records).
    observed: Option<SocketAddr>,
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
        let n = wire::write_handshake_header(
            &mut self.sealed,
            PacketType::HandshakeInit,
            index,
            HandshakeSecond::Pattern(pattern),
        );
        let Ok(m) = hs.write(&payload, &mut self.sealed[n..]) else { return };
        io.send(to, &self.sealed[..n + m]);
        self.handshakes.initiated += 1;
        self.indices.outgoing.insert(index, Outgoing { hs, target });
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
        let p = HandshakePayload { timestamp: self.stamp(now), name: self.cfg.name.clone(), observed: Some(to) };
        postcard::to_allocvec(&p).expect("payload serializes")
    }

    fn fail_handshake(&mut self) {
        self.handshakes.failed += 1;
        self.drops.count(DropReason::HandshakeFailed);
    }

    /// A handshake's first message: answered (XX: the responder's half;
    /// IK: the session is made, held as the peer's next until confirmed).
    pub(super) fn on_init(
        &mut self,
        now: Instant,
        from: SocketAddr,
        sender: u32,
        pattern: Pattern,
        noise: &[u8],
        io: &mut impl Io,
    ) {
        if !self.limiter.allow(from.ip(), now) {
            self.handshakes.rate_limited += 1;
            return self.drops.count(DropReason::RateLimited);
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
                if self.indices.incoming.len() >= MAX_INCOMING {
                    let oldest = self.indices.incoming.iter().min_by_key(|(_, i)| i.hs.started).map(|(k, _)| *k);
                    if let Some(k) = oldest {
                        self.indices.incoming.remove(&k);
                    }
                }
                self.indices.incoming.insert(index, Incoming { hs, remote_index: sender });
                io.send(from, &self.sealed[..n + m]);
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
                let reply = self.handshake_payload(now, from);
                let n = wire::write_handshake_header(
                    &mut self.sealed,
                    PacketType::HandshakeResponse,
                    index,
                    HandshakeSecond::Receiver(sender),
                );
                let Ok(m) = hs.write(&reply, &mut self.sealed[n..]) else { return self.fail_handshake() };
                let Ok(session) = hs.into_session(index, sender, now) else { return self.fail_handshake() };
                io.send(from, &self.sealed[..n + m]);
                self.handshakes.completed += 1;
                let p = self.peer_entry(key, now);
                p.last_hs_timestamp = payload.timestamp;
                p.endpoint = Some(from);
                p.set_name(&payload.name);
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

    /// The answer to a handshake this node started: the session is
    /// installed (XX: after sending the final message).
    pub(super) fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        sender: u32,
        receiver: u32,
        noise: &[u8],
        io: &mut impl Io,
    ) {
        let Some(mut out) = self.indices.outgoing.remove(&receiver) else {
            return self.drops.count(DropReason::UnknownSession);
        };
        self.clear_in_flight(out.target, receiver);
        let Some((key, payload)) = self.read_peer_message(&mut out.hs, noise) else { return };
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
        p.set_name(&payload.name);
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
        let Ok(mut session) = inc.hs.into_session(receiver, sender, now) else { return self.fail_handshake() };
        session.confirmed = true;
        let p = self.peer_entry(key, now);
        p.set_name(&payload.name);
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
        self.install_session(now, key, session);
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
