//! Durations in a lock-free histogram of power-of-two buckets: how long
//! group commits take (engine), how long the engine takes to answer a
//! gateway (gateway), summarised in the processes' status.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Durations in power-of-two buckets of microseconds (bucket k holds
/// [2^(k-1), 2^k) µs; the last everything longer), lock-free.
#[derive(Debug, Default)]
pub struct TimeHistogram {
    buckets: [AtomicU64; 25],
}

/// Percentiles of a [`TimeHistogram`], as bucket upper bounds in µs.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct TimeSummary {
    /// How many durations.
    pub count: u64,
    /// Median (upper bound of its bucket).
    pub p50: u64,
    /// 99th percentile (upper bound of its bucket).
    pub p99: u64,
    /// The largest bucket used (upper bound).
    pub max: u64,
}

impl TimeHistogram {
    /// Records one duration.
    pub fn record(&self, d: std::time::Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let k = (64 - us.leading_zeros() as usize).min(24);
        self.buckets[k].fetch_add(1, Ordering::Relaxed);
    }

    /// The percentiles so far.
    pub fn summary(&self) -> TimeSummary {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let count: u64 = counts.iter().sum();
        let upper = |k: usize| 1u64 << k;
        let at = |q: f64| {
            let want = ((count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (k, &c) in counts.iter().enumerate() {
                seen += c;
                if seen >= want {
                    return upper(k);
                }
            }
            0
        };
        if count == 0 {
            return TimeSummary::default();
        }
        let max = counts.iter().rposition(|&c| c > 0).map_or(0, upper);
        TimeSummary { count, p50: at(0.5), p99: at(0.99), max }
    }
}
