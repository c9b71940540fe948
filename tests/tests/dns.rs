//! Integration tests of the overlay DNS (issue 4): real `weaversd` daemons
//! in network namespaces, names added with `weavers dns add`, and real DNS
//! queries (built and parsed with hickory-proto) sent over UDP and TCP from
//! inside a host's namespace to its own DNS server on its overlay address.
//! Build first: `cargo build --workspace && CI=true cargo test -p weavers-tests --test dns`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::Value;
use weavers_tests::{lab_or_skip, wait_until, DaemonOpts, Lab};

const SEC: Duration = Duration::from_secs(1);
/// Loose bound for a mesh to form.
const MESH_DEADLINE: Duration = Duration::from_secs(30);
/// Loose bound for an entry to reach every host.
const SPREAD_DEADLINE: Duration = Duration::from_secs(10);
/// What the design promises for a removal to be gone everywhere.
const REMOVAL_DEADLINE: Duration = Duration::from_secs(2);

/// The overlay address of host `i` in these tests.
fn overlay(i: usize) -> Ipv4Addr {
    Lab::overlay(i)
}

fn start_mesh(lab: &mut Lab, args: &[&str]) {
    lab.start_exposed_mesh(args)
}

fn query_bytes(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("a valid name"), qtype));
    m.to_vec().expect("a query encodes")
}

/// Sends `payload` over UDP from inside host `i` to `server:53`; the reply's
/// bytes (None on timeout).
fn udp_exchange(lab: &Lab, i: usize, server: Ipv4Addr, payload: &[u8], wait: Duration) -> Result<Option<Vec<u8>>> {
    lab.host(i).run(|| -> Result<Option<Vec<u8>>> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect((server, 53))?;
        s.set_read_timeout(Some(wait))?;
        s.send(payload)?;
        let mut buf = vec![0u8; 4096];
        match s.recv(&mut buf) {
            Ok(n) => Ok(Some(buf[..n].to_vec())),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
}

/// A DNS query over UDP from inside host `i` to `server:53`.
fn query_udp(lab: &Lab, i: usize, server: Ipv4Addr, name: &str, qtype: RecordType) -> Result<Message> {
    let id = rand_id();
    let reply = udp_exchange(lab, i, server, &query_bytes(id, name, qtype), 3 * SEC)?
        .with_context(|| format!("no UDP answer from {server}:53 in h{i} for {name}"))?;
    let m = Message::from_vec(&reply).context("the reply does not parse")?;
    if m.metadata.id != id || m.metadata.message_type != MessageType::Response {
        bail!("not a reply to our query: {m:?}");
    }
    Ok(m)
}

/// Several DNS queries over one TCP connection (2-byte length prefix) from
/// inside host `i` to `server:53`.
fn query_tcp(lab: &Lab, i: usize, server: Ipv4Addr, names: &[&str]) -> Result<Vec<Message>> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    lab.host(i).run(move || -> Result<Vec<Message>> {
        let mut s = TcpStream::connect_timeout(&SocketAddr::from((server, 53)), 3 * SEC)?;
        s.set_read_timeout(Some(3 * SEC))?;
        let mut out = Vec::new();
        for (k, name) in names.iter().enumerate() {
            let q = query_bytes(k as u16 + 100, name, RecordType::A);
            let mut framed = (q.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&q);
            s.write_all(&framed)?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len)?;
            let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut reply)?;
            let m = Message::from_vec(&reply)?;
            if m.metadata.id != k as u16 + 100 {
                bail!("TCP reply with the wrong ID: {m:?}");
            }
            out.push(m);
        }
        Ok(out)
    })
}

fn rand_id() -> u16 {
    let b = weavers_tests::random_bytes(2);
    u16::from_be_bytes([b[0], b[1]])
}

/// The IPv4 addresses of a reply's answer section, in order.
fn a_addrs(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// The A answer host `i`'s own server gives for `name` (empty on failure).
fn resolve(lab: &Lab, i: usize, name: &str) -> Vec<Ipv4Addr> {
    query_udp(lab, i, overlay(i), name, RecordType::A).map(|m| a_addrs(&m)).unwrap_or_default()
}

fn sorted(mut v: Vec<Ipv4Addr>) -> Vec<Ipv4Addr> {
    v.sort();
    v
}

fn ips(list: &[&str]) -> Vec<Ipv4Addr> {
    sorted(list.iter().map(|s| s.parse().unwrap()).collect())
}

/// `weavers dns stats --json` on host `i`.
fn dns_stats(lab: &Lab, i: usize) -> Value {
    lab.try_cli_json(i, &["dns", "stats", "--json"]).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Every running host's `dns ls --json`, for failure messages.
fn describe_dns(lab: &Lab) -> String {
    (1..=lab.len())
        .map(|i| match lab.try_cli(i, &["dns", "ls", "--json"]) {
            Ok(o) => format!("h{i} dns: {}\n", o.trim()),
            Err(e) => format!("h{i} dns: {e:#}\n"),
        })
        .collect()
}

const AAPL: &str = "aapl.orders.aex.weavers.local.";

#[test]
fn names_resolve_on_every_host_rotate_and_removals_reach_every_host_in_time() {
    let Some(mut lab) = lab_or_skip(3) else { return };
    start_mesh(&mut lab, &[]);
    for i in 1..=3 {
        let st = dns_stats(&lab, i);
        assert_eq!(st["listening"], format!("{}:53", overlay(i)), "h{i}: {st}");
    }

    // Added on h1 (any case, no suffix): a real query to h3's server finds it.
    let out = lab.cli_ok(1, &["dns", "add", "AAPL.orders.aex", "239.1.0.1"]);
    assert_eq!(out, "added aapl.orders.aex.weavers.local 239.1.0.1\n");
    if !wait_until(SPREAD_DEADLINE, || resolve(&lab, 3, AAPL) == ips(&["239.1.0.1"])) {
        panic!("h3 does not resolve {AAPL} (it says {:?});\n{}", resolve(&lab, 3, AAPL), describe_dns(&lab));
    }
    let m = query_udp(&lab, 3, overlay(3), "AAPL.Orders.AEX.weavers.local.", RecordType::A).unwrap();
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers[0].name.to_ascii(), "AAPL.Orders.AEX.weavers.local.", "the case asked is kept");
    // Over TCP too, two queries on one connection.
    let replies = query_tcp(&lab, 3, overlay(3), &[AAPL, AAPL]).unwrap();
    assert!(replies.iter().all(|m| a_addrs(m) == ips(&["239.1.0.1"])), "{replies:?}");
    // And from another host's namespace across the overlay.
    let m = query_udp(&lab, 2, overlay(3), AAPL, RecordType::A).unwrap();
    assert_eq!(a_addrs(&m), ips(&["239.1.0.1"]));

    // More addresses, from two hosts: every host answers all of them, in
    // rotating order.
    lab.cli_ok(1, &["dns", "add", "aapl.orders.aex.weavers.local", "239.1.0.2"]);
    lab.cli_ok(2, &["dns", "add", "aapl.orders.aex", "239.1.0.3"]);
    let all = ips(&["239.1.0.1", "239.1.0.2", "239.1.0.3"]);
    for i in 1..=3 {
        if !wait_until(SPREAD_DEADLINE, || sorted(resolve(&lab, i, AAPL)) == all) {
            panic!("h{i} does not answer all three addresses;\n{}", describe_dns(&lab));
        }
    }
    let firsts: Vec<Ipv4Addr> = (0..3).map(|_| resolve(&lab, 3, AAPL)[0]).collect();
    assert_eq!(sorted(firsts.clone()), all, "three queries in a row start with each address once: {firsts:?}");
    let ls = lab.try_cli_json(3, &["dns", "ls", "--json"]).unwrap();
    let origins: Vec<&str> = ls.as_array().unwrap().iter().map(|r| r["origin"].as_str().unwrap()).collect();
    assert!(origins.contains(&"h1") && origins.contains(&"h2"), "{ls}");
    let lookup = lab.cli_ok(3, &["dns", "lookup", "aapl.orders.aex"]);
    assert_eq!(lookup.lines().count(), 3, "{lookup}");

    // h2 removes an address h1 added: gone from every host's answers within
    // 2 s, and h1 drops it from what it publishes.
    let removed = lab.try_cli_json(2, &["dns", "rm", "--json", "aapl.orders.aex", "239.1.0.1"]).unwrap();
    let start = Instant::now();
    assert_eq!(removed["removed"][0]["origin"], "h1", "{removed}");
    let rest = ips(&["239.1.0.2", "239.1.0.3"]);
    let gone = wait_until(REMOVAL_DEADLINE, || (1..=3).all(|i| sorted(resolve(&lab, i, AAPL)) == rest));
    let took = start.elapsed();
    assert!(
        gone,
        "the removal did not reach every host within {REMOVAL_DEADLINE:?};\n{}\nanswers: {:?}",
        describe_dns(&lab),
        (1..=3).map(|i| resolve(&lab, i, AAPL)).collect::<Vec<_>>()
    );
    eprintln!("removal gone everywhere after {took:?}");
    let h1_dns = std::fs::read_to_string(lab.state_dir(1).join("dns.json")).unwrap();
    assert!(
        wait_until(5 * SEC, || {
            let f = std::fs::read_to_string(lab.state_dir(1).join("dns.json")).unwrap_or_default();
            !f.contains("239.1.0.1") && f.contains("239.1.0.2")
        }),
        "h1 still keeps the removed entry: {h1_dns}"
    );
    // Removing it again removes nothing, and is no error.
    assert_eq!(lab.cli_ok(3, &["dns", "rm", "aapl.orders.aex", "239.1.0.1"]), "nothing removed (no such entry)\n");

    // Unknown names: outside the domain REFUSED (no upstream), inside NXDOMAIN.
    let m = query_udp(&lab, 3, overlay(3), "example.com.", RecordType::A).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    let m = query_udp(&lab, 3, overlay(3), "nope.weavers.local.", RecordType::A).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = query_udp(&lab, 3, overlay(3), AAPL, RecordType::AAAA).unwrap();
    assert_eq!((m.metadata.response_code, m.answers.len()), (ResponseCode::NoError, 0));

    // Malformed queries are counted; the server keeps answering.
    let before = dns_stats(&lab, 3);
    let bomb = [0xab, 0xcd, 0x01, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0];
    let reply = udp_exchange(&lab, 3, overlay(3), &bomb, 3 * SEC).unwrap().expect("FORMERR for a parseable header");
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!((m.metadata.id, m.metadata.response_code), (0xabcd, ResponseCode::FormErr));
    assert_eq!(udp_exchange(&lab, 3, overlay(3), b"\x01\x02junk", SEC).unwrap(), None, "too short: dropped");
    let mut cut = query_bytes(7, AAPL, RecordType::A);
    cut.truncate(cut.len() - 5);
    udp_exchange(&lab, 3, overlay(3), &cut, 3 * SEC).unwrap().expect("FORMERR for a cut query");
    let after = dns_stats(&lab, 3);
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {v}"));
    assert_eq!(n(&after, "formerr") - n(&before, "formerr"), 2, "{after}");
    assert_eq!(n(&after, "dropped") - n(&before, "dropped"), 1, "{after}");
    assert_eq!(sorted(resolve(&lab, 3, AAPL)), rest, "still answering");
}

#[test]
fn names_survive_a_restart_and_other_names_go_upstream() {
    let Some(mut lab) = lab_or_skip(2) else { return };
    // h1's upstream is a small server of the test's own, in h1's namespace;
    // h2 has none.
    lab.start_daemon(1, DaemonOpts::new().arg("--dns-upstream").arg("127.0.0.1:5353"));
    lab.start_daemon(2, DaemonOpts::new().peer(1));
    lab.wait_mesh(&[1, 2], MESH_DEADLINE);
    for i in 1..=2 {
        lab.expose(i, &format!("{}/16", overlay(i)));
    }
    lab.cli_ok(1, &["dns", "add", "web", "10.40.1.1"]);
    lab.cli_ok(1, &["dns", "add", "--owner", "ctr-7", "web", "10.40.1.2"]);
    lab.cli_ok(1, &["dns", "add", "--owner", "ctr-7", "db", "10.40.1.3"]);
    let web = "web.weavers.local.";
    assert!(wait_until(SPREAD_DEADLINE, || sorted(resolve(&lab, 2, web)) == ips(&["10.40.1.1", "10.40.1.2"])
        && resolve(&lab, 2, "db.weavers.local.") == ips(&["10.40.1.3"])));

    // Removing by owner (from the other host) takes exactly what it registered.
    let removed = lab.try_cli_json(2, &["dns", "rm", "--json", "--owner", "ctr-7"]).unwrap();
    assert_eq!(removed["removed"].as_array().unwrap().len(), 2, "{removed}");
    assert!(
        wait_until(REMOVAL_DEADLINE * 2, || (1..=2)
            .all(|i| resolve(&lab, i, web) == ips(&["10.40.1.1"]) && resolve(&lab, i, "db.weavers.local.").is_empty())),
        "{}",
        describe_dns(&lab)
    );
    lab.cli_ok(1, &["dns", "add", "web", "10.40.1.4"]);
    assert!(wait_until(5 * SEC, || std::fs::read_to_string(lab.state_dir(1).join("dns.json"))
        .is_ok_and(|f| f.contains("10.40.1.4") && !f.contains("10.40.1.2"))));

    // h1 restarts: its entries, and its DNS server on the restored address, come back.
    let stopped = lab.stop_daemon(1, 10 * SEC);
    assert!(stopped.status.success(), "{stopped:?}");
    lab.restart(1);
    lab.wait_mesh(&[1, 2], MESH_DEADLINE);
    let want = ips(&["10.40.1.1", "10.40.1.4"]);
    for i in 1..=2 {
        if !wait_until(SPREAD_DEADLINE, || sorted(resolve(&lab, i, web)) == want) {
            panic!("h{i} does not answer {want:?} after h1's restart;\n{}", describe_dns(&lab));
        }
    }
    let ls = lab.try_cli_json(1, &["dns", "ls", "--json"]).unwrap();
    assert_eq!(ls[0]["origin"], "h1", "{ls}");

    // A name outside weavers.local goes to the upstream server; a silent
    // upstream gives SERVFAIL.
    let upstream = weavers_tests::netns::spawn_in(lab.ns(1), || -> Result<()> {
        let s = UdpSocket::bind("127.0.0.1:5353")?;
        s.set_read_timeout(Some(20 * SEC))?;
        let mut buf = vec![0u8; 2048];
        let (n, from) = s.recv_from(&mut buf)?;
        let q = Message::from_vec(&buf[..n])?;
        let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
        r.metadata.recursion_available = true;
        r.queries = q.queries.clone();
        let name = q.queries[0].name.clone();
        r.add_answer(hickory_proto::rr::Record::from_rdata(name, 60, RData::A(Ipv4Addr::new(192, 0, 2, 7).into())));
        s.send_to(&r.to_vec()?, from)?;
        Ok(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let m = query_udp(&lab, 1, overlay(1), "www.example.com.", RecordType::A).unwrap();
    upstream.join().unwrap().unwrap();
    assert_eq!(a_addrs(&m), vec![Ipv4Addr::new(192, 0, 2, 7)], "{m:?}");
    let m = query_udp(&lab, 1, overlay(1), "www.example.org.", RecordType::A).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    let st = dns_stats(&lab, 1);
    assert_eq!((st["forwarded"].as_u64(), st["forward_failed"].as_u64()), (Some(2), Some(1)), "{st}");
    // h2 has no upstream: REFUSED.
    let m = query_udp(&lab, 2, overlay(2), "www.example.com.", RecordType::A).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
}
