//! Structure-aware inputs: gossip records, IPAM records and donations
//! built from fuzz bytes so that most of them are valid enough to pass
//! the shape checks and reach the code behind them, with values chosen
//! near the limits and the hosts the target knows.

use crate::dns::{DnsEntry, DnsTombstone};
use crate::gossip::record::{PeerRecord, MAX_ENDPOINTS, MAX_UNREACHABLE};
use crate::groups::{FilterMode, GroupFilter};
use crate::ipam::{Donation, Entry, IpamRecord, Range, Ring, SeedId};
use crate::keys::PublicKey;
use arbitrary::Unstructured;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

type U<'a, 'b> = &'a mut Unstructured<'b>;

fn pick<T: Copy>(u: U, from: &[T]) -> T {
    from[u.choose_index(from.len()).unwrap_or(0)]
}

fn small(u: U, max: usize) -> usize {
    u.int_in_range(0..=max).unwrap_or(0)
}

/// A seed id as hosts may send it: this ring's, a near miss, or another.
pub(super) fn seed_like(u: U, ring: &Ring, others: &[PublicKey]) -> SeedId {
    match (ring.seed_id(), small(u, 3)) {
        (Some(s), 0 | 1) => s,
        (Some(s), 2) => SeedId { stamp: s.stamp.wrapping_add(small(u, 2) as u64), ..s },
        _ => {
            let base = Ipv4Addr::from(u.arbitrary::<u32>().unwrap_or(0));
            let prefix = u.arbitrary::<u8>().unwrap_or(12);
            let range = Range::new(base, prefix).unwrap_or_default();
            SeedId { stamp: u.arbitrary().unwrap_or(0), seeder: pick(u, others), range }
        }
    }
}

/// Tokens `(start, version)`: mostly ascending and inside `size`.
fn tokens(u: U, size: u32, max: usize) -> Vec<(u32, u32)> {
    let n = small(u, max);
    let mut t: Vec<(u32, u32)> = (0..n)
        .map(|_| {
            let s = if u.ratio(7, 8).unwrap_or(true) {
                u.int_in_range(0..=size.saturating_sub(1)).unwrap_or(0)
            } else {
                u.arbitrary().unwrap_or(0)
            };
            (s, u.int_in_range(0..=5u32).unwrap_or(1))
        })
        .collect();
    if u.ratio(7, 8).unwrap_or(true) {
        t.sort_unstable();
        t.dedup_by_key(|x| x.0);
    }
    t
}

/// An IPAM record another host could publish.
pub(super) fn ipam_record(u: U, ring: &Ring, others: &[PublicKey]) -> IpamRecord {
    let seed = seed_like(u, ring, others);
    let size = seed.range.size();
    let tokens = tokens(u, size, 8);
    let free =
        if u.ratio(3, 4).unwrap_or(true) { u.int_in_range(0..=size).unwrap_or(0) } else { u.arbitrary().unwrap_or(0) };
    IpamRecord { seed, tokens, free }
}

/// A donation from `from` to `to` (or, sometimes, a forged one).
pub(super) fn donation(u: U, ring: &Ring, from: PublicKey, to: PublicKey) -> Donation {
    let seed = seed_like(u, ring, &[from, to]);
    let size = seed.range.size();
    let tokens = tokens(u, size, 4);
    let end = if u.arbitrary::<bool>().unwrap_or(false) {
        None
    } else {
        let at = u.int_in_range(0..=size.saturating_sub(1)).unwrap_or(0);
        Some((at, Entry { owner: pick(u, &[from, to]), version: u.int_in_range(0..=4u32).unwrap_or(1) }))
    };
    let (from, to) = if u.ratio(1, 8).unwrap_or(false) { (to, from) } else { (from, to) };
    Donation { seed, from, to, tokens, end }
}

fn ip(u: U) -> IpAddr {
    match small(u, 3) {
        0 => IpAddr::V4(Ipv4Addr::from(u.arbitrary::<u32>().unwrap_or(0))),
        1 => IpAddr::V6(Ipv6Addr::from(u.arbitrary::<u128>().unwrap_or(0))),
        2 => IpAddr::V4(Ipv4Addr::new(10, 32, 0, u.arbitrary().unwrap_or(1))),
        _ => IpAddr::V4(Ipv4Addr::new(192, 0, 2, u.arbitrary().unwrap_or(1))),
    }
}

fn group(u: U) -> IpAddr {
    match small(u, 3) {
        0 => IpAddr::V4(Ipv4Addr::new(239, 1, 0, u.arbitrary().unwrap_or(1))),
        1 => IpAddr::V4(Ipv4Addr::new(224, 0, 0, u.arbitrary().unwrap_or(1))),
        2 => IpAddr::V6(Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0, u.arbitrary().unwrap_or(1))),
        _ => ip(u),
    }
}

fn filter(u: U) -> GroupFilter {
    let group = group(u);
    let mode = if u.arbitrary::<bool>().unwrap_or(false) { FilterMode::Include } else { FilterMode::Exclude };
    let n = if u.ratio(1, 16).unwrap_or(false) { 300 } else { small(u, 4) };
    let mut sources: Vec<IpAddr> =
        (0..n).map(|i| if i < 4 { ip(u) } else { IpAddr::V4(Ipv4Addr::from(i as u32)) }).collect();
    if u.ratio(7, 8).unwrap_or(true) {
        sources.sort_unstable();
        sources.dedup();
    }
    GroupFilter { group, mode, sources }
}

fn name(u: U) -> String {
    match small(u, 3) {
        0 => "web".into(),
        1 => format!("s{}.orders.aex", small(u, 9)),
        2 => "many".into(),
        _ => u.arbitrary::<&str>().unwrap_or("x").chars().take(80).collect(),
    }
}

/// A record `key`'s author could sign; `known` are keys the target knows
/// (their short ids go into the unreachable list, their keys into
/// tombstones and seeds).
pub(super) fn peer_record(u: U, key: PublicKey, version: u64, ring: &Ring, known: &[PublicKey]) -> PeerRecord {
    let mut r = PeerRecord::new(key, version, "x");
    r.name = if u.ratio(3, 4).unwrap_or(true) {
        format!("h{}", small(u, 9))
    } else {
        u.arbitrary::<&str>().unwrap_or("").chars().take(70).collect()
    };
    let ports = [6783u16, 1, 65535];
    r.endpoints = (0..small(u, MAX_ENDPOINTS + 1)).map(|_| SocketAddr::new(ip(u), pick(u, &ports))).collect();
    let mut unreachable: Vec<u64> = known.iter().map(|k| k.short_id().0).collect();
    unreachable.truncate(small(u, known.len()));
    if u.ratio(1, 16).unwrap_or(false) {
        unreachable.extend(0..MAX_UNREACHABLE as u64 + 1);
    }
    r.unreachable = unreachable;
    r.unreachable_more = u.ratio(1, 8).unwrap_or(false);
    if u.arbitrary::<bool>().unwrap_or(false) {
        r.overlay_addr = Some((ip(u), u.int_in_range(0..=130u8).unwrap_or(24)));
    }
    r.groups = (0..small(u, 6)).map(|_| filter(u)).collect();
    if u.ratio(3, 4).unwrap_or(true) {
        r.groups.sort();
        r.groups.dedup_by(|a, b| a.group == b.group);
    }
    let owners = [None, Some("cni:abc/eth0".to_string()), Some("bad owner".to_string())];
    r.dns = (0..small(u, 4))
        .map(|_| DnsEntry {
            name: name(u),
            addr: ip(u),
            owner: owners[small(u, 2)].clone(),
            since: u.int_in_range(0..=version).unwrap_or(0),
        })
        .collect();
    r.dns_tombstones = (0..small(u, 2))
        .map(|_| DnsTombstone {
            name: name(u),
            addr: ip(u),
            origin: pick(u, known),
            version: u.arbitrary().unwrap_or(0),
        })
        .collect();
    if u.ratio(3, 4).unwrap_or(true) {
        r.ipam = Some(ipam_record(u, ring, known));
    }
    r
}
