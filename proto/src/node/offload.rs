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
//! (TCP retransmits; gossip is sent again).
//!
//! Reassembly treats every piece as hostile:
//!
//! - A bitmap of the bytes received refuses a piece that overlaps an
//!   earlier one in time linear in the piece's length, however many
//!   pieces came before. Pieces that disagree on the kind or length are
//!   refused too (all counted).
//! - Every piece but the last of a message is at least [`MIN_PIECE`]
//!   bytes (a sender cuts pieces as large as a datagram allows), so a
//!   message has a bounded number of pieces and 1-byte pieces are refused.
//! - Budgets are per direct peer that delivered the message (`via`: the
//!   relay, for a relayed one, since the source a relay names is only its
//!   word): at most [`MAX_FRAMES_PER_PEER`] super-frames and
//!   [`MAX_CONTROL_PER_PEER`] control messages each (a peer's new message
//!   evicts its own oldest), and [`MAX_PARTIAL_TOTAL`] in all. When the
//!   total is reached, the peer holding the most messages gives up its
//!   oldest: a sender can evict only its own partial messages, or those of
//!   a peer holding at least as many.

use super::Node;
use crate::keys::PublicKey;
use crate::stats::{DropReason, Drops};
use crate::vnet::VNET_HDR_LEN;
use crate::wire::{FragmentHeader, Kind};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Largest message: a virtio-net header and a 64 KiB frame with its
/// Ethernet header. Control messages are held to the same bound.
pub(crate) const MAX_MESSAGE: usize = VNET_HDR_LEN + 65_535 + 14;
/// Super-frames in reassembly per delivering peer at most (its oldest gives way).
pub(crate) const MAX_FRAMES_PER_PEER: usize = 8;
/// Control messages in reassembly per peer at most (its oldest gives way).
pub(crate) const MAX_CONTROL_PER_PEER: usize = 4;
/// Messages in reassembly from all peers together at most: with
/// [`MAX_MESSAGE`] this bounds the memory to about 8 MiB.
pub(crate) const MAX_PARTIAL_TOTAL: usize = 128;
/// Smallest piece but a message's last. Senders cut pieces of the overlay
/// MTU (over 400 bytes even on a 576-byte underlay).
pub(crate) const MIN_PIECE: usize = 256;
/// How long a message may take to arrive whole.
const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(1);

/// A message being put together.
#[derive(Debug)]
struct Partial {
    /// The kind of the whole message (`Frame` for a super-frame).
    kind: u8,
    /// The direct peer whose budget it is charged to.
    via: PublicKey,
    buf: Vec<u8>,
    /// One bit per byte of `buf`: received.
    have: Vec<u64>,
    received: usize,
    started: Instant,
}

impl Partial {
    fn is_control(&self) -> bool {
        self.kind != Kind::Frame as u8
    }
}

/// Whether any bit of `[start, end)` is set.
fn any_set(bits: &[u64], start: usize, end: usize) -> bool {
    let mut i = start;
    while i < end {
        let (w, b) = (i / 64, i % 64);
        let n = (64 - b).min(end - i);
        let mask = if n == 64 { u64::MAX } else { ((1u64 << n) - 1) << b };
        if bits[w] & mask != 0 {
            return true;
        }
        i += n;
    }
    false
}

/// Sets every bit of `[start, end)`.
fn set_range(bits: &mut [u64], start: usize, end: usize) {
    let mut i = start;
    while i < end {
        let (w, b) = (i / 64, i % 64);
        let n = (64 - b).min(end - i);
        let mask = if n == 64 { u64::MAX } else { ((1u64 << n) - 1) << b };
        bits[w] |= mask;
        i += n;
    }
}

/// Messages in reassembly, keyed by their source and id.
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    partial: HashMap<(PublicKey, u32), Partial>,
    /// Buffers of finished messages, for reuse.
    spare: Vec<Vec<u8>>,
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

impl Reassembly {
    /// Messages in reassembly now (all peers).
    pub(crate) fn len(&self) -> usize {
        self.partial.len()
    }

    /// Bytes held by messages in reassembly now (all peers).
    pub(crate) fn bytes(&self) -> usize {
        self.partial.values().map(|p| p.buf.len()).sum()
    }

    /// Messages in reassembly charged to the direct peer `via`.
    pub(crate) fn held_by(&self, via: &PublicKey) -> usize {
        self.partial.values().filter(|p| p.via == *via).count()
    }

    /// Takes one piece (`body`: what follows the `Fragment` kind byte) of
    /// a message from `src`, delivered by the direct peer `via` (`direct`:
    /// `src` is `via` itself, not relayed). Returns the message's kind and
    /// bytes once it is whole; the caller hands the buffer back with
    /// [`Reassembly::recycle`]. Refusals and evictions are counted in `drops`.
    pub(crate) fn add(
        &mut self,
        now: Instant,
        src: PublicKey,
        via: PublicKey,
        body: &[u8],
        direct: bool,
        drops: &mut Drops,
    ) -> Option<(Kind, Vec<u8>)> {
        let Some((FragmentHeader { id, total, offset, kind }, data)) = FragmentHeader::parse(body) else {
            drops.count(DropReason::BadPayload);
            return None;
        };
        let (total, start) = (total as usize, offset as usize);
        let end = start.checked_add(data.len()).filter(|&e| e <= total);
        let Some(end) = end.filter(|&e| {
            acceptable(kind, total, direct) && !data.is_empty() && (e == total || data.len() >= MIN_PIECE)
        }) else {
            drops.count(DropReason::BadPayload);
            return None;
        };
        if !self.partial.contains_key(&(src, id)) {
            self.make_room(via, kind != Kind::Frame as u8, drops);
            let mut buf = self.spare.pop().unwrap_or_default();
            buf.clear();
            buf.resize(total, 0);
            let have = vec![0u64; total.div_ceil(64)];
            self.partial.insert((src, id), Partial { kind, via, buf, have, received: 0, started: now });
        }
        let p = self.partial.get_mut(&(src, id)).expect("inserted above");
        if p.kind != kind || p.buf.len() != total || any_set(&p.have, start, end) {
            // A repeat, or disagrees with earlier pieces: a broken or hostile sender.
            drops.count(DropReason::BadPayload);
            return None;
        }
        p.buf[start..end].copy_from_slice(data);
        set_range(&mut p.have, start, end);
        p.received += data.len();
        if p.received < total {
            return None;
        }
        let p = self.partial.remove(&(src, id)).expect("present");
        Some((Kind::from_u8(kind).expect("checked by acceptable"), p.buf))
    }

    /// Before a new message from `via`: evicts its own oldest of the same
    /// class when it is at its budget, and the oldest of the peer holding
    /// the most when all together are at theirs.
    fn make_room(&mut self, via: PublicKey, control: bool, drops: &mut Drops) {
        let cap = if control { MAX_CONTROL_PER_PEER } else { MAX_FRAMES_PER_PEER };
        let same_class = |p: &Partial| p.via == via && p.is_control() == control;
        if self.partial.values().filter(|p| same_class(p)).count() >= cap && self.evict_oldest(same_class) {
            drops.count(DropReason::Incomplete);
        }
        if self.partial.len() >= MAX_PARTIAL_TOTAL {
            let mut held: HashMap<PublicKey, usize> = HashMap::new();
            for p in self.partial.values() {
                *held.entry(p.via).or_default() += 1;
            }
            // The largest holder; among equals, the one asking, then any.
            let most = held.values().copied().max().unwrap_or(0);
            let victim = if held.get(&via) == Some(&most) {
                Some(via)
            } else {
                held.iter().find(|(_, n)| **n == most).map(|(k, _)| *k)
            };
            if let Some(v) = victim {
                if self.evict_oldest(|p| p.via == v) {
                    drops.count(DropReason::Incomplete);
                }
            }
        }
    }

    /// Removes the oldest message among those `pick` selects; true if one was.
    fn evict_oldest(&mut self, pick: impl Fn(&Partial) -> bool) -> bool {
        let oldest = self.partial.iter().filter(|(_, p)| pick(p)).min_by_key(|(_, p)| p.started).map(|(k, _)| *k);
        let Some(k) = oldest else { return false };
        let p = self.partial.remove(&k).expect("listed");
        self.recycle(p.buf);
        true
    }

    /// Takes back the buffer of a message handled (or given up), for reuse.
    pub(crate) fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < 4 {
            self.spare.push(buf);
        }
    }

    /// Drops messages that did not arrive whole in time, counted.
    pub(crate) fn expire(&mut self, now: Instant, drops: &mut Drops) {
        let before = self.partial.len();
        self.partial.retain(|_, p| now.saturating_duration_since(p.started) < REASSEMBLY_TIMEOUT);
        let lost = before - self.partial.len();
        drops.add(DropReason::Incomplete, lost as u64);
    }
}

impl Node {
    /// Takes one piece of a message from `src`, delivered by the direct
    /// peer `via` (see [`Reassembly::add`]).
    pub(super) fn reassemble(
        &mut self,
        now: Instant,
        src: PublicKey,
        via: PublicKey,
        body: &[u8],
        direct: bool,
    ) -> Option<(Kind, Vec<u8>)> {
        self.reassembly.add(now, src, via, body, direct, &mut self.drops)
    }

    /// Drops messages that did not arrive whole in time.
    pub(super) fn expire_fragments(&mut self, now: Instant) {
        self.reassembly.expire(now, &mut self.drops);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(id: u32, total: u32, offset: u32, kind: Kind, data: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; crate::wire::FRAGMENT_HEADER_LEN];
        FragmentHeader { id, total, offset, kind: kind as u8 }.write(&mut b);
        b.extend_from_slice(data);
        b
    }

    fn key(i: u8) -> PublicKey {
        PublicKey([i; 32])
    }

    #[test]
    fn bitmaps_find_overlaps_at_any_alignment() {
        let mut bits = vec![0u64; 4];
        set_range(&mut bits, 3, 130);
        assert!(any_set(&bits, 0, 4) && any_set(&bits, 129, 200) && any_set(&bits, 64, 65));
        assert!(!any_set(&bits, 0, 3) && !any_set(&bits, 130, 256) && !any_set(&bits, 5, 5));
        set_range(&mut bits, 0, 256);
        assert_eq!(bits, vec![u64::MAX; 4]);
    }

    #[test]
    fn pieces_in_any_order_make_the_message_and_bad_ones_are_refused() {
        let (now, mut drops, mut r) = (Instant::now(), Drops::default(), Reassembly::default());
        let msg: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let (a, b, c) = (&msg[..300], &msg[300..700], &msg[700..]);
        assert!(r.add(now, key(1), key(1), &piece(5, 1000, 700, Kind::Gossip, c), true, &mut drops).is_none());
        assert!(r.add(now, key(1), key(1), &piece(5, 1000, 0, Kind::Gossip, a), true, &mut drops).is_none());
        // Overlaps, short pieces (not the last), and ranges past the end.
        for bad in [
            piece(5, 1000, 299, Kind::Gossip, &msg[299..700]),
            piece(5, 1000, 300, Kind::Gossip, &msg[300..400]),
            piece(5, 1000, 990, Kind::Gossip, &[0; 20]),
            piece(5, 1000, u32::MAX, Kind::Gossip, &[0; 300]),
        ] {
            assert!(r.add(now, key(1), key(1), &bad, true, &mut drops).is_none());
        }
        assert_eq!(drops.get(DropReason::BadPayload), 4);
        let (kind, whole) =
            r.add(now, key(1), key(1), &piece(5, 1000, 300, Kind::Gossip, b), true, &mut drops).unwrap();
        assert_eq!((kind, whole), (Kind::Gossip, msg));
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn one_sender_cannot_evict_the_others_messages() {
        let (now, mut drops, mut r) = (Instant::now(), Drops::default(), Reassembly::default());
        let first = [0u8; MIN_PIECE];
        let total = MAX_MESSAGE as u32;
        // Sixteen peers hold a partial super-frame each.
        for p in 0..16u8 {
            r.add(now, key(p), key(p), &piece(1, total, 0, Kind::Frame, &first), true, &mut drops);
        }
        // One peer relays thousands naming made-up sources: it keeps at most
        // its own budget, evicting its own oldest.
        for id in 0..5000u32 {
            let src = PublicKey([200 + (id % 50) as u8; 32]);
            let later = now + Duration::from_micros(u64::from(id) + 1);
            r.add(later, src, key(99), &piece(id, total, 0, Kind::Frame, &first), false, &mut drops);
        }
        assert_eq!(r.held_by(&key(99)), MAX_FRAMES_PER_PEER);
        for p in 0..16u8 {
            assert_eq!(r.held_by(&key(p)), 1, "peer {p} kept its message");
        }
        // With every budget full, a newcomer evicts from the largest holder.
        for p in 100..190u8 {
            for id in 0..MAX_FRAMES_PER_PEER as u32 {
                r.add(now, key(p), key(p), &piece(id, total, 0, Kind::Frame, &first), true, &mut drops);
            }
        }
        assert_eq!(r.len(), MAX_PARTIAL_TOTAL);
        assert!(r.bytes() <= MAX_PARTIAL_TOTAL * MAX_MESSAGE);
        r.expire(now + 2 * REASSEMBLY_TIMEOUT, &mut drops);
        assert_eq!(r.len(), 0);
        assert_eq!(drops.get(DropReason::BadPayload), 0);
    }
}
