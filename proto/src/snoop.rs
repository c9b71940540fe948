//! Classifying frames from the TAP for multicast: IGMP/MLD messages (which
//! stay on their host and feed the group table), multicast data (with its
//! group and source, for the replication decision), and everything else.
//! Also builds the general queries the host's querier writes into the TAP.
//!
//! IGMP is parsed with etherparse; MLD by hand. Every parser treats its
//! input as hostile: malformed input is an `Err`, never a panic.
//!
//! [`classify`] runs on every frame read from the TAP. For anything that is
//! not an IGMP/MLD message it only reads a few header fields and never
//! allocates; only a successfully parsed report allocates its records.
//!
//! Choices made where the RFCs leave room, or where a frame is broken:
//!
//! - A malformed Ethernet, IPv4 or fixed IPv6 header makes the frame
//!   [`FrameClass::Other`], except that an IPv4 header whose protocol byte
//!   says IGMP is always [`FrameClass::Control`] (an `Err` if the rest is
//!   broken), so an IGMP message is never forwarded.
//! - IPv4 header checksums are verified for IGMP only (data frames come from
//!   the local kernel and are not our business to police).
//! - A fragmented IGMP message, or an MLD message inside a first fragment, is
//!   `Control(Err(Unsupported))`: real ones are never fragmented. A non-first
//!   IPv6 fragment carries no upper-layer header and is treated as data.
//! - Group records of an unknown type in an IGMPv3/MLDv2 report are skipped
//!   (RFC 3376 4.2.12, RFC 3810 5.2.12); the other records are kept.
//! - A report or query naming a non-multicast group makes the whole message
//!   `Err(NotMulticast)`.
//! - An ICMPv6 message that is not MLD (neighbour discovery, echo...) is not
//!   `Control`: it is data like any other IPv6 packet. A broken IPv6
//!   extension-header chain is treated the same way (we cannot know it hides
//!   MLD, and no host would accept it as such).
//! - MLD validity rules meant for hosts (link-local source, hop limit 1,
//!   Router Alert) are not enforced: a report is learned from whoever sent
//!   it on the bridge.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::IgmpSlice;

/// What a multicast member asks for, per RFC 3376 / RFC 3810 group records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RecordKind {
    /// MODE_IS_INCLUDE (1): current state, only these sources.
    IsInclude,
    /// MODE_IS_EXCLUDE (2): current state, all sources but these.
    IsExclude,
    /// CHANGE_TO_INCLUDE_MODE (3). `TO_IN {}` is a leave.
    ToInclude,
    /// CHANGE_TO_EXCLUDE_MODE (4).
    ToExclude,
    /// ALLOW_NEW_SOURCES (5).
    AllowNew,
    /// BLOCK_OLD_SOURCES (6).
    BlockOld,
}

impl RecordKind {
    /// The record kind for an IGMPv3/MLDv2 record type (1-6); `None` for
    /// any other value (such a record is skipped).
    pub fn from_wire(record_type: u8) -> Option<RecordKind> {
        Some(match record_type {
            1 => RecordKind::IsInclude,
            2 => RecordKind::IsExclude,
            3 => RecordKind::ToInclude,
            4 => RecordKind::ToExclude,
            5 => RecordKind::AllowNew,
            6 => RecordKind::BlockOld,
            _ => return None,
        })
    }

    /// The IGMPv3/MLDv2 record type number (1-6).
    pub fn to_wire(self) -> u8 {
        match self {
            RecordKind::IsInclude => 1,
            RecordKind::IsExclude => 2,
            RecordKind::ToInclude => 3,
            RecordKind::ToExclude => 4,
            RecordKind::AllowNew => 5,
            RecordKind::BlockOld => 6,
        }
    }
}

/// One group record of a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRecord {
    /// The record type (filter mode or change).
    pub kind: RecordKind,
    /// The multicast group (224.0.0.0/4 or ff00::/8).
    pub group: IpAddr,
    /// The source list, as sent (same family as `group`).
    pub sources: Vec<IpAddr>,
}

/// A membership message seen on the TAP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Membership {
    /// A report from `reporter` (its IP source address). IGMPv1/v2 and
    /// MLDv1 reports are expressed as `IsExclude` with no sources (any
    /// source); v3/v2 reports carry their records as sent.
    Report { reporter: IpAddr, records: Vec<GroupRecord> },
    /// IGMPv2 leave or MLDv1 done for `group` (same as `ToInclude {}`).
    Leave { reporter: IpAddr, group: IpAddr },
    /// A query from another querier (`group` is `None` for a general query).
    Query { querier: IpAddr, group: Option<IpAddr> },
}

/// Why an IGMP/MLD message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnoopError {
    /// A length field points past the end of the message, or a message is
    /// shorter than its type requires.
    #[error("truncated or inconsistent lengths")]
    Truncated,
    /// The IGMP, IPv4 header or ICMPv6 checksum does not verify.
    #[error("bad checksum")]
    Checksum,
    /// A group address outside 224.0.0.0/4 or ff00::/8.
    #[error("not a multicast group address")]
    NotMulticast,
    /// An IGMP type we do not handle (DVMRP, mtrace, router discovery...)
    /// or a fragmented IGMP/MLD message.
    #[error("unsupported message")]
    Unsupported,
}

/// What a frame from the TAP is, for multicast purposes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameClass {
    /// An IGMP or MLD message: never forwarded to peers. `Err` if malformed
    /// (the caller counts and drops it).
    Control(Result<Membership, SnoopError>),
    /// An IP multicast data packet to `group` from `source`.
    Multicast { group: IpAddr, source: IpAddr },
    /// Anything else (unicast, broadcast, ARP, non-IP multicast...).
    Other,
}

const ETH_HLEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPPROTO_IGMP: u8 = 2;
const IPV6_HLEN: usize = 40;
const NH_HOP_BY_HOP: u8 = 0;
const NH_ROUTING: u8 = 43;
const NH_FRAGMENT: u8 = 44;
const NH_ICMPV6: u8 = 58;
const NH_DEST_OPTS: u8 = 60;
/// At most this many IPv6 extension headers are walked before giving up.
const MAX_EXT_HEADERS: usize = 8;

const MLD_QUERY: u8 = 130;
const MLD_V1_REPORT: u8 = 131;
const MLD_V1_DONE: u8 = 132;
const MLD_V2_REPORT: u8 = 143;

/// Classifies an Ethernet frame (no VLAN tag support needed).
///
/// Frames tagged 802.1Q (ethertype 0x8100), ARP and every other ethertype
/// are [`FrameClass::Other`]. An IPv4/IPv6 frame may carry Ethernet padding
/// after the IP packet; it is ignored.
pub fn classify(frame: &[u8]) -> FrameClass {
    let Some((header, payload)) = frame.split_first_chunk::<ETH_HLEN>() else {
        return FrameClass::Other;
    };
    match u16::from_be_bytes([header[12], header[13]]) {
        ETHERTYPE_IPV4 => classify_ipv4(payload),
        ETHERTYPE_IPV6 => classify_ipv6(payload),
        _ => FrameClass::Other,
    }
}

fn classify_ipv4(pkt: &[u8]) -> FrameClass {
    let Some(h) = pkt.first_chunk::<20>() else {
        return FrameClass::Other;
    };
    if h[0] >> 4 != 4 {
        return FrameClass::Other;
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let protocol = h[9];
    let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
    let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
    if ihl < 20 || total < ihl || total > pkt.len() {
        return if protocol == IPPROTO_IGMP {
            FrameClass::Control(Err(SnoopError::Truncated))
        } else {
            FrameClass::Other
        };
    }
    if protocol == IPPROTO_IGMP {
        return FrameClass::Control(igmp_message(&pkt[..ihl], src, &pkt[ihl..total]));
    }
    if dst.is_multicast() {
        FrameClass::Multicast { group: IpAddr::V4(dst), source: IpAddr::V4(src) }
    } else {
        FrameClass::Other
    }
}

/// Parses the IGMP message `msg` (exactly the IP payload) of a packet whose
/// IPv4 header (with options) is `ip_header`.
fn igmp_message(ip_header: &[u8], src: Ipv4Addr, msg: &[u8]) -> Result<Membership, SnoopError> {
    if internet_checksum(0, ip_header) != 0 {
        return Err(SnoopError::Checksum);
    }
    // More Fragments flag or a fragment offset.
    if u16::from_be_bytes([ip_header[6], ip_header[7]]) & 0x3fff != 0 {
        return Err(SnoopError::Unsupported);
    }
    let igmp = IgmpSlice::from_slice(msg).map_err(|_| SnoopError::Truncated)?;
    if let IgmpSlice::Unknown(_) = igmp {
        return Err(SnoopError::Unsupported);
    }
    if !igmp.is_checksum_valid() {
        return Err(SnoopError::Checksum);
    }
    let reporter = IpAddr::V4(src);
    match igmp {
        IgmpSlice::MembershipQuery(q) => igmp_query(reporter, q.group_address().octets),
        IgmpSlice::MembershipQueryWithSources(q) => igmp_query(reporter, q.group_address().octets),
        IgmpSlice::MembershipReportV1(r) => any_source_report(reporter, v4_group(r.group_address().octets)?),
        IgmpSlice::MembershipReportV2(r) => any_source_report(reporter, v4_group(r.group_address().octets)?),
        IgmpSlice::LeaveGroup(l) => Ok(Membership::Leave { reporter, group: v4_group(l.group_address().octets)? }),
        IgmpSlice::MembershipReportV3(r) => {
            let payload = r.payload();
            // Each record is at least 8 bytes: never reserve more than fits.
            let mut records = Vec::with_capacity(usize::from(r.num_of_records()).min(payload.len() / 8));
            for record in r.group_records() {
                let record = record.map_err(|_| SnoopError::Truncated)?;
                let Some(kind) = RecordKind::from_wire(record.record_type().0) else {
                    continue;
                };
                let group = v4_group(record.multicast_address())?;
                let sources = record.source_addresses().map(|s| IpAddr::V4(Ipv4Addr::from(s))).collect();
                records.push(GroupRecord { kind, group, sources });
            }
            Ok(Membership::Report { reporter, records })
        }
        IgmpSlice::Unknown(_) => Err(SnoopError::Unsupported),
    }
}

fn igmp_query(querier: IpAddr, group: [u8; 4]) -> Result<Membership, SnoopError> {
    let group = if group == [0; 4] { None } else { Some(v4_group(group)?) };
    Ok(Membership::Query { querier, group })
}

fn v4_group(octets: [u8; 4]) -> Result<IpAddr, SnoopError> {
    let group = Ipv4Addr::from(octets);
    if group.is_multicast() {
        Ok(IpAddr::V4(group))
    } else {
        Err(SnoopError::NotMulticast)
    }
}

fn any_source_report(reporter: IpAddr, group: IpAddr) -> Result<Membership, SnoopError> {
    Ok(Membership::Report {
        reporter,
        records: vec![GroupRecord { kind: RecordKind::IsExclude, group, sources: Vec::new() }],
    })
}

fn classify_ipv6(pkt: &[u8]) -> FrameClass {
    let Some(h) = pkt.first_chunk::<IPV6_HLEN>() else {
        return FrameClass::Other;
    };
    if h[0] >> 4 != 6 {
        return FrameClass::Other;
    }
    let end = IPV6_HLEN + usize::from(u16::from_be_bytes([h[4], h[5]]));
    if end > pkt.len() {
        return FrameClass::Other;
    }
    let body = &pkt[IPV6_HLEN..end];
    let src: [u8; 16] = h[8..24].try_into().unwrap_or([0; 16]);
    let dst: [u8; 16] = h[24..40].try_into().unwrap_or([0; 16]);
    let data = || {
        if dst[0] == 0xff {
            FrameClass::Multicast { group: IpAddr::V6(Ipv6Addr::from(dst)), source: IpAddr::V6(Ipv6Addr::from(src)) }
        } else {
            FrameClass::Other
        }
    };

    let mut next = h[6];
    let mut off = 0usize;
    let mut fragmented = false;
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS => {
                let Some(ext) = body.get(off..off + 2) else { return data() };
                let len = (usize::from(ext[1]) + 1) * 8;
                if off + len > body.len() {
                    return data();
                }
                next = ext[0];
                off += len;
            }
            NH_FRAGMENT => {
                let Some(ext) = body.get(off..off + 8) else { return data() };
                let offset_flags = u16::from_be_bytes([ext[2], ext[3]]);
                if offset_flags & 0xfff8 != 0 {
                    // Not the first fragment: no upper-layer header here.
                    return data();
                }
                fragmented = true;
                next = ext[0];
                off += 8;
            }
            NH_ICMPV6 => {
                let msg = &body[off..];
                return match msg.first() {
                    Some(&(MLD_QUERY | MLD_V1_REPORT | MLD_V1_DONE | MLD_V2_REPORT)) if fragmented => {
                        FrameClass::Control(Err(SnoopError::Unsupported))
                    }
                    Some(&(MLD_QUERY | MLD_V1_REPORT | MLD_V1_DONE | MLD_V2_REPORT)) => {
                        FrameClass::Control(mld_message(&src, &dst, msg))
                    }
                    _ => data(),
                };
            }
            _ => return data(),
        }
    }
    data()
}

/// Parses the MLD message `msg` (the whole ICMPv6 message, whose first
/// byte is one of the MLD types).
fn mld_message(src: &[u8; 16], dst: &[u8; 16], msg: &[u8]) -> Result<Membership, SnoopError> {
    let len = u32::try_from(msg.len()).map_err(|_| SnoopError::Truncated)?;
    if len < 8 {
        return Err(SnoopError::Truncated);
    }
    // Pseudo-header: source, destination, upper-layer length, next header.
    let mut sum = internet_sum(0, src);
    sum = internet_sum(sum, dst);
    sum = internet_sum(sum, &len.to_be_bytes());
    sum = internet_sum(sum, &[0, 0, 0, NH_ICMPV6]);
    if fold(internet_sum(sum, msg)) != 0xffff {
        return Err(SnoopError::Checksum);
    }
    let reporter = IpAddr::V6(Ipv6Addr::from(*src));
    match msg[0] {
        MLD_QUERY => {
            // RFC 3810 8.1: 24 bytes is MLDv1, 28 or more MLDv2, else invalid.
            let group = v6_at(msg, 8)?;
            match msg.len() {
                24 => {}
                25..=27 => return Err(SnoopError::Truncated),
                _ => {
                    let sources = usize::from(u16::from_be_bytes([msg[26], msg[27]]));
                    if 28 + sources * 16 > msg.len() {
                        return Err(SnoopError::Truncated);
                    }
                }
            }
            let group = if group.is_unspecified() { None } else { Some(v6_group(group)?) };
            Ok(Membership::Query { querier: reporter, group })
        }
        MLD_V1_REPORT => any_source_report(reporter, v6_group(v6_at(msg, 8)?)?),
        MLD_V1_DONE => Ok(Membership::Leave { reporter, group: v6_group(v6_at(msg, 8)?)? }),
        MLD_V2_REPORT => {
            let count = usize::from(u16::from_be_bytes([msg[6], msg[7]]));
            // Each record is at least 20 bytes: never reserve more than fits.
            let mut records = Vec::with_capacity(count.min((msg.len() - 8) / 20));
            let mut rest = &msg[8..];
            for _ in 0..count {
                let Some(head) = rest.first_chunk::<20>() else {
                    return Err(SnoopError::Truncated);
                };
                let aux_len = usize::from(head[1]) * 4;
                let n_sources = usize::from(u16::from_be_bytes([head[2], head[3]]));
                let record_len = 20 + n_sources * 16 + aux_len;
                if record_len > rest.len() {
                    return Err(SnoopError::Truncated);
                }
                let (record, tail) = rest.split_at(record_len);
                rest = tail;
                let Some(kind) = RecordKind::from_wire(head[0]) else {
                    continue;
                };
                let group = v6_group(v6_at(record, 4)?)?;
                let sources = record[20..20 + n_sources * 16]
                    .chunks_exact(16)
                    .map(|s| IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(s).unwrap_or([0; 16]))))
                    .collect();
                records.push(GroupRecord { kind, group, sources });
            }
            Ok(Membership::Report { reporter, records })
        }
        _ => Err(SnoopError::Unsupported),
    }
}

/// The IPv6 address at `at` in `bytes`, or `Truncated`.
fn v6_at(bytes: &[u8], at: usize) -> Result<Ipv6Addr, SnoopError> {
    bytes.get(at..).and_then(|b| b.first_chunk::<16>()).map(|a| Ipv6Addr::from(*a)).ok_or(SnoopError::Truncated)
}

fn v6_group(group: Ipv6Addr) -> Result<IpAddr, SnoopError> {
    if group.is_multicast() {
        Ok(IpAddr::V6(group))
    } else {
        Err(SnoopError::NotMulticast)
    }
}

/// Adds `data` to a running RFC 1071 sum (big-endian 16-bit words; an odd
/// last byte is padded with zero). Only valid while `data` starts at an even
/// offset of the checksummed message.
fn internet_sum(mut sum: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// Folds a running sum to 16 bits (one's complement addition).
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The RFC 1071 checksum of `data` on top of the running sum `sum`: zero
/// when `data` already holds a correct checksum; otherwise the value to
/// store in a zeroed checksum field.
fn internet_checksum(sum: u64, data: &[u8]) -> u16 {
    !fold(internet_sum(sum, data))
}

/// Whether `group` is link-local scope (224.0.0.0/24 or ff02::/16): such
/// groups go to every peer.
pub fn is_link_local_group(group: &IpAddr) -> bool {
    match group {
        IpAddr::V4(a) => a.octets()[..3] == [224, 0, 0],
        IpAddr::V6(a) => a.segments()[0] == 0xff02,
    }
}

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
fn qrv(robustness: u8) -> u8 {
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

#[cfg(test)]
mod tests {
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
        assert_eq!(
            classify(&mld_frame(all, mldv2_query(ip6("ff3e::1"), &[ip6("2001:db8::1")]))),
            q(Some(v6("ff3e::1")))
        );
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
        let arp = eth(
            [0xff; 6],
            0x0806,
            &[0, 1, 8, 0, 6, 4, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
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
}
