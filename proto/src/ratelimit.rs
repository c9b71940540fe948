//! Token buckets that keep strangers' handshakes cheap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// A token bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Per-source and global limits on handshake initiations.
#[derive(Debug)]
pub struct HandshakeLimiter {
    per_source: HashMap<IpAddr, Bucket>,
    global: Bucket,
    rate: f64,
    burst: f64,
    global_rate: f64,
    global_burst: f64,
}

/// Sources remembered at most; beyond this the quietest are dropped.
const MAX_SOURCES: usize = 4096;

impl HandshakeLimiter {
    /// `rate` per second per source IP with `burst`, and a global rate of
    /// `global_rate` per second (burst of one second's worth).
    pub fn new(rate: f64, burst: f64, global_rate: f64, now: Instant) -> Self {
        HandshakeLimiter {
            per_source: HashMap::new(),
            global: Bucket { tokens: global_rate, at: now },
            rate,
            burst,
            global_rate,
            global_burst: global_rate,
        }
    }

    fn take(b: &mut Bucket, rate: f64, burst: f64, now: Instant) -> bool {
        let dt = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + dt * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a handshake initiation from `src` may be processed now.
    pub fn allow(&mut self, src: IpAddr, now: Instant) -> bool {
        if self.per_source.len() >= MAX_SOURCES && !self.per_source.contains_key(&src) {
            let (rate, burst) = (self.rate, self.burst);
            self.per_source.retain(|_, b| now.saturating_duration_since(b.at).as_secs_f64() * rate + b.tokens < burst);
            if self.per_source.len() >= MAX_SOURCES {
                return false;
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        let b = self.per_source.entry(src).or_insert(Bucket { tokens: burst, at: now });
        Self::take(b, rate, burst, now) && Self::take(&mut self.global, self.global_rate, self.global_burst, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn limits_per_source_and_refills() {
        let t0 = Instant::now();
        let mut l = HandshakeLimiter::new(1.0, 3.0, 100.0, t0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!((0..5).filter(|_| l.allow(a, t0)).count(), 3);
        assert!(l.allow(b, t0), "another source has its own bucket");
        assert!(l.allow(a, t0 + Duration::from_secs(1)));
        assert!(!l.allow(a, t0 + Duration::from_secs(1)));
    }
}
