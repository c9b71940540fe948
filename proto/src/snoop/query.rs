//! The querier's general queries (IGMPv3, MLDv2) and the time encodings they use.

use super::*;

/// Encodes a value as an IGMPv3 Max Resp Code or QQIC byte (RFC 3376
/// 4.1.1, 4.1.7): literal below 128, else the floating-point form
/// `1 | exp(3) | mant(4)` meaning `(mant | 0x10) << (exp + 3)`. Rounds
/// down, saturates at 31744 (`0xff`). MLDv2's QQIC uses the same format.
pub fn igmp_code_encode(value: u32) -> u8 {
    if value < 128 {
        return value as u8;
    }
    if value >= 0x1f << 10 {
        return 0xff;
    }
    // value in [128, 31744): its top bit is bit 7..=14, so exp is 0..=7.
    let exp = (31 - value.leading_zeros()) - 7;
    let mant = (value >> (exp + 3)) & 0x0f;
    0x80 | ((exp as u8) << 4) | mant as u8
}

/// Decodes an IGMPv3 Max Resp Code or QQIC byte (see [`igmp_code_encode`]).
pub fn igmp_code_decode(code: u8) -> u32 {
    if code < 128 {
        u32::from(code)
    } else {
        (u32::from(code & 0x0f) | 0x10) << (((code >> 4) & 0x07) + 3)
    }
}

/// Encodes milliseconds as an MLDv2 Maximum Response Code (RFC 3810 5.1.3):
/// literal below 32768, else `1 | exp(3) | mant(12)` meaning
/// `(mant | 0x1000) << (exp + 3)`. Rounds down, saturates at 8387584 ms
/// (`0xffff`).
pub fn mld_mrc_encode(ms: u32) -> u16 {
    if ms < 32768 {
        return ms as u16;
    }
    if ms >= 0x1fff << 10 {
        return 0xffff;
    }
    // ms in [32768, 8387584): its top bit is bit 15..=22, so exp is 0..=7.
    let exp = (31 - ms.leading_zeros()) - 15;
    let mant = (ms >> (exp + 3)) & 0x0fff;
    0x8000 | ((exp as u16) << 12) | mant as u16
}

/// Decodes an MLDv2 Maximum Response Code to milliseconds (see
/// [`mld_mrc_encode`]).
pub fn mld_mrc_decode(code: u16) -> u32 {
    if code < 32768 {
        u32::from(code)
    } else {
        (u32::from(code & 0x0fff) | 0x1000) << (((code >> 12) & 0x07) + 3)
    }
}

/// The fe80::/64 link-local address derived from `mac` by modified EUI-64
/// (RFC 4291 appendix A): the universal/local bit flipped, ff:fe inserted.
pub fn link_local_from_mac(mac: [u8; 6]) -> Ipv6Addr {
    Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]])
}

/// The QRV field: the robustness variable if it fits in 3 bits, else 0
/// (RFC 3376 4.1.6, RFC 3810 5.1.8).
pub(super) fn qrv(robustness: u8) -> u8 {
    if robustness > 7 {
        0
    } else {
        robustness
    }
}

/// An IGMPv3 general query frame (to 224.0.0.1, source 0.0.0.0, TTL 1,
/// Router Alert), from `src_mac`.
///
/// `max_resp_ms` is rounded down to tenths of a second (at least 1, since
/// 0 would ask for immediate replies) and encoded per RFC 3376 4.1.1;
/// `query_interval_s` is the QQIC; `robustness` the QRV (0 if above 7). The
/// frame is not padded to 60 bytes (a TAP does not need it).
pub fn igmpv3_general_query(src_mac: [u8; 6], max_resp_ms: u32, robustness: u8, query_interval_s: u32) -> Vec<u8> {
    const IP_HLEN: usize = 24;
    const IGMP_LEN: usize = 12;
    let mut f = Vec::with_capacity(ETH_HLEN + IP_HLEN + IGMP_LEN);
    f.extend_from_slice(&[0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());

    let ip = f.len();
    f.extend_from_slice(&[0x46, 0xc0]); // version 4, IHL 6; DSCP CS6
    f.extend_from_slice(&((IP_HLEN + IGMP_LEN) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0]); // identification; DF
    f.extend_from_slice(&[1, IPPROTO_IGMP, 0, 0]); // TTL 1, protocol, checksum
    f.extend_from_slice(&[0, 0, 0, 0]); // source
    f.extend_from_slice(&[224, 0, 0, 1]); // destination
    f.extend_from_slice(&[0x94, 0x04, 0x00, 0x00]); // Router Alert
    let ip_sum = internet_checksum(0, &f[ip..]);
    f[ip + 10..ip + 12].copy_from_slice(&ip_sum.to_be_bytes());

    let igmp = f.len();
    f.extend_from_slice(&[0x11, igmp_code_encode((max_resp_ms / 100).max(1)), 0, 0]);
    f.extend_from_slice(&[0, 0, 0, 0]); // group: general query
    f.extend_from_slice(&[qrv(robustness), igmp_code_encode(query_interval_s), 0, 0]); // S=0, QRV; QQIC; 0 sources
    let igmp_sum = internet_checksum(0, &f[igmp..]);
    f[igmp + 2..igmp + 4].copy_from_slice(&igmp_sum.to_be_bytes());
    f
}

/// An MLDv2 general query frame (to ff02::1 from the link-local `src_ip`,
/// hop limit 1, Hop-by-Hop Router Alert), from `src_mac`.
///
/// `max_resp_ms` (at least 1) is encoded per RFC 3810 5.1.3,
/// `query_interval_s` as the QQIC, `robustness` as the QRV (0 if above 7).
pub fn mldv2_general_query(
    src_mac: [u8; 6],
    src_ip: std::net::Ipv6Addr,
    max_resp_ms: u32,
    robustness: u8,
    query_interval_s: u32,
) -> Vec<u8> {
    const HBH_LEN: usize = 8;
    const MLD_LEN: usize = 28;
    let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets();
    let src = src_ip.octets();
    let mut f = Vec::with_capacity(ETH_HLEN + IPV6_HLEN + HBH_LEN + MLD_LEN);
    f.extend_from_slice(&[0x33, 0x33, 0x00, 0x00, 0x00, 0x01]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());

    f.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, traffic class 0, flow label 0
    f.extend_from_slice(&((HBH_LEN + MLD_LEN) as u16).to_be_bytes());
    f.extend_from_slice(&[NH_HOP_BY_HOP, 1]); // next header, hop limit 1
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    // Hop-by-Hop: next header ICMPv6, length 0 (8 bytes), Router Alert
    // (type 5, length 2, value 0 = MLD), PadN of 0 data bytes.
    f.extend_from_slice(&[NH_ICMPV6, 0, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00]);

    let mld = f.len();
    f.extend_from_slice(&[MLD_QUERY, 0, 0, 0]); // type, code, checksum
    f.extend_from_slice(&mld_mrc_encode(max_resp_ms.max(1)).to_be_bytes());
    f.extend_from_slice(&[0, 0]); // reserved
    f.extend_from_slice(&[0; 16]); // multicast address :: (general query)
    f.extend_from_slice(&[qrv(robustness), igmp_code_encode(query_interval_s), 0, 0]); // S=0, QRV; QQIC; 0 sources

    let mut sum = internet_sum(0, &src);
    sum = internet_sum(sum, &dst);
    sum = internet_sum(sum, &(MLD_LEN as u32).to_be_bytes());
    sum = internet_sum(sum, &[0, 0, 0, NH_ICMPV6]);
    let mld_sum = internet_checksum(sum, &f[mld..]);
    f[mld + 2..mld + 4].copy_from_slice(&mld_sum.to_be_bytes());
    f
}
