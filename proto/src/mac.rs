//! MAC learning: which peer owns which Ethernet address, with ageing.
//!
//! Every frame a peer delivers teaches its source MAC, so the table is fed
//! from outside: a bundle of 14-byte frames teaches about 80 addresses per
//! datagram. It holds at most [`MAX_MACS`] entries. A new address when it is
//! full evicts the oldest-seen address of the peer holding the most (the
//! learning peer itself when it holds at least half), so a peer that floods
//! the table with made-up addresses only evicts its own, never the
//! addresses behind the others. [`MacTable::learn`] says when it evicted;
//! the node counts it ([`crate::stats::DropReason::MacEvicted`]). Frames to
//! an evicted address flood, as to any unknown unicast, until it is learned
//! again.

use crate::keys::PublicKey;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// A MAC address.
pub type Mac = [u8; 6];

/// Most addresses the table holds.
pub const MAX_MACS: usize = 8192;

/// An entry's "last seen" is refreshed at most this often: the per-frame
/// path is then one lookup (ageing is minutes, this coarseness is nothing).
const REFRESH: Duration = Duration::from_secs(1);

/// Whether a MAC is a group (multicast or broadcast) address.
pub fn is_group(mac: &Mac) -> bool {
    mac[0] & 1 == 1
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    peer: PublicKey,
    seen: Instant,
    /// Tells apart entries seen at the same instant in `by_peer`.
    seq: u64,
}

/// Remote MACs learned from frames that arrived from peers.
#[derive(Debug)]
pub struct MacTable {
    entries: HashMap<Mac, Entry>,
    /// Each peer's addresses, oldest seen first.
    by_peer: HashMap<PublicKey, BTreeMap<(Instant, u64), Mac>>,
    seq: u64,
    ageing: Duration,
    cap: usize,
}

impl Default for MacTable {
    fn default() -> Self {
        MacTable::new(Duration::from_secs(300))
    }
}

impl MacTable {
    /// An empty table whose entries last `ageing` without a new frame.
    pub fn new(ageing: Duration) -> Self {
        Self::with_capacity(ageing, MAX_MACS)
    }

    /// An empty table holding at most `cap` addresses (at least one).
    pub fn with_capacity(ageing: Duration, cap: usize) -> Self {
        MacTable { entries: HashMap::new(), by_peer: HashMap::new(), seq: 0, ageing, cap: cap.max(1) }
    }

    /// Records that `mac` was seen behind `peer`. Returns true when another
    /// address was evicted to make room (the table was full).
    pub fn learn(&mut self, mac: Mac, peer: PublicKey, now: Instant) -> bool {
        if is_group(&mac) {
            return false;
        }
        if let Some(e) = self.entries.get(&mac) {
            if e.peer == peer && now.saturating_duration_since(e.seen) < REFRESH {
                return false;
            }
            let old = *e;
            self.unindex(&old);
        }
        let evicted = !self.entries.contains_key(&mac) && self.entries.len() >= self.cap && self.evict_for(peer);
        self.seq += 1;
        let e = Entry { peer, seen: now, seq: self.seq };
        self.entries.insert(mac, e);
        self.by_peer.entry(peer).or_default().insert((now, e.seq), mac);
        evicted
    }

    /// Removes `e` from its peer's index.
    fn unindex(&mut self, e: &Entry) {
        if let Some(idx) = self.by_peer.get_mut(&e.peer) {
            idx.remove(&(e.seen, e.seq));
            if idx.is_empty() {
                self.by_peer.remove(&e.peer);
            }
        }
    }

    /// Makes room for an address of `learner`: evicts the oldest address of
    /// the peer holding the most. True if one was evicted.
    fn evict_for(&mut self, learner: PublicKey) -> bool {
        let own = self.by_peer.get(&learner).map_or(0, BTreeMap::len);
        // Holding at least half, the learner holds the most (or as many as
        // any): no need to look at the others.
        let victim = if own * 2 >= self.entries.len() {
            learner
        } else {
            match self.by_peer.iter().max_by_key(|(_, idx)| idx.len()) {
                Some((k, _)) => *k,
                None => return false,
            }
        };
        let Some(idx) = self.by_peer.get_mut(&victim) else { return false };
        let Some((_, mac)) = idx.pop_first() else { return false };
        if idx.is_empty() {
            self.by_peer.remove(&victim);
        }
        self.entries.remove(&mac);
        true
    }

    /// A MAC seen as a local source: it is not remote (any more).
    pub fn forget(&mut self, mac: &Mac) {
        if let Some(e) = self.entries.remove(mac) {
            self.unindex(&e);
        }
    }

    /// The peer owning `mac`, unless the entry has aged out.
    pub fn lookup(&self, mac: &Mac, now: Instant) -> Option<PublicKey> {
        self.entries.get(mac).filter(|e| now.saturating_duration_since(e.seen) < self.ageing).map(|e| e.peer)
    }

    /// Drops aged entries and those of `gone` peers.
    pub fn sweep(&mut self, now: Instant, gone: impl Fn(&PublicKey) -> bool) {
        let ageing = self.ageing;
        let entries = &mut self.entries;
        self.by_peer.retain(|peer, idx| {
            if gone(peer) {
                for mac in idx.values() {
                    entries.remove(mac);
                }
                return false;
            }
            while let Some((&(seen, _), _)) = idx.first_key_value() {
                if now.saturating_duration_since(seen) < ageing {
                    break;
                }
                let (_, mac) = idx.pop_first().expect("looked at above");
                entries.remove(&mac);
            }
            !idx.is_empty()
        });
    }

    /// Addresses held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Addresses held behind `peer`.
    pub fn held_by(&self, peer: &PublicKey) -> usize {
        self.by_peer.get(peer).map_or(0, BTreeMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u32) -> Mac {
        let b = n.to_be_bytes();
        [2, 0, b[0], b[1], b[2], b[3]]
    }

    #[test]
    fn learns_ages_and_ignores_group_addresses() {
        let t0 = Instant::now();
        let mut t = MacTable::new(Duration::from_secs(300));
        let p = PublicKey([1; 32]);
        t.learn([2, 0, 0, 0, 0, 1], p, t0);
        t.learn([1, 0, 0x5e, 0, 0, 1], p, t0);
        assert_eq!(t.lookup(&[2, 0, 0, 0, 0, 1], t0 + Duration::from_secs(299)), Some(p));
        assert_eq!(t.lookup(&[2, 0, 0, 0, 0, 1], t0 + Duration::from_secs(300)), None);
        assert_eq!(t.len(), 1);
        t.sweep(t0 + Duration::from_secs(301), |_| false);
        assert!(t.is_empty());
    }

    #[test]
    fn a_refreshed_or_moved_address_is_kept_and_indexed_once() {
        let t0 = Instant::now();
        let mut t = MacTable::new(Duration::from_secs(300));
        let (a, b) = (PublicKey([1; 32]), PublicKey([2; 32]));
        t.learn(mac(1), a, t0);
        t.learn(mac(1), a, t0 + Duration::from_secs(200));
        t.sweep(t0 + Duration::from_secs(350), |_| false);
        assert_eq!(t.lookup(&mac(1), t0 + Duration::from_secs(350)), Some(a), "refreshed at 200 s");
        t.learn(mac(1), b, t0 + Duration::from_secs(351));
        assert_eq!((t.held_by(&a), t.held_by(&b), t.len()), (0, 1, 1), "moved to b");
        t.forget(&mac(1));
        assert!(t.is_empty() && t.held_by(&b) == 0);
        t.learn(mac(2), a, t0);
        t.sweep(t0, |k| *k == a);
        assert!(t.is_empty(), "a gone peer's addresses go with it");
    }

    #[test]
    fn a_flood_of_addresses_evicts_only_the_flooders_own() {
        let t0 = Instant::now();
        let mut t = MacTable::new(Duration::from_secs(300));
        let (good, rogue) = (PublicKey([1; 32]), PublicKey([2; 32]));
        for n in 0..100 {
            assert!(!t.learn(mac(n), good, t0));
        }
        let mut evicted = 0;
        for n in 1000..101_000u32 {
            let now = t0 + Duration::from_micros(u64::from(n));
            evicted += usize::from(t.learn(mac(n), rogue, now));
        }
        assert_eq!(t.len(), MAX_MACS);
        assert_eq!(evicted, 100_000 - (MAX_MACS - 100), "every address over the cap evicted one");
        assert_eq!(t.held_by(&good), 100, "the other peer's addresses stay");
        let later = t0 + Duration::from_secs(1);
        assert_eq!(t.lookup(&mac(5), later), Some(good));
        // The rogue's oldest went first: its newest are there.
        assert_eq!(t.lookup(&mac(100_999), later), Some(rogue));
        assert_eq!(t.lookup(&mac(1000), later), None);
    }

    #[test]
    fn when_full_the_largest_holder_gives_way() {
        let t0 = Instant::now();
        let mut t = MacTable::with_capacity(Duration::from_secs(300), 10);
        let (a, b) = (PublicKey([1; 32]), PublicKey([2; 32]));
        for n in 0..8 {
            t.learn(mac(n), a, t0 + Duration::from_secs(u64::from(n)));
        }
        t.learn(mac(100), b, t0);
        t.learn(mac(101), b, t0);
        // b, holding 2 of 10, learns a third: a (holding 8) loses its oldest.
        assert!(t.learn(mac(102), b, t0 + Duration::from_secs(20)));
        assert_eq!((t.held_by(&a), t.held_by(&b)), (7, 3));
        assert_eq!(t.lookup(&mac(0), t0 + Duration::from_secs(20)), None);
    }
}
