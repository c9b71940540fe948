//! The I/O the processes share: finding the overlay address, resolving the
//! symbols' groups through the overlay DNS, and making the UDP sockets the
//! conventions of `ARCHITECTURE.md` call for. Blocking std sockets; a tokio
//! process converts them with `tokio::net::UdpSocket::from_std` (they are
//! returned non-blocking when asked).

use crate::symbols::{Symbol, SymbolTable};
use crate::types::SymbolIndex;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};
use thiserror::Error;

/// UDP port of every orders group.
pub const ORDERS_PORT: u16 = 7701;
/// UDP port of every market-data group.
pub const MD_PORT: u16 = 7702;

/// Why a name did not resolve.
#[derive(Debug, Error)]
pub enum ResolveError {
    /// The DNS server could not be asked.
    #[error("asking {server}: {source}")]
    Io {
        /// The server.
        server: SocketAddr,
        /// The socket error.
        source: io::Error,
    },
    /// No A record came back before the deadline.
    #[error("{name}: no address from {server} within {waited:?}{last}")]
    NotFound {
        /// The name asked.
        name: String,
        /// The server.
        server: SocketAddr,
        /// How long it was tried.
        waited: Duration,
        /// The last answer's code, if one came.
        last: String,
    },
    /// The name is not a valid DNS name.
    #[error("{0}: not a DNS name")]
    BadName(String),
}

/// The overlay address of this host: the source the kernel picks towards
/// the AEX multicast range (which `weavers expose` routes to the bridge).
pub fn overlay_addr() -> io::Result<Ipv4Addr> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.connect(SocketAddrV4::new(Ipv4Addr::new(239, 192, 0, 1), 9))?;
    match s.local_addr()? {
        SocketAddr::V4(a) if !a.ip().is_unspecified() => Ok(*a.ip()),
        _ => Err(io::Error::new(io::ErrorKind::NotFound, "no IPv4 route to 239.192.0.1 (is the host exposed?)")),
    }
}

/// The DNS server of `/etc/resolv.conf` (its first `nameserver`), port 53.
pub fn system_dns() -> io::Result<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf")?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no nameserver in /etc/resolv.conf"))
}

/// Parses `IP` or `IP:PORT` (port 53 by default).
pub fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)).map_err(|_| format!("{s}: not an IP or IP:PORT"))
}

/// Asks `server` for the A records of `name`, retrying (the overlay's DNS
/// learns names by gossip, so a fresh host may not know them yet) until
/// `wait` has passed.
pub fn resolve_v4(server: SocketAddr, name: &str, wait: Duration) -> Result<Vec<Ipv4Addr>, ResolveError> {
    let fqdn = if name.ends_with('.') { name.to_string() } else { format!("{name}.") };
    let qname = Name::from_ascii(&fqdn).map_err(|_| ResolveError::BadName(name.to_string()))?;
    let io = |source| ResolveError::Io { server, source };
    let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
    let sock = UdpSocket::bind(bind).map_err(io)?;
    sock.connect(server).map_err(io)?;
    let started = Instant::now();
    let mut last = String::new();
    let mut id: u16 = std::process::id() as u16;
    let mut buf = [0u8; 4096];
    loop {
        id = id.wrapping_add(1);
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(qname.clone(), RecordType::A));
        let query = m.to_vec().map_err(|e| io(io::Error::other(e.to_string())))?;
        sock.send(&query).map_err(io)?;
        sock.set_read_timeout(Some(Duration::from_millis(300))).map_err(io)?;
        let deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < deadline {
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
                // ICMP port unreachable: no server yet; wait and ask again.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    last = " (connection refused)".into();
                    std::thread::sleep(Duration::from_millis(200));
                    break;
                }
                Err(e) => return Err(io(e)),
            };
            let Ok(reply) = Message::from_vec(&buf[..n]) else { continue };
            if reply.metadata.id != id {
                continue;
            }
            let addrs: Vec<Ipv4Addr> = reply
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect();
            if !addrs.is_empty() {
                return Ok(addrs);
            }
            last = format!(" (last answer: {})", reply.metadata.response_code);
            std::thread::sleep(Duration::from_millis(200));
            break;
        }
        if started.elapsed() >= wait {
            return Err(ResolveError::NotFound { name: name.to_string(), server, waited: started.elapsed(), last });
        }
    }
}

/// Which of a symbol's groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// `TICKER.orders.aex`.
    Orders,
    /// `TICKER.md.aex`.
    MarketData,
}

/// Resolves the chosen group of every symbol in `symbols` through the
/// overlay DNS. Names, not addresses: the answer is what the process uses,
/// whatever the symbols file says.
pub fn resolve_groups<'a>(
    server: SocketAddr,
    symbols: impl IntoIterator<Item = &'a Symbol>,
    kind: GroupKind,
    wait: Duration,
) -> Result<Vec<(SymbolIndex, Ipv4Addr)>, ResolveError> {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    for s in symbols {
        let name = match kind {
            GroupKind::Orders => s.orders_fqdn(),
            GroupKind::MarketData => s.md_fqdn(),
        };
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(300));
        let addrs = resolve_v4(server, &name, left)?;
        out.push((s.index, addrs[0]));
    }
    Ok(out)
}

/// The symbols of `table` whose index is in `ranges` (`0-49,60`), all when None.
pub fn select_symbols<'a>(table: &'a SymbolTable, ranges: Option<&str>) -> Result<Vec<&'a Symbol>, String> {
    let Some(spec) = ranges else { return Ok(table.iter().collect()) };
    let mut wanted = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: SymbolIndex = a.trim().parse().map_err(|_| format!("{part}: not an index or range"))?;
        let b: SymbolIndex = b.trim().parse().map_err(|_| format!("{part}: not an index or range"))?;
        if a > b {
            return Err(format!("{part}: empty range"));
        }
        wanted.push((a, b));
    }
    let picked: Vec<&Symbol> =
        table.iter().filter(|s| wanted.iter().any(|&(a, b)| (a..=b).contains(&s.index))).collect();
    if picked.is_empty() {
        return Err(format!("{spec}: no symbol of the table is in it"));
    }
    Ok(picked)
}

/// A socket that receives `groups` on `port` through the interface with
/// address `iface`, and only those groups (`IP_MULTICAST_ALL` off), sharing
/// the port with other such sockets on the host.
pub fn group_receiver(port: u16, groups: &[Ipv4Addr], iface: Ipv4Addr, nonblocking: bool) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_multicast_all_v4(false)?;
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&SocketAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    for (n, g) in groups.iter().enumerate() {
        if let Err(e) = s.join_multicast_v4(g, &iface) {
            // ENOBUFS: the per-socket membership limit (20 by default).
            if e.raw_os_error() == Some(105) {
                let limit = std::fs::read_to_string("/proc/sys/net/ipv4/igmp_max_memberships").unwrap_or_default();
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "joining group {} of {}: the kernel allows {} memberships per socket; \
                         raise net.ipv4.igmp_max_memberships to at least {}",
                        n + 1,
                        groups.len(),
                        limit.trim(),
                        groups.len()
                    ),
                ));
            }
            return Err(e);
        }
    }
    s.set_nonblocking(nonblocking)?;
    Ok(s.into())
}

/// The process's unicast socket: bound to `addr:port` (0: any port), sending
/// multicast out of that address's interface.
pub fn unicast_socket(addr: Ipv4Addr, port: u16, nonblocking: bool) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_multicast_if_v4(&addr)?;
    s.set_multicast_ttl_v4(1)?;
    s.set_multicast_loop_v4(true)?;
    s.bind(&SocketAddr::from(SocketAddrV4::new(addr, port)).into())?;
    s.set_nonblocking(nonblocking)?;
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_ranges() {
        let t = SymbolTable::shipped();
        assert_eq!(select_symbols(&t, Some("1-5,10")).unwrap().len(), 6);
        assert_eq!(select_symbols(&t, None).unwrap().len(), t.len());
        assert!(select_symbols(&t, Some("5-1")).is_err());
        assert!(select_symbols(&t, Some("x")).is_err());
        assert!(select_symbols(&t, Some("5000")).is_err());
    }

    #[test]
    fn dns_server_syntax() {
        assert_eq!(parse_dns_server("10.0.0.1").unwrap(), "10.0.0.1:53".parse().unwrap());
        assert_eq!(parse_dns_server("10.0.0.1:5353").unwrap(), "10.0.0.1:5353".parse().unwrap());
        assert!(parse_dns_server("nope").is_err());
    }
}
