//! Liveness on the node: which peers this host monitors (its successors on
//! the ring of connected keys), the probes [`crate::liveness`] asks for,
//! this host's own health and stalls, suspicions announced and heard, and
//! what a verdict changes (routes, the own record's unreachable list, the
//! gossip peer set; never the session, which the rechecks use).

use super::{Io, Node};
use crate::keys::{PublicKey, KEY_LEN};
use crate::liveness::{self, Verdict, STALL};
use crate::stats::DropReason;
use crate::wire::Kind;
use std::time::{Duration, Instant};

/// Suspicions a peer may announce per second; more are ignored (counted).
const SUSPICIONS_PER_SECOND: u32 = 16;

impl Node {
    /// Polls every peer's liveness: pings to send, verdicts to act on.
    pub(super) fn liveness_tick(&mut self, now: Instant, io: &mut impl Io) {
        if self.members_dirty {
            self.members_dirty = false;
            let me = self.public_key();
            let members: Vec<PublicKey> = self.peers.values().filter(|p| p.is_connected()).map(|p| p.key).collect();
            self.monitored = liveness::monitored_by(&me, members.iter());
        }
        let cfg = self.cfg.timers.probe;
        let mut pings = Vec::new();
        let mut downs = Vec::new();
        let mut failed = 0;
        for p in self.peers.values_mut() {
            if p.current.is_none() {
                continue;
            }
            let monitored = self.monitored.contains(&p.key);
            match p.live.poll(now, &cfg, monitored, p.rtt, self.health) {
                Verdict::Idle => {}
                Verdict::Ping => pings.push(p.key),
                Verdict::StillDown => failed += 1,
                Verdict::Down { announce } => downs.push((p.key, announce)),
            }
        }
        for _ in 0..failed + downs.len() {
            self.health.worse();
        }
        for k in pings {
            self.send_ping(now, k, io);
        }
        for (k, announce) in downs {
            self.peer_went_down(k);
            if announce {
                let to: Vec<PublicKey> = self.peers.values().filter(|p| p.is_connected()).map(|p| p.key).collect();
                for t in to {
                    self.send_control(now, t, Kind::Suspect, &k.0, io);
                }
            }
        }
    }

    /// The tick ran `late` after it was due: a stall of [`STALL`] or more
    /// (this process starved of CPU, or busy) makes this host less sure of
    /// its own probing, and running probes get the time back.
    pub(super) fn stalled(&mut self, late: Duration) {
        if late < STALL {
            return;
        }
        self.stalls += 1;
        self.health.worse();
        for p in self.peers.values_mut() {
            p.live.postpone(late);
        }
    }

    /// A peer's liveness verdict is down: traffic for it moves to a relay,
    /// and the own record says this host no longer reaches it.
    pub(super) fn peer_went_down(&mut self, key: PublicKey) {
        self.peers_down += 1;
        self.gossip.peer_down(&key);
        self.members_dirty = true;
        self.routes_dirty = true;
    }

    /// An authenticated packet from `key` (a direct peer) arrived.
    pub(super) fn heard_from(&mut self, now: Instant, key: PublicKey, io: &mut impl Io) {
        let Some(p) = self.peers.get_mut(&key) else { return };
        if p.live.probing() {
            self.health.better();
        }
        if p.live.heard(now) && p.current.is_some() {
            // Back from down.
            self.members_dirty = true;
            self.routes_dirty = true;
            self.gossip_peer_up(now, key, io);
        }
    }

    /// A peer announces it suspects a host: probe that host ourselves (a
    /// suspicion is never believed as such). About ourselves: answer with a
    /// ping, which proves we are alive.
    pub(super) fn on_suspect(&mut self, now: Instant, from: PublicKey, body: &[u8], io: &mut impl Io) {
        let Ok(key) = <[u8; KEY_LEN]>::try_from(body).map(PublicKey) else {
            return self.drops.count(DropReason::BadPayload);
        };
        let Some(sender) = self.peers.get_mut(&from) else { return };
        if now.saturating_duration_since(sender.suspicions.0) >= Duration::from_secs(1) {
            sender.suspicions = (now, 0);
        }
        sender.suspicions.1 += 1;
        if sender.suspicions.1 > SUSPICIONS_PER_SECOND {
            return self.drops.count(DropReason::RateLimited);
        }
        if key == self.public_key() {
            // Suspected while alive: this host may be the slow one.
            self.health.worse();
            return self.send_ping(now, from, io);
        }
        if let Some(p) = self.peers.get_mut(&key) {
            if p.current.is_some() && p.live.verify(now) {
                self.send_ping(now, key, io);
            }
        }
    }
}
