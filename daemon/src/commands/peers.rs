//! `weavers peer add|rm` and `--peer`: peers configured by address, as
//! typed and as resolved, handed to the node as bootstrap addresses; those
//! added by hand are remembered in the peers file.

use crate::host::Host;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use weavers_api::PeerAddrs;
use weavers_proto::node::Node;

/// UDP port used when a peer address has none.
pub const DEFAULT_PORT: u16 = 6783;

/// The peers configured by address.
#[derive(Debug)]
pub struct Peers {
    listen: SocketAddr,
    /// `HOST[:PORT]` strings as configured, with what they resolved to.
    configured: Vec<(String, SocketAddr)>,
}

impl Peers {
    /// No peers yet; names resolve preferring `listen`'s address family.
    pub fn new(listen: SocketAddr) -> Self {
        Peers { listen, configured: Vec::new() }
    }

    /// The mesh's UDP address.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Resolves and connects to `addrs`; with `remember`, keeps them in the
    /// state dir. All are resolved before any is added, so a typo changes
    /// nothing.
    pub async fn add(
        &mut self,
        node: &mut Node,
        host: &mut Host,
        addrs: Vec<String>,
        remember: bool,
    ) -> Result<PeerAddrs, String> {
        let mut resolved = Vec::new();
        for a in &addrs {
            resolved.push((a.clone(), resolve(a, self.listen).await?));
        }
        let now = Instant::now();
        let mut added = Vec::new();
        for (text, addr) in resolved {
            if node.add_bootstrap(addr, now) {
                self.configured.push((text.clone(), addr));
            }
            if remember && !host.peers_file.added.contains(&text) {
                host.peers_file.added.push(text.clone());
            }
            added.push(text);
        }
        if remember {
            host.save_peers(node);
        }
        Ok(PeerAddrs { peers: added })
    }

    /// Forgets `addrs` (as typed or as resolved), here and in the state dir.
    pub fn remove(&mut self, node: &mut Node, host: &mut Host, addrs: Vec<String>) -> Result<PeerAddrs, String> {
        let mut removed = Vec::new();
        for a in addrs {
            let hits: Vec<SocketAddr> =
                self.configured.iter().filter(|(t, sa)| *t == a || sa.to_string() == a).map(|(_, sa)| *sa).collect();
            let remembered = host.peers_file.added.contains(&a);
            if hits.is_empty() && !remembered {
                return Err(format!("{a} is not a configured peer (see `weavers status` for the list)"));
            }
            for sa in &hits {
                node.remove_bootstrap(*sa);
            }
            self.configured.retain(|(t, sa)| *t != a && !hits.contains(sa));
            host.peers_file.added.retain(|t| *t != a);
            removed.push(a);
        }
        host.save_peers(node);
        Ok(PeerAddrs { peers: removed })
    }
}

/// Resolves `HOST`, `HOST:PORT`, `IP`, `IP:PORT` or `[IPv6]:PORT`,
/// preferring the listening socket's address family.
pub async fn resolve(text: &str, listen: SocketAddr) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(sa) = t.parse::<SocketAddr>() {
        return Ok(sa);
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    let with_port = match t.rsplit_once(':') {
        Some((_, p)) if p.parse::<u16>().is_ok() => t.to_string(),
        _ => format!("{t}:{DEFAULT_PORT}"),
    };
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host(&with_port).await.map_err(|e| format!("cannot resolve {t}: {e}"))?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4() == listen.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{t} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn peer_addresses_resolve() {
        let listen: SocketAddr = "0.0.0.0:6783".parse().unwrap();
        assert_eq!(resolve("10.0.0.1", listen).await.unwrap(), "10.0.0.1:6783".parse().unwrap());
        assert_eq!(resolve("10.0.0.1:7000", listen).await.unwrap(), "10.0.0.1:7000".parse().unwrap());
        assert_eq!(resolve("[::1]:7000", listen).await.unwrap(), "[::1]:7000".parse().unwrap());
        assert_eq!(resolve("localhost", listen).await.unwrap(), "127.0.0.1:6783".parse().unwrap());
        assert!(resolve("no-such-host.invalid", listen).await.is_err());
    }
}
