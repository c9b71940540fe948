//! The CNI plugin with real daemons (issue 4): containers are namespaces the
//! test makes and hands to `weavers-cni` as a runtime does
//! (`CNI_NETNS=/var/run/netns/NAME`, the plugin run in the lab host's
//! namespace, the configuration's `"socket"` naming that host's daemon).
//! Build first: `cargo build --workspace && CI=true cargo test -p weavers-tests --test cni`.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::{json, Value};
use weavers_tests::cni::{
    cni, cni_add, cni_config, describe, error_json, expect_quiet_success, new_container, result_addr, run_cni,
    CniContainer,
};
use weavers_tests::mcast::{self, GroupReceiver, Join, Numbered, Out};
use weavers_tests::{lab_or_skip, netns, wait_until, Capture, DaemonOpts, Lab};

const SEC: Duration = Duration::from_secs(1);
const MESH_DEADLINE: Duration = Duration::from_secs(30);

/// Starts h1 alone and every other host with `--peer h1`.
fn start(lab: &mut Lab) {
    lab.start_daemon(1, DaemonOpts::new());
    for i in 2..=lab.len() {
        lab.start_daemon(i, DaemonOpts::new().peer(1));
    }
}

fn in_range(a: Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] == 10 && (32..48).contains(&o[1])
}

/// The DNS label the plugin gives a container without a pod name.
fn label(c: &CniContainer) -> String {
    c.id[..12].to_owned()
}

/// `weavers dns lookup NAME --json` on host `i`: the addresses, or none.
fn lookup(lab: &Lab, i: usize, name: &str) -> Vec<String> {
    match lab.try_cli_json(i, &["dns", "lookup", name, "--json"]) {
        Ok(v) => v["addrs"].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()),
        Err(_) => None,
    }
    .unwrap_or_default()
}

/// Owners of host `i`'s allocations.
fn allocation_owners(lab: &Lab, i: usize) -> Vec<String> {
    let v = lab.try_cli_json(i, &["ipam", "ls", "--json"]).unwrap_or_else(|e| panic!("{e:#}"));
    v["allocations"].as_array().unwrap().iter().map(|a| a["owner"].as_str().unwrap().to_owned()).collect()
}

fn host_links(lab: &Lab, i: usize) -> Vec<String> {
    lab.host(i)
        .links()
        .iter()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect()
}

/// An A query for `name` from inside namespace `ns` to `server:53`.
fn resolve_from(ns: &str, server: Ipv4Addr, name: &str) -> Result<Vec<Ipv4Addr>> {
    let name = name.to_owned();
    netns::run_in(ns, move || -> Result<Vec<Ipv4Addr>> {
        let id = u16::from_be_bytes([weavers_tests::random_bytes(1)[0], 7]);
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(&name)?, RecordType::A));
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect((server, 53))?;
        s.set_read_timeout(Some(2 * SEC))?;
        s.send(&m.to_vec()?)?;
        let mut buf = vec![0u8; 4096];
        let n = s.recv(&mut buf).with_context(|| format!("no answer from {server}:53"))?;
        let reply = Message::from_vec(&buf[..n])?;
        if reply.metadata.id != id {
            bail!("a reply to another query");
        }
        Ok(reply
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect())
    })
}

#[test]
fn fifteen_containers_on_three_hosts_get_distinct_addresses_and_reach_each_other() {
    let Some(mut lab) = lab_or_skip(3) else { return };
    start(&mut lab);
    lab.wait_mesh(&[1, 2, 3], MESH_DEADLINE);
    // Each host's overlay address: the containers' gateway and DNS server.
    let gateways: Vec<Ipv4Addr> = (1..=3)
        .map(|i| {
            let out = lab.cli_ok(i, &["expose"]);
            out.trim().split('/').next().unwrap().parse().unwrap_or_else(|e| panic!("expose printed {out:?}: {e}"))
        })
        .collect();

    let mut containers = Vec::new();
    let mut addrs = Vec::new();
    for h in 1..=3 {
        for j in 0..5 {
            let c = new_container(&lab, h, &format!("c{j}")).unwrap();
            let r = cni_add(&lab, &c, json!({"defaultRoute": true})).unwrap_or_else(|e| panic!("{e:#}"));
            let a = result_addr(&r).unwrap();
            assert!(in_range(a), "{a} outside 10.32.0.0/12: {r}");
            assert_eq!(r["ips"][0]["gateway"], gateways[h - 1].to_string(), "{r}");
            assert_eq!(r["dns"]["nameservers"], json!([gateways[h - 1].to_string()]), "{r}");
            assert_eq!(r["interfaces"][1]["sandbox"], c.netns_path());
            assert!(c.addrs().contains(&format!("{a}/12")), "{}", c.addrs());
            containers.push(c);
            addrs.push(a);
        }
    }
    let distinct: HashSet<_> = addrs.iter().collect();
    assert_eq!(distinct.len(), 15, "15 containers, 15 addresses: {addrs:?}");
    assert!(addrs.iter().all(|a| !gateways.contains(a)), "a container got a host's address");

    // Every container reaches every other (one source per thread).
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = containers
            .iter()
            .map(|c| {
                let (containers, addrs) = (&containers, &addrs);
                s.spawn(move || {
                    let mut bad = Vec::new();
                    for (d, a) in containers.iter().zip(addrs) {
                        if d.ns != c.ns && !wait_until(10 * SEC, || c.ping(*a)) {
                            bad.push(format!("{} -> {} ({a})", c.ns, d.ns));
                        }
                    }
                    bad
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "unreachable: {failures:#?}");
    // And its own host, through the default route's gateway.
    for c in &containers {
        assert!(c.ping(gateways[c.host - 1]), "{} cannot reach its gateway", c.ns);
    }

    // Names: a container on h1, asked for from a container on h3 through
    // h3's DNS server (its gateway).
    let (on_h1, on_h3) = (&containers[0], &containers[10]);
    let name = format!("{}.weavers.local", label(on_h1));
    assert!(
        wait_until(10 * SEC, || resolve_from(&on_h3.ns, gateways[2], &name).is_ok_and(|a| a == vec![addrs[0]])),
        "{name} does not resolve to {} from {}: {:?}",
        addrs[0],
        on_h3.ns,
        resolve_from(&on_h3.ns, gateways[2], &name)
    );

    // CHECK passes for every one, with the result as prevResult.
    for c in &containers {
        let out = cni(&lab, c, "CHECK", &cni_config(&lab, c.host, json!({}))).unwrap();
        expect_quiet_success(&format!("CHECK {}", c.ns), &out).unwrap();
    }
}

#[test]
fn del_check_and_gc_leave_nothing_behind() {
    let Some(mut lab) = lab_or_skip(2) else { return };
    start(&mut lab);
    lab.wait_mesh(&[1, 2], MESH_DEADLINE);
    let cs: Vec<CniContainer> = (0..4).map(|j| new_container(&lab, 1, &format!("d{j}")).unwrap()).collect();
    let results: Vec<Value> =
        cs.iter().map(|c| cni_add(&lab, c, json!({})).unwrap_or_else(|e| panic!("{e:#}"))).collect();
    let other = new_container(&lab, 2, "o").unwrap();
    cni_add(&lab, &other, json!({})).unwrap();
    let host_if = |r: &Value| r["interfaces"][0]["name"].as_str().unwrap().to_owned();
    let conf1 = cni_config(&lab, 1, json!({}));
    for c in &cs {
        assert!(wait_until(10 * SEC, || !lookup(&lab, 2, &label(c)).is_empty()), "{} never reached h2", label(c));
    }

    // DEL, twice: the address, the name and the links are gone.
    let d0 = &cs[0];
    for round in 1..=2 {
        let out = cni(&lab, d0, "DEL", &conf1).unwrap();
        expect_quiet_success(&format!("DEL #{round}"), &out).unwrap();
    }
    assert!(!allocation_owners(&lab, 1).contains(&d0.owner()));
    assert!(!host_links(&lab, 1).contains(&host_if(&results[0])));
    assert!(netns::ip(&["-n", &d0.ns, "link", "show", "eth0"]).is_err(), "eth0 still in {}", d0.ns);
    assert!(lookup(&lab, 1, &label(d0)).is_empty());
    assert!(wait_until(5 * SEC, || lookup(&lab, 2, &label(d0)).is_empty()), "h2 still resolves {}", label(d0));
    // DEL of a container whose namespace is gone succeeds too.
    netns::del(&d0.ns).unwrap();
    expect_quiet_success("DEL without netns", &cni(&lab, d0, "DEL", &conf1).unwrap()).unwrap();

    // CHECK: passes, then fails once the interface is deleted.
    let d1 = &cs[1];
    let with_prev = cni_config(&lab, 1, json!({"prevResult": results[1]}));
    expect_quiet_success("CHECK", &cni(&lab, d1, "CHECK", &with_prev).unwrap()).unwrap();
    netns::ip(&["-n", &d1.ns, "link", "del", "eth0"]).unwrap();
    let out = cni(&lab, d1, "CHECK", &with_prev).unwrap();
    let e = error_json(&out).unwrap();
    assert!(e["details"].as_str().unwrap_or("").contains("does not exist"), "{}", describe(&out));

    // GC keeping only d2: d1 and d3 go (address, name, links), d2 and
    // h2's container stay.
    let gc = cni_config(&lab, 1, json!({"cni.dev/valid-attachments": [{"containerID": cs[2].id, "ifname": "eth0"}]}));
    let out = run_cni(&lab, 1, &[("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")], &gc).unwrap();
    expect_quiet_success("GC", &out).unwrap();
    let owners = allocation_owners(&lab, 1);
    assert!(owners.contains(&cs[2].owner()), "{owners:?}");
    assert!(!owners.contains(&cs[1].owner()) && !owners.contains(&cs[3].owner()), "{owners:?}");
    let links = host_links(&lab, 1);
    assert!(links.contains(&host_if(&results[2])) && !links.contains(&host_if(&results[3])), "{links:?}");
    for gone in [&cs[1], &cs[3]] {
        assert!(wait_until(5 * SEC, || lookup(&lab, 2, &label(gone)).is_empty()), "{} still resolves", label(gone));
    }
    assert!(!lookup(&lab, 1, &label(&cs[2])).is_empty());
    expect_quiet_success("CHECK d2 after GC", &cni(&lab, &cs[2], "CHECK", &conf1).unwrap()).unwrap();
    let conf2 = cni_config(&lab, 2, json!({}));
    expect_quiet_success("CHECK h2's after GC", &cni(&lab, &other, "CHECK", &conf2).unwrap()).unwrap();
    assert!(!lookup(&lab, 1, &label(&other)).is_empty(), "GC on h1 removed h2's name");

    // STATUS while the daemon runs, and without it; a DEL without the
    // daemon removes the links, says "try again later", and finishes once
    // the daemon is back.
    let status = |lab: &Lab| run_cni(lab, 1, &[("CNI_COMMAND", "STATUS"), ("CNI_PATH", "/opt/cni/bin")], &conf1);
    expect_quiet_success("STATUS", &status(&lab).unwrap()).unwrap();
    lab.stop_daemon(1, 10 * SEC);
    let e = error_json(&status(&lab).unwrap()).unwrap();
    assert_eq!(e["code"], 50, "{e}");
    let out = cni(&lab, &cs[2], "DEL", &cni_config(&lab, 1, json!({"bridge": "weavers"}))).unwrap();
    assert_eq!(error_json(&out).unwrap()["code"], 11, "{}", describe(&out));
    lab.restart(1);
    lab.wait_mesh(&[1, 2], MESH_DEADLINE);
    assert!(allocation_owners(&lab, 1).contains(&cs[2].owner()), "the allocation survives the restart");
    expect_quiet_success("DEL after restart", &cni(&lab, &cs[2], "DEL", &conf1).unwrap()).unwrap();
    assert!(!allocation_owners(&lab, 1).contains(&cs[2].owner()));
}

#[test]
fn twenty_concurrent_adds_on_one_host_of_a_fresh_mesh_get_distinct_addresses() {
    let Some(mut lab) = lab_or_skip(2) else { return };
    // No waiting for the mesh: the ADDs wait for the range themselves.
    start(&mut lab);
    let cs: Vec<CniContainer> = (0..20).map(|j| new_container(&lab, 1, &format!("x{j}")).unwrap()).collect();
    let on_h2: Vec<CniContainer> = (0..3).map(|j| new_container(&lab, 2, &format!("y{j}")).unwrap()).collect();
    let results: Vec<Result<Value>> = std::thread::scope(|s| {
        let handles: Vec<_> = cs.iter().chain(&on_h2).map(|c| s.spawn(|| cni_add(&lab, c, json!({})))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let addrs: Vec<Ipv4Addr> = results
        .iter()
        .map(|r| match r {
            Ok(v) => result_addr(v).unwrap(),
            Err(e) => panic!("{e:#}"),
        })
        .collect();
    let distinct: HashSet<_> = addrs.iter().collect();
    assert_eq!(distinct.len(), addrs.len(), "duplicates among {addrs:?}");
    assert!(addrs.iter().all(|a| in_range(*a)), "{addrs:?}");
    // Twenty containers' addresses, and the host's own: their gateway,
    // taken before the first of them was answered.
    let owners = allocation_owners(&lab, 1);
    assert_eq!(owners.iter().filter(|o| *o != "host").count(), 20, "{owners:?}");
    assert!(owners.iter().any(|o| o == "host"), "no address for the containers' gateway: {owners:?}");
    let gateways: HashSet<Ipv4Addr> = results[..20].iter().map(|r| gateway_of(r.as_ref().unwrap())).collect();
    assert_eq!(gateways.len(), 1, "h1's containers have different gateways: {gateways:?}");
    assert!(gateways.iter().all(|g| !addrs.contains(g)), "a container got the gateway's address");
    lab.wait_mesh(&[1, 2], MESH_DEADLINE);
    // The first of h1 reaches the last of h1 and one of h2.
    assert!(wait_until(10 * SEC, || cs[0].ping(addrs[19])), "x0 cannot reach x19");
    assert!(wait_until(10 * SEC, || cs[0].ping(addrs[20])), "x0 cannot reach y0 on h2");
}

/// Names of the peers host `i` lists as subscribed to `group`.
fn subscribers(lab: &Lab, i: usize, group: Ipv4Addr) -> Vec<String> {
    let Ok(Value::Array(rows)) = lab.try_cli_json(i, &["groups", "--json"]) else { return vec![] };
    rows.iter()
        .filter(|r| r["group"] == group.to_string().as_str())
        .flat_map(|r| r["subscribed_peers"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn multicast_between_containers_reaches_only_the_host_that_joined() {
    let Some(mut lab) = lab_or_skip(3) else { return };
    start(&mut lab);
    lab.wait_mesh(&[1, 2, 3], MESH_DEADLINE);
    let cs: Vec<CniContainer> = (1..=3).map(|h| new_container(&lab, h, "m").unwrap()).collect();
    let addrs: Vec<Ipv4Addr> = cs
        .iter()
        .map(|c| result_addr(&cni_add(&lab, c, json!({})).unwrap_or_else(|e| panic!("{e:#}"))).unwrap())
        .collect();

    // h2's container joins; h3's does not.
    let (group, port) = (Ipv4Addr::new(239, 9, 9, 9), 5009);
    let rx = GroupReceiver::start(&cs[1].ns, port, Join::V4 { group, iface: addrs[1] }).unwrap();
    assert!(
        wait_until(10 * SEC, || subscribers(&lab, 1, group) == vec!["h2".to_string()]),
        "h1 does not list exactly h2 as subscribed to {group}: {:?}",
        subscribers(&lab, 1, group)
    );
    const N: u64 = 500;
    let stream = Numbered::new(200).paced(5, Duration::from_millis(2));
    let cap2 = Capture::start(lab.ns(2)).expect("capture in h2");
    let cap3 = Capture::start(lab.ns(3)).expect("capture in h3");
    let dst = SocketAddr::V4(SocketAddrV4::new(group, port));
    stream.send(&cs[0].ns, Out::V4(addrs[0]), dst, 0..N).unwrap_or_else(|e| panic!("send from h1's container: {e:#}"));
    rx.wait_for(N as usize, 20 * SEC);
    rx.wait_quiet(SEC, 5 * SEC);
    let (frames2, frames3) = (cap2.finish(), cap3.finish());
    let got = rx.finish();
    stream.check_exactly_once(&got, 0..N).unwrap_or_else(|e| panic!("h2's container: {e}"));
    // Nothing of the group anywhere in h3's namespace (TAP, bridge, the
    // container's veth): its daemon was never sent the stream.
    let in_h3 = mcast::frames_to(&frames3, IpAddr::V4(group)).len();
    assert_eq!(in_h3, 0, "{in_h3} frames to {group} reached h3, where nobody joined");
    let in_h2 = mcast::frames_to(&frames2, IpAddr::V4(group)).len();
    assert!(in_h2 >= N as usize, "the capture in h2 saw {in_h2} frames of the stream: the check on h3 proves nothing");
}

/// The ifindex of link `name` in namespace `ns`, if it exists.
fn ifindex(ns: &str, name: &str) -> Option<u32> {
    let out = netns::ip(&["-n", ns, "-o", "link", "show", "dev", name]).ok()?;
    out.split(':').next()?.trim().parse().ok()
}

/// `ip route show table main` in host `i`'s namespace.
fn main_routes(lab: &Lab, i: usize) -> String {
    netns::ip(&["-n", lab.ns(i), "route", "show", "table", "main"]).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The rules of host `i`'s namespace (`ip rule show`).
fn rules(lab: &Lab, i: usize) -> String {
    netns::ip(&["-n", lab.ns(i), "rule", "show"]).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The gateway and name server of an ADD result, checked to agree.
fn gateway_of(r: &Value) -> Ipv4Addr {
    let gw = r["ips"][0]["gateway"].as_str().unwrap_or_else(|| panic!("no gateway in {r}"));
    assert_eq!(r["dns"]["nameservers"], json!([gw]), "the name server is the gateway: {r}");
    gw.parse().unwrap_or_else(|e| panic!("gateway {gw:?}: {e}"))
}

#[test]
fn containers_on_a_host_never_exposed_get_a_gateway_and_dns_and_its_routes_stay() {
    let Some(mut lab) = lab_or_skip(2) else { return };
    // Strict reverse-path filtering on h1: the containers' queries must
    // still be accepted (the gateway address has a route back).
    netns::exec_in(lab.ns(1), "sysctl", &["-qw", "net.ipv4.conf.all.rp_filter=1"]).unwrap();
    start(&mut lab);
    lab.wait_mesh(&[1, 2], MESH_DEADLINE);
    let routes_before = main_routes(&lab, 1);

    let c1 = new_container(&lab, 1, "g1").unwrap();
    let c2 = new_container(&lab, 2, "g2").unwrap();
    let r1 = cni_add(&lab, &c1, json!({})).unwrap_or_else(|e| panic!("{e:#}"));
    let r2 = cni_add(&lab, &c2, json!({})).unwrap_or_else(|e| panic!("{e:#}"));
    let (a1, a2) = (result_addr(&r1).unwrap(), result_addr(&r2).unwrap());
    let (g1, g2) = (gateway_of(&r1), gateway_of(&r2));
    assert!(in_range(g1) && in_range(g2) && g1 != g2 && ![a1, a2].contains(&g1), "{r1} {r2}");
    // A second container on h1 gets the same gateway.
    let c3 = new_container(&lab, 1, "g3").unwrap();
    assert_eq!(gateway_of(&cni_add(&lab, &c3, json!({})).unwrap()), g1);

    // The address is on the bridge without its prefix route; h1's routing
    // table is as it was, and h1 is still not exposed.
    let on_bridge = lab.host(1).addrs("weavers");
    assert!(on_bridge.contains(&format!("{g1}/12")) && on_bridge.contains("noprefixroute"), "{on_bridge}");
    assert_eq!(main_routes(&lab, 1), routes_before, "h1's routing table changed");
    let route_get = netns::ip(&["-n", lab.ns(1), "route", "get", &a2.to_string()]).unwrap_or_default();
    assert!(!route_get.contains("weavers"), "h1 routes {a2} into the overlay: {route_get}");
    assert!(lab.status_json(1)["overlay_addr"].is_null(), "{}", lab.status_json(1));

    // Names resolve through the gateway, the gateway answers pings, and
    // the containers reach each other.
    let name2 = format!("{}.weavers.local", label(&c2));
    assert!(
        wait_until(10 * SEC, || resolve_from(&c1.ns, g1, &name2).is_ok_and(|a| a == vec![a2])),
        "{name2} does not resolve to {a2} from {} through {g1}: {:?}",
        c1.ns,
        resolve_from(&c1.ns, g1, &name2)
    );
    let name1 = format!("{}.weavers.local", label(&c1));
    assert!(wait_until(10 * SEC, || resolve_from(&c2.ns, g2, &name1).is_ok_and(|a| a == vec![a1])));
    assert!(wait_until(5 * SEC, || c1.ping(g1)), "{} cannot reach its gateway {g1}", c1.ns);
    assert!(wait_until(10 * SEC, || c1.ping(a2)), "{} cannot reach {a2}", c1.ns);

    // `weavers expose` without an address keeps the gateway's and only
    // now routes the host into the overlay.
    let out = lab.cli_ok(1, &["expose"]);
    assert_eq!(out.trim(), format!("{g1}/12"), "expose printed {out:?}");
    assert!(main_routes(&lab, 1).contains(&format!("10.32.0.0/12 dev weavers proto kernel scope link src {g1}")));
    assert!(lab.wait_ping(1, a1, 10 * SEC), "the exposed host cannot reach its container {a1}");
    assert!(resolve_from(&c1.ns, g1, &name2).is_ok_and(|a| a == vec![a2]), "DNS after expose");
}

#[test]
fn containers_keep_working_across_a_daemon_restart_and_an_empty_bridge_goes_on_sigterm() {
    let Some(mut lab) = lab_or_skip(2) else { return };
    start(&mut lab);
    lab.wait_mesh(&[1, 2], MESH_DEADLINE);
    let c1 = new_container(&lab, 1, "r1").unwrap();
    let c2 = new_container(&lab, 2, "r2").unwrap();
    let r1 = cni_add(&lab, &c1, json!({})).unwrap_or_else(|e| panic!("{e:#}"));
    let r2 = cni_add(&lab, &c2, json!({})).unwrap_or_else(|e| panic!("{e:#}"));
    let (a1, a2, g1) = (result_addr(&r1).unwrap(), result_addr(&r2).unwrap(), gateway_of(&r1));
    let name2 = format!("{}.weavers.local", label(&c2));
    assert!(wait_until(10 * SEC, || c1.ping(a2)), "{} cannot reach {a2} before the restart", c1.ns);
    assert!(wait_until(10 * SEC, || resolve_from(&c1.ns, g1, &name2).is_ok_and(|a| a == vec![a2])));
    let veth = r1["interfaces"][0]["name"].as_str().unwrap().to_owned();
    let (bridge_idx, veth_idx) = (ifindex(lab.ns(1), "weavers"), ifindex(lab.ns(1), &veth));
    assert!(bridge_idx.is_some() && veth_idx.is_some());

    // SIGTERM: the daemon exits cleanly and leaves the bridge, with the
    // container's veth and the gateway address, in place; the TAP goes.
    let stopped = lab.stop_daemon(1, 10 * SEC);
    assert!(!stopped.killed && stopped.status.success(), "SIGTERM: {stopped:?}\n{}", lab.log_tail(1, 40));
    assert_eq!(lab.host(1).bridges(), vec!["weavers".to_string()], "{:?}", lab.host(1).links());
    assert!(lab.host(1).taps().is_empty(), "{:?}", lab.host(1).links());
    assert!(lab.host(1).addrs("weavers").contains(&format!("{g1}/12")));

    // A new start on the same state dir: within 10 s the container reaches
    // the other host's again and resolves names through the same gateway.
    let restarted = std::time::Instant::now();
    lab.restart(1);
    assert!(wait_until(10 * SEC, || c1.ping(a2)), "{} cannot reach {a2} 10 s after the restart", c1.ns);
    eprintln!("{} reached {a2} again {:?} after the new start began", c1.ns, restarted.elapsed());
    assert!(wait_until(5 * SEC, || c2.ping(a1)), "{} cannot reach {a1} after h1's restart", c2.ns);
    assert!(
        wait_until(5 * SEC, || resolve_from(&c1.ns, g1, &name2).is_ok_and(|a| a == vec![a2])),
        "{name2} after the restart: {:?}",
        resolve_from(&c1.ns, g1, &name2)
    );
    let name1 = format!("{}.weavers.local", label(&c1));
    assert!(resolve_from(&c1.ns, g1, &name1).is_ok_and(|a| a == vec![a1]), "the container's own name");
    // The bridge and the veth were never removed (same links), the TAP is back.
    assert_eq!((ifindex(lab.ns(1), "weavers"), ifindex(lab.ns(1), &veth)), (bridge_idx, veth_idx));
    assert_eq!(lab.host(1).taps(), vec!["weavers-tap".to_string()]);
    // A container added after the restart gets the same gateway.
    let c3 = new_container(&lab, 1, "r3").unwrap();
    assert_eq!(gateway_of(&cni_add(&lab, &c3, json!({})).unwrap()), g1);
    assert!(wait_until(10 * SEC, || c3.ping(a2)));

    // A bridge left with containers but without the gateway (kill -9 of a
    // version before this one): the next start puts the same one back.
    lab.kill9(1);
    netns::ip(&["-n", lab.ns(1), "addr", "flush", "dev", "weavers"]).unwrap();
    netns::ip(&["-n", lab.ns(1), "rule", "del", "pref", "6783"]).unwrap();
    lab.restart(1);
    assert!(lab.host(1).addrs("weavers").contains(&format!("{g1}/12")), "{}", lab.host(1).addrs("weavers"));
    assert!(
        wait_until(10 * SEC, || resolve_from(&c1.ns, g1, &name2).is_ok_and(|a| a == vec![a2])),
        "{name2} after a start on a bridge without the gateway: {:?}",
        resolve_from(&c1.ns, g1, &name2)
    );
    assert!(wait_until(10 * SEC, || c1.ping(a2)));

    // Without containers, SIGTERM removes everything it made: the bridge,
    // the TAP, the rule and the gateway's routing table.
    let conf1 = cni_config(&lab, 1, json!({}));
    for c in [&c1, &c3] {
        expect_quiet_success("DEL", &cni(&lab, c, "DEL", &conf1).unwrap()).unwrap();
    }
    assert!(rules(&lab, 1).contains("lookup 6783"), "{}", rules(&lab, 1));
    let stopped = lab.stop_daemon(1, 10 * SEC);
    assert!(!stopped.killed && stopped.status.success(), "SIGTERM: {stopped:?}\n{}", lab.log_tail(1, 40));
    let h = lab.host(1);
    assert!(h.bridges().is_empty() && h.taps().is_empty(), "left after SIGTERM: {:?}", h.links());
    assert!(!rules(&lab, 1).contains("6783"), "rule left after SIGTERM: {}", rules(&lab, 1));
    let table = netns::ip(&["-n", lab.ns(1), "route", "show", "table", "6783"]).unwrap_or_default();
    assert!(table.is_empty(), "routes left in table 6783: {table}");
}
