//! Messages too big for one datagram, in pieces (`Kind::Fragment`): the
//! scheme, and reassembly on receive (`send` cuts the pieces; `recv`
//! handles a message once whole).
//!
//! Two kinds of message travel this way:
//!
//! - Super-frames. With TAP offloads a local TCP sender hands the daemon
//!   frames of up to 64 KiB. Each travels as one message (its 10-byte
//!   virtio-net header, then the frame) and is written whole into the
//!   receiving TAP, so neither kernel segments it: one TAP read and one TAP
//!   write per 64 KiB instead of ~45 each. These may be relayed.
//! - Control messages (gossip, IPAM, ...) larger than a datagram's budget,
//!   e.g. a record with hundreds of DNS names. Sent whole, the underlay
//!   would IP-fragment them, and clouds and middleboxes often drop IP
//!   fragments; in pieces no datagram exceeds the path MTU. These go only
//!   between direct peers, as control messages always do.
//!
//! Every piece carries the kind of the whole message, its length and the
//! piece's offset. A message missing a piece is dropped after a short while
//! (TCP retransmits; gossip is sent again). Reassembly is bounded per peer
//! and in total; overlapping or disagreeing pieces are refused and counted.

use super::Node;
use crate::keys::PublicKey;
use crate::stats::DropReason;
use crate::vnet::VNET_HDR_LEN;
use crate::wire::{FragmentHeader, Kind};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Largest message: a virtio-net header and a 64 KiB frame with its
/// Ethernet header. Control messages are held to the same bound.
pub(super) const MAX_MESSAGE: usize = VNET_HDR_LEN + 65_535 + 14;
/// Super-frames in reassembly per peer at most (the oldest gives way).
const MAX_FRAMES_PER_PEER: usize = 8;
/// Control messages in reassembly per peer at most (the oldest gives way).
const MAX_CONTROL_PER_PEER: usize = 4;
/// Messages in reassembly from all peers together at most (the oldest
/// gives way): with [`MAX_MESSAGE`] this bounds the memory to about 8 MiB.
pub(super) const MAX_PARTIAL_TOTAL: usize = 128;
/// How long a message may take to arrive whole.
const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(1);

/// A message being put together.
#[derive(Debug)]
struct Partial {
    /// The kind of the whole message (`Frame` for a super-frame).
    kind: u8,
    buf: Vec<u8>,
    /// Byte ranges received, to refuse overlaps and know when it is whole.
    ranges: Vec<(u32, u32)>,
    received: usize,
    started: Instant,
}

/// Messages in reassembly.
#[derive(Debug, Default)]
pub(super) struct Reassembly {
    partial: HashMap<(PublicKey, u32), Partial>,
    /// Buffers of finished messages, for reuse.
    spare: Vec<Vec<u8>>,
}

impl Reassembly {
    /// Messages in reassembly now (all peers).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.partial.len()
    }

    /// Bytes held by messages in reassembly now (all peers).
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.partial.values().map(|p| p.buf.len()).sum()
    }

    /// Removes the oldest message among those `pick` selects; true if one was.
    fn evict_oldest(&mut self, pick: impl Fn(&(PublicKey, u32), &Partial) -> bool) -> bool {
        let oldest = self.partial.iter().filter(|(k, p)| pick(k, p)).min_by_key(|(_, p)| p.started).map(|(k, _)| *k);
        let Some(k) = oldest else { return false };
        let p = self.partial.remove(&k).expect("listed");
        self.recycle(p.buf);
        true
    }

    /// Takes back the buffer of a message handled (or given up), for reuse.
    pub(super) fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < 4 {
            self.spare.push(buf);
        }
    }
}

/// Whether a message of this kind may travel in pieces, and its length is plausible.
fn acceptable(kind: u8, total: usize, direct: bool) -> bool {
    match Kind::from_u8(kind) {
        Some(Kind::Frame) => total > VNET_HDR_LEN + 14 && total <= MAX_MESSAGE,
        // Control messages only from the peer itself, never through a relay.
        Some(Kind::Gossip | Kind::Ping | Kind::Pong | Kind::Ipam) => direct && total > 0 && total <= MAX_MESSAGE,
        _ => false,
    }
}

impl Node {
    /// Takes one piece (`body`: what follows the `Fragment` kind byte) of
    /// a message from `src` (`direct`: from that peer itself, not relayed).
    /// Returns the message's kind and bytes once it is whole; the caller
    /// hands the buffer back with [`Reassembly::recycle`].
    pub(super) fn reassemble(
        &mut self,
        now: Instant,
        src: PublicKey,
        body: &[u8],
        direct: bool,
    ) -> Option<(Kind, Vec<u8>)> {
        let Some((FragmentHeader { id, total, offset, kind }, data)) = FragmentHeader::parse(body) else {
            self.drops.count(DropReason::BadPayload);
            return None;
        };
        let (total, offset) = (total as usize, offset as usize);
        if !acceptable(kind, total, direct) || data.is_empty() || offset + data.len() > total {
            self.drops.count(DropReason::BadPayload);
            return None;
        }
        let control = kind != Kind::Frame as u8;
        let r = &mut self.reassembly;
        if !r.partial.contains_key(&(src, id)) {
            let per_peer = if control { MAX_CONTROL_PER_PEER } else { MAX_FRAMES_PER_PEER };
            let same_class =
                |(k, _): &(PublicKey, u32), p: &Partial| *k == src && (p.kind != Kind::Frame as u8) == control;
            if r.partial.iter().filter(|(k, p)| same_class(k, p)).count() >= per_peer && r.evict_oldest(same_class) {
                self.drops.count(DropReason::Incomplete);
            }
            if self.reassembly.partial.len() >= MAX_PARTIAL_TOTAL && self.reassembly.evict_oldest(|_, _| true) {
                self.drops.count(DropReason::Incomplete);
            }
            let mut buf = self.reassembly.spare.pop().unwrap_or_default();
            buf.clear();
            buf.resize(total, 0);
            self.reassembly
                .partial
                .insert((src, id), Partial { kind, buf, ranges: Vec::new(), received: 0, started: now });
        }
        let p = self.reassembly.partial.get_mut(&(src, id)).expect("inserted above");
        let (start, end) = (offset as u32, (offset + data.len()) as u32);
        if p.kind != kind || p.buf.len() != total || p.ranges.iter().any(|(s, e)| start < *e && *s < end) {
            // A repeat, or disagrees with earlier pieces: a broken or hostile sender.
            self.drops.count(DropReason::BadPayload);
            return None;
        }
        p.buf[offset..offset + data.len()].copy_from_slice(data);
        p.ranges.push((start, end));
        p.received += data.len();
        if p.received < total {
            return None;
        }
        let p = self.reassembly.partial.remove(&(src, id)).expect("present");
        Some((Kind::from_u8(kind).expect("checked by acceptable"), p.buf))
    }

    /// Drops messages that did not arrive whole in time.
    pub(super) fn expire_fragments(&mut self, now: Instant) {
        let before = self.reassembly.partial.len();
        self.reassembly.partial.retain(|_, p| now.saturating_duration_since(p.started) < REASSEMBLY_TIMEOUT);
        let lost = before - self.reassembly.partial.len();
        self.drops.add(DropReason::Incomplete, lost as u64);
    }
}
