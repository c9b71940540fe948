//! Interface addresses.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};

use crate::error::errno_of;
use crate::route::max_prefix_len;
use crate::{Link, Netlink, NetlinkError};

impl Netlink {
    /// Adds `addr/prefix_len` to `link`. `false` when it was there already.
    pub async fn add_address(&self, link: &Link, addr: IpAddr, prefix_len: u8) -> Result<bool, NetlinkError> {
        self.add_address_with(link, addr, prefix_len, false).await
    }

    /// Adds `addr/prefix_len` to `link` without the route to its prefix
    /// that the kernel adds otherwise (`IFA_F_NOPREFIXROUTE`, as `ip addr
    /// add ... noprefixroute`): the address is local, the routing table
    /// does not change. `false` when it was there already (with or without
    /// its prefix route).
    pub async fn add_address_no_prefix_route(
        &self,
        link: &Link,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<bool, NetlinkError> {
        self.add_address_with(link, addr, prefix_len, true).await
    }

    async fn add_address_with(
        &self,
        link: &Link,
        addr: IpAddr,
        prefix_len: u8,
        no_prefix_route: bool,
    ) -> Result<bool, NetlinkError> {
        if prefix_len > max_prefix_len(addr) {
            return Err(NetlinkError::InvalidPrefix { addr, prefix_len, why: "prefix length too long".into() });
        }
        let mut req = self.handle.address().add(link.index, addr, prefix_len);
        if no_prefix_route {
            req.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Noprefixroute));
        }
        match req.execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno_of(&e) == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(NetlinkError::request("adding address", format!("{addr}/{prefix_len} on {}", link.name))(e)),
        }
    }

    /// The addresses of `link`, with their prefix lengths.
    pub async fn addresses(&self, link: &Link) -> Result<Vec<(IpAddr, u8)>, NetlinkError> {
        let mut addrs = self.handle.address().get().set_link_index_filter(link.index).execute();
        let mut out = Vec::new();
        while let Some(msg) =
            addrs.try_next().await.map_err(NetlinkError::request("listing addresses of", &link.name))?
        {
            if msg.header.index != link.index {
                continue;
            }
            for attr in &msg.attributes {
                if let AddressAttribute::Address(a) = attr {
                    out.push((*a, msg.header.prefix_len));
                }
            }
        }
        Ok(out)
    }
}
