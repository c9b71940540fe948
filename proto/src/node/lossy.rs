//! Lossy paths (issue 14): which peers a local TCP sender retransmits to.
//!
//! A super-frame travels whole in ~45 pieces and is lost whole when one
//! piece is, which costs TCP everything on a path that loses packets. Cut
//! into plain segments it survives piecewise but costs the receiver one
//! TAP write per segment, which halves the rate where nothing is lost. So
//! the node cuts super-frames only for peers whose path is seen to lose:
//! every TCP data frame sent to a unicast peer is noted in a bounded flow
//! table ([`crate::flows`]), and a frame that sends again data already
//! sent marks that peer lossy for [`LOSSY_FOR`] (renewed by every further
//! retransmission). Segments are ordinary frames, bundled per peer like
//! any other (`send`); every datagram to a lossy peer also joins a parity
//! group, so most single losses are rebuilt by the receiver (`fec`).

use super::Node;
use crate::flows::{FlowKey, Seen};
use crate::keys::PublicKey;
use crate::segment;
use std::time::{Duration, Instant};
use weavers_api::SegmentationCounts;

/// How long a retransmission marks a peer lossy.
pub(crate) const LOSSY_FOR: Duration = Duration::from_secs(10);

/// Counters of segmentation (see [`SegmentationCounts`]).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SegStats {
    pub(super) superframes: u64,
    pub(super) segments: u64,
    pub(super) retransmissions: u64,
}

impl Node {
    /// Notes a frame sent to the unicast peer `dst`: when it is TCP data
    /// sent before, `dst` is lossy from now for [`LOSSY_FOR`]. Frames that
    /// are not TCP cost a comparison or two; TCP frames without data (pure
    /// ACKs) a parse of their headers.
    pub(super) fn note_tcp(&mut self, now: Instant, dst: PublicKey, frame: &[u8]) {
        let Some(d) = segment::tcp_data(frame) else { return };
        if d.len == 0 && !d.syn {
            return;
        }
        let k = FlowKey { peer: dst, src: d.src, dst: d.dst, src_port: d.src_port, dst_port: d.dst_port };
        if self.flows.observe(k, d.seq, d.len, d.syn) == Some(Seen::Again) {
            self.seg_stats.retransmissions += 1;
            if let Some(p) = self.peers.get_mut(&dst) {
                p.lossy_until = Some(now + LOSSY_FOR);
            }
        }
    }

    /// Whether super-frames to `dst` go as segments now.
    pub(super) fn is_lossy(&self, now: Instant, dst: &PublicKey) -> bool {
        self.peers.get(dst).and_then(|p| p.lossy_until).is_some_and(|t| now < t)
    }

    /// Segmentation counters, and the peers lossy at `now`.
    pub fn segmentation(&self, now: Instant) -> SegmentationCounts {
        SegmentationCounts {
            superframes_segmented: self.seg_stats.superframes,
            segments_sent: self.seg_stats.segments,
            retransmissions_seen: self.seg_stats.retransmissions,
            peers_lossy: self.peers.keys().filter(|k| self.is_lossy(now, k)).count() as u64,
            flows_evicted: self.flows.evicted(),
            superframes_joined: self.gro.joined,
            segments_joined: self.gro.joined_segments,
            parity_sent: self.fec_stats.parity_sent,
            parity_received: self.fec_stats.parity_received,
            datagrams_repaired: self.fec_stats.repaired,
            repairs_failed: self.fec_stats.unrepairable,
        }
    }
}
