//! DNS entries spread by gossip, and removals by any host.

use super::*;

/// Polls node i's events until there are none; whether `ev` was among them.
fn polled(net: &mut Net, i: usize, ev: Event) -> bool {
    events(net, i).contains(&ev)
}

#[test]
fn dns_entries_spread_and_removals_by_any_host_reach_every_host() {
    use crate::dns::{Selector, TOMBSTONE_TTL};
    let mut net = Net::new(3);
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(3));
    assert!(net.all_connected());
    let now = net.now;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    net.node(0).dns_add("AAPL.orders.aex", ip("239.1.0.1"), None, now).unwrap();
    net.node(0).dns_add("aapl.orders.aex.weavers.local.", ip("239.1.0.2"), Some("ctr"), now).unwrap();
    assert!(polled(&mut net, 0, Event::OwnDnsChanged));
    net.run(Duration::from_millis(500));
    let want = |addrs: &[&str]| -> Vec<(String, String, String)> {
        addrs.iter().map(|a| ("aapl.orders.aex".to_string(), a.to_string(), "h1".to_string())).collect()
    };
    for i in 0..3 {
        assert_eq!(dns_rows(&mut net, i), want(&["239.1.0.1", "239.1.0.2"]), "h{}", i + 1);
    }

    // h2 removes one of h1's addresses: gone everywhere within a second,
    // and h1 drops it from its own record.
    polled(&mut net, 2, Event::DnsChanged); // whatever was pending
    let sel = Selector::new(Some("aapl.orders.aex"), Some(ip("239.1.0.1")), None).unwrap();
    let now = net.now;
    let removed = net.node(1).dns_remove(&sel, now).unwrap();
    assert_eq!(removed.len(), 1);
    assert!(!polled(&mut net, 1, Event::OwnDnsChanged), "h2's own entries did not change");
    net.run(Duration::from_secs(1));
    for i in 0..3 {
        assert_eq!(dns_rows(&mut net, i), want(&["239.1.0.2"]), "h{}", i + 1);
    }
    assert!(polled(&mut net, 2, Event::DnsChanged));
    assert_eq!(net.node(0).dns_own_entries().len(), 1);
    assert!(polled(&mut net, 0, Event::OwnDnsChanged), "h1 saves its smaller set");
    // Removing it again changes nothing.
    let now = net.now;
    assert!(net.node(1).dns_remove(&sel, now).unwrap().is_empty());

    // h1 adds it again: newer than the tombstone, so it shows.
    let now = net.now;
    net.node(0).dns_add("aapl.orders.aex", ip("239.1.0.1"), None, now).unwrap();
    net.run(Duration::from_secs(1));
    for i in 0..3 {
        assert_eq!(dns_rows(&mut net, i), want(&["239.1.0.1", "239.1.0.2"]), "h{}", i + 1);
    }

    // By owner, from h3: only the entry that owner registered.
    let now = net.now;
    let removed = net.node(2).dns_remove(&Selector::new(None, None, Some("ctr")).unwrap(), now).unwrap();
    assert_eq!(removed.len(), 1);
    net.run(Duration::from_secs(1));
    for i in 0..3 {
        assert_eq!(dns_rows(&mut net, i), want(&["239.1.0.1"]), "h{}", i + 1);
    }

    // Tombstones are withdrawn once they are done.
    assert!(!net.node(1).own.dns_tombstones.is_empty());
    net.run(TOMBSTONE_TTL + Duration::from_secs(1));
    assert!(net.node(1).own.dns_tombstones.is_empty());
    assert!(net.node(2).own.dns_tombstones.is_empty());
    for i in 0..3 {
        assert_eq!(dns_rows(&mut net, i), want(&["239.1.0.1"]), "h{}", i + 1);
    }
}
