//! IPv4 frames: IGMPv1/v2/v3 messages, parsed with etherparse, and IPv4 multicast data.

use super::*;

pub(super) fn classify_ipv4(pkt: &[u8]) -> FrameClass {
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
pub(super) fn igmp_message(ip_header: &[u8], src: Ipv4Addr, msg: &[u8]) -> Result<Membership, SnoopError> {
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

pub(super) fn igmp_query(querier: IpAddr, group: [u8; 4]) -> Result<Membership, SnoopError> {
    let group = if group == [0; 4] { None } else { Some(v4_group(group)?) };
    Ok(Membership::Query { querier, group })
}

pub(super) fn v4_group(octets: [u8; 4]) -> Result<IpAddr, SnoopError> {
    let group = Ipv4Addr::from(octets);
    if group.is_multicast() {
        Ok(IpAddr::V4(group))
    } else {
        Err(SnoopError::NotMulticast)
    }
}

pub(super) fn any_source_report(reporter: IpAddr, group: IpAddr) -> Result<Membership, SnoopError> {
    Ok(Membership::Report {
        reporter,
        records: vec![GroupRecord { kind: RecordKind::IsExclude, group, sources: Vec::new() }],
    })
}
