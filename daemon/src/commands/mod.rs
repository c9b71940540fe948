//! What answers [`Command`]s from the control API and the metrics server.
//! [`Control`] holds what the data-plane task keeps beside the node (the
//! host's state, the configured peers, the bridge, the DNS server, parked
//! allocations) and hands each command to its concern: [`peers`],
//! [`expose`], [`dns`], [`ipam`]; status snapshots are here.
//! [`Control::after_node_work`] is the one place that acts on the node's
//! change flags.

mod dns;
mod expose;
mod gateway;
mod ipam;
mod peers;
pub mod ping;
mod revocations;

use crate::control::Command;
use crate::dns::DnsService;
use crate::host::Host;
use crate::kernel_io::Plane;
use crate::netdev::Netdev;
use expose::Bridge;
use gateway::Gateway;
use ipam::{Allocations, ExposeWaiting, PendingAlloc, Waiter, HOST_OWNER};
use peers::Peers;
use std::net::SocketAddr;
use std::time::Instant;
use weavers_api::{DropCount, ExposeResponse, PeerAddrs, Status};
use weavers_proto::node::{Event, Node};

/// The data-plane task's state beside the node.
pub struct Control {
    /// The state dir and the peers file.
    pub host: Host,
    peers: Peers,
    bridge: Bridge,
    /// The containers' gateway on a host that was not exposed.
    gateway: Gateway,
    /// The DNS server and the table it answers from.
    dns: DnsService,
    allocations: Allocations,
    /// Network-authority mode's files (`--ca`, `--cert`).
    pub authority: Option<crate::authority::AuthorityFiles>,
    /// `weavers ping`s waiting for their pong.
    pings: ping::Pings,
}

impl Control {
    /// Nothing configured or waiting yet: peers and the exposed address
    /// are restored through [`Control::add_peers`] and [`Control::expose`].
    pub fn new(host: Host, netdev: Netdev, bridge: String, listen: SocketAddr, dns: DnsService) -> Self {
        Control {
            host,
            peers: Peers::new(listen),
            gateway: Gateway::new(netdev.clone(), bridge.clone(), crate::netdev::tap_name(&bridge)),
            bridge: Bridge::new(netdev, bridge),
            dns,
            allocations: Allocations::default(),
            authority: None,
            pings: ping::Pings::default(),
        }
    }

    /// Answers one command.
    pub async fn command(&mut self, plane: &mut Plane, cmd: Command) {
        let now = Instant::now();
        let node = &mut plane.node;
        match cmd {
            Command::Status(tx) => {
                let _ = tx.send(self.status(plane, now));
            }
            Command::Peers(tx) => {
                let _ = tx.send(node.peer_infos(now));
            }
            Command::Groups(tx) => {
                let _ = tx.send(node.group_infos(now));
            }
            Command::AddPeers(addrs, tx) => {
                let r = self.add_peers(node, addrs, true).await;
                let _ = tx.send(r);
            }
            Command::RemovePeers(addrs, tx) => {
                let r = self.peers.remove(node, &mut self.host, addrs);
                let _ = tx.send(r);
            }
            Command::Expose(None, tx) if self.host.exposed().is_none() => {
                self.allocate(plane, HOST_OWNER.to_string(), Waiter::Expose(tx)).await;
            }
            Command::Expose(cidr, tx) => {
                let r = self.expose(node, cidr).await;
                let _ = tx.send(r);
            }
            Command::IpamStatus(tx) => {
                let _ = tx.send(node.ipam_status());
            }
            Command::Allocate(owner, tx) => self.allocate(plane, owner, Waiter::Api(tx)).await,
            Command::Release(owner, tx) => {
                let _ = tx.send(ipam::release(node, &self.host, &owner));
            }
            Command::Gc(keep, tx) => {
                let _ = tx.send(ipam::gc(node, &self.host, &keep));
            }
            Command::RmPeer(peer, tx) => {
                let _ = tx.send(ipam::rmpeer(node, &self.host, &peer));
            }
            Command::DnsAdd(add, tx) => {
                let r = dns::add(node, add, now);
                self.after_node_work(node);
                let _ = tx.send(r);
            }
            Command::DnsRemove(sel, tx) => {
                let r = dns::remove(node, &sel, now);
                self.after_node_work(node);
                let _ = tx.send(r);
            }
            Command::DnsList(tx) => {
                self.after_node_work(node);
                let _ = tx.send(dns::records(&self.dns));
            }
            Command::DnsLookup(name, tx) => {
                self.after_node_work(node);
                let _ = tx.send(dns::lookup(&self.dns, &name));
            }
            Command::DnsStats(tx) => {
                self.after_node_work(node);
                let _ = tx.send(self.dns.stats());
            }
            Command::AddRevocation(text, tx) => {
                let r = revocations::add(node, &text, now);
                self.after_node_work(node);
                let _ = tx.send(r);
            }
            Command::Revocations(tx) => {
                let _ = tx.send(revocations::list(node));
            }
            Command::Ping(peer, tx) => self.pings.start(plane, &peer, now, tx),
            Command::ReloadCert => {
                if let Some(a) = &mut self.authority {
                    a.reload(node, now, true);
                }
            }
        }
    }

    /// Acts on what the node's last work (a timer, a batch of datagrams,
    /// a command) changed, as [`Node::poll_event`] reports it: saves the
    /// peers it knows and the IPAM state, rebuilds the DNS server's table
    /// and saves this host's DNS entries. The one place that polls it.
    pub fn after_node_work(&mut self, node: &mut Node) {
        self.pings.poll(node, Instant::now());
        while let Some(ev) = node.poll_event() {
            match ev {
                Event::PeersChanged => self.host.peers_changed(node, Instant::now()),
                Event::IpamChanged => {
                    if let Err(e) = self.host.save_ipam(node) {
                        tracing::warn!("saving IPAM state: {e:#}");
                    }
                }
                Event::DnsChanged => self.dns.update(node.dns_view()),
                Event::OwnDnsChanged => self.host.save_dns(node),
                Event::RevocationsChanged => {
                    // Kept before anything else happens: a revocation taken
                    // must hold across a restart.
                    if let Err(e) = self.host.state().save_revocations(&node.revocations()) {
                        tracing::warn!("saving revocations: {e:#}");
                    }
                }
            }
        }
    }

    /// Resolves and connects to `addrs`; with `remember`, keeps them in the
    /// state dir (see [`Peers::add`]).
    pub async fn add_peers(
        &mut self,
        node: &mut Node,
        addrs: Vec<String>,
        remember: bool,
    ) -> Result<PeerAddrs, String> {
        self.peers.add(node, &mut self.host, addrs, remember).await
    }

    /// Gives the bridge an overlay address: `cidr`, or the one this host
    /// had (see [`Bridge::expose`]).
    pub async fn expose(&mut self, node: &mut Node, cidr: Option<String>) -> Result<ExposeResponse, String> {
        self.bridge.expose(node, &mut self.host, &mut self.dns, cidr).await
    }

    /// Reads the certificate again when due (network-authority mode; each tick).
    pub fn reload_cert(&mut self, node: &mut Node) {
        if let Some(a) = &mut self.authority {
            a.reload(node, Instant::now(), false);
        }
    }

    /// At start, once the exposed address is restored: the containers
    /// attached to the bridge get their gateway back (see [`Gateway::restore`]).
    pub async fn restore_gateway(&mut self, plane: &mut Plane) {
        self.gateway.restore(plane, &self.host, &mut self.dns).await;
    }

    /// Retries parked allocations (each tick), in the order they came,
    /// and the containers' gateway if it is still missing.
    pub async fn retry_allocations(&mut self, plane: &mut Plane) {
        if self.gateway.wanted() {
            self.gateway.ensure(plane, &self.host, &mut self.dns).await;
        }
        for p in self.allocations.take_pending() {
            self.attempt(plane, p).await;
        }
    }

    /// Tries `owner`'s allocation now; parks it if the mesh has to seed or
    /// donate first.
    async fn allocate(&mut self, plane: &mut Plane, owner: String, waiter: Waiter) {
        self.attempt(plane, PendingAlloc::new(owner, waiter)).await;
    }

    /// Tries `p`; a container's gets the gateway first, an address for
    /// `weavers expose` is exposed before the answer.
    async fn attempt(&mut self, plane: &mut Plane, p: PendingAlloc) {
        if matches!(p.waiter, Waiter::Api(_)) {
            self.gateway.ensure(plane, &self.host, &mut self.dns).await;
        }
        let gateway = self.gateway.address(&self.host);
        if let Some(ExposeWaiting { tx, address }) = self.allocations.attempt(plane, &self.host, gateway, p) {
            let r = match address {
                Ok(cidr) => self.expose(&mut plane.node, Some(cidr)).await,
                Err(e) => Err(e),
            };
            let _ = tx.send(r);
        }
    }

    fn status(&self, plane: &mut Plane, now: Instant) -> Status {
        let node = &mut plane.node;
        Status {
            name: node.name().to_string(),
            public_key: node.public_key().to_base64(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            listen: self.peers.listen().to_string(),
            bridge: self.bridge.name().to_string(),
            overlay_mtu: node.overlay_mtu() as u32,
            overlay_addr: self.host.exposed().map(str::to_string),
            peers: node.peer_infos(now),
            pending: node.pending(),
            drops: node.drops().iter().map(|(r, count)| DropCount { reason: r.as_str().to_string(), count }).collect(),
            handshakes: node.handshakes(),
            peers_down: node.peers_down(),
            stalls: node.stalls(),
            local_health: node.local_health(),
            segmentation: node.segmentation(now),
            tap_tx_dropped: std::fs::read_to_string(format!(
                "/sys/class/net/{}/statistics/tx_dropped",
                plane.tap.get_ref().name()
            ))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0),
        }
    }
}
