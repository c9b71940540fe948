//! The periodic connection upkeep (the rest of the periodic work is in
//! each concern's own `*_tick`, called from [`Node::handle_timeout`]):
//! handshakes that time out and their backoff, sessions that expire,
//! dialling bootstrap addresses, and per peer rekeys and reconnections.

use super::peer::Target;
use super::{Io, Node};
use crate::keys::PublicKey;
use rand::Rng;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Longest time between two scans of the sessions for expiry.
const SESSION_SCAN: Duration = Duration::from_secs(1);

/// A peer down this long with its session kept is dialled again (it may
/// have lost the session, e.g. restarted where it could not reach us).
/// Sooner, the rechecks on the kept session find it: a handshake per
/// verdict made every false verdict under load cost a session rebuild.
const REDIAL_DOWN_AFTER: Duration = Duration::from_secs(15);

impl Node {
    /// How long to wait before the next attempt after `attempts` failed ones.
    fn backoff(&mut self, attempts: u32) -> Duration {
        let base = Duration::from_secs(1) * 2u32.saturating_pow(attempts.min(16));
        let capped = base.min(self.cfg.timers.max_backoff);
        // Up to 25% jitter so peers that lost each other do not retry in lockstep.
        capped + capped.mul_f64(self.rng.gen::<f64>() * 0.25)
    }

    /// Gives up on handshakes unanswered too long; the next attempt waits
    /// a backoff. "Too long" stretches with this host's local health (see
    /// [`crate::liveness::LocalHealth`]): a host that stalls or whose
    /// probes fail is in a slow mesh, where giving up on an answer that is
    /// only late costs the responder's work and a new handshake.
    pub(super) fn expire_handshakes(&mut self, now: Instant) {
        let timeout = self.cfg.timers.handshake_timeout * self.health.multiplier();
        let stale: Vec<(u32, Target)> = self
            .indices
            .outgoing
            .iter()
            .filter(|(_, o)| now.saturating_duration_since(o.hs.started) >= timeout)
            .map(|(i, o)| (*i, o.target))
            .collect();
        for (i, target) in stale {
            self.indices.outgoing.remove(&i);
            match target {
                Target::Peer(k) => {
                    let Some(attempts) = self.peers.get_mut(&k).map(|p| {
                        p.in_flight = None;
                        p.attempts += 1;
                        p.attempts
                    }) else {
                        continue;
                    };
                    let wait = self.backoff(attempts - 1);
                    if let Some(p) = self.peers.get_mut(&k) {
                        p.next_attempt = now + wait;
                    }
                }
                Target::Bootstrap(a) => {
                    let Some(pos) = self.bootstraps.iter().position(|b| b.addr == a) else { continue };
                    self.bootstraps[pos].in_flight = None;
                    self.bootstraps[pos].attempts += 1;
                    let wait = self.backoff(self.bootstraps[pos].attempts - 1);
                    self.bootstraps[pos].next_attempt = now + wait;
                }
            }
        }
        self.indices.incoming.retain(|_, i| now.saturating_duration_since(i.hs.started) < timeout * 2);
    }

    /// Drops sessions too old to use.
    ///
    /// The scan runs only when a session may have reached the limit: at the
    /// earliest expiry it saw, and at least every [`SESSION_SCAN`] (or
    /// `reject_after`, if shorter), so a session made after a scan (which
    /// expires `reject_after` later) is never missed. With hundreds of peers
    /// a scan every tick was a good part of an idle host's CPU.
    pub(super) fn expire_sessions(&mut self, now: Instant) {
        if now < self.next_session_scan {
            return;
        }
        let reject = self.cfg.timers.reject_after;
        let mut next = now + SESSION_SCAN.min(reject);
        let mut removed = Vec::new();
        let mut lost = Vec::new();
        for p in self.peers.values_mut() {
            for slot in [&mut p.current, &mut p.previous, &mut p.next] {
                match slot.as_ref().map(|s| s.established + reject) {
                    Some(at) if at <= now => removed.push(slot.take().expect("checked").local_index),
                    Some(at) => next = next.min(at),
                    None => {}
                }
            }
            if p.current.is_none() && p.previous.is_some() {
                p.current = p.previous.take();
            }
            if p.current.is_none() {
                lost.push(p.key);
            }
        }
        self.next_session_scan = next;
        if !removed.is_empty() {
            self.routes_dirty = true;
            self.members_dirty = true;
        }
        for i in removed {
            self.indices.sessions.remove(&i);
        }
        for k in lost {
            self.gossip.peer_down(&k);
        }
    }

    /// XX handshakes to configured addresses whose peer is not connected.
    pub(super) fn dial_bootstraps(&mut self, now: Instant, io: &mut impl Io) {
        for i in 0..self.bootstraps.len() {
            let b = &self.bootstraps[i];
            if b.in_flight.is_some() || now < b.next_attempt {
                continue;
            }
            if let Some(k) = b.key {
                // Known: the peer's own IK reconnection handles it, unless
                // that keeps failing (the host may have a new key).
                let p = self.peers.get(&k);
                if p.is_some_and(|p| p.is_connected() || p.in_flight.is_some() || p.attempts < 3) {
                    continue;
                }
            }
            let addr = b.addr;
            self.initiate(now, Target::Bootstrap(addr), addr, io);
        }
    }

    /// Rekeys and reconnections for every known peer. (Liveness probes are
    /// `liveness`'s: no peer is pinged for its own sake.)
    pub(super) fn maintain_peers(&mut self, now: Instant, io: &mut impl Io) {
        let t = &self.cfg.timers;
        let hs_timeout = t.handshake_timeout * self.health.multiplier();
        let mut dials: Vec<(PublicKey, SocketAddr)> = Vec::new();
        for p in self.peers.values() {
            let age = p.current.as_ref().map(|s| (now.saturating_duration_since(s.established), s.initiator));
            // The initiator rekeys first; the responder steps in a little later.
            let rekey = age
                .is_some_and(|(a, init)| a >= t.rekey_after + if init { Duration::ZERO } else { t.rekey_after / 12 });
            let lost = p.current.is_none() || p.live.down_for(now).is_some_and(|d| d >= REDIAL_DOWN_AFTER);
            // A session this host just answered (IK) waits for the
            // initiator's first packet: dialling back would make a second.
            let answered = p.next.as_ref().is_some_and(|s| now.saturating_duration_since(s.established) < hs_timeout);
            let wants = (lost && !answered) || rekey;
            if !wants || p.in_flight.is_some() || now < p.next_attempt {
                continue;
            }
            // Only peers reachable directly are worth dialling: the last
            // endpoint, else a candidate from gossip, rotating on failures.
            let mut addrs: Vec<SocketAddr> = p.endpoint.into_iter().collect();
            addrs.extend(p.candidates.iter().filter(|c| Some(**c) != p.endpoint));
            if addrs.is_empty() {
                continue;
            }
            dials.push((p.key, addrs[p.attempts as usize % addrs.len()]));
        }
        for (k, to) in dials {
            self.initiate(now, Target::Peer(k), to, io);
        }
    }
}
