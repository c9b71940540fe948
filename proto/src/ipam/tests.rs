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

#[test]
fn range_parsing_and_addresses() {
    let r: Range = "10.32.0.0/12".parse().unwrap();
    assert_eq!(r, Range::default());
    assert_eq!(r.size(), 1 << 20);
    assert_eq!(r.addr(1), Some(Ipv4Addr::new(10, 32, 0, 1)));
    assert_eq!(r.addr(r.size() - 1), Some(Ipv4Addr::new(10, 47, 255, 255)));
    assert_eq!(r.addr(r.size()), None);
    assert_eq!(r.offset(Ipv4Addr::new(10, 33, 0, 2)), Some(65538));
    assert_eq!(r.offset(Ipv4Addr::new(10, 48, 0, 0)), None);
    assert_eq!(r.offset(Ipv4Addr::new(9, 255, 255, 255)), None);
    assert_eq!(r.to_string(), "10.32.0.0/12");
    for bad in ["10.32.0.1/12", "10.32.0.0/31", "10.32.0.0/0", "10.32.0.0", "x/12", "10.32.0.0/x", "::1/64"] {
        assert!(matches!(bad.parse::<Range>(), Err(IpamError::BadRange(_))), "{bad}");
    }
}

#[test]
fn allocator_is_idempotent_skips_reserved_and_frees() {
    let range: Range = "10.0.0.0/29".parse().unwrap(); // 8 offsets, 6 usable
    let me = key(0);
    let mut ring = Ring::new(range);
    let mut a = Allocator::new();
    assert_eq!(a.allocate(&ring, me, "c1"), Err(IpamError::NotSeeded));
    assert!(ring.seed(me, &[key(1)], 1));
    assert_eq!(a.allocate(&ring, me, ""), Err(IpamError::InvalidOwner));
    assert_eq!(a.allocate(&ring, me, &"x".repeat(MAX_OWNER_ID_LEN + 1)), Err(IpamError::InvalidOwner));
    assert_eq!(a.free_count(&ring, me), 6);
    let got: Vec<u32> = (0..6).map(|i| a.allocate(&ring, me, &format!("c{i}")).unwrap()).collect();
    assert_eq!(got, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(a.allocate(&ring, me, "c3"), Ok(4), "same owner, same address");
    assert_eq!(a.allocate(&ring, me, "c9"), Err(IpamError::NoSpace));
    assert_eq!(a.free_count(&ring, me), 0);
    assert_eq!(a.release("c1"), Some(2));
    assert_eq!(a.release("c1"), None);
    assert_eq!(a.allocate(&ring, me, "c9"), Ok(2));
    assert_eq!(a.release("c0"), Some(1));
    assert_eq!(a.release("c2"), Some(3));
    assert_eq!(a.allocate(&ring, me, "c10"), Ok(3), "next fit: not the address just freed first");
    let mut freed = a.release_all_except(&["c3", "c10"]);
    freed.sort();
    assert_eq!(freed, vec![2, 5, 6]);
    assert_eq!(a.in_use().collect::<Vec<_>>(), vec![("c10", 3), ("c3", 4)]);
    // A state file where one offset has two owners is refused.
    let bad = AllocatorState { allocations: [("a".to_string(), 3), ("b".to_string(), 3)].into(), next: 0 };
    assert!(Allocator::try_from(bad).is_err());
    // Another host's ring view gives this host nothing.
    assert_eq!(Allocator::new().allocate(&ring, key(1), "c1"), Err(IpamError::NoSpace));
}

#[test]
fn three_hosts_start_together() {
    let mut sim = Sim::new(3, "10.40.0.0/24");
    assert_eq!(sim.alloc(1, "early"), Err(IpamError::NotSeeded), "nothing before seeding");
    assert_eq!(sim.seed(), vec![0], "only the lowest key seeds");
    assert_eq!(sim.alloc(1, "early"), Err(IpamError::NotSeeded), "the others wait for its record");
    sim.gossip();
    assert!(sim.hosts.iter().all(|h| h.ring.seed_id() == sim.hosts[0].ring.seed_id()));
    for n in 0..20 {
        for i in 0..3 {
            sim.alloc(i, &format!("ctr{n}/eth0")).unwrap();
            sim.gossip();
        }
    }
    assert_eq!(sim.allocations().len(), 60);
    sim.assert_distinct();
    sim.assert_disjoint_ownership();
    sim.assert_merge_clean(&[0, 1, 2]);
    for (_, _, o) in sim.allocations() {
        let a = sim.range.addr(o).unwrap();
        assert!(a.octets()[..3] == [10, 40, 0] && a.octets()[3] != 0 && a.octets()[3] != 255);
    }
    for i in 1..3 {
        assert!(sim.hosts[0].ring.owned_size(key(i)) > 0, "host {i} got space by donation");
        assert!(sim.hosts[0].ring.pending_donations().is_empty());
    }
}

#[test]
fn restart_keeps_allocations_and_space() {
    let mut sim = Sim::new(3, "10.40.0.0/24");
    sim.seed();
    sim.gossip();
    let before: Vec<u32> = (0..10).map(|n| sim.alloc(1, &format!("c{n}")).unwrap()).collect();
    sim.gossip();
    let tokens = sim.hosts[1].ring.own_tokens(key(1));
    let ring = sim.hosts[1].ring.clone();
    sim.hosts[1].up = false;
    for n in 0..10 {
        sim.alloc(2, &format!("other{n}")).unwrap();
    }
    sim.gossip();
    sim.restart(1);
    assert_eq!(sim.hosts[1].ring, ring, "the ring survives");
    sim.hosts[1].up = true;
    sim.gossip();
    assert_eq!(sim.hosts[1].ring.own_tokens(key(1)), tokens, "and so does its space");
    let after: Vec<u32> = (0..10).map(|n| sim.alloc(1, &format!("c{n}")).unwrap()).collect();
    assert_eq!(before, after, "same owners, same addresses");
    sim.alloc(1, "new").unwrap();
    sim.assert_distinct();
    sim.assert_disjoint_ownership();
    sim.assert_merge_clean(&[0, 1, 2]);
}

#[test]
fn partition_keeps_each_side_within_its_space() {
    let mut sim = Sim::new(3, "10.0.0.0/26"); // 62 usable
    sim.seed();
    sim.gossip();
    for n in 0..3 {
        for i in 0..3 {
            sim.alloc(i, &format!("a{n}")).unwrap();
        }
    }
    sim.gossip();
    // Host 2 alone on the minority side.
    sim.side = vec![0, 0, 1];
    let mut minority = 0;
    let err = loop {
        match sim.alloc(2, &format!("m{minority}")) {
            Ok(_) => minority += 1,
            Err(e) => break e,
        }
        assert!(minority < 64, "the minority cannot allocate more than it owns");
    };
    assert_eq!(err, IpamError::NoSpace, "no space, never a duplicate");
    // The majority keeps allocating, passing space between its hosts.
    let mut majority = 0;
    for n in 0..40 {
        for i in 0..2 {
            if sim.alloc(i, &format!("b{n}")).is_ok() {
                majority += 1;
            }
        }
    }
    assert!(majority > 0);
    sim.assert_distinct();
    sim.assert_disjoint_ownership();
    // Heal: everything merges without conflicts.
    let merges_before = sim.merges.len();
    sim.side = vec![0, 0, 0];
    sim.gossip();
    assert!(sim.merges[merges_before..].iter().all(|m| m.conflicts.is_empty() && m.foreign_seed.is_none()));
    sim.assert_merge_clean(&[0, 1, 2]);
    sim.assert_disjoint_ownership();
    sim.assert_distinct();
    let total = sim.allocations().len();
    assert_eq!(total, 9 + minority + majority);
    assert!(total <= 62);
}

#[test]
fn dead_host_space_is_taken_over() {
    let mut sim = Sim::new(3, "10.0.0.0/26");
    sim.seed();
    sim.gossip();
    for n in 0..5 {
        for i in 0..3 {
            sim.alloc(i, &format!("c{n}")).unwrap();
        }
    }
    sim.gossip();
    let dead_space = sim.hosts[0].ring.owned_size(key(2));
    assert!(dead_space > 0);
    let dead_allocs: Vec<u32> = sim.hosts[2].alloc.in_use().map(|(_, o)| o).collect();
    // Host 2 dies for good; its containers with it.
    sim.hosts[2].up = false;
    let h = &mut sim.hosts[0];
    let taken = h.ring.take_over(key(0), key(2));
    assert!(!taken.is_empty());
    assert_eq!(h.ring.owned_size(key(2)), 0);
    sim.gossip();
    assert_eq!(sim.hosts[1].ring.owned_size(key(2)), 0, "the others learn it");
    // Fill the whole range from the live hosts: the dead host's space is reused.
    let mut n = 0;
    while sim.alloc(n % 2, &format!("x{n}")).is_ok() {
        n += 1;
    }
    let live: HashSet<u32> = sim.allocations().into_iter().filter(|(i, _, _)| *i != 2).map(|(_, _, o)| o).collect();
    assert!(dead_allocs.iter().all(|o| live.contains(o)), "the dead host's addresses were handed out again");
    assert_eq!(live.len(), 62, "every usable address is used once");
    sim.hosts[2].up = false;
    let allocs: Vec<_> = sim.allocations().into_iter().filter(|(i, _, _)| *i != 2).collect();
    assert_eq!(allocs.len(), live.len(), "no duplicates among live hosts");
    sim.assert_merge_clean(&[0, 1]);

    // Had it not been dead: on its return its old claims lose, it is told
    // which tokens it lost, and its containers there are listed.
    sim.hosts[2].up = true;
    let before = sim.merges.len();
    sim.gossip();
    let lost: Vec<u32> = sim.merges[before..].iter().flat_map(|m| m.lost(key(2))).collect();
    assert!(!lost.is_empty());
    let h = &sim.hosts[2];
    assert_eq!(h.ring.owned_size(key(2)), 0);
    assert_eq!(h.alloc.outside(&h.ring, key(2)).len(), dead_allocs.len());
    assert_eq!(h.alloc.free_count(&h.ring, key(2)), 0);
}

#[test]
fn lost_donation_leaves_space_unused() {
    let mut sim = Sim::new(2, "10.0.0.0/26");
    sim.seed();
    sim.gossip();
    sim.lose = 1;
    assert_eq!(sim.alloc(1, "c1"), Err(IpamError::NoSpace), "the donation was lost");
    let pending = sim.hosts[0].ring.pending_donations().to_vec();
    assert_eq!(pending.len(), 1);
    let given = pending[0].tokens[0].0;
    // Nobody owns the given space in its own view: safe, unused.
    for i in 0..2 {
        let h = &sim.hosts[i];
        assert!(h.ring.usable(h.key).iter().all(|&(a, b)| !(a <= given && given < b)), "host {i}");
    }
    sim.assert_disjoint_ownership();
    sim.gossip();
    assert_eq!(sim.hosts[0].ring.pending_donations().len(), 1, "still pending: the recipient's record lacks it");
    // Host 0 fills its own space; the limbo stays out of it.
    let mut n = 0;
    loop {
        let h = &mut sim.hosts[0];
        if h.alloc.allocate(&h.ring, key(0), &format!("d{n}")).is_err() {
            break;
        }
        n += 1;
    }
    assert!(sim.hosts[0].alloc.in_use().all(|(_, o)| o < given));
    // The resend arrives; the recipient's record confirms it.
    sim.resend();
    sim.resend(); // a duplicate changes nothing
    sim.deliver();
    assert!(sim.alloc(1, "c1").unwrap() >= given);
    sim.gossip();
    assert!(sim.hosts[0].ring.pending_donations().is_empty());
    sim.assert_distinct();
    sim.assert_disjoint_ownership();
    sim.assert_merge_clean(&[0, 1]);
}

#[test]
fn two_seeds_conflict_and_the_younger_yields_once_empty() {
    let mut sim = Sim::new(4, "10.0.0.0/24");
    sim.side = vec![0, 0, 1, 1];
    assert_eq!(sim.seed(), vec![0, 2], "each side seeds its own ring");
    sim.advance(Duration::from_secs(1));
    sim.hosts[2].ring = Ring::new(sim.range);
    assert_eq!(sim.seed(), vec![2], "host 2 seeds again, later: the younger seed");
    sim.gossip();
    for n in 0..3 {
        for i in 0..4 {
            sim.alloc(i, &format!("c{n}")).unwrap();
        }
    }
    // The sides meet.
    sim.side = vec![0; 4];
    let before = sim.merges.len();
    sim.gossip();
    let foreign: Vec<&MergeResult> = sim.merges[before..].iter().filter(|m| m.foreign_seed.is_some()).collect();
    assert!(!foreign.is_empty() && foreign.iter().any(|m| !m.conflicts.is_empty()), "the merge reports it");
    for i in 0..4 {
        assert!(sim.hosts[i].ring.has_foreign_seed());
        assert_eq!(sim.alloc(i, "new"), Err(IpamError::Conflict), "host {i} refuses");
    }
    // The younger side holds allocations: nothing resolves by itself.
    sim.gossip();
    assert!(sim.hosts.iter().all(|h| h.ring.has_foreign_seed()));
    // The operator removes the younger side's containers; it joins the older ring.
    for i in 2..4 {
        sim.hosts[i].alloc.release_all_except(&[]);
    }
    sim.gossip();
    let seed = sim.hosts[0].ring.seed_id();
    assert!(sim.hosts.iter().all(|h| h.ring.seed_id() == seed && !h.ring.has_foreign_seed()));
    for n in 0..5 {
        for i in 0..4 {
            sim.alloc(i, &format!("d{n}")).unwrap();
        }
    }
    sim.assert_distinct();
    sim.assert_disjoint_ownership();
    sim.assert_merge_clean(&[0, 1, 2, 3]);
}

#[test]
fn another_range_is_a_conflict() {
    let mut a = Ring::new("10.0.0.0/24".parse().unwrap());
    a.seed(key(0), &[], 1);
    let mut b = Ring::new("10.1.0.0/24".parse().unwrap());
    b.seed(key(1), &[], 1);
    let res = a.merge_record(key(1), &b.record(key(1), 10).unwrap());
    assert!(res.foreign_seed.is_some());
    assert_eq!(Allocator::new().allocate(&a, key(0), "c"), Err(IpamError::Conflict));
    assert!(!a.yield_seed(false), "never yields to another range");
    assert!(a.forget(key(1)));
    assert!(Allocator::new().allocate(&a, key(0), "c").is_ok());
}

#[test]
fn double_take_over_is_a_conflict_until_settled() {
    let mut sim = Sim::new(3, "10.0.0.0/26");
    sim.seed();
    sim.gossip();
    for i in 0..3 {
        sim.alloc(i, "c").unwrap();
    }
    sim.gossip();
    sim.hosts[2].up = false;
    // Two operators, each on one side of a partition, remove host 2.
    sim.side = vec![0, 1, 2];
    for i in 0..2 {
        let h = &mut sim.hosts[i];
        assert!(!h.ring.take_over(key(i), key(2)).is_empty());
    }
    sim.side = vec![0; 3];
    let before = sim.merges.len();
    sim.gossip();
    let conflicts: BTreeSet<u32> = sim.merges[before..].iter().flat_map(|m| m.conflicts.clone()).collect();
    assert!(!conflicts.is_empty(), "the merge reports the conflict");
    for i in 0..2 {
        let h = &sim.hosts[i];
        assert_eq!(h.ring.conflicts().keys().copied().collect::<BTreeSet<_>>(), conflicts, "host {i}");
        let usable = h.ring.usable(h.key);
        assert!(conflicts.iter().all(|c| usable.iter().all(|&(a, b)| !(a <= *c && *c < b))), "refused on {i}");
    }
    // Both views record the lower key; it settles after the operator
    // removed host 1's containers there (it has none).
    assert!(conflicts.iter().all(|&c| sim.hosts[1].ring.owner(c) == Some(key(0))));
    assert!(sim.hosts[1].ring.settle_conflicts(key(1)).is_empty(), "only the recorded owner settles");
    let h = &mut sim.hosts[0];
    assert_eq!(h.ring.settle_conflicts(key(0)).len(), conflicts.len());
    sim.gossip();
    assert!(sim.hosts.iter().take(2).all(|h| h.ring.conflicts().is_empty()));
    sim.assert_disjoint_ownership();
    sim.assert_merge_clean(&[0, 1]);
}

#[test]
fn hostile_donations_and_records_are_refused() {
    let range: Range = "10.0.0.0/24".parse().unwrap();
    let mut ring = Ring::new(range);
    ring.seed(key(0), &[], 1);
    let seed = ring.seed_id().unwrap();
    let good = Donation { seed, from: key(0), to: key(1), tokens: vec![(128, 2)], end: None };
    assert!(good.is_valid() && IpamMessage::Donation(good.clone()).is_valid());
    assert!(!IpamMessage::Request { want: 0 }.is_valid());
    let mut other = Ring::new(range);
    assert!(other.accept_donation(key(2), &good).is_err(), "not addressed to it");
    for bad in [
        Donation { tokens: vec![], ..good.clone() },
        Donation { tokens: vec![(300, 2)], ..good.clone() },
        Donation { tokens: vec![(5, 2), (5, 3)], ..good.clone() },
        Donation { end: Some((100, Entry { owner: key(0), version: 1 })), ..good.clone() },
        Donation { from: key(1), ..good.clone() },
        Donation { tokens: (0..=MAX_DONATION_TOKENS as u32).map(|s| (s, 2)).collect(), ..good.clone() },
    ] {
        assert!(other.accept_donation(key(1), &bad).is_err(), "{bad:?}");
    }
    assert_eq!(other, Ring::new(range), "nothing changed");
    let res = other.accept_donation(key(1), &good).unwrap();
    assert!(res.changed && other.is_seeded());
    assert_eq!(other.accept_donation(key(1), &good).unwrap(), MergeResult::default(), "idempotent");
    let mut rec = IpamRecord { seed, tokens: vec![(1, 1), (0, 1)], free: 0 };
    assert!(!rec.is_valid());
    assert_eq!(ring.merge_record(key(3), &rec), MergeResult::default(), "malformed: ignored");
    rec.tokens = vec![(0, 1), (256, 1)];
    assert!(!rec.is_valid());
    // Decoding garbage never panics.
    for bytes in [&[][..], &[0xff; 40][..], &[1, 2, 3][..]] {
        let _ = postcard::from_bytes::<IpamMessage>(bytes);
        let _ = postcard::from_bytes::<IpamRecord>(bytes);
    }
}

#[test]
fn a_rogue_host_cannot_grow_the_ring_without_bound() {
    // A /8: 16 M offsets, room for far more tokens than the ring keeps.
    let range: Range = "10.0.0.0/8".parse().unwrap();
    let mut ring = Ring::new(range);
    ring.seed(key(0), &[], 1);
    let seed = ring.seed_id().unwrap();
    let mut alloc = Allocator::new();
    let mine = alloc.allocate(&ring, key(0), "c1/eth0").unwrap();
    // Record after record, each with MAX_TOKENS new tokens at new offsets
    // (high up, away from this host's first addresses).
    let mut refused = 0;
    for round in 0..40u32 {
        let tokens: Vec<(u32, u32)> =
            (0..MAX_TOKENS as u32).map(|i| (8_000_000 + (round * MAX_TOKENS as u32 + i) * 7, 1)).collect();
        let rec = IpamRecord { seed, tokens, free: 0 };
        assert!(rec.is_valid());
        refused += ring.merge_record(key(9), &rec).refused;
    }
    assert_eq!(ring.spans().len(), MAX_RING_TOKENS);
    assert_eq!(refused, 40 * MAX_TOKENS - (MAX_RING_TOKENS - 1));
    // Known tokens still update when the ring is full.
    let rec = IpamRecord { seed, tokens: vec![(8_000_000, 5)], free: 0 };
    let res = ring.merge_record(key(9), &rec);
    assert!(res.changed && res.refused == 0);
    // This host's own space and allocations are untouched.
    assert_eq!(alloc.allocate(&ring, key(0), "c1/eth0").unwrap(), mine);
    assert!(alloc.allocate(&ring, key(0), "c2/eth0").is_ok());

    // Hosts of another seed: a bounded number is kept aside, the rest counted.
    let mut ring = Ring::new(range);
    ring.seed(key(0), &[], 1);
    let mut refused = 0;
    for i in 0..100u8 {
        let other = SeedId { stamp: 2, seeder: PublicKey([i; 32]), range };
        let rec = IpamRecord { seed: other, tokens: vec![(0, 1)], free: 0 };
        refused += ring.merge_record(PublicKey([i; 32]), &rec).refused;
    }
    assert_eq!((ring.foreign().len(), refused), (MAX_FOREIGN, 100 - MAX_FOREIGN));
    assert!(ring.has_foreign_seed(), "allocation stays refused all the same");
}

#[test]
fn donor_choice() {
    assert_eq!(choose_donor(key(0), []), None);
    assert_eq!(choose_donor(key(0), [(key(1), 0), (key(0), 50)]), None);
    assert_eq!(choose_donor(key(0), [(key(1), 5), (key(2), 9), (key(3), 9)]), Some(key(2)));
}

#[derive(Clone, Debug)]
enum Op {
    Alloc(usize, u8),
    Release(usize, u8),
    Gc(usize),
    Request(usize),
    Gossip,
    Stale(usize, usize, usize),
    Partition(Vec<u8>),
    Heal,
    Deliver,
    Resend,
    LoseNext,
    Restart(usize),
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..n, 0u8..40).prop_map(|(h, id)| Op::Alloc(h, id)),
        3 => (0..n, 0u8..40).prop_map(|(h, id)| Op::Release(h, id)),
        1 => (0..n).prop_map(Op::Gc),
        2 => (0..n).prop_map(Op::Request),
        3 => Just(Op::Gossip),
        2 => (0..n, 0..n, 0usize..20).prop_map(|(a, t, p)| Op::Stale(a, t, p)),
        1 => proptest::collection::vec(0u8..2, n).prop_map(Op::Partition),
        1 => Just(Op::Heal),
        2 => Just(Op::Deliver),
        1 => Just(Op::Resend),
        1 => Just(Op::LoseNext),
        1 => (0..n).prop_map(Op::Restart),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Op>)> {
    (3usize..=5).prop_flat_map(|n| (Just(n), proptest::collection::vec(op(n), 1..80)))
}

proptest! {
    /// Random allocations, releases, donations (some lost or delayed),
    /// partitions, heals, stale records and restarts on 3 to 5 hosts of one
    /// seed: never two owners of one offset, never one address twice, and
    /// the records of any set of hosts merge without conflict.
    #[test]
    fn never_two_owners_never_one_address_twice((n, ops) in scenario()) {
        let mut sim = Sim::new(n, "10.0.0.0/26");
        sim.seed();
        sim.gossip();
        for op in ops {
            match op {
                Op::Alloc(h, id) => {
                    if sim.hosts[h].up {
                        let r = sim.alloc(h, &format!("c{id}"));
                        prop_assert!(matches!(r, Ok(_) | Err(IpamError::NoSpace)), "{r:?}");
                    }
                }
                Op::Release(h, id) => {
                    sim.hosts[h].alloc.release(&format!("c{id}"));
                }
                Op::Gc(h) => {
                    sim.hosts[h].alloc.release_all_except(&["c1", "c2", "c3"]);
                }
                Op::Request(h) => {
                    sim.request(h, 8);
                }
                Op::Gossip => sim.gossip(),
                Op::Stale(a, t, p) => sim.stale(a, t, p),
                Op::Partition(sides) => sim.side = sides,
                Op::Heal => sim.side = vec![0; n],
                Op::Deliver => sim.deliver(),
                Op::Resend => sim.resend(),
                Op::LoseNext => sim.lose += 1,
                Op::Restart(h) => sim.restart(h),
            }
            sim.assert_disjoint_ownership();
            sim.assert_distinct();
            for i in 0..n {
                let comp = sim.component(i);
                sim.assert_merge_clean(&comp);
                let h = &sim.hosts[i];
                prop_assert!(h.ring.conflicts().is_empty() && !h.ring.has_foreign_seed());
                prop_assert!(h.alloc.outside(&h.ring, h.key).is_empty(), "every allocation in own space");
            }
            sim.assert_merge_clean(&(0..n).collect::<Vec<_>>());
        }
        // Healed and settled, every pending donation is eventually confirmed.
        sim.side = vec![0; n];
        sim.lose = 0;
        for _ in 0..3 {
            sim.resend();
            sim.deliver();
            sim.gossip();
        }
        for h in &sim.hosts {
            prop_assert!(h.ring.pending_donations().is_empty());
        }
        sim.assert_disjoint_ownership();
        sim.assert_distinct();
    }

    /// Records merge the same in any order.
    #[test]
    fn merge_is_order_independent(recs in proptest::collection::vec((0usize..4, 0u32..64, 1u32..6), 1..40)) {
        let range: Range = "10.0.0.0/26".parse().unwrap();
        let seed = SeedId { stamp: 1, seeder: key(0), range };
        let mut a = Ring::new(range);
        let mut b = Ring::new(range);
        // One owner per (token, version), as single writers guarantee.
        let owner = |s: u32, v: u32| key(((s + v) % 4) as usize);
        for &(_, s, v) in &recs {
            a.merge_from(owner(s, v), seed, &[(s, v)]);
        }
        for &(_, s, v) in recs.iter().rev() {
            b.merge_from(owner(s, v), seed, &[(s, v)]);
        }
        prop_assert_eq!(a.spans(), b.spans());
        prop_assert!(a.conflicts().is_empty());
    }
}
