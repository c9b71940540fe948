//! The body of the `api` fuzz target (`fuzz/fuzz_targets/api.rs`), also
//! replayed by this crate's tests (`tests/fuzz_regressions.rs`): a
//! request body as the daemon's control API receives it, decoded and
//! checked as its handler does before anything reaches the daemon.

use crate::check::{self, parse_dns_addr, query_param, truncate_utf8, validate_owner, validate_peer_list};
use crate::{dns_name, AllocateRequest, Cidr, DnsAddRequest, DnsRemoveRequest, ExposeRequest, GcRequest};
use crate::{PeerAddrs, ReleaseRequest, RmPeerRequest};

/// The first byte picks the route; the rest is its body (JSON), or the
/// query string of `GET /v1/dns/lookup`.
pub fn request(data: &[u8]) {
    let Some((&route, body)) = data.split_first() else { return };
    let json = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).is_ok();
    match route % 10 {
        0 => {
            if let Ok(r) = serde_json::from_slice::<AllocateRequest>(body) {
                let _ = validate_owner(&r.owner);
            }
        }
        1 => {
            if let Ok(r) = serde_json::from_slice::<ReleaseRequest>(body) {
                let _ = validate_owner(&r.owner);
            }
        }
        2 => {
            if let Ok(r) = serde_json::from_slice::<GcRequest>(body) {
                let _ = r.keep.iter().try_for_each(|o| validate_owner(o));
            }
        }
        3 => {
            if let Ok(r) = serde_json::from_slice::<PeerAddrs>(body) {
                if validate_peer_list(&r.peers).is_ok() {
                    assert!(r.peers.iter().all(|p| !p.is_empty() && p.len() <= check::MAX_ADDR_LEN));
                }
            }
        }
        4 => {
            if let Ok(r) = serde_json::from_slice::<ExposeRequest>(body) {
                if let Some(c) = &r.cidr {
                    let _ = Cidr::parse(c);
                }
            }
        }
        5 => {
            if let Ok(r) = serde_json::from_slice::<DnsAddRequest>(body) {
                if let Ok(n) = dns_name::normalize(&r.name) {
                    assert!(dns_name::is_valid_name(&n), "normalize gave an invalid name {n:?}");
                    let _ = dns_name::fqdn(&n);
                }
                let _ = parse_dns_addr(&r.addr);
                let _ = r.owner.as_deref().map(dns_name::check_owner);
            }
        }
        6 => {
            if let Ok(r) = serde_json::from_slice::<DnsRemoveRequest>(body) {
                let _ = r.addr.as_deref().map(parse_dns_addr);
                let _ = r.name.as_deref().map(dns_name::normalize);
                let _ = r.owner.as_deref().map(dns_name::check_owner);
            }
        }
        7 => {
            if let Ok(r) = serde_json::from_slice::<RmPeerRequest>(body) {
                let _ = r.peer.len();
            }
        }
        8 => {
            let _ = json(body);
            let s = String::from_utf8_lossy(body);
            let _ = crate::parse_addr_or_cidr(&s);
            let encoded = crate::routes::percent_encode(&s);
            let back = query_param(&format!("a=1&name={encoded}"), "name");
            assert_eq!(back.as_deref(), Some(&*s), "percent-encoding does not decode back");
            let _ = crate::routes::dns_lookup(&s);
        }
        _ => {
            let Ok(q) = std::str::from_utf8(body) else { return };
            if let Some(name) = query_param(q, "name") {
                let _ = dns_name::normalize(&name);
            }
            for max in [0, 1, 3, 64, 100] {
                let mut s = q.to_string();
                truncate_utf8(&mut s, max);
                assert!(s.len() <= q.len().max(max + 3), "{} bytes after cutting to {max}", s.len());
            }
        }
    }
}
