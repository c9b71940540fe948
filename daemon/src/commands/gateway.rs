//! The containers' gateway: the bridge has an overlay address whenever a
//! container is attached, so that every container gets a gateway and a DNS
//! server, on a host that was never exposed too.
//!
//! On such a host the address is the host's own IPAM address (owner
//! [`HOST_OWNER`], the one `weavers expose` without an address takes
//! later, so exposing keeps it), put on the bridge without its prefix route
//! and reached through a routing table and a rule of its own
//! ([`Netdev::ensure_source_routing`]): the host's routing table does not
//! change, and only `weavers expose` routes the host's own traffic into the
//! overlay. The DNS server serves on it for as long as the daemon runs. It
//! is taken at the first container's allocation, or at start when
//! containers are attached to the bridge (kept across a restart, see
//! [`Netdev::teardown`]); `ipam.json` in the state dir remembers it.

use super::ipam::HOST_OWNER;
use crate::dns::DnsService;
use crate::host::Host;
use crate::kernel_io::Plane;
use crate::netdev::Netdev;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;
use weavers_proto::ipam::IpamError;

/// The gateway address this daemon put on the bridge, if any.
pub struct Gateway {
    netdev: Netdev,
    bridge: String,
    tap: String,
    /// The host's IPAM address, on the bridge without its prefix route.
    addr: Option<(Ipv4Addr, u8)>,
    /// Containers are attached but the address could not be taken yet
    /// (the mesh has not shared out the range): try again each tick.
    wanted: bool,
    /// Why the last attempt failed, logged once per reason.
    last_error: Option<String>,
}

impl Gateway {
    /// No address yet, for the bridge `bridge` whose TAP is `tap`.
    pub fn new(netdev: Netdev, bridge: String, tap: String) -> Self {
        Gateway { netdev, bridge, tap, addr: None, wanted: false, last_error: None }
    }

    /// The address containers get as their gateway and DNS server: the
    /// exposed one, else the one put on the bridge for them.
    pub fn address(&self, host: &Host) -> Option<String> {
        match host.exposed() {
            Some(e) => e.split('/').next().map(str::to_string),
            None => self.addr.map(|(a, _)| a.to_string()),
        }
    }

    /// Makes sure containers have a gateway (before a container's
    /// allocation, and each tick while [`Gateway::wanted`]): nothing to do
    /// when the host is exposed or the address is there; else takes the
    /// host's IPAM address and puts it on the bridge. A failure is logged
    /// and retried at the next tick; the container is given no gateway
    /// meanwhile.
    pub async fn ensure(&mut self, plane: &mut Plane, host: &Host, dns: &mut DnsService) {
        if host.exposed().is_some() || self.addr.is_some() {
            self.wanted = false;
            return;
        }
        self.wanted = true;
        let now = Instant::now();
        let (addr, len) = match plane.with_io(|node, io| node.ipam_allocate(now, HOST_OWNER, io)) {
            Ok(a) => a,
            // Containers' allocations wait for the same thing; they say so.
            Err(IpamError::NotSeeded | IpamError::NoSpace) => return,
            Err(e) => return self.failed(format!("no address from IPAM: {e}")),
        };
        if let Err(e) = host.save_ipam(&plane.node) {
            plane.node.ipam_release(HOST_OWNER);
            return self.failed(format!("saving the allocation of {addr}: {e:#}"));
        }
        if let Err(e) = self.put_on_bridge(addr, len, dns).await {
            return self.failed(e);
        }
        tracing::info!(
            bridge = %self.bridge,
            address = %format!("{addr}/{len}"),
            "containers' gateway and DNS server on the bridge (the host's routes change only with `weavers expose`)"
        );
    }

    /// Whether containers are attached and still lack a gateway.
    pub fn wanted(&self) -> bool {
        self.wanted
    }

    /// At start, after the exposed address is restored: takes over the
    /// address of an earlier run if the bridge kept it, then gives the
    /// containers attached to the bridge a gateway.
    pub async fn restore(&mut self, plane: &mut Plane, host: &Host, dns: &mut DnsService) {
        let (ring, alloc) = plane.node.ipam_snapshot();
        let range = ring.range();
        let held = alloc.get(HOST_OWNER).and_then(|o| range.addr(o)).map(|a| (a, range.prefix()));
        let exposed = host.exposed().and_then(|e| crate::config::parse_cidr(e).ok());
        if let Some((a, len)) = held.filter(|&(a, len)| exposed != Some((IpAddr::V4(a), len))) {
            match self.netdev.addresses(&self.bridge).await {
                Ok(addrs) if addrs.contains(&(IpAddr::V4(a), len)) => {
                    if let Err(e) = self.put_on_bridge(a, len, dns).await {
                        self.failed(e);
                    }
                }
                Ok(_) => {}
                Err(e) => self.failed(format!("listing the bridge's addresses: {e}")),
            }
        }
        match self.netdev.bridge_ports(&self.bridge, &self.tap).await {
            Ok(ports) if !ports.is_empty() => {
                tracing::info!(bridge = %self.bridge, ports = ports.len(), "containers attached to the bridge");
                self.ensure(plane, host, dns).await;
            }
            Ok(_) => {}
            Err(e) => self.failed(format!("listing the bridge's ports: {e}")),
        }
    }

    /// Puts `addr/len` on the bridge without its prefix route, routes what
    /// it sends into the overlay, serves DNS on it and remembers it.
    async fn put_on_bridge(&mut self, addr: Ipv4Addr, len: u8, dns: &mut DnsService) -> Result<(), String> {
        let ip = IpAddr::V4(addr);
        let on = |e: crate::netdev::NetdevError| format!("putting {addr}/{len} on {}: {e}", self.bridge);
        self.netdev.add_address_no_prefix_route(&self.bridge, ip, len).await.map_err(on)?;
        self.netdev.ensure_source_routing(&self.bridge, ip, len).await.map_err(on)?;
        dns.keep_serving_on(ip);
        self.addr = Some((addr, len));
        self.wanted = false;
        self.last_error = None;
        Ok(())
    }

    fn failed(&mut self, why: String) {
        if self.last_error.as_ref() != Some(&why) {
            tracing::warn!(bridge = %self.bridge, "containers get no gateway and no DNS server: {why}");
            self.last_error = Some(why);
        }
    }
}
