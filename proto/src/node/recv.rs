//! The receive path: DATA packets in, opened on their session, their
//! payloads dispatched: frames delivered to the bridge, keepalives
//! answered, gossip and IPAM messages handed on, relayed payloads to
//! `relay`, pieces to `offload` and the whole message handled once it is
//! complete.

use super::peer::Slot;
use super::{macs_of, Io, Node};
use crate::keys::PublicKey;
use crate::mac;
use crate::session::SessionError;
use crate::stats::DropReason;
use crate::vnet::{self, PeerOffload, VnetHdr, VNET_HDR_LEN};
use crate::wire::{self, Kind, ETH_HEADER_LEN};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

impl Node {
    /// A DATA packet: opened on the session its receiver index names (which
    /// confirms a responder's next session), then its payload handled.
    pub(super) fn on_data(
        &mut self,
        now: Instant,
        from: SocketAddr,
        receiver: u32,
        counter: u64,
        ciphertext: &[u8],
        io: &mut impl Io,
    ) {
        let Some(key) = self.indices.sessions.get(&receiver).copied() else {
            return self.drops.count(DropReason::UnknownSession);
        };
        let reject_after = self.cfg.timers.reject_after;
        let Some(p) = self.peers.get_mut(&key) else {
            return self.drops.count(DropReason::UnknownSession);
        };
        let Some((session, slot)) = p.session_mut(receiver) else {
            return self.drops.count(DropReason::UnknownSession);
        };
        if now.saturating_duration_since(session.established) >= reject_after {
            return self.drops.count(DropReason::UnknownSession);
        }
        let len = match session.open(counter, ciphertext, &mut self.rx) {
            Ok(n) => n,
            Err(SessionError::Replay) => return self.drops.count(DropReason::Replay),
            Err(_) => return self.drops.count(DropReason::Decrypt),
        };
        // Authenticated: the peer is alive and is where this came from.
        p.endpoint = Some(from);
        if slot == Slot::Next {
            self.promote_next(&key);
            self.gossip_peer_up(now, key, io);
        }
        self.heard_from(now, key, io);
        // `rx` beyond `len` holds an earlier payload: an empty one has no kind.
        if self.rx[..len].first() == Some(&(Kind::Parity as u8)) {
            return self.on_parity(now, key, receiver, len, io);
        }
        self.fec_keep(now, &key, receiver, counter, len);
        // The payload stays in `rx` while it is handled (a relayed one for
        // this host is opened in place); anything sent meanwhile is built
        // in `plain`.
        let mut rx = std::mem::take(&mut self.rx);
        self.dispatch(now, key, &mut rx[..len], io);
        self.rx = rx;
    }

    /// Handles a decrypted payload from the direct peer `from`.
    pub(super) fn dispatch(&mut self, now: Instant, from: PublicKey, payload: &mut [u8], io: &mut impl Io) {
        let Some(&kind) = payload.first() else {
            return self.drops.count(DropReason::BadPayload);
        };
        match Kind::from_u8(kind) {
            Some(Kind::Frame) => self.dispatch_frames(now, from, &payload[1..], io),
            Some(Kind::Fragment) => self.on_fragment(now, from, from, &payload[1..], true, io),
            Some(Kind::Relay) => {
                if let Some((src, inner)) = self.on_relay(now, from, payload, io) {
                    self.dispatch_relayed(now, src, from, inner, io);
                }
            }
            Some(k) => self.on_control(now, from, k, &payload[1..], io),
            None => self.drops.count(DropReason::BadPayload),
        }
    }

    /// Handles a relayed payload for this host, from `src` through the
    /// relay `via`: frames or a piece of a super-frame, nothing else.
    fn dispatch_relayed(&mut self, now: Instant, src: PublicKey, via: PublicKey, inner: &[u8], io: &mut impl Io) {
        match inner.first().and_then(|k| Kind::from_u8(*k)) {
            Some(Kind::Frame) => self.dispatch_frames(now, src, &inner[1..], io),
            Some(Kind::Fragment) => self.on_fragment(now, src, via, &inner[1..], false, io),
            _ => self.drops.count(DropReason::BadPayload),
        }
    }

    /// A control message from the direct peer `from`: in one datagram, or
    /// reassembled from pieces.
    fn on_control(&mut self, now: Instant, from: PublicKey, kind: Kind, body: &[u8], io: &mut impl Io) {
        match kind {
            Kind::Ping if body.len() == 8 => self.send_control(now, from, Kind::Pong, body, io),
            Kind::Pong if body.len() == 8 => {
                let token = u64::from_be_bytes(body.try_into().expect("length checked"));
                let now_us = now.saturating_duration_since(self.start).as_micros() as u64;
                if token <= now_us && now_us - token < 60_000_000 {
                    if let Some(p) = self.peers.get_mut(&from) {
                        p.rtt = Some(Duration::from_micros(now_us - token));
                        p.pongs += 1;
                    }
                }
            }
            Kind::Gossip => self.on_gossip(now, from, body, io),
            Kind::Suspect => self.on_suspect(now, from, body, io),
            Kind::Ipam => self.on_ipam_message(from, body),
            Kind::Revocation => self.on_revocation(now, from, body, io),
            Kind::RevocationDigest => self.on_revocation_digest(now, from, body, io),
            _ => self.drops.count(DropReason::BadPayload),
        }
    }

    /// A piece (after its kind byte) of a message from `src`, delivered by
    /// the direct peer `via` (`direct`: from that peer itself, not
    /// relayed); handles the message once whole.
    pub(super) fn on_fragment(
        &mut self,
        now: Instant,
        src: PublicKey,
        via: PublicKey,
        body: &[u8],
        direct: bool,
        io: &mut impl Io,
    ) {
        let Some((kind, mut message)) = self.reassemble(now, src, via, body, direct) else { return };
        match kind {
            Kind::Frame => self.deliver_super_frame(now, src, &mut message, io),
            control => self.on_control(now, src, control, &message, io),
        }
        self.reassembly.recycle(message);
    }

    /// A reassembled super-frame (its virtio-net header, then the frame)
    /// from `src`: into the TAP with its header when that asks for sane TCP
    /// segmentation; else, counted, completed and delivered plain when it
    /// fits the MTU, or dropped.
    fn deliver_super_frame(&mut self, now: Instant, src: PublicKey, message: &mut [u8], io: &mut impl Io) {
        let mut hdr = [0u8; VNET_HDR_LEN];
        hdr.copy_from_slice(&message[..VNET_HDR_LEN]);
        let h = VnetHdr::parse(&hdr);
        let frame = &mut message[VNET_HDR_LEN..];
        match h.from_peer(frame, self.cfg.overlay_mtu) {
            PeerOffload::Segment => self.deliver_from(now, src, frame, Some(&hdr), io),
            PeerOffload::Plain => {
                self.drops.count(DropReason::BadOffload);
                if frame.len() > self.cfg.overlay_mtu + ETH_HEADER_LEN {
                    return;
                }
                if h.flags & vnet::F_NEEDS_CSUM != 0 && !vnet::complete_checksum(frame, h.csum_start, h.csum_offset) {
                    return;
                }
                self.deliver_from(now, src, frame, None, io);
            }
        }
    }

    /// Frames (a bundle, after its kind byte) whose source is `src`,
    /// whether they came directly or through a relay.
    fn dispatch_frames(&mut self, now: Instant, src: PublicKey, body: &[u8], io: &mut impl Io) {
        for frame in wire::bundled_frames(body) {
            match frame {
                Ok(frame) => self.deliver_from(now, src, frame, None, io),
                Err(_) => return self.drops.count(DropReason::BadPayload),
            }
        }
    }

    /// Delivers a frame that came from `src` (with its offload header when
    /// it is a reassembled super-frame) into the local bridge.
    fn deliver_from(
        &mut self,
        now: Instant,
        src: PublicKey,
        frame: &[u8],
        offload: Option<&[u8; VNET_HDR_LEN]>,
        io: &mut impl Io,
    ) {
        if frame.len() < ETH_HEADER_LEN {
            return self.drops.count(DropReason::Malformed);
        }
        if offload.is_none() && frame.len() > self.cfg.overlay_mtu + ETH_HEADER_LEN {
            return self.drops.count(DropReason::Oversize);
        }
        let (dmac, smac) = macs_of(frame);
        if mac::is_group(&dmac) && dmac != [0xff; 6] && !self.account_delivery(&src, frame) {
            return;
        }
        if self.macs.learn(smac, src, now) {
            self.drops.count(DropReason::MacEvicted);
        }
        if let Some(p) = self.peers.get_mut(&src) {
            p.traffic.rx_frames += 1;
            p.traffic.rx_bytes += frame.len() as u64;
        }
        // Into the local bridge only: a frame from a peer never goes back
        // into the mesh (except along a relay route, handled in `relay`).
        // TCP segments in a row are joined into a super-frame first
        // (`crate::coalesce`); whatever was held leaves before anything
        // else, so the order stays.
        let Some(h) = offload else {
            let held = self.gro.is_holding();
            if self.gro.offer(frame) {
                return;
            }
            if held {
                // It did not continue what was held: that goes first, and
                // this may start the next.
                self.flush_joined(io);
                if self.gro.offer(frame) {
                    return;
                }
            }
            return io.deliver(frame);
        };
        self.flush_joined(io);
        io.deliver_offloaded(h, frame);
    }

    /// Delivers the segments held to be joined, as one super-frame when
    /// there are several.
    pub(super) fn flush_joined(&mut self, io: &mut impl Io) {
        self.gro.flush(|h, f| match h {
            Some(h) => io.deliver_offloaded(h, f),
            None => io.deliver(f),
        });
    }
}
