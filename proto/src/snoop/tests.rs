use super::*;
use proptest::prelude::*;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const HOST4: Ipv4Addr = Ipv4Addr::new(10, 32, 0, 7);

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse().unwrap())
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse().unwrap())
}

fn host6() -> Ipv6Addr {
    link_local_from_mac(MAC)
}

fn eth(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn mac_for(dst: IpAddr) -> [u8; 6] {
    match dst {
        IpAddr::V4(a) => {
            let o = a.octets();
            [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            [0x33, 0x33, o[12], o[13], o[14], o[15]]
        }
    }
}

/// An IPv4 packet (correct header checksum) in an Ethernet frame.
fn ipv4_frame(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let hlen = 20 + options.len();
    let mut p = vec![0x40 | (hlen / 4) as u8, 0];
    p.extend_from_slice(&((hlen + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 1, protocol, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(options);
    let sum = internet_checksum(0, &p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(payload);
    eth(mac_for(IpAddr::V4(dst)), ETHERTYPE_IPV4, &p)
}

/// Sets the checksum (bytes 2..4) of an IGMP message.
fn igmp_fix(mut msg: Vec<u8>) -> Vec<u8> {
    msg[2] = 0;
    msg[3] = 0;
    let sum = internet_checksum(0, &msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    msg
}

fn igmp_frame(src: Ipv4Addr, dst: Ipv4Addr, msg: &[u8]) -> Vec<u8> {
    ipv4_frame(src, dst, IPPROTO_IGMP, &[0x94, 0x04, 0, 0], msg)
}

fn igmp_simple(ty: u8, code: u8, group: Ipv4Addr) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&group.octets());
    igmp_fix(m)
}

fn igmpv3_report(records: &[(u8, Ipv4Addr, &[Ipv4Addr], u8)]) -> Vec<u8> {
    let mut m = vec![0x22, 0, 0, 0, 0, 0];
    m.extend_from_slice(&(records.len() as u16).to_be_bytes());
    for (ty, group, sources, aux_words) in records {
        m.extend_from_slice(&[*ty, *aux_words]);
        m.extend_from_slice(&(sources.len() as u16).to_be_bytes());
        m.extend_from_slice(&group.octets());
        for s in *sources {
            m.extend_from_slice(&s.octets());
        }
        m.extend(std::iter::repeat_n(0xee, usize::from(*aux_words) * 4));
    }
    igmp_fix(m)
}

fn igmpv3_query(group: Ipv4Addr, sources: &[Ipv4Addr]) -> Vec<u8> {
    let mut m = vec![0x11, 100, 0, 0];
    m.extend_from_slice(&group.octets());
    m.extend_from_slice(&[2, 125]);
    m.extend_from_slice(&(sources.len() as u16).to_be_bytes());
    for s in sources {
        m.extend_from_slice(&s.octets());
    }
    igmp_fix(m)
}

fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &[u8]) -> u16 {
    let mut sum = internet_sum(0, &src.octets());
    sum = internet_sum(sum, &dst.octets());
    sum = internet_sum(sum, &(msg.len() as u32).to_be_bytes());
    sum = internet_sum(sum, &[0, 0, 0, NH_ICMPV6]);
    internet_checksum(sum, msg)
}

/// An IPv6 packet in an Ethernet frame; `ext` is a list of
/// (header type, bytes without the next-header byte) extension headers.
fn ipv6_frame(src: Ipv6Addr, dst: Ipv6Addr, ext: &[(u8, Vec<u8>)], upper: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (_, bytes)) in ext.iter().enumerate() {
        body.push(ext.get(i + 1).map_or(upper, |e| e.0));
        body.extend_from_slice(bytes);
    }
    body.extend_from_slice(payload);
    let first = ext.first().map_or(upper, |e| e.0);
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(body.len() as u16).to_be_bytes());
    p.extend_from_slice(&[first, 1]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&body);
    eth(mac_for(IpAddr::V6(dst)), ETHERTYPE_IPV6, &p)
}

/// Hop-by-Hop with Router Alert (MLD) and PadN, without its first byte.
fn hbh_router_alert() -> (u8, Vec<u8>) {
    (NH_HOP_BY_HOP, vec![0, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00])
}

fn mld_frame_ext(src: Ipv6Addr, dst: Ipv6Addr, ext: &[(u8, Vec<u8>)], mut msg: Vec<u8>) -> Vec<u8> {
    msg[2] = 0;
    msg[3] = 0;
    let sum = icmpv6_checksum(&src, &dst, &msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    ipv6_frame(src, dst, ext, NH_ICMPV6, &msg)
}

fn mld_frame(dst: Ipv6Addr, msg: Vec<u8>) -> Vec<u8> {
    mld_frame_ext(host6(), dst, &[hbh_router_alert()], msg)
}

fn mld_v1(ty: u8, group: Ipv6Addr) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&group.octets());
    m
}

fn mldv2_report(records: &[(u8, Ipv6Addr, &[Ipv6Addr], u8)]) -> Vec<u8> {
    let mut m = vec![MLD_V2_REPORT, 0, 0, 0, 0, 0];
    m.extend_from_slice(&(records.len() as u16).to_be_bytes());
    for (ty, group, sources, aux_words) in records {
        m.extend_from_slice(&[*ty, *aux_words]);
        m.extend_from_slice(&(sources.len() as u16).to_be_bytes());
        m.extend_from_slice(&group.octets());
        for s in *sources {
            m.extend_from_slice(&s.octets());
        }
        m.extend(std::iter::repeat_n(0xee, usize::from(*aux_words) * 4));
    }
    m
}

fn mldv2_query(group: Ipv6Addr, sources: &[Ipv6Addr]) -> Vec<u8> {
    let mut m = vec![MLD_QUERY, 0, 0, 0, 0x27, 0x10, 0, 0];
    m.extend_from_slice(&group.octets());
    m.extend_from_slice(&[2, 125]);
    m.extend_from_slice(&(sources.len() as u16).to_be_bytes());
    for s in sources {
        m.extend_from_slice(&s.octets());
    }
    m
}

fn udp(len: usize) -> Vec<u8> {
    let mut u = vec![0x30, 0x39, 0x13, 0x88];
    u.extend_from_slice(&((8 + len) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend((0..len).map(|i| i as u8));
    u
}

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn report(reporter: IpAddr, records: Vec<GroupRecord>) -> FrameClass {
    FrameClass::Control(Ok(Membership::Report { reporter, records }))
}

fn any_source(group: IpAddr) -> GroupRecord {
    GroupRecord { kind: RecordKind::IsExclude, group, sources: vec![] }
}

fn err(e: SnoopError) -> FrameClass {
    FrameClass::Control(Err(e))
}

// ---- IGMP ----

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

// ---- MLD ----

#[test]
fn mldv1_report_and_done() {
    let g = ip6("ff15::1234");
    assert_eq!(
        classify(&mld_frame(g, mld_v1(MLD_V1_REPORT, g))),
        report(IpAddr::V6(host6()), vec![any_source(IpAddr::V6(g))])
    );
    assert_eq!(
        classify(&mld_frame(ip6("ff02::2"), mld_v1(MLD_V1_DONE, g))),
        FrameClass::Control(Ok(Membership::Leave { reporter: IpAddr::V6(host6()), group: IpAddr::V6(g) }))
    );
}

#[test]
fn mldv2_report_with_sources() {
    let s1 = ip6("2001:db8::1");
    let s2 = ip6("fd00::2");
    let msg = mldv2_report(&[
        (1, ip6("ff3e::8000:1"), &[s1, s2], 0),
        (2, ip6("ff15::2"), &[], 1),
        (3, ip6("ff15::3"), &[], 0),
        (4, ip6("ff15::4"), &[s1], 0),
        (5, ip6("ff3e::5"), &[s2], 3),
        (6, ip6("ff3e::6"), &[s1, s2], 0),
        (9, ip6("ff3e::9"), &[s1], 1),
    ]);
    let rec = |kind, g: &str, sources: &[Ipv6Addr]| GroupRecord {
        kind,
        group: v6(g),
        sources: sources.iter().map(|s| IpAddr::V6(*s)).collect(),
    };
    assert_eq!(
        classify(&mld_frame(ip6("ff02::16"), msg)),
        report(
            IpAddr::V6(host6()),
            vec![
                rec(RecordKind::IsInclude, "ff3e::8000:1", &[s1, s2]),
                rec(RecordKind::IsExclude, "ff15::2", &[]),
                rec(RecordKind::ToInclude, "ff15::3", &[]),
                rec(RecordKind::ToExclude, "ff15::4", &[s1]),
                rec(RecordKind::AllowNew, "ff3e::5", &[s2]),
                rec(RecordKind::BlockOld, "ff3e::6", &[s1, s2]),
            ]
        )
    );
}

#[test]
fn mld_queries() {
    let q = |group| FrameClass::Control(Ok(Membership::Query { querier: IpAddr::V6(host6()), group }));
    let all = ip6("ff02::1");
    assert_eq!(classify(&mld_frame(all, mld_v1(MLD_QUERY, Ipv6Addr::UNSPECIFIED))), q(None));
    assert_eq!(classify(&mld_frame(all, mld_v1(MLD_QUERY, ip6("ff15::1")))), q(Some(v6("ff15::1"))));
    assert_eq!(classify(&mld_frame(all, mldv2_query(Ipv6Addr::UNSPECIFIED, &[]))), q(None));
    assert_eq!(classify(&mld_frame(all, mldv2_query(ip6("ff3e::1"), &[ip6("2001:db8::1")]))), q(Some(v6("ff3e::1"))));
    // 25..27 bytes, and a source count past the end.
    let mut bad = mldv2_query(Ipv6Addr::UNSPECIFIED, &[]);
    bad.truncate(26);
    assert_eq!(classify(&mld_frame(all, bad)), err(SnoopError::Truncated));
    let mut bad = mldv2_query(Ipv6Addr::UNSPECIFIED, &[]);
    bad[27] = 1;
    assert_eq!(classify(&mld_frame(all, bad)), err(SnoopError::Truncated));
    assert_eq!(classify(&mld_frame(all, mld_v1(MLD_QUERY, ip6("fe80::1")))), err(SnoopError::NotMulticast));
}

#[test]
fn mld_bad_checksum_and_lengths() {
    let g = ip6("ff15::1");
    let mut f = mld_frame(g, mld_v1(MLD_V1_REPORT, g));
    *f.last_mut().unwrap() ^= 1;
    assert_eq!(classify(&f), err(SnoopError::Checksum));
    // The pseudo-header counts: a different source breaks it.
    let mut f = mld_frame(g, mld_v1(MLD_V1_REPORT, g));
    f[ETH_HLEN + 8 + 15] ^= 1;
    assert_eq!(classify(&f), err(SnoopError::Checksum));
    // A v1 report cut to 20 bytes (checksum recomputed).
    let mut msg = mld_v1(MLD_V1_REPORT, g);
    msg.truncate(20);
    assert_eq!(classify(&mld_frame(g, msg)), err(SnoopError::Truncated));
    // v2 reports: record count past the end; source count past the end.
    let mut msg = mldv2_report(&[(4, g, &[], 0)]);
    msg[7] = 2;
    assert_eq!(classify(&mld_frame(ip6("ff02::16"), msg)), err(SnoopError::Truncated));
    let mut msg = mldv2_report(&[(1, g, &[ip6("2001:db8::1")], 0)]);
    msg[11] = 2;
    assert_eq!(classify(&mld_frame(ip6("ff02::16"), msg)), err(SnoopError::Truncated));
    let mut msg = mldv2_report(&[(1, g, &[], 1)]);
    msg.truncate(msg.len() - 1);
    assert_eq!(classify(&mld_frame(ip6("ff02::16"), msg)), err(SnoopError::Truncated));
}

#[test]
fn mld_not_multicast() {
    let g = ip6("2001:db8::5");
    assert_eq!(classify(&mld_frame(ip6("ff02::16"), mld_v1(MLD_V1_REPORT, g))), err(SnoopError::NotMulticast));
    assert_eq!(classify(&mld_frame(ip6("ff02::2"), mld_v1(MLD_V1_DONE, g))), err(SnoopError::NotMulticast));
    let msg = mldv2_report(&[(4, ip6("ff15::1"), &[], 0), (4, g, &[], 0)]);
    assert_eq!(classify(&mld_frame(ip6("ff02::16"), msg)), err(SnoopError::NotMulticast));
}

#[test]
fn mld_extension_headers() {
    let g = ip6("ff15::1");
    let expected = report(IpAddr::V6(host6()), vec![any_source(IpAddr::V6(g))]);
    // No extension header at all.
    assert_eq!(classify(&mld_frame_ext(host6(), g, &[], mld_v1(MLD_V1_REPORT, g))), expected);
    // Hop-by-Hop, Destination Options (16 bytes), Routing.
    let mut dest_opts = vec![1, 0x01, 12];
    dest_opts.extend_from_slice(&[0; 12]);
    let routing = vec![0, 0, 0, 0, 0, 0, 0];
    let ext = [hbh_router_alert(), (NH_DEST_OPTS, dest_opts), (NH_ROUTING, routing)];
    assert_eq!(classify(&mld_frame_ext(host6(), g, &ext, mld_v1(MLD_V1_REPORT, g))), expected);
    // First fragment: unsupported; later fragment: data.
    let frag = |offset: u16, more: bool| {
        (NH_FRAGMENT, vec![0, (offset >> 5) as u8, ((offset << 3) as u8) | more as u8, 0, 0, 0, 7])
    };
    let f = mld_frame_ext(host6(), g, &[hbh_router_alert(), frag(0, true)], mld_v1(MLD_V1_REPORT, g));
    assert_eq!(classify(&f), err(SnoopError::Unsupported));
    let f = mld_frame_ext(host6(), g, &[frag(3, false)], mld_v1(MLD_V1_REPORT, g));
    assert_eq!(classify(&f), FrameClass::Multicast { group: IpAddr::V6(g), source: IpAddr::V6(host6()) });
    // An extension header running past the payload: data.
    let mut f = mld_frame_ext(host6(), g, &[hbh_router_alert()], mld_v1(MLD_V1_REPORT, g));
    f[ETH_HLEN + IPV6_HLEN + 1] = 200;
    assert_eq!(classify(&f), FrameClass::Multicast { group: IpAddr::V6(g), source: IpAddr::V6(host6()) });
}

#[test]
fn other_icmpv6_is_not_control() {
    // Neighbour solicitation to a solicited-node group.
    let dst = ip6("ff02::1:ff00:1");
    let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
    ns.extend_from_slice(&ip6("fe80::1").octets());
    let f = mld_frame_ext(host6(), dst, &[], ns);
    assert_eq!(classify(&f), FrameClass::Multicast { group: IpAddr::V6(dst), source: IpAddr::V6(host6()) });
    // Echo request to a unicast address.
    let f = mld_frame_ext(host6(), ip6("fe80::1"), &[], vec![128, 0, 0, 0, 0, 1, 0, 1]);
    assert_eq!(classify(&f), FrameClass::Other);
}

// ---- Data and everything else ----

#[test]
fn udp_multicast_data() {
    let src = ip4("10.32.0.9");
    let f = ipv4_frame(src, ip4("239.1.1.1"), 17, &[], &udp(100));
    assert_eq!(classify(&f), FrameClass::Multicast { group: v4("239.1.1.1"), source: IpAddr::V4(src) });
    // Padded short datagram.
    let mut f = ipv4_frame(src, ip4("224.0.0.251"), 17, &[], &udp(2));
    f.resize(60, 0);
    assert_eq!(classify(&f), FrameClass::Multicast { group: v4("224.0.0.251"), source: IpAddr::V4(src) });
    let src6 = ip6("fd00::9");
    let f = ipv6_frame(src6, ip6("ff15::1"), &[], 17, &udp(100));
    assert_eq!(classify(&f), FrameClass::Multicast { group: v6("ff15::1"), source: IpAddr::V6(src6) });
    // A non-first IPv4 fragment of multicast data is still multicast.
    let mut f = ipv4_frame(src, ip4("239.1.1.1"), 17, &[], &udp(100));
    f[ETH_HLEN + 7] = 0x10;
    assert_eq!(classify(&f), FrameClass::Multicast { group: v4("239.1.1.1"), source: IpAddr::V4(src) });
}

#[test]
fn unicast_broadcast_and_non_ip_are_other() {
    let f = ipv4_frame(ip4("10.32.0.9"), ip4("10.32.0.10"), 17, &[], &udp(10));
    assert_eq!(classify(&f), FrameClass::Other);
    let f = ipv4_frame(ip4("10.32.0.9"), Ipv4Addr::BROADCAST, 17, &[], &udp(10));
    assert_eq!(classify(&f), FrameClass::Other);
    let f = ipv6_frame(ip6("fd00::9"), ip6("fd00::10"), &[], 6, &[0; 20]);
    assert_eq!(classify(&f), FrameClass::Other);
    let arp =
        eth([0xff; 6], 0x0806, &[0, 1, 8, 0, 6, 4, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(classify(&arp), FrameClass::Other);
    // 802.1Q-tagged IGMP: not looked into.
    let mut tagged = igmp_frame(HOST4, ip4("239.1.2.3"), &igmp_simple(0x16, 0, ip4("239.1.2.3")));
    tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    assert_eq!(classify(&tagged), FrameClass::Other);
    // Wrong IP versions.
    let mut f = ipv4_frame(ip4("10.32.0.9"), ip4("239.1.1.1"), 17, &[], &udp(10));
    f[ETH_HLEN] = 0x65;
    assert_eq!(classify(&f), FrameClass::Other);
    let mut f = ipv6_frame(ip6("fd00::9"), ip6("ff15::1"), &[], 17, &udp(10));
    f[ETH_HLEN] = 0x40;
    assert_eq!(classify(&f), FrameClass::Other);
}

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

// ---- Encodings and the queries we send ----

#[test]
fn igmp_code_encoding() {
    assert_eq!(igmp_code_encode(0), 0);
    assert_eq!(igmp_code_encode(100), 100);
    assert_eq!(igmp_code_encode(127), 127);
    assert_eq!(igmp_code_encode(128), 0x80);
    assert_eq!(igmp_code_encode(135), 0x80);
    assert_eq!(igmp_code_encode(136), 0x81);
    assert_eq!(igmp_code_encode(255), 0x8f);
    assert_eq!(igmp_code_encode(256), 0x90);
    assert_eq!(igmp_code_encode(31_744), 0xff);
    assert_eq!(igmp_code_encode(u32::MAX), 0xff);
    assert_eq!(igmp_code_decode(0x80), 128);
    assert_eq!(igmp_code_decode(0x8f), 248);
    assert_eq!(igmp_code_decode(0x90), 256);
    assert_eq!(igmp_code_decode(0xff), 31_744);
    for code in 0..=255u8 {
        assert_eq!(igmp_code_encode(igmp_code_decode(code)), code);
    }
}

#[test]
fn mld_mrc_encoding() {
    assert_eq!(mld_mrc_encode(0), 0);
    assert_eq!(mld_mrc_encode(10_000), 10_000);
    assert_eq!(mld_mrc_encode(32_767), 32_767);
    assert_eq!(mld_mrc_encode(32_768), 0x8000);
    assert_eq!(mld_mrc_encode(32_775), 0x8000);
    assert_eq!(mld_mrc_encode(32_776), 0x8001);
    assert_eq!(mld_mrc_encode(65_536), 0x9000);
    assert_eq!(mld_mrc_encode(8_387_584), 0xffff);
    assert_eq!(mld_mrc_encode(u32::MAX), 0xffff);
    assert_eq!(mld_mrc_decode(0xffff), 8_387_584);
    for code in (0..=u16::MAX).step_by(7) {
        assert_eq!(mld_mrc_encode(mld_mrc_decode(code)), code);
    }
}

#[test]
fn link_local_eui64() {
    assert_eq!(link_local_from_mac(MAC), ip6("fe80::5054:ff:fe12:3456"));
    assert_eq!(link_local_from_mac([0x02, 0, 0, 0, 0, 1]), ip6("fe80::ff:fe00:1"));
}

#[test]
fn igmpv3_general_query_frame() {
    let f = igmpv3_general_query(MAC, 10_000, 2, 125);
    assert_eq!(classify(&f), FrameClass::Control(Ok(Membership::Query { querier: v4("0.0.0.0"), group: None })));
    assert_eq!(f.len(), ETH_HLEN + 24 + 12);
    assert_eq!(f[..6], [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]);
    assert_eq!(f[6..12], MAC);
    assert_eq!(f[12..14], [0x08, 0x00]);
    let ip = &f[ETH_HLEN..ETH_HLEN + 24];
    assert_eq!(ip[0], 0x46);
    assert_eq!(ip[1], 0xc0);
    assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 36);
    assert_eq!(ip[8], 1);
    assert_eq!(ip[9], 2);
    assert_eq!(ip[12..20], [0, 0, 0, 0, 224, 0, 0, 1]);
    assert_eq!(ip[20..24], [0x94, 0x04, 0, 0]);
    assert_eq!(internet_checksum(0, ip), 0);
    let igmp = &f[ETH_HLEN + 24..];
    assert_eq!(internet_checksum(0, igmp), 0);
    assert_eq!(igmp[0], 0x11);
    assert_eq!(igmp[1], 100);
    assert_eq!(igmp[4..8], [0; 4]);
    assert_eq!(igmp[8], 2); // S=0, QRV 2
    assert_eq!(igmp[9], 125);
    assert_eq!(igmp[10..12], [0, 0]);
    // Cross-check with etherparse's own decoding.
    match IgmpSlice::from_slice(igmp).unwrap() {
        IgmpSlice::MembershipQueryWithSources(q) => {
            assert_eq!(q.max_response_code().as_10th_secs(), 100);
            assert_eq!(q.qqic(), 125);
            assert!(!q.s_flag());
            assert_eq!(q.num_of_sources(), 0);
        }
        other => panic!("{other:?}"),
    }

    // Exponential forms, QRV out of range, tiny max-resp.
    let f = igmpv3_general_query(MAC, 25_600, 9, 1000);
    let igmp = &f[ETH_HLEN + 24..];
    assert_eq!(igmp[1], 0x90);
    assert_eq!(igmp_code_decode(igmp[1]), 256);
    assert_eq!(igmp[8], 0);
    assert_eq!(igmp_code_decode(igmp[9]), 992);
    assert_eq!(internet_checksum(0, igmp), 0);
    assert!(matches!(classify(&f), FrameClass::Control(Ok(Membership::Query { group: None, .. }))));
    let f = igmpv3_general_query(MAC, 50, 2, 125);
    assert_eq!(f[ETH_HLEN + 24 + 1], 1);
}

#[test]
fn mldv2_general_query_frame() {
    let src = host6();
    let f = mldv2_general_query(MAC, src, 10_000, 2, 125);
    assert_eq!(classify(&f), FrameClass::Control(Ok(Membership::Query { querier: IpAddr::V6(src), group: None })));
    assert_eq!(f.len(), ETH_HLEN + 40 + 8 + 28);
    assert_eq!(f[..6], [0x33, 0x33, 0, 0, 0, 1]);
    assert_eq!(f[6..12], MAC);
    assert_eq!(f[12..14], [0x86, 0xdd]);
    let ip = &f[ETH_HLEN..];
    assert_eq!(ip[0] >> 4, 6);
    assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 36);
    assert_eq!(ip[6], 0);
    assert_eq!(ip[7], 1);
    assert_eq!(ip[8..24], src.octets());
    assert_eq!(ip[24..40], ip6("ff02::1").octets());
    assert_eq!(ip[40..48], [58, 0, 5, 2, 0, 0, 1, 0]);
    let mld = &ip[48..];
    assert_eq!(mld[0], 130);
    assert_eq!(mld[1], 0);
    assert_eq!(icmpv6_checksum(&src, &ip6("ff02::1"), mld), 0);
    assert_eq!(u16::from_be_bytes([mld[4], mld[5]]), 10_000);
    assert_eq!(mld[8..24], [0; 16]);
    assert_eq!(mld[24], 2);
    assert_eq!(mld[25], 125);
    assert_eq!(mld[26..28], [0, 0]);
    // etherparse agrees on the IPv6 packet and the ICMPv6 checksum.
    let sliced = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
    match sliced.transport {
        Some(etherparse::TransportSlice::Icmpv6(icmp)) => {
            assert!(icmp.is_checksum_valid(src.octets(), ip6("ff02::1").octets()));
            assert_eq!(icmp.type_u8(), 130);
        }
        other => panic!("{other:?}"),
    }

    // Exponential max-resp code, big QQIC, QRV out of range.
    let f = mldv2_general_query(MAC, src, 65_536, 8, 300);
    let mld = &f[ETH_HLEN + 48..];
    assert_eq!(u16::from_be_bytes([mld[4], mld[5]]), 0x9000);
    assert_eq!(mld_mrc_decode(0x9000), 65_536);
    assert_eq!(mld[24], 0);
    assert_eq!(igmp_code_decode(mld[25]), 288);
    assert!(matches!(classify(&f), FrameClass::Control(Ok(Membership::Query { group: None, .. }))));
}

/// Writes the seeds of the `snoop` fuzz target (`fuzz/corpus/snoop`):
/// membership messages of every version, each frame after its 2-byte
/// length, as `crate::fuzzing::snoop` reads them. Run by hand:
/// `cargo test -p weavers-proto --lib -- --ignored write_snoop_fuzz_seeds`.
#[test]
#[ignore]
fn write_snoop_fuzz_seeds() {
    let host = ip4("10.32.0.5");
    let g = ip4("239.1.0.1");
    let g6 = ip6("ff0e::1");
    let srcs: Vec<Ipv4Addr> = (1..=4).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
    let srcs6: Vec<Ipv6Addr> = (1..=3).map(|i| Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i)).collect();
    let seeds: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("igmpv2", vec![igmp_frame(host, g, &igmp_simple(0x16, 0, g)), igmp_frame(host, g, &igmp_simple(0x17, 0, g))]),
        (
            "igmpv3",
            vec![igmp_frame(
                host,
                ip4("224.0.0.22"),
                &igmpv3_report(&[(1, g, &srcs, 0), (2, ip4("239.1.0.2"), &[], 1), (5, g, &srcs[..1], 0)]),
            )],
        ),
        ("igmpv3_query", vec![igmp_frame(host, ip4("224.0.0.1"), &igmpv3_query(g, &srcs))]),
        (
            "mld",
            vec![
                mld_frame(g6, mld_v1(MLD_V1_REPORT, g6)),
                mld_frame(ip6("ff02::16"), mldv2_report(&[(4, g6, &srcs6, 0), (6, g6, &srcs6[..1], 0)])),
                mld_frame(ip6("ff02::1"), mldv2_query(g6, &srcs6)),
            ],
        ),
        ("data", vec![ipv4_frame(host, g, 17, &[], &udp(20))]),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/snoop");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, frames) in seeds {
        let mut b = Vec::new();
        for f in frames {
            b.extend_from_slice(&(f.len() as u16).to_be_bytes());
            b.extend_from_slice(&f);
        }
        crate::fuzzing::snoop(&b);
        std::fs::write(dir.join(name), b).unwrap();
    }
}
