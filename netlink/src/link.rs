//! Links: finding and listing them, bridges, veth pairs, link settings,
//! multicast-router ports, deletion.

use std::os::fd::{AsRawFd, BorrowedFd};

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{
    BridgeMulticastRouterType, InfoData, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::{LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

use crate::error::errno_of;
use crate::{check_ifname, Netlink, NetlinkError};

/// What the kernel says about a link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// The ifindex.
    pub index: u32,
    /// The name.
    pub name: String,
    /// `IFLA_IFALIAS`, when set.
    pub alias: Option<String>,
    /// The hardware address as `aa:bb:cc:dd:ee:ff` (empty when none).
    pub mac: String,
    /// The MTU.
    pub mtu: Option<u32>,
    /// The bridge (or other controller) it is a port of.
    pub controller: Option<u32>,
    /// The link type: `bridge`, `veth`, `tun`... (`None` for a physical
    /// device or loopback).
    pub kind: Option<String>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// With a carrier (`IFF_LOWER_UP`).
    pub lower_up: bool,
    /// The loopback device.
    pub loopback: bool,
}

impl Link {
    fn from_message(msg: &LinkMessage) -> Link {
        let flags = msg.header.flags;
        let mut link = Link {
            index: msg.header.index,
            up: flags.contains(LinkFlags::Up),
            lower_up: flags.contains(LinkFlags::LowerUp),
            loopback: flags.contains(LinkFlags::Loopback),
            ..Link::default()
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::IfAlias(a) => link.alias = Some(a.clone()),
                LinkAttribute::Address(a) => link.mac = mac_string(a),
                LinkAttribute::Mtu(m) => link.mtu = Some(*m),
                LinkAttribute::Controller(c) if *c != 0 => link.controller = Some(*c),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(k) = info {
                            link.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }

    /// Whether the link is of type `kind` (`bridge`, `veth`, `tun`...).
    pub fn is_kind(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }
}

fn mac_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The multicast-snooping settings of a bridge, and its MTU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeOptions {
    /// The bridge's MTU.
    pub mtu: u32,
    /// IGMP/MLD snooping (`mcast_snooping`).
    pub mcast_snooping: bool,
    /// Whether the kernel sends queries itself (`mcast_querier`).
    pub mcast_querier: bool,
}

/// Changes to a link; `None` fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkSettings {
    /// A new MTU.
    pub mtu: Option<u32>,
    /// A new transmit queue length.
    pub txqueuelen: Option<u32>,
    /// The bridge to make it a port of.
    pub controller: Option<u32>,
    /// A new alias (`IFLA_IFALIAS`).
    pub alias: Option<String>,
    /// Bring it up.
    pub up: bool,
}

/// A bridge port's `mcast_router` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum McastRouter {
    /// 0: never a multicast-router port.
    Disabled,
    /// 1: a router port while queries arrive on it (the kernel's default).
    Auto,
    /// 2: always a router port: every multicast frame and every report
    /// leaves through it.
    Permanent,
    /// 3: a router port for a while, refreshed by queries.
    Temporary,
}

impl From<McastRouter> for BridgeMulticastRouterType {
    fn from(m: McastRouter) -> Self {
        match m {
            McastRouter::Disabled => BridgeMulticastRouterType::Disabled,
            McastRouter::Auto => BridgeMulticastRouterType::TempQuery,
            McastRouter::Permanent => BridgeMulticastRouterType::Permanent,
            McastRouter::Temporary => BridgeMulticastRouterType::Temp,
        }
    }
}

impl Netlink {
    /// The link called `name`, if there is one.
    pub async fn link(&self, name: &str) -> Result<Option<Link>, NetlinkError> {
        check_ifname(name).map_err(|reason| NetlinkError::InvalidName { name: name.to_owned(), reason })?;
        let mut links = self.handle.link().get().match_name(name.to_owned()).execute();
        match links.try_next().await {
            Ok(msg) => Ok(msg.as_ref().map(Link::from_message)),
            Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(NetlinkError::request("looking up link", name)(e)),
        }
    }

    /// The link with ifindex `index`, if there is one.
    pub async fn link_by_index(&self, index: u32) -> Result<Option<Link>, NetlinkError> {
        let mut links = self.handle.link().get().match_index(index).execute();
        match links.try_next().await {
            Ok(msg) => Ok(msg.as_ref().map(Link::from_message)),
            Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(NetlinkError::request("looking up link", format!("#{index}"))(e)),
        }
    }

    /// Every link of the namespace.
    pub async fn links(&self) -> Result<Vec<Link>, NetlinkError> {
        let mut links = self.handle.link().get().execute();
        let mut out = Vec::new();
        while let Some(msg) = links.try_next().await.map_err(NetlinkError::request("listing links", "(all)"))? {
            out.push(Link::from_message(&msg));
        }
        Ok(out)
    }

    /// Creates the bridge `name`, up, with the hardware address `mac` and
    /// `options`. `false` when a link of that name exists already (of
    /// whatever type: look it up).
    pub async fn add_bridge(&self, name: &str, mac: [u8; 6], options: BridgeOptions) -> Result<bool, NetlinkError> {
        check_ifname(name).map_err(|reason| NetlinkError::InvalidName { name: name.to_owned(), reason })?;
        let msg = LinkBridge::new(name)
            .address(mac.to_vec())
            .mtu(options.mtu)
            .mcast_snooping(options.mcast_snooping)
            .mcast_querier(options.mcast_querier)
            .build();
        match self.handle.link().add(msg).execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno_of(&e) == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(NetlinkError::request("creating bridge", name)(e)),
        }
    }

    /// Applies `options` to the existing bridge `bridge`.
    pub async fn set_bridge(&self, bridge: &Link, options: BridgeOptions) -> Result<(), NetlinkError> {
        let msg = LinkBridge::new(&bridge.name)
            .index(bridge.index)
            .mtu(options.mtu)
            .mcast_snooping(options.mcast_snooping)
            .mcast_querier(options.mcast_querier)
            .build();
        self.handle
            .link()
            .change(msg)
            .execute()
            .await
            .map_err(NetlinkError::request("configuring bridge", &bridge.name))
    }

    /// Creates the veth pair `name` (here) and `peer`, both with `mtu`,
    /// the peer made directly inside the network namespace `peer_netns`,
    /// so that its name never meets this namespace's interfaces.
    pub async fn add_veth(
        &self,
        name: &str,
        peer: &str,
        peer_netns: BorrowedFd<'_>,
        mtu: u32,
    ) -> Result<(), NetlinkError> {
        for n in [name, peer] {
            check_ifname(n).map_err(|reason| NetlinkError::InvalidName { name: n.to_owned(), reason })?;
        }
        let peer_msg =
            LinkMessageBuilder::<LinkUnspec>::new().name(peer).mtu(mtu).setns_by_fd(peer_netns.as_raw_fd()).build();
        let msg = LinkVeth::new(name, peer).mtu(mtu).set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg))).build();
        let target = format!("{name} (peer {peer})");
        self.handle.link().add(msg).execute().await.map_err(NetlinkError::request("creating veth", target))
    }

    /// Changes `link` as `settings` say.
    pub async fn set_link(&self, link: &Link, settings: &LinkSettings) -> Result<(), NetlinkError> {
        let mut msg = LinkUnspec::new_with_index(link.index);
        if let Some(mtu) = settings.mtu {
            msg = msg.mtu(mtu);
        }
        if let Some(len) = settings.txqueuelen {
            msg = msg.txqueuelen(len);
        }
        if let Some(controller) = settings.controller {
            msg = msg.controller(controller);
        }
        if let Some(alias) = &settings.alias {
            msg = msg.alias(alias);
        }
        if settings.up {
            msg = msg.up();
        }
        self.handle
            .link()
            .set(msg.build())
            .execute()
            .await
            .map_err(NetlinkError::request("configuring link", &link.name))
    }

    /// Sets the `mcast_router` of the bridge port `port`.
    pub async fn set_mcast_router(&self, port: &Link, router: McastRouter) -> Result<(), NetlinkError> {
        let msg = LinkBridgePort::new(port.index).mcast_router(router.into()).build();
        self.handle
            .link()
            .set_port(msg)
            .execute()
            .await
            .map_err(NetlinkError::request("setting mcast_router of", &port.name))
    }

    /// Deletes `link`. `false` when it was gone already. Deleting a bridge
    /// releases its ports and removes its addresses and routes; deleting
    /// one end of a veth pair deletes the other.
    pub async fn delete_link(&self, link: &Link) -> Result<bool, NetlinkError> {
        match self.handle.link().del(link.index).execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(NetlinkError::request("deleting link", &link.name)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_print_as_usual() {
        assert_eq!(mac_string(&[0x02, 0, 0xab, 1, 2, 0xff]), "02:00:ab:01:02:ff");
        assert_eq!(mac_string(&[]), "");
    }
}
