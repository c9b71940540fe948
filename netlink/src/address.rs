//! Interface addresses.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;

use crate::error::errno_of;
use crate::route::max_prefix_len;
use crate::{Link, Netlink, NetlinkError};

impl Netlink {
    /// Adds `addr/prefix_len` to `link`. `false` when it was there already.
    pub async fn add_address(&self, link: &Link, addr: IpAddr, prefix_len: u8) -> Result<bool, NetlinkError> {
        if prefix_len > max_prefix_len(addr) {
            return Err(NetlinkError::InvalidPrefix { addr, prefix_len, why: "prefix length too long".into() });
        }
        match self.handle.address().add(link.index, addr, prefix_len).execute().await {
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
