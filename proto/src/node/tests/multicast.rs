//! Multicast: IGMP snooping per host; group traffic goes only to the hosts whose members joined.

use super::*;

fn four_hosts_connected() -> Net {
    let mut net = Net::new(4);
    for i in 1..4 {
        net.bootstrap(i, 0);
    }
    net.run(Duration::from_secs(3));
    assert!(net.all_connected());
    net
}

const G: [u8; 4] = [239, 1, 1, 1];

#[test]
fn group_traffic_reaches_only_the_hosts_that_joined() {
    let mut net = four_hosts_connected();
    net.inject(1, &join_v2(1, G));
    net.inject(2, &report_v3(2, 2, G, &[])); // IGMPv3 IS_EX {}
    net.run(Duration::from_secs(1)); // a join reaches every peer within a second
    let before = net.data_datagrams(0, 3);
    for m in 0..100 {
        net.inject(0, &udp_to_group(0, G, m));
    }
    assert_eq!(net.group_markers(1, G), (0..100).collect::<Vec<_>>());
    assert_eq!(net.group_markers(2, G), (0..100).collect::<Vec<_>>());
    assert!(net.group_markers(3, G).is_empty());
    assert_eq!(net.data_datagrams(0, 3), before, "not one group frame towards the host without listeners");
    let now = net.now;
    let g = net.node(0).group_infos(now).into_iter().find(|g| g.group == "239.1.1.1").unwrap();
    assert_eq!(g.counters.local_frames, 100);
    assert_eq!(g.counters.sent_frames, 200);
    assert_eq!(g.subscribed_peers.len(), 2);
    let g3 = net.node(1).group_infos(now).into_iter().find(|g| g.group == "239.1.1.1").unwrap();
    assert_eq!(g3.counters.delivered_frames, 100);
    assert_eq!(g3.local_members.len(), 1);
}

#[test]
fn membership_reports_never_cross_the_mesh() {
    let mut net = four_hosts_connected();
    let before: Vec<usize> = (1..4).map(|j| net.data_datagrams(0, j)).collect();
    net.inject(0, &join_v2(0, G));
    net.inject(0, &report_v3(0, 2, G, &[]));
    net.inject(0, &leave_v2(0, G));
    let after: Vec<usize> = (1..4).map(|j| net.data_datagrams(0, j)).collect();
    assert_eq!(before, after, "IGMP stays on its host");
}

#[test]
fn startup_queries_ask_members_to_answer_within_a_second() {
    let mut net = Net::new(1);
    // IGMPv3 general queries delivered into h1's bridge: their max response codes (tenths of a second).
    let codes = |net: &Net| -> Vec<u8> {
        net.delivered[0].iter().filter(|f| f[12..14] == [8, 0] && f[23] == 2 && f[38] == 0x11).map(|f| f[39]).collect()
    };
    net.run(Duration::from_secs(1));
    assert_eq!(codes(&net), vec![10], "a (re)started daemon learns its members within a second");
    net.run(Duration::from_secs(70));
    assert_eq!(codes(&net), vec![10, 10, 100], "two startup queries, then the full response interval");
}

#[test]
fn a_leave_stops_delivery_and_silent_members_expire() {
    let mut net = Net::new(3);
    for n in net.nodes.iter_mut().flatten() {
        n.cfg.timers.query_interval = Duration::from_secs(4);
    }
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(3));
    net.inject(1, &join_v2(1, G));
    net.inject(2, &join_v2(2, G));
    net.run(Duration::from_secs(1));
    net.inject(0, &udp_to_group(0, G, 1));
    assert_eq!((net.group_markers(1, G), net.group_markers(2, G)), (vec![1], vec![1]));
    net.inject(1, &leave_v2(1, G));
    net.run(Duration::from_secs(1));
    net.inject(0, &udp_to_group(0, G, 2));
    assert_eq!(net.group_markers(1, G), vec![1], "left");
    assert_eq!(net.group_markers(2, G), vec![1, 2], "the other host still listens");
    // h3's member dies without a word: gone after the membership interval
    // (2 x 4 s + 2 s), though h3 keeps querying.
    net.run(Duration::from_secs(11));
    assert!(net.node(2).queries_sent() >= 2);
    net.inject(0, &udp_to_group(0, G, 3));
    assert_eq!(net.group_markers(2, G), vec![1, 2]);
    assert!(net.node(0).drops().get(DropReason::NoListeners) >= 1, "pruned at the sender");
}

#[test]
fn source_specific_joins_get_only_their_source() {
    let mut net = four_hosts_connected();
    let ssm = [232, 1, 1, 1];
    net.inject(1, &report_v3(1, 1, ssm, &[host_ip(0)])); // IS_IN {h1}
    net.run(Duration::from_secs(1));
    net.inject(0, &udp_to_group(0, ssm, 1));
    net.inject(3, &udp_to_group(3, ssm, 4));
    assert_eq!(net.group_markers(1, ssm), vec![1], "h1's frame only");
}

#[test]
fn link_local_groups_reach_every_host() {
    let mut net = four_hosts_connected();
    let mdns = [224, 0, 0, 251];
    net.inject(0, &udp_to_group(0, mdns, 7));
    for j in 1..4 {
        assert_eq!(net.group_markers(j, mdns), vec![7]);
    }
}

#[test]
fn malformed_membership_messages_are_counted() {
    let mut net = four_hosts_connected();
    let mut bad = join_v2(1, G);
    let n = bad.len();
    bad[n - 1] ^= 0xff; // breaks the IGMP checksum
    net.inject(1, &bad);
    assert_eq!(net.node(1).drops().get(DropReason::BadMembership), 1);
    let now = net.now;
    assert!(net.node(1).group_infos(now).iter().all(|g| g.local_members.is_empty()));
}
