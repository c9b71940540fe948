//! Failure detection whose cost per host does not grow with the mesh.
//!
//! Every host keeps a session with every other, but does not ping them
//! all: it *monitors* only its [`MONITORS`] successors on the ring of
//! member keys (so every host is monitored by that many predecessors), one
//! ping each per `probe_interval`. A monitored host that misses
//! `probe_tries` pings in a row (each given `probe_timeout`, or three
//! round trips when that is longer) is down for its monitor, which tells
//! every peer it *suspects* it. A suspicion is never believed as such: each
//! peer that hears one probes the host itself the same way, and marks it
//! down only if it gets no answer either. One lossy link, or one lying
//! peer, costs a few pings and cannot take a healthy host out of the mesh
//! (SWIM's indirect probes, with every peer as a witness).
//!
//! Hosts also probe a peer they are sending to and have not heard from for
//! `quiet` (a cut path shows up in about a second where traffic flows), and
//! a peer whose own record says it cannot reach this host. A down peer is
//! probed every `down_probe_interval` so that a healed path is found, and
//! any authenticated packet from it brings it back.
//!
//! This module decides; the node sends the pings, broadcasts suspicions
//! and moves traffic to relays. Chosen over the `foca` crate (SWIM, sans
//! I/O): foca keeps its own membership list and gossip, which here already
//! exist as signed records and sessions; what is left, probing over the
//! existing sessions, is this small state machine.

use crate::keys::PublicKey;
use std::time::{Duration, Instant};

/// How many successors each host monitors.
pub const MONITORS: usize = 2;

/// Probe timing. The defaults are what a deployment uses.
#[derive(Clone, Copy, Debug)]
pub struct ProbeConfig {
    /// A monitor pings each host it monitors this often.
    pub probe_interval: Duration,
    /// Least time to wait for a pong before the next try.
    pub probe_timeout: Duration,
    /// Pings without an answer before a host is down.
    pub probe_tries: u32,
    /// Probe a peer we sent to and have not heard from for this long.
    pub quiet: Duration,
    /// Probe a down peer this often.
    pub down_probe_interval: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(200),
            probe_tries: 3,
            quiet: Duration::from_secs(1),
            down_probe_interval: Duration::from_secs(5),
        }
    }
}

/// Why a probe runs (and so what its failure means).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// We monitor this host: a failure is announced to every peer.
    Monitor,
    /// A peer suspects it, or its record says it cannot reach us.
    Verify,
    /// We send to it and hear nothing back.
    Quiet,
    /// It is down; checking whether it is back.
    Recheck,
}

#[derive(Clone, Copy, Debug)]
struct Probe {
    reason: Reason,
    tries: u32,
    last_try: Instant,
}

/// What the node should do for one peer after [`PeerLiveness::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing now.
    Idle,
    /// Send it a ping.
    Ping,
    /// It is down: stop sending to it directly. `announce`: tell every
    /// peer (it failed our monitoring).
    Down { announce: bool },
}

/// One peer's liveness, kept by the node beside its sessions.
#[derive(Clone, Debug)]
pub struct PeerLiveness {
    last_heard: Option<Instant>,
    last_sent: Option<Instant>,
    probe: Option<Probe>,
    down: bool,
    next_monitor: Option<Instant>,
    next_recheck: Option<Instant>,
}

impl Default for PeerLiveness {
    fn default() -> Self {
        Self::new()
    }
}

impl PeerLiveness {
    /// A peer with nothing heard yet, not down.
    pub fn new() -> Self {
        PeerLiveness {
            last_heard: None,
            last_sent: None,
            probe: None,
            down: false,
            next_monitor: None,
            next_recheck: None,
        }
    }

    /// Whether it is down for this host.
    pub fn is_down(&self) -> bool {
        self.down
    }

    /// When an authenticated packet last came from it.
    pub fn last_heard(&self) -> Option<Instant> {
        self.last_heard
    }

    /// An authenticated packet came from it. Returns true when that brings
    /// a down peer back.
    pub fn heard(&mut self, now: Instant) -> bool {
        self.last_heard = Some(now);
        self.probe = None;
        std::mem::replace(&mut self.down, false)
    }

    /// Something was sent to it.
    pub fn sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
    }

    /// Starts a probe for `reason` unless one runs or it is down already.
    /// Returns whether a ping should go now.
    pub fn verify(&mut self, now: Instant) -> bool {
        if self.down || self.probe.is_some() {
            return false;
        }
        self.probe = Some(Probe { reason: Reason::Verify, tries: 1, last_try: now });
        true
    }

    /// The session is gone (or new): forget probes, keep what was heard.
    pub fn reset(&mut self) {
        self.probe = None;
        self.down = false;
        self.next_monitor = None;
    }

    /// Decides what to do now. `monitored`: this host is one of ours to
    /// monitor; `rtt`: the last measured round trip, if any.
    pub fn poll(&mut self, now: Instant, cfg: &ProbeConfig, monitored: bool, rtt: Option<Duration>) -> Verdict {
        if let Some(p) = self.probe.as_mut() {
            let timeout = cfg.probe_timeout.max(rtt.map_or(Duration::ZERO, |r| r * 3)).min(Duration::from_secs(2));
            if now.saturating_duration_since(p.last_try) < timeout {
                return Verdict::Idle;
            }
            if p.tries < cfg.probe_tries {
                p.tries += 1;
                p.last_try = now;
                return Verdict::Ping;
            }
            let reason = p.reason;
            self.probe = None;
            if reason == Reason::Recheck {
                self.next_recheck = Some(now + cfg.down_probe_interval);
                return Verdict::Idle;
            }
            self.down = true;
            self.next_recheck = Some(now + cfg.down_probe_interval);
            return Verdict::Down { announce: reason == Reason::Monitor };
        }
        if self.down {
            if self.next_recheck.is_none_or(|t| now >= t) {
                self.probe = Some(Probe { reason: Reason::Recheck, tries: 1, last_try: now });
                return Verdict::Ping;
            }
            return Verdict::Idle;
        }
        let heard = self.last_heard.unwrap_or(now);
        let quiet = self.last_sent.is_some_and(|s| s > heard) && now.saturating_duration_since(heard) >= cfg.quiet;
        let due = monitored && self.next_monitor.is_none_or(|t| now >= t);
        if !monitored {
            self.next_monitor = None;
        }
        if quiet || due {
            if monitored {
                self.next_monitor = Some(now + cfg.probe_interval);
            }
            let reason = if due { Reason::Monitor } else { Reason::Quiet };
            self.probe = Some(Probe { reason, tries: 1, last_try: now });
            return Verdict::Ping;
        }
        Verdict::Idle
    }

    /// When [`PeerLiveness::poll`] may next have something to do.
    pub fn poll_at(&self, cfg: &ProbeConfig) -> Option<Instant> {
        if let Some(p) = &self.probe {
            return Some(p.last_try + cfg.probe_timeout);
        }
        if self.down {
            return self.next_recheck;
        }
        let quiet = match (self.last_sent, self.last_heard) {
            (Some(s), Some(h)) if s > h => Some(h + cfg.quiet),
            (Some(s), None) => Some(s + cfg.quiet),
            _ => None,
        };
        [quiet, self.next_monitor].into_iter().flatten().min()
    }
}

/// The hosts `me` monitors: its [`MONITORS`] successors among `members`
/// (every host with a live session, `me` excluded), in key order, wrapping
/// around. Deterministic, so every host agrees given the same members.
pub fn monitored_by<'a>(me: &PublicKey, members: impl Iterator<Item = &'a PublicKey>) -> Vec<PublicKey> {
    let mut after: Vec<PublicKey> = Vec::new();
    let mut before: Vec<PublicKey> = Vec::new();
    for k in members {
        if k > me {
            after.push(*k);
        } else if k < me {
            before.push(*k);
        }
    }
    after.sort_unstable();
    before.sort_unstable();
    after.into_iter().chain(before).take(MONITORS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Drives one peer's liveness every 10 ms for `d`, the peer answering
    /// pings when `alive` says so (after 1 ms); returns when it went down.
    fn drive(
        l: &mut PeerLiveness,
        t0: Instant,
        d: Duration,
        monitored: bool,
        alive: impl Fn(Duration) -> bool,
    ) -> (Option<Duration>, u32) {
        let cfg = ProbeConfig::default();
        let mut pings = 0;
        let mut answer_at: Option<Instant> = None;
        let mut t = t0;
        while t < t0 + d {
            if answer_at.is_some_and(|a| t >= a) {
                answer_at = None;
                l.heard(t);
            }
            match l.poll(t, &cfg, monitored, Some(ms(1))) {
                Verdict::Ping => {
                    pings += 1;
                    if alive(t - t0) {
                        answer_at = Some(t + ms(1));
                    }
                }
                Verdict::Down { .. } => return (Some(t - t0), pings),
                Verdict::Idle => {}
            }
            t += ms(10);
        }
        (None, pings)
    }

    #[test]
    fn a_monitored_host_that_dies_is_down_within_two_seconds() {
        let t0 = Instant::now();
        let mut l = PeerLiveness::new();
        l.heard(t0);
        let (down, _) = drive(&mut l, t0, Duration::from_secs(10), true, |t| t < ms(3000));
        let down = down.expect("noticed");
        assert!(down > ms(3000) && down <= ms(3000 + 1000 + 650), "down at {down:?}");
        assert!(l.is_down());
    }

    #[test]
    fn a_healthy_monitored_host_costs_one_ping_a_second() {
        let t0 = Instant::now();
        let mut l = PeerLiveness::new();
        let (down, pings) = drive(&mut l, t0, Duration::from_secs(60), true, |_| true);
        assert_eq!(down, None);
        assert!((59..=61).contains(&pings), "{pings} pings");
    }

    #[test]
    fn an_unmonitored_idle_peer_is_never_pinged() {
        let t0 = Instant::now();
        let mut l = PeerLiveness::new();
        l.heard(t0);
        let (down, pings) = drive(&mut l, t0, Duration::from_secs(60), false, |_| false);
        assert_eq!((down, pings), (None, 0));
    }

    #[test]
    fn one_lost_pong_is_not_a_failure() {
        let t0 = Instant::now();
        let mut l = PeerLiveness::new();
        // Only the first try of each probe goes unanswered.
        let (down, _) = drive(&mut l, t0, Duration::from_secs(30), true, |t| t.as_millis() % 1000 >= 100);
        assert_eq!(down, None);
    }

    #[test]
    fn sending_without_hearing_back_probes_and_finds_a_cut_path() {
        let t0 = Instant::now();
        let cfg = ProbeConfig::default();
        let mut l = PeerLiveness::new();
        l.heard(t0);
        let mut t = t0;
        let mut went_down = None;
        while t < t0 + Duration::from_secs(5) {
            l.sent(t);
            if let Verdict::Down { announce } = l.poll(t, &cfg, false, None) {
                assert!(!announce, "a quiet peer is not announced");
                went_down = Some(t - t0);
                break;
            }
            t += ms(10);
        }
        let d = went_down.expect("noticed");
        assert!(d >= cfg.quiet && d <= cfg.quiet + ms(700), "{d:?}");
        // Down: rechecked now and then; an answer brings it back.
        assert_eq!(l.poll(t + ms(10), &cfg, false, None), Verdict::Idle);
        assert_eq!(l.poll(t + cfg.down_probe_interval, &cfg, false, None), Verdict::Ping);
        assert!(l.heard(t + cfg.down_probe_interval + ms(1)));
        assert!(!l.is_down());
    }

    #[test]
    fn verification_probes_and_only_then_marks_down() {
        let t0 = Instant::now();
        let cfg = ProbeConfig::default();
        let mut l = PeerLiveness::new();
        l.heard(t0);
        assert!(l.verify(t0));
        assert!(!l.verify(t0), "one probe at a time");
        // It answers: nothing happens.
        l.heard(t0 + ms(1));
        assert_eq!(l.poll(t0 + ms(500), &cfg, false, None), Verdict::Idle);
        // It does not: down after the tries, not announced.
        assert!(l.verify(t0 + ms(600)));
        let mut t = t0 + ms(600);
        let v = loop {
            t += ms(10);
            match l.poll(t, &cfg, false, None) {
                Verdict::Idle | Verdict::Ping => continue,
                v => break v,
            }
        };
        assert_eq!(v, Verdict::Down { announce: false });
    }

    #[test]
    fn monitors_are_the_successors_on_the_ring() {
        let k = |b: u8| PublicKey([b; 32]);
        let members = [k(1), k(3), k(5), k(7)];
        assert_eq!(monitored_by(&k(3), members.iter()), vec![k(5), k(7)]);
        assert_eq!(monitored_by(&k(6), members.iter()), vec![k(7), k(1)]);
        assert_eq!(monitored_by(&k(7), members.iter()), vec![k(1), k(3)]);
        assert_eq!(monitored_by(&k(1), [k(1)].iter()), Vec::<PublicKey>::new());
        // Every host is monitored by exactly MONITORS others.
        let all: Vec<PublicKey> = (0..20).map(|i| k(i * 11)).collect();
        for target in &all {
            let n = all.iter().filter(|m| monitored_by(m, all.iter().filter(|o| o != m)).contains(target)).count();
            assert_eq!(n, MONITORS);
        }
    }
}
