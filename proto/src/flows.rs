//! Which TCP flows a local sender retransmits: the sender side's sign
//! that a path loses packets, with no change on the wire.
//!
//! The node notes, for each TCP flow whose data frames it sends to a
//! unicast peer, the highest sequence number sent (the end of the data).
//! A data frame that starts below it is data the local TCP sender sends
//! again: a retransmission, so something was lost (or, rarely, only
//! delayed) on the way to that peer or back. Pure ACKs, SYNs and
//! keepalives (no data) are not judged; a SYN starts the flow afresh.
//!
//! The table is bounded ([`FLOW_SLOTS`] flows, two-way set associative by
//! a keyed hash): a new flow whose set is full takes the place of the one
//! seen longest ago, counted ([`FlowTable::evicted`]). An evicted flow is
//! only forgotten (its next frame starts a new record), so eviction can
//! miss a retransmission but never invents one. Sans-IO, no allocation
//! after construction.

use crate::keys::PublicKey;

/// Flows tracked at most.
pub const FLOW_SLOTS: usize = 1024;
const WAYS: usize = 2;
const SETS: usize = FLOW_SLOTS / WAYS;

/// A TCP flow to one peer: the peer, addresses and ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    pub peer: PublicKey,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    key: FlowKey,
    /// End of the highest data sent (sequence number after it).
    end: u32,
    /// When it was last seen, by the table's own count of observations.
    seen: u64,
}

/// What one data frame says about its flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// New data (or a flow not known before).
    Fresh,
    /// Data that starts below what was already sent: a retransmission.
    Again,
}

/// Whether sequence number `a` comes before `b` (RFC 1982 arithmetic).
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// The flow table (see the module docs).
pub struct FlowTable {
    slots: Box<[Option<Slot>]>,
    /// Keys the hash, so a local sender cannot pick flows that collide.
    seed: u64,
    clock: u64,
    evicted: u64,
}

impl std::fmt::Debug for FlowTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTable").field("flows", &self.len()).field("evicted", &self.evicted).finish()
    }
}

impl FlowTable {
    /// An empty table whose hash is keyed by `seed`.
    pub fn new(seed: u64) -> Self {
        FlowTable { slots: vec![None; FLOW_SLOTS].into_boxed_slice(), seed, clock: 0, evicted: 0 }
    }

    /// Flows tracked now.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Whether no flow is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Flows forgotten to make room for others since start.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    fn set_of(&self, k: &FlowKey) -> usize {
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        let mut h = self.seed;
        for w in [
            word(&k.peer.0[..8]),
            word(&k.src[..8]),
            word(&k.src[8..]),
            word(&k.dst[..8]),
            word(&k.dst[8..]),
            u64::from(k.src_port) << 16 | u64::from(k.dst_port),
        ] {
            h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
        }
        (h as usize) % SETS
    }

    /// Notes a TCP frame of flow `k` carrying `len` bytes of data from
    /// sequence number `seq` (`syn`: it opens the connection). `None` for
    /// a frame that carries no data.
    pub fn observe(&mut self, k: FlowKey, seq: u32, len: u32, syn: bool) -> Option<Seen> {
        let set = self.set_of(&k) * WAYS;
        self.clock += 1;
        let clock = self.clock;
        let ways = &mut self.slots[set..set + WAYS];
        if let Some(s) = ways.iter_mut().flatten().find(|s| s.key == k) {
            s.seen = clock;
            if syn {
                // A new connection on the same ports: its sequence space is new.
                s.end = seq.wrapping_add(1).wrapping_add(len);
                return (len > 0).then_some(Seen::Fresh);
            }
            if len == 0 {
                return None;
            }
            let end = seq.wrapping_add(len);
            let again = before(seq, s.end);
            if before(s.end, end) {
                s.end = end;
            }
            return Some(if again { Seen::Again } else { Seen::Fresh });
        }
        if len == 0 && !syn {
            return None;
        }
        // A flow not seen before: an empty way, else the one seen longest ago.
        let victim = ways.iter_mut().min_by_key(|s| s.map(|s| s.seen)).expect("two ways");
        if victim.is_some() {
            self.evicted += 1;
        }
        let end = if syn { seq.wrapping_add(1) } else { seq }.wrapping_add(len);
        *victim = Some(Slot { key: k, end, seen: clock });
        (len > 0).then_some(Seen::Fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(peer: u8, port: u16) -> FlowKey {
        FlowKey { peer: PublicKey([peer; 32]), src: [10; 16], dst: [11; 16], src_port: port, dst_port: 5201 }
    }

    #[test]
    fn new_data_is_fresh_and_data_sent_again_is_a_retransmission() {
        let mut t = FlowTable::new(1);
        let k = key(1, 1000);
        assert_eq!(t.observe(k, 0, 0, true), None, "a SYN carries no data");
        assert_eq!(t.observe(k, 1, 1000, false), Some(Seen::Fresh));
        assert_eq!(t.observe(k, 1001, 64_000, false), Some(Seen::Fresh));
        assert_eq!(t.observe(k, 1001, 0, false), None, "a pure ACK is not judged");
        assert_eq!(t.observe(k, 5001, 1000, false), Some(Seen::Again));
        assert_eq!(t.observe(k, 65_001, 1000, false), Some(Seen::Fresh), "the highest end was kept");
        // Another peer or port is another flow.
        assert_eq!(t.observe(key(2, 1000), 5001, 1000, false), Some(Seen::Fresh));
        assert_eq!(t.observe(key(1, 1001), 5001, 1000, false), Some(Seen::Fresh));
        // A new connection on the same ports starts afresh, even below.
        assert_eq!(t.observe(k, 10, 0, true), None);
        assert_eq!(t.observe(k, 11, 100, false), Some(Seen::Fresh));
        assert_eq!(t.observe(k, 11, 100, false), Some(Seen::Again));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut t = FlowTable::new(2);
        let k = key(1, 1);
        assert_eq!(t.observe(k, u32::MAX - 999, 64_000, false), Some(Seen::Fresh));
        assert_eq!(t.observe(k, 63_001, 1000, false), Some(Seen::Fresh), "after the wrap");
        assert_eq!(t.observe(k, u32::MAX - 10, 100, false), Some(Seen::Again), "before the wrap");
    }

    #[test]
    fn the_table_is_bounded_and_evictions_are_counted() {
        let mut t = FlowTable::new(3);
        for port in 0..5000u16 {
            t.observe(key(1, port), 0, 100, false);
        }
        assert!(t.len() <= FLOW_SLOTS);
        assert!(t.len() > FLOW_SLOTS * 9 / 10, "the sets fill evenly: {}", t.len());
        assert_eq!(t.evicted(), 5000 - t.len() as u64);
        // An evicted flow's next frame is fresh, not a retransmission.
        assert_eq!(t.observe(key(1, 0), 0, 100, false), Some(Seen::Fresh));
        // A busy flow stays while others come and go.
        let busy = key(9, 9);
        for (i, port) in (10_000..30_000u16).enumerate() {
            t.observe(busy, i as u32 * 100, 100, false);
            t.observe(key(1, port), 0, 100, false);
        }
        assert_eq!(t.observe(busy, 0, 100, false), Some(Seen::Again), "its record survived");
    }
}
