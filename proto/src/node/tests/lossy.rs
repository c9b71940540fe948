//! Lossy paths (issue 14) on the simulated underlay: a peer a local TCP
//! sender retransmits to gets super-frames as plain segments (direct or
//! relayed) while other peers still get them whole, until the mark expires;
//! the receiver joins the segments into super-frames again, around a lost
//! one.

use super::*;
use crate::fec::GROUP;
use etherparse::{SlicedPacket, TransportSlice};
use weavers_api::SegmentationCounts;

/// Payload bytes per segment: a full overlay MTU of IPv4 and TCP without options.
pub(super) const MSS: usize = 1374 - 40;

/// A TCP/IPv4 super-frame from node i's member to node j's, with its
/// virtio-net header: `len` bytes of data from `seq`, port `port`.
pub(super) fn tcp_super(
    i: usize,
    j: usize,
    port: u16,
    seq: u32,
    len: usize,
) -> ([u8; crate::vnet::VNET_HDR_LEN], Vec<u8>) {
    let mut f = Vec::with_capacity(54 + len);
    f.extend_from_slice(&mac_of(j));
    f.extend_from_slice(&mac_of(i));
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    f.extend_from_slice(&((40 + len) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&host_ip(i));
    f.extend_from_slice(&host_ip(j));
    f.extend_from_slice(&port.to_be_bytes());
    f.extend_from_slice(&5201u16.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend((0..len).map(|n| (n % 253) as u8));
    // Valid checksums, as a local kernel's frame (a super-frame's TCP
    // checksum would be partial; the segmenter does not read it).
    use crate::segment::{fold, sum};
    let ip = !fold(sum(&f[14..34], 0));
    f[24..26].copy_from_slice(&ip.to_be_bytes());
    let tcp = !fold(sum(&f[34..], sum(&f[26..34], (20 + len) as u64 + 6)));
    f[50..52].copy_from_slice(&tcp.to_be_bytes());
    let mut h = [0u8; crate::vnet::VNET_HDR_LEN];
    h[0] = crate::vnet::F_NEEDS_CSUM;
    h[1] = crate::vnet::GSO_TCPV4;
    h[2..4].copy_from_slice(&54u16.to_ne_bytes());
    h[4..6].copy_from_slice(&(MSS as u16).to_ne_bytes());
    h[6..8].copy_from_slice(&34u16.to_ne_bytes());
    h[8..10].copy_from_slice(&16u16.to_ne_bytes());
    (h, f)
}

/// Hands node i a super-frame as read from its TAP, and runs the underlay.
pub(super) fn send_super(net: &mut Net, i: usize, h: &[u8; crate::vnet::VNET_HDR_LEN], f: &[u8]) -> Vec<usize> {
    let now = net.now;
    let mut out = Out::default();
    net.node(i).handle_offloaded_frame(now, h, f, &mut out);
    net.node(i).flush(&mut out);
    let sizes = out.sent.iter().map(|(_, d)| d.len()).collect();
    net.collect(i, out);
    net.settle();
    sizes
}

/// The payload of a TCP/IPv4 super-frame `f` (no TCP options), checking
/// its IP header checksum.
pub(super) fn payload(f: &[u8]) -> &[u8] {
    let h = etherparse::Ipv4HeaderSlice::from_slice(&f[14..]).unwrap();
    assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
    &f[54..]
}

/// The TCP payload of the plain TCP frames delivered to node j, in order,
/// each checked (IP and TCP checksums, contiguous sequence numbers).
fn tcp_delivered(net: &Net, j: usize) -> (usize, Vec<u8>) {
    let mut data = Vec::new();
    let mut next = None;
    let mut n = 0;
    for f in &net.delivered[j] {
        let Ok(p) = SlicedPacket::from_ethernet(f) else { continue };
        let (Some(etherparse::NetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(tcp))) = (&p.net, &p.transport) else {
            continue;
        };
        let h = ip.header();
        assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
        assert_eq!(tcp.calc_checksum_ipv4(h.source(), h.destination()).unwrap(), tcp.checksum());
        if let Some(s) = next {
            assert_eq!(tcp.sequence_number(), s, "contiguous");
        }
        next = Some(tcp.sequence_number().wrapping_add(tcp.payload().len() as u32));
        data.extend_from_slice(tcp.payload());
        n += 1;
    }
    (n, data)
}

pub(super) fn mesh_knowing_macs(blocked: bool) -> Net {
    let mut net = Net::new(3);
    if blocked {
        net.blocked.insert((0, 2));
        net.bootstrap(0, 1);
        net.bootstrap(2, 1);
    } else {
        net.bootstrap(1, 0);
        net.bootstrap(2, 0);
    }
    net.run(Duration::from_secs(5));
    for j in [1, 2] {
        net.send_frame(j, BROADCAST, 100 + j as u32);
    }
    net
}

#[test]
fn a_retransmission_makes_its_peer_get_segments_while_others_get_super_frames() {
    let mut net = mesh_knowing_macs(false);
    let (h, f) = tcp_super(0, 1, 40_000, 1000, 30_000);
    send_super(&mut net, 0, &h, &f);
    assert_eq!(net.offloaded[1], vec![(h, f.clone())], "whole while nothing was resent");
    let now = net.now;
    assert_eq!(net.node(0).segmentation(now), SegmentationCounts::default());

    // The same data again: a retransmission. It, and what follows, go in
    // segments, which the receiver joins into super-frames again.
    let sizes = send_super(&mut net, 0, &h, &f);
    let segs = 30_000usize.div_ceil(MSS);
    assert_eq!(sizes.len(), segs + segs.div_ceil(GROUP), "one datagram per full segment, a parity per GROUP");
    assert!(sizes.iter().all(|&d| d + 28 <= 1500), "every datagram fits the underlay, parity too");
    assert_eq!(net.offloaded[1].len(), 2);
    assert_eq!(net.offloaded[1][1].0, h, "the same segment size and offsets");
    assert_eq!(payload(&net.offloaded[1][1].1), &f[54..]);
    assert_eq!(tcp_delivered(&net, 1).0, 0, "no segment delivered alone");
    let (h2, f2) = tcp_super(0, 1, 40_000, 31_000, 20_000);
    send_super(&mut net, 0, &h2, &f2);
    assert_eq!(payload(&net.offloaded[1][2].1), &f2[54..]);

    // Another peer's flow still travels whole.
    let (h3, f3) = tcp_super(0, 2, 40_001, 5, 30_000);
    send_super(&mut net, 0, &h3, &f3);
    assert_eq!(net.offloaded[2], vec![(h3, f3)]);
    assert_eq!(tcp_delivered(&net, 2).0, 0);

    let now = net.now;
    let c = net.node(0).segmentation(now);
    assert_eq!((c.retransmissions_seen, c.superframes_segmented, c.peers_lossy), (1, 2, 1));
    let segs2 = 20_000usize.div_ceil(MSS);
    assert_eq!(c.segments_sent, (segs + segs2) as u64);
    let r = net.node(1).segmentation(now);
    assert_eq!((r.superframes_joined, r.segments_joined), (2, (segs + segs2) as u64));

    // Two datagrams lost from one parity group cost their segments only:
    // the rest arrive as two super-frames. (Segment i is sent i th: the
    // parities follow the batch's data.)
    let (h5, f5) = tcp_super(0, 1, 40_000, 51_000, 30_000);
    let mut out = Out::default();
    net.node(0).handle_offloaded_frame(now, &h5, &f5, &mut out);
    net.node(0).flush(&mut out);
    assert_eq!(4 / GROUP, 5 / GROUP, "segments 4 and 5 share a group");
    assert!(out.sent.len() > 30_000 / MSS + 30_000 / MSS / GROUP, "data and parities sent");
    out.sent.remove(5);
    out.sent.remove(4);
    net.collect(0, out);
    net.settle();
    let got = &net.offloaded[1][3..];
    assert_eq!(got.len(), 2);
    assert_eq!(payload(&got[0].1), &f5[54..54 + 4 * MSS]);
    assert_eq!(payload(&got[1].1), &f5[54 + 6 * MSS..]);
    let r = net.node(1).segmentation(now);
    assert_eq!((r.datagrams_repaired, r.repairs_failed), (0, 1));

    // The mark expires: super-frames to the peer travel whole again.
    net.run(crate::node::lossy::LOSSY_FOR + Duration::from_secs(1));
    let now = net.now;
    assert_eq!(net.node(0).segmentation(now).peers_lossy, 0);
    let (h4, f4) = tcp_super(0, 1, 40_000, 81_000, 20_000);
    send_super(&mut net, 0, &h4, &f4);
    assert_eq!(net.offloaded[1].last(), Some(&(h4, f4)));
    assert_eq!(net.node(0).segmentation(now).superframes_segmented, 3);
}

#[test]
fn segments_share_datagrams_with_other_frames_and_cross_relays() {
    let mut net = mesh_knowing_macs(true);
    assert_eq!(net.state(0, 2), Some(PeerState::Relayed));
    let (h, f) = tcp_super(0, 2, 7, 0, 10_000);
    send_super(&mut net, 0, &h, &f);
    assert_eq!(net.offloaded[2].len(), 1, "whole through the relay");
    // A retransmission as a plain frame (one segment) marks the path lossy too.
    let (_, one) = tcp_super(0, 2, 7, 9000, 1000);
    net.inject(0, &one);
    let (h, f) = tcp_super(0, 2, 7, 10_000, 10_000);
    let sizes = send_super(&mut net, 0, &h, &f);
    assert_eq!(sizes.len(), 10_000usize.div_ceil(MSS), "segments, each wrapped for the relay");
    let (n, data) = tcp_delivered(&net, 2);
    assert_eq!((n, &data[..]), (1, &one[54..]), "the resent frame, alone");
    assert_eq!(net.offloaded[2].len(), 2, "the segments, joined again");
    assert_eq!(payload(&net.offloaded[2][1].1), &f[54..]);
    assert!(tcp_delivered(&net, 1).0 == 0 && net.offloaded[1].is_empty(), "the relay delivers none of it");

    // Small frames queued for a lossy direct peer travel with its segments.
    let mut net = mesh_knowing_macs(false);
    let (h, f) = tcp_super(0, 1, 9, 0, 4000);
    send_super(&mut net, 0, &h, &f);
    send_super(&mut net, 0, &h, &f);
    let before = net.data_datagrams(0, 1);
    let now = net.now;
    let mut out = Out::default();
    let (h, f) = tcp_super(0, 1, 9, 4000, 2 * MSS + 100);
    net.node(0).handle_offloaded_frame(now, &h, &f, &mut out);
    let (_, ack) = tcp_super(0, 1, 10, 0, 0);
    net.node(0).handle_frame(now, &ack, &mut out);
    net.node(0).flush(&mut out);
    net.collect(0, out);
    net.settle();
    assert_eq!(
        net.data_datagrams(0, 1) - before,
        3 + 1,
        "the ACK rides with the last segment; one parity for the three"
    );
}

#[test]
fn super_frames_that_cannot_be_cut_travel_whole() {
    let mut net = mesh_knowing_macs(false);
    let (h, f) = tcp_super(0, 1, 3, 0, 8000);
    send_super(&mut net, 0, &h, &f);
    send_super(&mut net, 0, &h, &f);
    let now = net.now;
    assert_eq!(net.node(0).segmentation(now).peers_lossy, 1);
    // Segments larger than the overlay MTU, or a UDP "super-frame": sent whole.
    let mut big = h;
    big[4..6].copy_from_slice(&1360u16.to_ne_bytes());
    let mut udp = f.clone();
    udp[23] = 17;
    let offloaded = net.offloaded[1].len();
    send_super(&mut net, 0, &big, &f);
    send_super(&mut net, 0, &h, &udp);
    assert_eq!(net.offloaded[1].len(), offloaded + 2);
    assert_eq!(net.node(0).segmentation(now).superframes_segmented, 1);
}
