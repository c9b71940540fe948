//! The data path: DATA packets in, frames out to peers (direct or relayed),
//! keepalives and gossip messages.

use super::*;
use crate::gossip::{self, Merge};
use crate::mac::{self, Mac};
use crate::session::SessionError;
use crate::snoop::{self, FrameClass};
use crate::wire::{Kind, RelayHeader, RELAY_HEADER_LEN};

use crate::wire::ETH_HEADER_LEN as ETH_HEADER;

fn macs_of(frame: &[u8]) -> (Mac, Mac) {
    let mut dst = [0u8; 6];
    let mut src = [0u8; 6];
    dst.copy_from_slice(&frame[0..6]);
    src.copy_from_slice(&frame[6..12]);
    (dst, src)
}

impl Node {
    /// Handles one Ethernet frame read from the TAP (sent by a local member).
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8], io: &mut impl Io) {
        if frame.len() < ETH_HEADER {
            return self.drops.count(DropReason::Malformed);
        }
        if frame.len() > self.cfg.overlay_mtu + ETH_HEADER {
            return self.drops.count(DropReason::Oversize);
        }
        self.refresh_routes(now);
        let (dst, src) = macs_of(frame);
        // A source seen locally is not behind any peer (it may have moved here).
        self.macs.forget(&src);
        if !mac::is_group(&dst) {
            if let Some(owner) = self.macs.lookup(&dst, now) {
                self.send_frame(now, owner, frame, io);
                return;
            }
        } else if dst != [0xff; 6] {
            match snoop::classify(frame) {
                FrameClass::Control(msg) => return self.on_membership(now, src, msg),
                FrameClass::Multicast { group, source } => return self.replicate(now, group, source, frame, io),
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
            self.send_frame(now, *k, frame, io);
        }
        self.targets = targets;
    }

    /// Sends a frame to `dst`: on its session, or through the relay route.
    /// Returns whether it went out.
    pub(super) fn send_frame(&mut self, now: Instant, dst: PublicKey, frame: &[u8], io: &mut impl Io) -> bool {
        let Some(hop) = self.hops.get(&dst).copied() else {
            self.drops.count(DropReason::NoRoute);
            return false;
        };
        if hop == dst {
            return self.bundle_frame(dst, frame, io);
        }
        self.plain[0] = Kind::Relay as u8;
        RelayHeader { ttl: RELAY_TTL, dst: dst.short_id(), src: self.public_key().short_id() }
            .write(&mut self.plain[1..]);
        self.plain[1 + RELAY_HEADER_LEN..1 + RELAY_HEADER_LEN + frame.len()].copy_from_slice(frame);
        let len = 1 + RELAY_HEADER_LEN + frame.len();
        let sent = self.seal_plain_to(now, hop, len, io);
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
    fn bundle_budget(&self) -> usize {
        1 + RELAY_HEADER_LEN + self.cfg.overlay_mtu + ETH_HEADER
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
    fn seal_bundle(&mut self, to: PublicKey, io: &mut impl Io) {
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
    fn seal_plain_to(&mut self, _now: Instant, to: PublicKey, len: usize, io: &mut impl Io) -> bool {
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

    /// Seals a small control payload (`kind` + `body`) to a direct peer.
    pub(super) fn send_control(&mut self, now: Instant, to: PublicKey, kind: Kind, body: &[u8], io: &mut impl Io) {
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

    pub(super) fn on_data(
        &mut self,
        now: Instant,
        from: SocketAddr,
        receiver: u32,
        counter: u64,
        ciphertext: &[u8],
        io: &mut impl Io,
    ) {
        let Some(key) = self.index.get(&receiver).copied() else {
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
        let len = match session.open(counter, ciphertext, &mut self.plain) {
            Ok(n) => n,
            Err(SessionError::Replay) => return self.drops.count(DropReason::Replay),
            Err(_) => return self.drops.count(DropReason::Decrypt),
        };
        // Authenticated: the peer is alive and is where this came from.
        p.last_recv = Some(now);
        if p.endpoint != Some(from) {
            p.endpoint = Some(from);
            self.own_dirty = true;
        }
        if slot == Slot::Next {
            self.promote_next(&key);
        }
        if len == 0 {
            return self.drops.count(DropReason::BadPayload);
        }
        let body_len = len - 1;
        match Kind::from_u8(self.plain[0]) {
            Some(Kind::Frame) => {
                // Length-prefixed frames, one or more.
                let mut at = 1;
                while at < len {
                    if at + 2 > len {
                        return self.drops.count(DropReason::BadPayload);
                    }
                    let n = u16::from_be_bytes([self.plain[at], self.plain[at + 1]]) as usize;
                    if at + 2 + n > len {
                        return self.drops.count(DropReason::BadPayload);
                    }
                    self.deliver_from(now, key, at + 2, n, io);
                    at += 2 + n;
                }
            }
            Some(Kind::Ping) if body_len == 8 => {
                let mut token = [0u8; 8];
                token.copy_from_slice(&self.plain[1..9]);
                self.send_control(now, key, Kind::Pong, &token, io);
            }
            Some(Kind::Pong) if body_len == 8 => {
                let token = u64::from_be_bytes(self.plain[1..9].try_into().expect("length checked"));
                let now_us = now.saturating_duration_since(self.start).as_micros() as u64;
                if token <= now_us && now_us - token < 60_000_000 {
                    if let Some(p) = self.peers.get_mut(&key) {
                        p.rtt = Some(Duration::from_micros(now_us - token));
                    }
                }
            }
            Some(Kind::Gossip) => self.on_gossip(now, body_len),
            Some(Kind::Relay) => self.on_relay(now, key, body_len, io),
            _ => self.drops.count(DropReason::BadPayload),
        }
    }

    /// Delivers the frame at `self.plain[at..at + len]`, which came from `src`.
    fn deliver_from(&mut self, now: Instant, src: PublicKey, at: usize, len: usize, io: &mut impl Io) {
        if len < ETH_HEADER {
            return self.drops.count(DropReason::Malformed);
        }
        if len > self.cfg.overlay_mtu + ETH_HEADER {
            return self.drops.count(DropReason::Oversize);
        }
        let (dmac, smac) = macs_of(&self.plain[at..at + len]);
        if mac::is_group(&dmac) && dmac != [0xff; 6] {
            let plain = std::mem::take(&mut self.plain);
            let ok = self.account_delivery(&plain[at..at + len]);
            self.plain = plain;
            if !ok {
                return;
            }
        }
        self.macs.learn(smac, src, now);
        if let Some(p) = self.peers.get_mut(&src) {
            p.traffic.rx_frames += 1;
            p.traffic.rx_bytes += len as u64;
        }
        // Into the local bridge only: a frame from a peer never goes back
        // into the mesh (except along a relay route, handled in on_relay).
        io.deliver(&self.plain[at..at + len]);
    }

    fn on_relay(&mut self, now: Instant, from: PublicKey, body_len: usize, io: &mut impl Io) {
        let Some((hdr, _)) = RelayHeader::parse(&self.plain[1..1 + body_len]) else {
            return self.drops.count(DropReason::BadPayload);
        };
        let frame_len = body_len - RELAY_HEADER_LEN;
        if hdr.dst == self.public_key().short_id() {
            let Some(src) = self.by_short.get(&hdr.src).copied() else {
                return self.drops.count(DropReason::NoRoute);
            };
            return self.deliver_from(now, src, 1 + RELAY_HEADER_LEN, frame_len, io);
        }
        if hdr.ttl <= 1 {
            return self.drops.count(DropReason::RelayLoop);
        }
        self.refresh_routes(now);
        let Some(dst) = self.by_short.get(&hdr.dst).copied() else {
            return self.drops.count(DropReason::NoRoute);
        };
        let Some(hop) = self.hops.get(&dst).copied() else {
            return self.drops.count(DropReason::NoRoute);
        };
        if hop == from {
            return self.drops.count(DropReason::RelayLoop);
        }
        // Forward in place with the hop limit decremented; the header stays
        // so the destination learns the original source.
        self.plain[1] = hdr.ttl - 1;
        self.seal_plain_to(now, hop, 1 + body_len, io);
    }

    fn on_gossip(&mut self, now: Instant, body_len: usize) {
        let Some(records) = gossip::decode_message(&self.plain[1..1 + body_len]) else {
            return self.drops.count(DropReason::BadGossip);
        };
        let me = self.public_key();
        for r in records {
            if r.key == me {
                // Someone holds a newer record of ours than we do (we lost
                // state): move past it.
                if r.version > self.own.version {
                    self.last_stamp = self.last_stamp.max(r.version);
                    self.own_dirty = true;
                }
                continue;
            }
            let key = r.key;
            let name = r.name.clone();
            let endpoints_of_others: Vec<(PublicKey, SocketAddr)> =
                r.connections.iter().map(|c| (c.key, c.endpoint)).collect();
            match self.gossip.merge(r, now) {
                Merge::Stale => continue,
                Merge::New | Merge::Updated => {
                    self.routes_dirty = true;
                    self.remote_groups_dirty = true;
                    if !self.gossip_pending.contains(&key) {
                        self.gossip_pending.push(key);
                    }
                    let p = self.peer_entry(key, now);
                    if !name.is_empty() {
                        p.name = name;
                    }
                    // The record says where its author reaches others: those
                    // are candidate endpoints for them.
                    for (k, ep) in endpoints_of_others {
                        if k == me {
                            continue;
                        }
                        let q = self.peer_entry(k, now);
                        if !q.candidates.contains(&ep) && q.candidates.len() < 8 {
                            q.candidates.push(ep);
                        }
                    }
                }
            }
        }
    }
}
