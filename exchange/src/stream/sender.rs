//! The sending side of a stream: numbers messages, packs them into packets, keeps a history.

use super::*;

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
