//! Relaying, both ways. A payload for a host this node has no direct
//! session with goes to the next hop wrapped in a relay header (`Relay |
//! ttl | dst | src | epoch | counter | inner | tag`), its inner payload
//! sealed end to end for the destination ([`crate::e2e`]). A relayed
//! payload that arrives is opened when it is for this host, and accepted
//! only if it authenticates as coming from the source its header names;
//! else it is passed on, unopened, along the route with its hop limit
//! decremented. Only frames and fragments are relayed: control messages go
//! between direct peers only.

use super::{Io, Node};
use crate::e2e::E2eError;
use crate::keys::PublicKey;
use crate::stats::DropReason;
use crate::wire::{self, Kind, RelayHeader, RELAY_HEADER_LEN, TAG_LEN};
use std::time::Instant;

/// Hop limit on relayed payloads.
const RELAY_TTL: u8 = 8;

/// Where the inner payload of a relayed payload starts in its plaintext.
pub(super) const RELAY_INNER_AT: usize = 1 + RELAY_HEADER_LEN;

impl Node {
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
        let at = RELAY_INNER_AT;
        self.plain[at] = Kind::Frame as u8;
        let Some(n) = wire::write_bundled(&mut self.plain[at + 1..], frame) else {
            self.drops.count(DropReason::Oversize);
            return false;
        };
        self.send_relayed(now, dst, hop, at + 1 + n, io)
    }

    /// Wraps the inner payload at `self.plain[RELAY_INNER_AT..end]` for
    /// `dst`: the relay header before it, sealed end to end with the tag
    /// after it; then sends it to the relay `hop`. Returns whether it went
    /// out.
    pub(super) fn send_relayed(
        &mut self,
        now: Instant,
        dst: PublicKey,
        hop: PublicKey,
        end: usize,
        io: &mut impl Io,
    ) -> bool {
        if end + TAG_LEN > self.plain.len() {
            self.drops.count(DropReason::Oversize);
            return false;
        }
        let mut hdr = RelayHeader {
            ttl: RELAY_TTL,
            dst: dst.short_id(),
            src: self.public_key().short_id(),
            epoch: 0,
            counter: 0,
        };
        let (head, rest) = self.plain.split_at_mut(RELAY_INNER_AT);
        let (body, tail) = rest.split_at_mut(end - RELAY_INNER_AT);
        let sealed = self.relay_keys.seal(now, &dst, &mut hdr, body);
        self.drops.add(DropReason::RelayPairEvicted, self.relay_keys.take_evicted());
        let Ok(tag) = sealed else {
            // The destination's key gives no shared secret (not a real
            // host's), or this start's counters ran out.
            self.drops.count(DropReason::NoRoute);
            return false;
        };
        head[0] = Kind::Relay as u8;
        hdr.write(&mut head[1..]);
        tail[..TAG_LEN].copy_from_slice(&tag);
        self.seal_plain_to(now, hop, end + TAG_LEN, io)
    }

    /// A payload with a relay header (`payload` starts with its kind byte)
    /// from the direct peer `from`. Passes it on if it is for another
    /// host; if it is for this one, opens it (in place) and returns its
    /// authenticated source and the inner payload.
    pub(super) fn on_relay<'a>(
        &mut self,
        now: Instant,
        from: PublicKey,
        payload: &'a mut [u8],
        io: &mut impl Io,
    ) -> Option<(PublicKey, &'a [u8])> {
        let Some((hdr, _)) = RelayHeader::parse(&payload[1..]) else {
            self.drops.count(DropReason::BadPayload);
            return None;
        };
        if hdr.dst == self.public_key().short_id() {
            let Some(src) = self.by_short.get(&hdr.src).copied() else {
                self.drops.count(DropReason::NoRoute);
                return None;
            };
            let opened = self.relay_keys.open(now, &src, &hdr, &mut payload[RELAY_INNER_AT..]);
            self.drops.add(DropReason::RelayPairEvicted, self.relay_keys.take_evicted());
            return match opened {
                Ok(inner) => Some((src, inner)),
                Err(E2eError::Replay) => {
                    self.drops.count(DropReason::Replay);
                    None
                }
                Err(_) => {
                    self.drops.count(DropReason::RelayForged);
                    None
                }
            };
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
        // Pass it on, still sealed, with the hop limit decremented.
        self.plain[..payload.len()].copy_from_slice(payload);
        self.plain[1] = hdr.ttl - 1;
        self.seal_plain_to(now, hop, payload.len(), io);
        None
    }
}
