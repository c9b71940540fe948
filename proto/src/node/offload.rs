//! Super-frames in fragments.
//!
//! With TAP offloads a local TCP sender hands the daemon frames of up to
//! 64 KiB. Each travels as one message (its 10-byte virtio-net header, then
//! the frame) cut into fragments that each fill a datagram, and is written
//! whole into the receiving TAP, so neither kernel segments it: one TAP
//! read and one TAP write per 64 KiB instead of ~45 each. A message missing
//! a fragment is dropped after a short while (TCP retransmits).

use super::*;
use crate::vnet::VNET_HDR_LEN;
use crate::wire::{Kind, FRAGMENT_HEADER_LEN};

/// Largest message: a virtio-net header and a 64 KiB frame with its
/// Ethernet header.
pub(super) const MAX_MESSAGE: usize = VNET_HDR_LEN + 65_535 + 14;
/// Messages in reassembly per peer at most (the oldest gives way).
const MAX_PARTIAL_PER_PEER: usize = 8;
/// How long a message may take to arrive whole.
const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(1);

/// A message being put together.
#[derive(Debug)]
struct Partial {
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
        // Frames queued for this peer go first, to keep the order.
        self.seal_bundle(hop, io);
        let id = self.reassembly.next_id;
        self.reassembly.next_id = id.wrapping_add(1);
        let total = VNET_HDR_LEN + frame.len();
        // Room for the relay header whether or not it is needed, so every
        // fragment is the same size either way.
        let chunk = self.bundle_budget() - (1 + crate::wire::RELAY_HEADER_LEN + 1 + FRAGMENT_HEADER_LEN);
        let mut offset = 0;
        while offset < total {
            let n = chunk.min(total - offset);
            let at = if hop == dst { 0 } else { self.write_relay_header(dst) };
            let p = &mut self.plain[at..];
            p[0] = Kind::Fragment as u8;
            p[1..5].copy_from_slice(&id.to_be_bytes());
            p[5..9].copy_from_slice(&(total as u32).to_be_bytes());
            p[9..13].copy_from_slice(&(offset as u32).to_be_bytes());
            // The message is the header then the frame: copy the part of each in range.
            let (end, body) = (offset + n, &mut p[13..13 + n]);
            let from_hdr = VNET_HDR_LEN.saturating_sub(offset).min(n);
            body[..from_hdr].copy_from_slice(&vnet_hdr[offset.min(VNET_HDR_LEN)..offset.min(VNET_HDR_LEN) + from_hdr]);
            if from_hdr < n {
                body[from_hdr..].copy_from_slice(&frame[offset + from_hdr - VNET_HDR_LEN..end - VNET_HDR_LEN]);
            }
            if !self.seal_plain_to(now, hop, at + 13 + n, io) {
                return false;
            }
            offset += n;
        }
        if let Some(p) = self.peers.get_mut(&dst) {
            p.traffic.tx_frames += 1;
            p.traffic.tx_bytes += frame.len() as u64;
        }
        true
    }

    /// A fragment from `src`; delivers the message once whole.
    pub(super) fn on_fragment(&mut self, now: Instant, src: PublicKey, body: &[u8], io: &mut impl Io) {
        if body.len() < FRAGMENT_HEADER_LEN {
            return self.drops.count(DropReason::BadPayload);
        }
        let word = |i: usize| u32::from_be_bytes(body[i..i + 4].try_into().expect("length checked"));
        let (id, total, offset) = (word(0), word(4) as usize, word(8) as usize);
        let data = &body[FRAGMENT_HEADER_LEN..];
        if total <= VNET_HDR_LEN + 14 || total > MAX_MESSAGE || data.is_empty() || offset + data.len() > total {
            return self.drops.count(DropReason::BadPayload);
        }
        let r = &mut self.reassembly;
        if !r.partial.contains_key(&(src, id)) {
            if r.partial.keys().filter(|(k, _)| *k == src).count() >= MAX_PARTIAL_PER_PEER {
                let oldest =
                    r.partial.iter().filter(|((k, _), _)| *k == src).min_by_key(|(_, p)| p.started).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    let p = r.partial.remove(&k).expect("listed");
                    r.spare.push(p.buf);
                    self.drops.count(DropReason::BadPayload);
                }
            }
            let mut buf = self.reassembly.spare.pop().unwrap_or_default();
            buf.clear();
            buf.resize(total, 0);
            self.reassembly.partial.insert((src, id), Partial { buf, ranges: Vec::new(), received: 0, started: now });
        }
        let p = self.reassembly.partial.get_mut(&(src, id)).expect("inserted above");
        let (start, end) = (offset as u32, (offset + data.len()) as u32);
        if p.buf.len() != total || p.ranges.iter().any(|(s, e)| start < *e && *s < end) {
            // Disagrees with earlier fragments: a broken or hostile sender.
            return self.drops.count(DropReason::BadPayload);
        }
        p.buf[offset..offset + data.len()].copy_from_slice(data);
        p.ranges.push((start, end));
        p.received += data.len();
        if p.received < total {
            return;
        }
        let p = self.reassembly.partial.remove(&(src, id)).expect("present");
        let mut hdr = [0u8; VNET_HDR_LEN];
        hdr.copy_from_slice(&p.buf[..VNET_HDR_LEN]);
        self.deliver_from(now, src, &p.buf[VNET_HDR_LEN..], Some(&hdr), io);
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
