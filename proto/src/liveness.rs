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
//! probed at once, then after 1 s, 2 s, 4 s and every `down_probe_interval` so that a
//! healed path (or a false verdict on a lossy one) is found soon, and
//! any authenticated packet from it brings it back.
//!
//! A host that is itself overloaded must not blame its peers: late pongs
//! that sat in its own queues look like dead hosts. Two guards, after
//! Lifeguard (the SWIM extension in HashiCorp's memberlist): a
//! [`LocalHealth`] score that rises when this host's probes fail or its
//! own timers run late and falls when probes are answered, multiplying its
//! probe timeouts and interval (up to [`MAX_HEALTH`]` + 1` times); and a
//! stall (the tick ran much later than due) postpones every running probe
//! by the stall, so time this process did not run is never charged to a
//! peer. A peer that is down keeps its session: the recheck pings travel
//! on it, and any answer restores the peer without a handshake (a mesh
//! that rebuilt sessions on every false verdict fed its own overload).
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

/// Highest [`LocalHealth`] score: timeouts grow at most this many times
/// over, plus one.
pub const MAX_HEALTH: u32 = 8;

/// A tick this much later than due is a stall of this host (starved of CPU
/// or busy): probes running meanwhile are postponed by it.
pub const STALL: Duration = Duration::from_millis(200);

/// How sure this host is that its own probing is sound (Lifeguard's local
/// health multiplier): 0 when healthy. Failed probes and stalls raise it,
/// answered probes lower it; probe timeouts and the monitoring interval
/// are multiplied by [`LocalHealth::multiplier`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalHealth {
    score: u32,
}

impl LocalHealth {
    /// The current score, 0 (healthy) to [`MAX_HEALTH`].
    pub fn score(&self) -> u32 {
        self.score
    }

    /// What timeouts are multiplied by: score + 1.
    pub fn multiplier(&self) -> u32 {
        self.score + 1
    }

    /// A probe ended without an answer, this host stalled, or a peer
    /// suspected this host (which is alive): be more patient.
    pub fn worse(&mut self) {
        self.score = (self.score + 1).min(MAX_HEALTH);
    }

    /// A probe was answered.
    pub fn better(&mut self) {
        self.score = self.score.saturating_sub(1);
    }
}

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
    /// Probe a down peer this often, once down a while (the first
    /// rechecks come sooner: at once, then 1 s, 2 s, 4 s later).
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

impl ProbeConfig {
    /// How long one ping waits for its pong: `probe_timeout`, or three
    /// round trips when that is longer, at most 2 s; all times `health`'s
    /// multiplier.
    pub fn timeout(&self, rtt: Option<Duration>, health: LocalHealth) -> Duration {
        let base = self.probe_timeout.max(rtt.map_or(Duration::ZERO, |r| r * 3)).min(Duration::from_secs(2));
        base * health.multiplier()
    }
}

impl ProbeConfig {
    /// The wait before the next recheck of a peer down after `failed`
    /// rechecks: none for the first (a verdict on a lossy path is undone
    /// within one probe), then 1 s, 2 s, 4 s, ..., at most
    /// `down_probe_interval`.
    pub fn recheck_after(&self, failed: u32) -> Duration {
        match failed {
            0 => Duration::ZERO,
            n => (Duration::from_secs(1) * 2u32.saturating_pow((n - 1).min(16))).min(self.down_probe_interval),
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
    /// A down peer did not answer its recheck: still down (a failed probe,
    /// for [`LocalHealth`], but nothing changes).
    StillDown,
}

/// One peer's liveness, kept by the node beside its sessions.
#[derive(Clone, Debug)]
pub struct PeerLiveness {
    last_heard: Option<Instant>,
    last_sent: Option<Instant>,
    probe: Option<Probe>,
    down: bool,
    down_since: Option<Instant>,
    next_monitor: Option<Instant>,
    next_recheck: Option<Instant>,
    /// Rechecks failed since it went down.
    rechecks: u32,
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
            down_since: None,
            next_monitor: None,
            next_recheck: None,
            rechecks: 0,
        }
    }

    /// Whether it is down for this host.
    pub fn is_down(&self) -> bool {
        self.down
    }

    /// How long it has been down, if it is.
    pub fn down_for(&self, now: Instant) -> Option<Duration> {
        self.down_since.map(|t| now.saturating_duration_since(t))
    }

    /// Whether a probe waits for its answer.
    pub fn probing(&self) -> bool {
        self.probe.is_some()
    }

    /// This host did not run for `stall`: a running probe gets that time
    /// back (its answer may be waiting unread).
    pub fn postpone(&mut self, stall: Duration) {
        if let Some(p) = self.probe.as_mut() {
            p.last_try += stall;
        }
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
        self.down_since = None;
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
        self.down_since = None;
        self.next_monitor = None;
    }

    /// Decides what to do now. `monitored`: this host is one of ours to
    /// monitor; `rtt`: the last measured round trip, if any; `health`:
    /// this host's own, which stretches the timeouts.
    pub fn poll(
        &mut self,
        now: Instant,
        cfg: &ProbeConfig,
        monitored: bool,
        rtt: Option<Duration>,
        health: LocalHealth,
    ) -> Verdict {
        if let Some(p) = self.probe.as_mut() {
            if now.saturating_duration_since(p.last_try) < cfg.timeout(rtt, health) {
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
                self.rechecks += 1;
                self.next_recheck = Some(now + cfg.recheck_after(self.rechecks));
                return Verdict::StillDown;
            }
            self.rechecks = 0;
            self.next_recheck = Some(now + cfg.recheck_after(0));
            self.down = true;
            self.down_since = Some(now);
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
        // Not stretched by health: only a probe starts, and its timeouts are.
        let quiet = self.last_sent.is_some_and(|s| s > heard) && now.saturating_duration_since(heard) >= cfg.quiet;
        let due = monitored && self.next_monitor.is_none_or(|t| now >= t);
        if !monitored {
            self.next_monitor = None;
        }
        if quiet || due {
            if monitored {
                self.next_monitor = Some(now + cfg.probe_interval * health.multiplier());
            }
            let reason = if due { Reason::Monitor } else { Reason::Quiet };
            self.probe = Some(Probe { reason, tries: 1, last_try: now });
            return Verdict::Ping;
        }
        Verdict::Idle
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
            match l.poll(t, &cfg, monitored, Some(ms(1)), LocalHealth::default()) {
                Verdict::Ping => {
                    pings += 1;
                    if alive(t - t0) {
                        answer_at = Some(t + ms(1));
                    }
                }
                Verdict::Down { .. } => return (Some(t - t0), pings),
                Verdict::Idle | Verdict::StillDown => {}
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
            if let Verdict::Down { announce } = l.poll(t, &cfg, false, None, LocalHealth::default()) {
                assert!(!announce, "a quiet peer is not announced");
                went_down = Some(t - t0);
                break;
            }
            t += ms(10);
        }
        let d = went_down.expect("noticed");
        assert!(d >= cfg.quiet && d <= cfg.quiet + ms(700), "{d:?}");
        // Down: rechecked at once, then now and then; an answer brings it back.
        assert_eq!(l.poll(t + ms(10), &cfg, false, None, LocalHealth::default()), Verdict::Ping);
        assert_eq!(l.poll(t + ms(20), &cfg, false, None, LocalHealth::default()), Verdict::Idle);
        assert_eq!(l.poll(t + cfg.down_probe_interval, &cfg, false, None, LocalHealth::default()), Verdict::Ping);
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
        assert_eq!(l.poll(t0 + ms(500), &cfg, false, None, LocalHealth::default()), Verdict::Idle);
        // It does not: down after the tries, not announced.
        assert!(l.verify(t0 + ms(600)));
        let mut t = t0 + ms(600);
        let v = loop {
            t += ms(10);
            match l.poll(t, &cfg, false, None, LocalHealth::default()) {
                Verdict::Idle | Verdict::Ping => continue,
                v => break v,
            }
        };
        assert_eq!(v, Verdict::Down { announce: false });
    }

    #[test]
    fn a_stall_of_this_host_is_not_charged_to_the_peer() {
        // A probe runs when this host stops for 1 s. Postponed by the
        // stall, the probe still has all its tries (each 200 ms) after it.
        let cfg = ProbeConfig::default();
        let h = LocalHealth::default();
        let t0 = Instant::now();
        let down_after_stall = |postpone: bool| {
            let mut l = PeerLiveness::new();
            l.heard(t0);
            assert!(l.verify(t0));
            let resume = t0 + Duration::from_secs(1);
            if postpone {
                l.postpone(resume - t0);
            }
            let mut t = resume;
            loop {
                if let Verdict::Down { .. } = l.poll(t, &cfg, false, Some(ms(1)), h) {
                    return t - resume;
                }
                t += ms(10);
            }
        };
        let charged = down_after_stall(false);
        let fair = down_after_stall(true);
        assert!(charged < ms(450), "the stall used up a try: down {charged:?} after it");
        assert!(fair >= ms(600) && fair < ms(700), "all three tries after the stall: down {fair:?} after it");
    }

    #[test]
    fn local_health_stretches_timeouts_and_the_interval() {
        let cfg = ProbeConfig::default();
        let mut h = LocalHealth::default();
        assert_eq!(cfg.timeout(Some(ms(1)), h), ms(200));
        for _ in 0..20 {
            h.worse();
        }
        assert_eq!(h.score(), MAX_HEALTH);
        assert_eq!(cfg.timeout(Some(ms(1)), h), ms(200) * (MAX_HEALTH + 1));
        assert_eq!(cfg.timeout(Some(ms(900)), h), Duration::from_secs(2) * (MAX_HEALTH + 1));
        // A healthy peer monitored by an unhealthy host: a ping every 3 s.
        let mut h3 = LocalHealth::default();
        h3.worse();
        h3.worse();
        let t0 = Instant::now();
        let mut l = PeerLiveness::new();
        let mut pings = 0;
        let mut t = t0;
        while t < t0 + Duration::from_secs(60) {
            if l.poll(t, &cfg, true, Some(ms(1)), h3) == Verdict::Ping {
                pings += 1;
                l.heard(t + ms(1));
            }
            t += ms(10);
        }
        assert!((19..=21).contains(&pings), "{pings} pings");
        for _ in 0..MAX_HEALTH {
            h.better();
        }
        assert_eq!(h, LocalHealth::default());
    }

    #[test]
    fn a_down_peer_keeps_being_rechecked_quietly() {
        let cfg = ProbeConfig::default();
        let t0 = Instant::now();
        let mut l = PeerLiveness::new();
        l.heard(t0);
        assert!(l.verify(t0));
        let mut t = t0;
        let mut verdicts = Vec::new();
        while t < t0 + Duration::from_secs(12) {
            t += ms(10);
            match l.poll(t, &cfg, false, None, LocalHealth::default()) {
                Verdict::Idle | Verdict::Ping => {}
                v => verdicts.push((v, t - t0)),
            }
        }
        assert_eq!(verdicts[0].0, Verdict::Down { announce: false });
        assert!(verdicts[1..].iter().all(|(v, _)| *v == Verdict::StillDown), "{verdicts:?}");
        // Down at 0.6 s; rechecks fail at 1.2 s, 2.8 s, 5.4 s and 10 s (at
        // once, then 1, 2 and 4 s after the last verdict, 600 ms each).
        assert_eq!(verdicts.len(), 5, "down, then failed rechecks backing off: {verdicts:?}");
        let since = l.down_for(t).expect("down");
        assert!(since >= Duration::from_secs(11), "{since:?}");
        assert!(l.heard(t));
        assert_eq!(l.down_for(t), None);
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
