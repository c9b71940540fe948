//! IPv6 frames: the extension-header walk, MLDv1/v2 messages parsed by hand, and IPv6 multicast data.

use super::*;

pub(super) fn classify_ipv6(pkt: &[u8]) -> FrameClass {
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
pub(super) fn mld_message(src: &[u8; 16], dst: &[u8; 16], msg: &[u8]) -> Result<Membership, SnoopError> {
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
pub(super) fn v6_at(bytes: &[u8], at: usize) -> Result<Ipv6Addr, SnoopError> {
    bytes.get(at..).and_then(|b| b.first_chunk::<16>()).map(|a| Ipv6Addr::from(*a)).ok_or(SnoopError::Truncated)
}

pub(super) fn v6_group(group: Ipv6Addr) -> Result<IpAddr, SnoopError> {
    if group.is_multicast() {
        Ok(IpAddr::V6(group))
    } else {
        Err(SnoopError::NotMulticast)
    }
}
