//! IPAM across several simulated hosts: records exchanged as gossip would,
//! donation messages that can be lost or delayed, partitions, restarts
//! (a serde round trip), and a fake clock for the seeding stamps.

use super::*;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Host i's key; host 0 has the lowest.
fn key(i: usize) -> PublicKey {
    PublicKey([i as u8 + 1; 32])
}

struct Host {
    key: PublicKey,
    ring: Ring,
    alloc: Allocator,
    up: bool,
}

struct Sim {
    range: Range,
    hosts: Vec<Host>,
    /// Hosts on the same side of a partition reach each other.
    side: Vec<u8>,
    /// Donation messages in flight: (from, to, donation).
    wire: Vec<(usize, usize, Donation)>,
    /// How many of the next donation messages are lost.
    lose: usize,
    start: Instant,
    now: Instant,
    /// Every record each host published, oldest first (for stale deliveries).
    published: Vec<Vec<IpamRecord>>,
    /// Every merge result, for the conflict checks.
    merges: Vec<MergeResult>,
}

impl Sim {
    fn new(n: usize, range: &str) -> Self {
        let range: Range = range.parse().unwrap();
        let now = Instant::now();
        Sim {
            range,
            hosts: (0..n)
                .map(|i| Host { key: key(i), ring: Ring::new(range), alloc: Allocator::new(), up: true })
                .collect(),
            side: vec![0; n],
            wire: Vec::new(),
            lose: 0,
            start: now,
            now,
            published: vec![Vec::new(); n],
            merges: Vec::new(),
        }
    }

    fn reach(&self, i: usize, j: usize) -> bool {
        i != j && self.hosts[i].up && self.hosts[j].up && self.side[i] == self.side[j]
    }

    /// Host i and every host it reaches.
    fn component(&self, i: usize) -> Vec<usize> {
        (0..self.hosts.len()).filter(|&j| j == i || self.reach(i, j)).collect()
    }

    /// The fake clock, in the node's stamp units (ms that grow across restarts).
    fn stamp(&self) -> u64 {
        1_700_000_000_000 + self.now.duration_since(self.start).as_millis() as u64
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn free(&self, i: usize) -> u32 {
        let h = &self.hosts[i];
        h.alloc.free_count(&h.ring, h.key)
    }

    fn record(&self, i: usize) -> Option<IpamRecord> {
        let h = &self.hosts[i];
        let r = h.ring.record(h.key, self.free(i));
        if let Some(r) = &r {
            assert!(r.is_valid());
        }
        r
    }

    /// Each host merges the current record of every host it reaches (what
    /// a round of gossip does), then yields its seed if it lost.
    fn gossip(&mut self) {
        for _ in 0..2 {
            for i in 0..self.hosts.len() {
                let Some(rec) = self.record(i) else { continue };
                if self.published[i].last() != Some(&rec) {
                    self.published[i].push(rec.clone());
                }
                for j in 0..self.hosts.len() {
                    if self.reach(i, j) {
                        let res = self.hosts[j].ring.merge_record(key(i), &rec);
                        self.merges.push(res);
                    }
                }
            }
            for h in &mut self.hosts {
                let holds = !h.alloc.is_empty();
                h.ring.yield_seed(holds);
            }
        }
    }

    /// Delivers an old record of `author` to `to` (a slow relay).
    fn stale(&mut self, author: usize, to: usize, pick: usize) {
        if author == to || self.published[author].is_empty() {
            return;
        }
        let rec = self.published[author][pick % self.published[author].len()].clone();
        let res = self.hosts[to].ring.merge_record(key(author), &rec);
        self.merges.push(res);
    }

    /// The node's seeding rule: an unseeded host that hears only unseeded
    /// hosts seeds if it has the lowest key among them.
    fn seed(&mut self) -> Vec<usize> {
        let mut seeded = Vec::new();
        for i in 0..self.hosts.len() {
            let comp = self.component(i);
            if !self.hosts[i].up || comp.iter().any(|&j| self.hosts[j].ring.is_seeded()) {
                continue;
            }
            let keys: Vec<PublicKey> = comp.iter().filter(|&&j| j != i).map(|&j| key(j)).collect();
            let stamp = self.stamp();
            if self.hosts[i].ring.seed(key(i), &keys, stamp) {
                seeded.push(i);
            }
        }
        seeded
    }

    fn send(&mut self, from: usize, to: usize, d: Donation) {
        if self.lose > 0 {
            self.lose -= 1;
        } else if self.reach(from, to) {
            self.wire.push((from, to, d));
        }
    }

    /// Delivers the donations in flight to recipients still reachable.
    fn deliver(&mut self) {
        for (from, to, d) in std::mem::take(&mut self.wire) {
            if self.reach(from, to) {
                let h = &mut self.hosts[to];
                h.ring.accept_donation(h.key, &d).expect("a donation from the same seed applies");
            }
        }
    }

    /// Every donor resends its pending donations to reachable recipients.
    fn resend(&mut self) {
        for i in 0..self.hosts.len() {
            if !self.hosts[i].up {
                continue;
            }
            for d in self.hosts[i].ring.pending_donations().to_vec() {
                let to = self.hosts.iter().position(|h| h.key == d.to).unwrap();
                self.send(i, to, d);
            }
        }
    }

    /// Host i asks the reachable host with the most free space for some.
    fn request(&mut self, i: usize, want: u32) -> bool {
        let cands: Vec<(PublicKey, u32)> = self
            .component(i)
            .into_iter()
            .filter(|&j| j != i)
            .filter_map(|j| Some((key(j), self.record(j)?.free)))
            .collect();
        let Some(donor) = choose_donor(key(i), cands) else { return false };
        let d = self.hosts.iter().position(|h| h.key == donor).unwrap();
        let h = &mut self.hosts[d];
        let Some(don) = h.ring.donate(h.key, key(i), want, &h.alloc) else { return false };
        self.send(d, i, don);
        true
    }

    /// What the node does for a CNI ADD: allocate; on NoSpace ask for a
    /// donation, let it arrive and gossip, and try again once.
    fn alloc(&mut self, i: usize, id: &str) -> Result<u32, IpamError> {
        let h = &mut self.hosts[i];
        match h.alloc.allocate(&h.ring, h.key, id) {
            Err(IpamError::NoSpace) => {
                self.request(i, 16);
                self.deliver();
                self.gossip();
                let h = &mut self.hosts[i];
                h.alloc.allocate(&h.ring, h.key, id)
            }
            r => r,
        }
    }

    /// A restart: the state goes through its serialized form.
    fn restart(&mut self, i: usize) {
        let h = &mut self.hosts[i];
        let ring = postcard::to_allocvec(&h.ring).unwrap();
        let alloc = postcard::to_allocvec(&h.alloc).unwrap();
        h.ring = postcard::from_bytes(&ring).unwrap();
        h.alloc = postcard::from_bytes(&alloc).unwrap();
    }

    /// Every allocation on every host: (host, owner id, offset).
    fn allocations(&self) -> Vec<(usize, String, u32)> {
        let mut v = Vec::new();
        for (i, h) in self.hosts.iter().enumerate() {
            v.extend(h.alloc.in_use().map(|(id, o)| (i, id.to_string(), o)));
        }
        v
    }

    /// No offset is owned by two running hosts, each in its own view.
    fn assert_disjoint_ownership(&self) {
        for o in 0..self.range.size() {
            let owners: Vec<usize> = (0..self.hosts.len())
                .filter(|&i| self.hosts[i].up)
                .filter(|&i| {
                    let h = &self.hosts[i];
                    h.ring.usable(h.key).iter().any(|&(a, b)| a <= o && o < b)
                })
                .collect();
            assert!(owners.len() <= 1, "offset {o} owned by hosts {owners:?}");
        }
    }

    /// No address is allocated twice, across all hosts, and none is the
    /// network or broadcast address.
    fn assert_distinct(&self) {
        let mut seen: HashMap<u32, (usize, String)> = HashMap::new();
        for (i, id, o) in self.allocations() {
            assert!(o > 0 && o < self.range.size() - 1, "offset {o} is network or broadcast");
            if let Some(prev) = seen.insert(o, (i, id.clone())) {
                panic!("offset {o} held by {prev:?} and {:?}", (i, id));
            }
        }
    }

    /// The records of `members` merged into a fresh ring, in two orders:
    /// no conflict, and the same view either way.
    fn assert_merge_clean(&self, members: &[usize]) {
        let recs: Vec<(usize, IpamRecord)> = members.iter().filter_map(|&i| Some((i, self.record(i)?))).collect();
        let mut a = Ring::new(self.range);
        let mut b = Ring::new(self.range);
        for (i, r) in &recs {
            let res = a.merge_record(key(*i), r);
            assert!(res.conflicts.is_empty() && res.foreign_seed.is_none(), "{res:?}");
        }
        for (i, r) in recs.iter().rev() {
            b.merge_record(key(*i), r);
        }
        assert_eq!(a.spans(), b.spans());
    }
}

mod conflicts;
mod local;
mod properties;
mod sharing;
