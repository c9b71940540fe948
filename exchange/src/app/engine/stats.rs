//! The engine's counters, shared by its threads, and the `--status` file.

use serde::Serialize;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters every stage bumps (relaxed atomics: they are for humans and tests).
#[derive(Debug, Default)]
pub struct Stats {
    /// Inputs sequenced by this run (not the replayed ones).
    pub inputs: AtomicU64,
    /// The last sequence number given out.
    pub last_seq: AtomicU64,
    /// The last sequence number known durable.
    pub durable_seq: AtomicU64,
    /// `Rejected` responses.
    pub rejects: AtomicU64,
    /// `Executed` responses.
    pub trades: AtomicU64,
    /// Market-data messages released.
    pub md_messages: AtomicU64,
    /// Report messages released (one per gateway concerned).
    pub reports: AtomicU64,
    /// Order streams (source address × session) seen.
    pub order_streams: AtomicU64,
    /// Re-requests sent for gaps in order streams.
    pub order_gaps_requested: AtomicU64,
    /// Order messages given up on after the gap timeout.
    pub order_messages_lost: AtomicU64,
    /// Order messages that arrived past a hole beyond what a stream holds
    /// (`stream::Limits::DEFAULT`): dropped, asked for again.
    pub order_messages_over_limit: AtomicU64,
    /// Market-data re-requests answered.
    pub md_rerequests_served: AtomicU64,
    /// Report re-requests answered.
    pub report_rerequests_served: AtomicU64,
    /// Re-requests (partly) refused by the retransmission rate limit.
    pub rerequests_throttled: AtomicU64,
    /// Re-requests for a session this engine does not send.
    pub rerequests_unknown: AtomicU64,
    /// Datagrams or messages that did not decode.
    pub dropped_malformed: AtomicU64,
    /// Datagrams refused for a tag that does not verify (forged, altered,
    /// sent from another address than sealed for) or a stream we hold no
    /// key for (`crate::auth`).
    pub dropped_unauthenticated: AtomicU64,
    /// Authentic datagrams refused as stale: sealed too long ago, or a
    /// re-request not later than the last from its requester (a replay).
    pub dropped_stale: AtomicU64,
    /// Well-formed inputs refused: a symbol this engine does not trade, a
    /// session of another gateway than the stream's, an end of day from a
    /// gateway, or a packet of a session that is no order stream.
    pub dropped_foreign: AtomicU64,
    /// Packets the socket would not take (dropped; receivers re-request).
    pub send_errors: AtomicU64,
    /// Journal records replayed at startup.
    pub recovered: AtomicU64,
    /// Records 1..=this are durable at DR (`--replicate`).
    pub dr_durable_seq: AtomicU64,
    /// 1 while the DR connection is up and greeted.
    pub dr_connected: AtomicU64,
    /// Answers from DR (or whoever was at its address) that did not verify.
    pub dr_unauthenticated: AtomicU64,
    /// Non-zero: the epoch that fenced this engine.
    pub fenced_by: AtomicU64,
    /// 1 while a hot standby shadows the primary (not yet promoted).
    pub standby: AtomicU64,
    /// How long group commits take (the local journal's write and fsync).
    pub commit_times: TimeHistogram,
    /// From an input's sequencing to the end of its group commit (the
    /// queue to the durability thread and the commit).
    pub committed_times: TimeHistogram,
    /// From an input's sequencing to its outputs reaching the publisher
    /// (the above and the publisher's queue).
    pub durable_times: TimeHistogram,
    /// From a gateway sealing an orders packet to the ingress reading it
    /// (the overlay one way; wall clocks, so across machines their offset
    /// too).
    pub transit_times: TimeHistogram,
}

pub use crate::app::timing::{TimeHistogram, TimeSummary};

/// Adds `n` to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Sets a counter.
pub fn set(c: &AtomicU64, v: u64) {
    c.store(v, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// The `--status` JSON object.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Status {
    /// Logical engine name.
    pub name: String,
    /// This run's epoch.
    pub epoch: u32,
    /// See [`Stats`].
    pub last_seq: u64,
    /// See [`Stats`].
    pub durable_seq: u64,
    /// See [`Stats`].
    pub inputs: u64,
    /// See [`Stats`].
    pub rejects: u64,
    /// See [`Stats`].
    pub trades: u64,
    /// See [`Stats`].
    pub md_messages: u64,
    /// See [`Stats`].
    pub reports: u64,
    /// See [`Stats`].
    pub order_streams: u64,
    /// See [`Stats`].
    pub order_gaps_requested: u64,
    /// See [`Stats`].
    pub order_messages_lost: u64,
    /// See [`Stats`].
    pub order_messages_over_limit: u64,
    /// See [`Stats`].
    pub md_rerequests_served: u64,
    /// See [`Stats`].
    pub report_rerequests_served: u64,
    /// See [`Stats`].
    pub rerequests_throttled: u64,
    /// See [`Stats`].
    pub rerequests_unknown: u64,
    /// See [`Stats`].
    pub dropped_malformed: u64,
    /// See [`Stats`].
    pub dropped_unauthenticated: u64,
    /// See [`Stats`].
    pub dropped_stale: u64,
    /// See [`Stats`].
    pub dropped_foreign: u64,
    /// See [`Stats`].
    pub send_errors: u64,
    /// See [`Stats`].
    pub recovered: u64,
    /// `primary`, or `standby` while a hot standby shadows the primary
    /// (its `last_seq` is then the last record applied).
    pub role: &'static str,
    /// See [`Stats`].
    pub dr_durable_seq: u64,
    /// See [`Stats`].
    pub dr_connected: bool,
    /// See [`Stats`].
    pub dr_unauthenticated: u64,
    /// The epoch that fenced this engine, if one did.
    pub fenced_by: Option<u64>,
    /// Group commit times (write + fsync of the local journal), µs.
    pub commit_us: TimeSummary,
    /// From sequencing an input to the end of its group commit, µs.
    pub sequenced_to_committed_us: TimeSummary,
    /// From sequencing an input to its outputs reaching the publisher
    /// (durable), µs: the engine's part of an order's round trip.
    pub sequenced_to_durable_us: TimeSummary,
    /// From a gateway sealing an orders packet to the ingress reading it, µs.
    pub order_transit_us: TimeSummary,
    /// Seconds since start.
    pub uptime_s: u64,
}

impl Stats {
    /// A snapshot for the status file.
    pub fn status(&self, name: &str, epoch: u32, uptime_s: u64) -> Status {
        Status {
            name: name.to_string(),
            epoch,
            last_seq: get(&self.last_seq),
            durable_seq: get(&self.durable_seq),
            inputs: get(&self.inputs),
            rejects: get(&self.rejects),
            trades: get(&self.trades),
            md_messages: get(&self.md_messages),
            reports: get(&self.reports),
            order_streams: get(&self.order_streams),
            order_gaps_requested: get(&self.order_gaps_requested),
            order_messages_lost: get(&self.order_messages_lost),
            order_messages_over_limit: get(&self.order_messages_over_limit),
            md_rerequests_served: get(&self.md_rerequests_served),
            report_rerequests_served: get(&self.report_rerequests_served),
            rerequests_throttled: get(&self.rerequests_throttled),
            rerequests_unknown: get(&self.rerequests_unknown),
            dropped_malformed: get(&self.dropped_malformed),
            dropped_unauthenticated: get(&self.dropped_unauthenticated),
            dropped_stale: get(&self.dropped_stale),
            dropped_foreign: get(&self.dropped_foreign),
            send_errors: get(&self.send_errors),
            recovered: get(&self.recovered),
            role: if get(&self.standby) == 1 { "standby" } else { "primary" },
            dr_durable_seq: get(&self.dr_durable_seq),
            dr_connected: get(&self.dr_connected) == 1,
            dr_unauthenticated: get(&self.dr_unauthenticated),
            fenced_by: Some(get(&self.fenced_by)).filter(|&e| e != 0),
            commit_us: self.commit_times.summary(),
            sequenced_to_committed_us: self.committed_times.summary(),
            sequenced_to_durable_us: self.durable_times.summary(),
            order_transit_us: self.transit_times.summary(),
            uptime_s,
        }
    }
}

/// Writes `status` to `path` atomically (a temporary file beside it, then a rename).
pub fn write_status(path: &Path, status: &Status) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    serde_json::to_writer_pretty(&mut f, status).map_err(io::Error::other)?;
    f.write_all(b"\n")?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn time_histogram_summarises_by_bucket_bounds() {
        let h = TimeHistogram::default();
        assert_eq!(h.summary(), TimeSummary::default());
        for _ in 0..98 {
            h.record(Duration::from_micros(300)); // [256, 320)
        }
        h.record(Duration::from_millis(3)); // [2560, 3072)
        h.record(Duration::from_secs(100)); // beyond the last bucket
        let s = h.summary();
        assert_eq!((s.count, s.p50, s.p99, s.max), (100, 320, 3072, 1 << 25), "the 99th of 100 is the 3 ms one");
    }
}
