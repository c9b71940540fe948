//! Durations in a lock-free histogram of quarter-octave buckets: how long
//! group commits take (engine), how long the engine takes to answer a
//! gateway (gateway), summarised in the processes' status.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Durations in buckets of microseconds, lock-free: one per microsecond
/// below 8 µs, then four per power of two (so a bucket's upper bound is
/// at most 25% above anything in it); the last, from 28 s, holds
/// everything longer.
#[derive(Debug)]
pub struct TimeHistogram {
    buckets: [AtomicU64; BUCKETS],
}

/// Buckets: 8 exact ones, then 4 for each power of two from 8 µs to 2^25 µs.
const BUCKETS: usize = 8 + 4 * 22;

impl Default for TimeHistogram {
    fn default() -> Self {
        TimeHistogram { buckets: std::array::from_fn(|_| AtomicU64::new(0)) }
    }
}

/// The bucket of a duration of `us` microseconds.
fn bucket(us: u64) -> usize {
    if us < 8 {
        return us as usize;
    }
    let e = 63 - us.leading_zeros() as usize; // 2^e <= us < 2^(e+1), e >= 3
    let quarter = ((us >> (e - 2)) & 3) as usize;
    (8 + (e - 3) * 4 + quarter).min(BUCKETS - 1)
}

/// The upper bound (exclusive) of bucket `k`, µs.
fn upper(k: usize) -> u64 {
    if k < 8 {
        return k as u64 + 1;
    }
    let (e, quarter) = ((k - 8) / 4 + 3, ((k - 8) % 4) as u64);
    (5 + quarter) << (e - 2)
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
        self.buckets[bucket(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// The percentiles so far.
    pub fn summary(&self) -> TimeSummary {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let count: u64 = counts.iter().sum();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_duration_is_below_its_bucket_bound_and_within_a_quarter_of_it() {
        let mut v = 0u64;
        while v < 1 << 25 {
            let k = bucket(v);
            assert!(v < upper(k), "{v} in bucket {k} bounded by {}", upper(k));
            assert!(k == 0 || v >= upper(k - 1), "{v} belongs in an earlier bucket than {k}");
            if v >= 8 {
                assert!(upper(k) * 4 <= v * 5 + 4, "{v}: bound {} more than 25% above", upper(k));
            }
            v = v + 1 + v / 7;
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(upper(BUCKETS - 1), 1 << 25);
        // Bounds rise bucket by bucket.
        assert!((1..BUCKETS).all(|k| upper(k) > upper(k - 1)));
    }
}
