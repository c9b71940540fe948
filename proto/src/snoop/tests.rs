//! Frames for the classifier tests: Ethernet, IPv4/IPv6, IGMP and MLD builders shared by the files under tests/.

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

mod data;
mod encodings;
mod igmp;
mod mld;
mod robustness;
