//! The data path: DATA packets in, frames out to peers (direct or relayed),
//! keepalives and gossip messages.

use super::*;
use crate::gossip;
use crate::mac::{self, Mac};
use crate::snoop::{self, FrameClass};
use crate::vnet::VNET_HDR_LEN;
use crate::wire::{Kind, RelayHeader, ETH_HEADER_LEN as ETH_HEADER, RELAY_HEADER_LEN, RELAY_OVERHEAD};

pub(super) fn macs_of(frame: &[u8]) -> (Mac, Mac) {
    let mut dst = [0u8; 6];
    let mut src = [0u8; 6];
    dst.copy_from_slice(&frame[0..6]);
    src.copy_from_slice(&frame[6..12]);
    (dst, src)
}

impl Node {
    /// Handles one Ethernet frame read from the TAP (sent by a local member).
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8], io: &mut impl Io) {
        self.handle_any_frame(now, frame, None, io)
    }

    /// Handles a segmentation-offload super-frame read from a TAP with
    /// `IFF_VNET_HDR`, with its header: it travels whole, in fragments.
    pub fn handle_offloaded_frame(
        &mut self,
        now: Instant,
        vnet_hdr: &[u8; VNET_HDR_LEN],
        frame: &[u8],
        io: &mut impl Io,
    ) {
        self.handle_any_frame(now, frame, Some(vnet_hdr), io)
    }

    fn handle_any_frame(&mut self, now: Instant, frame: &[u8], offload: Option<&[u8; VNET_HDR_LEN]>, io: &mut impl Io) {
        if frame.len() < ETH_HEADER {
            return self.drops.count(DropReason::Malformed);
        }
        if offload.is_none() && frame.len() > self.cfg.overlay_mtu + ETH_HEADER {
            return self.drops.count(DropReason::Oversize);
        }
        if frame.len() > offload::MAX_MESSAGE - VNET_HDR_LEN {
            return self.drops.count(DropReason::Oversize);
        }
        self.refresh_routes(now);
        let (dst, src) = macs_of(frame);
        // A source seen locally is not behind any peer (it may have moved here).
        self.macs.forget(&src);
        if !mac::is_group(&dst) {
            if let Some(owner) = self.macs.lookup(&dst, now) {
                self.send_frame(now, owner, frame, offload, io);
                return;
            }
        } else if dst != [0xff; 6] {
            match snoop::classify(frame) {
                FrameClass::Control(msg) => return self.on_membership(now, src, msg),
                FrameClass::Multicast { group, source } => {
                    return self.replicate(now, group, source, frame, offload, io);
                }
                FrameClass::Other => {}
            }
        }
        // Broadcast, non-IP multicast and unknown unicast: every peer we can reach.
        let mut targets = std::mem::take(&mut self.targets);
        targets.clear();
        targets.extend(self.hops.keys().copied());
        if targets.is_empty() {
            self.drops.count(DropReason::NoRoute);
        }
        for k in &targets {
            self.send_frame(now, *k, frame, offload, io);
        }
        self.targets = targets;
    }

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
        let Some(hop) = self.hops.get(&dst).copied() else {
            self.drops.count(DropReason::NoRoute);
            return false;
        };
        if let Some(h) = offload {
            return self.send_fragments(now, dst, hop, h, frame, io);
        }
        if hop == dst {
            return self.bundle_frame(dst, frame, io);
        }
        let at = self.write_relay_header(dst);
        self.plain[at] = Kind::Frame as u8;
        self.plain[at + 1..at + 3].copy_from_slice(&(frame.len() as u16).to_be_bytes());
        self.plain[at + 3..at + 3 + frame.len()].copy_from_slice(frame);
        let sent = self.seal_plain_to(now, hop, at + 3 + frame.len(), io);
        if sent {
            if let Some(p) = self.peers.get_mut(&dst) {
                p.traffic.tx_frames += 1;
                p.traffic.tx_bytes += frame.len() as u64;
            }
        }
        sent
    }

    /// Largest plaintext of one datagram: a relayed frame of the overlay
    /// MTU. Bundles fill up to this, so they never exceed the underlay MTU.
    pub(super) fn bundle_budget(&self) -> usize {
        1 + RELAY_OVERHEAD + self.cfg.overlay_mtu + ETH_HEADER
    }

    /// Writes `Relay | header` for `dst` at the start of `plain`; returns
    /// where the inner payload starts.
    pub(super) fn write_relay_header(&mut self, dst: PublicKey) -> usize {
        self.plain[0] = Kind::Relay as u8;
        RelayHeader { ttl: RELAY_TTL, dst: dst.short_id(), src: self.public_key().short_id() }
            .write(&mut self.plain[1..]);
        1 + RELAY_HEADER_LEN
    }

    /// Queues a frame for a direct peer. Frames queued for the same peer
    /// before the next [`Node::flush`] travel in one datagram (each with a
    /// 2-byte length): at small frame sizes the per-datagram cost dominates,
    /// so this is what keeps pps and multicast fan-out up. Nothing waits
    /// for more frames: the daemon flushes after each batch it read.
    fn bundle_frame(&mut self, dst: PublicKey, frame: &[u8], io: &mut impl Io) -> bool {
        let budget = self.bundle_budget();
        let Some(p) = self.peers.get_mut(&dst).filter(|p| p.current.is_some() && p.endpoint.is_some()) else {
            self.drops.count(DropReason::NoRoute);
            return false;
        };
        // Full: send what is queued; the peer stays listed for the flush.
        let listed = !p.bundle.is_empty();
        if listed && p.bundle.len() + 2 + frame.len() > budget {
            self.seal_bundle(dst, io);
        }
        let p = self.peers.get_mut(&dst).expect("checked above");
        if p.bundle.is_empty() {
            p.bundle.push(Kind::Frame as u8);
            if !listed {
                self.bundled.push(dst);
            }
        }
        p.bundle.extend_from_slice(&(frame.len() as u16).to_be_bytes());
        p.bundle.extend_from_slice(frame);
        p.traffic.tx_frames += 1;
        p.traffic.tx_bytes += frame.len() as u64;
        true
    }

    /// Seals and sends the frames queued for `to`.
    pub(super) fn seal_bundle(&mut self, to: PublicKey, io: &mut impl Io) {
        let Some(p) = self.peers.get_mut(&to).filter(|p| !p.bundle.is_empty()) else { return };
        let sealed = match (p.current.as_mut(), p.endpoint) {
            (Some(s), Some(ep)) => s.seal(&p.bundle, &mut self.sealed).ok().map(|n| (n, ep)),
            _ => None,
        };
        p.bundle.clear();
        match sealed {
            Some((n, ep)) => io.send(ep, &self.sealed[..n]),
            None => self.drops.count(DropReason::NoRoute),
        }
    }

    /// Sends every queued frame. The daemon calls this after each batch of
    /// frames it read from the TAP.
    pub fn flush(&mut self, io: &mut impl Io) {
        let mut bundled = std::mem::take(&mut self.bundled);
        for k in bundled.drain(..) {
            self.seal_bundle(k, io);
        }
        self.bundled = bundled;
    }

    /// Seals `self.plain[..len]` on `to`'s current session and sends it.
    pub(super) fn seal_plain_to(&mut self, _now: Instant, to: PublicKey, len: usize, io: &mut impl Io) -> bool {
        let Some(p) = self.peers.get_mut(&to) else {
            self.drops.count(DropReason::NoRoute);
            return false;
        };
        let (Some(s), Some(ep)) = (p.current.as_mut(), p.endpoint) else {
            self.drops.count(DropReason::NoRoute);
            return false;
        };
        match s.seal(&self.plain[..len], &mut self.sealed) {
            Ok(n) => {
                io.send(ep, &self.sealed[..n]);
                true
            }
            Err(_) => {
                // Exhausted: the timers will rekey; drop meanwhile.
                self.drops.count(DropReason::NoRoute);
                false
            }
        }
    }

    /// Seals a control payload (`kind` + `body`) to a direct peer. One that
    /// would not fit a datagram within the MTU (a large gossip record) goes
    /// in pieces (see `offload`), so the underlay never has to IP-fragment
    /// it.
    pub(super) fn send_control(&mut self, now: Instant, to: PublicKey, kind: Kind, body: &[u8], io: &mut impl Io) {
        if 1 + body.len() > self.bundle_budget() {
            self.send_pieces(now, to, to, kind, &[], body, io);
            return;
        }
        self.plain[0] = kind as u8;
        self.plain[1..1 + body.len()].copy_from_slice(body);
        self.seal_plain_to(now, to, 1 + body.len(), io);
    }

    pub(super) fn send_ping(&mut self, now: Instant, to: PublicKey, io: &mut impl Io) {
        let token = now.saturating_duration_since(self.start).as_micros() as u64;
        if let Some(p) = self.peers.get_mut(&to) {
            p.last_ping = Some(now);
        }
        self.send_control(now, to, Kind::Ping, &token.to_be_bytes(), io);
    }

    /// Sends every record this node knows (its own included) to `to`.
    pub(super) fn send_full_gossip(&mut self, now: Instant, to: PublicKey, io: &mut impl Io) {
        self.refresh_own(now);
        let msgs = gossip::encode_messages(std::iter::once(&self.own).chain(self.gossip.records()));
        for m in msgs {
            self.send_control(now, to, Kind::Gossip, &m, io);
        }
    }
}
