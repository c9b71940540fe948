//! Random scenarios on 3 to 5 hosts: ownership stays disjoint and records merge in any order.

use super::*;

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
