//! Relaying, both ways. A payload for a host this node has no direct
//! session with goes to the next hop wrapped in a relay header (`Relay |
//! ttl | dst | src | inner`). A relayed payload that arrives is unwrapped
//! when it is for this host, else passed on along the route with its hop
//! limit decremented; the header stays, so the destination learns the
//! original source. Only frames and fragments are relayed: control
//! messages go between direct peers only.

use super::{Io, Node};
use crate::keys::PublicKey;
use crate::stats::DropReason;
use crate::wire::{self, Kind, RelayHeader, RELAY_HEADER_LEN};
use std::time::Instant;

/// Hop limit on relayed payloads.
const RELAY_TTL: u8 = 8;

impl Node {
    /// Writes `Relay | header` for `dst` at the start of `plain`; returns
    /// where the inner payload starts.
    pub(super) fn write_relay_header(&mut self, dst: PublicKey) -> usize {
        self.plain[0] = Kind::Relay as u8;
        RelayHeader { ttl: RELAY_TTL, dst: dst.short_id(), src: self.public_key().short_id() }
            .write(&mut self.plain[1..]);
        1 + RELAY_HEADER_LEN
    }

    /// Sends one frame for `dst` to the relay `hop`, wrapped. Returns
    /// whether it went out.
    pub(super) fn send_relayed_frame(
        &mut self,
        now: Instant,
        dst: PublicKey,
        hop: PublicKey,
        frame: &[u8],
        io: &mut impl Io,
    ) -> bool {
        let at = self.write_relay_header(dst);
        self.plain[at] = Kind::Frame as u8;
        let Some(n) = wire::write_bundled(&mut self.plain[at + 1..], frame) else {
            self.drops.count(DropReason::Oversize);
            return false;
        };
        self.seal_plain_to(now, hop, at + 1 + n, io)
    }

    /// A payload with a relay header (`payload` starts with its kind byte)
    /// from the direct peer `from`. Passes it on if it is for another
    /// host; if it is for this one, returns its original source and the
    /// inner payload.
    pub(super) fn on_relay<'a>(
        &mut self,
        now: Instant,
        from: PublicKey,
        payload: &'a [u8],
        io: &mut impl Io,
    ) -> Option<(PublicKey, &'a [u8])> {
        let Some((hdr, inner)) = RelayHeader::parse(&payload[1..]) else {
            self.drops.count(DropReason::BadPayload);
            return None;
        };
        if hdr.dst == self.public_key().short_id() {
            let Some(src) = self.by_short.get(&hdr.src).copied() else {
                self.drops.count(DropReason::NoRoute);
                return None;
            };
            return Some((src, inner));
        }
        if hdr.ttl <= 1 {
            self.drops.count(DropReason::RelayLoop);
            return None;
        }
        self.refresh_routes(now);
        let Some(dst) = self.by_short.get(&hdr.dst).copied() else {
            self.drops.count(DropReason::NoRoute);
            return None;
        };
        let Some(hop) = self.next_hop(&dst) else {
            self.drops.count(DropReason::NoRoute);
            return None;
        };
        if hop == from {
            self.drops.count(DropReason::RelayLoop);
            return None;
        }
        // Pass it on with the hop limit decremented.
        self.plain[..payload.len()].copy_from_slice(payload);
        self.plain[1] = hdr.ttl - 1;
        self.seal_plain_to(now, hop, payload.len(), io);
        None
    }
}
