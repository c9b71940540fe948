//! Parity to and from lossy peers (see [`crate::fec`]).
//!
//! Sending: while a peer's path counts as lossy (`lossy`), every DATA
//! datagram sealed to it directly joins a parity group. A full group's
//! parity is held back until the batch ends ([`Node::flush`], the end of
//! the batch the daemon read) or [`DEFERRED`] of them wait, so that the
//! batch's data datagrams leave in one run (a parity is larger than a data
//! datagram, and a size change ends a UDP segmentation send); at the end
//! of the batch a partial group is closed and its parity goes too, so
//! nothing waits for more traffic.
//! Receiving: a peer's plaintexts are kept while it sends parity (renewed
//! by each, for [`LOSSY_FOR`]); a parity that finds exactly one member
//! missing rebuilds it, which is then handled as if it had arrived.

use super::lossy::LOSSY_FOR;
use super::{Io, Node, BUF_LEN};
use crate::fec::{Owed, Parity, Repair, DEFERRED, PARITY_HEAD};
use crate::keys::PublicKey;
use crate::stats::DropReason;
use crate::wire::Kind;
use std::time::Instant;

/// Counters of parity (see `weavers_api::SegmentationCounts`).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct FecStats {
    pub(super) parity_sent: u64,
    pub(super) parity_received: u64,
    pub(super) repaired: u64,
    pub(super) unrepairable: u64,
}

impl Node {
    /// Largest plaintext a parity group takes: one whose parity payload
    /// (kind, head, XOR) still fits a datagram's budget.
    fn max_parity_member(&self) -> usize {
        self.bundle_budget() - 1 - PARITY_HEAD
    }

    /// Notes that the DATA datagram `counter` of session `session`, with
    /// `len` bytes of plaintext in `plain` (the bundle or `self.plain`),
    /// went to the direct peer `to`; sends a parity when one is owed.
    pub(super) fn fec_sent(
        &mut self,
        to: PublicKey,
        session: u32,
        counter: u64,
        from_bundle: bool,
        len: usize,
        io: &mut impl Io,
    ) {
        let max = self.max_parity_member();
        let Some(p) = self.peers.get_mut(&to) else { return };
        if p.lossy_until.is_none() {
            return;
        }
        if self.fec_buf.is_empty() {
            self.fec_buf = vec![0; BUF_LEN];
        }
        let plain = if from_bundle { &p.bundle[..len] } else { &self.plain[..len] };
        let owed = p.fec_tx.sent(session, counter, plain, max, &mut self.fec_buf);
        if p.fec_tx.is_open() && !p.fec_listed {
            p.fec_listed = true;
            self.fec_open.push(to);
        }
        if let Some(o) = owed {
            self.hold_parity(to, o);
            if self.fec_deferred.len() >= DEFERRED {
                self.send_held(io);
            }
        }
    }

    /// Holds the parity body the encoder wrote in `fec_buf` for `to`, as a
    /// whole payload (kind byte first), until [`Node::send_held`].
    fn hold_parity(&mut self, to: PublicKey, o: Owed) {
        self.fec_deferred_payloads.push(Kind::Parity as u8);
        self.fec_deferred_payloads.extend_from_slice(&self.fec_buf[..o.len]);
        self.fec_deferred.push((to, o));
    }

    /// Sends the parities held, in the order their groups closed.
    fn send_held(&mut self, io: &mut impl Io) {
        let (mut held, mut payloads) =
            (std::mem::take(&mut self.fec_deferred), std::mem::take(&mut self.fec_deferred_payloads));
        let mut at = 0;
        for &(to, o) in &held {
            self.send_parity(to, o.session, &payloads[at..at + 1 + o.len], io);
            at += 1 + o.len;
        }
        held.clear();
        payloads.clear();
        (self.fec_deferred, self.fec_deferred_payloads) = (held, payloads);
    }

    /// Closes every group still open, then sends every parity held (the
    /// batch ended).
    pub(super) fn fec_flush(&mut self, io: &mut impl Io) {
        if !self.fec_open.is_empty() {
            let mut open = std::mem::take(&mut self.fec_open);
            for to in open.drain(..) {
                let Some(p) = self.peers.get_mut(&to) else { continue };
                p.fec_listed = false;
                if let Some(o) = p.fec_tx.finish(&mut self.fec_buf) {
                    self.hold_parity(to, o);
                }
            }
            self.fec_open = open;
        }
        if !self.fec_deferred.is_empty() {
            self.send_held(io);
        }
    }

    /// Seals a parity `payload` to `to`, on the session its group was sent
    /// on (`session`, if that is still the current one).
    fn send_parity(&mut self, to: PublicKey, session: u32, payload: &[u8], io: &mut impl Io) {
        let Some(p) = self.peers.get_mut(&to) else { return };
        let (Some(s), Some(ep)) = (p.current.as_mut(), p.endpoint) else { return };
        if s.remote_index != session {
            return;
        }
        if let Ok(n) = s.seal(payload, &mut self.sealed) {
            io.send(ep, &self.sealed[..n]);
            self.fec_stats.parity_sent += 1;
        }
    }

    /// Keeps the plaintext `rx[..len]` of DATA datagram `counter` on
    /// session `receiver` from `from`, when that peer sends parity. Only
    /// plaintexts a group can hold are kept (a sender never puts a larger
    /// one in a group), so a peer costs at most 48 of those: ~67 KiB.
    pub(super) fn fec_keep(&mut self, now: Instant, from: &PublicKey, receiver: u32, counter: u64, len: usize) {
        if len > self.max_parity_member() {
            return;
        }
        let Some(p) = self.peers.get_mut(from) else { return };
        if p.fec_rx_until.is_some_and(|t| now < t) {
            p.fec_rx.keep(receiver, counter, &self.rx[..len]);
        }
    }

    /// A parity payload (`rx[1..len]`) from the direct peer `from` on
    /// session `receiver`: rebuilds the one datagram of its group that is
    /// missing, if any, and handles it.
    pub(super) fn on_parity(&mut self, now: Instant, from: PublicKey, receiver: u32, len: usize, io: &mut impl Io) {
        self.fec_stats.parity_received += 1;
        let Some(p) = self.peers.get_mut(&from) else { return };
        // Keeping starts with the first parity: that one repairs nothing.
        let keeping = p.fec_rx_until.replace(now + LOSSY_FOR).is_some_and(|t| now < t);
        if !keeping {
            return;
        }
        let parity = match Parity::parse(&self.rx[1..len]) {
            Ok(parity) => parity,
            Err(_) => return self.drops.count(DropReason::BadPayload),
        };
        if self.fec_out.is_empty() {
            self.fec_out = vec![0; BUF_LEN];
        }
        // The decoder is set aside while the session is borrowed: the
        // repair asks the session what arrived, and claims what it rebuilt.
        let decoder = std::mem::take(&mut p.fec_rx);
        let Some((session, _)) = p.session_mut(receiver) else {
            p.fec_rx = decoder;
            return;
        };
        let repair = decoder.repair(receiver, &parity, |c| !session.is_new(c), &mut self.fec_out);
        let claimed = matches!(repair, Ok(Repair::Rebuilt { counter, .. }) if session.claim(counter));
        p.fec_rx = decoder;
        let len = match repair {
            Ok(Repair::Complete) => return,
            Ok(Repair::Unrepairable) => {
                self.fec_stats.unrepairable += 1;
                return;
            }
            Ok(Repair::Rebuilt { len, .. }) if claimed => len,
            Ok(Repair::Rebuilt { .. }) => return,
            Err(_) => return self.drops.count(DropReason::BadPayload),
        };
        self.fec_stats.repaired += 1;
        let mut out = std::mem::take(&mut self.fec_out);
        if out.first() == Some(&(Kind::Parity as u8)) {
            // Parity is never a member of a group.
            self.drops.count(DropReason::BadPayload);
        } else {
            self.dispatch(now, from, &mut out[..len], io);
        }
        self.fec_out = out;
    }

    /// Ends lossy marks and the keeping of plaintexts that ran out (from
    /// the housekeeping, once a second).
    pub(super) fn expire_lossy(&mut self, now: Instant) {
        for p in self.peers.values_mut() {
            if p.lossy_until.is_some_and(|t| now >= t) {
                p.lossy_until = None;
            }
            if p.fec_rx_until.is_some_and(|t| now >= t) {
                p.fec_rx_until = None;
                p.fec_rx = crate::fec::Decoder::default();
            }
        }
    }
}
