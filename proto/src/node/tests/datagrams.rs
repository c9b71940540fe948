//! What crosses the underlay: frames batched within the MTU, an idle mesh, offloaded super-frames.

use super::*;

#[test]
fn frames_queued_for_a_peer_share_datagrams_within_the_mtu() {
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    let before = net.data_datagrams(0, 1);
    let now = net.now;
    let mut out = Out::default();
    let largest = net.node(0).overlay_mtu() + 14;
    for (m, size) in (0..100u32).map(|m| (m, if m % 10 == 9 { largest } else { 60 })) {
        let mut f = vec![0u8; size];
        f[0..6].copy_from_slice(&mac_of(1));
        f[6..12].copy_from_slice(&mac_of(0));
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f[14..18].copy_from_slice(&m.to_be_bytes());
        net.node(0).handle_frame(now, &f, &mut out);
    }
    net.node(0).flush(&mut out);
    let biggest = out.sent.iter().map(|(_, d)| d.len()).max().unwrap();
    assert!(biggest + 28 <= 1500, "a {biggest}-byte datagram would not fit a 1500-byte IPv4 underlay");
    net.collect(0, out);
    net.settle();
    assert_eq!(net.markers(1), (0..100).collect::<Vec<_>>(), "all delivered, in order");
    let used = net.data_datagrams(0, 1) - before;
    assert!(used <= 20, "100 frames took {used} datagrams");
}

/// Idle datagrams per host and minute in a full mesh of `n`.
fn idle_per_host(n: usize) -> usize {
    let mut net = Net::new(n);
    for i in 1..n {
        net.bootstrap(i, 0);
    }
    net.run(Duration::from_secs(10));
    assert!(net.all_connected());
    net.run(Duration::from_secs(30));
    let count = |net: &Net| {
        (0..n).flat_map(|i| (0..n).map(move |j| (i, j))).map(|(i, j)| net.data_datagrams(i, j)).sum::<usize>()
    };
    let before = count(&net);
    net.run(Duration::from_secs(60));
    (count(&net) - before) / n
}

#[test]
fn an_idle_mesh_stays_quiet() {
    // Per host and minute: it pings the 2 hosts it monitors once a second
    // and is pinged by 2 (240 datagrams with the pongs), sends one gossip
    // summary every 2 s (30), and rekeys now and then: about 280, whatever
    // the mesh's size. (Before liveness by monitors, every pair pinged:
    // a host's cost grew with the mesh.) A record echoed back to its author
    // must not make it stamp a new version (that loop once made ten times
    // this).
    let small = idle_per_host(4);
    let large = idle_per_host(12);
    assert!(small < 320, "{small} datagrams per host in an idle minute (4 hosts)");
    assert!(large < 320, "{large} datagrams per host in an idle minute (12 hosts)");
}

#[test]
fn offloaded_super_frames_travel_whole_direct_and_relayed() {
    let mut net = Net::new(3);
    net.blocked.insert((0, 2));
    net.bootstrap(0, 1);
    net.bootstrap(2, 1);
    net.run(Duration::from_secs(5));
    let hdr = [1u8, 1, 0x36, 0, 0x14, 0x05, 0x22, 0, 0x10, 0]; // TCPv4, segments of 1300
    for dst in [1, 2] {
        // Teach node 0 where dst's MAC lives.
        net.send_frame(dst, BROADCAST, 100 + dst as u32);
        let f = super_frame(0, dst);
        let now = net.now;
        let mut out = Out::default();
        net.node(0).handle_offloaded_frame(now, &hdr, &f, &mut out);
        assert!(out.sent.iter().all(|(_, d)| d.len() + 28 <= 1500), "every fragment fits the underlay");
        net.collect(0, out);
        net.settle();
        assert_eq!(net.offloaded[dst], vec![(hdr, f)], "to h{} whole, header and all", dst + 1);
    }
    assert!(net.offloaded[1].len() == 1, "h2 relayed h3's copy without delivering it");
}

#[test]
fn a_super_frame_missing_a_fragment_is_dropped_and_bad_fragments_are_counted() {
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    net.send_frame(1, BROADCAST, 1);
    let now = net.now;
    let mut out = Out::default();
    net.node(0).handle_offloaded_frame(now, &[0; 10], &super_frame(0, 1), &mut out);
    out.sent.remove(7);
    net.collect(0, out);
    net.settle();
    assert!(net.offloaded[1].is_empty());
    net.run(Duration::from_secs(2));
    assert_eq!(net.node(1).drops().get(DropReason::Incomplete), 1);
}
