//! Forming a mesh and carrying frames through relays, rekeys, loss, restarts and hostile datagrams.

use super::*;

#[test]
fn two_peers_handshake_and_carry_frames() {
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    assert!(net.all_connected());
    net.send_frame(0, BROADCAST, 1);
    net.send_frame(1, BROADCAST, 2);
    assert_eq!(net.markers(1), vec![1]);
    assert_eq!(net.markers(0), vec![2]);
    // Unicast to a learned MAC goes to its owner only.
    net.send_frame(0, mac_of(1), 3);
    assert_eq!(net.markers(1), vec![1, 3]);
    let now = net.now;
    let infos = net.node(0).peer_infos(now);
    assert_eq!(infos[0].name, "h2");
    assert!(infos[0].rtt_us.is_some());
    assert_eq!(infos[0].traffic.tx_frames, 2);
}

#[test]
fn each_change_is_reported_once_until_polled() {
    let mut net = Net::new(2);
    assert_eq!(events(&mut net, 0), [Event::DnsChanged], "the DNS view was never handed out");
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    assert!(net.all_connected());
    // The peer was learned, then its session installed: two changes, one event.
    let got = events(&mut net, 0);
    assert_eq!(got.iter().filter(|e| **e == Event::PeersChanged).count(), 1, "{got:?}");
    assert_eq!(net.node(0).poll_event(), None);

    // Two own entries added: the own entries and the view changed, once each.
    let now = net.now;
    net.node(0).dns_add("a.mesh", "10.0.0.1".parse().unwrap(), None, now).unwrap();
    net.node(0).dns_add("b.mesh", "10.0.0.2".parse().unwrap(), None, now).unwrap();
    let got = events(&mut net, 0);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.contains(&Event::OwnDnsChanged) && got.contains(&Event::DnsChanged), "{got:?}");
    // The other host's view changed through gossip; its own entries did not.
    events(&mut net, 1);
    net.run(Duration::from_secs(1));
    let got = events(&mut net, 1);
    assert!(got.contains(&Event::DnsChanged) && !got.contains(&Event::OwnDnsChanged), "{got:?}");

    // The range gets seeded by one host and adopted by the other: both save it.
    net.run(Duration::from_secs(3));
    for i in 0..2 {
        let got = events(&mut net, i);
        assert!(got.contains(&Event::IpamChanged), "h{}: {got:?}", i + 1);
    }
}

#[test]
fn three_peers_bootstrapped_to_one_form_a_full_mesh() {
    let mut net = Net::new(3);
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(3));
    assert!(net.all_connected(), "h2 and h3 find each other through gossip and IK");
    net.send_frame(2, BROADCAST, 9);
    assert_eq!(net.markers(0), vec![9]);
    assert_eq!(net.markers(1), vec![9]);
}

#[test]
fn blocked_pair_talks_through_a_relay() {
    let mut net = Net::new(3);
    net.blocked.insert((0, 2));
    net.bootstrap(0, 1);
    net.bootstrap(2, 1);
    net.run(Duration::from_secs(5));
    assert_eq!(net.state(0, 2), Some(PeerState::Relayed));
    assert_eq!(net.state(2, 0), Some(PeerState::Relayed));
    let now = net.now;
    let row = net.node(0).peer_infos(now).into_iter().find(|p| p.name == "h3").unwrap();
    assert_eq!(row.via.as_deref(), Some("h2"));
    net.send_frame(0, BROADCAST, 5);
    assert_eq!(net.markers(2), vec![5], "relayed through h2");
    assert_eq!(net.markers(1), vec![5], "and h2 got its own copy");
    // Unicast back to the learned MAC of h1, again through the relay.
    net.send_frame(2, mac_of(0), 6);
    assert_eq!(net.markers(0), vec![6]);
    assert_eq!(net.markers(1), vec![5], "h2 relays but does not deliver unicast for h1");
}

#[test]
fn sessions_are_replaced_every_two_minutes_without_losing_frames() {
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    let first = net.node(0).peers.values().next().unwrap().current.as_ref().unwrap().local_index;
    let mut sent = 0;
    for _ in 0..(400 / 5) {
        net.run(Duration::from_secs(5));
        net.send_frame(0, mac_of(1), sent);
        sent += 1;
    }
    let now = net.now;
    let p = net.node(0).peers.values().next().unwrap();
    let s = p.current.as_ref().unwrap();
    assert_ne!(s.local_index, first, "rekeyed");
    assert!(now.saturating_duration_since(s.established) < Duration::from_secs(135));
    assert_eq!(net.markers(1), (0..sent).collect::<Vec<_>>(), "every frame across rekeys");
    assert!(net.node(0).handshakes().completed >= 3);
}

#[test]
fn loss_and_reordering_are_survived() {
    let mut net = Net::new(3);
    net.loss = 0.2;
    net.reorder = true;
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(40));
    assert!(net.all_connected());
    net.loss = 0.0;
    // Reordered data packets are all accepted once (the replay window is not a FIFO).
    for m in 0..200 {
        let now = net.now;
        let mut out = Out::default();
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&mac_of(1));
        f[6..12].copy_from_slice(&mac_of(0));
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f[14..18].copy_from_slice(&(m as u32).to_be_bytes());
        net.node(0).handle_frame(now, &f, &mut out);
        if m % 7 == 0 {
            net.node(0).flush(&mut out);
        }
        net.collect(0, out);
    }
    let mut out = Out::default();
    net.node(0).flush(&mut out);
    net.collect(0, out);
    net.settle();
    let mut got = net.markers(1);
    got.sort();
    assert_eq!(got, (0..200).collect::<Vec<_>>());
}

#[test]
fn a_host_with_another_password_never_connects() {
    let mut net = Net::with_passwords(&[b"pw", b"pw", b"other"]);
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(10));
    assert_eq!(net.state(0, 1), Some(PeerState::Connected));
    assert_eq!(net.state(0, 2), None, "h1 never learns the stranger's key");
    let now = net.now;
    assert!(net.node(2).peer_infos(now).is_empty(), "nor the stranger h1's");
    net.send_frame(2, BROADCAST, 1);
    assert!(net.markers(0).is_empty() && net.markers(1).is_empty());
    // Refused at mac1: not one handshake attempted for the stranger.
    assert!(net.node(0).drops().get(DropReason::BadMac1) > 0);
    assert!(net.node(0).handshakes().mac1_refused > 0);
    assert_eq!(net.node(0).handshakes().failed, 0);
}

#[test]
fn hostile_datagrams_are_counted_and_dropped() {
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    net.send_frame(1, BROADCAST, 1);
    let data: Vec<Vec<u8>> =
        net.wire_log.iter().filter(|(i, j, d)| *i == 1 && *j == 0 && d[1] == 4).map(|(_, _, d)| d.clone()).collect();
    let from = net.addrs[1];
    let now = net.now;
    let mut rng = StdRng::seed_from_u64(1);
    let mut out = Out::default();
    let n = net.node(0);
    for _ in 0..1000 {
        let len = rng.gen_range(0..200);
        let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        n.handle_datagram(now, from, &junk, &mut out);
    }
    for d in &data {
        n.handle_datagram(now, from, d, &mut out); // replay
        let mut t = d.clone();
        t[13] ^= 0x40; // tamper with the counter: a fresh nonce, a bad tag
        n.handle_datagram(now, from, &t, &mut out);
        n.handle_datagram(now, from, &d[..d.len() / 2], &mut out); // truncate
    }
    assert!(out.delivered.is_empty(), "nothing hostile reaches the bridge");
    assert!(n.drops().get(DropReason::Malformed) > 0);
    assert!(n.drops().get(DropReason::Replay) >= data.len() as u64);
    assert!(n.drops().get(DropReason::Decrypt) >= data.len() as u64);
    net.collect(0, out);
    net.settle();
    net.send_frame(1, BROADCAST, 2);
    assert_eq!(net.markers(0), vec![1, 2], "still forwarding");
}

#[test]
fn a_restarted_host_with_the_same_key_reconnects() {
    let mut net = Net::new(3);
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(3));
    assert!(net.all_connected());
    // h3 dies without a word and comes back with its key and its --peer.
    let mut cfg = config(2, b"pw");
    cfg.keypair = net.nodes[2].take().unwrap().cfg.keypair.clone();
    net.run(Duration::from_secs(20));
    assert_eq!(net.state(0, 2), Some(PeerState::Connecting));
    cfg.unix_ms += 23_000;
    net.nodes[2] = Some(Node::new(cfg, net.now));
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(5));
    assert!(net.all_connected());
}

/// The IK initiations that went from node `from` to node `to`.
fn ik_initiations(net: &Net, from: usize, to: usize) -> Vec<Vec<u8>> {
    net.wire_log
        .iter()
        .filter(|(i, j, d)| {
            (*i, *j) == (from, to)
                && matches!(Packet::parse(d), Ok(Packet::HandshakeInit { pattern: crate::wire::Pattern::Ik, .. }))
        })
        .map(|(_, _, d)| d.clone())
        .collect()
}

#[test]
fn an_ik_initiation_captured_before_a_restart_is_refused_after_it() {
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(3));
    assert!(net.all_connected());
    // h1 saves its known peers whenever it says they changed, as the
    // daemon does (peers.json); h2 rekeys by IK after two minutes.
    let mut saved = net.node(0).known_peers();
    for _ in 0..130 {
        net.run(Duration::from_secs(1));
        if events(&mut net, 0).contains(&Event::PeersChanged) {
            saved = net.node(0).known_peers();
        }
    }
    let replay = ik_initiations(&net, 1, 0).pop().expect("h2 rekeyed by IK");
    assert_eq!(net.node(0).drops().get(DropReason::Replay), 0, "h1 took every initiation so far");
    let stamp = saved.iter().find(|k| k.key == net.key(1)).map(|k| k.last_handshake);
    assert!(stamp.is_some_and(|s| s > 0), "h1 saved h2's handshake timestamp: {saved:?}");

    // h1 restarts with its key and what it saved; an attacker replays the
    // captured initiation to it.
    let mut cfg = config(0, b"pw");
    cfg.keypair = net.nodes[0].take().unwrap().cfg.keypair.clone();
    cfg.unix_ms += 200_000;
    let (now, from) = (net.now, net.addrs[1]);
    let restarted = |known: &[KnownPeer]| {
        let mut n = Node::new(cfg.clone(), now);
        for k in known {
            n.add_known_peer(k, now);
        }
        n
    };
    let answers = |n: &mut Node| {
        let mut out = Out::default();
        n.handle_datagram(now, from, &replay, &mut out);
        !out.sent.is_empty()
    };
    let forgetful: Vec<KnownPeer> = saved.iter().map(|k| KnownPeer { last_handshake: 0, ..k.clone() }).collect();
    assert!(answers(&mut restarted(&forgetful)), "without the saved timestamp the replay would be answered");
    let mut h1 = restarted(&saved);
    assert!(!answers(&mut h1), "the replayed initiation is answered after the restart");
    assert_eq!(h1.drops().get(DropReason::Replay), 1);
    assert_eq!(h1.handshakes().completed, 0);

    // The real h2 still gets back in, with newer timestamps.
    net.nodes[0] = Some(h1);
    net.run(Duration::from_secs(10));
    assert!(net.all_connected());
}

#[test]
fn a_host_gone_for_good_is_forgotten() {
    let mut net = Net::new(3);
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(3));
    net.nodes[2] = None;
    net.run(Duration::from_secs(30));
    assert_eq!(net.state(1, 2), Some(PeerState::Connecting), "still remembered for a while");
    net.run(Duration::from_secs(60));
    assert_eq!(net.state(1, 2), None, "learned by gossip only, gone after forget_after");
    assert_eq!(net.state(0, 1), Some(PeerState::Connected));
}

#[test]
fn oversize_and_runt_frames_are_dropped() {
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    let now = net.now;
    let mut out = Out::default();
    let too_big = net.node(0).overlay_mtu() + 15;
    net.node(0).handle_frame(now, &vec![0xff; too_big], &mut out);
    net.node(0).handle_frame(now, &[0xff; 10], &mut out);
    assert!(out.sent.is_empty());
    assert_eq!(net.node(0).drops().get(DropReason::Oversize), 1);
    assert_eq!(net.node(0).drops().get(DropReason::Malformed), 1);
}
