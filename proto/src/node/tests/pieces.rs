//! Control messages too big for a datagram travel in pieces; hostile pieces are counted and bounded.

use super::*;

/// Registers `n` DNS names on node i (as `aex register` does: many names,
/// one record far bigger than a datagram).
fn register_names(net: &mut Net, i: usize, n: usize) {
    let now = net.now;
    for k in 0..n {
        let addr = IpAddr::from([239, 192, (k / 250) as u8, (k % 250) as u8 + 1]);
        net.node(i).dns_add(&format!("sym{k:03}.orders.aex"), addr, None, now).unwrap();
    }
}

/// How many of node i's DNS rows came from node `origin` (by name).
fn names_from(net: &mut Net, i: usize, origin: &str) -> usize {
    dns_rows(net, i).iter().filter(|(_, _, o)| o == origin).count()
}

#[test]
fn a_record_with_300_names_converges_through_an_underlay_that_drops_oversize_datagrams() {
    let mut net = Net::new(3);
    net.mtu = Some(1500);
    // h3 reaches h1 only through h2, so h2 must pass the big record on.
    net.blocked.insert((0, 2));
    net.bootstrap(1, 0);
    net.bootstrap(2, 1);
    net.run(Duration::from_secs(5));
    register_names(&mut net, 0, 300);
    let record = postcard::to_allocvec(&net.node(0).own).unwrap().len();
    assert!(record > 5 * 1400, "the record ({record} bytes) needs many datagrams");
    net.run(Duration::from_secs(2));
    assert_eq!(names_from(&mut net, 1, "h1"), 300, "h2 has every name of h1");
    assert_eq!(names_from(&mut net, 2, "h1"), 300, "h3 too, through h2");
    assert_eq!(net.too_big, 0, "no datagram exceeded the MTU");
    let biggest = net.wire_log.iter().map(|(_, _, d)| d.len()).max().unwrap();
    assert!(biggest + 28 <= 1500, "a {biggest}-byte datagram");
    for i in 0..3 {
        let d = net.node(i).drops();
        assert_eq!((d.get(DropReason::BadPayload), d.get(DropReason::BadGossip)), (0, 0), "h{}", i + 1);
    }
}

#[test]
fn a_big_record_converges_despite_loss_and_reordering_of_its_pieces() {
    let mut net = Net::new(3);
    net.mtu = Some(1500);
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(3));
    assert!(net.all_connected());
    net.loss = 0.1;
    net.reorder = true;
    register_names(&mut net, 0, 300);
    let mut waited = Duration::ZERO;
    while (names_from(&mut net, 1, "h1") != 300 || names_from(&mut net, 2, "h1") != 300)
        && waited < Duration::from_secs(180)
    {
        net.run(Duration::from_secs(5));
        waited += Duration::from_secs(5);
    }
    assert_eq!(names_from(&mut net, 1, "h1"), 300, "h2 after {waited:?}");
    assert_eq!(names_from(&mut net, 2, "h1"), 300, "h3 after {waited:?}");
    let incomplete: u64 = (0..3).map(|i| net.node(i).drops().get(DropReason::Incomplete)).sum();
    assert!(incomplete > 0, "some message lost a piece and was given up (then sent again)");
    assert_eq!(net.too_big, 0);
}

#[test]
fn hostile_pieces_are_counted_and_memory_stays_bounded() {
    use crate::wire::Kind;
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    assert!(net.all_connected());
    let bad = |net: &mut Net| net.node(0).drops().get(DropReason::BadPayload);
    let gossip = Kind::Gossip as u8;

    // Malformed headers: each one counted, nothing kept.
    let cases = [
        piece(1, 0, 0, gossip, &[1]),                            // empty message
        piece(1, 100, 90, gossip, &[0; 20]),                     // past the end
        piece(1, 100, 0, gossip, &[]),                           // no bytes
        piece(1, 70_000, 0, gossip, &[0; 10]),                   // too long
        piece(1, 100, 0, Kind::Relay as u8, &[0; 10]),           // not a kind that travels in pieces
        piece(1, 100, 0, Kind::Fragment as u8, &[0; 10]),        // nor this
        piece(1, 100, 0, 99, &[0; 10]),                          // unknown kind
        piece(1, 20, 0, Kind::Frame as u8, &[0; 10]),            // a "super-frame" shorter than its headers
        vec![Kind::Fragment as u8, 0, 0, 0, 1, 0, 0, 0, 100, 0], // truncated header
    ];
    for (n, c) in cases.iter().enumerate() {
        let before = bad(&mut net);
        send_plain(&mut net, 1, 0, c);
        assert_eq!(bad(&mut net), before + 1, "case {n}");
    }
    assert_eq!(net.node(0).reassembly.len(), 0);

    // A repeated piece, an overlapping one, and ones that disagree on the
    // length or the kind: refused, the message still completes from good pieces.
    let mut own = net.node(1).published().clone();
    own.version += 1_000_000;
    // Long enough that half of it is a piece of a plausible size.
    for i in 0..20u8 {
        let addr = std::net::IpAddr::from([10, 32, 1, i]);
        own.dns.push(crate::dns::DnsEntry { name: format!("name{i}.example"), addr, owner: None, since: 1 });
    }
    let signed = crate::gossip::SignedRecord::sign(&own, &net.node(1).cfg.keypair);
    let body = crate::gossip::sync::Message::Records(vec![signed.as_bytes().to_vec()]).encode();
    let total = body.len() as u32;
    let half = body.len() / 2;
    send_plain(&mut net, 1, 0, &piece(7, total, 0, gossip, &body[..half]));
    let before = bad(&mut net);
    send_plain(&mut net, 1, 0, &piece(7, total, 0, gossip, &body[..half])); // repeat
    send_plain(&mut net, 1, 0, &piece(7, total, 1, gossip, &body[1..half + 1])); // overlap
    send_plain(&mut net, 1, 0, &piece(7, total + 1, half as u32, gossip, &body[half..])); // other length
    send_plain(&mut net, 1, 0, &piece(7, total, half as u32, Kind::Ipam as u8, &body[half..])); // other kind
    assert_eq!(bad(&mut net), before + 4);
    send_plain(&mut net, 1, 0, &piece(7, total, half as u32, gossip, &body[half..]));
    assert_eq!(net.node(0).reassembly.len(), 0, "whole");
    let key1 = net.key(1);
    assert!(net.node(0).record(&key1).is_some_and(|r| r.version == own_version(&body)), "merged");

    // Control pieces through a relay are refused (control is direct only),
    // even sealed end to end by their real source; garbage that
    // reassembles is a counted bad gossip message.
    let relayed = relay::sealed_by(&mut net, 1, 1, 0, &piece(8, 3000, 0, gossip, &[0; 1000]));
    let before = bad(&mut net);
    send_plain(&mut net, 1, 0, &relayed);
    assert_eq!(bad(&mut net), before + 1);
    assert_eq!(net.node(0).drops().get(DropReason::RelayForged), 0, "it did open");
    let garbage = vec![0xffu8; 3000];
    send_plain(&mut net, 1, 0, &piece(9, 3000, 0, gossip, &garbage[..1500]));
    send_plain(&mut net, 1, 0, &piece(9, 3000, 1500, gossip, &garbage[1500..]));
    assert_eq!(net.node(0).drops().get(DropReason::BadGossip), 1);

    // A flood of messages that never complete, each claiming the largest
    // length: a peer holds at most 4 control messages in reassembly...
    let incomplete = net.node(0).drops().get(DropReason::Incomplete);
    for id in 100..400 {
        send_plain(&mut net, 1, 0, &piece(id, offload::MAX_MESSAGE as u32, 0, gossip, &[0; offload::MIN_PIECE]));
    }
    assert_eq!(net.node(0).reassembly.len(), 4);
    assert_eq!(net.node(0).drops().get(DropReason::Incomplete), incomplete + 296, "each eviction counted");
    // ...and all peers together at most MAX_PARTIAL_TOTAL (fake sources
    // and relays: on_fragment trusts its caller for who sent it).
    let now = net.now;
    let mut out = Out::default();
    for k in 0..1000u32 {
        let src = StaticKeypair::generate().public;
        let p = piece(k, offload::MAX_MESSAGE as u32, 0, Kind::Frame as u8, &[0; offload::MIN_PIECE]);
        net.node(0).on_fragment(now, src, src, &p[1..], false, &mut out);
    }
    let r = &net.node(0).reassembly;
    assert_eq!(r.len(), offload::MAX_PARTIAL_TOTAL);
    assert!(r.bytes() <= offload::MAX_PARTIAL_TOTAL * offload::MAX_MESSAGE);
    assert!(out.sent.is_empty() && out.delivered.is_empty() && out.offloaded.is_empty());
    // Everything left times out, counted, and the link still works.
    net.run(Duration::from_secs(2));
    assert_eq!(net.node(0).reassembly.len(), 0);
    net.send_frame(1, BROADCAST, 1);
    assert_eq!(net.markers(0), vec![1]);
    assert_eq!(net.state(0, 1), Some(PeerState::Connected));
}

fn own_version(body: &[u8]) -> u64 {
    let Some(crate::gossip::sync::Message::Records(r)) = crate::gossip::sync::Message::decode(body) else {
        panic!("a records message")
    };
    crate::gossip::SignedRecord::peek(&r[0]).unwrap().version
}

#[test]
fn any_control_message_too_big_for_a_datagram_goes_in_pieces() {
    use crate::wire::Kind;
    let mut net = Net::new(2);
    net.mtu = Some(1500);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    // A large IPAM-kind message (an odd one: it does not decode) arrives whole.
    let (to, now) = (net.key(0), net.now);
    let mut out = Out::default();
    net.node(1).send_control(now, to, Kind::Ipam, &vec![0xee; 5000], &mut out);
    assert!(out.sent.len() >= 4, "{} datagrams", out.sent.len());
    assert!(out.sent.iter().all(|(_, d)| d.len() + 28 <= 1500));
    net.collect(1, out);
    net.settle();
    assert_eq!(net.too_big, 0);
    assert_eq!(net.node(0).reassembly.len(), 0, "reassembled...");
    assert_eq!(net.node(0).drops().get(DropReason::BadPayload), 1, "...and handed to IPAM, which refused it");
    // Larger than any message may be: refused at the sender, counted.
    let mut out = Out::default();
    net.node(1).send_control(now, to, Kind::Gossip, &vec![0; 70_000], &mut out);
    assert!(out.sent.is_empty());
    assert_eq!(net.node(1).drops().get(DropReason::Oversize), 1);
}
