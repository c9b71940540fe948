//! The paths of the control API (HTTP/1.1 over the daemon's unix socket);
//! [`types`](crate::types) says which body each takes and answers.

/// `GET`: [`Status`](crate::Status).
pub const STATUS: &str = "/v1/status";
/// `GET`: `[PeerInfo]`; `POST`/`DELETE` with [`PeerAddrs`](crate::PeerAddrs).
pub const PEERS: &str = "/v1/peers";
/// `POST` with [`ExposeRequest`](crate::ExposeRequest).
pub const EXPOSE: &str = "/v1/expose";
/// `GET`: `[GroupInfo]`.
pub const GROUPS: &str = "/v1/groups";
/// `GET`: [`IpamStatus`](crate::IpamStatus).
pub const IPAM: &str = "/v1/ipam";
/// `POST` with [`AllocateRequest`](crate::AllocateRequest).
pub const IPAM_ALLOCATE: &str = "/v1/ipam/allocate";
/// `POST` with [`ReleaseRequest`](crate::ReleaseRequest).
pub const IPAM_RELEASE: &str = "/v1/ipam/release";
/// `POST` with [`GcRequest`](crate::GcRequest).
pub const IPAM_GC: &str = "/v1/ipam/gc";
/// `POST` with [`RmPeerRequest`](crate::RmPeerRequest).
pub const IPAM_RMPEER: &str = "/v1/ipam/rmpeer";
/// `GET`: `[DnsRecordInfo]`; `POST` with [`DnsAddRequest`](crate::DnsAddRequest);
/// `DELETE` with [`DnsRemoveRequest`](crate::DnsRemoveRequest).
pub const DNS: &str = "/v1/dns";
/// `GET ?name=NAME`: [`DnsLookup`](crate::DnsLookup); see [`dns_lookup`].
pub const DNS_LOOKUP: &str = "/v1/dns/lookup";
/// `GET`: [`DnsStats`](crate::DnsStats).
pub const DNS_STATS: &str = "/v1/dns/stats";

/// `POST` with [`PingRequest`](crate::PingRequest): [`PingResult`](crate::PingResult).
pub const PING: &str = "/v1/ping";

/// `GET`: `[RevocationInfo]`; `POST` with
/// [`RevocationRequest`](crate::RevocationRequest) (network-authority
/// mode).
pub const REVOCATIONS: &str = "/v1/revocations";

/// The path that looks `name` up: `/v1/dns/lookup?name=NAME`, the name
/// percent-encoded.
pub fn dns_lookup(name: &str) -> String {
    format!("{DNS_LOOKUP}?name={}", percent_encode(name))
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for a
/// query string.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(percent_encode("AAPL.orders.aex"), "AAPL.orders.aex");
        assert_eq!(percent_encode("a b&c=%"), "a%20b%26c%3D%25");
        assert_eq!(percent_encode("é"), "%C3%A9");
        assert_eq!(dns_lookup("a b"), "/v1/dns/lookup?name=a%20b");
    }
}
