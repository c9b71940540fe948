//! Payloads out to peers: a frame to its destination (queued in the
//! peer's bundle when it is direct, wrapped for a relay otherwise; an
//! offloaded super-frame cut in pieces, or into plain TCP segments when the
//! peer's path is lossy, see `lossy`), flushing the bundles, control
//! messages (in pieces when too big for a datagram), and keepalive pings.

use super::offload::MAX_MESSAGE;
use super::relay::RELAY_INNER_AT;
use super::{Io, Node};
use crate::keys::PublicKey;
use crate::segment::Segments;
use crate::stats::DropReason;
use crate::vnet::{VnetHdr, VNET_HDR_LEN};
use crate::wire::{
    self, FragmentHeader, Kind, BUNDLE_PREFIX_LEN, ETH_HEADER_LEN, FRAGMENT_HEADER_LEN, MAX_BUNDLED_FRAME,
    RELAY_OVERHEAD, TAG_LEN,
};
use std::time::Instant;

impl Node {
    /// Sends a frame to `dst`: on its session, or through the relay route.
    /// Returns whether it went out.
    pub(super) fn send_frame(
        &mut self,
        now: Instant,
        dst: PublicKey,
        frame: &[u8],
        offload: Option<&[u8; VNET_HDR_LEN]>,
        io: &mut impl Io,
    ) -> bool {
        let Some(hop) = self.next_hop(&dst) else {
            self.drops.count(DropReason::NoRoute);
            return false;
        };
        if let Some(h) = offload {
            if self.is_lossy(now, &dst) {
                if let Some(sent) = self.send_segments(now, dst, hop, h, frame, io) {
                    return sent;
                }
            }
            return self.send_fragments(now, dst, hop, h, frame, io);
        }
        self.send_plain(now, dst, hop, frame, io)
    }

    /// Sends a plain frame to `dst`: queued in its bundle when `hop` is
    /// `dst`, else wrapped for the relay `hop`. Returns whether it went out.
    fn send_plain(&mut self, now: Instant, dst: PublicKey, hop: PublicKey, frame: &[u8], io: &mut impl Io) -> bool {
        if hop == dst {
            return self.bundle_frame(now, dst, frame, io);
        }
        let sent = self.send_relayed_frame(now, dst, hop, frame, io);
        if sent {
            self.count_sent(dst, frame.len());
        }
        sent
    }

    /// Counts a frame of `len` bytes sent to `dst` in its traffic figures.
    fn count_sent(&mut self, dst: PublicKey, len: usize) {
        if let Some(p) = self.peers.get_mut(&dst) {
            p.traffic.tx_frames += 1;
            p.traffic.tx_bytes += len as u64;
        }
    }

    /// Sends a TCP super-frame to `dst` (through `hop`) as the plain
    /// segments the receiving kernel would cut it into, each like any other
    /// frame (bundled, or relayed). `None` when it cannot be cut here
    /// (see [`Segments::new`]): the caller sends it whole. Else whether
    /// every segment went out.
    fn send_segments(
        &mut self,
        now: Instant,
        dst: PublicKey,
        hop: PublicKey,
        vnet_hdr: &[u8; VNET_HDR_LEN],
        frame: &[u8],
        io: &mut impl Io,
    ) -> Option<bool> {
        let max = self.cfg.overlay_mtu + ETH_HEADER_LEN;
        let mut segments = Segments::new(&VnetHdr::parse(vnet_hdr), frame, max).ok()?;
        let mut buf = std::mem::take(&mut self.seg_buf);
        let mut all = true;
        while let Some(n) = segments.next_into(&mut buf) {
            all &= self.send_plain(now, dst, hop, &buf[..n], io);
            self.seg_stats.segments += 1;
        }
        self.seg_buf = buf;
        self.seg_stats.superframes += 1;
        Some(all)
    }

    /// Largest plaintext of one datagram: a relayed frame of the overlay
    /// MTU. Bundles fill up to this, so they never exceed the underlay MTU.
    pub(super) fn bundle_budget(&self) -> usize {
        1 + RELAY_OVERHEAD + self.cfg.overlay_mtu + ETH_HEADER_LEN
    }

    /// Queues a frame for a direct peer. Frames queued for the same peer
    /// before the next [`Node::flush`] travel in one datagram (each with a
    /// 2-byte length): at small frame sizes the per-datagram cost dominates,
    /// so this is what keeps pps and multicast fan-out up. Nothing waits
    /// for more frames: the daemon flushes after each batch it read.
    fn bundle_frame(&mut self, now: Instant, dst: PublicKey, frame: &[u8], io: &mut impl Io) -> bool {
        let budget = self.bundle_budget();
        let Some(p) = self.peers.get_mut(&dst).filter(|p| p.current.is_some() && p.endpoint.is_some()) else {
            self.drops.count(DropReason::NoRoute);
            return false;
        };
        if frame.len() > MAX_BUNDLED_FRAME {
            self.drops.count(DropReason::Oversize);
            return false;
        }
        // Full: send what is queued; the peer stays listed for the flush.
        let listed = !p.bundle.is_empty();
        if listed && p.bundle.len() + BUNDLE_PREFIX_LEN + frame.len() > budget {
            self.seal_bundle(dst, io);
        }
        let p = self.peers.get_mut(&dst).expect("checked above");
        if p.bundle.is_empty() {
            p.bundle.push(Kind::Frame as u8);
            if !listed {
                self.bundled.push(dst);
            }
        }
        let pushed = wire::push_bundled(&mut p.bundle, frame);
        debug_assert!(pushed, "length checked above");
        // Sent now as far as liveness is concerned (a peer we send to and
        // do not hear from gets probed), though the bundle leaves at the
        // next flush.
        p.live.sent(now);
        p.traffic.tx_frames += 1;
        p.traffic.tx_bytes += frame.len() as u64;
        true
    }

    /// Seals and sends the frames queued for `to`.
    fn seal_bundle(&mut self, to: PublicKey, io: &mut impl Io) {
        let Some(p) = self.peers.get_mut(&to).filter(|p| !p.bundle.is_empty()) else { return };
        let sealed = match (p.current.as_mut(), p.endpoint) {
            (Some(s), Some(ep)) => {
                s.seal(&p.bundle, &mut self.sealed).ok().map(|n| (n, ep, s.remote_index, s.sent() - 1))
            }
            _ => None,
        };
        let (lossy, len) = (p.lossy_until.is_some(), p.bundle.len());
        if !lossy {
            p.bundle.clear();
        }
        match sealed {
            Some((n, ep, session, counter)) => {
                io.send(ep, &self.sealed[..n]);
                if lossy {
                    // The parity group reads the plaintext from the bundle.
                    self.fec_sent(to, session, counter, true, len, io);
                }
            }
            None => self.drops.count(DropReason::NoRoute),
        }
        if lossy {
            if let Some(p) = self.peers.get_mut(&to) {
                p.bundle.clear();
            }
        }
    }

    /// Sends every queued frame and the parity of open groups (`fec`), and
    /// delivers the TCP segments from peers held to be joined (`recv`). The daemon calls this after each batch
    /// of frames it read from the TAP and of datagrams it received.
    pub fn flush(&mut self, io: &mut impl Io) {
        let mut bundled = std::mem::take(&mut self.bundled);
        for k in bundled.drain(..) {
            self.seal_bundle(k, io);
        }
        self.bundled = bundled;
        self.fec_flush(io);
        self.flush_joined(io);
    }

    /// Seals a control payload (`kind` + `body`) to a direct peer. One that
    /// would not fit a datagram within the MTU (a large gossip record) goes
    /// in pieces, so the underlay never has to IP-fragment it.
    pub(super) fn send_control(&mut self, now: Instant, to: PublicKey, kind: Kind, body: &[u8], io: &mut impl Io) {
        if 1 + body.len() > self.bundle_budget() {
            self.send_pieces(now, to, to, kind, &[], body, io);
            return;
        }
        self.plain[0] = kind as u8;
        self.plain[1..1 + body.len()].copy_from_slice(body);
        self.seal_plain_to(now, to, 1 + body.len(), io);
    }

    /// Sends a keepalive ping, whose token is the time since start (the
    /// pong's answer gives the round trip).
    pub(super) fn send_ping(&mut self, now: Instant, to: PublicKey, io: &mut impl Io) {
        let token = now.saturating_duration_since(self.start).as_micros() as u64;
        self.send_control(now, to, Kind::Ping, &token.to_be_bytes(), io);
    }

    /// Sends `vnet_hdr` + `frame` to `dst` in fragments, through `hop`.
    fn send_fragments(
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
        self.count_sent(dst, frame.len());
        true
    }

    /// Largest payload a piece carries: what is left of a datagram's budget
    /// after the fragment header. Room for the relay header and the
    /// end-to-end tag is kept whether or not it is needed, so every piece is
    /// the same size either way.
    fn piece_len(&self) -> usize {
        self.bundle_budget() - (RELAY_INNER_AT + TAG_LEN + 1 + FRAGMENT_HEADER_LEN)
    }

    /// Sends the message `head` + `body`, of kind `kind`, to `dst` through
    /// `hop` in pieces that each fit a datagram (see `offload`).
    #[allow(clippy::too_many_arguments)]
    fn send_pieces(
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
        let id = self.next_message_id;
        self.next_message_id = id.wrapping_add(1);
        let chunk = self.piece_len();
        let h = head.len();
        let mut offset = 0;
        while offset < total {
            let n = chunk.min(total - offset);
            let at = if hop == dst { 0 } else { RELAY_INNER_AT };
            let p = &mut self.plain[at..];
            p[0] = Kind::Fragment as u8;
            FragmentHeader { id, total: total as u32, offset: offset as u32, kind: kind as u8 }.write(&mut p[1..]);
            let d = 1 + FRAGMENT_HEADER_LEN;
            // The message is the head then the body: copy the part of each in range.
            let (end, piece) = (offset + n, &mut p[d..d + n]);
            let from_head = h.saturating_sub(offset).min(n);
            piece[..from_head].copy_from_slice(&head[offset.min(h)..offset.min(h) + from_head]);
            if from_head < n {
                piece[from_head..].copy_from_slice(&body[offset + from_head - h..end - h]);
            }
            let sent = if hop == dst {
                self.seal_plain_to(now, hop, d + n, io)
            } else {
                self.send_relayed(now, dst, hop, at + d + n, io)
            };
            if !sent {
                return false;
            }
            offset += n;
        }
        true
    }
}
