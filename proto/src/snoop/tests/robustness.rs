//! Sample frames truncated, mutated and randomized: classification never panics.

use super::*;

fn sample_frames() -> Vec<Vec<u8>> {
    let g4 = ip4("239.1.2.3");
    let g6 = ip6("ff15::1");
    let s6 = ip6("2001:db8::1");
    vec![
        igmp_frame(HOST4, g4, &igmp_simple(0x12, 0, g4)),
        igmp_frame(HOST4, g4, &igmp_simple(0x16, 0, g4)),
        igmp_frame(HOST4, ip4("224.0.0.2"), &igmp_simple(0x17, 0, g4)),
        igmp_frame(HOST4, ip4("224.0.0.1"), &igmp_simple(0x11, 100, Ipv4Addr::UNSPECIFIED)),
        igmp_frame(HOST4, ip4("224.0.0.1"), &igmpv3_query(g4, &[HOST4])),
        igmp_frame(
            HOST4,
            ip4("224.0.0.22"),
            &igmpv3_report(&[(1, g4, &[HOST4, HOST4], 1), (3, g4, &[], 0), (6, g4, &[HOST4], 0)]),
        ),
        mld_frame(g6, mld_v1(MLD_V1_REPORT, g6)),
        mld_frame(ip6("ff02::2"), mld_v1(MLD_V1_DONE, g6)),
        mld_frame(ip6("ff02::1"), mld_v1(MLD_QUERY, g6)),
        mld_frame(ip6("ff02::1"), mldv2_query(g6, &[s6])),
        mld_frame(ip6("ff02::16"), mldv2_report(&[(1, g6, &[s6, s6], 1), (3, g6, &[], 0), (6, g6, &[s6], 0)])),
        ipv4_frame(HOST4, g4, 17, &[], &udp(30)),
        ipv6_frame(s6, g6, &[hbh_router_alert()], 17, &udp(30)),
        igmpv3_general_query(MAC, 10_000, 2, 125),
        mldv2_general_query(MAC, host6(), 10_000, 2, 125),
    ]
}

#[test]
fn samples_parse() {
    for f in sample_frames() {
        assert!(matches!(classify(&f), FrameClass::Control(Ok(_)) | FrameClass::Multicast { .. }), "{f:02x?}");
    }
}

#[test]
fn truncated_at_every_length() {
    for f in sample_frames() {
        for len in 0..f.len() {
            match classify(&f[..len]) {
                FrameClass::Other | FrameClass::Control(Err(_)) => {}
                other => panic!("{len} of {f:02x?}: {other:?}"),
            }
        }
    }
}

#[test]
fn every_single_byte_change_is_harmless() {
    for f in sample_frames() {
        for i in 0..f.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut m = f.clone();
                m[i] ^= x;
                let _ = classify(&m);
            }
        }
    }
}

/// Every group and source in a parsed message has the right family and
/// every group is multicast.
fn check_invariants(class: &FrameClass) {
    let multicast = |a: &IpAddr| a.is_multicast();
    match class {
        FrameClass::Control(Ok(Membership::Report { reporter, records })) => {
            for r in records {
                assert!(multicast(&r.group));
                assert!(r.sources.iter().all(|s| s.is_ipv4() == reporter.is_ipv4()));
                assert_eq!(r.group.is_ipv4(), reporter.is_ipv4());
            }
        }
        FrameClass::Control(Ok(Membership::Leave { reporter, group })) => {
            assert!(multicast(group));
            assert_eq!(group.is_ipv4(), reporter.is_ipv4());
        }
        FrameClass::Control(Ok(Membership::Query { querier, group })) => {
            if let Some(g) = group {
                assert!(multicast(g));
                assert_eq!(g.is_ipv4(), querier.is_ipv4());
            }
        }
        FrameClass::Multicast { group, source } => {
            assert!(multicast(group));
            assert_eq!(group.is_ipv4(), source.is_ipv4());
        }
        FrameClass::Control(Err(_)) | FrameClass::Other => {}
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        check_invariants(&classify(&bytes));
    }

    #[test]
    fn random_ip_bodies_never_panic(v6 in any::<bool>(), body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut f = eth([1, 0, 0x5e, 0, 0, 1], if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 }, &body);
        if let Some(b) = f.get_mut(ETH_HLEN) {
            *b = if v6 { 0x60 | (*b & 0x0f) } else { 0x40 | (*b & 0x0f) };
        }
        check_invariants(&classify(&f));
    }

    #[test]
    fn mutated_frames_never_panic(
        which in any::<proptest::sample::Index>(),
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<proptest::sample::Index>(),
        extra in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let frames = sample_frames();
        let mut f = frames[which.index(frames.len())].clone();
        for (i, b) in edits {
            let i = i.index(f.len());
            f[i] = b;
        }
        check_invariants(&classify(&f));
        f.extend_from_slice(&extra);
        check_invariants(&classify(&f));
        let cut = cut.index(f.len());
        check_invariants(&classify(&f[..cut]));
    }

    /// Random IGMP messages of a known type with a correct checksum, so
    /// the parser past the checksum gate is exercised too.
    #[test]
    fn random_igmp_with_valid_checksum(ty in proptest::sample::select(vec![0x11u8, 0x12, 0x16, 0x17, 0x22, 0x13]), body in proptest::collection::vec(any::<u8>(), 4..120)) {
        let mut msg = vec![ty, 0, 0, 0];
        msg.extend_from_slice(&body);
        let f = igmp_frame(HOST4, ip4("224.0.0.22"), &igmp_fix(msg));
        let class = classify(&f);
        prop_assert!(matches!(class, FrameClass::Control(_)));
        check_invariants(&class);
    }

    /// Random MLD messages with a correct ICMPv6 checksum.
    #[test]
    fn random_mld_with_valid_checksum(ty in proptest::sample::select(vec![MLD_QUERY, MLD_V1_REPORT, MLD_V1_DONE, MLD_V2_REPORT]), body in proptest::collection::vec(any::<u8>(), 0..160)) {
        let mut msg = vec![ty, 0, 0, 0];
        msg.extend_from_slice(&body);
        let class = classify(&mld_frame(ip6("ff02::16"), msg));
        prop_assert!(matches!(class, FrameClass::Control(_)));
        check_invariants(&class);
    }

    #[test]
    fn igmp_code_round_trip(v in 0u32..40_000) {
        let d = igmp_code_decode(igmp_code_encode(v));
        let v = v.min(31_744);
        prop_assert!(d <= v);
        // Four mantissa bits: within 1/16 of the value, rounding down.
        prop_assert!(v - d <= v / 16);
    }

    #[test]
    fn mld_mrc_round_trip(v in 0u32..9_000_000) {
        let d = mld_mrc_decode(mld_mrc_encode(v));
        let v = v.min(8_387_584);
        prop_assert!(d <= v);
        prop_assert!(v - d <= v / 4096);
    }
}
