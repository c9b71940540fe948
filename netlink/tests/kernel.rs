//! Every operation against the kernel, in a network namespace of the test's
//! own (unshare(CLONE_NEWNET) on a thread), checked with `ip` where the
//! wrapper does not read the setting back. Needs root; skipped without it
//! unless CI=true. The namespace and everything in it goes away with the
//! thread, whether the test passes or fails.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::process::Command;

use weavers_netlink::{
    network_of, BridgeOptions, IfnameError, LinkRoute, LinkSettings, McastRouter, Netlink, NetlinkError, Route,
    SourceRule,
};

/// Runs `ip ARGS` (in the calling thread's namespace): its stdout.
fn ip(args: &str) -> String {
    let out = Command::new("ip").args(args.split_whitespace()).output().expect("run ip");
    assert!(out.status.success(), "ip {args}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn in_fresh_netns<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "netlink tests need root (CI=true: not skipping)");
        eprintln!("skipping: netlink tests need root");
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

const OPTS: BridgeOptions = BridgeOptions { mtu: 1400, mcast_snooping: true, mcast_querier: false };

#[test]
fn links_bridges_veths_addresses_and_routes() {
    in_fresh_netns(|| async {
        let nl = Netlink::new().expect("netlink");
        let all = nl.links().await.unwrap();
        assert!(all.iter().any(|l| l.name == "lo" && l.loopback), "{all:?}");
        assert_eq!(nl.link("wvn-br").await.unwrap(), None);
        assert!(matches!(
            nl.link("this-name-is-too-long").await,
            Err(NetlinkError::InvalidName { reason: IfnameError::TooLong, .. })
        ));

        // A bridge, and a second add of the same name.
        let mac = [0x02, 0, 0, 0, 0, 0x42];
        assert!(nl.add_bridge("wvn-br", mac, OPTS).await.unwrap());
        assert!(!nl.add_bridge("wvn-br", mac, OPTS).await.unwrap());
        let br = nl.link("wvn-br").await.unwrap().expect("bridge exists");
        assert!(br.is_kind("bridge") && br.up, "{br:?}");
        assert_eq!((br.mac.as_str(), br.mtu), ("02:00:00:00:00:42", Some(1400)));
        assert_eq!(nl.link_by_index(br.index).await.unwrap().as_ref(), Some(&br));
        assert_eq!(nl.link_by_index(999_999).await.unwrap(), None);
        nl.set_bridge(&br, BridgeOptions { mtu: 1380, ..OPTS }).await.unwrap();
        let out = ip("-d link show wvn-br");
        assert!(
            out.contains("mtu 1380") && out.contains("mcast_snooping 1") && out.contains("mcast_querier 0"),
            "{out}"
        );

        // A veth pair (the peer "into" this same namespace), one end on the
        // bridge with an alias, a permanent multicast-router port.
        let ns = File::open("/proc/thread-self/ns/net").unwrap();
        nl.add_veth("wvn-a", "wvn-b", ns.as_fd(), 1380).await.unwrap();
        let a = nl.link("wvn-a").await.unwrap().expect("veth end");
        let b = nl.link("wvn-b").await.unwrap().expect("veth peer");
        assert!(a.is_kind("veth") && b.is_kind("veth"));
        assert_eq!((a.mtu, b.mtu), (Some(1380), Some(1380)));
        assert!(a.mac.len() == 17 && !a.up, "{a:?}");
        let settings = LinkSettings {
            mtu: Some(1300),
            txqueuelen: Some(4096),
            controller: Some(br.index),
            alias: Some("weavers-test:a".into()),
            up: true,
        };
        nl.set_link(&a, &settings).await.unwrap();
        let a = nl.link("wvn-a").await.unwrap().unwrap();
        assert_eq!(
            (a.controller, a.alias.as_deref(), a.mtu, a.up),
            (Some(br.index), Some("weavers-test:a"), Some(1300), true)
        );
        assert!(ip("link show wvn-a").contains("qlen 4096"));
        nl.set_mcast_router(&a, McastRouter::Permanent).await.unwrap();
        assert!(ip("-d link show wvn-a").contains("mcast_router 2"));
        nl.set_mcast_router(&a, McastRouter::Disabled).await.unwrap();
        assert!(ip("-d link show wvn-a").contains("mcast_router 0"));
        // A kernel refusal keeps its errno and names what was attempted.
        let bad = LinkSettings { controller: Some(999_999), ..LinkSettings::default() };
        let e = nl.set_link(&b, &bad).await.unwrap_err();
        assert!(e.errno().is_some(), "{e:?}");
        assert!(e.to_string().starts_with("configuring link wvn-b: "), "{e}");

        // Addresses.
        nl.set_link(&b, &LinkSettings { up: true, ..LinkSettings::default() }).await.unwrap();
        let addr = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1));
        let addr6: IpAddr = "fd00:99::1".parse().unwrap();
        assert!(nl.add_address(&b, addr, 24).await.unwrap());
        assert!(!nl.add_address(&b, addr, 24).await.unwrap());
        assert!(nl.add_address(&b, addr6, 64).await.unwrap());
        let addrs = nl.addresses(&b).await.unwrap();
        assert!(addrs.contains(&(addr, 24)) && addrs.contains(&(addr6, 64)), "{addrs:?}");
        assert!(!nl.addresses(&a).await.unwrap().iter().any(|(x, _)| x.is_ipv4()), "a has no IPv4 address");
        assert!(matches!(nl.add_address(&b, addr, 33).await, Err(NetlinkError::InvalidPrefix { .. })));

        // Routes: on the link (scope link), through a gateway, and where
        // the kernel would send a packet.
        let mcast = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 0));
        assert!(nl.add_route(&b, mcast, 4, None).await.unwrap());
        assert!(!nl.add_route(&b, mcast, 4, None).await.unwrap());
        let out = ip("route show 224.0.0.0/4");
        assert!(out.contains("dev wvn-b") && out.contains("scope link"), "{out}");
        let net = IpAddr::V4(Ipv4Addr::new(10, 98, 0, 0));
        let gw = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2));
        assert!(nl.add_route(&b, net, 16, Some(gw)).await.unwrap());
        assert!(matches!(
            nl.add_route(&b, net, 16, Some("fd00::1".parse().unwrap())).await,
            Err(NetlinkError::InvalidPrefix { .. })
        ));
        let routes = nl.routes(net).await.unwrap();
        let via = routes.iter().find(|r| r.dst == Some(net)).expect("the route via the gateway");
        let want = Route {
            table: Route::MAIN_TABLE,
            unicast: true,
            dst: Some(net),
            prefix_len: 16,
            oif: Some(b.index),
            gateway: Some(gw),
        };
        assert_eq!(via, &want);
        assert!(routes.iter().any(|r| r.dst == Some(mcast) && r.prefix_len == 4 && r.gateway.is_none()));
        assert!(nl.routes(addr6).await.unwrap().iter().all(|r| r.dst.is_none_or(|d| d.is_ipv6())));
        let to = nl.route_to(IpAddr::V4(Ipv4Addr::new(10, 98, 1, 1))).await.unwrap().expect("a route");
        assert_eq!((to.oif, to.mtu), (Some(b.index), None));
        ip("route add 10.97.0.0/16 dev wvn-b mtu 1200");
        let to = nl.route_to(IpAddr::V4(Ipv4Addr::new(10, 97, 0, 1))).await.unwrap().unwrap();
        assert_eq!(to.mtu, Some(1200));
        assert_eq!(nl.route_to(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))).await.unwrap(), None);

        // Deleting: once, then it is gone; the peer went with it.
        assert!(nl.delete_link(&a).await.unwrap());
        assert!(!nl.delete_link(&a).await.unwrap());
        assert_eq!(nl.link("wvn-b").await.unwrap(), None);
        assert!(nl.delete_link(&br).await.unwrap());
        assert_eq!(nl.link("wvn-br").await.unwrap(), None);
    });
}

#[test]
fn an_address_without_its_prefix_route_a_table_of_its_own_and_a_source_rule() {
    in_fresh_netns(|| async {
        let nl = Netlink::new().expect("netlink");
        assert!(nl.add_bridge("wvn-br", [0x02, 0, 0, 0, 0, 0x43], OPTS).await.unwrap());
        let br = nl.link("wvn-br").await.unwrap().expect("bridge");
        let main_before = ip("route show table main");

        // The address is local, and the main table gains nothing.
        let a = IpAddr::V4(Ipv4Addr::new(10, 32, 0, 1));
        assert!(nl.add_address_no_prefix_route(&br, a, 12).await.unwrap());
        assert!(!nl.add_address_no_prefix_route(&br, a, 12).await.unwrap());
        assert!(!nl.add_address(&br, a, 12).await.unwrap(), "the same address, with or without the flag");
        assert!(nl.addresses(&br).await.unwrap().contains(&(a, 12)));
        assert!(ip("-o addr show dev wvn-br").contains("noprefixroute"), "{}", ip("-o addr show dev wvn-br"));
        assert_eq!(ip("route show table main"), main_before);
        assert!(ip("route show table local").contains("local 10.32.0.1 dev wvn-br"));

        // A route in a table of its own, and a rule sending what 10.32.0.1
        // sends there.
        let route = LinkRoute { dst: a, prefix_len: 12, table: 6783, src: None, kernel: false };
        assert_eq!(network_of(a, 12), IpAddr::V4(Ipv4Addr::new(10, 32, 0, 0)));
        assert!(nl.add_link_route(&br, &route).await.unwrap());
        assert!(!nl.add_link_route(&br, &route).await.unwrap());
        let out = ip("route show table 6783");
        assert!(out.contains("10.32.0.0/12 dev wvn-br") && out.contains("scope link"), "{out}");
        assert_eq!(ip("route show table main"), main_before);
        let rule = SourceRule::from_host(a, 6783, 6783);
        assert!(nl.add_source_rule(&rule).await.unwrap());
        assert!(!nl.add_source_rule(&rule).await.unwrap());
        let out = ip("rule show");
        assert!(out.contains("6783:\tfrom 10.32.0.1 lookup 6783"), "{out}");
        assert_eq!(nl.rules_to_table(false, 6783).await.unwrap(), vec![rule]);
        assert!(nl.rules_to_table(false, 6784).await.unwrap().is_empty());
        assert!(nl.rules_to_table(true, 6783).await.unwrap().is_empty());
        // The kernel routes what the address sends into the range through
        // the bridge, and nothing else.
        let out = ip("route get 10.40.0.9 from 10.32.0.1");
        assert!(out.contains("dev wvn-br"), "{out}");
        assert!(Command::new("ip").args(["route", "get", "10.40.0.9"]).output().unwrap().stdout.is_empty());

        // The prefix route in main, as `weavers expose` adds it later.
        let kernel = LinkRoute { dst: a, prefix_len: 12, table: Route::MAIN_TABLE, src: Some(a), kernel: true };
        assert!(nl.add_link_route(&br, &kernel).await.unwrap());
        assert!(!nl.add_link_route(&br, &kernel).await.unwrap());
        let out = ip("route show table main");
        assert!(out.contains("10.32.0.0/12 dev wvn-br proto kernel scope link src 10.32.0.1"), "{out}");

        assert!(nl.delete_source_rule(&rule).await.unwrap());
        assert!(!nl.delete_source_rule(&rule).await.unwrap());
        assert!(nl.rules_to_table(false, 6783).await.unwrap().is_empty());
        assert!(nl.delete_link(&br).await.unwrap());
        assert!(ip("route show table 6783").is_empty());
    });
}
