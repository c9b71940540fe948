//! IPAM in the node: the shared ring of address space (see
//! [`crate::ipam`]) kept in step through gossip, seeding, donations between
//! hosts, and this host's allocations.
//!
//! - Seeding: when no seeded ring has been seen [`SEED_SETTLE`] after start,
//!   the host with the lowest key among itself and its live peers seeds the
//!   whole range; every other host adopts the ring from gossip.
//! - Space: a host with no free address asks the live peer that publishes
//!   the most free addresses for a donation ([`crate::ipam::IpamMessage`]
//!   over the session); the donor resends until the recipient's record
//!   lists the space.

use super::{Event, Io, Node};
use crate::ipam::{choose_donor, Allocator, IpamError, IpamMessage, IpamRecord, Range, Ring};
use crate::keys::PublicKey;
use crate::stats::DropReason;
use crate::wire::Kind;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use weavers_api::{AllocationRow, IpamStatus, SpanInfo};

/// How long a fresh host waits to hear a seeded ring before seeding.
pub const SEED_SETTLE: Duration = Duration::from_secs(3);
/// How often a donation request or an unacknowledged donation is resent.
const RESEND: Duration = Duration::from_secs(1);

/// The node's IPAM state.
#[derive(Debug)]
pub(super) struct IpamState {
    ring: Ring,
    alloc: Allocator,
    last_request: Option<Instant>,
    last_resend: Option<Instant>,
}

impl IpamState {
    pub(super) fn new(range: Range) -> Self {
        IpamState { ring: Ring::new(range), alloc: Allocator::new(), last_request: None, last_resend: None }
    }
}

impl Node {
    /// The range addresses are given from.
    pub fn ipam_range(&self) -> Range {
        self.ipam.ring.range()
    }

    /// Restores the ring and allocations saved in the state dir.
    pub fn restore_ipam(&mut self, ring: Ring, alloc: Allocator) {
        if ring.range() == self.ipam.ring.range() {
            self.ipam.ring = ring;
            self.ipam.alloc = alloc;
        }
    }

    /// What to persist.
    pub fn ipam_snapshot(&self) -> (&Ring, &Allocator) {
        (&self.ipam.ring, &self.ipam.alloc)
    }

    /// An address for `owner` (idempotent). `NoSpace` means a donation was
    /// requested: ask again shortly. `NotSeeded`: the mesh has not shared
    /// the range out yet.
    pub fn ipam_allocate(&mut self, now: Instant, owner: &str, io: &mut impl Io) -> Result<(Ipv4Addr, u8), IpamError> {
        let me = self.public_key();
        match self.ipam.alloc.allocate(&self.ipam.ring, me, owner) {
            Ok(offset) => {
                self.emit(Event::IpamChanged);
                let range = self.ipam.ring.range();
                Ok((range.addr(offset).expect("allocated inside the range"), range.prefix()))
            }
            Err(IpamError::NoSpace) => {
                self.request_space(now, io);
                Err(IpamError::NoSpace)
            }
            Err(e) => Err(e),
        }
    }

    /// Frees `owner`'s address.
    pub fn ipam_release(&mut self, owner: &str) -> Option<Ipv4Addr> {
        let offset = self.ipam.alloc.release(owner)?;
        self.emit(Event::IpamChanged);
        self.ipam.ring.range().addr(offset)
    }

    /// Frees every allocation not in `keep`; returns what was freed.
    pub fn ipam_gc(&mut self, keep: &[&str]) -> Vec<AllocationRow> {
        let range = self.ipam.ring.range();
        let gone: Vec<AllocationRow> = self
            .ipam
            .alloc
            .in_use()
            .filter(|(o, _)| !keep.contains(o))
            .map(|(o, off)| AllocationRow { owner: o.to_string(), address: addr_text(range, off) })
            .collect();
        if !gone.is_empty() {
            self.ipam.alloc.release_all_except(keep);
            self.emit(Event::IpamChanged);
        }
        gone
    }

    /// Takes over the space of a host that is gone for good (by name or
    /// base64 key). The operator vouches that it is dead; one connected
    /// now is refused.
    pub fn ipam_take_over(&mut self, peer: &str) -> Result<usize, String> {
        let dead = self
            .peers
            .values()
            .find(|p| p.name == peer || p.key.to_base64() == peer)
            .map(|p| p.key)
            .or_else(|| PublicKey::from_base64(peer))
            .ok_or_else(|| format!("no peer called {peer}"))?;
        if dead == self.public_key() {
            return Err("cannot take over this host's own space".into());
        }
        if self.peers.get(&dead).is_some_and(|p| p.is_connected()) {
            return Err(format!("{peer} is connected: only a peer gone for good can be taken over"));
        }
        let taken = self.ipam.ring.take_over(self.public_key(), dead);
        if !taken.is_empty() {
            self.emit(Event::IpamChanged);
        }
        Ok(taken.len())
    }

    /// `weavers ipam ls`.
    pub fn ipam_status(&self) -> IpamStatus {
        let ring = &self.ipam.ring;
        let range = ring.range();
        let me = self.public_key();
        let name_of = |k: &PublicKey| {
            if *k == me {
                self.cfg.name.clone()
            } else {
                self.peers.get(k).map(|p| p.name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| k.to_base64())
            }
        };
        let mut problems: Vec<String> =
            ring.conflicts().keys().map(|t| format!("two hosts claim the space at {}", addr_text(range, *t))).collect();
        if ring.has_foreign_seed() {
            problems
                .push("another mesh seeded this range separately: allocation is stopped until it is resolved".into());
        }
        IpamStatus {
            range: format!("{}/{}", range.base(), range.prefix()),
            seeded: ring.is_seeded(),
            spans: ring
                .spans()
                .into_iter()
                .map(|s| SpanInfo {
                    first: addr_text(range, s.start),
                    last: addr_text(range, s.end.saturating_sub(1)),
                    size: s.end - s.start,
                    owner: name_of(&s.owner),
                    owner_key: s.owner.to_base64(),
                    conflict: s.conflict,
                })
                .collect(),
            allocations: self
                .ipam
                .alloc
                .in_use()
                .map(|(o, off)| AllocationRow { owner: o.to_string(), address: addr_text(range, off) })
                .collect(),
            free: self.ipam.alloc.free_count(ring, me),
            problems,
        }
    }

    /// This host's IPAM part of its record.
    pub(super) fn ipam_record(&self) -> Option<IpamRecord> {
        let me = self.public_key();
        self.ipam.ring.record(me, self.ipam.alloc.free_count(&self.ipam.ring, me))
    }

    /// Merges another host's IPAM record. A record without one (its
    /// author is unseeded, or says so) means its author is on no other
    /// seed any more: what it published before no longer stops allocation.
    pub(super) fn ipam_merge(&mut self, author: PublicKey, rec: Option<&IpamRecord>) {
        let Some(rec) = rec.filter(|r| r.is_valid()) else {
            self.ipam_forget(author);
            return;
        };
        let res = self.ipam.ring.merge_record(author, rec);
        self.drops.add(crate::stats::DropReason::IpamLimit, res.refused as u64);
        let yielded = self.ipam.ring.yield_seed(!self.ipam.alloc.is_empty());
        if res.changed || yielded {
            self.emit(Event::IpamChanged);
        }
    }

    /// A host forgotten by gossip.
    pub(super) fn ipam_forget(&mut self, author: PublicKey) {
        if self.ipam.ring.forget(author) {
            self.emit(Event::IpamChanged);
        }
    }

    /// Seeds when due; resends donations not yet acknowledged.
    pub(super) fn ipam_tick(&mut self, now: Instant, io: &mut impl Io) {
        let me = self.public_key();
        let connected: Vec<PublicKey> = self.peers.values().filter(|p| p.is_connected()).map(|p| p.key).collect();
        if !self.ipam.ring.is_seeded()
            && now.saturating_duration_since(self.start) >= SEED_SETTLE
            && connected.iter().all(|k| *k > me)
        {
            let stamp = self.stamp(now);
            if self.ipam.ring.seed(me, &connected, stamp) {
                self.emit(Event::IpamChanged);
            }
        }
        if self.ipam.last_resend.is_some_and(|l| now.saturating_duration_since(l) < RESEND) {
            return;
        }
        self.ipam.last_resend = Some(now);
        let pending: Vec<_> = self.ipam.ring.pending_donations().to_vec();
        for d in pending {
            if connected.contains(&d.to) {
                self.send_ipam(now, d.to, &IpamMessage::Donation(d.clone()), io);
            }
        }
    }

    fn request_space(&mut self, now: Instant, io: &mut impl Io) {
        if self.ipam.last_request.is_some_and(|l| now.saturating_duration_since(l) < RESEND) {
            return;
        }
        let me = self.public_key();
        let candidates: Vec<(PublicKey, u32)> = self
            .peers
            .values()
            .filter(|p| p.is_connected())
            .filter_map(|p| Some((p.key, self.record(&p.key)?.ipam.as_ref()?.free)))
            .collect();
        let Some(donor) = choose_donor(me, candidates) else { return };
        self.ipam.last_request = Some(now);
        let want = (self.ipam.ring.size() / 16).clamp(16, 4096);
        self.send_ipam(now, donor, &IpamMessage::Request { want }, io);
    }

    fn send_ipam(&mut self, now: Instant, to: PublicKey, msg: &IpamMessage, io: &mut impl Io) {
        let body = postcard::to_allocvec(msg).expect("IPAM messages serialize");
        self.send_control(now, to, Kind::Ipam, &body, io);
    }

    /// An IPAM message from the direct peer `from`.
    pub(super) fn on_ipam_message(&mut self, from: PublicKey, body: &[u8]) {
        let Some(msg) = postcard::from_bytes::<IpamMessage>(body).ok().filter(IpamMessage::is_valid) else {
            return self.drops.count(DropReason::BadPayload);
        };
        let me = self.public_key();
        match msg {
            IpamMessage::Request { want } => {
                // The donation leaves at the next tick (it is pending in the
                // ring), after the daemon has saved the ring.
                if self.ipam.ring.donate(me, from, want, &self.ipam.alloc).is_some() {
                    self.emit(Event::IpamChanged);
                    self.ipam.last_resend = None;
                }
            }
            IpamMessage::Donation(d) if d.from == from && d.to == me => {
                if self.ipam.ring.accept_donation(me, &d).is_ok_and(|r| r.changed) {
                    self.emit(Event::IpamChanged);
                }
            }
            IpamMessage::Donation(_) => self.drops.count(DropReason::BadPayload),
        }
    }
}

fn addr_text(range: Range, offset: u32) -> String {
    range.addr(offset).map_or_else(|| "?".into(), |a| a.to_string())
}
