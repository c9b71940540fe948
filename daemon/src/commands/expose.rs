//! `weavers expose`: gives the bridge an overlay address (the one asked
//! for, or the one this host had) with the route to its prefix, makes sure
//! multicast leaves through the bridge, announces the address in gossip, moves the DNS server onto it
//! and remembers it in the peers file.

use crate::dns::DnsService;
use crate::host::Host;
use crate::netdev::Netdev;
use weavers_api::ExposeResponse;
use weavers_proto::node::Node;

/// The bridge, through netlink.
pub struct Bridge {
    netdev: Netdev,
    name: String,
}

impl Bridge {
    /// The bridge called `name`.
    pub fn new(netdev: Netdev, name: String) -> Self {
        Bridge { netdev, name }
    }

    /// The bridge's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Gives the bridge an overlay address: `cidr`, or the one in the peers
    /// file (an address IPAM picked is given by the caller).
    pub async fn expose(
        &self,
        node: &mut Node,
        host: &mut Host,
        dns: &mut DnsService,
        cidr: Option<String>,
    ) -> Result<ExposeResponse, String> {
        let (addr, len) = match cidr {
            Some(c) => crate::config::parse_cidr(&c).map_err(|e| format!("{c}: {e:#}"))?,
            None => host
                .exposed()
                .and_then(|e| crate::config::parse_cidr(e).ok())
                .ok_or("no address to expose: give one, or let IPAM pick (the caller does)")?,
        };
        if let Some(other) = node.announced_overlay_addrs().iter().find(|(a, _)| *a == addr) {
            return Err(format!("{}/{} is already exposed by another host", other.0, other.1));
        }
        self.netdev.add_address(&self.name, addr, len).await.map_err(|e| e.to_string())?;
        // The containers' gateway may be this very address, put there
        // without its prefix route (see `gateway`): exposing adds it.
        if self.netdev.ensure_prefix_route(&self.name, addr, len).await.map_err(|e| e.to_string())? {
            tracing::info!(address = %format!("{addr}/{len}"), "the containers' gateway is exposed: its prefix route added");
        }
        let route = self.netdev.ensure_multicast_route(&self.name).await.map_err(|e| e.to_string())?;
        node.set_overlay_addr(Some((addr, len)));
        dns.serve_on(addr);
        let text = format!("{addr}/{len}");
        host.peers_file.exposed = Some(text.clone());
        host.save_peers(node);
        Ok(ExposeResponse { address: text, multicast_route_added: route })
    }
}
