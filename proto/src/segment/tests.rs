//! Segmentation checked against etherparse: every segment parses, its IP
//! and TCP checksums verify, sequence numbers are contiguous, payloads
//! concatenate to the original, flags as the kernel's GSO sets them; odd
//! and hostile input is refused without a panic.

use super::*;
use crate::vnet::{F_NEEDS_CSUM, VNET_HDR_LEN};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use proptest::prelude::*;

pub(crate) const MAX: usize = 1400 + 14;

/// A TCP super-frame as a local kernel hands it over: Ethernet (with a
/// VLAN tag if `vlan`), IPv4 or IPv6, TCP with 12 bytes of options
/// (timestamps), `payload` bytes, IP lengths of the whole, the checksum
/// field holding the pseudo-header sum.
pub(crate) fn super_frame(v6: bool, vlan: bool, payload: usize, flags: u8, gso_size: u16) -> (VnetHdr, Vec<u8>) {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    if vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    }
    let l3 = f.len() + 2;
    let tcp_len = 32 + payload;
    if v6 {
        f.extend_from_slice(&[0x86, 0xdd]);
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(tcp_len as u16).to_be_bytes());
        f.extend_from_slice(&[6, 64]);
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    } else {
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[0x45, 0x02]); // ECT(0)
        f.extend_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
        f.extend_from_slice(&[0xff, 0xfe, 0x40, 0x00, 64, 6, 0, 0]); // id 0xfffe (wraps), DF
        f.extend_from_slice(&[10, 32, 0, 1, 10, 32, 0, 2]);
    }
    let l4 = f.len();
    f.extend_from_slice(&[0x94, 0x51, 0x14, 0x51]); // ports 37969 -> 5201
    f.extend_from_slice(&0xffff_f000u32.to_be_bytes()); // seq wraps within the frame
    f.extend_from_slice(&[0, 0, 0, 1, 0x80, flags, 0x01, 0xf5, 0, 0, 0, 0]);
    f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    f.extend((0..payload).map(|i| (i * 7 % 251) as u8));
    // The pseudo-header sum, as the kernel leaves it (ignored by the segmenter).
    let pseudo =
        if v6 { sum(&f[l3 + 8..l3 + 40], tcp_len as u64 + 6) } else { sum(&f[l3 + 12..l3 + 20], tcp_len as u64 + 6) };
    f[l4 + 16..l4 + 18].copy_from_slice(&fold(pseudo).to_be_bytes());
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
        hdr_len: (l4 + 32) as u16,
        gso_size,
        csum_start: l4 as u16,
        csum_offset: 16,
    };
    (hdr, f)
}

/// Cuts `f` and checks every segment with etherparse; returns them.
fn check(hdr: &VnetHdr, f: &[u8]) -> Vec<Vec<u8>> {
    let mut segs = Segments::new(hdr, f, MAX).expect("segmentable");
    let count = segs.count();
    let mut out = vec![0u8; MAX];
    let mut got = Vec::new();
    while let Some(n) = segs.next_into(&mut out) {
        assert!(n <= MAX);
        got.push(out[..n].to_vec());
    }
    assert_eq!(got.len(), count);
    let orig = SlicedPacket::from_ethernet(f).unwrap();
    let Some(TransportSlice::Tcp(orig_tcp)) = orig.transport else { panic!("the original is TCP") };
    let mut payload = Vec::new();
    let mut seq = orig_tcp.sequence_number();
    for (i, s) in got.iter().enumerate() {
        let p = SlicedPacket::from_ethernet(s).unwrap_or_else(|e| panic!("segment {i}: {e:?}"));
        assert_eq!(p.link_exts.len(), orig.link_exts.len(), "the VLAN tag is kept");
        let Some(TransportSlice::Tcp(tcp)) = &p.transport else { panic!("segment {i} is TCP") };
        let csum = match &p.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header();
                assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum(), "IPv4 checksum of {i}");
                assert_eq!(usize::from(h.total_len()), 20 + tcp.slice().len());
                let Some(NetSlice::Ipv4(o)) = &orig.net else { panic!() };
                assert_eq!(h.identification(), o.header().identification().wrapping_add(i as u16));
                assert_eq!(h.ecn(), o.header().ecn(), "ECN codepoint kept");
                tcp.calc_checksum_ipv4(h.source(), h.destination()).unwrap()
            }
            Some(NetSlice::Ipv6(ip)) => {
                let h = ip.header();
                assert_eq!(usize::from(h.payload_length()), tcp.slice().len());
                tcp.calc_checksum_ipv6(h.source(), h.destination()).unwrap()
            }
            _ => panic!("segment {i} is IP"),
        };
        assert_eq!(csum, tcp.checksum(), "TCP checksum of segment {i}");
        assert_eq!(tcp.sequence_number(), seq, "segment {i} follows the one before");
        assert_eq!(tcp.options(), orig_tcp.options());
        assert_eq!(tcp.acknowledgment_number(), orig_tcp.acknowledgment_number());
        let (first, last) = (i == 0, i + 1 == got.len());
        assert_eq!(tcp.cwr(), first && orig_tcp.cwr(), "CWR only on the first ({i})");
        assert_eq!(tcp.fin(), last && orig_tcp.fin(), "FIN only on the last ({i})");
        assert_eq!(tcp.psh(), last && orig_tcp.psh(), "PSH only on the last ({i})");
        assert_eq!((tcp.ack(), tcp.ece()), (orig_tcp.ack(), orig_tcp.ece()));
        if !last {
            assert_eq!(tcp.payload().len(), usize::from(hdr.gso_size));
        }
        seq = seq.wrapping_add(tcp.payload().len() as u32);
        payload.extend_from_slice(tcp.payload());
    }
    assert_eq!(payload, orig_tcp.payload(), "the payloads make the original");
    got
}

#[test]
fn ipv4_super_frames_become_valid_segments() {
    // ACK|PSH|FIN|CWR|ECE: CWR first only, PSH and FIN last only.
    let (hdr, f) = super_frame(false, false, 60_000, 0x10 | 0x08 | 0x01 | 0x80 | 0x40, 1348);
    let hdr = VnetHdr { gso_type: GSO_TCPV4 | GSO_ECN, ..hdr };
    let segs = check(&hdr, &f);
    assert_eq!(segs.len(), 60_000usize.div_ceil(1348));
    assert!(segs.iter().all(|s| s.len() <= 14 + 20 + 32 + 1348));
    // An exact multiple of the size, and one segment only.
    check(&hdr, &super_frame(false, false, 1348 * 4, 0x18, 1348).1);
    check(&hdr, &super_frame(false, false, 100, 0x18, 1348).1);
}

#[test]
fn ipv6_and_vlan_tagged_super_frames_become_valid_segments() {
    let (hdr, f) = super_frame(true, false, 40_001, 0x18, 1328);
    assert_eq!(check(&hdr, &f).len(), 40_001usize.div_ceil(1328));
    let (hdr, f) = super_frame(false, true, 9_000, 0x10, 1300);
    assert_eq!(check(&hdr, &f).len(), 7);
    let (hdr, f) = super_frame(true, true, 9_000, 0x11, 1300);
    check(&hdr, &f);
}

#[test]
fn ethernet_padding_is_not_payload() {
    let (hdr, mut f) = super_frame(false, false, 3000, 0x18, 1000);
    f.extend_from_slice(&[0xee; 6]);
    let segs = check(&hdr, &f[..f.len() - 6]);
    let mut s = Segments::new(&hdr, &f, MAX).unwrap();
    let mut out = vec![0u8; MAX];
    for seg in segs {
        let n = s.next_into(&mut out).unwrap();
        assert_eq!(&out[..n], &seg[..]);
    }
}

#[test]
fn odd_super_frames_are_refused() {
    let (hdr, f) = super_frame(false, false, 5000, 0x18, 1348);
    let err = |h: VnetHdr, f: &[u8]| Segments::new(&h, f, MAX).unwrap_err();
    assert_eq!(err(VnetHdr { gso_type: 3, ..hdr }, &f), SegmentError::NotTcpGso);
    assert_eq!(err(VnetHdr { gso_type: 0, ..hdr }, &f), SegmentError::NotTcpGso);
    assert_eq!(err(VnetHdr { gso_size: 0, ..hdr }, &f), SegmentError::ZeroSize);
    assert_eq!(err(VnetHdr { gso_type: GSO_TCPV6, ..hdr }, &f), SegmentError::NotTcp);
    assert_eq!(err(VnetHdr { gso_size: 1500, ..hdr }, &f), SegmentError::TooLarge);
    assert_eq!(err(VnetHdr { gso_size: 10, ..hdr }, &f), SegmentError::TooLarge, "over MAX_SEGMENTS");
    assert_eq!(err(hdr, &f[..f.len() - 1]), SegmentError::Truncated, "IP length past the frame");
    assert_eq!(err(hdr, &f[..30]), SegmentError::Truncated);
    assert_eq!(err(hdr, &f[..12]), SegmentError::Truncated);
    let mut udp = f.clone();
    udp[23] = 17;
    assert_eq!(err(hdr, &udp), SegmentError::NotTcp);
    let mut frag = f.clone();
    frag[20] |= 0x20; // MF
    assert_eq!(err(hdr, &frag), SegmentError::NotTcp);
    let mut doff = f.clone();
    doff[14 + 20 + 12] = 0x40; // data offset 4 words
    assert_eq!(err(hdr, &doff), SegmentError::Truncated);
    let mut no_payload = f.clone();
    no_payload.truncate(14 + 20 + 32);
    no_payload[16..18].copy_from_slice(&52u16.to_be_bytes());
    assert_eq!(err(hdr, &no_payload), SegmentError::NoPayload);
    // A short output buffer ends the segments, never panics.
    let mut s = Segments::new(&hdr, &f, MAX).unwrap();
    assert_eq!(s.next_into(&mut [0u8; 100]), None);
}

#[test]
fn tcp_frames_are_recognised_and_others_are_not() {
    let (_, f) = super_frame(false, false, 5000, 0x18, 1348);
    let d = tcp_data(&f).unwrap();
    assert_eq!((d.src_port, d.dst_port, d.seq, d.len, d.syn, d.v6), (37969, 5201, 0xffff_f000, 5000, false, false));
    assert_eq!(&d.src[..4], &[10, 32, 0, 1]);
    let (_, f6) = super_frame(true, true, 10, 0x02, 1348);
    let d = tcp_data(&f6).unwrap();
    assert!(d.syn && d.v6 && d.len == 10 && d.dst[15] == 2);
    // A pure ACK padded to 60 bytes carries no data.
    let (_, mut ack) = super_frame(false, false, 0, 0x10, 1348);
    ack.resize(ack.len().max(60) + 6, 0);
    assert_eq!(tcp_data(&ack).unwrap().len, 0);
    let mut udp = f.clone();
    udp[23] = 17;
    assert_eq!(tcp_data(&udp), None);
    assert_eq!(tcp_data(&f[..20]), None);
    assert_eq!(tcp_data(&[0u8; 60]), None);
}

proptest! {
    /// Any bytes with any header: an error or segments within the bounds, never a panic.
    #[test]
    fn arbitrary_input_never_panics(
        raw in proptest::collection::vec(any::<u8>(), 0..3000),
        hdr in proptest::array::uniform10(any::<u8>()),
        max in 0usize..2000,
    ) {
        let h = VnetHdr::parse(&<[u8; VNET_HDR_LEN]>::try_from(&hdr[..]).unwrap());
        let _ = tcp_data(&raw);
        if let Ok(mut s) = Segments::new(&h, &raw, max) {
            let mut out = vec![0u8; max];
            let mut n = 0;
            while let Some(len) = s.next_into(&mut out) {
                prop_assert!(len <= max);
                n += 1;
            }
            prop_assert_eq!(n, s.count());
        }
    }

    /// Plausible super-frames with fields mutated: the same.
    #[test]
    fn mutated_super_frames_never_panic(
        v6 in any::<bool>(),
        vlan in any::<bool>(),
        payload in 0usize..6000,
        size in 0u16..2000,
        flips in proptest::collection::vec((0usize..120, any::<u8>()), 0..6),
        cut in 0usize..200,
    ) {
        let (hdr, mut f) = super_frame(v6, vlan, payload, 0x18, size);
        for (at, v) in flips {
            if at < f.len() {
                f[at] = v;
            }
        }
        f.truncate(f.len().saturating_sub(cut));
        let _ = tcp_data(&f);
        if let Ok(mut s) = Segments::new(&hdr, &f, MAX) {
            let mut out = vec![0u8; MAX];
            while s.next_into(&mut out).is_some() {}
        }
    }
}
