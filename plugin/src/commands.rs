//! ADD, DEL, CHECK, STATUS and GC.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;

use weavers_api::{parse_addr_or_cidr, Allocation, Cidr, ClientError};
use weavers_netlink::{Link, LinkSettings, Netlink};

use crate::config::{Attachment, NetConf};
use crate::daemon::{self, Daemon};
use crate::names;
use crate::netns::{in_netns, open_netns};
use crate::spec::{AddResult, CniError, Dns, Interface, IpConfig, Route};

/// The overlay DNS domain (names resolve as `NAME.weavers.local`).
pub const DNS_DOMAIN: &str = weavers_api::dns_name::DOMAIN;
/// The multicast route every container gets.
const MULTICAST: (Ipv4Addr, u8) = (Ipv4Addr::new(224, 0, 0, 0), 4);
/// Smallest MTU taken from the daemon (below, the bridge's is used).
const MIN_MTU: u32 = 576;

fn daemon_error(e: ClientError) -> CniError {
    let details = daemon::describe(&e);
    if e.is_unavailable() {
        CniError::try_again(details)
    } else if e.is_unknown_route() {
        CniError::other(
            "weaversd lacks the IPAM API",
            format!("{details} (this weaversd is older than the plugin: upgrade weaversd)"),
        )
    } else if matches!(e, ClientError::Api { .. }) {
        CniError::other("weaversd refused the request", details)
    } else {
        CniError::other("unexpected answer from weaversd", details)
    }
}

fn nl_error(e: impl std::fmt::Display) -> CniError {
    CniError::other("network setup failed", e.to_string())
}

fn log(msg: impl std::fmt::Display) {
    eprintln!("weavers-cni: {msg}");
}

/// An address with its prefix length (`10.32.0.5/12`), as the daemon
/// allocates them and `prevResult` lists them: IPv4 only for now, with a
/// prefix length of at least 1.
pub fn ipv4_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    match Cidr::parse(s).map_err(|e| e.to_string())? {
        Cidr { addr: IpAddr::V4(v4), prefix_len } if prefix_len >= 1 => Ok((v4, prefix_len)),
        Cidr { addr: IpAddr::V4(_), .. } => Err(format!("{s:?} has a prefix length of 0")),
        Cidr { addr: IpAddr::V6(_), .. } => Err(format!("{s:?}: IPv6 ranges are not supported by weavers-cni yet")),
    }
}

/// An IPv4 address given with or without its prefix length (`10.32.0.1` or
/// `10.32.0.1/12`), as the daemon gives gateways and allocation rows.
fn parse_gateway(s: &str) -> Option<Ipv4Addr> {
    match parse_addr_or_cidr(s).ok()? {
        (IpAddr::V4(v4), _) => Some(v4),
        (IpAddr::V6(_), _) => None,
    }
}

/// Which bridge: the configured one, else the daemon's.
async fn bridge_name(conf: &NetConf, daemon: &Daemon) -> Result<String, CniError> {
    match &conf.bridge {
        Some(b) => Ok(b.clone()),
        None => Ok(daemon.status().await.map_err(daemon_error)?.bridge),
    }
}

async fn find_bridge(nl: &Netlink, name: &str) -> Result<Link, CniError> {
    match nl.link(name).await.map_err(nl_error)? {
        Some(l) if l.is_kind("bridge") => Ok(l),
        Some(l) => Err(CniError::invalid_config(format!(
            "\"bridge\" {name} is a {} link, not a bridge",
            l.kind.as_deref().unwrap_or("typeless")
        ))),
        None => Err(CniError::try_again(format!(
            "the bridge {name} does not exist in the host's network namespace (weaversd makes it when it starts)"
        ))),
    }
}

/// Whether a host-side link is (or may be) this attachment's own: it has
/// our alias for this key, or no alias at all (a crash between creating it
/// and naming it).
fn is_ours(link: &Link, key: &str) -> bool {
    match link.alias.as_deref() {
        None | Some("") => true,
        Some(a) => names::key_of_alias(a) == Some(key),
    }
}

/// ADD: see the crate docs.
pub async fn add(conf: &NetConf, a: &Attachment) -> Result<AddResult, CniError> {
    let netns_path = a.netns.as_ref().expect("ADD has CNI_NETNS");
    let ns = open_netns(netns_path).map_err(|e| {
        CniError::invalid_env(format!("CNI_NETNS {}: cannot open the network namespace: {e}", netns_path.display()))
    })?;
    let daemon = Daemon::new(&conf.socket);
    let nl = Netlink::new().map_err(nl_error)?;
    let bridge = find_bridge(&nl, &bridge_name(conf, &daemon).await?).await?;

    let key = names::attachment_key(&a.container_id, &a.ifname);
    let host_name = names::host_veth_name(&a.container_id, &a.ifname);
    if let Some(old) = nl.link(&host_name).await.map_err(nl_error)? {
        if !is_ours(&old, &key) {
            return Err(CniError::other(
                "host interface name taken",
                format!(
                    "{host_name} (the host end for {key}) already exists for another attachment ({}); \
                     delete that container first",
                    old.alias.as_deref().unwrap_or("")
                ),
            ));
        }
        log(format!("removing {host_name}, left by an earlier ADD of {key}"));
        nl.delete_link(&old).await.map_err(nl_error)?;
    }
    let ifname = a.ifname.clone();
    let taken =
        in_netns(&ns, move |nl| async move { Ok(nl.link(&ifname).await?.is_some()) }).await.map_err(nl_error)?;
    if taken {
        return Err(CniError::other(
            "interface exists",
            format!("{} already exists in {}", a.ifname, netns_path.display()),
        ));
    }

    // Nothing was made so far; from the allocation on, a failure undoes all.
    let alloc = daemon.allocate(&key).await.map_err(daemon_error)?;
    match setup(conf, a, &ns, &nl, &daemon, &bridge, &host_name, &alloc).await {
        Ok(result) => Ok(result),
        Err(e) => {
            log(format!("ADD of {key} failed, undoing: {e}"));
            if let Ok(Some(l)) = nl.link(&host_name).await {
                if is_ours(&l, &key) {
                    let _ = nl.delete_link(&l).await;
                }
            }
            if let Err(e) = daemon.dns_remove_owner(&names::dns_owner(&a.container_id, &a.ifname)).await {
                log(format!("undo: removing the DNS name: {e}"));
            }
            if let Err(e) = daemon.release(&key).await {
                log(format!("undo: releasing {}: {e}", alloc.address));
            }
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn setup(
    conf: &NetConf,
    a: &Attachment,
    ns: &File,
    nl: &Netlink,
    daemon: &Daemon,
    bridge: &Link,
    host_name: &str,
    alloc: &Allocation,
) -> Result<AddResult, CniError> {
    let (addr, prefix) = ipv4_cidr(&alloc.address)
        .map_err(|e| CniError::other("unexpected answer from weaversd", format!("allocated address: {e}")))?;
    let gateway = alloc.gateway.as_deref().and_then(parse_gateway);
    if gateway.is_none() {
        // The daemon gives one whenever it can; its log says why not.
        log(format!(
            "weaversd gave {} no gateway ({:?}): it gets no DNS server and no default route; see weaversd's log",
            alloc.owner, alloc.gateway
        ));
    }
    let mtu = if alloc.mtu >= MIN_MTU { alloc.mtu } else { bridge.mtu.unwrap_or(1500) };

    nl.add_veth(host_name, &a.ifname, ns.as_fd(), mtu).await.map_err(nl_error)?;
    let host = nl.link(host_name).await.map_err(nl_error)?.ok_or_else(|| {
        CniError::other("network setup failed", format!("{host_name} vanished right after it was made"))
    })?;
    let attach = LinkSettings {
        alias: Some(names::link_alias(&a.container_id, &a.ifname)),
        controller: Some(bridge.index),
        up: true,
        ..LinkSettings::default()
    };
    nl.set_link(&host, &attach).await.map_err(nl_error)?;

    let ifname = a.ifname.clone();
    let default_gw = gateway.filter(|_| conf.default_route);
    let container_mac = in_netns(ns, move |nl| async move {
        let Some(link) = nl.link(&ifname).await? else { return Ok(None) };
        nl.set_link(&link, &LinkSettings { up: true, ..LinkSettings::default() }).await?;
        nl.add_address(&link, IpAddr::V4(addr), prefix).await?;
        nl.add_route(&link, IpAddr::V4(MULTICAST.0), MULTICAST.1, None).await?;
        if let Some(gw) = default_gw {
            nl.add_route(&link, IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, Some(IpAddr::V4(gw))).await?;
        }
        Ok(Some(link.mac))
    })
    .await
    .map_err(nl_error)?
    .ok_or_else(|| {
        CniError::other("network setup failed", format!("{} not in the container after it was made", a.ifname))
    })?;

    let label = names::dns_label(a.pod_name.as_deref(), &a.container_id);
    daemon
        .dns_add(&label, &addr.to_string(), &names::dns_owner(&a.container_id, &a.ifname))
        .await
        .map_err(|e| daemon_error(e).context(format!("registering {label}.{DNS_DOMAIN}")))?;

    let v11 = conf.cni_version == "1.1.0";
    let mut routes = vec![Route { dst: format!("{}/{}", MULTICAST.0, MULTICAST.1), gw: None }];
    if let Some(gw) = default_gw {
        routes.push(Route { dst: "0.0.0.0/0".into(), gw: Some(gw.to_string()) });
    }
    Ok(AddResult {
        cni_version: conf.cni_version.clone(),
        interfaces: vec![
            Interface { name: host_name.to_owned(), mac: host.mac, mtu: v11.then_some(mtu), sandbox: None },
            Interface {
                name: a.ifname.clone(),
                mac: container_mac,
                mtu: v11.then_some(mtu),
                sandbox: Some(a.netns.as_ref().expect("ADD has CNI_NETNS").display().to_string()),
            },
        ],
        ips: vec![IpConfig {
            version: (conf.cni_version == "0.4.0").then(|| "4".to_owned()),
            address: format!("{addr}/{prefix}"),
            gateway: gateway.map(|g| g.to_string()),
            interface: Some(1),
        }],
        routes,
        dns: Dns {
            nameservers: gateway.map(|g| g.to_string()).into_iter().collect(),
            domain: Some(DNS_DOMAIN.to_owned()),
            search: vec![DNS_DOMAIN.to_owned()],
            options: vec![],
        },
    })
}

/// DEL: removes the links first (they need no daemon), then releases the
/// address and the DNS names. Missing things are fine; when the daemon does
/// not answer, the links are still removed and DEL fails with code 11 so
/// that the runtime calls it again (the address is still held until then;
/// GC frees it too).
pub async fn del(conf: &NetConf, a: &Attachment) -> Result<(), CniError> {
    let key = names::attachment_key(&a.container_id, &a.ifname);
    let host_name = names::host_veth_name(&a.container_id, &a.ifname);
    let mut failures: Vec<CniError> = Vec::new();

    let nl = Netlink::new().map_err(nl_error)?;
    match nl.link(&host_name).await {
        Ok(Some(l)) if is_ours(&l, &key) => {
            if let Err(e) = nl.delete_link(&l).await {
                failures.push(nl_error(e));
            }
        }
        Ok(Some(l)) => log(format!("leaving {host_name} alone: it belongs to {}", l.alias.unwrap_or_default())),
        Ok(None) => {}
        Err(e) => failures.push(nl_error(e)),
    }
    // Deleting the host end took the container end with it; an interface
    // of that name left in the container (a half-done ADD) goes too.
    if let Some(path) = &a.netns {
        match open_netns(path) {
            Ok(ns) => {
                let ifname = a.ifname.clone();
                let r = in_netns(&ns, move |nl| async move {
                    match nl.link(&ifname).await? {
                        Some(l) if l.is_kind("veth") => nl.delete_link(&l).await.map(|_| ()),
                        _ => Ok(()),
                    }
                })
                .await;
                if let Err(e) = r {
                    log(format!("cleaning {} in {}: {e}", a.ifname, path.display()));
                }
            }
            Err(e) => log(format!("CNI_NETNS {} is gone ({e}); nothing to clean in it", path.display())),
        }
    }

    let daemon = Daemon::new(&conf.socket);
    if let Err(e) = daemon.dns_remove_owner(&names::dns_owner(&a.container_id, &a.ifname)).await {
        failures.push(daemon_error(e).context("removing the DNS names"));
    }
    if let Err(e) = daemon.release(&key).await {
        failures.push(daemon_error(e).context(format!("releasing the address of {key}")));
    }
    combine(failures)
}

/// One error for several: the first one's code, every message.
fn combine(mut failures: Vec<CniError>) -> Result<(), CniError> {
    if failures.is_empty() {
        return Ok(());
    }
    let mut first = failures.remove(0);
    for f in failures {
        first.details = format!("{}; {}", first.details, f.details);
    }
    Err(first)
}

/// CHECK: the daemon holds the attachment's address, the container has the
/// interface, up, with that address, and the host end is on the bridge.
pub async fn check(conf: &NetConf, a: &Attachment) -> Result<(), CniError> {
    let failed = |what: String| CniError::other("CHECK failed", what);
    let key = names::attachment_key(&a.container_id, &a.ifname);
    let netns_path = a.netns.as_ref().expect("CHECK has CNI_NETNS");
    let ns =
        open_netns(netns_path).map_err(|e| failed(format!("cannot open CNI_NETNS {}: {e}", netns_path.display())))?;
    let daemon = Daemon::new(&conf.socket);

    let ipam = daemon.ipam().await.map_err(daemon_error)?;
    let held = ipam
        .allocations
        .iter()
        .find(|r| r.owner == key)
        .ok_or_else(|| failed(format!("weaversd holds no address for {key}")))?;
    // The daemon lists addresses with or without the prefix length.
    let held_addr = parse_gateway(&held.address)
        .ok_or_else(|| failed(format!("weaversd lists {:?} for {key}, not an IPv4 address", held.address)))?;
    // (address, prefix length when known) the container must have.
    let want: Vec<(IpAddr, Option<u8>)> = match &conf.prev_result {
        None => vec![(IpAddr::V4(held_addr), ipv4_cidr(&held.address).ok().map(|(_, p)| p))],
        Some(prev) => {
            let expected = prev.addresses_of(&a.ifname);
            if expected.is_empty() {
                return Err(failed(format!("prevResult gives {} no address", a.ifname)));
            }
            let mut want = Vec::new();
            for cidr in &expected {
                let (addr, prefix) = ipv4_cidr(cidr).map_err(|e| failed(format!("prevResult address: {e}")))?;
                if addr != held_addr {
                    return Err(failed(format!("{key} was given {cidr}, but weaversd holds {} for it", held.address)));
                }
                want.push((IpAddr::V4(addr), Some(prefix)));
            }
            want
        }
    };

    let ifname = a.ifname.clone();
    let found = in_netns(&ns, move |nl| async move {
        match nl.link(&ifname).await? {
            None => Ok(None),
            Some(l) => Ok(Some((l.up, nl.addresses(&l).await?))),
        }
    })
    .await
    .map_err(nl_error)?;
    match found {
        None => return Err(failed(format!("{} does not exist in {}", a.ifname, netns_path.display()))),
        Some((false, _)) => return Err(failed(format!("{} in {} is down", a.ifname, netns_path.display()))),
        Some((true, addrs)) => {
            let has = |(addr, prefix): &(IpAddr, Option<u8>)| {
                addrs.iter().any(|(a, p)| a == addr && prefix.is_none_or(|want| want == *p))
            };
            if let Some((addr, prefix)) = want.iter().find(|w| !has(w)) {
                let shown = prefix.map_or_else(|| addr.to_string(), |p| format!("{addr}/{p}"));
                return Err(failed(format!("{} in {} lacks {shown}", a.ifname, netns_path.display())));
            }
        }
    }

    let nl = Netlink::new().map_err(nl_error)?;
    let bridge = find_bridge(&nl, &bridge_name(conf, &daemon).await?).await?;
    let host_name = names::host_veth_name(&a.container_id, &a.ifname);
    match nl.link(&host_name).await.map_err(nl_error)? {
        None => Err(failed(format!("the host end {host_name} does not exist"))),
        Some(l) if l.alias.as_deref().and_then(names::key_of_alias) != Some(key.as_str()) => {
            Err(failed(format!("the host end {host_name} belongs to {:?}", l.alias.unwrap_or_default())))
        }
        Some(l) if l.controller != Some(bridge.index) => {
            Err(failed(format!("the host end {host_name} is not on the bridge {}", bridge.name)))
        }
        Some(l) if !l.up => Err(failed(format!("the host end {host_name} is down"))),
        Some(_) => Ok(()),
    }
}

/// STATUS: ready when the daemon answers, its IPAM can give addresses, and
/// the bridge exists; else code 50.
pub async fn status(conf: &NetConf) -> Result<(), CniError> {
    let daemon = Daemon::new(&conf.socket);
    let unavailable = |e: ClientError| CniError::not_available(daemon::describe(&e));
    let ipam = daemon.ipam().await.map_err(unavailable)?;
    if !ipam.seeded && ipam.free == 0 {
        let mut why = format!("weaversd's IPAM is not ready: the range {} is not shared out yet", ipam.range);
        if !ipam.problems.is_empty() {
            why = format!("{why} ({})", ipam.problems.join("; "));
        }
        return Err(CniError::not_available(why));
    }
    let bridge = match &conf.bridge {
        Some(b) => b.clone(),
        None => daemon.status().await.map_err(unavailable)?.bridge,
    };
    let nl = Netlink::new().map_err(|e| CniError::not_available(e.to_string()))?;
    match nl.link(&bridge).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(CniError::not_available(format!("the bridge {bridge} does not exist"))),
        Err(e) => Err(CniError::not_available(e.to_string())),
    }
}

/// GC: removes every attachment this host has that is not in
/// `cni.dev/valid-attachments`: the host ends of its veths, its addresses
/// and its DNS names. Goes on after a failure and reports them all.
pub async fn gc(conf: &NetConf) -> Result<(), CniError> {
    let keep_list = conf.valid_attachments.clone().ok_or_else(|| {
        CniError::invalid_config("GC needs \"cni.dev/valid-attachments\" (the attachments to keep) in the config")
    })?;
    let keep: BTreeSet<&str> = keep_list.iter().map(String::as_str).collect();
    let mut failures = Vec::new();

    match Netlink::new() {
        Err(e) => failures.push(nl_error(e)),
        Ok(nl) => match nl.links().await {
            Err(e) => failures.push(nl_error(e)),
            Ok(links) => {
                for l in links.iter().filter(|l| l.name.starts_with(names::HOST_VETH_PREFIX)) {
                    let Some(key) = l.alias.as_deref().and_then(names::key_of_alias) else { continue };
                    if !keep.contains(key) {
                        log(format!("GC: removing {} ({key})", l.name));
                        if let Err(e) = nl.delete_link(l).await {
                            failures.push(nl_error(e));
                        }
                    }
                }
            }
        },
    }

    let daemon = Daemon::new(&conf.socket);
    match daemon.ipam_gc(keep_list.clone()).await {
        Ok(r) => {
            for row in &r.released {
                log(format!("GC: released {} ({})", row.address, row.owner));
            }
        }
        Err(e) => failures.push(daemon_error(e).context("freeing addresses")),
    }
    match dns_leftovers(&daemon, &keep).await {
        Err(e) => failures.push(daemon_error(e).context("listing DNS names")),
        Ok(owners) => {
            for owner in owners {
                log(format!("GC: removing DNS names of {owner}"));
                if let Err(e) = daemon.dns_remove_owner(&owner).await {
                    failures.push(daemon_error(e).context("removing DNS names"));
                }
            }
        }
    }
    combine(failures)
}

/// This host's DNS owner tags made by the plugin for attachments not kept.
async fn dns_leftovers(daemon: &Daemon, keep: &BTreeSet<&str>) -> Result<BTreeSet<String>, ClientError> {
    let me = daemon.status().await?.public_key;
    let records = daemon.dns_list().await?;
    Ok(records
        .into_iter()
        .filter(|r| r.origin_key == me)
        .filter_map(|r| r.owner)
        .filter(|o| names::key_of_dns_owner(o).is_some_and(|k| !keep.contains(k)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_parse() {
        assert_eq!(ipv4_cidr("10.32.0.5/12"), Ok((Ipv4Addr::new(10, 32, 0, 5), 12)));
        assert!(ipv4_cidr("10.32.0.5").is_err());
        assert!(ipv4_cidr("10.32.0.5/33").is_err());
        assert!(ipv4_cidr("10.32.0.5/0").is_err());
        assert!(ipv4_cidr("fd00::1/64").unwrap_err().contains("IPv6"));
        assert!(ipv4_cidr("nope/12").is_err());
        assert_eq!(parse_gateway("10.32.0.1/12"), Some(Ipv4Addr::new(10, 32, 0, 1)));
        assert_eq!(parse_gateway("10.32.0.1"), Some(Ipv4Addr::new(10, 32, 0, 1)));
        assert_eq!(parse_gateway("x"), None);
        assert_eq!(parse_gateway("fd00::1/64"), None);
    }

    #[test]
    fn own_links_are_recognised_by_alias() {
        let key = names::attachment_key("c1", "eth0");
        let mut l = Link { alias: Some(names::link_alias("c1", "eth0")), ..Link::default() };
        assert!(is_ours(&l, &key));
        l.alias = None;
        assert!(is_ours(&l, &key));
        l.alias = Some(names::link_alias("c2", "eth0"));
        assert!(!is_ours(&l, &key));
        l.alias = Some("someone's link".into());
        assert!(!is_ours(&l, &key));
    }

    #[test]
    fn combined_errors_keep_the_first_code_and_every_message() {
        assert_eq!(combine(vec![]), Ok(()));
        let e = combine(vec![CniError::try_again("a"), CniError::other("x", "b")]).unwrap_err();
        assert_eq!(e.code, 11);
        assert_eq!(e.details, "a; b");
    }
}
