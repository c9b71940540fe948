//! MLD v1 and v2 messages: what each classifies as, and what is refused.

use super::*;

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
