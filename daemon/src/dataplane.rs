//! The data-plane task: owns the [`Node`], the UDP socket and the TAP, and
//! answers control commands. One task, so the node needs no locks.

use crate::control::{Command, DnsAdd};
use crate::netdev::{Netdev, Tap};
use crate::state::{DnsFile, KnownPeer, PeersFile, StateDir};
use crate::udp::{self, TxBatch};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Instant;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use weavers_api::{DnsEntryInfo, DnsLookup, DnsRecordInfo, DnsRemoved, DropCount, ExposeResponse, PeerAddrs, Status};
use weavers_proto::dns::{self, Selector, Visible};
use weavers_proto::node::{Io, Node};
use weavers_proto::stats::DropReason;
use weavers_proto::vnet::{self, VnetHdr, VNET_HDR_LEN};

/// Datagrams or frames handled per wake-up before looking at other sources.
const BATCH: usize = 64;
/// UDP port used when a peer address has none.
pub const DEFAULT_PORT: u16 = 6783;

/// The node's output, straight to the kernel. Failures are counted, not
/// retried: the overlay is a lossy link like any other.
/// Datagrams are queued in a [`TxBatch`] and leave when the batch ends.
pub(crate) struct KernelIo<'a> {
    udp: &'a UdpSocket,
    tap: &'a Tap,
    tx: &'a mut TxBatch,
    send_failed: u64,
}

impl<'a> KernelIo<'a> {
    pub(crate) fn new(udp: &'a UdpSocket, tap: &'a Tap, tx: &'a mut TxBatch) -> Self {
        KernelIo { udp, tap, tx, send_failed: 0 }
    }

    /// Sends what is queued; returns the failures to count.
    pub(crate) fn finish(self) -> u64 {
        self.tx.flush(self.udp);
        self.send_failed + std::mem::take(&mut self.tx.failed)
    }
}

impl Io for KernelIo<'_> {
    fn send(&mut self, to: SocketAddr, datagram: &[u8]) {
        self.tx.push(self.udp, to, datagram);
    }

    fn deliver(&mut self, frame: &[u8]) {
        // The TAP has offloads on: a plain frame goes with an empty header.
        if self.tap.write_with_header(&[0; VNET_HDR_LEN], frame).is_err() {
            self.send_failed += 1;
        }
    }

    fn deliver_offloaded(&mut self, vnet_hdr: &[u8; VNET_HDR_LEN], frame: &[u8]) {
        if self.tap.write_with_header(vnet_hdr, frame).is_err() {
            self.send_failed += 1;
        }
    }
}

/// Everything the task owns.
pub struct Dataplane {
    pub node: Node,
    pub udp: UdpSocket,
    pub tap: std::sync::Arc<AsyncFd<Tap>>,
    pub netdev: Netdev,
    pub state: StateDir,
    pub peers_file: PeersFile,
    pub bridge: String,
    pub listen: SocketAddr,
    /// `HOST[:PORT]` strings as configured, with what they resolved to.
    pub configured: Vec<(String, SocketAddr)>,
    /// Outgoing datagrams of the current batch.
    pub tx: TxBatch,
    /// The DNS server and the table it answers from.
    pub dns: crate::dns::DnsService,
    /// The node's DNS generation the table was last built from.
    pub dns_generation: Option<u64>,
    /// Allocations waiting for the range to be seeded or for space.
    pub pending_allocs: Vec<crate::ipam::PendingAlloc>,
}

impl Dataplane {
    /// Runs until `shutdown` resolves; consumes the data plane so that the
    /// TAP is closed (and so removed) when it returns.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut buf = vec![0u8; 65_536];
        let tap = self.tap.clone();
        loop {
            let deadline = tokio::time::Instant::from_std(self.node.poll_timeout());
            tokio::select! {
                _ = &mut shutdown => break,
                Some(cmd) = commands.recv() => self.command(cmd).await,
                r = self.udp.readable() => if r.is_ok() { self.drain_udp(&mut buf) },
                r = tap.readable() => if let Ok(mut guard) = r {
                    if self.drain_tap(&mut buf) {
                        guard.clear_ready();
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    let mut io = KernelIo { udp: &self.udp, tap: self.tap.get_ref(), tx: &mut self.tx, send_failed: 0 };
                    self.node.handle_timeout(Instant::now(), &mut io);
                    let failed = io.finish();
                    self.node.count_drops(DropReason::SendFailed, failed);
                    if self.node.take_peers_changed() {
                        self.persist_peers();
                    }
                    self.persist_ipam_if_changed();
                    self.sync_dns();
                    self.retry_allocations().await;
                }
            }
        }
        self.persist_peers();
    }

    fn drain_udp(&mut self, buf: &mut [u8]) {
        let mut io = KernelIo { udp: &self.udp, tap: self.tap.get_ref(), tx: &mut self.tx, send_failed: 0 };
        let fd = self.udp.as_raw_fd();
        for _ in 0..BATCH {
            match self.udp.try_io(Interest::READABLE, || udp::recv_gro(fd, buf)) {
                Ok((n, from, seg)) => {
                    // The time of each datagram, not of the batch: keepalive
                    // round trips on a LAN are shorter than a batch.
                    let now = Instant::now();
                    for d in buf[..n].chunks(seg.unwrap_or(n).max(1)) {
                        self.node.handle_datagram(now, from, d, &mut io);
                    }
                }
                Err(_) => break,
            }
        }
        let failed = io.finish();
        self.node.count_drops(DropReason::SendFailed, failed);
        // Space given away is on disk before the donation leaves (at the next tick).
        self.persist_ipam_if_changed();
    }

    fn persist_ipam_if_changed(&mut self) {
        if self.node.take_ipam_changed() {
            if let Err(e) = self.persist_ipam() {
                tracing::warn!("saving IPAM state: {e:#}");
            }
        }
    }

    /// Returns true when the TAP is empty (readiness can be cleared).
    fn drain_tap(&mut self, buf: &mut [u8]) -> bool {
        let now = Instant::now();
        let mut io = KernelIo { udp: &self.udp, tap: self.tap.get_ref(), tx: &mut self.tx, send_failed: 0 };
        let mut empty = false;
        for _ in 0..BATCH {
            match self.tap.get_ref().read(buf) {
                Ok(n) if n > VNET_HDR_LEN => {
                    let (h, frame) = buf[..n].split_at_mut(VNET_HDR_LEN);
                    let h: &[u8; VNET_HDR_LEN] = (&*h).try_into().expect("split at the header length");
                    let hdr = VnetHdr::parse(h);
                    if hdr.is_gso() {
                        self.node.handle_offloaded_frame(now, h, frame, &mut io);
                    } else if hdr.flags & vnet::F_NEEDS_CSUM != 0
                        && !vnet::complete_checksum(frame, hdr.csum_start, hdr.csum_offset)
                    {
                        self.node.count_drops(DropReason::Malformed, 1);
                    } else {
                        self.node.handle_frame(now, frame, &mut io);
                    }
                }
                Ok(_) => self.node.count_drops(DropReason::Malformed, 1),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    empty = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!("reading the TAP: {e}");
                    empty = true;
                    break;
                }
            }
        }
        self.node.flush(&mut io);
        let failed = io.finish();
        self.node.count_drops(DropReason::SendFailed, failed);
        empty
    }

    fn persist_peers(&mut self) {
        self.peers_file.known = self
            .node
            .known_peers()
            .into_iter()
            .map(|(k, e, n)| KnownPeer { public_key: k.to_base64(), endpoint: e.to_string(), name: n })
            .collect();
        self.peers_file.known.sort_by(|a, b| a.public_key.cmp(&b.public_key));
        if let Err(e) = self.state.save_peers(&self.peers_file) {
            tracing::warn!("saving peers: {e:#}");
        }
    }

    async fn command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Status(tx) => {
                let _ = tx.send(self.status(now));
            }
            Command::Peers(tx) => {
                let _ = tx.send(self.node.peer_infos(now));
            }
            Command::Groups(tx) => {
                let _ = tx.send(self.node.group_infos(now));
            }
            Command::AddPeers(addrs, tx) => {
                let r = self.add_peers(addrs, true).await;
                let _ = tx.send(r);
            }
            Command::RemovePeers(addrs, tx) => {
                let r = self.remove_peers(addrs);
                let _ = tx.send(r);
            }
            Command::Expose(None, tx) if self.peers_file.exposed.is_none() => {
                self.allocate(crate::ipam::HOST_OWNER.to_string(), crate::ipam::Waiter::Expose(tx)).await;
            }
            Command::Expose(cidr, tx) => {
                let r = self.expose(cidr).await;
                let _ = tx.send(r);
            }
            Command::IpamStatus(tx) => {
                let _ = tx.send(self.node.ipam_status());
            }
            Command::Allocate(owner, tx) => self.allocate(owner, crate::ipam::Waiter::Api(tx)).await,
            Command::Release(owner, tx) => {
                let _ = tx.send(self.release(&owner));
            }
            Command::Gc(keep, tx) => {
                let _ = tx.send(self.gc(&keep));
            }
            Command::RmPeer(peer, tx) => {
                let _ = tx.send(self.rmpeer(&peer));
            }
            Command::DnsAdd(add, tx) => {
                let r = self.dns_add(add, now);
                let _ = tx.send(r);
            }
            Command::DnsRemove(sel, tx) => {
                let r = self.dns_remove(&sel, now);
                let _ = tx.send(r);
            }
            Command::DnsList(tx) => {
                self.sync_dns();
                let rows = self.dns.with_table(|t| {
                    t.grouped()
                        .into_iter()
                        .map(|(name, v, addrs)| DnsRecordInfo {
                            name: dns::fqdn(&name),
                            addrs: addrs.iter().map(ToString::to_string).collect(),
                            origin: v.origin_name.clone(),
                            origin_key: v.origin.to_base64(),
                            owner: v.owner.clone(),
                        })
                        .collect()
                });
                let _ = tx.send(rows);
            }
            Command::DnsLookup(name, tx) => {
                self.sync_dns();
                let addrs = self.dns.with_table(|t| t.lookup_all(&name));
                let _ =
                    tx.send(addrs.map(|a| DnsLookup {
                        name: dns::fqdn(&name),
                        addrs: a.iter().map(ToString::to_string).collect(),
                    }));
            }
            Command::DnsStats(tx) => {
                self.sync_dns();
                let _ = tx.send(self.dns.stats());
            }
        }
    }

    fn dns_add(&mut self, add: DnsAdd, now: Instant) -> Result<DnsEntryInfo, String> {
        let v = self.node.dns_add(&add.name, add.addr, add.owner.as_deref(), now).map_err(|e| e.to_string())?;
        self.sync_dns();
        Ok(entry_info(&v))
    }

    fn dns_remove(&mut self, sel: &Selector, now: Instant) -> Result<DnsRemoved, String> {
        let removed = self.node.dns_remove(sel, now).map_err(|e| e.to_string())?;
        self.sync_dns();
        Ok(DnsRemoved { removed: removed.iter().map(entry_info).collect() })
    }

    /// Rebuilds the DNS server's table when the node's view changed, and
    /// saves this host's entries when they changed.
    fn sync_dns(&mut self) {
        let g = self.node.dns_generation();
        if self.dns_generation != Some(g) {
            self.dns_generation = Some(g);
            self.dns.update(self.node.dns_view());
        }
        if self.node.take_dns_unsaved() {
            self.persist_dns();
        }
    }

    fn persist_dns(&mut self) {
        let file = DnsFile { entries: self.node.dns_own_entries().to_vec() };
        if let Err(e) = self.state.save_dns(&file) {
            tracing::warn!("saving DNS entries: {e:#}");
        }
    }

    fn status(&mut self, now: Instant) -> Status {
        Status {
            name: self.node.name().to_string(),
            public_key: self.node.public_key().to_base64(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            listen: self.listen.to_string(),
            bridge: self.bridge.clone(),
            overlay_mtu: self.node.overlay_mtu() as u32,
            overlay_addr: self.peers_file.exposed.clone(),
            peers: self.node.peer_infos(now),
            pending: self.node.pending(),
            drops: self
                .node
                .drops()
                .iter()
                .map(|(r, count)| DropCount { reason: r.as_str().to_string(), count })
                .collect(),
            handshakes: self.node.handshakes(),
            tap_tx_dropped: std::fs::read_to_string(format!(
                "/sys/class/net/{}/statistics/tx_dropped",
                self.tap.get_ref().name()
            ))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0),
        }
    }

    /// Resolves and connects to `addrs`; with `remember`, keeps them in the
    /// state dir. All are resolved before any is added, so a typo changes
    /// nothing.
    pub async fn add_peers(&mut self, addrs: Vec<String>, remember: bool) -> Result<PeerAddrs, String> {
        let mut resolved = Vec::new();
        for a in &addrs {
            resolved.push((a.clone(), resolve(a, self.listen).await?));
        }
        let now = Instant::now();
        let mut added = Vec::new();
        for (text, addr) in resolved {
            if self.node.add_bootstrap(addr, now) {
                self.configured.push((text.clone(), addr));
            }
            if remember && !self.peers_file.added.contains(&text) {
                self.peers_file.added.push(text.clone());
            }
            added.push(text);
        }
        if remember {
            self.persist_peers();
        }
        Ok(PeerAddrs { peers: added })
    }

    fn remove_peers(&mut self, addrs: Vec<String>) -> Result<PeerAddrs, String> {
        let mut removed = Vec::new();
        for a in addrs {
            let hits: Vec<SocketAddr> =
                self.configured.iter().filter(|(t, sa)| *t == a || sa.to_string() == a).map(|(_, sa)| *sa).collect();
            let remembered = self.peers_file.added.contains(&a);
            if hits.is_empty() && !remembered {
                return Err(format!("{a} is not a configured peer (see `weavers status` for the list)"));
            }
            for sa in &hits {
                self.node.remove_bootstrap(*sa);
            }
            self.configured.retain(|(t, sa)| *t != a && !hits.contains(sa));
            self.peers_file.added.retain(|t| *t != a);
            removed.push(a);
        }
        self.persist_peers();
        Ok(PeerAddrs { peers: removed })
    }

    /// Gives the bridge an overlay address: the one asked for, or one in
    /// `--ipalloc-range` derived from this host's key and not announced by
    /// any other host.
    pub async fn expose(&mut self, cidr: Option<String>) -> Result<ExposeResponse, String> {
        let (addr, len) = match cidr {
            Some(c) => crate::config::parse_cidr(&c).map_err(|e| format!("{c}: {e:#}"))?,
            None => self
                .peers_file
                .exposed
                .as_deref()
                .and_then(|e| crate::config::parse_cidr(e).ok())
                .ok_or("no address to expose: give one, or let IPAM pick (the caller does)")?,
        };
        if let Some(other) = self.node.announced_overlay_addrs().iter().find(|(a, _)| *a == addr) {
            return Err(format!("{}/{} is already exposed by another host", other.0, other.1));
        }
        self.netdev.add_address(&self.bridge, addr, len).await.map_err(|e| e.to_string())?;
        let route = self.netdev.ensure_multicast_route(&self.bridge).await.map_err(|e| e.to_string())?;
        self.node.set_overlay_addr(Some((addr, len)));
        self.dns.serve_on(addr);
        let text = format!("{addr}/{len}");
        self.peers_file.exposed = Some(text.clone());
        self.persist_peers();
        Ok(ExposeResponse { address: text, multicast_route_added: route })
    }
}

/// The API's view of one visible DNS entry.
fn entry_info(v: &Visible) -> DnsEntryInfo {
    DnsEntryInfo {
        name: dns::fqdn(&v.name),
        addr: v.addr.to_string(),
        owner: v.owner.clone(),
        origin: v.origin_name.clone(),
        origin_key: v.origin.to_base64(),
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
