//! Tables fed from outside stay bounded whatever a rogue peer or local
//! member sends, each limit counted; and what a peer says to the local
//! kernel (virtio-net headers) is checked. On the simulated underlay.

use super::*;
use crate::gossip::record::{PeerRecord, SignedRecord, MAX_RECORD_LEN};
use crate::gossip::sync::Message;
use crate::mac::MAX_MACS;
use crate::wire::Kind;

/// A mesh of `n` connected hosts.
fn mesh(n: usize) -> Net {
    let mut net = Net::new(n);
    for i in 1..n {
        net.bootstrap(i, 0);
    }
    net.run(Duration::from_secs(3));
    assert!(net.all_connected());
    net
}

/// A bundle (kind byte, then length-prefixed frames) of Ethernet headers
/// alone, each from a new source MAC numbered from `first`.
fn mac_flood_bundle(first: u32, count: u32) -> Vec<u8> {
    let mut b = vec![Kind::Frame as u8];
    for n in first..first + count {
        let s = n.to_be_bytes();
        let mut f = [0u8; 14];
        f[0..6].copy_from_slice(&[2, 0xee, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[2, 0xaa, s[0], s[1], s[2], s[3]]);
        f[12..14].copy_from_slice(&[0x88, 0xb6]);
        assert!(crate::wire::push_bundled(&mut b, &f));
    }
    b
}

#[test]
fn a_peer_teaching_100000_macs_fills_the_table_only_with_its_own() {
    let mut net = mesh(3);
    // h2's member is known at h1 before the flood.
    net.send_frame(1, BROADCAST, 1);
    let (k1, k2) = (net.key(1), net.key(2));
    let now = net.now;
    assert_eq!(net.node(0).macs.lookup(&mac_of(1), now), Some(k1));
    // h3 is the rogue: 1250 datagrams of 80 made-up source MACs each.
    for d in 0..1250u32 {
        send_plain(&mut net, 2, 0, &mac_flood_bundle(d * 80, 80));
    }
    let n = net.node(0);
    assert_eq!(n.macs.len(), MAX_MACS);
    assert_eq!(n.macs.held_by(&k2), MAX_MACS - 1);
    assert_eq!(n.drops().get(DropReason::MacEvicted), 100_000 - (MAX_MACS as u64 - 1));
    let now = net.now;
    assert_eq!(net.node(0).macs.lookup(&mac_of(1), now), Some(k1), "the honest peer's member stays known");
    // So a frame to it still goes to h2 alone.
    let before = net.data_datagrams(0, 2);
    net.send_frame(0, mac_of(1), 2);
    assert_eq!(net.markers(1), vec![2]);
    assert_eq!(net.data_datagrams(0, 2), before, "not flooded to h3");
}

/// An IGMPv3 group record: its type, group and sources.
type V3Record = (u8, [u8; 4], Vec<[u8; 4]>);

/// An IGMPv3 report from node i's member with these records.
fn report(i: usize, records: &[V3Record]) -> Vec<u8> {
    let mut m = vec![0x22, 0, 0, 0, 0, 0];
    m.extend_from_slice(&(records.len() as u16).to_be_bytes());
    for (kind, group, sources) in records {
        m.extend_from_slice(&[*kind, 0]);
        m.extend_from_slice(&(sources.len() as u16).to_be_bytes());
        m.extend_from_slice(group);
        for s in sources {
            m.extend_from_slice(s);
        }
    }
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4_frame(mac_of(i), host_ip(i), [224, 0, 0, 22], 2, &m)
}

const MODE_IS_INCLUDE: u8 = 1;
const MODE_IS_EXCLUDE: u8 = 2;

fn group(n: u32) -> [u8; 4] {
    [239, 3, (n >> 8) as u8, n as u8]
}

#[test]
fn a_host_whose_members_want_too_much_still_publishes_a_record_peers_take() {
    let mut net = mesh(2);
    // One member wants 60 groups from 300 sources each (over the limit of
    // a filter) or 250 (within it, but together far over a record's size)...
    for n in 0..60u32 {
        let count = if n < 10 { 300 } else { 250 };
        let sources: Vec<[u8; 4]> = (0..count).map(|s: u32| [10, 50, (s >> 8) as u8, s as u8]).collect();
        net.inject(0, &report(0, &[(MODE_IS_INCLUDE, group(n), sources)]));
    }
    // ...another 5,000 more groups (any source), 150 a report.
    for chunk in (100..5100u32).collect::<Vec<_>>().chunks(150) {
        let recs: Vec<_> = chunk.iter().map(|n| (MODE_IS_EXCLUDE, group(*n), vec![])).collect();
        let mut f = report(0, &recs);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0x99, 0x99]);
        net.inject(0, &f);
    }
    net.run(Duration::from_secs(2));
    let k0 = net.key(0);
    let published = net.node(0).published().clone();
    assert!(published.is_valid());
    assert!(SignedRecord::sign(&published, &net.node(0).cfg.keypair).len() <= MAX_RECORD_LEN);
    let limited = net.node(0).drops().get(DropReason::GroupLimit);
    // 964 groups refused, 10 source lists over the limit, and the lists
    // widened to make the record fit.
    assert!(limited > 964 + 10, "{limited}");
    let included = published.groups.iter().filter(|g| !g.sources.is_empty()).count();
    assert!(included > 0 && included < 50, "the longest lists widened, not all: {included} kept");
    // The peer took the record: every group it carries, none refused.
    let theirs = net.node(1).record(&k0).expect("h1's record at h2").clone();
    assert_eq!(theirs, published);
    assert_eq!(theirs.groups.len(), crate::groups::MAX_GROUPS);
    assert_eq!(net.node(1).drops().get(DropReason::BadGossip), 0);
    // A group whose source list was widened still gets its traffic (from
    // a source it did not list, even: more, never less).
    net.inject(1, &udp_to_group(1, group(3), 77));
    assert_eq!(net.group_markers(0, group(3)), vec![77]);
    // Publishing again without a change counts nothing more.
    net.run(Duration::from_secs(2));
    assert_eq!(net.node(0).drops().get(DropReason::GroupLimit), limited);
}

#[test]
fn one_bad_record_does_not_poison_the_others_in_a_message() {
    let mut net = mesh(3);
    let (k1, k2) = (net.key(1), net.key(2));
    let version = net.node(2).published().version + 1000;
    let keypair = net.node(2).cfg.keypair.clone();
    // A record over the limits (signed by its author: only the limits are
    // wrong), garbage, and a good record, in one message.
    let mut over = PeerRecord::new(k2, version + 1, "h3-over");
    over.unreachable = (0..100).collect();
    let mut good = PeerRecord::new(k2, version, "h3-good");
    good.endpoints = net.node(2).published().endpoints.clone();
    let msg = Message::Records(vec![
        SignedRecord::sign(&over, &keypair).as_bytes().to_vec(),
        vec![0xde, 0xad],
        SignedRecord::sign(&good, &keypair).as_bytes().to_vec(),
    ])
    .encode();
    let now = net.now;
    let mut out = Out::default();
    net.node(2).send_control(now, k1, Kind::Gossip, &msg, &mut out);
    net.collect(2, out);
    net.settle();
    assert_eq!(net.node(1).drops().get(DropReason::BadGossip), 2);
    assert_eq!(net.node(1).record(&k2).map(|r| r.name.as_str()), Some("h3-good"));
}

/// A TCP/IPv4 super-frame of `len` bytes from node i's member to node j's.
fn tcp_frame(i: usize, j: usize, len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|n| (n % 241) as u8).collect();
    f[0..6].copy_from_slice(&mac_of(j));
    f[6..12].copy_from_slice(&mac_of(i));
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

/// A virtio-net header.
fn vnet(flags: u8, gso_type: u8, hdr_len: u16, gso_size: u16, csum_start: u16, csum_offset: u16) -> [u8; 10] {
    let mut h = [0u8; 10];
    h[0] = flags;
    h[1] = gso_type;
    h[2..4].copy_from_slice(&hdr_len.to_ne_bytes());
    h[4..6].copy_from_slice(&gso_size.to_ne_bytes());
    h[6..8].copy_from_slice(&csum_start.to_ne_bytes());
    h[8..10].copy_from_slice(&csum_offset.to_ne_bytes());
    h
}

/// Node `from` sends `frame` with `hdr` as a super-frame (as its TAP would
/// hand it over; a rogue host chooses any header).
fn send_super(net: &mut Net, from: usize, hdr: &[u8; 10], frame: &[u8]) {
    let now = net.now;
    let mut out = Out::default();
    net.node(from).handle_offloaded_frame(now, hdr, frame, &mut out);
    net.collect(from, out);
    net.settle();
}

#[test]
fn only_sane_tcp_segmentation_headers_reach_the_kernel() {
    let mut net = mesh(2);
    net.send_frame(0, BROADCAST, 1); // h2 learns where h1's member is
    let mtu = net.node(0).overlay_mtu() as u16;
    let bad_offload = |net: &mut Net| net.node(0).drops().get(DropReason::BadOffload);

    // Sane: TCPv4 segmentation, segments within the MTU.
    let good = vnet(1, 1, 54, mtu - 40, 34, 16);
    let big = tcp_frame(1, 0, 30_000);
    send_super(&mut net, 1, &good, &big);
    assert_eq!(net.offloaded[0], vec![(good, big.clone())]);

    // Bogus headers on a big frame: never written with their header, dropped, counted.
    let bogus = [
        vnet(1, 3, 54, 1000, 34, 16),     // UDP fragmentation offload
        vnet(1, 5, 54, 1000, 34, 16),     // UDP segmentation
        vnet(1, 0x7f, 54, 1000, 34, 16),  // no such type
        vnet(1, 1, 54, 0, 34, 16),        // segments of 0 bytes
        vnet(1, 1, 54, 9000, 34, 16),     // segments over the MTU
        vnet(1, 1, 60_000, 1000, 34, 16), // headers longer than the frame
        vnet(1, 1, 54, 1000, 29_990, 16), // checksum past the end
        vnet(1, 1, 54, 1000, 34, 40_000), // checksum offset past the end
        vnet(0, 1, 54, 1000, 34, 16),     // segmentation without a partial checksum
        vnet(0xff, 1, 54, 1000, 34, 16),  // unknown flags
        vnet(1, 4, 54, 1000, 54, 16),     // TCPv6 on an IPv4 frame
        vnet(1, 0, 0, 0, 0, 0),           // no offload, too big for the MTU
    ];
    for (n, h) in bogus.iter().enumerate() {
        send_super(&mut net, 1, h, &big);
        assert_eq!(bad_offload(&mut net), n as u64 + 1, "header {n} counted");
    }
    assert_eq!(net.offloaded[0].len(), 1, "none of them written");
    let delivered = net.delivered[0].len();

    // A small frame with a bogus header: its checksum completed, delivered plain.
    let mut small = tcp_frame(1, 0, 300);
    small[34 + 16..34 + 18].copy_from_slice(&[0, 0]);
    send_super(&mut net, 1, &vnet(1, 3, 54, 1000, 34, 16), &small);
    assert_eq!(bad_offload(&mut net), bogus.len() as u64 + 1);
    assert_eq!(net.delivered[0].len(), delivered + 1);
    let plain = net.delivered[0].last().unwrap().clone();
    assert_eq!(plain[..34 + 16], small[..34 + 16]);
    assert_eq!(checksum(&plain[34..]), 0, "the checksum verifies");
    // One whose checksum offsets do not fit is dropped.
    send_super(&mut net, 1, &vnet(1, 3, 54, 1000, 299, 16), &small);
    assert_eq!(net.delivered[0].len(), delivered + 1);
    assert_eq!(bad_offload(&mut net), bogus.len() as u64 + 2);
    assert_eq!(net.offloaded[0].len(), 1);
}

#[test]
fn a_full_gossip_table_is_counted() {
    let mut net = mesh(2);
    let before = net.node(0).gossip.stats().table_full;
    assert_eq!(before, 0);
    // Fill h1's table with made-up hosts (checked records cost a signature
    // each; the table's limit is what matters here).
    let now = net.now;
    let n = net.node(0);
    n.gossip.skip_signature_checks();
    let mut records = Vec::new();
    for i in 0..crate::gossip::table::MAX_HOSTS as u32 + 10 {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_be_bytes());
        k[31] = 0x77;
        let kp_like = PeerRecord::new(PublicKey(k), 1_700_000_000_000, "x");
        let mut bytes = vec![0u8; 96];
        bytes.extend_from_slice(&postcard::to_allocvec(&kp_like).unwrap());
        records.push(bytes);
    }
    let k1 = net.key(1);
    for chunk in records.chunks(10) {
        let body = Message::Records(chunk.to_vec()).encode();
        let mut out = Out::default();
        net.node(0).on_gossip(now, k1, &body, &mut out);
    }
    let full = net.node(0).drops().get(DropReason::GossipTableFull);
    // The table held h1 and h2 already.
    assert_eq!(full, crate::gossip::table::MAX_HOSTS as u64 + 10 - (crate::gossip::table::MAX_HOSTS as u64 - 2));
    assert_eq!(net.node(0).gossip.table().entries().count(), crate::gossip::table::MAX_HOSTS);
}

#[test]
fn the_peer_table_is_bounded_and_peers_with_records_stay() {
    let mut net = mesh(2);
    let now = net.now;
    for i in 0..5000u32 {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_be_bytes());
        k[31] = 0x55;
        let known = KnownPeer {
            key: PublicKey(k),
            endpoint: SocketAddr::from(([10, 9, (i >> 8) as u8, i as u8], 6783)),
            name: format!("stranger{i}"),
            last_handshake: 0,
        };
        net.node(0).add_known_peer(&known, now);
    }
    assert_eq!(net.node(0).peers.len(), MAX_PEERS);
    assert_eq!(net.node(0).drops().get(DropReason::PeerEvicted), 5001 - MAX_PEERS as u64);
    assert_eq!(net.state(0, 1), Some(PeerState::Connected), "the peer with a record stays");
}
