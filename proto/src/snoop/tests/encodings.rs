//! Encodings of response codes and addresses, and the queries we send.

use super::*;

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
