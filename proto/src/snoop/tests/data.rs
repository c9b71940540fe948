//! Multicast data, and unicast, broadcast and non-IP frames that are not looked into.

use super::*;

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
