//! The metrics text: every family, escaping, HTTP, and the Grafana
//! dashboard in dist/ asking only for what is exported.

use super::*;
use std::collections::BTreeSet;
use tokio::net::TcpListener;
use weavers_api::{
    AllocationRow, DropCount, HandshakeCounts, LocalMemberInfo, PeerInfo, PeerSent, PeerState, SubscribedPeer,
    TrafficCounters,
};

const KEYB: &str = "BBBBBBBBBBBBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb=";
const KEYC: &str = "CCCCCCCCCCCCcccccccccccccccccccccccccccccccc=";

fn peer(name: &str, key: &str, state: PeerState, rtt_us: Option<u64>) -> PeerInfo {
    PeerInfo {
        name: name.into(),
        public_key: key.into(),
        endpoint: Some("192.0.2.2:6783".into()),
        state,
        via: None,
        rtt_us,
        session_age_s: rtt_us.map(|_| 5),
        overlay_addr: None,
        traffic: TrafficCounters { tx_frames: 10, tx_bytes: 1000, rx_frames: 7, rx_bytes: 980 },
    }
}

fn status() -> Status {
    Status {
        name: "a".into(),
        public_key: "KEYA".into(),
        version: "0.1.0".into(),
        listen: "0.0.0.0:6783".into(),
        bridge: "weavers".into(),
        overlay_mtu: 1376,
        overlay_addr: None,
        peers: vec![
            peer("b", KEYB, PeerState::Connected, Some(420)),
            peer("c\"x\\y\nz", KEYC, PeerState::Unreachable, None),
        ],
        pending: vec![],
        drops: vec![DropCount { reason: "replay".into(), count: 3 }],
        handshakes: HandshakeCounts {
            initiated: 4,
            completed: 3,
            failed: 1,
            rate_limited: 0,
            mac1_refused: 7,
            cookies_sent: 2,
            cookies_refused: 1,
            certs_refused: 5,
        },
        tap_tx_dropped: 0,
        peers_down: 2,
        stalls: 5,
        local_health: 3,
        segmentation: weavers_api::SegmentationCounts {
            superframes_segmented: 11,
            segments_sent: 480,
            retransmissions_seen: 6,
            peers_lossy: 1,
            flows_evicted: 2,
            parity_sent: 120,
            datagrams_repaired: 7,
            ..Default::default()
        },
    }
}

fn group() -> GroupInfo {
    let mut g = GroupInfo {
        group: "239.1.1.1".into(),
        link_local: false,
        filter: None,
        local_members: vec![LocalMemberInfo {
            address: "10.32.0.5".into(),
            mac: "02:00:00:00:00:05".into(),
            filter: weavers_api::FilterInfo { mode: "exclude".into(), sources: vec![] },
            expires_in_s: 100,
        }],
        subscribed_peers: vec![SubscribedPeer {
            name: "b".into(),
            public_key: KEYB.into(),
            filter: weavers_api::FilterInfo { mode: "exclude".into(), sources: vec![] },
        }],
        counters: Default::default(),
    };
    g.counters.local_frames = 7;
    g.counters.sent_per_peer = vec![PeerSent { name: "b".into(), public_key: KEYB.into(), frames: 6, bytes: 600 }];
    g
}

fn scrape() -> Scrape {
    Scrape {
        status: status(),
        groups: vec![group()],
        dns: DnsStats {
            listening: Some("10.32.0.1:53".into()),
            entries: 4,
            udp_queries: 9,
            tcp_queries: 2,
            answers: 6,
            nxdomain: 3,
            refused: 1,
            forwarded: 5,
            forward_failed: 1,
            ..Default::default()
        },
        ipam: IpamStatus {
            range: "10.32.0.0/12".into(),
            seeded: true,
            spans: vec![],
            allocations: vec![
                AllocationRow { owner: "host".into(), address: "10.32.0.1".into() },
                AllocationRow { owner: "c1/eth0".into(), address: "10.32.0.2".into() },
            ],
            free: 1000,
            problems: vec![],
        },
    }
}

/// The sample names of a rendering (`name` of `name{labels} value`).
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines().filter(|l| !l.starts_with('#')).map(|l| l.split(['{', ' ']).next().unwrap().to_owned()).collect()
}

#[test]
fn renders_every_family() {
    let text = render(&scrape());
    let lines: Vec<&str> = text.lines().collect();
    for want in [
        "weavers_build_info{version=\"0.1.0\"} 1",
        "# TYPE weavers_peers gauge",
        "weavers_peers{state=\"connected\"} 1",
        "weavers_peers{state=\"relayed\"} 0",
        "weavers_peers{state=\"connecting\"} 0",
        "weavers_peers{state=\"unreachable\"} 1",
        "weavers_pending_peers 0",
        &format!("weavers_peer_info{{peer=\"b\",key=\"BBBBBBBBBBBB\",public_key=\"{KEYB}\"}} 1"),
        "# TYPE weavers_peer_frames counter",
        "weavers_peer_frames_total{peer=\"b\",key=\"BBBBBBBBBBBB\",direction=\"tx\"} 10",
        "weavers_peer_frames_total{peer=\"b\",key=\"BBBBBBBBBBBB\",direction=\"rx\"} 7",
        "weavers_peer_bytes_total{peer=\"b\",key=\"BBBBBBBBBBBB\",direction=\"tx\"} 1000",
        "weavers_peer_bytes_total{peer=\"b\",key=\"BBBBBBBBBBBB\",direction=\"rx\"} 980",
        "weavers_peer_rtt_seconds{peer=\"b\",key=\"BBBBBBBBBBBB\"} 0.00042",
        "weavers_peer_session_age_seconds{peer=\"b\",key=\"BBBBBBBBBBBB\"} 5.0",
        "weavers_drops_total{reason=\"replay\"} 3",
        "weavers_handshakes_total{result=\"initiated\"} 4",
        "weavers_handshakes_total{result=\"completed\"} 3",
        "weavers_handshakes_total{result=\"failed\"} 1",
        "weavers_handshakes_total{result=\"rate_limited\"} 0",
        "weavers_handshakes_total{result=\"mac1_refused\"} 7",
        "weavers_handshakes_total{result=\"cookies_sent\"} 2",
        "weavers_handshakes_total{result=\"cookies_refused\"} 1",
        "weavers_handshakes_total{result=\"certs_refused\"} 5",
        "weavers_tap_tx_dropped_total 0",
        "weavers_peers_down_total 2",
        "weavers_stalls_total 5",
        "weavers_local_health 3",
        "weavers_superframes_segmented_total 11",
        "weavers_segments_sent_total 480",
        "weavers_tcp_retransmissions_seen_total 6",
        "weavers_parity_sent_total 120",
        "weavers_datagrams_repaired_total 7",
        "weavers_peers_lossy 1",
        "weavers_tcp_flows_evicted_total 2",
        "weavers_group_frames_total{group=\"239.1.1.1\",kind=\"local\"} 7",
        "weavers_group_peer_frames_total{group=\"239.1.1.1\",peer=\"b\",key=\"BBBBBBBBBBBB\"} 6",
        "weavers_group_members{group=\"239.1.1.1\"} 1",
        "weavers_dns_up 1",
        "weavers_dns_entries 4",
        "weavers_dns_queries_total{transport=\"udp\"} 9",
        "weavers_dns_queries_total{transport=\"tcp\"} 2",
        "weavers_dns_responses_total{result=\"answer\"} 6",
        "weavers_dns_responses_total{result=\"nxdomain\"} 3",
        "weavers_dns_responses_total{result=\"refused\"} 1",
        "weavers_dns_forwarded_total 5",
        "weavers_dns_forward_failed_total 1",
        "weavers_dns_dropped_total 0",
        "weavers_dns_tcp_rejected_total 0",
        "weavers_ipam_seeded 1",
        "weavers_ipam_allocations 2",
        "weavers_ipam_free_addresses 1000",
        "weavers_ipam_problems 0",
        "# EOF",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in:\n{text}");
    }
    // No RTT or session age for a peer without a session.
    assert!(!text.contains("weavers_peer_rtt_seconds{peer=\"c"));
    assert!(!text.contains("weavers_peer_session_age_seconds{peer=\"c"));
    // The whole key is in the info metric only.
    for l in lines.iter().filter(|l| l.contains(KEYB)) {
        assert!(l.starts_with("weavers_peer_info{"), "a 44-character key label on {l}");
    }
}

#[test]
fn hostile_label_values_are_escaped() {
    let text = render(&scrape());
    assert!(
        text.contains("weavers_peer_frames_total{peer=\"c\\\"x\\\\y\\nz\",key=\"CCCCCCCCCCCC\",direction=\"tx\"} 10"),
        "{text}"
    );
    // Every sample stays on one line: name, labels, value.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.starts_with("weavers_"), "stray line {line:?}");
        assert_eq!(line.rsplit(' ').next().map(|v| v.parse::<f64>().is_ok()), Some(true));
    }
}

#[test]
fn a_short_key_is_its_own_label() {
    assert_eq!(key_label(KEYB), "BBBBBBBBBBBB");
    assert_eq!(key_label("short"), "short");
}

#[test]
fn empty_status_still_has_state_gauges() {
    let mut s = scrape();
    s.status.peers.clear();
    s.status.drops.clear();
    s.dns = DnsStats::default();
    let text = render(&s);
    for state in ["connected", "relayed", "connecting", "unreachable"] {
        assert!(text.contains(&format!("weavers_peers{{state=\"{state}\"}} 0")));
    }
    assert!(!text.contains("weavers_peer_frames_total{"));
    assert!(!text.contains("weavers_peer_info{"));
    assert!(text.contains("\nweavers_dns_up 0\n"));
}

/// Every string under an `expr` key (panel targets) or a templating
/// variable's `query`, anywhere in the dashboard.
fn queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) | ("query", serde_json::Value::String(s)) => {
                        out.push(s.clone())
                    }
                    _ => queries(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

#[test]
fn the_grafana_dashboard_queries_only_exported_metrics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/grafana/weavers.json");
    let text = std::fs::read_to_string(path).expect("dist/grafana/weavers.json");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(dash["title"].is_string() && dash["uid"].is_string(), "a dashboard has a title and a uid");
    let panels = dash["panels"].as_array().expect("panels");
    let mut exprs = Vec::new();
    queries(&dash, &mut exprs);
    let exported = sample_names(&render(&scrape()));
    let mut used = BTreeSet::new();
    for e in &exprs {
        let mut rest = e.as_str();
        while let Some(i) = rest.find("weavers_") {
            let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            assert!(exported.contains(&name), "the dashboard queries {name}, which the daemon does not export: {e}");
            used.insert(name.clone());
            rest = &rest[i + name.len()..];
        }
    }
    // The check cannot pass on an empty or unparsed dashboard.
    assert!(panels.len() >= 8, "{} panels", panels.len());
    for must in ["weavers_peer_bytes_total", "weavers_handshakes_total", "weavers_drops_total", "weavers_peer_info"] {
        assert!(used.contains(must), "the dashboard does not use {must}: {used:?}");
    }
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "a panel without a title: {p}");
        let targets = p["targets"].as_array().map(Vec::len).unwrap_or(0);
        assert!(targets > 0, "panel {} has no query", p["title"]);
    }
}

#[tokio::test]
async fn serves_metrics_over_http() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (tx, mut rx) = mpsc::channel::<Command>(4);
    tokio::spawn(async move {
        let s = scrape();
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Command::Status(r) => {
                    let _ = r.send(s.status.clone());
                }
                Command::Groups(r) => {
                    let _ = r.send(s.groups.clone());
                }
                Command::DnsStats(r) => {
                    let _ = r.send(s.dns.clone());
                }
                Command::IpamStatus(r) => {
                    let _ = r.send(s.ipam.clone());
                }
                _ => {}
            }
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(listener, tx, async {
        let _ = stop_rx.await;
    }));

    let get = |path: &'static str| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let out = get("/metrics").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.to_ascii_lowercase().contains("content-type: application/openmetrics-text"));
    assert!(out.contains("\r\n\r\n# HELP weavers_build_info "), "{out}");
    assert!(out.ends_with("# EOF\n"));
    assert!(out.contains("weavers_group_frames_total{group=\"239.1.1.1\",kind=\"local\"} 7"), "{out}");
    assert!(out.contains("weavers_ipam_allocations 2"), "{out}");
    assert!(get("/").await.starts_with("HTTP/1.1 404"));

    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
