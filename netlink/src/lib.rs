//! weavers-netlink: the rtnetlink operations weavers' daemon and CNI plugin
//! need, as a thin typed wrapper: [`Link`]s instead of link messages,
//! `bool` answers where "already there" / "already gone" is not a failure,
//! and [`NetlinkError`]s that name the operation, its target and the
//! kernel's errno.
//!
//! A [`Netlink`] acts on the network namespace of the thread that opened
//! it; its connection runs as a task on the tokio runtime that did.
//!
//! - [`link`]: finding and listing links, bridges, veth pairs, link
//!   settings (MTU, queue length, controller, alias, up), multicast-router
//!   ports, deletion;
//! - [`address`]: interface addresses;
//! - [`route`]: routes, and the path MTU towards a destination;
//! - [`rule`]: policy-routing rules by source address;
//! - [`ifname`]: Linux's rule for interface names.

#![warn(missing_docs)]

pub mod address;
mod error;
pub mod ifname;
pub mod link;
pub mod route;
pub mod rule;

pub use error::NetlinkError;
pub use ifname::{check_ifname, IfnameError, MAX_IFNAME_LEN};
pub use link::{BridgeOptions, Link, LinkSettings, McastRouter};
pub use route::{network_of, LinkRoute, Route, RouteTo};
pub use rule::SourceRule;

/// A connection to the kernel's routing netlink, in the network namespace
/// of the thread that made it.
///
/// Cheap to clone; all clones share one connection.
#[derive(Clone, Debug)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// Opens a netlink socket in the calling thread's network namespace and
    /// runs its connection on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new() -> Result<Netlink, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }
}
