//! The receive path: DATA packets in, their payloads dispatched: frames to
//! the bridge, keepalives answered, gossip merged, relayed payloads passed
//! on or unwrapped, fragments (super-frames, large control messages)
//! reassembled.

use super::*;
use crate::gossip::{self, Merge};
use crate::mac;
use crate::session::SessionError;
use crate::vnet::VNET_HDR_LEN;
use crate::wire::{Kind, RelayHeader, ETH_HEADER_LEN as ETH_HEADER};

impl Node {
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
        let len = match session.open(counter, ciphertext, &mut self.rx) {
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
        // The payload stays in `rx` while it is handled; anything sent
        // meanwhile is built in `plain`.
        let rx = std::mem::take(&mut self.rx);
        self.dispatch(now, key, &rx[..len], io);
        self.rx = rx;
    }

    /// Handles a decrypted payload from the direct peer `from`.
    fn dispatch(&mut self, now: Instant, from: PublicKey, payload: &[u8], io: &mut impl Io) {
        let Some((&kind, body)) = payload.split_first() else {
            return self.drops.count(DropReason::BadPayload);
        };
        match Kind::from_u8(kind) {
            Some(Kind::Frame) => self.dispatch_frames(now, from, body, io),
            Some(Kind::Fragment) => self.on_fragment(now, from, body, true, io),
            Some(Kind::Relay) => self.on_relay(now, from, payload, io),
            Some(k) => self.on_control(now, from, k, body, io),
            None => self.drops.count(DropReason::BadPayload),
        }
    }

    /// A control message from the direct peer `from`: in one datagram, or
    /// reassembled from pieces.
    pub(super) fn on_control(&mut self, now: Instant, from: PublicKey, kind: Kind, body: &[u8], io: &mut impl Io) {
        match kind {
            Kind::Ping if body.len() == 8 => self.send_control(now, from, Kind::Pong, body, io),
            Kind::Pong if body.len() == 8 => {
                let token = u64::from_be_bytes(body.try_into().expect("length checked"));
                let now_us = now.saturating_duration_since(self.start).as_micros() as u64;
                if token <= now_us && now_us - token < 60_000_000 {
                    if let Some(p) = self.peers.get_mut(&from) {
                        p.rtt = Some(Duration::from_micros(now_us - token));
                    }
                }
            }
            Kind::Gossip => self.on_gossip(now, body),
            Kind::Ipam => self.on_ipam_message(from, body),
            _ => self.drops.count(DropReason::BadPayload),
        }
    }

    /// Frames (a bundle, after its kind byte) whose source is `src`,
    /// whether they came directly or through a relay.
    fn dispatch_frames(&mut self, now: Instant, src: PublicKey, mut rest: &[u8], io: &mut impl Io) {
        // Length-prefixed frames, one or more.
        while !rest.is_empty() {
            let Some((n, tail)) = rest.split_first_chunk::<2>().map(|(n, t)| (u16::from_be_bytes(*n) as usize, t))
            else {
                return self.drops.count(DropReason::BadPayload);
            };
            if n > tail.len() {
                return self.drops.count(DropReason::BadPayload);
            }
            let (frame, next) = tail.split_at(n);
            self.deliver_from(now, src, frame, None, io);
            rest = next;
        }
    }

    /// Delivers a frame that came from `src` (with its offload header when
    /// it is a reassembled super-frame) into the local bridge.
    pub(super) fn deliver_from(
        &mut self,
        now: Instant,
        src: PublicKey,
        frame: &[u8],
        offload: Option<&[u8; VNET_HDR_LEN]>,
        io: &mut impl Io,
    ) {
        if frame.len() < ETH_HEADER {
            return self.drops.count(DropReason::Malformed);
        }
        if offload.is_none() && frame.len() > self.cfg.overlay_mtu + ETH_HEADER {
            return self.drops.count(DropReason::Oversize);
        }
        let (dmac, smac) = forward::macs_of(frame);
        if mac::is_group(&dmac) && dmac != [0xff; 6] && !self.account_delivery(frame) {
            return;
        }
        self.macs.learn(smac, src, now);
        if let Some(p) = self.peers.get_mut(&src) {
            p.traffic.rx_frames += 1;
            p.traffic.rx_bytes += frame.len() as u64;
        }
        // Into the local bridge only: a frame from a peer never goes back
        // into the mesh (except along a relay route, handled in on_relay).
        match offload {
            Some(h) => io.deliver_offloaded(h, frame),
            None => io.deliver(frame),
        }
    }

    /// A payload addressed by a relay header: ours to unwrap, or to pass on.
    fn on_relay(&mut self, now: Instant, from: PublicKey, payload: &[u8], io: &mut impl Io) {
        let Some((hdr, inner)) = RelayHeader::parse(&payload[1..]) else {
            return self.drops.count(DropReason::BadPayload);
        };
        if hdr.dst == self.public_key().short_id() {
            let Some(src) = self.by_short.get(&hdr.src).copied() else {
                return self.drops.count(DropReason::NoRoute);
            };
            return match inner.first().and_then(|k| Kind::from_u8(*k)) {
                Some(Kind::Frame) => self.dispatch_frames(now, src, &inner[1..], io),
                Some(Kind::Fragment) => self.on_fragment(now, src, &inner[1..], false, io),
                _ => self.drops.count(DropReason::BadPayload),
            };
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
        // Pass it on with the hop limit decremented; the header stays so
        // the destination learns the original source.
        self.plain[..payload.len()].copy_from_slice(payload);
        self.plain[1] = hdr.ttl - 1;
        self.seal_plain_to(now, hop, payload.len(), io);
    }

    fn on_gossip(&mut self, now: Instant, body: &[u8]) {
        let Some(records) = gossip::decode_message(body) else {
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
            let ipam = r.ipam.clone();
            match self.gossip.merge(r, now) {
                Merge::Stale => continue,
                Merge::New | Merge::Updated => {
                    self.ipam_merge(key, ipam.as_ref());
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
