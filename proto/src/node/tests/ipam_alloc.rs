//! IPAM: hosts started together share the range without duplicates.

use super::*;

/// Allocates `owner` on node i, letting the mesh run (donations) until it succeeds.
fn allocate(net: &mut Net, i: usize, owner: &str) -> (std::net::Ipv4Addr, u8) {
    for _ in 0..100 {
        let now = net.now;
        let mut out = Out::default();
        let r = net.node(i).ipam_allocate(now, owner, &mut out);
        net.collect(i, out);
        net.settle();
        match r {
            Ok(a) => return a,
            Err(crate::ipam::IpamError::NoSpace | crate::ipam::IpamError::NotSeeded) => {
                net.run(Duration::from_millis(200))
            }
            Err(e) => panic!("allocation on h{}: {e}", i + 1),
        }
    }
    panic!("no address for {owner} on h{} after 20 s", i + 1);
}

#[test]
fn hosts_started_together_share_the_range_without_duplicates() {
    let mut net = Net::new(3);
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(5));
    let mut seen = std::collections::HashSet::new();
    for i in 0..3 {
        for c in 0..20 {
            let (a, len) = allocate(&mut net, i, &format!("ctr{c}/eth0"));
            assert_eq!(len, 12);
            assert!(crate::ipam::Range::default().offset(a).is_some(), "{a} in range");
            assert!(seen.insert(a), "{a} given twice");
        }
    }
    // Idempotent per owner, and every host agrees who owns what.
    let again = allocate(&mut net, 1, "ctr3/eth0");
    assert!(seen.contains(&again.0));
    net.run(Duration::from_secs(2));
    let spans: Vec<_> = (0..3).map(|i| net.nodes[i].as_ref().unwrap().ipam_status().spans).collect();
    assert!(spans.iter().all(|s| *s == spans[0]), "the ring converged: {spans:?}");
    assert!((0..3).all(|i| net.nodes[i].as_ref().unwrap().ipam_status().problems.is_empty()));
}
