//! Conflicts and hostile input: two seeds, another range, double take-overs, rogue donations and records.

use super::*;

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
