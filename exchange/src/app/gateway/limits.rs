//! Admission of customer connections: at most so many in all and from one
//! source address, and a source whose logins fail too often is refused
//! unchecked for a while (no password guessing at the gateway's speed).
//! Pure logic with the time passed in; the connections share one
//! [`Admission`] behind a mutex and hold a [`Ticket`] while they live.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most source addresses tracked (connected, or with recent failures).
pub const MAX_SOURCES: usize = 65_536;

/// The limits (the gateway's flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections at once, in all.
    pub max_connections: usize,
    /// Connections at once from one source address.
    pub max_per_source: usize,
    /// Failed logins a source may have per [`Limits::failure_window`];
    /// beyond, its logins are refused unchecked until the window ends.
    pub max_failures: u32,
    /// The window failures are counted in.
    pub failure_window: Duration,
}

/// Why a connection was closed at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// [`Limits::max_connections`] reached.
    Full,
    /// [`Limits::max_per_source`] reached for its source.
    SourceFull,
    /// [`MAX_SOURCES`] sources tracked, all live.
    TooManySources,
}

#[derive(Debug, Default)]
struct Source {
    conns: usize,
    failures: u32,
    window_start: Option<Instant>,
}

impl Source {
    fn idle(&self, now: Instant, window: Duration) -> bool {
        self.conns == 0 && self.window_start.is_none_or(|t| now.duration_since(t) >= window)
    }
}

/// Who is connected, and who failed lately.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    total: usize,
    sources: HashMap<IpAddr, Source>,
}

impl Admission {
    /// Nobody connected yet.
    pub fn new(limits: Limits) -> Admission {
        Admission { limits, total: 0, sources: HashMap::new() }
    }

    /// A connection from `ip` wants in.
    pub fn connect(&mut self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        if self.total >= self.limits.max_connections {
            return Err(Refusal::Full);
        }
        if !self.sources.contains_key(&ip) && self.sources.len() >= MAX_SOURCES {
            let w = self.limits.failure_window;
            self.sources.retain(|_, s| !s.idle(now, w));
            if self.sources.len() >= MAX_SOURCES {
                return Err(Refusal::TooManySources);
            }
        }
        let s = self.sources.entry(ip).or_default();
        if s.conns >= self.limits.max_per_source {
            return Err(Refusal::SourceFull);
        }
        s.conns += 1;
        self.total += 1;
        Ok(())
    }

    /// A connection from `ip` ended.
    pub fn disconnect(&mut self, ip: IpAddr, now: Instant) {
        let w = self.limits.failure_window;
        if let Some(s) = self.sources.get_mut(&ip) {
            s.conns = s.conns.saturating_sub(1);
            self.total = self.total.saturating_sub(1);
            if s.idle(now, w) {
                self.sources.remove(&ip);
            }
        }
    }

    /// Whether `ip` may try to log in now (not too many failures lately).
    pub fn may_log_in(&mut self, ip: IpAddr, now: Instant) -> bool {
        let w = self.limits.failure_window;
        let Some(s) = self.sources.get_mut(&ip) else { return true };
        if s.window_start.is_some_and(|t| now.duration_since(t) >= w) {
            s.window_start = None;
            s.failures = 0;
        }
        s.failures < self.limits.max_failures
    }

    /// A login from `ip` failed.
    pub fn login_failed(&mut self, ip: IpAddr, now: Instant) {
        if let Some(s) = self.sources.get_mut(&ip) {
            s.window_start.get_or_insert(now);
            s.failures = s.failures.saturating_add(1);
        }
    }

    /// Connections now.
    pub fn connections(&self) -> usize {
        self.total
    }
}

/// A connection's place: given back when dropped.
#[derive(Debug)]
pub struct Ticket {
    adm: Arc<Mutex<Admission>>,
    ip: IpAddr,
}

impl Ticket {
    /// Admits a connection from `ip` into `adm`, or says why not.
    pub fn take(adm: &Arc<Mutex<Admission>>, ip: IpAddr) -> Result<Ticket, Refusal> {
        lock(adm).connect(ip, Instant::now())?;
        Ok(Ticket { adm: adm.clone(), ip })
    }

    /// Whether this connection's source may try to log in now.
    pub fn may_log_in(&self) -> bool {
        lock(&self.adm).may_log_in(self.ip, Instant::now())
    }

    /// This connection's login failed.
    pub fn login_failed(&self) {
        lock(&self.adm).login_failed(self.ip, Instant::now());
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        lock(&self.adm).disconnect(self.ip, Instant::now());
    }
}

fn lock(adm: &Mutex<Admission>) -> std::sync::MutexGuard<'_, Admission> {
    adm.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits =
        Limits { max_connections: 3, max_per_source: 2, max_failures: 2, failure_window: Duration::from_secs(60) };

    #[test]
    fn connections_are_capped_in_all_and_per_source() {
        let (a, b, c) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        let t = Instant::now();
        let mut adm = Admission::new(LIMITS);
        adm.connect(a, t).unwrap();
        adm.connect(a, t).unwrap();
        assert_eq!(adm.connect(a, t), Err(Refusal::SourceFull));
        adm.connect(b, t).unwrap();
        assert_eq!(adm.connect(c, t), Err(Refusal::Full));
        adm.disconnect(a, t);
        adm.connect(c, t).unwrap();
        assert_eq!(adm.connections(), 3);
    }

    #[test]
    fn a_source_that_fails_too_often_waits_out_the_window() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let t = Instant::now();
        let mut adm = Admission::new(LIMITS);
        adm.connect(a, t).unwrap();
        assert!(adm.may_log_in(a, t));
        adm.login_failed(a, t);
        assert!(adm.may_log_in(a, t));
        adm.login_failed(a, t);
        assert!(!adm.may_log_in(a, t), "two failures: throttled");
        // Reconnecting does not reset it: the source is remembered.
        adm.disconnect(a, t);
        adm.connect(a, t + Duration::from_secs(1)).unwrap();
        assert!(!adm.may_log_in(a, t + Duration::from_secs(59)));
        assert!(adm.may_log_in(a, t + Duration::from_secs(60)), "the window is over");
    }

    #[test]
    fn tickets_give_their_place_back() {
        let adm = Arc::new(Mutex::new(Admission::new(LIMITS)));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let t1 = Ticket::take(&adm, a).unwrap();
        let _t2 = Ticket::take(&adm, a).unwrap();
        assert_eq!(Ticket::take(&adm, a).unwrap_err(), Refusal::SourceFull);
        drop(t1);
        assert!(Ticket::take(&adm, a).is_ok());
    }
}
