//! Reliable MoldUDP64 streams as pure state machines (no sockets, no clock:
//! times come in as nanoseconds): a [`Sender`] numbers messages, packs them
//! into packets and keeps a history for re-requests; a [`Receiver`] takes
//! packets in any order, delivers each message once and in order, holds
//! (within [`Limits`]) what arrives past a hole, asks only for the holes
//! (again when an answer is lost), and gives up on a hole after a patience.
//!
//! The conventions (who re-requests from where, timeouts) are in
//! `ARCHITECTURE.md`.

use crate::wire::mold::{self, Packet, PacketBuilder, ReRequest, Session};
use std::collections::{BTreeMap, VecDeque};

mod sender;

pub use sender::Sender;

/// How long a receiver waits before asking for the same gap again.
pub const REQUEST_INTERVAL_NS: u64 = 50_000_000;
/// How long a receiver waits for a gap before skipping it.
pub const GIVE_UP_NS: u64 = 2_000_000_000;
/// How many messages a sender keeps for re-requests.
pub const HISTORY: usize = 100_000;
/// The largest packet a sender builds: fits one overlay frame (1407 bytes
/// of IP packet less IPv4 and UDP headers) with room to spare.
pub const MAX_PACKET: usize = 1300;
/// The most messages one re-request may ask for.
pub const MAX_REQUEST: u16 = 1000;

/// Where a receiver starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// At message 1: everything from the beginning is wanted.
    AtOne,
    /// At the first packet seen (a late joiner).
    AtFirst,
    /// At this message (a receiver that restarts where it left off).
    At(u64),
}

/// What a receiver may hold past a hole (messages that arrived before an
/// earlier one), so that a hostile or runaway sender cannot make it grow
/// without bound. A message past the limits is dropped and counted
/// ([`Receiver::dropped`]); it stays missing and is asked for again once
/// the holes before it are filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How far past the next message to deliver a message may be held
    /// (and asked for): its number is below `next + messages`. So at most
    /// this many are held.
    pub messages: u64,
    /// Bytes held: each message counts its length plus [`HELD_OVERHEAD`]
    /// (its share of the receiver's tables), so this bounds the memory.
    pub bytes: usize,
}

impl Limits {
    /// For streams of a few hundred messages a second (market data per
    /// symbol, orders per gateway and symbol): 8,192 messages, 2 MiB.
    pub const DEFAULT: Limits = Limits { messages: 8_192, bytes: 2 << 20 };
    /// For a gateway's report stream (all the reports of its customers,
    /// ~13,000 a second at the demo's 10,000 orders a second): 65,536
    /// messages (5 s of it), 16 MiB.
    pub const REPORTS: Limits = Limits { messages: 65_536, bytes: 16 << 20 };
}

/// What each held message costs beyond its bytes in [`Limits::bytes`]: its
/// entry in the held table and at most one hole entry (every hole but the
/// last ends where a held message starts).
pub const HELD_OVERHEAD: usize = 128;
/// Re-requests one receiver may send per [`REQUEST_INTERVAL_NS`], all its
/// holes together (a token bucket of this size, refilled evenly).
pub const REQUESTS_PER_INTERVAL: u64 = 16;
/// Messages asked for and not yet arrived, at most, per receiver (a far
/// behind receiver catches up by this much per round trip, not all at once).
pub const MAX_IN_FLIGHT: u64 = 8 * MAX_REQUEST as u64;
/// Holes looked at per [`Receiver::poll_requests`] (the first ones: they
/// are needed first).
pub const HOLES_PER_POLL: usize = 256;

/// What became of a packet's messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Arrival {
    /// Messages delivered (this packet's and held ones it let through).
    pub delivered: usize,
    /// Messages of this packet held until the holes before them fill.
    pub held: usize,
    /// Messages of this packet already delivered or held.
    pub duplicates: usize,
    /// Messages of this packet past the [`Limits`]: dropped, still missing.
    pub dropped: usize,
}

/// A run of missing messages `start .. end` (the key is `start`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hole {
    end: u64,
    /// When its first message was first known missing (the patience runs from here).
    since: u64,
    /// When it was last asked for (None: never).
    asked_at: Option<u64>,
    /// Asked for up to here (exclusive) since `asked_at`.
    asked_to: u64,
}

/// The receiving side of one stream: takes packets in any order, delivers
/// every message once and in order, holds the messages that arrive after a
/// hole (within [`Limits`]) and asks only for the holes, each as soon as it
/// is seen and again every [`REQUEST_INTERVAL_NS`] while it stays open.
///
/// Invariant (once the first packet is seen): the messages `next ..
/// known_end` are each either held or in exactly one hole.
#[derive(Clone, Debug)]
pub struct Receiver {
    /// The next message to deliver (None: waiting for the first packet).
    next: Option<u64>,
    /// One past the highest message the sender is known to have.
    known_end: u64,
    held: BTreeMap<u64, Box<[u8]>>,
    held_bytes: usize,
    holes: BTreeMap<u64, Hole>,
    limits: Limits,
    /// The request bucket as a virtual time (GCRA): a request is allowed
    /// when it would not put this more than an interval past now.
    request_tat: u64,
    dropped: u64,
}

impl Receiver {
    /// A receiver starting as `start` says, with the [`Limits::DEFAULT`].
    pub fn new(start: Start) -> Receiver {
        Receiver::with_limits(start, Limits::DEFAULT)
    }

    /// A receiver with other limits.
    pub fn with_limits(start: Start, limits: Limits) -> Receiver {
        let next = match start {
            Start::AtOne => Some(1),
            Start::AtFirst => None,
            Start::At(n) => Some(n.max(1)),
        };
        let limits = Limits { messages: limits.messages.max(1), bytes: limits.bytes };
        Receiver {
            next,
            known_end: 1,
            held: BTreeMap::new(),
            held_bytes: 0,
            holes: BTreeMap::new(),
            limits,
            request_tat: 0,
            dropped: 0,
        }
    }

    /// The next message expected.
    pub fn next(&self) -> Option<u64> {
        self.next
    }

    /// Whether messages are known to be missing.
    pub fn in_gap(&self) -> bool {
        !self.holes.is_empty()
    }

    /// Messages known to be missing.
    pub fn missing(&self) -> u64 {
        self.holes.iter().map(|(s, h)| h.end - s).sum()
    }

    /// Holes (runs of missing messages).
    pub fn holes(&self) -> usize {
        self.holes.len()
    }

    /// Messages held past a hole.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// What the held messages count against [`Limits::bytes`].
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Messages dropped so far for the [`Limits`] (each stays missing).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// A packet arrived (verified: nothing unauthenticated may reach a
    /// receiver): every message that is next in line is passed to
    /// `deliver` with its number, in order, followed by the held ones it
    /// lets through; the ones after a hole are held. A heartbeat or an
    /// end of session (no messages; its `seq` is the next message's) shows
    /// a tail lost.
    pub fn on_packet(&mut self, p: &Packet<'_>, now_ns: u64, mut deliver: impl FnMut(u64, &[u8])) -> Arrival {
        let seq = p.seq;
        let end = p.next_seq();
        let next = *self.next.get_or_insert(seq.max(1));
        let mut a = Arrival::default();
        if self.holes.is_empty() && seq <= next {
            // In order and nothing missing: straight through.
            for (s, m) in p.messages() {
                if s < next {
                    a.duplicates += 1;
                } else {
                    deliver(s, m);
                    a.delivered += 1;
                }
            }
            self.next = Some(next.max(end));
            self.known_end = self.known_end.max(end);
            return a;
        }
        // Whatever the sender has past what we knew of is missing until it arrives.
        let from = self.known_end.max(next);
        if end > from {
            self.add_hole(from, end, now_ns);
        }
        self.known_end = self.known_end.max(end);
        for (s, m) in p.messages() {
            let next = self.next.unwrap_or(s);
            if s < next || self.held.contains_key(&s) {
                a.duplicates += 1;
            } else if s == next {
                self.fill(s);
                deliver(s, m);
                a.delivered += 1;
                self.next = Some(s + 1);
                a.delivered += self.release(&mut deliver);
            } else if s - next >= self.limits.messages || self.held_bytes + m.len() + HELD_OVERHEAD > self.limits.bytes
            {
                a.dropped += 1;
                self.dropped += 1;
            } else {
                self.fill(s);
                self.held.insert(s, m.into());
                self.held_bytes += m.len() + HELD_OVERHEAD;
                a.held += 1;
            }
        }
        a
    }

    /// Records `start .. end` (past everything known) as missing.
    fn add_hole(&mut self, start: u64, end: u64, now_ns: u64) {
        if let Some(mut last) = self.holes.last_entry() {
            if last.get().end == start {
                // Adjacent: one hole (so that there is never more than one
                // hole per held message, plus one). The new part is not
                // asked for yet: `asked_to` stays where it was.
                last.get_mut().end = end;
                return;
            }
        }
        self.holes.insert(start, Hole { end, since: now_ns, asked_at: None, asked_to: start });
    }

    /// Takes message `s` out of the hole it is in.
    fn fill(&mut self, s: u64) {
        let Some((&start, &hole)) = self.holes.range(..=s).next_back() else { return };
        if hole.end <= s {
            return;
        }
        self.holes.remove(&start);
        if start < s {
            self.holes.insert(start, Hole { end: s, ..hole });
        }
        if s + 1 < hole.end {
            self.holes.insert(s + 1, hole);
        }
    }

    /// Delivers the held messages that are next in line; returns how many.
    fn release(&mut self, deliver: &mut impl FnMut(u64, &[u8])) -> usize {
        let mut n = 0;
        while let Some(mut next) = self.next {
            let Some(entry) = self.held.first_entry().filter(|e| *e.key() == next) else { break };
            let m = entry.remove();
            self.held_bytes -= m.len() + HELD_OVERHEAD;
            deliver(next, &m[..]);
            n += 1;
            next += 1;
            self.next = Some(next);
        }
        n
    }

    fn take_request_token(tat: &mut u64, now_ns: u64) -> bool {
        let cost = REQUEST_INTERVAL_NS / REQUESTS_PER_INTERVAL;
        let t = (*tat).max(now_ns).saturating_add(cost);
        if t - now_ns > REQUEST_INTERVAL_NS {
            return false;
        }
        *tat = t;
        true
    }

    /// Appends the re-requests to send now (returns how many): for each
    /// hole, in order, that was never asked for or not in the last
    /// [`REQUEST_INTERVAL_NS`] (its answer lost), the hole from its start,
    /// in requests of at most [`MAX_REQUEST`] messages; and the rest of a
    /// hole partly asked for. Never past what could be held
    /// ([`Limits::messages`]), never more than [`MAX_IN_FLIGHT`] messages
    /// asked and not arrived, never more than [`REQUESTS_PER_INTERVAL`]
    /// requests per interval.
    pub fn poll_requests(&mut self, session: Session, now_ns: u64, out: &mut Vec<ReRequest>) -> usize {
        let Some(next) = self.next else { return 0 };
        let limit = next.saturating_add(self.limits.messages);
        let (mut in_flight, mut n) = (0u64, 0usize);
        for (&start, hole) in self.holes.iter_mut().take(HOLES_PER_POLL) {
            if start >= limit {
                break;
            }
            let end = hole.end.min(limit);
            let fresh = hole.asked_at.is_some_and(|t| now_ns.saturating_sub(t) < REQUEST_INTERVAL_NS);
            let mut from = if fresh {
                in_flight += hole.asked_to.clamp(start, end) - start;
                hole.asked_to.max(start)
            } else {
                start
            };
            while from < end && in_flight < MAX_IN_FLIGHT {
                if !Self::take_request_token(&mut self.request_tat, now_ns) {
                    return n;
                }
                let count = (end - from).min(u64::from(MAX_REQUEST)).min(MAX_IN_FLIGHT - in_flight);
                out.push(ReRequest { session, seq: from, count: count as u16 });
                n += 1;
                in_flight += count;
                from += count;
                hole.asked_at = Some(now_ns);
                hole.asked_to = from;
            }
            if in_flight >= MAX_IN_FLIGHT {
                break;
            }
        }
        n
    }

    /// Skips the holes at the front that stayed open for [`GIVE_UP_NS`]
    /// (delivering the held messages after each); returns how many messages
    /// were given up.
    pub fn give_up(&mut self, now_ns: u64, deliver: impl FnMut(u64, &[u8])) -> u64 {
        self.give_up_after(now_ns, GIVE_UP_NS, deliver)
    }

    /// [`Receiver::give_up`] with another patience (a receiver that must
    /// not lose messages lightly, like a gateway's reports, waits longer).
    pub fn give_up_after(&mut self, now_ns: u64, patience_ns: u64, mut deliver: impl FnMut(u64, &[u8])) -> u64 {
        let mut lost = 0;
        while let Some(entry) = self.holes.first_entry() {
            if now_ns.saturating_sub(entry.get().since) < patience_ns {
                break;
            }
            let (start, hole) = entry.remove_entry();
            lost += hole.end - start;
            self.next = Some(hole.end);
            self.release(&mut deliver);
        }
        lost
    }
}

#[cfg(test)]
mod tests;
