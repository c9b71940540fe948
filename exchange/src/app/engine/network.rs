//! Where the engine stands on the overlay: its symbols, the DNS server, its
//! own address and the groups' addresses (resolved once, before anything
//! else starts), then the sockets the ingress and the publisher use.

use super::threads::IngressIo;
use super::Args;
use crate::net::{self, GroupKind};
use crate::symbols::SymbolTable;
use crate::types::SymbolIndex;
use anyhow::Context as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

/// The engine's place on the overlay.
pub(super) struct Network {
    /// The symbols traded (`--only`, default all), in table order.
    pub symbols: Vec<SymbolIndex>,
    /// The overlay DNS server (`--dns`, default the system's).
    pub dns: SocketAddr,
    /// The overlay address to bind and join on (`--bind`, default the
    /// source address towards 239.192.0.1).
    pub bind: Ipv4Addr,
    /// Every symbol's orders group.
    pub orders: Vec<(SymbolIndex, Ipv4Addr)>,
    /// Every symbol's market-data group.
    pub md: Vec<(SymbolIndex, Ipv4Addr)>,
}

/// Selects the symbols, finds the DNS server and the overlay address, and
/// resolves the orders groups then the market-data groups, each within
/// `--resolve-wait`. Nothing is bound, joined or written yet: an error here
/// leaves no trace.
pub(super) fn resolve(args: &Args, table: &SymbolTable) -> anyhow::Result<Network> {
    let selected = net::select_symbols(table, args.only.as_deref()).map_err(anyhow::Error::msg)?;
    let symbols: Vec<SymbolIndex> = selected.iter().map(|s| s.index).collect();
    let (dns, bind, wait) = (args.overlay.dns()?, args.overlay.bind()?, args.overlay.wait());
    let orders = net::resolve_groups(dns, selected.iter().copied(), GroupKind::Orders, wait)?;
    let md = net::resolve_groups(dns, selected.iter().copied(), GroupKind::MarketData, wait)?;
    Ok(Network { symbols, dns, bind, orders, md })
}

impl Network {
    /// Where each symbol's market data goes: its group, port
    /// [`net::MD_PORT`].
    pub fn md_destinations(&self) -> impl Iterator<Item = (SymbolIndex, SocketAddr)> + '_ {
        self.md.iter().map(|&(s, g)| (s, SocketAddr::from(SocketAddrV4::new(g, net::MD_PORT))))
    }
}

/// The sockets of a trading engine.
pub(super) struct Sockets {
    /// The ingress thread's runtime, sockets and signal handlers.
    pub io: IngressIo,
    /// The publisher's handle on the unicast socket (the same socket).
    pub publisher: UdpSocket,
    /// The unicast socket's address (where our streams come from).
    pub local: SocketAddr,
}

/// Joins every distinct orders group (port [`net::ORDERS_PORT`]) and binds
/// the one unicast socket on the overlay address; installs the SIGINT and
/// SIGTERM handlers (in [`IngressIo::new`]). From here on a signal stops
/// the process cleanly.
pub(super) fn open_sockets(network: &Network) -> anyhow::Result<Sockets> {
    let bind = network.bind;
    let mut groups: Vec<Ipv4Addr> = network.orders.iter().map(|&(_, g)| g).collect();
    groups.sort();
    groups.dedup();
    let group_sock = net::group_receiver(net::ORDERS_PORT, &groups, bind, true)
        .with_context(|| format!("joining {} orders groups on {bind}", groups.len()))?;
    let uni = net::unicast_socket(bind, 0, true).with_context(|| format!("binding {bind}"))?;
    let local = uni.local_addr()?;
    let publisher = uni.try_clone()?;
    let io = IngressIo::new(group_sock, uni).context("the ingress runtime")?;
    Ok(Sockets { io, publisher, local })
}
