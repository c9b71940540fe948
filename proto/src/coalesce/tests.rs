//! Segments cut by `segment` come back as the super-frame they were cut
//! from, also when some arrive late; gaps, other flows and odd frames end
//! a super-frame without losing or reordering anything.

use super::*;
use crate::segment::tests::{super_frame, MAX};
use crate::segment::Segments;
use crate::vnet::VnetHdr;
use proptest::prelude::*;

/// The segments of a super-frame.
fn cut(hdr: &VnetHdr, f: &[u8]) -> Vec<Vec<u8>> {
    let mut s = Segments::new(hdr, f, MAX).unwrap();
    let mut out = vec![0u8; MAX];
    std::iter::from_fn(|| s.next_into(&mut out).map(|n| out[..n].to_vec())).collect()
}

/// What a node does with each frame, and what reached the TAP.
fn feed(c: &mut Coalescer, frames: &[Vec<u8>]) -> Vec<(Option<[u8; VNET_HDR_LEN]>, Vec<u8>)> {
    let mut out = Vec::new();
    for f in frames {
        if c.offer(f) {
            continue;
        }
        c.flush(|h, b| out.push((h.copied(), b.to_vec())));
        if !c.offer(f) {
            out.push((None, f.clone()));
        }
    }
    c.flush(|h, b| out.push((h.copied(), b.to_vec())));
    out
}

/// `f` with its IPv4 header checksum zeroed (the test frames carry none).
fn no_ip_csum(mut f: Vec<u8>, l3: usize) -> Vec<u8> {
    f[l3 + 10..l3 + 12].fill(0);
    f
}

#[test]
fn segments_become_the_super_frame_again() {
    for (v6, vlan) in [(false, false), (true, false), (false, true), (true, true)] {
        let (hdr, f) = super_frame(v6, vlan, 40_000, 0x18, 1300);
        let out = feed(&mut Coalescer::default(), &cut(&hdr, &f));
        assert_eq!(out.len(), 1, "one super-frame");
        let (h, got) = &out[0];
        let h = VnetHdr::parse(h.as_ref().expect("with its header"));
        assert_eq!(
            (h.gso_type, h.gso_size, h.csum_start, h.csum_offset, h.hdr_len),
            (hdr.gso_type, 1300, hdr.csum_start, 16, hdr.hdr_len)
        );
        assert_eq!(h.flags, F_NEEDS_CSUM);
        let l3 = if vlan { 18 } else { 14 };
        if v6 {
            assert_eq!(got, &f, "IPv6: byte for byte");
        } else {
            // The IPv4 checksum is computed; the test frame had none.
            let l = layout(got).unwrap();
            assert_eq!(!fold(sum(&got[l.l3..l.l4], 0)), 0, "IPv4 header checksum verifies");
            assert_eq!(no_ip_csum(got.clone(), l3), no_ip_csum(f.clone(), l3));
        }
    }
}

#[test]
fn a_gap_ends_a_super_frame_and_the_rest_makes_the_next() {
    let (hdr, f) = super_frame(false, false, 30_000, 0x18, 1000);
    let mut segs = cut(&hdr, &f);
    segs.remove(10);
    let mut c = Coalescer::default();
    let out = feed(&mut c, &segs);
    assert_eq!(out.len(), 2);
    let sizes: Vec<usize> = out.iter().map(|(_, b)| b.len() - 66).collect();
    assert_eq!(sizes, vec![10_000, 19_000]);
    assert!(out.iter().all(|(h, _)| h.is_some()));
    assert_eq!((c.joined, c.joined_segments), (2, 29));
    // The payloads are the original's, around the gap.
    assert_eq!(&out[0].1[66..], &f[66..10_066]);
    assert_eq!(&out[1].1[66..], &f[11_066..]);
}

#[test]
fn other_frames_are_delivered_in_order_and_lone_segments_as_they_came() {
    let (hdr, f) = super_frame(false, false, 5000, 0x18, 1000);
    let segs = cut(&hdr, &f);
    let (hdr2, g) = super_frame(true, false, 2000, 0x18, 1000);
    let other = cut(&hdr2, &g);
    // A frame of another flow between two segments, a non-TCP frame, a pure ACK.
    let arp = vec![0xffu8; 60];
    let (_, ack) = super_frame(false, false, 0, 0x10, 1000);
    let frames = vec![segs[0].clone(), segs[1].clone(), other[0].clone(), segs[2].clone(), arp.clone(), ack.clone()];
    let out = feed(&mut Coalescer::default(), &frames);
    let kinds: Vec<(bool, usize)> = out.iter().map(|(h, b)| (h.is_some(), b.len())).collect();
    assert_eq!(
        kinds,
        vec![(true, 66 + 2000), (false, other[0].len()), (false, segs[2].len()), (false, 60), (false, ack.len())]
    );
    assert_eq!(out[2].1, segs[2], "a lone segment exactly as it came");
    // PSH ends a super-frame: nothing joins after it.
    let (hdr, f) = super_frame(false, false, 3000, 0x18, 1000);
    let mut segs = cut(&hdr, &f);
    let (hdr, f2) = super_frame(false, false, 3000, 0x18, 1000);
    let next = cut(&hdr, &f2);
    segs.extend(next);
    let out = feed(&mut Coalescer::default(), &segs);
    assert_eq!(out.len(), 2, "PSH closed the first");
}

#[test]
fn a_segment_rebuilt_after_the_rest_joins_in_front() {
    // What a receiver sees when a datagram is lost and rebuilt from parity:
    // the segments after it first, then it.
    for v6 in [false, true] {
        let (hdr, f) = super_frame(v6, false, 30_000, 0x18, 1000);
        let mut segs = cut(&hdr, &f);
        let lost = segs.remove(10);
        segs.push(lost);
        let mut c = Coalescer::default();
        let out = feed(&mut c, &segs);
        assert_eq!(out.len(), 1, "one super-frame, in order");
        assert_eq!((c.joined, c.joined_segments, c.filled), (1, 30, 1));
        let got = &out[0].1;
        if v6 {
            assert_eq!(got, &f, "byte for byte");
        } else {
            assert_eq!(no_ip_csum(got.clone(), 14), no_ip_csum(f.clone(), 14));
        }
    }
}

#[test]
fn runs_apart_leave_in_sequence_order() {
    let (hdr, f) = super_frame(false, false, 15_000, 0x18, 1000);
    let segs = cut(&hdr, &f);
    // Three runs, the last first, two gaps never filled.
    let frames: Vec<Vec<u8>> = segs[11..].iter().chain(&segs[..5]).chain(&segs[6..10]).cloned().collect();
    let out = feed(&mut Coalescer::default(), &frames);
    let seqs: Vec<u32> = out.iter().map(|(_, b)| u32::from_be_bytes(b[38..42].try_into().unwrap())).collect();
    let first = seqs[0];
    assert_eq!(seqs.iter().map(|s| s.wrapping_sub(first)).collect::<Vec<_>>(), vec![0, 6000, 11_000]);
    assert_eq!(&out[0].1[66..], &f[66..5066]);
    assert_eq!(&out[1].1[66..], &f[6066..10_066]);
    assert_eq!(&out[2].1[66..], &f[11_066..]);
    // The short last segment, rebuilt after the rest, ends the super-frame.
    let mut frames = segs.clone();
    let last = frames.pop().unwrap();
    let before = frames.pop().unwrap();
    frames.push(last);
    frames.push(before);
    let out = feed(&mut Coalescer::default(), &frames);
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].1[66..], &f[66..]);
}

proptest! {
    /// Up to three segments that arrive after all the others (rebuilt from
    /// parity) still make the one super-frame the segments were cut from.
    #[test]
    fn late_segments_fill_their_gaps(late in proptest::collection::btree_set(0usize..29, 0..4)) {
        let (hdr, f) = super_frame(false, false, 20_000, 0x18, 700);
        let segs = cut(&hdr, &f);
        let mut frames: Vec<Vec<u8>> = (0..segs.len()).filter(|i| !late.contains(i)).map(|i| segs[i].clone()).collect();
        frames.extend(late.iter().rev().map(|&i| segs[i].clone()));
        let out = feed(&mut Coalescer::default(), &frames);
        prop_assert_eq!(out.len(), 1);
        prop_assert_eq!(no_ip_csum(out[0].1.clone(), 14), no_ip_csum(f.clone(), 14));
    }


    /// Any frames, valid segments mixed with junk, in any order: nothing
    /// panics, and every payload byte offered comes out once.
    #[test]
    fn nothing_is_lost_or_duplicated(
        order in proptest::collection::vec(0usize..40, 0..60),
        junk in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..5),
    ) {
        let (hdr, f) = super_frame(false, false, 20_000, 0x18, 700);
        let segs = cut(&hdr, &f);
        let mut frames: Vec<Vec<u8>> = order.iter().map(|&i| segs[i % segs.len()].clone()).collect();
        for (k, j) in junk.into_iter().enumerate() {
            frames.insert((k * 7) % (frames.len() + 1), j);
        }
        let payload_in: usize = frames.iter().map(|f| layout(f).map(|l| l.end - l.data).unwrap_or(0)).sum();
        let out = feed(&mut Coalescer::default(), &frames);
        let payload_out: usize = out.iter().map(|(_, f)| layout(f).map(|l| l.end - l.data).unwrap_or(0)).sum();
        prop_assert_eq!(payload_in, payload_out);
        prop_assert!(out.len() <= frames.len());
    }
}
