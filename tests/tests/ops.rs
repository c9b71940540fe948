//! What operators look at, checked on real daemons in network namespaces:
//! the JSON log of a running daemon and the log level it obeys, and the
//! metrics a running daemon serves (and that the Grafana dashboard in
//! dist/grafana queries).
//! Build first: `cargo build --workspace && CI=true cargo test -p weavers-tests --test ops`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use serde_json::Value;
use weavers_tests::{lab_or_skip, wait_until, DaemonOpts, Lab};

const SEC: Duration = Duration::from_secs(1);

/// Host `i`'s daemon log without the lab's own `===== lab:` lines, each line
/// parsed as a JSON object (panics on one that is not).
fn json_log(lab: &Lab, i: usize) -> Vec<Value> {
    let log = lab.log(i);
    log.lines()
        .filter(|l| !l.starts_with("===== lab:"))
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("h{i} logged a line that is not JSON ({e}): {l:?}"));
            assert!(v.is_object() && v["level"].is_string() && v["timestamp"].is_string(), "h{i}: {l}");
            v
        })
        .collect()
}

fn messages(lines: &[Value]) -> Vec<&str> {
    lines.iter().filter_map(|l| l["fields"]["message"].as_str()).collect()
}

#[test]
fn a_running_daemon_logs_one_json_object_a_line_at_the_level_asked() {
    let Some(mut lab) = lab_or_skip(2) else { return };
    // The lab sets RUST_LOG=debug: h1's --log-level wins over it, h2 has
    // none, so RUST_LOG holds there.
    lab.start_daemon(1, DaemonOpts::new().arg("--log-format").arg("json").arg("--log-level").arg("info"));
    lab.start_daemon(2, DaemonOpts::new().peer(1).env("WEAVERS_LOG_FORMAT", "json"));
    assert!(lab.wait_connected(1, &["h2"], 20 * SEC), "no session: {}", lab.describe_peers());
    for i in [2, 1] {
        let stopped = lab.stop_daemon(i, 10 * SEC);
        assert!(stopped.status.success() && !stopped.killed, "h{i}: {stopped:?}");
    }

    let h1 = json_log(&lab, 1);
    let msgs = messages(&h1);
    assert!(msgs.contains(&"weaversd ready"), "{msgs:?}");
    assert!(msgs.contains(&"stopped cleanly"), "{msgs:?}");
    let ready = h1.iter().find(|l| l["fields"]["message"] == "weaversd ready").unwrap();
    assert_eq!(ready["fields"]["name"], "h1", "structured fields stay fields: {ready}");
    let levels: Vec<&str> = h1.iter().map(|l| l["level"].as_str().unwrap()).collect();
    assert!(!levels.iter().any(|l| *l == "DEBUG" || *l == "TRACE"), "--log-level info let through: {levels:?}");

    let h2 = json_log(&lab, 2);
    assert!(h2.iter().any(|l| l["level"] == "DEBUG"), "RUST_LOG=debug without --log-level: no DEBUG line in h2's log");
}

const METRICS: &str = "127.0.0.1:9783";

/// GET /metrics from inside host `i` (the daemon listens on its loopback).
fn scrape(lab: &Lab, i: usize) -> String {
    lab.host(i).run(|| {
        let mut s = TcpStream::connect(METRICS).expect("connect to the metrics address");
        s.set_read_timeout(Some(10 * SEC)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        out.split_once("\r\n\r\n").expect("a body").1.to_owned()
    })
}

/// The samples of a scrape: `name{labels}` -> value, every line checked to
/// be a comment or `name[{labels}] value`.
fn samples(text: &str) -> BTreeMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {l:?}"));
            let v: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {l:?}"));
            assert!(series.starts_with("weavers_"), "{l}");
            (series.to_owned(), v)
        })
        .collect()
}

fn get(s: &BTreeMap<String, f64>, series: &str) -> f64 {
    *s.get(series).unwrap_or_else(|| panic!("no {series} in {s:#?}"))
}

/// `weavers expose` with no address (IPAM picks one); the address.
fn expose_auto(lab: &Lab, i: usize) -> Ipv4Addr {
    let out = lab.cli_ok(i, &["expose"]);
    let addr = out.trim().split_once('/').unwrap_or_else(|| panic!("h{i}: `weavers expose` printed {out:?}")).0;
    addr.parse().unwrap_or_else(|_| panic!("h{i}: `weavers expose` printed {out:?}"))
}

/// One DNS query (A) over UDP from inside host `i` to `server:53`.
fn dns_query(lab: &Lab, i: usize, server: Ipv4Addr, name: &str) {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let q = m.to_vec().unwrap();
    lab.host(i).run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(3 * SEC)).unwrap();
        s.send_to(&q, (server, 53)).unwrap();
        let mut buf = [0u8; 1500];
        s.recv(&mut buf).expect("a DNS reply");
    });
}

#[test]
fn a_running_daemon_exports_build_peer_handshake_dns_and_ipam_metrics() {
    let Some(mut lab) = lab_or_skip(2) else { return };
    lab.start_daemon(1, DaemonOpts::new().arg("--metrics-addr").arg(METRICS));
    lab.start_daemon(2, DaemonOpts::new().peer(1));
    lab.wait_mesh(&[1, 2], 30 * SEC);
    // Addresses from IPAM (so h1 has an allocation), its DNS server on h1's.
    let addrs: Vec<Ipv4Addr> = [1, 2].map(|i| expose_auto(&lab, i)).to_vec();
    assert!(lab.wait_ping(1, addrs[1], 10 * SEC), "no ping over the overlay");
    lab.cli_ok(1, &["dns", "add", "probe", "10.40.0.9"]);
    dns_query(&lab, 1, addrs[0], "probe.weavers.local");
    dns_query(&lab, 1, addrs[0], "nobody.weavers.local");

    let key2 = lab.status_json(2)["public_key"].as_str().unwrap().to_owned();
    let short2 = &key2[..12];
    let mut s = BTreeMap::new();
    let ready = wait_until(10 * SEC, || {
        s = samples(&scrape(&lab, 1));
        s.get("weavers_ipam_seeded").copied() == Some(1.0)
            && s.contains_key(&format!("weavers_peer_session_age_seconds{{peer=\"h2\",key=\"{short2}\"}}"))
    });
    assert!(ready, "IPAM not seeded or no session age for h2: {s:#?}");

    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(get(&s, &format!("weavers_build_info{{version=\"{version}\"}}")), 1.0);
    assert_eq!(get(&s, &format!("weavers_peer_info{{peer=\"h2\",key=\"{short2}\",public_key=\"{key2}\"}}")), 1.0);
    assert_eq!(get(&s, "weavers_peers{state=\"connected\"}"), 1.0);
    for dir in ["tx", "rx"] {
        let bytes = get(&s, &format!("weavers_peer_bytes_total{{peer=\"h2\",key=\"{short2}\",direction=\"{dir}\"}}"));
        assert!(bytes > 0.0, "no {dir} bytes with h2 after a ping");
    }
    assert!(
        !s.keys().any(|k| k.contains(&key2) && !k.starts_with("weavers_peer_info{")),
        "the whole key outside the info metric"
    );
    assert!(get(&s, "weavers_handshakes_total{result=\"completed\"}") >= 1.0);
    assert!(
        get(&s, "weavers_handshakes_total{result=\"initiated\"}")
            + get(&s, "weavers_handshakes_total{result=\"completed\"}")
            >= 1.0
    );
    assert_eq!(get(&s, "weavers_dns_up"), 1.0);
    assert!(get(&s, "weavers_dns_queries_total{transport=\"udp\"}") >= 2.0);
    assert!(get(&s, "weavers_dns_responses_total{result=\"answer\"}") >= 1.0, "probe.weavers.local got no answer");
    assert!(get(&s, "weavers_dns_responses_total{result=\"nxdomain\"}") >= 1.0);
    assert!(get(&s, "weavers_ipam_allocations") >= 1.0, "the exposed address is an allocation");
    assert!(get(&s, "weavers_ipam_free_addresses") > 0.0);

    // Every metric the dashboard queries is a family this daemon serves.
    let text = scrape(&lab, 1);
    let families: BTreeSet<&str> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
    let dash = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/grafana/weavers.json")).unwrap();
    let mut checked = 0;
    for (i, _) in dash.match_indices("weavers_") {
        let name: String = dash[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let family = name.strip_suffix("_total").unwrap_or(&name);
        assert!(families.contains(family), "the dashboard queries {name}; the daemon serves {families:?}");
        checked += 1;
    }
    assert!(checked > 20, "only {checked} metric names found in the dashboard");
}

#[test]
fn peer_ls_shows_the_last_handshake_and_bytes_each_way() {
    let Some(mut lab) = lab_or_skip(2) else { return };
    lab.start_daemon(1, DaemonOpts::new());
    lab.start_daemon(2, DaemonOpts::new().peer(1));
    lab.wait_mesh(&[1, 2], 30 * SEC);
    let addrs: Vec<Ipv4Addr> = [1, 2].map(|i| expose_auto(&lab, i)).to_vec();
    let pings = lab.host(1).exec("ping", &["-n", "-q", "-c", "5", "-i", "0.2", "-s", "1000", &addrs[1].to_string()]);
    assert!(pings.status.success(), "no ping over the overlay: {pings:?}");

    let json_bytes = |lab: &Lab| {
        let h2 = lab.peer_entry(1, "h2").expect("h2 in peer ls --json");
        (h2["tx_bytes"].as_u64().unwrap(), h2["rx_bytes"].as_u64().unwrap())
    };
    let before = json_bytes(&lab);
    let text = lab.cli_ok(1, &["peer", "ls"]);
    let after = json_bytes(&lab);
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(&header[header.len() - 3..], ["HANDSHAKE", "SENT", "RECEIVED"], "{text}");
    let row = lines.iter().find(|l| l.starts_with("h2 ")).unwrap_or_else(|| panic!("no h2 row:\n{text}"));
    // `... 3s ago  5.12 KiB  5.20 KiB`
    let cells: Vec<&str> = row.split_whitespace().collect();
    let n = cells.len();
    assert_eq!(cells[n - 5], "ago", "{row}");
    let secs = cells[n - 6].strip_suffix('s').and_then(|s| s.parse::<u64>().ok());
    assert!(secs.is_some_and(|s| s < 120), "the handshake just happened: {row}");
    for (dir, (value, unit), lo, hi) in [
        ("sent", (cells[n - 4], cells[n - 3]), before.0, after.0),
        ("received", (cells[n - 2], cells[n - 1]), before.1, after.1),
    ] {
        assert!(lo >= 5 * 1000, "{dir} {lo} bytes after five 1000-byte pings");
        let scale = match unit {
            "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            _ => panic!("{dir}: unit {unit:?} in {row}"),
        };
        let shown = value.parse::<f64>().unwrap() * scale;
        // Two decimals of the unit: within half a hundredth.
        let slack = scale / 200.0 + 1.0;
        assert!(
            shown + slack >= lo as f64 && shown - slack <= hi as f64,
            "{dir}: {value} {unit} shown, {lo}..{hi} bytes by --json"
        );
    }
}
