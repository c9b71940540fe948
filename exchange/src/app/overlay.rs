//! Where a process meets the overlay: the DNS server it asks for the
//! groups' names, the overlay address it binds and joins on, and how long
//! it waits for names to appear (they travel by gossip). The flags are the
//! same for every process that has them.

use crate::net;
use anyhow::Context;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// `--dns`, `--bind`, `--resolve-wait` (flattened into a process's flags).
#[derive(Debug, Clone, clap::Args)]
pub struct OverlayArgs {
    /// The overlay DNS server, `IP[:PORT]`; default the first nameserver of
    /// /etc/resolv.conf
    #[arg(long, value_parser = net::parse_dns_server)]
    pub dns: Option<SocketAddr>,
    /// The overlay address to bind and join on; default the source address
    /// the kernel picks towards 239.192.0.1
    #[arg(long)]
    pub bind: Option<Ipv4Addr>,
    /// How long to keep asking the DNS for the groups' names, in seconds
    #[arg(long, default_value_t = 30)]
    pub resolve_wait: u64,
}

impl OverlayArgs {
    /// The DNS server: `--dns`, else the system's.
    pub fn dns(&self) -> anyhow::Result<SocketAddr> {
        match self.dns {
            Some(d) => Ok(d),
            None => net::system_dns().context("finding the DNS server (give --dns)"),
        }
    }

    /// The overlay address: `--bind`, else the route's.
    pub fn bind(&self) -> anyhow::Result<Ipv4Addr> {
        match self.bind {
            Some(b) => Ok(b),
            None => net::overlay_addr().context("finding the overlay address (give --bind)"),
        }
    }

    /// How long names may take to resolve.
    pub fn wait(&self) -> Duration {
        Duration::from_secs(self.resolve_wait)
    }
}
