//! Routes, and the path MTU towards a destination.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use crate::error::errno_of;
use crate::{Link, Netlink, NetlinkError};

/// A route as the kernel lists it (the parts weavers looks at).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The routing table (254 is `main`).
    pub table: u32,
    /// Whether it is a unicast route (not local, broadcast, blackhole...).
    pub unicast: bool,
    /// The destination, `None` for a default route.
    pub dst: Option<IpAddr>,
    /// The destination's prefix length.
    pub prefix_len: u8,
    /// The outgoing interface.
    pub oif: Option<u32>,
    /// The next hop, if any.
    pub gateway: Option<IpAddr>,
}

impl Route {
    /// The kernel's `main` table.
    pub const MAIN_TABLE: u32 = RouteHeader::RT_TABLE_MAIN as u32;

    fn from_message(r: &RouteMessage) -> Route {
        let mut route = Route {
            table: u32::from(r.header.table),
            unicast: r.header.kind == RouteType::Unicast,
            dst: None,
            prefix_len: r.header.destination_prefix_length,
            oif: None,
            gateway: None,
        };
        for attr in &r.attributes {
            match attr {
                RouteAttribute::Table(t) => route.table = *t,
                RouteAttribute::Destination(a) => route.dst = ip_of(a),
                RouteAttribute::Gateway(a) => route.gateway = ip_of(a),
                RouteAttribute::Oif(i) => route.oif = Some(*i),
                _ => {}
            }
        }
        route
    }
}

/// Where the kernel would send a packet to one address (`ip route get`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteTo {
    /// The outgoing interface.
    pub oif: Option<u32>,
    /// The route's `mtu` metric, when it has one.
    pub mtu: Option<u32>,
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// The longest prefix length of the address's family: 32 or 128.
pub(crate) fn max_prefix_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

/// The network of `addr/prefix_len` (the host bits cleared), as a route's
/// destination must be written.
pub fn network_of(addr: IpAddr, prefix_len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix_len.min(32))).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix_len.min(128))).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

/// A route straight out of a link (no gateway, scope link for IPv4), as
/// [`Netlink::add_link_route`] adds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkRoute {
    /// The destination; host bits are cleared (see [`network_of`]).
    pub dst: IpAddr,
    /// The destination's prefix length.
    pub prefix_len: u8,
    /// The routing table ([`Route::MAIN_TABLE`] for `main`).
    pub table: u32,
    /// The preferred source address (`src`), if any.
    pub src: Option<IpAddr>,
    /// Marked `proto kernel`, as the route the kernel adds for an
    /// address's prefix; else `proto static`.
    pub kernel: bool,
}

fn family(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

impl Netlink {
    /// Every route of the family of `like` (an IPv4 or IPv6 address), in
    /// every table.
    pub async fn routes(&self, like: IpAddr) -> Result<Vec<Route>, NetlinkError> {
        let mut query = RouteMessage::default();
        query.header.address_family = family(like);
        let what = if like.is_ipv4() { "(IPv4)" } else { "(IPv6)" };
        let mut routes = self.handle.route().get(query).execute();
        let mut out = Vec::new();
        while let Some(r) = routes.try_next().await.map_err(NetlinkError::request("listing routes", what))? {
            out.push(Route::from_message(&r));
        }
        Ok(out)
    }

    /// Adds the route `dst/prefix_len` out of `dev` to the main table:
    /// through `gateway` when given, else on the link (scope link for
    /// IPv4, as `ip route add PREFIX dev DEV` does). `false` when it was
    /// there already.
    pub async fn add_route(
        &self,
        dev: &Link,
        dst: IpAddr,
        prefix_len: u8,
        gateway: Option<IpAddr>,
    ) -> Result<bool, NetlinkError> {
        let invalid = |why: String| NetlinkError::InvalidPrefix { addr: dst, prefix_len, why };
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst, prefix_len)
            .map_err(|e| invalid(e.to_string()))?
            .output_interface(dev.index);
        let target = match gateway {
            Some(gw) if gw.is_ipv4() != dst.is_ipv4() => {
                return Err(invalid(format!("gateway {gw} of another family")))
            }
            Some(gw) => {
                b = b.gateway(gw).map_err(|e| invalid(e.to_string()))?;
                format!("{dst}/{prefix_len} via {gw} dev {}", dev.name)
            }
            None => {
                if dst.is_ipv4() {
                    b = b.scope(RouteScope::Link);
                }
                format!("{dst}/{prefix_len} dev {}", dev.name)
            }
        };
        match self.handle.route().add(b.build()).execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno_of(&e) == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(NetlinkError::request("adding route", target)(e)),
        }
    }

    /// Adds `route` out of `dev` (as `ip route add NET/LEN dev DEV [table
    /// T] [src S] [proto kernel]`). `false` when the table had a route to
    /// that prefix already.
    pub async fn add_link_route(&self, dev: &Link, route: &LinkRoute) -> Result<bool, NetlinkError> {
        let (dst, prefix_len) = (network_of(route.dst, route.prefix_len), route.prefix_len);
        let invalid = |why: String| NetlinkError::InvalidPrefix { addr: dst, prefix_len, why };
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst, prefix_len)
            .map_err(|e| invalid(e.to_string()))?
            .output_interface(dev.index)
            .table_id(route.table)
            .protocol(if route.kernel { RouteProtocol::Kernel } else { RouteProtocol::Static });
        if dst.is_ipv4() {
            b = b.scope(RouteScope::Link);
        }
        if let Some(src) = route.src {
            b = b.pref_source(src).map_err(|e| invalid(e.to_string()))?;
        }
        let target = format!("{dst}/{prefix_len} dev {} table {}", dev.name, route.table);
        match self.handle.route().add(b.build()).execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno_of(&e) == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(NetlinkError::request("adding route", target)(e)),
        }
    }

    /// Where the kernel would send a packet to `dst` (as `ip route get`);
    /// `None` when it has no route there.
    pub async fn route_to(&self, dst: IpAddr) -> Result<Option<RouteTo>, NetlinkError> {
        let query = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst, max_prefix_len(dst))
            .map_err(|e| NetlinkError::InvalidPrefix {
                addr: dst,
                prefix_len: max_prefix_len(dst),
                why: e.to_string(),
            })?
            .build();
        let mut routes = self.handle.route().get(query).execute();
        let route = match routes.try_next().await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(e) => {
                return match errno_of(&e) {
                    Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EINVAL) => Ok(None),
                    _ => Err(NetlinkError::request("looking up the route to", dst)(e)),
                }
            }
        };
        let mut to = RouteTo { oif: None, mtu: None };
        for attr in &route.attributes {
            match attr {
                RouteAttribute::Oif(i) => to.oif = Some(*i),
                RouteAttribute::Metrics(ms) => {
                    for m in ms {
                        if let RouteMetric::Mtu(v) = m {
                            to.mtu = Some(*v).filter(|v| *v != 0);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(Some(to))
    }
}
