//! Messages too big for one datagram, in pieces (`Kind::Fragment`).
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

use super::*;
use crate::vnet::VNET_HDR_LEN;
use crate::wire::{Kind, FRAGMENT_HEADER_LEN};

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

/// Messages in reassembly, and the id of the next one sent.
#[derive(Debug, Default)]
pub(super) struct Reassembly {
    partial: HashMap<(PublicKey, u32), Partial>,
    next_id: u32,
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
        if self.spare.len() < 4 {
            self.spare.push(p.buf);
        }
        true
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
    /// Sends `vnet_hdr` + `frame` to `dst` in fragments, through `hop`.
    pub(super) fn send_fragments(
        &mut self,
        now: Instant,
        dst: PublicKey,
        hop: PublicKey,
        vnet_hdr: &[u8; VNET_HDR_LEN],
        frame: &[u8],
        io: &mut impl Io,
    ) -> bool {
        if !self.send_pieces(now, dst, hop, Kind::Frame, vnet_hdr, frame, io) {
            return false;
        }
        if let Some(p) = self.peers.get_mut(&dst) {
            p.traffic.tx_frames += 1;
            p.traffic.tx_bytes += frame.len() as u64;
        }
        true
    }

    /// Largest payload a piece carries: what is left of a datagram's budget
    /// after the fragment header. Room for the relay header is kept whether
    /// or not it is needed, so every piece is the same size either way.
    pub(super) fn piece_len(&self) -> usize {
        self.bundle_budget() - (1 + crate::wire::RELAY_HEADER_LEN + 1 + FRAGMENT_HEADER_LEN)
    }

    /// Sends the message `head` + `body`, of kind `kind`, to `dst` through
    /// `hop` in pieces that each fit a datagram.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_pieces(
        &mut self,
        now: Instant,
        dst: PublicKey,
        hop: PublicKey,
        kind: Kind,
        head: &[u8],
        body: &[u8],
        io: &mut impl Io,
    ) -> bool {
        let total = head.len() + body.len();
        if total > MAX_MESSAGE {
            self.drops.count(DropReason::Oversize);
            return false;
        }
        // Frames queued for this peer go first, to keep the order.
        self.seal_bundle(hop, io);
        let id = self.reassembly.next_id;
        self.reassembly.next_id = id.wrapping_add(1);
        let chunk = self.piece_len();
        let h = head.len();
        let mut offset = 0;
        while offset < total {
            let n = chunk.min(total - offset);
            let at = if hop == dst { 0 } else { self.write_relay_header(dst) };
            let p = &mut self.plain[at..];
            p[0] = Kind::Fragment as u8;
            p[1..5].copy_from_slice(&id.to_be_bytes());
            p[5..9].copy_from_slice(&(total as u32).to_be_bytes());
            p[9..13].copy_from_slice(&(offset as u32).to_be_bytes());
            p[13] = kind as u8;
            let d = 1 + FRAGMENT_HEADER_LEN;
            // The message is the head then the body: copy the part of each in range.
            let (end, piece) = (offset + n, &mut p[d..d + n]);
            let from_head = h.saturating_sub(offset).min(n);
            piece[..from_head].copy_from_slice(&head[offset.min(h)..offset.min(h) + from_head]);
            if from_head < n {
                piece[from_head..].copy_from_slice(&body[offset + from_head - h..end - h]);
            }
            if !self.seal_plain_to(now, hop, at + d + n, io) {
                return false;
            }
            offset += n;
        }
        true
    }

    /// A fragment from `src` (`direct`: from that peer itself, not relayed);
    /// handles the message once whole.
    pub(super) fn on_fragment(&mut self, now: Instant, src: PublicKey, body: &[u8], direct: bool, io: &mut impl Io) {
        if body.len() < FRAGMENT_HEADER_LEN {
            return self.drops.count(DropReason::BadPayload);
        }
        let word = |i: usize| u32::from_be_bytes(body[i..i + 4].try_into().expect("length checked"));
        let (id, total, offset, kind) = (word(0), word(4) as usize, word(8) as usize, body[12]);
        let data = &body[FRAGMENT_HEADER_LEN..];
        if !acceptable(kind, total, direct) || data.is_empty() || offset + data.len() > total {
            return self.drops.count(DropReason::BadPayload);
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
            return self.drops.count(DropReason::BadPayload);
        }
        p.buf[offset..offset + data.len()].copy_from_slice(data);
        p.ranges.push((start, end));
        p.received += data.len();
        if p.received < total {
            return;
        }
        let p = self.reassembly.partial.remove(&(src, id)).expect("present");
        if control {
            let kind = Kind::from_u8(kind).expect("checked by acceptable");
            self.on_control(now, src, kind, &p.buf, io);
        } else {
            let mut hdr = [0u8; VNET_HDR_LEN];
            hdr.copy_from_slice(&p.buf[..VNET_HDR_LEN]);
            self.deliver_from(now, src, &p.buf[VNET_HDR_LEN..], Some(&hdr), io);
        }
        if self.reassembly.spare.len() < 4 {
            self.reassembly.spare.push(p.buf);
        }
    }

    /// Drops messages that did not arrive whole in time.
    pub(super) fn expire_fragments(&mut self, now: Instant) {
        let before = self.reassembly.partial.len();
        self.reassembly.partial.retain(|_, p| now.saturating_duration_since(p.started) < REASSEMBLY_TIMEOUT);
        let lost = before - self.reassembly.partial.len();
        self.drops.add(DropReason::Incomplete, lost as u64);
    }
}
