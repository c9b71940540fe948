//! The run's results, what the customers measured: counters shared by
//! every session and the order-to-ack latency histogram (µs, from the
//! intended send time), summarised as JSON (`--summary-json`).

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// The highest latency the histogram tells apart (longer ones count as this).
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Counters and latencies of all sessions.
#[derive(Debug)]
pub struct Stats {
    /// Orders sent.
    pub sent: AtomicU64,
    /// Orders accepted.
    pub acked: AtomicU64,
    /// Orders rejected.
    pub rejects: AtomicU64,
    /// Executions received.
    pub executions: AtomicU64,
    /// Sessions logged in.
    pub logged_in: AtomicU64,
    /// Sessions that could not connect or log in.
    pub login_failures: AtomicU64,
    /// Sessions whose connection ended early.
    pub disconnects: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            rejects: AtomicU64::new(0),
            executions: AtomicU64::new(0),
            logged_in: AtomicU64::new(0),
            login_failures: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            latency: Mutex::new(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")),
        }
    }
}

/// Latency percentiles in µs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th.
    pub p90: u64,
    /// 99th.
    pub p99: u64,
    /// 99.9th.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl Stats {
    /// Records one order-to-answer latency.
    pub fn record(&self, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        if let Ok(mut h) = self.latency.lock() {
            h.saturating_record(us);
        }
    }

    /// The percentiles so far.
    pub fn percentiles(&self) -> Percentiles {
        let Ok(h) = self.latency.lock() else { return Percentiles::default() };
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    /// The latency histogram, HDR V2 serialized.
    pub fn serialized_histogram(&self) -> anyhow::Result<Vec<u8>> {
        use hdrhistogram::serialization::{Serializer, V2Serializer};
        let h = self.latency.lock().map_err(|_| anyhow::anyhow!("latency histogram lock poisoned"))?;
        let mut out = Vec::new();
        V2Serializer::new().serialize(&h, &mut out).map_err(|e| anyhow::anyhow!("serializing the histogram: {e:?}"))?;
        Ok(out)
    }

    /// The summary (and status) JSON.
    pub fn json(&self, duration: Duration, sessions: u64) -> Value {
        let p = self.percentiles();
        json!({
            "orders_sent": self.sent.load(Relaxed),
            "orders_acked": self.acked.load(Relaxed),
            "rejects": self.rejects.load(Relaxed),
            "executions": self.executions.load(Relaxed),
            "ack_latency_us": {"p50": p.p50, "p90": p.p90, "p99": p.p99, "p999": p.p999, "max": p.max},
            "duration_s": duration.as_secs_f64(),
            "sessions": sessions,
            "logged_in": self.logged_in.load(Relaxed),
            "login_failures": self.login_failures.load(Relaxed),
            "disconnects": self.disconnects.load(Relaxed),
            "cpu_s": process_cpu_s(),
        })
    }
}

/// CPU seconds (user + system, every thread) this process has used so far.
pub fn process_cpu_s() -> f64 {
    // SAFETY: rusage is plain data, for which all zeroes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the rusage we pass.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(ru.ru_utime) + s(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_json() {
        let s = Stats::default();
        assert_eq!(s.percentiles(), Percentiles::default());
        for us in 1..=1000 {
            s.record(Duration::from_micros(us));
        }
        s.record(Duration::from_secs(7200)); // beyond the range: counted as the max
        let p = s.percentiles();
        assert!((495..=505).contains(&p.p50), "{p:?}");
        assert!((985..=995).contains(&p.p99), "{p:?}");
        assert!(p.max >= MAX_LATENCY_US * 999 / 1000);
        s.sent.store(3, Relaxed);
        let j = s.json(Duration::from_secs(2), 4);
        assert_eq!(j["orders_sent"], 3);
        assert_eq!(j["sessions"], 4);
        assert!(j["ack_latency_us"]["p999"].as_u64().is_some());
        assert!(j["cpu_s"].as_f64().is_some_and(|c| c > 0.0));
    }
}
