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

mod igmp;
mod mld;
mod query;

use igmp::{any_source_report, classify_ipv4};
use mld::classify_ipv6;
pub use query::*;

#[cfg(test)]
mod tests;
