//! The daemon's interface to Linux networking: the bridge, the TAP device,
//! addresses and routes.
//!
//! Links, addresses and routes go through [`weavers_netlink`] (rtnetlink,
//! async, on the tokio runtime that calls [`Netdev::new`]); this module
//! says what the daemon wants of them (a snooping bridge without the
//! kernel's querier, the TAP as a permanent multicast-router port, the
//! multicast routes). The TAP device is opened with a raw `TUNSETIFF`
//! ioctl so that its fd is non-blocking and carries no packet information
//! header (`IFF_NO_PI`).
//!
//! Everything acts on the network namespace of the thread that created the
//! netlink socket (for [`Netdev`]) or opened `/dev/net/tun` (for [`Tap`]).

use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use weavers_netlink::{
    check_ifname, BridgeOptions, Link, LinkRoute, LinkSettings, McastRouter, Netlink, NetlinkError, Route, SourceRule,
};

/// MTU assumed for the underlay when no interface tells better.
pub const DEFAULT_UNDERLAY_MTU: u32 = 1500;

/// The name of the TAP the daemon attaches to the bridge `bridge`.
pub fn tap_name(bridge: &str) -> String {
    format!("{bridge}-tap")
}

/// The routing table that carries what the containers' gateway address
/// sends into the overlay (see [`Netdev::ensure_source_routing`]), and the
/// priority of the rule that selects it (`ip rule`: `from ADDR lookup
/// 6783`). 6783 is weavers' UDP port, easy to recognise.
pub const SOURCE_TABLE: u32 = 6783;
/// See [`SOURCE_TABLE`].
pub const SOURCE_RULE_PRIORITY: u32 = 6783;

/// What went wrong, on which interface, during which operation.
///
/// The message of each variant already contains the underlying error, so
/// print it with `{}`; [`NetdevError::raw_os_error`] gives the errno.
#[derive(Debug, thiserror::Error)]
pub enum NetdevError {
    /// A netlink request failed, or a name or prefix was refused before it.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// A named interface does not exist.
    #[error("{op}: interface {name} does not exist")]
    NotFound { op: &'static str, name: String },
    /// A link with the wanted name exists but has another type.
    #[error("interface {name} exists but is not a {wanted} (kind: {found})")]
    WrongKind { name: String, wanted: &'static str, found: String },
    /// Opening or configuring the TAP device failed.
    #[error("{op} TAP {name}: {err}")]
    Tap { op: &'static str, name: String, err: io::Error },
}

impl NetdevError {
    /// The errno behind this error, when there is one (e.g. `libc::EBUSY`
    /// when the TAP is held by another process).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            NetdevError::Tap { err, .. } => err.raw_os_error(),
            NetdevError::Netlink(e) => e.errno(),
            _ => None,
        }
    }
}

/// A random locally administered unicast MAC address.
fn random_mac() -> [u8; 6] {
    let mut mac = [0u8; 6];
    // SAFETY: getrandom writes at most `mac.len()` bytes into `mac`.
    let n = unsafe { libc::getrandom(mac.as_mut_ptr().cast(), mac.len(), 0) };
    if n != mac.len() as isize {
        // Practically unreachable; fall back to something still unique-ish.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
            ^ u128::from(std::process::id());
        mac.copy_from_slice(&t.to_le_bytes()[..6]);
    }
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

/// A handle on the kernel's routing netlink, for links, addresses and routes.
///
/// Cheap to clone; all clones share one netlink connection, whose task runs
/// on the tokio runtime that called [`Netdev::new`].
#[derive(Clone, Debug)]
pub struct Netdev {
    nl: Netlink,
}

impl Netdev {
    /// Opens a netlink socket in the calling thread's network namespace and
    /// spawns its connection task on the current tokio runtime.
    ///
    /// Must be called from within a tokio runtime.
    pub async fn new() -> Result<Self, NetdevError> {
        Ok(Netdev { nl: Netlink::new()? })
    }

    /// The ifindex of the link called `name`, or `None` if there is none.
    pub async fn find_link(&self, name: &str) -> Result<Option<u32>, NetdevError> {
        Ok(self.nl.link(name).await?.map(|l| l.index))
    }

    /// Whether a link called `name` exists. Errors count as "no".
    #[cfg_attr(not(test), allow(dead_code))] // used by tests; kept for callers to come
    pub async fn link_exists(&self, name: &str) -> bool {
        matches!(self.find_link(name).await, Ok(Some(_)))
    }

    async fn require_link(&self, op: &'static str, name: &str) -> Result<Link, NetdevError> {
        self.nl.link(name).await?.ok_or_else(|| NetdevError::NotFound { op, name: name.to_owned() })
    }

    /// Creates the Linux bridge `name`, or reuses it if it exists already
    /// (e.g. left by a daemon that crashed), and returns its ifindex.
    ///
    /// Either way the bridge ends up with the given MTU, up, with IGMP/MLD
    /// snooping on (`mcast_snooping 1`) and the kernel's own querier off
    /// (`mcast_querier 0`; the daemon runs its own). A new bridge gets a
    /// fixed random MAC address, so that its address does not change as
    /// ports come and go. Fails with [`NetdevError::WrongKind`] if `name`
    /// is a link of another type.
    pub async fn ensure_bridge(&self, name: &str, mtu: u32) -> Result<u32, NetdevError> {
        let options = BridgeOptions { mtu, mcast_snooping: true, mcast_querier: false };
        let bridge = match self.nl.link(name).await? {
            Some(link) => link,
            None => {
                // `false`: someone created it between our lookup and our add.
                if self.nl.add_bridge(name, random_mac(), options).await? {
                    tracing::info!(bridge = name, mtu, "created bridge");
                }
                self.require_link("creating bridge", name).await?
            }
        };
        if !bridge.is_kind("bridge") {
            return Err(NetdevError::WrongKind {
                name: name.to_owned(),
                wanted: "bridge",
                found: bridge.kind.unwrap_or_else(|| "none".to_owned()),
            });
        }
        // Re-apply everything, in case the bridge was reused.
        self.nl.set_bridge(&bridge, options).await?;
        Ok(bridge.index)
    }

    /// Enslaves the TAP `tap_name` to the bridge `bridge_ifindex`, sets its
    /// MTU and queue length ([`TAP_TXQUEUELEN`]), brings it up, and makes it a permanent multicast router port of
    /// the bridge (`mcast_router 2`, set through `IFLA_INFO_SLAVE_DATA`), so
    /// that every local multicast frame and IGMP/MLD report reaches the
    /// daemon. Idempotent.
    pub async fn attach_tap(&self, tap_name: &str, bridge_ifindex: u32, mtu: u32) -> Result<(), NetdevError> {
        let tap = self.require_link("attaching TAP", tap_name).await?;
        let settings = LinkSettings {
            mtu: Some(mtu),
            txqueuelen: Some(TAP_TXQUEUELEN),
            controller: Some(bridge_ifindex),
            alias: None,
            up: true,
        };
        self.nl.set_link(&tap, &settings).await?;
        self.nl.set_mcast_router(&tap, McastRouter::Permanent).await?;
        Ok(())
    }

    /// Deletes the link `name` (bridge, TAP...). A link that does not exist
    /// is not an error. Deleting a bridge releases its ports and removes its
    /// addresses and routes.
    pub async fn delete_link(&self, name: &str) -> Result<(), NetdevError> {
        if let Some(link) = self.nl.link(name).await? {
            self.nl.delete_link(&link).await?;
        }
        Ok(())
    }

    /// The MTU of the link named `name`.
    #[cfg_attr(not(test), allow(dead_code))] // used by tests; kept for callers to come
    pub async fn link_mtu(&self, name: &str) -> Result<u32, NetdevError> {
        Ok(self.require_link("reading MTU", name).await?.mtu.unwrap_or(DEFAULT_UNDERLAY_MTU))
    }

    /// The MTU on the path the kernel would use to reach `dst` (as
    /// `ip route get`): the route's `mtu` metric if it has one, else the
    /// outgoing interface's MTU. `None` if there is no route to `dst`.
    #[cfg_attr(not(test), allow(dead_code))] // used by tests; kept for callers to come
    pub async fn link_mtu_for(&self, dst: IpAddr) -> Result<Option<u32>, NetdevError> {
        let Some(route) = self.nl.route_to(dst).await? else {
            return Ok(None);
        };
        let Some(oif) = route.oif else {
            return Ok(route.mtu);
        };
        let dev_mtu = self.nl.link_by_index(oif).await?.and_then(|l| l.mtu);
        Ok(match (route.mtu, dev_mtu) {
            (Some(r), Some(d)) => Some(r.min(d)),
            (r, d) => r.or(d),
        })
    }

    /// The largest MTU among the interfaces that can carry the underlay:
    /// up with a carrier, not loopback, not enslaved to a bridge or bond,
    /// not TUN/TAP, and not named in `exclude` (pass our bridge and TAP).
    /// [`DEFAULT_UNDERLAY_MTU`] (1500) when there is none.
    pub async fn max_underlay_mtu(&self, exclude: &[&str]) -> Result<u32, NetdevError> {
        let best = self
            .nl
            .links()
            .await?
            .into_iter()
            .filter(|l| {
                !l.loopback
                    && l.up
                    && l.lower_up
                    && l.controller.is_none()
                    && !l.is_kind("tun")
                    && !exclude.contains(&l.name.as_str())
            })
            .filter_map(|l| l.mtu)
            .max();
        Ok(best.unwrap_or(DEFAULT_UNDERLAY_MTU))
    }

    /// Adds `addr/prefix_len` to the interface `ifname` (for
    /// `weavers expose`). Returns `false` if the address was already there.
    pub async fn add_address(&self, ifname: &str, addr: IpAddr, prefix_len: u8) -> Result<bool, NetdevError> {
        let link = self.require_link("adding address", ifname).await?;
        Ok(self.nl.add_address(&link, addr, prefix_len).await?)
    }

    /// Adds `addr/prefix_len` to `ifname` without the route to its prefix
    /// (`noprefixroute`): the host's routing table does not change. For the
    /// containers' gateway on a host that was not exposed. `false` if the
    /// address was there already.
    pub async fn add_address_no_prefix_route(
        &self,
        ifname: &str,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<bool, NetdevError> {
        let link = self.require_link("adding address", ifname).await?;
        Ok(self.nl.add_address_no_prefix_route(&link, addr, prefix_len).await?)
    }

    /// The addresses of `ifname`, with their prefix lengths.
    pub async fn addresses(&self, ifname: &str) -> Result<Vec<(IpAddr, u8)>, NetdevError> {
        let link = self.require_link("listing addresses of", ifname).await?;
        Ok(self.nl.addresses(&link).await?)
    }

    /// Makes sure the main table routes `addr/prefix_len`'s prefix through
    /// `ifname` as the kernel does for an address it adds (`proto kernel
    /// scope link src ADDR`): the address may have been put there without
    /// it ([`Netdev::add_address_no_prefix_route`]). IPv4 only (an IPv6
    /// address is never added without its route). `true` if it was added.
    pub async fn ensure_prefix_route(&self, ifname: &str, addr: IpAddr, prefix_len: u8) -> Result<bool, NetdevError> {
        if !addr.is_ipv4() {
            return Ok(false);
        }
        let link = self.require_link("adding prefix route", ifname).await?;
        let route = LinkRoute { dst: addr, prefix_len, table: Route::MAIN_TABLE, src: Some(addr), kernel: true };
        Ok(self.nl.add_link_route(&link, &route).await?)
    }

    /// Lets the host answer the overlay from `addr` (on `ifname`, without
    /// its prefix route) and nothing else: a route to `addr/prefix_len`'s
    /// prefix through `ifname` in [`SOURCE_TABLE`], and a rule sending what
    /// `addr` sends to that table. The main table does not change, so the
    /// host's own traffic never enters the overlay; replies from `addr`
    /// (DNS, ICMP) reach the containers, and strict reverse-path filtering
    /// accepts their queries. Rules of the table for another address
    /// (left by an earlier run) are removed. Idempotent.
    pub async fn ensure_source_routing(&self, ifname: &str, addr: IpAddr, prefix_len: u8) -> Result<(), NetdevError> {
        let link = self.require_link("routing the gateway address of", ifname).await?;
        let route = LinkRoute { dst: addr, prefix_len, table: SOURCE_TABLE, src: None, kernel: false };
        self.nl.add_link_route(&link, &route).await?;
        let rule = SourceRule::from_host(addr, SOURCE_TABLE, SOURCE_RULE_PRIORITY);
        for old in self.nl.rules_to_table(addr.is_ipv6(), SOURCE_TABLE).await? {
            if old != rule {
                self.nl.delete_source_rule(&old).await?;
            }
        }
        self.nl.add_source_rule(&rule).await?;
        Ok(())
    }

    /// The ports of the bridge `bridge` but `except` (the TAP): the
    /// containers' host-side veths, or anything else attached to it.
    pub async fn bridge_ports(&self, bridge: &str, except: &str) -> Result<Vec<String>, NetdevError> {
        let Some(br) = self.nl.link(bridge).await? else { return Ok(Vec::new()) };
        Ok(self
            .nl
            .links()
            .await?
            .into_iter()
            .filter(|l| l.controller == Some(br.index) && l.name != except)
            .map(|l| l.name)
            .collect())
    }

    /// The shutdown: removes the TAP, then the bridge (with its addresses
    /// and routes) and the rules of [`SOURCE_TABLE`], unless other ports
    /// (containers' veths) are attached to it: then the bridge stays as it
    /// is, so that the containers keep their interfaces, addresses and
    /// local traffic, and the next start takes it over. Best effort: every
    /// error is returned, in words.
    pub async fn teardown(&self, bridge: &str, tap: &str) -> Vec<String> {
        let mut errors = Vec::new();
        if let Err(e) = self.delete_link(tap).await {
            errors.push(format!("removing {tap}: {e}"));
        }
        match self.bridge_ports(bridge, tap).await {
            Ok(ports) if !ports.is_empty() => {
                tracing::info!(bridge, ports = ports.len(), "keeping the bridge: containers are attached to it");
                return errors;
            }
            Ok(_) => {}
            Err(e) => {
                errors.push(format!("listing the ports of {bridge} (kept): {e}"));
                return errors;
            }
        }
        if let Err(e) = self.delete_link(bridge).await {
            errors.push(format!("removing {bridge}: {e}"));
        }
        // IPv4 only: the containers' gateway comes from IPAM, which shares out an IPv4 range.
        match self.nl.rules_to_table(false, SOURCE_TABLE).await {
            Ok(rules) => {
                for r in rules {
                    if let Err(e) = self.nl.delete_source_rule(&r).await {
                        errors.push(format!("removing rule: {e}"));
                    }
                }
            }
            Err(e) => errors.push(format!("listing rules: {e}")),
        }
        errors
    }

    /// Routes multicast through `ifname` (the bridge) so that ordinary
    /// multicast programs on the host use the overlay: adds
    /// `224.0.0.0/4 dev <ifname>` unless the main table already has a
    /// route for exactly 224.0.0.0/4, and likewise `ff00::/8` (IPv6 is
    /// skipped quietly when it is disabled on the interface). Returns
    /// `true` if at least one route was added.
    pub async fn ensure_multicast_route(&self, ifname: &str) -> Result<bool, NetdevError> {
        let link = self.require_link("adding multicast route", ifname).await?;
        let v4 = self.ensure_route(&link, IpAddr::V4(Ipv4Addr::new(224, 0, 0, 0)), 4).await?;
        let v6 = match self.ensure_route(&link, IpAddr::V6(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0)), 8).await {
            Ok(added) => added,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT | libc::EACCES | libc::EOPNOTSUPP)) => {
                tracing::debug!(dev = ifname, error = %e, "no IPv6 multicast route");
                false
            }
            Err(e) => return Err(e),
        };
        Ok(v4 || v6)
    }

    /// Adds `dst/prefix_len dev <link>` to the main table unless the main
    /// table already has a unicast route for exactly that prefix.
    async fn ensure_route(&self, link: &Link, dst: IpAddr, prefix_len: u8) -> Result<bool, NetdevError> {
        let exists =
            |r: &Route| r.table == Route::MAIN_TABLE && r.unicast && r.prefix_len == prefix_len && r.dst == Some(dst);
        if self.nl.routes(dst).await?.iter().any(exists) {
            return Ok(false);
        }
        let added = self.nl.add_route(link, dst, prefix_len, None).await?;
        if added {
            tracing::info!(route = %format!("{dst}/{prefix_len} dev {}", link.name), "added multicast route");
        }
        Ok(added)
    }
}

/// An open TAP device (`IFF_TAP | IFF_NO_PI`) with a non-blocking fd.
///
/// Each read returns one Ethernet frame, each write sends one. The device
/// lives as long as this value (unless it was made persistent by someone
/// else, see [`Tap::open`]). `read` and `write` take `&self`, so one `Tap`
/// can be shared (e.g. in an `Arc`) by a reading and a writing thread; for
/// tokio, wrap the fd in `tokio::io::unix::AsyncFd`.
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
    name: String,
}

impl Tap {
    /// Opens the TAP named `name`, creating it if absent. An existing
    /// TAP of that name that no process holds (a persistent one, e.g. left
    /// by `ip tuntap add`) is reused and made non-persistent, so that it
    /// goes away with this process. Fails with `EBUSY` (see
    /// [`NetdevError::raw_os_error`]) if another process holds it, and with
    /// `EINVAL` if `name` is a link of another type.
    #[cfg_attr(not(test), allow(dead_code))] // the daemon uses open_offloaded
    pub fn open(name: &str) -> Result<Tap, NetdevError> {
        Self::open_with(name, 0)
    }

    /// As [`Tap::open`], with the kernel's offloads on (see
    /// [`Tap::enable_offloads`]): every read and write carries a 10-byte
    /// virtio-net header before the frame.
    pub fn open_offloaded(name: &str) -> Result<Tap, NetdevError> {
        let tap = Self::open_with(name, libc::IFF_VNET_HDR)?;
        tap.enable_offloads().map_err(|err| NetdevError::Tap {
            op: "enabling offloads on",
            name: name.to_owned(),
            err,
        })?;
        Ok(tap)
    }

    fn open_with(name: &str, extra_flags: libc::c_int) -> Result<Tap, NetdevError> {
        check_ifname(name).map_err(|reason| NetlinkError::InvalidName { name: name.to_owned(), reason })?;
        let err = |op, err| NetdevError::Tap { op, name: name.to_owned(), err };
        // SAFETY: a plain open(2) of a NUL-terminated path.
        let raw = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if raw < 0 {
            return Err(err("opening /dev/net/tun for", io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a freshly opened fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | extra_flags) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) } < 0 {
            let e = io::Error::last_os_error();
            let op = match e.raw_os_error() {
                Some(libc::EBUSY) => "attaching (held by another process?) to",
                Some(libc::EINVAL) => "attaching (a non-TAP link of that name?) to",
                _ => "creating",
            };
            return Err(err(op, e));
        }
        // SAFETY: TUNSETPERSIST takes an integer argument.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETPERSIST, 0 as libc::c_ulong) } < 0 {
            return Err(err("clearing persistence of", io::Error::last_os_error()));
        }
        // SAFETY: the kernel NUL-terminates ifr_name (IFNAMSIZ bytes).
        let actual = unsafe { CStr::from_ptr(ifr.ifr_name.as_ptr()) }.to_string_lossy().into_owned();
        Ok(Tap { fd, name: actual })
    }

    /// The device's name, as the kernel reports it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one frame into `buf`; `WouldBlock` when none is queued. A frame
    /// longer than `buf` is truncated, so give at least MTU + 14 (+4 per
    /// VLAN tag) bytes.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: read(2) into a buffer of the length given.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Turns on the kernel's offloads for this TAP: every read and write
    /// then carries a 10-byte virtio-net header first, and the kernel hands
    /// over TCP super-frames (TSO, up to 64 KiB) with checksums left partial,
    /// and accepts them likewise. Must be called before the TAP is used.
    fn enable_offloads(&self) -> io::Result<()> {
        // SAFETY: TUNSETVNETHDRSZ reads one int; TUNSETOFFLOAD takes flags.
        let size: libc::c_int = 10;
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TUNSETVNETHDRSZ, &size) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;
        // SAFETY: as above.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TUNSETOFFLOAD, flags as libc::c_ulong) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Writes a header and a frame as one packet (writev), for a TAP with
    /// offloads on.
    pub fn write_with_header(&self, header: &[u8], frame: &[u8]) -> io::Result<usize> {
        let iov = [
            libc::iovec { iov_base: header.as_ptr() as *mut libc::c_void, iov_len: header.len() },
            libc::iovec { iov_base: frame.as_ptr() as *mut libc::c_void, iov_len: frame.len() },
        ];
        // SAFETY: writev(2) from two buffers of the lengths given.
        let n = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Writes one Ethernet frame (no packet information header) into the
    /// device, i.e. delivers it to the bridge; `WouldBlock` if the device
    /// cannot take it now.
    #[cfg_attr(not(test), allow(dead_code))] // the daemon uses write_with_header
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        // SAFETY: write(2) from a buffer of the length given.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Frames the kernel queues towards the daemon on the TAP before dropping
/// (`tx_dropped`). The TAP default (500) overflows when a local program
/// sends a burst (an exchange engine releasing a group commit's market data
/// and reports at once) while the daemon is busy; 4096 small frames absorb
/// such a burst. The bound also limits memory if the daemon stalls.
pub const TAP_TXQUEUELEN: u32 = 4096;

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::{Duration, Instant};

    /// Runs `ip ARGS` (in the calling thread's network namespace) and
    /// returns its stdout, or `Err(stderr)`.
    fn ip(args: &str) -> Result<String, String> {
        let out =
            Command::new("ip").args(args.split_whitespace()).output().map_err(|e| format!("running ip {args}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn ip_ok(args: &str) -> String {
        ip(args).unwrap_or_else(|e| panic!("ip {args}: {e}"))
    }

    /// Runs `f` on a fresh thread inside a network namespace of its own
    /// (unshare(CLONE_NEWNET)), on a current-thread tokio runtime. The
    /// namespace, and everything in it, goes away when the thread ends,
    /// whether `f` passes or panics. Skips when not root, unless CI=true.
    fn in_fresh_netns<F, Fut>(f: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "netdev tests need root (CI=true: not skipping)");
            eprintln!("skipping: netdev tests need root");
            return;
        }
        let result = std::thread::spawn(move || {
            // SAFETY: moves only this thread into a new network namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                panic!("unshare(CLONE_NEWNET): {}", io::Error::last_os_error());
            }
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            rt.block_on(f());
        })
        .join();
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }

    #[test]
    fn bridge_tap_address_route_lifecycle() {
        in_fresh_netns(|| async {
            let nd = Netdev::new().await.expect("netlink");
            let (br, tap) = ("wvt-br", "wvt-tap");

            assert_eq!(nd.find_link(br).await.unwrap(), None);
            let idx = nd.ensure_bridge(br, 1400).await.expect("create bridge");
            // Reuse, as after a crash, with another MTU.
            let idx2 = nd.ensure_bridge(br, 1380).await.expect("reuse bridge");
            assert_eq!(idx, idx2);
            assert_eq!(nd.find_link(br).await.unwrap(), Some(idx));
            assert!(nd.link_exists(br).await);
            let out = ip_ok(&format!("-d link show {br}"));
            assert!(out.contains("mtu 1380"), "{out}");
            assert!(out.contains("mcast_snooping 1"), "{out}");
            assert!(out.contains("mcast_querier 0"), "{out}");
            assert!(out.contains(",UP"), "{out}");

            let t = Tap::open(tap).expect("open tap");
            assert_eq!(t.name(), tap);
            let mut buf = [0u8; 2048];
            let e = t.read(&mut buf).expect_err("empty TAP");
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
            // A second opener of a held TAP is refused.
            let e = Tap::open(tap).expect_err("TAP is held");
            assert_eq!(e.raw_os_error(), Some(libc::EBUSY), "{e}");

            nd.attach_tap(tap, idx, 1380).await.expect("attach");
            nd.attach_tap(tap, idx, 1380).await.expect("attach again");
            let out = ip_ok(&format!("-d link show {tap}"));
            assert!(out.contains(&format!("master {br}")), "{out}");
            assert!(out.contains("mtu 1380"), "{out}");
            assert!(out.contains("mcast_router 2"), "{out}");
            assert!(out.contains(",UP"), "{out}");
            assert_eq!(nd.link_mtu(tap).await.unwrap(), 1380);

            // Frames flow: a broadcast written into one TAP port comes out
            // of another port of the bridge.
            let t2 = Tap::open("wvt-tap2").expect("open tap2");
            nd.attach_tap("wvt-tap2", idx, 1380).await.expect("attach 2");
            let mut frame = vec![0xff; 6];
            frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x88, 0xb5]);
            frame.extend_from_slice(b"weavers netdev test payload......................");
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut seen = false;
            while !seen && Instant::now() < deadline {
                t.write(&frame).expect("write frame");
                tokio::time::sleep(Duration::from_millis(50)).await;
                loop {
                    match t2.read(&mut buf) {
                        Ok(n) if buf[..n] == frame[..] => seen = true,
                        Ok(_) => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("read tap2: {e}"),
                    }
                }
            }
            assert!(seen, "frame written into {tap} never left wvt-tap2");

            // Addresses (idempotent).
            let a: IpAddr = "10.40.0.1".parse().unwrap();
            assert!(nd.add_address(br, a, 12).await.unwrap());
            assert!(!nd.add_address(br, a, 12).await.unwrap());
            let a6: IpAddr = "fd00:77::1".parse().unwrap();
            assert!(nd.add_address(br, a6, 64).await.unwrap());
            let out = ip_ok(&format!("addr show dev {br}"));
            assert!(out.contains("inet 10.40.0.1/12"), "{out}");
            assert!(out.contains("inet6 fd00:77::1/64"), "{out}");
            assert!(matches!(nd.add_address("wvt-none", a, 12).await, Err(NetdevError::NotFound { .. })));

            // Multicast routes (idempotent).
            assert!(nd.ensure_multicast_route(br).await.unwrap());
            assert!(!nd.ensure_multicast_route(br).await.unwrap());
            let out = ip_ok("route show 224.0.0.0/4");
            assert!(out.contains(&format!("dev {br}")), "{out}");
            assert!(out.contains("scope link"), "{out}");
            let out = ip_ok("-6 route show ff00::/8 table main");
            assert!(out.contains(&format!("dev {br}")), "{out}");

            // A name taken by another kind of link.
            ip_ok("link add wvt-v0 mtu 9000 type veth peer name wvt-v1 mtu 9000");
            assert!(matches!(nd.ensure_bridge("wvt-v0", 1400).await, Err(NetdevError::WrongKind { .. })));
            assert!(Tap::open("wvt-v0").is_err());

            // Underlay MTU: nothing up but lo, the bridge and TAPs -> 1500;
            // then an up veth pair with MTU 9000.
            assert_eq!(nd.max_underlay_mtu(&[br]).await.unwrap(), 1500);
            ip_ok("link set wvt-v0 up");
            ip_ok("link set wvt-v1 up");
            ip_ok("addr add 10.99.0.1/24 dev wvt-v0");
            let deadline = Instant::now() + Duration::from_secs(5);
            while nd.max_underlay_mtu(&[br]).await.unwrap() != 9000 {
                assert!(Instant::now() < deadline, "veth carrier never came up");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(nd.link_mtu_for("10.99.0.2".parse().unwrap()).await.unwrap(), Some(9000));
            ip_ok("route add 10.98.0.0/16 dev wvt-v0 mtu 1300");
            assert_eq!(nd.link_mtu_for("10.98.1.1".parse().unwrap()).await.unwrap(), Some(1300));
            assert_eq!(nd.link_mtu_for("192.0.2.1".parse().unwrap()).await.unwrap(), None);

            // A persistent TAP left behind is reused and made non-persistent.
            ip_ok("tuntap add mode tap name wvt-ptap");
            let p = Tap::open("wvt-ptap").expect("reuse persistent tap");
            drop(p);
            assert!(!nd.link_exists("wvt-ptap").await);

            // Clean shutdown.
            nd.delete_link(br).await.expect("delete bridge");
            nd.delete_link(tap).await.expect("delete tap");
            nd.delete_link(tap).await.expect("deleting twice is fine");
            assert!(!nd.link_exists(br).await);
            assert!(!nd.link_exists(tap).await);
            assert!(ip(&format!("link show {br}")).is_err());
            assert!(ip_ok("route show 224.0.0.0/4").is_empty());
            drop((t, t2));

            assert!(matches!(
                nd.find_link("this-name-is-too-long").await,
                Err(NetdevError::Netlink(NetlinkError::InvalidName { .. }))
            ));
        });
    }

    #[test]
    fn gateway_address_source_routing_and_teardown() {
        in_fresh_netns(|| async {
            let nd = Netdev::new().await.expect("netlink");
            let (br, tap) = ("wvt-br", "wvt-br-tap");
            let idx = nd.ensure_bridge(br, 1400).await.expect("bridge");
            let t = Tap::open(tap).expect("tap");
            nd.attach_tap(tap, idx, 1400).await.expect("attach");
            let main_before = ip_ok("route show table main");

            // The gateway address: local, no route in main, a rule of its own.
            let a: IpAddr = "10.32.0.1".parse().unwrap();
            assert!(nd.add_address_no_prefix_route(br, a, 12).await.unwrap());
            nd.ensure_source_routing(br, a, 12).await.unwrap();
            nd.ensure_source_routing(br, a, 12).await.unwrap();
            assert!(nd.addresses(br).await.unwrap().contains(&(a, 12)));
            assert_eq!(ip_ok("route show table main"), main_before);
            let rules = ip_ok("rule show");
            assert_eq!(rules.matches("lookup 6783").count(), 1, "{rules}");
            // A rule for another address (an earlier run's) is replaced.
            let b: IpAddr = "10.32.0.9".parse().unwrap();
            nd.ensure_source_routing(br, b, 12).await.unwrap();
            let rules = ip_ok("rule show");
            assert!(rules.contains("from 10.32.0.9 lookup 6783") && !rules.contains("from 10.32.0.1 "), "{rules}");
            nd.ensure_source_routing(br, a, 12).await.unwrap();
            // Exposing adds the prefix route, once.
            assert!(nd.ensure_prefix_route(br, a, 12).await.unwrap());
            assert!(!nd.ensure_prefix_route(br, a, 12).await.unwrap());
            assert!(ip_ok("route show table main")
                .contains("10.32.0.0/12 dev wvt-br proto kernel scope link src 10.32.0.1"));

            // A port besides the TAP: the teardown keeps the bridge (and
            // its address and rule), removes the TAP.
            ip_ok("link add wvt-c0 type veth peer name wvt-c1");
            ip_ok(&format!("link set wvt-c0 master {br}"));
            assert_eq!(nd.bridge_ports(br, tap).await.unwrap(), vec!["wvt-c0".to_string()]);
            drop(t);
            assert_eq!(nd.teardown(br, tap).await, Vec::<String>::new());
            assert!(nd.link_exists(br).await && !nd.link_exists(tap).await);
            assert!(nd.addresses(br).await.unwrap().contains(&(a, 12)));
            assert!(ip_ok("rule show").contains("lookup 6783"));
            // Empty: the bridge and the rule go.
            ip_ok("link del wvt-c0");
            assert!(nd.bridge_ports(br, tap).await.unwrap().is_empty());
            assert_eq!(nd.teardown(br, tap).await, Vec::<String>::new());
            assert!(!nd.link_exists(br).await);
            assert!(!ip_ok("rule show").contains("6783"));
            assert!(nd.bridge_ports(br, tap).await.unwrap().is_empty(), "no bridge, no ports");
        });
    }

    #[test]
    fn multicast_route_without_ipv6() {
        in_fresh_netns(|| async {
            let nd = Netdev::new().await.expect("netlink");
            nd.ensure_bridge("wvt-br", 1400).await.expect("bridge");
            // Written by this thread, so in this thread's namespace.
            std::fs::write("/proc/sys/net/ipv6/conf/wvt-br/disable_ipv6", "1").expect("disable IPv6");
            assert!(nd.ensure_multicast_route("wvt-br").await.unwrap());
            assert!(!nd.ensure_multicast_route("wvt-br").await.unwrap());
            assert!(ip_ok("route show 224.0.0.0/4").contains("dev wvt-br"));
            assert!(ip_ok("-6 route show ff00::/8 table main").is_empty());
            assert!(matches!(nd.ensure_multicast_route("wvt-none").await, Err(NetdevError::NotFound { .. })));
        });
    }
}
