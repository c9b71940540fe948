//! Parity to lossy peers (issue 14, `crate::fec`) on the simulated
//! underlay: a datagram lost from a group is rebuilt and its segment
//! delivered; under 5% random loss far fewer segments stay lost.

use super::lossy::{mesh_knowing_macs, send_super, tcp_super, MSS};
use super::*;
use crate::fec::GROUP;
use std::collections::BTreeMap;

/// The TCP payloads delivered to node j from sequence number `from` on
/// (whole frames and joined super-frames), by sequence number; panics on
/// one delivered twice.
fn bytes_by_seq(net: &Net, j: usize, from: u32) -> BTreeMap<u32, Vec<u8>> {
    let mut got = BTreeMap::new();
    let frames = net.delivered[j].iter().chain(net.offloaded[j].iter().map(|(_, f)| f));
    for f in frames {
        if f.len() < 54 || f[12..14] != [0x08, 0x00] || f[23] != 6 {
            continue;
        }
        let seq = u32::from_be_bytes(f[38..42].try_into().unwrap());
        if seq < from {
            continue;
        }
        assert!(got.insert(seq, f[54..].to_vec()).is_none(), "delivered twice: {seq}");
    }
    got
}

/// Node 0 retransmits to node 1: the path counts as lossy from then on.
fn lossy_mesh() -> Net {
    let mut net = mesh_knowing_macs(false);
    let (h, f) = tcp_super(0, 1, 40_000, 0, 1000);
    send_super(&mut net, 0, &h, &f);
    send_super(&mut net, 0, &h, &f);
    let now = net.now;
    assert_eq!(net.node(0).segmentation(now).peers_lossy, 1);
    net
}

#[test]
fn a_datagram_lost_from_a_group_is_rebuilt_and_its_segment_delivered() {
    let mut net = lossy_mesh();
    let (h, f) = tcp_super(0, 1, 40_000, 1000, 30_000);
    let now = net.now;
    let mut out = Out::default();
    net.node(0).handle_offloaded_frame(now, &h, &f, &mut out);
    net.node(0).flush(&mut out);
    // The batch's data first, in one run of equal sizes (one segmentation
    // send), then a parity per group (larger: its head and the XOR).
    let segs = 30_000usize.div_ceil(MSS);
    assert_eq!(out.sent.len(), segs + segs.div_ceil(GROUP));
    let size = out.sent[0].1.len();
    assert!(out.sent[..segs - 1].iter().all(|(_, d)| d.len() == size));
    assert!(out.sent[segs..].iter().all(|(_, d)| d.len() > size));
    out.sent.remove(4);
    net.collect(0, out);
    net.settle();
    let got = bytes_by_seq(&net, 1, 1000);
    let data: Vec<u8> = got.range(1000..).flat_map(|(_, b)| b.iter().copied()).collect();
    assert_eq!(data, f[54..], "every byte, once");
    let (s, r) = (net.node(0).segmentation(now), net.node(1).segmentation(now));
    assert_eq!(s.parity_sent, r.parity_received);
    assert_eq!((r.datagrams_repaired, r.repairs_failed), (1, 0));
    assert_eq!(net.node(1).drops().get(DropReason::BadPayload), 0);
}

#[test]
fn under_five_percent_loss_parity_leaves_a_fraction_of_the_losses() {
    let mut net = lossy_mesh();
    net.loss = 0.05;
    let (frames, len) = (200u32, 30_000u32);
    for k in 0..frames {
        let (h, f) = tcp_super(0, 1, 40_000, 1000 + k * len, len as usize);
        send_super(&mut net, 0, &h, &f);
    }
    let got: usize = bytes_by_seq(&net, 1, 1000).range(1000..).map(|(_, b)| b.len()).sum();
    let segments = (frames * len.div_ceil(MSS as u32)) as f64;
    let missing = ((frames * len) as usize - got).div_ceil(MSS) as f64;
    let now = net.now;
    let r = net.node(1).segmentation(now);
    // 5% of ~4,600 datagrams lost (~230); a loss stays only when another of
    // its group or its parity is lost too: ~1.7% of segments (sd 0.2%).
    assert!(missing / segments < 0.028, "{missing} of {segments} segments missing");
    assert!(r.datagrams_repaired >= 80, "{r:?}");
    assert!(r.repairs_failed > 0, "some groups lost two: {r:?}");
}

#[test]
fn peers_that_lose_nothing_get_no_parity() {
    let mut net = mesh_knowing_macs(false);
    for k in 0..3u32 {
        let (h, f) = tcp_super(0, 1, 40_000, k * 30_000, 30_000);
        send_super(&mut net, 0, &h, &f);
        net.send_frame(0, BROADCAST, 7 + k);
    }
    let now = net.now;
    assert_eq!(net.node(0).segmentation(now).parity_sent, 0);
    assert_eq!(net.node(1).segmentation(now).parity_received, 0);
}
