//! Links, addresses and routes through rtnetlink, and running netlink work
//! inside the container's network namespace.
//!
//! A netlink socket acts on the network namespace of the thread that opened
//! it. The plugin's main thread stays in the host's namespace; work inside
//! the container runs on a thread made for it ([`in_netns`]), which joins
//! the container's namespace with `setns(2)` and ends with the work.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, RawFd};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// A failed netlink operation: what, on what, and the kernel's word.
#[derive(Debug)]
pub struct NlError {
    pub op: String,
    /// The errno of a kernel refusal.
    pub errno: Option<i32>,
    pub message: String,
}

impl fmt::Display for NlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.message)
    }
}

impl std::error::Error for NlError {}

fn nl_err(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NlError {
    let op = op.into();
    move |err| {
        let (errno, message) = match &err {
            rtnetlink::Error::NetlinkError(msg) => (msg.code.map(|c| c.get().abs()), msg.to_io().to_string()),
            other => (None, other.to_string()),
        };
        NlError { op, errno, message }
    }
}

/// What the plugin needs to know about a link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    pub mtu: Option<u32>,
    /// The bridge (or other controller) it is a port of.
    pub controller: Option<u32>,
    /// `veth`, `bridge`...
    pub kind: Option<String>,
    pub up: bool,
}

impl Link {
    fn from_message(msg: &LinkMessage) -> Link {
        let mut link =
            Link { index: msg.header.index, up: msg.header.flags.contains(LinkFlags::Up), ..Link::default() };
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
                            link.kind = Some(match k {
                                InfoKind::Veth => "veth".to_owned(),
                                InfoKind::Bridge => "bridge".to_owned(),
                                other => other.to_string(),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

fn mac_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A netlink connection in the namespace of the thread that made it.
#[derive(Clone, Debug)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// Opens a netlink socket in the calling thread's network namespace and
    /// runs its connection on the current tokio runtime.
    pub fn new() -> Result<Netlink, NlError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| NlError {
            op: "opening a netlink socket".into(),
            errno: e.raw_os_error(),
            message: e.to_string(),
        })?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// The link called `name`, if there is one.
    pub async fn link(&self, name: &str) -> Result<Option<Link>, NlError> {
        let mut links = self.handle.link().get().match_name(name).execute();
        match links.try_next().await {
            Ok(msg) => Ok(msg.as_ref().map(Link::from_message)),
            Err(e) => {
                let e = nl_err(format!("looking up link {name}"))(e);
                if e.errno == Some(libc::ENODEV) {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Every link of the namespace.
    pub async fn links(&self) -> Result<Vec<Link>, NlError> {
        let mut links = self.handle.link().get().execute();
        let mut out = Vec::new();
        while let Some(msg) = links.try_next().await.map_err(nl_err("listing links"))? {
            out.push(Link::from_message(&msg));
        }
        Ok(out)
    }

    /// Creates the veth pair: `host` here (with `mtu`), and its peer
    /// `peer` (with `mtu`) made directly inside the namespace `peer_ns`,
    /// so that the container's name never meets the host's interfaces.
    pub async fn add_veth(&self, host: &str, peer: &str, peer_ns: RawFd, mtu: u32) -> Result<(), NlError> {
        let peer_msg = LinkMessageBuilder::<LinkUnspec>::new().name(peer).mtu(mtu).setns_by_fd(peer_ns).build();
        let msg = LinkVeth::new(host, peer).mtu(mtu).set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg))).build();
        self.handle.link().add(msg).execute().await.map_err(nl_err(format!("creating veth {host} (peer {peer})")))
    }

    /// Puts link `index` on the bridge `bridge`, sets its alias and brings
    /// it up.
    pub async fn attach(&self, index: u32, name: &str, alias: &str, bridge: u32) -> Result<(), NlError> {
        let msg = LinkUnspec::new_with_index(index).alias(alias).controller(bridge).up().build();
        self.handle.link().set(msg).execute().await.map_err(nl_err(format!("attaching {name} to the bridge")))
    }

    /// Brings link `index` up.
    pub async fn set_up(&self, index: u32, name: &str) -> Result<(), NlError> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.handle.link().set(msg).execute().await.map_err(nl_err(format!("bringing {name} up")))
    }

    /// Deletes link `index`; a link that is already gone is fine.
    pub async fn delete(&self, index: u32, name: &str) -> Result<(), NlError> {
        match self.handle.link().del(index).execute().await.map_err(nl_err(format!("deleting link {name}"))) {
            Err(e) if e.errno == Some(libc::ENODEV) => Ok(()),
            r => r,
        }
    }

    /// Adds `addr/prefix_len` to link `index`; an address already there is fine.
    pub async fn add_address(&self, index: u32, name: &str, addr: IpAddr, prefix_len: u8) -> Result<(), NlError> {
        let r = self.handle.address().add(index, addr, prefix_len).execute().await;
        match r.map_err(nl_err(format!("adding {addr}/{prefix_len} to {name}"))) {
            Err(e) if e.errno == Some(libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// The addresses of link `index`, with their prefix lengths.
    pub async fn addresses(&self, index: u32) -> Result<Vec<(IpAddr, u8)>, NlError> {
        let mut addrs = self.handle.address().get().set_link_index_filter(index).execute();
        let mut out = Vec::new();
        while let Some(msg) = addrs.try_next().await.map_err(nl_err("listing addresses"))? {
            if msg.header.index != index {
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

    /// Adds an IPv4 route `dst/prefix_len` out of link `index`, through
    /// `gateway` when given, else on the link (scope link). A route already
    /// there is fine.
    pub async fn add_route_v4(
        &self,
        index: u32,
        dst: Ipv4Addr,
        prefix_len: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<(), NlError> {
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(dst, prefix_len).output_interface(index);
        let what = match gateway {
            Some(gw) => {
                b = b.gateway(gw);
                format!("adding route {dst}/{prefix_len} via {gw}")
            }
            None => {
                b = b.scope(RouteScope::Link);
                format!("adding route {dst}/{prefix_len}")
            }
        };
        match self.handle.route().add(b.build()).execute().await.map_err(nl_err(what)) {
            Err(e) if e.errno == Some(libc::EEXIST) => Ok(()),
            r => r,
        }
    }
}

/// Opens a network namespace file (`CNI_NETNS`).
pub fn open_netns(path: &std::path::Path) -> std::io::Result<File> {
    File::open(path)
}

/// Runs `work` with a netlink connection inside the network namespace
/// `ns`, on a thread of its own (with a current-thread tokio runtime),
/// and gives back its result.
pub async fn in_netns<F, Fut, T>(ns: &File, work: F) -> Result<T, NlError>
where
    F: FnOnce(Netlink) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NlError>>,
    T: Send + 'static,
{
    let fail =
        |op: &str, e: std::io::Error| NlError { op: op.to_owned(), errno: e.raw_os_error(), message: e.to_string() };
    let ns = ns.try_clone().map_err(|e| fail("duplicating the namespace handle", e))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("weavers-cni-netns".into())
        .spawn(move || {
            let result = (|| {
                // SAFETY: setns on a valid namespace fd; it moves only this
                // thread, which ends when the work is done.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(fail("entering the container's network namespace", std::io::Error::last_os_error()));
                }
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| fail("starting a runtime in the container's namespace", e))?;
                rt.block_on(async move { work(Netlink::new()?).await })
            })();
            let _ = tx.send(result);
        })
        .map_err(|e| fail("starting a thread for the container's namespace", e))?;
    rx.await.unwrap_or_else(|_| {
        Err(NlError {
            op: "working in the container's network namespace".into(),
            errno: None,
            message: "the thread ended without an answer (it panicked)".into(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_print_as_usual() {
        assert_eq!(mac_string(&[0x02, 0, 0xab, 1, 2, 0xff]), "02:00:ab:01:02:ff");
    }
}
