//! Reliable MoldUDP64 streams as pure state machines (no sockets, no clock:
//! times come in as nanoseconds): a [`Sender`] numbers messages, packs them
//! into packets and keeps a history for re-requests; a [`Receiver`] takes
//! packets in any order, says which of their messages are next in line,
//! and when to ask for a gap again or give up on it.
//!
//! The conventions (who re-requests from where, timeouts) are in
//! `ARCHITECTURE.md`.

use crate::wire::mold::{self, PacketBuilder, ReRequest, Session};
use std::collections::VecDeque;

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

/// The sending side of one stream.
#[derive(Debug)]
pub struct Sender {
    session: Session,
    /// Sequence number of `history[0]`.
    first_kept: u64,
    history: VecDeque<Vec<u8>>,
    capacity: usize,
    /// Messages numbered but not yet in a packet start at this sequence number.
    unsent_from: u64,
}

impl Sender {
    /// A stream whose first message will be number 1, keeping `capacity` messages.
    pub fn new(session: Session, capacity: usize) -> Sender {
        Sender { session, first_kept: 1, history: VecDeque::new(), capacity: capacity.max(1), unsent_from: 1 }
    }

    /// The sequence number the next message will get.
    pub fn next_seq(&self) -> u64 {
        self.first_kept + self.history.len() as u64
    }

    /// Whether messages are waiting for [`Sender::take_packets`].
    pub fn has_unsent(&self) -> bool {
        self.unsent_from < self.next_seq()
    }

    /// Numbers a message and keeps it; returns its sequence number. It is
    /// sent by the next [`Sender::take_packets`].
    pub fn push(&mut self, message: &[u8]) -> u64 {
        let seq = self.next_seq();
        if self.history.len() == self.capacity {
            self.history.pop_front();
            self.first_kept += 1;
        }
        self.history.push_back(message.to_vec());
        seq
    }

    /// The packets carrying every message pushed since the last call.
    pub fn take_packets(&mut self, out: &mut Vec<Vec<u8>>) {
        let end = self.next_seq();
        let from = self.unsent_from.max(self.first_kept);
        self.build(from, end, out);
        self.unsent_from = end;
    }

    /// Marks every message pushed so far as sent, without building packets
    /// (recovery, a promoted standby: they went out before, or will be
    /// re-requested).
    pub fn mark_sent(&mut self) {
        self.unsent_from = self.next_seq();
    }

    /// A heartbeat: no messages, the next sequence number.
    pub fn heartbeat(&self) -> Vec<u8> {
        mold::heartbeat(self.session, self.next_seq())
    }

    /// The packets answering a re-request for this session (those of the
    /// asked messages still kept and already sent); empty when none are.
    pub fn retransmit(&self, req: &ReRequest, out: &mut Vec<Vec<u8>>) {
        if req.session != self.session || req.count == 0 {
            return;
        }
        let count = req.count.min(MAX_REQUEST) as u64;
        let from = req.seq.max(self.first_kept);
        let end = req.seq.saturating_add(count).min(self.unsent_from);
        self.build(from, end, out);
    }

    fn build(&self, from: u64, end: u64, out: &mut Vec<Vec<u8>>) {
        let mut seq = from;
        while seq < end {
            let mut b = PacketBuilder::new(self.session, seq, MAX_PACKET);
            while seq < end {
                let msg = &self.history[(seq - self.first_kept) as usize];
                if !b.push(msg) {
                    break;
                }
                seq += 1;
            }
            if b.is_empty() {
                // A message larger than a packet cannot be sent; skip it
                // rather than loop (no codec makes one).
                seq += 1;
                continue;
            }
            out.push(b.finish());
        }
    }
}

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

/// What to do with a packet's messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Arrival {
    /// Messages at the packet's start that were already delivered.
    pub skip: usize,
    /// Messages after those to deliver now, in order.
    pub take: usize,
}

/// The receiving side of one stream.
#[derive(Clone, Debug)]
pub struct Receiver {
    /// The next message to deliver (None: waiting for the first packet).
    next: Option<u64>,
    /// One past the highest message the sender is known to have.
    known_end: u64,
    /// When the current gap was first seen.
    gap_since: Option<u64>,
    last_request: Option<u64>,
}

impl Receiver {
    /// A receiver starting as `start` says.
    pub fn new(start: Start) -> Receiver {
        let next = match start {
            Start::AtOne => Some(1),
            Start::AtFirst => None,
            Start::At(n) => Some(n.max(1)),
        };
        Receiver { next, known_end: 1, gap_since: None, last_request: None }
    }

    /// The next message expected.
    pub fn next(&self) -> Option<u64> {
        self.next
    }

    /// Whether messages are known to be missing.
    pub fn in_gap(&self) -> bool {
        matches!(self.next, Some(n) if n < self.known_end)
    }

    /// A packet arrived: `seq` is its first message's number (or the next
    /// one's, for a heartbeat) and `count` its message count (0 for a
    /// heartbeat or an end of session).
    pub fn on_packet(&mut self, seq: u64, count: usize, now_ns: u64) -> Arrival {
        let end = seq.saturating_add(count as u64);
        let next = *self.next.get_or_insert(seq.max(1));
        if end > self.known_end {
            self.known_end = end;
        }
        if seq > next {
            self.gap_since.get_or_insert(now_ns);
            return Arrival::default();
        }
        if end <= next {
            return Arrival { skip: count, take: 0 };
        }
        let skip = (next - seq) as usize;
        let take = count - skip;
        self.next = Some(end);
        self.gap_since = if self.in_gap() { Some(now_ns) } else { None };
        Arrival { skip, take }
    }

    /// The re-request to send now, if a gap is open and none was asked for
    /// in the last [`REQUEST_INTERVAL_NS`].
    pub fn poll_request(&mut self, session: Session, now_ns: u64) -> Option<ReRequest> {
        let next = self.next?;
        if next >= self.known_end {
            return None;
        }
        if matches!(self.last_request, Some(t) if now_ns.saturating_sub(t) < REQUEST_INTERVAL_NS) {
            return None;
        }
        self.last_request = Some(now_ns);
        let count = (self.known_end - next).min(MAX_REQUEST as u64) as u16;
        Some(ReRequest { session, seq: next, count })
    }

    /// Skips a gap that stayed open for [`GIVE_UP_NS`]; returns how many
    /// messages were given up (the receiver then waits for the next packet
    /// and takes it whole).
    pub fn give_up(&mut self, now_ns: u64) -> u64 {
        self.give_up_after(now_ns, GIVE_UP_NS)
    }

    /// [`Receiver::give_up`] with another patience (a receiver that must
    /// not lose messages lightly, like a gateway's reports, waits longer).
    pub fn give_up_after(&mut self, now_ns: u64, patience_ns: u64) -> u64 {
        let (Some(next), Some(since)) = (self.next, self.gap_since) else {
            return 0;
        };
        if next >= self.known_end || now_ns.saturating_sub(since) < patience_ns {
            return 0;
        }
        let lost = self.known_end - next;
        self.next = None;
        self.gap_since = None;
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::mold::Packet;

    fn session() -> Session {
        Session::new("md.001").unwrap()
    }

    fn decode(p: &[u8]) -> (u64, Vec<Vec<u8>>) {
        let p = Packet::decode(p).unwrap();
        (p.seq, p.messages().map(|(_, m)| m.to_vec()).collect())
    }

    #[test]
    fn sender_numbers_packs_and_retransmits() {
        let mut s = Sender::new(session(), 10);
        for i in 0..5u8 {
            assert_eq!(s.push(&[i; 3]), i as u64 + 1);
        }
        let mut out = Vec::new();
        s.take_packets(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(decode(&out[0]), (1, (0..5u8).map(|i| vec![i; 3]).collect()));
        out.clear();
        s.take_packets(&mut out);
        assert!(out.is_empty(), "nothing new, nothing sent");
        s.retransmit(&ReRequest { session: session(), seq: 2, count: 2 }, &mut out);
        assert_eq!(decode(&out[0]), (2, vec![vec![1; 3], vec![2; 3]]));
        // Not yet sent messages are not retransmitted; other sessions are ignored.
        s.push(&[9]);
        out.clear();
        s.retransmit(&ReRequest { session: session(), seq: 6, count: 1 }, &mut out);
        s.retransmit(&ReRequest { session: Session::new("x").unwrap(), seq: 1, count: 1 }, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn sender_forgets_beyond_capacity_and_splits_packets() {
        let mut s = Sender::new(session(), 3);
        for _ in 0..5 {
            s.push(&[0; 600]);
        }
        let mut out = Vec::new();
        s.take_packets(&mut out);
        // Only 3 kept (3, 4, 5); 600-byte messages go two per packet.
        assert_eq!(out.iter().map(|p| decode(p).0).collect::<Vec<_>>(), vec![3, 5]);
        out.clear();
        s.retransmit(&ReRequest { session: session(), seq: 1, count: 10 }, &mut out);
        assert_eq!(decode(&out[0]).0, 3);
    }

    #[test]
    fn receiver_delivers_in_order_and_asks_for_gaps() {
        let mut r = Receiver::new(Start::AtOne);
        assert_eq!(r.on_packet(1, 3, 0), Arrival { skip: 0, take: 3 });
        // 4..6 lost; 7..8 arrives: dropped, gap asked for once per interval.
        assert_eq!(r.on_packet(7, 2, 10), Arrival::default());
        let req = r.poll_request(session(), 10).unwrap();
        assert_eq!((req.seq, req.count), (4, 5));
        assert!(r.poll_request(session(), 20).is_none());
        assert!(r.poll_request(session(), 10 + REQUEST_INTERVAL_NS).is_some());
        // The retransmission overlaps what was delivered and what was missing.
        assert_eq!(r.on_packet(2, 7, 30), Arrival { skip: 2, take: 5 });
        assert!(!r.in_gap());
        assert_eq!(r.next(), Some(9));
        assert_eq!(r.on_packet(3, 2, 40), Arrival { skip: 2, take: 0 });
    }

    #[test]
    fn a_resumed_receiver_skips_what_it_had() {
        let mut r = Receiver::new(Start::At(5));
        assert_eq!(r.on_packet(3, 4, 0), Arrival { skip: 2, take: 2 });
        assert_eq!(r.next(), Some(7));
        assert_eq!(Receiver::new(Start::At(0)).next(), Some(1));
    }

    #[test]
    fn heartbeat_reveals_a_tail_loss() {
        let mut r = Receiver::new(Start::AtOne);
        r.on_packet(1, 1, 0);
        assert!(r.poll_request(session(), 0).is_none());
        r.on_packet(4, 0, 5); // heartbeat: next is 4, so 2 and 3 are missing
        let req = r.poll_request(session(), 5).unwrap();
        assert_eq!((req.seq, req.count), (2, 2));
    }

    #[test]
    fn late_joiner_starts_at_first_packet_and_gives_up_on_old_gaps() {
        let mut r = Receiver::new(Start::AtFirst);
        assert_eq!(r.on_packet(100, 2, 0), Arrival { skip: 0, take: 2 });
        assert_eq!(r.on_packet(105, 1, 1), Arrival::default());
        assert_eq!(r.give_up(1 + GIVE_UP_NS - 1), 0);
        assert_eq!(r.give_up(1 + GIVE_UP_NS), 4);
        assert_eq!(r.on_packet(106, 1, 2 + GIVE_UP_NS), Arrival { skip: 0, take: 1 });
    }
}
