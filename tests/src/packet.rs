//! Just enough Ethernet/IPv4/UDP parsing and building to look at captured
//! underlay frames and to replay or tamper with them.

use std::net::{Ipv4Addr, SocketAddrV4};

pub const ETH_HLEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// The EtherType of an Ethernet frame (no VLAN tags on the lab underlay).
pub fn ethertype(frame: &[u8]) -> Option<u16> {
    (frame.len() >= ETH_HLEN).then(|| u16::from_be_bytes([frame[12], frame[13]]))
}

/// The IPv4 packet in an Ethernet frame, if it is one.
pub fn ipv4_of_frame(frame: &[u8]) -> Option<&[u8]> {
    if ethertype(frame)? != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = &frame[ETH_HLEN..];
    let ihl = ip_header_len(ip)?;
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if total < ihl || total > ip.len() {
        // Keep what is there (a capture may be cut), but never less than the header.
        return Some(ip);
    }
    Some(&ip[..total])
}

fn ip_header_len(ip: &[u8]) -> Option<usize> {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    (ihl >= 20 && ip.len() >= ihl).then_some(ihl)
}

/// A parsed IPv4 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Header {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub header_len: usize,
    /// Fragment offset in bytes (0 for the first or only fragment).
    pub frag_offset: usize,
}

pub fn parse_ipv4(ip: &[u8]) -> Option<Ipv4Header> {
    let ihl = ip_header_len(ip)?;
    Some(Ipv4Header {
        src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        protocol: ip[9],
        header_len: ihl,
        frag_offset: ((u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff) as usize) * 8,
    })
}

/// A UDP datagram found in an IPv4 packet (first fragment only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub payload: &'a [u8],
}

/// The UDP datagram of an IPv4 packet, if it is UDP and not a later fragment.
pub fn udp_of_ipv4(ip: &[u8]) -> Option<UdpDatagram<'_>> {
    let h = parse_ipv4(ip)?;
    if h.protocol != IPPROTO_UDP || h.frag_offset != 0 {
        return None;
    }
    let udp = &ip[h.header_len..];
    if udp.len() < 8 {
        return None;
    }
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    let ulen = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    let end = ulen.clamp(8, udp.len());
    Some(UdpDatagram {
        src: SocketAddrV4::new(h.src, sport),
        dst: SocketAddrV4::new(h.dst, dport),
        payload: &udp[8..end],
    })
}

/// The UDP datagram of an Ethernet frame.
pub fn udp_of_frame(frame: &[u8]) -> Option<UdpDatagram<'_>> {
    udp_of_ipv4(ipv4_of_frame(frame)?)
}

/// Builds an IPv4/UDP packet (for a raw socket with `IP_HDRINCL`; the kernel
/// fills in the IP checksum and identification). The UDP checksum is 0
/// ("none"), which IPv4 receivers accept.
pub fn build_ipv4_udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    assert!(total <= 65535, "UDP payload too large");
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0]); // id 0 (kernel fills), DF
    p.extend_from_slice(&[64, IPPROTO_UDP, 0, 0]);
    p.extend_from_slice(&src.ip().octets());
    p.extend_from_slice(&dst.ip().octets());
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_then_parse_round_trips() {
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 1), 6783);
        let dst = SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 2), 6783);
        let ip = build_ipv4_udp(src, dst, b"hello");
        let d = udp_of_ipv4(&ip).unwrap();
        assert_eq!(d.src, src);
        assert_eq!(d.dst, dst);
        assert_eq!(d.payload, b"hello");
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&[0; 10]); // Ethernet padding is ignored
        assert_eq!(udp_of_frame(&frame).unwrap().payload, b"hello");
    }

    #[test]
    fn non_udp_and_garbage_are_not_udp() {
        assert!(udp_of_frame(&[0u8; 10]).is_none());
        assert!(udp_of_ipv4(&[0x45u8; 19]).is_none());
        let mut ip =
            build_ipv4_udp(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1), SocketAddrV4::new(Ipv4Addr::LOCALHOST, 2), b"x");
        ip[9] = IPPROTO_TCP;
        assert!(udp_of_ipv4(&ip).is_none());
    }

    #[test]
    fn contains_finds_needles() {
        assert!(contains(b"abcdef", b"cde"));
        assert!(!contains(b"abcdef", b"xyz"));
        assert!(!contains(b"ab", b"abc"));
    }
}
