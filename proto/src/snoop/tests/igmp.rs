//! IGMP v1, v2 and v3 messages: what each classifies as, and what is refused.

use super::*;

#[test]
fn igmpv1_report() {
    let f = igmp_frame(HOST4, ip4("239.1.2.3"), &igmp_simple(0x12, 0, ip4("239.1.2.3")));
    assert_eq!(classify(&f), report(IpAddr::V4(HOST4), vec![any_source(v4("239.1.2.3"))]));
}

#[test]
fn igmpv2_report() {
    let f = igmp_frame(HOST4, ip4("239.1.2.3"), &igmp_simple(0x16, 0, ip4("239.1.2.3")));
    assert_eq!(classify(&f), report(IpAddr::V4(HOST4), vec![any_source(v4("239.1.2.3"))]));
}

#[test]
fn igmpv2_leave() {
    let f = igmp_frame(HOST4, ip4("224.0.0.2"), &igmp_simple(0x17, 0, ip4("239.1.2.3")));
    assert_eq!(
        classify(&f),
        FrameClass::Control(Ok(Membership::Leave { reporter: IpAddr::V4(HOST4), group: v4("239.1.2.3") }))
    );
}

#[test]
fn igmpv3_report_every_record_kind() {
    let s1 = ip4("10.0.0.1");
    let s2 = ip4("10.0.0.2");
    let msg = igmpv3_report(&[
        (1, ip4("232.1.1.1"), &[s1, s2], 0),
        (2, ip4("239.1.1.2"), &[], 0),
        (3, ip4("239.1.1.3"), &[s1], 1),
        (4, ip4("239.1.1.4"), &[s2], 0),
        (5, ip4("232.1.1.5"), &[s1, s2], 2),
        (6, ip4("232.1.1.6"), &[s2], 0),
    ]);
    let f = igmp_frame(HOST4, ip4("224.0.0.22"), &msg);
    let rec = |kind, g: &str, sources: &[Ipv4Addr]| GroupRecord {
        kind,
        group: v4(g),
        sources: sources.iter().map(|s| IpAddr::V4(*s)).collect(),
    };
    assert_eq!(
        classify(&f),
        report(
            IpAddr::V4(HOST4),
            vec![
                rec(RecordKind::IsInclude, "232.1.1.1", &[s1, s2]),
                rec(RecordKind::IsExclude, "239.1.1.2", &[]),
                rec(RecordKind::ToInclude, "239.1.1.3", &[s1]),
                rec(RecordKind::ToExclude, "239.1.1.4", &[s2]),
                rec(RecordKind::AllowNew, "232.1.1.5", &[s1, s2]),
                rec(RecordKind::BlockOld, "232.1.1.6", &[s2]),
            ]
        )
    );
}

#[test]
fn igmpv3_to_include_empty_is_parsed() {
    let f = igmp_frame(HOST4, ip4("224.0.0.22"), &igmpv3_report(&[(3, ip4("239.9.9.9"), &[], 0)]));
    assert_eq!(
        classify(&f),
        report(
            IpAddr::V4(HOST4),
            vec![GroupRecord { kind: RecordKind::ToInclude, group: v4("239.9.9.9"), sources: vec![] }]
        )
    );
}

#[test]
fn igmpv3_unknown_record_type_is_skipped() {
    let msg = igmpv3_report(&[
        (7, ip4("239.1.1.1"), &[ip4("10.0.0.1")], 1),
        (0, ip4("1.2.3.4"), &[], 0),
        (4, ip4("239.2.2.2"), &[], 0),
    ]);
    let f = igmp_frame(HOST4, ip4("224.0.0.22"), &msg);
    assert_eq!(
        classify(&f),
        report(
            IpAddr::V4(HOST4),
            vec![GroupRecord { kind: RecordKind::ToExclude, group: v4("239.2.2.2"), sources: vec![] }]
        )
    );
}

#[test]
fn igmpv3_report_from_unspecified_source() {
    let f = igmp_frame(Ipv4Addr::UNSPECIFIED, ip4("224.0.0.22"), &igmpv3_report(&[(4, ip4("239.2.2.2"), &[], 0)]));
    assert!(
        matches!(classify(&f), FrameClass::Control(Ok(Membership::Report { reporter, .. })) if reporter == v4("0.0.0.0"))
    );
}

#[test]
fn igmpv3_record_count_beyond_message_is_truncated() {
    let mut msg = igmpv3_report(&[(4, ip4("239.2.2.2"), &[], 0)]);
    msg[7] = 2;
    let f = igmp_frame(HOST4, ip4("224.0.0.22"), &igmp_fix(msg));
    assert_eq!(classify(&f), err(SnoopError::Truncated));
    // A record whose source count points past the end.
    let mut msg = igmpv3_report(&[(1, ip4("239.2.2.2"), &[ip4("10.0.0.1")], 0)]);
    msg[11] = 2;
    let f = igmp_frame(HOST4, ip4("224.0.0.22"), &igmp_fix(msg));
    assert_eq!(classify(&f), err(SnoopError::Truncated));
}

#[test]
fn igmp_queries() {
    let querier = ip4("10.32.0.1");
    let general = |msg: &[u8]| classify(&igmp_frame(querier, ip4("224.0.0.1"), msg));
    let q = |group| FrameClass::Control(Ok(Membership::Query { querier: IpAddr::V4(querier), group }));
    // v1 (max resp 0) and v2 general queries: 8 bytes.
    assert_eq!(general(&igmp_simple(0x11, 0, Ipv4Addr::UNSPECIFIED)), q(None));
    assert_eq!(general(&igmp_simple(0x11, 100, Ipv4Addr::UNSPECIFIED)), q(None));
    // v2 group-specific.
    assert_eq!(general(&igmp_simple(0x11, 10, ip4("239.1.1.1"))), q(Some(v4("239.1.1.1"))));
    // v3 general, group-specific and group-and-source-specific.
    assert_eq!(general(&igmpv3_query(Ipv4Addr::UNSPECIFIED, &[])), q(None));
    assert_eq!(general(&igmpv3_query(ip4("239.1.1.1"), &[])), q(Some(v4("239.1.1.1"))));
    assert_eq!(general(&igmpv3_query(ip4("232.1.1.1"), &[ip4("10.0.0.1")])), q(Some(v4("232.1.1.1"))));
    // Invalid lengths and groups.
    let mut bad = igmpv3_query(Ipv4Addr::UNSPECIFIED, &[]);
    bad.truncate(10);
    assert_eq!(general(&igmp_fix(bad)), err(SnoopError::Truncated));
    let mut bad = igmpv3_query(Ipv4Addr::UNSPECIFIED, &[]);
    bad[11] = 1;
    assert_eq!(general(&igmp_fix(bad)), err(SnoopError::Truncated));
    assert_eq!(general(&igmp_simple(0x11, 10, ip4("10.1.1.1"))), err(SnoopError::NotMulticast));
}

#[test]
fn igmp_padded_minimum_frame() {
    // 14 + 24 + 8 = 46 bytes, padded to 60 with non-zero garbage that
    // would break the checksum (and the v2-query length rule) if read.
    for msg in [igmp_simple(0x16, 0, ip4("239.1.2.3")), igmp_simple(0x11, 100, Ipv4Addr::UNSPECIFIED)] {
        let mut f = igmp_frame(HOST4, ip4("239.1.2.3"), &msg);
        assert_eq!(f.len(), 46);
        f.resize(60, 0xa5);
        match classify(&f) {
            FrameClass::Control(Ok(Membership::Report { records, .. })) => {
                assert_eq!(records, vec![any_source(v4("239.1.2.3"))])
            }
            FrameClass::Control(Ok(Membership::Query { group: None, .. })) => assert_eq!(msg[0], 0x11),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn igmp_without_router_alert() {
    let f = ipv4_frame(HOST4, ip4("239.1.2.3"), IPPROTO_IGMP, &[], &igmp_simple(0x16, 0, ip4("239.1.2.3")));
    assert_eq!(classify(&f), report(IpAddr::V4(HOST4), vec![any_source(v4("239.1.2.3"))]));
}

#[test]
fn igmp_bad_checksums() {
    let mut msg = igmp_simple(0x16, 0, ip4("239.1.2.3"));
    msg[3] ^= 1;
    assert_eq!(classify(&igmp_frame(HOST4, ip4("239.1.2.3"), &msg)), err(SnoopError::Checksum));
    let mut msg = igmpv3_report(&[(4, ip4("239.2.2.2"), &[], 0)]);
    msg[15] ^= 0x40;
    assert_eq!(classify(&igmp_frame(HOST4, ip4("224.0.0.22"), &msg)), err(SnoopError::Checksum));
    // IPv4 header checksum.
    let mut f = igmp_frame(HOST4, ip4("239.1.2.3"), &igmp_simple(0x16, 0, ip4("239.1.2.3")));
    f[ETH_HLEN + 10] ^= 1;
    assert_eq!(classify(&f), err(SnoopError::Checksum));
}

#[test]
fn igmp_not_multicast_groups() {
    for ty in [0x12, 0x16, 0x17] {
        let f = igmp_frame(HOST4, ip4("224.0.0.2"), &igmp_simple(ty, 0, ip4("10.1.2.3")));
        assert_eq!(classify(&f), err(SnoopError::NotMulticast), "type {ty:#x}");
    }
    let msg = igmpv3_report(&[(4, ip4("239.2.2.2"), &[], 0), (4, ip4("255.255.255.255"), &[], 0)]);
    assert_eq!(classify(&igmp_frame(HOST4, ip4("224.0.0.22"), &msg)), err(SnoopError::NotMulticast));
    let f = igmp_frame(HOST4, ip4("224.0.0.22"), &igmp_simple(0x16, 0, Ipv4Addr::UNSPECIFIED));
    assert_eq!(classify(&f), err(SnoopError::NotMulticast));
}

#[test]
fn igmp_unknown_type_and_fragments_are_unsupported() {
    // DVMRP (0x13) and multicast router advertisement (0x30): still
    // Control, so never forwarded.
    for ty in [0x13, 0x30] {
        let f = igmp_frame(HOST4, ip4("224.0.0.4"), &igmp_simple(ty, 0, ip4("239.1.1.1")));
        assert_eq!(classify(&f), err(SnoopError::Unsupported));
    }
    let mut f = igmp_frame(HOST4, ip4("239.1.2.3"), &igmp_simple(0x16, 0, ip4("239.1.2.3")));
    f[ETH_HLEN + 6] = 0x20; // MF
    f[ETH_HLEN + 10..ETH_HLEN + 12].copy_from_slice(&[0, 0]);
    let sum = internet_checksum(0, &f[ETH_HLEN..ETH_HLEN + 24]);
    f[ETH_HLEN + 10..ETH_HLEN + 12].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(classify(&f), err(SnoopError::Unsupported));
}

#[test]
fn igmp_with_broken_ip_header_is_still_control() {
    let mut f = igmp_frame(HOST4, ip4("239.1.2.3"), &igmp_simple(0x16, 0, ip4("239.1.2.3")));
    f[ETH_HLEN + 3] += 1; // total length one past the frame
    assert_eq!(classify(&f), err(SnoopError::Truncated));
    let mut f = igmp_frame(HOST4, ip4("239.1.2.3"), &igmp_simple(0x16, 0, ip4("239.1.2.3")));
    f[ETH_HLEN] = 0x44; // IHL 4
    assert_eq!(classify(&f), err(SnoopError::Truncated));
}
