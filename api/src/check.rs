//! Checks of what a control-API request carries, done before the daemon
//! acts on it (`daemon/src/api.rs`): owner ids, peer addresses, DNS
//! addresses, URL query parameters. Pure functions: every input is
//! hostile, none panics (the `api` fuzz target runs them).

use std::net::IpAddr;

/// Longest owner id (container id + interface name).
pub const MAX_OWNER_ID_LEN: usize = 256;
/// Longest peer address (`HOST[:PORT]`) in a request.
pub const MAX_ADDR_LEN: usize = 255;
/// Most peer addresses in one request.
pub const MAX_PEERS_PER_REQUEST: usize = 128;

/// A whole list of peer addresses: not empty, not too long, each valid.
pub fn validate_peer_list(peers: &[String]) -> Result<(), String> {
    if peers.is_empty() {
        return Err("no peer address given".into());
    }
    if peers.len() > MAX_PEERS_PER_REQUEST {
        return Err(format!("too many peer addresses ({}, at most {MAX_PEERS_PER_REQUEST} per request)", peers.len()));
    }
    peers.iter().try_for_each(|p| validate_peer_addr(p))
}

/// An owner id: what CNI gives (`CONTAINERID/IFNAME`), printable, bounded.
pub fn validate_owner(owner: &str) -> Result<(), String> {
    if owner.is_empty() || owner.len() > MAX_OWNER_ID_LEN || !owner.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("owner must be 1 to {MAX_OWNER_ID_LEN} printable characters without spaces"));
    }
    Ok(())
}

/// Syntax check of `HOST[:PORT]`: a DNS name, an IPv4 address, a bare IPv6
/// address, or `[IPv6]`, with an optional port 1-65535. Resolving is the
/// daemon's job.
pub fn validate_peer_addr(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty peer address".into());
    }
    if s.len() > MAX_ADDR_LEN {
        return Err(format!("peer address too long ({} bytes, at most {MAX_ADDR_LEN})", s.len()));
    }
    let bad = || format!("invalid peer address {s:?}: expected HOST[:PORT]");
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("invalid peer address {s:?}: contains whitespace or control characters"));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or_else(bad)?;
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("invalid peer address {s:?}: {inner:?} is not an IPv6 address"));
        }
        match after {
            "" => (None, None),
            _ => (None, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else if s.matches(':').count() >= 2 {
        // A bare IPv6 address cannot carry a port.
        if s.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("invalid peer address {s:?}: write an IPv6 address with a port as [ADDR]:PORT"));
        }
        (None, None)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(s), None),
        }
    };
    if let Some(host) = host {
        validate_host(host).map_err(|why| format!("invalid peer address {s:?}: {why}"))?;
    }
    if let Some(port) = port {
        let ok = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && matches!(port.parse::<u16>(), Ok(p) if p != 0);
        if !ok {
            return Err(format!("invalid peer address {s:?}: port must be a number from 1 to 65535"));
        }
    }
    Ok(())
}

/// A host name or an IP address, syntax only.
fn validate_host(host: &str) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("empty host");
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if host.len() > 253 {
        return Err("host name longer than 253 bytes");
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each part of a host name must be 1 to 63 characters");
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err("a host name may hold only letters, digits, '-', '_' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a part of a host name may not start or end with '-'");
        }
    }
    Ok(())
}

/// An address a DNS name can have: any IPv4 or IPv6 address but the
/// unspecified one.
pub fn parse_dns_addr(s: &str) -> Result<IpAddr, String> {
    let mut shown = s.to_string();
    truncate_utf8(&mut shown, 64);
    let addr: IpAddr = s.parse().map_err(|_| format!("invalid address {shown:?}: expected an IPv4 or IPv6 address"))?;
    if addr.is_unspecified() {
        return Err(format!("{addr} is not an address a name can have"));
    }
    Ok(addr)
}

/// The value of `key` in a URL query string, percent-decoded (`+` is a
/// space); None when absent or not valid UTF-8 after decoding.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    let raw = query.split('&').find_map(|kv| match kv.split_once('=') {
        Some((k, v)) if k == key => Some(v),
        None if kv == key => Some(""),
        _ => None,
    })?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the
/// cut with `...`.
pub fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
}
