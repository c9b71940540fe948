//! Liveness, routing and signed gossip on the simulated underlay: a killed
//! host is down everywhere within 3 s, a cut path moves to a relay while
//! every other host keeps both ends, a lying peer cannot take a host down,
//! and forged or frozen records are refused and counted.

use super::*;

/// A full mesh of `n` hosts bootstrapped from the first.
fn full_mesh(n: usize) -> Net {
    let mut net = Net::new(n);
    for i in 1..n {
        net.bootstrap(i, 0);
    }
    net.run(Duration::from_secs(5));
    assert!(net.all_connected());
    net
}

/// Runs in 50 ms steps until `done` holds (at most `limit`); the time taken.
fn time_until(net: &mut Net, limit: Duration, mut done: impl FnMut(&mut Net) -> bool) -> Option<Duration> {
    let start = net.now;
    while net.now - start <= limit {
        if done(net) {
            return Some(net.now - start);
        }
        net.run(Duration::from_millis(50));
    }
    None
}

#[test]
fn a_killed_host_is_down_everywhere_within_three_seconds() {
    let mut net = full_mesh(8);
    net.run(Duration::from_secs(10));
    assert!((0..8).all(|i| net.node(i).peers_down() == 0), "no peer down before the kill");
    net.nodes[5] = None;
    let others: Vec<usize> = (0..8).filter(|i| *i != 5).collect();
    let t = time_until(&mut net, Duration::from_secs(10), |net| {
        others.iter().all(|&i| net.state(i, 5) != Some(PeerState::Connected))
    });
    let t = t.expect("every host notices");
    assert!(t <= Duration::from_secs(3), "took {t:?}");
    // Nobody else was taken for dead meanwhile, and the count says so:
    // only the hosts that probed h6 declared a peer down, once each.
    let downs: u64 = others.iter().map(|&i| net.node(i).peers_down()).sum();
    assert!((1..=others.len() as u64).contains(&downs), "{downs} peers declared down");
    for &i in &others {
        for &j in &others {
            if i != j {
                assert_eq!(net.state(i, j), Some(PeerState::Connected), "h{} sees h{}", i + 1, j + 1);
            }
        }
    }
}

#[test]
fn a_cut_path_moves_to_a_relay_and_the_rest_of_the_mesh_keeps_both_hosts() {
    let mut net = full_mesh(16);
    net.run(Duration::from_secs(2));
    // A pair that does not monitor each other: only the traffic between
    // them can show the cut.
    let (a, b) = (0..16)
        .flat_map(|a| (0..16).map(move |b| (a, b)))
        .find(|&(a, b)| {
            let (ka, kb) = (net.key(a), net.key(b));
            a != b && !net.node(a).monitored.contains(&kb) && !net.node(b).monitored.contains(&ka)
        })
        .expect("with 16 hosts and 2 monitors each, some pair does not monitor each other");
    // They know each other's MACs.
    net.send_frame(a, BROADCAST, 1);
    net.send_frame(b, BROADCAST, 2);
    net.run(Duration::from_secs(2));
    net.blocked.insert((a, b));
    // Traffic from a to b finds its way again (through a relay).
    let mut marker = 100;
    let t = time_until(&mut net, Duration::from_secs(30), |net| {
        marker += 1;
        net.send_frame(a, mac_of(b), marker);
        net.markers(b).contains(&marker)
    });
    let t = t.expect("traffic flows again");
    assert!(t <= Duration::from_secs(3), "took {t:?}");
    net.run(Duration::from_secs(20));
    assert_eq!(net.state(a, b), Some(PeerState::Relayed));
    assert_eq!(net.state(b, a), Some(PeerState::Relayed));
    // The cut is between two hosts only: every other host still has both.
    for i in (0..16).filter(|i| *i != a && *i != b) {
        assert_eq!(net.state(i, a), Some(PeerState::Connected), "h{} sees h{}", i + 1, a + 1);
        assert_eq!(net.state(i, b), Some(PeerState::Connected), "h{} sees h{}", i + 1, b + 1);
    }
    // Healed: direct again.
    net.blocked.clear();
    let t = time_until(&mut net, Duration::from_secs(60), |net| net.state(a, b) == Some(PeerState::Connected));
    assert!(t.is_some(), "direct again after the heal");
}

#[test]
fn a_stalled_host_is_taken_back_on_its_sessions_without_a_handshake() {
    let mut net = full_mesh(8);
    net.run(Duration::from_secs(10));
    let initiated = |net: &mut Net| (0..8).map(|i| net.node(i).handshakes().initiated).sum::<u64>();
    let before = initiated(&mut net);
    // h4 does not run for 3 s: it stops answering, and its peers, who
    // cannot tell a stall from a crash, take it for down.
    net.pause(3);
    let mut worst = 0;
    for _ in 0..60 {
        net.run(Duration::from_millis(50));
        worst = (0..8).filter(|i| *i != 3).map(|i| net.node(i).local_health()).max().unwrap().max(worst);
    }
    let others: Vec<usize> = (0..8).filter(|i| *i != 3).collect();
    assert!(others.iter().all(|&i| net.state(i, 3) != Some(PeerState::Connected)), "h4 is down for the others");
    assert!(worst > 0, "its monitors failed probes: less sure of themselves for a while");
    // It runs again, 3 s late: the pings that waited for it are answered,
    // and every host has it back on the sessions it kept.
    net.resume(3);
    let t = time_until(&mut net, Duration::from_secs(10), |net| net.all_connected()).expect("connected again");
    assert!(t <= Duration::from_millis(500), "took {t:?}");
    assert_eq!(initiated(&mut net), before, "no handshake: the sessions were kept");
    // The stalled host charged the stall to itself, not to its peers.
    assert!(net.node(3).stalls() >= 1);
    assert_eq!(net.node(3).peers_down(), 0, "h4 blamed nobody for its own stall");
    // Answered probes make the hosts sure of themselves again.
    net.run(Duration::from_secs(20));
    assert!((0..8).all(|i| net.node(i).local_health() == 0), "health back to 0");
    assert_eq!(initiated(&mut net), before);
}

#[test]
fn a_lying_peer_cannot_take_a_healthy_host_down() {
    let mut net = full_mesh(4);
    // h4 tells h1 that h2 is down, many times.
    let mut suspect = vec![crate::wire::Kind::Suspect as u8];
    suspect.extend_from_slice(&net.key(1).0);
    for _ in 0..50 {
        send_plain(&mut net, 3, 0, &suspect);
    }
    net.run(Duration::from_secs(5));
    assert_eq!(net.state(0, 1), Some(PeerState::Connected), "h1 checked h2 itself");
    assert!(net.node(0).drops().get(DropReason::RateLimited) > 0, "the flood was cut short");
}

#[test]
fn forged_and_frozen_records_are_refused_and_counted() {
    use crate::gossip::sync::Message;
    use crate::gossip::SignedRecord;
    let mut net = full_mesh(3);
    let (k1, now) = (net.key(1), net.now);
    let real = net.node(0).record(&k1).unwrap().clone();
    let mallory = net.node(2).cfg.keypair.clone();
    let bad_before = net.node(0).drops().get(DropReason::BadGossip);

    // h3, a password holder, rewrites h2's record (no groups, its names
    // gone) and signs it with its own key.
    let mut forged = real.clone();
    forged.version += 10;
    forged.groups.clear();
    forged.dns.clear();
    let f = SignedRecord::sign(&PeerRecord { key: mallory.public, ..forged.clone() }, &mallory);
    let mut bytes = f.as_bytes().to_vec();
    bytes.truncate(96);
    bytes.extend_from_slice(&postcard::to_allocvec(&forged).unwrap());
    // A record of h2 "from the future", really signed by h2 (as a host
    // with a broken clock, or a compromised one, would): it would freeze
    // h2's record everywhere.
    let mut frozen = real.clone();
    frozen.version = u64::MAX;
    let frozen = SignedRecord::sign(&frozen, &net.node(1).cfg.keypair);
    // h1's own record at u64::MAX, signed by h3: h1 must neither panic nor freeze.
    let mut mine = net.node(0).published().clone();
    mine.version = u64::MAX;
    let mine = SignedRecord::sign(&PeerRecord { key: mallory.public, ..mine }, &mallory);
    let mut mine = mine.as_bytes().to_vec();
    mine.truncate(96);
    let mut own = net.node(0).published().clone();
    own.version = u64::MAX;
    mine.extend_from_slice(&postcard::to_allocvec(&own).unwrap());

    let msg = Message::Records(vec![bytes, frozen.as_bytes().to_vec(), mine]).encode();
    let mut plain = vec![crate::wire::Kind::Gossip as u8];
    plain.extend_from_slice(&msg);
    send_plain(&mut net, 2, 0, &plain);
    assert_eq!(net.node(0).record(&k1), Some(&real), "h2's record is untouched");
    assert_eq!(net.node(0).drops().get(DropReason::BadGossip), bad_before + 3, "each refusal counted");
    // h1's own versions go on as before.
    let v = net.node(0).published().version;
    net.node(0).set_overlay_addr(Some(([10, 40, 0, 1].into(), 16)));
    net.run(Duration::from_millis(200));
    let v2 = net.node(0).published().version;
    assert!(v2 > v && v2 < now.elapsed().as_millis() as u64 + 1_800_000_000_000, "{v} -> {v2}");
    assert!(net.all_connected());
}
