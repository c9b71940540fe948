//! Handshake budgets: who gets a Diffie-Hellman, and when the responder is
//! under load and asks for cookies instead.
//!
//! Only initiations whose mac1 verified get here ([`crate::hsmac`]):
//! strangers without the network key are refused before any accounting, so
//! they cannot spend anyone's budget. Of the rest, each is charged to one
//! budget ([`HandshakeLimiter::admit`]):
//!
//! 1. A known peer's rekey: an IK initiation from the peer's endpoint whose
//!    hint names a live session with that peer goes on the peer's own
//!    small budget ([`Limits::peer_rate`]), so a flood can never keep
//!    sessions from being replaced. When that budget is spent, the
//!    initiation is treated as anyone's (below): never worse off.
//! 2. An initiation with a valid mac2 (its source proved, with a cookie,
//!    that it receives at its address) goes on that source's budget only:
//!    a source that proves its address is never starved by others' junk.
//! 3. Any other initiation needs a token from the global budget
//!    ([`Limits::global_rate`]) and one from its source's. With the global
//!    budget spent the responder is under load: it answers with a cookie
//!    reply, which costs it one BLAKE2s and one XChaCha20-Poly1305 seal and
//!    no state.
//!
//! What a member (a holder of the password) can do, since it can make a
//! valid mac1: spend the global budget (the DH it buys is bounded by the
//! global rate) and so put the responder under load, after which
//! initiations from addresses it spoofs get cookie replies it never
//! receives (smaller than the initiations: no amplification); from
//! addresses it really has, each gets its per-source budget. It can charge
//! a known peer's budget only by spoofing that peer's endpoint and naming
//! one of its live session indices (both visible to an on-path observer,
//! guessing the index is 1 in 2^32): the peer then falls to rule 2 and its
//! rekey costs one cookie round trip. A replayed initiation passes mac1
//! too; it is charged like any other, and the handshake's timestamp check
//! refuses it after its DH. Keeping the hint a session index rather than a
//! key keeps the initiator's identity off the wire, as Noise IK does.

use crate::keys::PublicKey;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// A token bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Bucket { tokens: burst, at: now }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.at = now;
    }

    fn take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        self.refill(rate, burst, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether it would be full again at `now` (nothing to remember).
    fn refilled(&self, rate: f64, burst: f64, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * rate >= burst
    }
}

/// The budgets' rates (per second) and bursts.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Each source IP's rate...
    pub source_rate: f64,
    /// ...and burst.
    pub source_burst: f64,
    /// Initiations from anyone without a proven address, in all (burst: one
    /// second's worth). Past it the responder is under load.
    pub global_rate: f64,
    /// Each known peer's rate for its own rekeys...
    pub peer_rate: f64,
    /// ...and burst.
    pub peer_burst: f64,
}

impl Default for Limits {
    /// 5/s (burst 20) per source, 500/s in all, and 0.5/s (burst 5) per
    /// known peer: a peer rekeys every two minutes, and retries a lost
    /// handshake after two seconds.
    fn default() -> Self {
        Limits { source_rate: 5.0, source_burst: 20.0, global_rate: 500.0, peer_rate: 0.5, peer_burst: 5.0 }
    }
}

/// What to do with an initiation whose mac1 verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Do the handshake.
    Go,
    /// Under load: answer with a cookie reply, nothing else.
    Cookie,
    /// Over its source's budget: drop it.
    Limited,
}

/// Sources (and peers) remembered at most; beyond this the ones whose
/// buckets are full again are forgotten.
const MAX_ENTRIES: usize = 4096;

/// The handshake budgets: per source IP, per known peer, and global.
#[derive(Debug)]
pub struct HandshakeLimiter {
    per_source: HashMap<IpAddr, Bucket>,
    per_peer: HashMap<PublicKey, Bucket>,
    global: Bucket,
    limits: Limits,
}

/// Takes a token from `map[key]` (made full if new); false when empty, or
/// when the map is full of buckets still refilling.
fn take_keyed<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Bucket>,
    key: K,
    rate: f64,
    burst: f64,
    now: Instant,
) -> bool {
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        map.retain(|_, b| !b.refilled(rate, burst, now));
        if map.len() >= MAX_ENTRIES {
            return false;
        }
    }
    map.entry(key).or_insert(Bucket::full(burst, now)).take(rate, burst, now)
}

impl HandshakeLimiter {
    /// Budgets with these limits, all full at `now`.
    pub fn new(limits: Limits, now: Instant) -> Self {
        HandshakeLimiter {
            per_source: HashMap::new(),
            per_peer: HashMap::new(),
            global: Bucket::full(limits.global_rate, now),
            limits,
        }
    }

    /// Decides about an initiation from `src` whose mac1 verified. `peer`:
    /// the known peer it claims to rekey with (see the module docs for when
    /// that holds); `proven`: its mac2 verified.
    pub fn admit(&mut self, src: IpAddr, peer: Option<PublicKey>, proven: bool, now: Instant) -> Admission {
        let l = self.limits;
        if let Some(k) = peer {
            if take_keyed(&mut self.per_peer, k, l.peer_rate, l.peer_burst, now) {
                return Admission::Go;
            }
        }
        if proven {
            return if take_keyed(&mut self.per_source, src, l.source_rate, l.source_burst, now) {
                Admission::Go
            } else {
                Admission::Limited
            };
        }
        self.global.refill(l.global_rate, l.global_rate, now);
        if self.global.tokens < 1.0 {
            return Admission::Cookie;
        }
        if !take_keyed(&mut self.per_source, src, l.source_rate, l.source_burst, now) {
            return Admission::Limited;
        }
        self.global.tokens -= 1.0;
        Admission::Go
    }

    /// Whether the responder is under load at `now`: the global budget is
    /// spent, so initiations without a proven address get cookies.
    pub fn under_load(&mut self, now: Instant) -> bool {
        let rate = self.limits.global_rate;
        self.global.refill(rate, rate, now);
        self.global.tokens < 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limits(source_burst: f64, global_rate: f64) -> Limits {
        Limits { source_rate: 1.0, source_burst, global_rate, peer_rate: 1.0, peer_burst: 2.0 }
    }

    #[test]
    fn limits_per_source_and_refills() {
        let t0 = Instant::now();
        let mut l = HandshakeLimiter::new(limits(3.0, 100.0), t0);
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let admitted = (0..5).filter(|_| l.admit(a, None, false, t0) == Admission::Go).count();
        assert_eq!(admitted, 3);
        assert_eq!(l.admit(a, None, false, t0), Admission::Limited);
        assert_eq!(l.admit(b, None, false, t0), Admission::Go, "another source has its own bucket");
        assert_eq!(l.admit(a, None, false, t0 + Duration::from_secs(1)), Admission::Go);
        assert_eq!(l.admit(a, None, false, t0 + Duration::from_secs(1)), Admission::Limited);
    }

    #[test]
    fn under_load_only_proven_sources_and_known_peers_get_through() {
        let t0 = Instant::now();
        let mut l = HandshakeLimiter::new(limits(3.0, 10.0), t0);
        // Ten sources spend the global budget.
        for i in 0..10 {
            assert_eq!(l.admit(ip(&format!("10.0.1.{i}")), None, false, t0), Admission::Go);
        }
        assert!(l.under_load(t0));
        // A fresh source now gets a cookie, and is not charged for it.
        let new = ip("10.0.2.1");
        for _ in 0..10 {
            assert_eq!(l.admit(new, None, false, t0), Admission::Cookie);
        }
        // With its cookie it goes through on its own budget: all three tokens.
        for _ in 0..3 {
            assert_eq!(l.admit(new, None, true, t0), Admission::Go);
        }
        assert_eq!(l.admit(new, None, true, t0), Admission::Limited, "its own budget is still a budget");
        // A known peer's rekey has its own budget, then falls back to the rest.
        let peer = PublicKey([9; 32]);
        let from = ip("10.0.3.1");
        assert_eq!(l.admit(from, Some(peer), false, t0), Admission::Go);
        assert_eq!(l.admit(from, Some(peer), false, t0), Admission::Go);
        assert_eq!(l.admit(from, Some(peer), false, t0), Admission::Cookie, "spent: treated as anyone");
        assert_eq!(l.admit(from, Some(peer), true, t0), Admission::Go, "and its cookie still works");
        // A second later the global budget is back.
        let t1 = t0 + Duration::from_secs(1);
        assert!(!l.under_load(t1));
        assert_eq!(l.admit(ip("10.0.4.1"), None, false, t1), Admission::Go);
    }

    #[test]
    fn many_sources_do_not_grow_the_table_or_lock_out_new_ones() {
        let t0 = Instant::now();
        let mut l = HandshakeLimiter::new(limits(2.0, 1e9), t0);
        for i in 0..(MAX_ENTRIES as u32 + 100) {
            l.admit(IpAddr::from((0x0a00_0000u32 + i).to_be_bytes()), None, false, t0);
        }
        assert!(l.per_source.len() <= MAX_ENTRIES);
        // Once their buckets are full again they are forgotten for new sources.
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(l.admit(ip("192.0.2.1"), None, false, t1), Admission::Go);
        assert!(l.per_source.len() < MAX_ENTRIES);
    }
}
