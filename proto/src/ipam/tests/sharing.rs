//! Hosts sharing a range: starting together, restarts, partitions, dead hosts and lost donations.

use super::*;

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
