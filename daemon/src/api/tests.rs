//! Tests of the control API: request checks, every route over a real socket against a fake data plane, socket modes.

use super::*;

#[test]
fn peer_addresses() {
    for ok in [
        "host",
        "host.example.com",
        "host.example.com.",
        "host:6783",
        "192.0.2.1",
        "192.0.2.1:1",
        "[2001:db8::1]",
        "[2001:db8::1]:65535",
        "2001:db8::1",
        "under_score-1",
    ] {
        assert_eq!(validate_peer_addr(ok), Ok(()), "{ok}");
    }
    let long = "a".repeat(256);
    for bad in [
        "",
        " host",
        "host:",
        "host:0",
        "host:65536",
        "host:+1",
        ":6783",
        "-host",
        "a..b",
        "ho st",
        "host\n",
        "[2001:db8::1",
        "[2001:db8::1]6783",
        "[host]:1",
        "2001:db8::1:6783x",
        "a:b:c",
        "h\u{1b}[31m",
        "héllo",
        long.as_str(),
    ] {
        assert!(validate_peer_addr(bad).is_err(), "{bad:?} accepted");
    }
}

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weavers_api::{
    DnsEntryInfo, DnsLookup, DnsRemoved, DnsStats, ExposeResponse, HandshakeCounts, PeerInfo, PeerState, Status,
    TrafficCounters,
};

/// A directory of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("weavers-api-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sample_status() -> Status {
    Status {
        name: "a".into(),
        public_key: "KEYA".into(),
        version: "0.1.0".into(),
        listen: "0.0.0.0:6783".into(),
        bridge: "weavers".into(),
        overlay_mtu: 1376,
        overlay_addr: None,
        peers: vec![PeerInfo {
            name: "b".into(),
            public_key: "KEYB".into(),
            endpoint: Some("192.0.2.2:6783".into()),
            state: PeerState::Connected,
            via: None,
            rtt_us: Some(420),
            session_age_s: Some(3),
            overlay_addr: None,
            traffic: TrafficCounters::default(),
        }],
        pending: vec![],
        drops: vec![],
        handshakes: HandshakeCounts::default(),
        tap_tx_dropped: 0,
        peers_down: 0,
        stalls: 0,
        local_health: 0,
        segmentation: Default::default(),
    }
}

/// A data-plane task that answers every command and logs what it got.
fn fake_data_plane() -> (mpsc::Sender<Command>, Arc<Mutex<Vec<String>>>) {
    let (tx, mut rx) = mpsc::channel::<Command>(8);
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            let mut log = seen.lock().unwrap();
            // Commands added later get no answer (the API says 503).
            #[allow(unreachable_patterns)]
            match cmd {
                Command::Status(r) => {
                    log.push("status".into());
                    let _ = r.send(sample_status());
                }
                Command::Peers(r) => {
                    log.push("peers".into());
                    let _ = r.send(sample_status().peers);
                }
                Command::AddPeers(p, r) => {
                    log.push(format!("add {}", p.join(",")));
                    let _ = r.send(if p.iter().any(|a| a == "refuse.example") {
                        Err("cannot resolve refuse.example".into())
                    } else {
                        Ok(PeerAddrs { peers: p })
                    });
                }
                Command::RemovePeers(p, r) => {
                    log.push(format!("rm {}", p.join(",")));
                    let _ = r.send(Ok(PeerAddrs { peers: p }));
                }
                Command::Expose(c, r) => {
                    log.push(format!("expose {c:?}"));
                    let _ = r.send(Ok(ExposeResponse {
                        address: c.unwrap_or_else(|| "10.32.0.1/12".into()),
                        multicast_route_added: true,
                    }));
                }
                Command::DnsAdd(a, r) => {
                    log.push(format!("dns add {} {} {:?}", a.name, a.addr, a.owner));
                    let _ = r.send(if a.name == "refused" {
                        Err("this host already publishes too many DNS entries".into())
                    } else {
                        Ok(dns_entry(&a.name, &a.addr.to_string(), a.owner))
                    });
                }
                Command::DnsRemove(sel, r) => {
                    log.push(format!("dns rm {:?} {:?} {:?}", sel.name, sel.addr, sel.owner));
                    let name = sel.name.unwrap_or_else(|| "x".into());
                    let _ = r.send(Ok(DnsRemoved { removed: vec![dns_entry(&name, "10.0.0.1", sel.owner)] }));
                }
                Command::DnsList(r) => {
                    log.push("dns ls".into());
                    let _ = r.send(vec![]);
                }
                Command::DnsLookup(name, r) => {
                    log.push(format!("dns lookup {name}"));
                    let _ = r.send((name == "web").then(|| DnsLookup {
                        name: "web.weavers.local".into(),
                        addrs: vec!["10.0.0.2".into(), "10.0.0.1".into()],
                    }));
                }
                Command::DnsStats(r) => {
                    log.push("dns stats".into());
                    let _ = r.send(DnsStats { formerr: 3, ..DnsStats::default() });
                }
                _ => {}
            }
        }
    });
    (tx, log)
}

fn dns_entry(name: &str, addr: &str, owner: Option<String>) -> DnsEntryInfo {
    DnsEntryInfo {
        name: format!("{name}.weavers.local"),
        addr: addr.into(),
        owner,
        origin: "a".into(),
        origin_key: "KEYA".into(),
    }
}

/// One raw HTTP/1.1 exchange; returns the status code and the body.
async fn http(sock: &Path, method: &str, uri: &str, body: Option<&str>) -> (u16, String) {
    let mut s = tokio::net::UnixStream::connect(sock).await.unwrap();
    let mut req = format!("{method} {uri} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(body) = body {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    } else {
        req.push_str("\r\n");
    }
    // The server may answer and close before reading a large body.
    let _ = s.write_all(req.as_bytes()).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, body.to_string())
}

fn error_of(body: &str) -> String {
    serde_json::from_str::<ApiError>(body).unwrap_or_else(|e| panic!("not an ApiError ({e}): {body}")).error
}

#[tokio::test]
async fn routes_answer_and_bad_requests_change_nothing() {
    let dir = TempDir::new("routes");
    let sock = dir.0.join("run").join("weavers.sock");
    let listener = bind(&sock).unwrap();
    let (tx, log) = fake_data_plane();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, tx, async {
        let _ = stop_rx.await;
    }));

    let (code, body) = http(&sock, "GET", "/v1/status", None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Status>(&body).unwrap(), sample_status());

    let (code, body) = http(&sock, "GET", "/v1/peers", None).await;
    assert_eq!(code, 200);
    let peers: Vec<PeerInfo> = serde_json::from_str(&body).unwrap();
    assert_eq!(peers[0].state, PeerState::Connected);

    let (code, body) = http(&sock, "POST", "/v1/peers", Some(r#"{"peers":["b.example:6783","[2001:db8::2]"]}"#)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<PeerAddrs>(&body).unwrap().peers, ["b.example:6783", "[2001:db8::2]"]);

    let (code, body) = http(&sock, "DELETE", "/v1/peers", Some(r#"{"peers":["b.example"]}"#)).await;
    assert_eq!(code, 200, "{body}");

    let (code, body) = http(&sock, "POST", "/v1/expose", Some("{}")).await;
    assert_eq!(code, 200, "{body}");
    let exposed: ExposeResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(exposed.address, "10.32.0.1/12");
    let (code, _) = http(&sock, "POST", "/v1/expose", Some(r#"{"cidr":"10.32.0.9/12"}"#)).await;
    assert_eq!(code, 200);

    // The daemon's refusal comes back as a 400 with its message.
    let (code, body) = http(&sock, "POST", "/v1/peers", Some(r#"{"peers":["refuse.example"]}"#)).await;
    assert_eq!(code, 400);
    assert_eq!(error_of(&body), "cannot resolve refuse.example");

    let before = log.lock().unwrap().len();
    let long = format!(r#"{{"peers":["{}"]}}"#, "a".repeat(300));
    let many = format!(r#"{{"peers":[{}]}}"#, vec!["\"h\""; MAX_PEERS_PER_REQUEST + 1].join(","));
    for (method, uri, body) in [
        ("POST", "/v1/peers", Some("")),
        ("POST", "/v1/peers", Some("{")),
        ("POST", "/v1/peers", Some("[]")),
        ("POST", "/v1/peers", Some(r#"{"peers":"h"}"#)),
        ("POST", "/v1/peers", Some(r#"{"peers":[]}"#)),
        ("POST", "/v1/peers", Some(r#"{"peers":["ok.example",""]}"#)),
        ("POST", "/v1/peers", Some(r#"{"peers":["ok.example","bad host"]}"#)),
        ("POST", "/v1/peers", Some(r#"{"peers":["h:99999"]}"#)),
        ("POST", "/v1/peers", Some(long.as_str())),
        ("POST", "/v1/peers", Some(many.as_str())),
        ("POST", "/v1/peers", Some("\u{0}\u{1}\u{2}")),
        ("DELETE", "/v1/peers", None),
        ("DELETE", "/v1/peers", Some(r#"{"peers":[null]}"#)),
        ("POST", "/v1/expose", Some(r#"{"cidr":"10.32.0.1"}"#)),
        ("POST", "/v1/expose", Some(r#"{"cidr":"10.32.0.1/40"}"#)),
        ("POST", "/v1/expose", Some(r#"{"cidr":12}"#)),
    ] {
        let (code, resp) = http(&sock, method, uri, body).await;
        assert_eq!(code, 400, "{method} {uri} {body:?} -> {resp}");
        assert!(!error_of(&resp).is_empty());
    }
    let (code, resp) = http(&sock, "GET", "/v2/nothing", None).await;
    assert_eq!(code, 404);
    assert!(error_of(&resp).contains("no such route"));
    let (code, resp) = http(&sock, "PUT", "/v1/status", None).await;
    assert_eq!(code, 405);
    error_of(&resp);
    let huge = format!(r#"{{"peers":["{}"]}}"#, "a".repeat(MAX_BODY));
    let (code, resp) = http(&sock, "POST", "/v1/peers", Some(&huge)).await;
    assert_eq!(code, 413, "{resp}");
    error_of(&resp);
    assert_eq!(log.lock().unwrap().len(), before, "a bad request reached the daemon");

    // Not HTTP at all: the server drops the connection and goes on.
    {
        let mut s = tokio::net::UnixStream::connect(&sock).await.unwrap();
        let _ = s.write_all(b"\x16\x03\x01garbage\r\n\r\n").await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
    }
    assert_eq!(http(&sock, "GET", "/v1/status", None).await.0, 200);

    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(!sock.exists(), "socket left behind after shutdown");
}

#[test]
fn query_params() {
    assert_eq!(query_param("name=web", "name").as_deref(), Some("web"));
    assert_eq!(query_param("a=1&name=AAPL.orders%2Eaex", "name").as_deref(), Some("AAPL.orders.aex"));
    assert_eq!(query_param("name=a+b", "name").as_deref(), Some("a b"));
    assert_eq!(query_param("names=x", "name"), None);
    assert_eq!(query_param("name=%zz", "name"), None);
    assert_eq!(query_param("name=%4", "name"), None);
    assert_eq!(query_param("name=%ff", "name"), None, "not UTF-8");
    assert_eq!(query_param("name", "name").as_deref(), Some(""));
}

#[tokio::test]
async fn dns_routes_check_everything_before_the_daemon_sees_it() {
    let dir = TempDir::new("dns");
    let sock = dir.0.join("weavers.sock");
    let listener = bind(&sock).unwrap();
    let (tx, log) = fake_data_plane();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, tx, async {
        let _ = stop_rx.await;
    }));

    let (code, body) =
        http(&sock, "POST", "/v1/dns", Some(r#"{"name":"AAPL.orders.aex.weavers.local.","addr":"239.1.0.1"}"#)).await;
    assert_eq!(code, 200, "{body}");
    let e: DnsEntryInfo = serde_json::from_str(&body).unwrap();
    assert_eq!(e.name, "aapl.orders.aex.weavers.local");
    let (code, _) = http(&sock, "POST", "/v1/dns", Some(r#"{"name":"web","addr":"fd00::1","owner":"ctr-1"}"#)).await;
    assert_eq!(code, 200);
    let (code, body) = http(&sock, "POST", "/v1/dns", Some(r#"{"name":"refused","addr":"10.0.0.1"}"#)).await;
    assert_eq!((code, error_of(&body).contains("too many")), (400, true));

    let (code, body) = http(&sock, "DELETE", "/v1/dns", Some(r#"{"owner":"ctr-1"}"#)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<DnsRemoved>(&body).unwrap().removed.len(), 1);
    let (code, _) = http(&sock, "DELETE", "/v1/dns", Some(r#"{"name":"Web","addr":"10.0.0.1"}"#)).await;
    assert_eq!(code, 200);

    let (code, body) = http(&sock, "GET", "/v1/dns/lookup?name=WEB.weavers.local", None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<DnsLookup>(&body).unwrap().addrs, ["10.0.0.2", "10.0.0.1"]);
    let (code, body) = http(&sock, "GET", "/v1/dns/lookup?name=nope", None).await;
    assert_eq!(code, 404);
    assert_eq!(error_of(&body), "no such name: nope.weavers.local");
    let (code, body) = http(&sock, "GET", "/v1/dns", None).await;
    assert_eq!((code, body.as_str()), (200, "[]"));
    let (code, body) = http(&sock, "GET", "/v1/dns/stats", None).await;
    assert_eq!(code, 200);
    assert_eq!(serde_json::from_str::<DnsStats>(&body).unwrap().formerr, 3);

    let before = log.lock().unwrap().len();
    let long = format!(r#"{{"name":"{}","addr":"10.0.0.1"}}"#, "a".repeat(300));
    for (method, uri, body) in [
        ("POST", "/v1/dns", Some("{}")),
        ("POST", "/v1/dns", Some(r#"{"name":"web"}"#)),
        ("POST", "/v1/dns", Some(r#"{"name":"web","addr":"10.0.0"}"#)),
        ("POST", "/v1/dns", Some(r#"{"name":"web","addr":"0.0.0.0"}"#)),
        ("POST", "/v1/dns", Some(r#"{"name":"a..b","addr":"10.0.0.1"}"#)),
        ("POST", "/v1/dns", Some(r#"{"name":"weavers.local","addr":"10.0.0.1"}"#)),
        ("POST", "/v1/dns", Some(r#"{"name":"a[2J","addr":"10.0.0.1"}"#)),
        ("POST", "/v1/dns", Some(r#"{"name":"web","addr":"10.0.0.1","owner":"two words"}"#)),
        ("POST", "/v1/dns", Some(r#"{"name":"web","addr":"10.0.0.1","owner":""}"#)),
        ("POST", "/v1/dns", Some(long.as_str())),
        ("DELETE", "/v1/dns", Some("{}")),
        ("DELETE", "/v1/dns", Some(r#"{"addr":"10.0.0.1"}"#)),
        ("DELETE", "/v1/dns", Some(r#"{"name":"web","addr":"nope"}"#)),
        ("DELETE", "/v1/dns", Some(r#"{"name":"-web"}"#)),
        ("GET", "/v1/dns/lookup", None),
        ("GET", "/v1/dns/lookup?name=", None),
        ("GET", "/v1/dns/lookup?name=a%20b", None),
        ("GET", "/v1/dns/lookup?name=%zz", None),
    ] {
        let (code, resp) = http(&sock, method, uri, body).await;
        assert_eq!(code, 400, "{method} {uri} {body:?} -> {resp}");
        assert!(!error_of(&resp).is_empty());
    }
    assert_eq!(log.lock().unwrap().len(), before, "a bad request reached the daemon");
    assert_eq!(http(&sock, "PUT", "/v1/dns", None).await.0, 405);

    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn data_plane_gone_is_503() {
    let dir = TempDir::new("gone");
    let sock = dir.0.join("weavers.sock");
    let listener = bind(&sock).unwrap();
    let (tx, rx) = mpsc::channel::<Command>(1);
    drop(rx);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, tx, async {
        let _ = stop_rx.await;
    }));
    let (code, body) = http(&sock, "GET", "/v1/status", None).await;
    assert_eq!(code, 503);
    assert!(error_of(&body).contains("data plane"));
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn socket_file_modes_and_stale_sockets() {
    let dir = TempDir::new("bind");
    let run = dir.0.join("run");
    let sock = run.join("weavers.sock");

    let listener = bind(&sock).unwrap();
    let dir_mode = std::fs::metadata(&run).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // Somebody answers: a second daemon must not take the socket over.
    let err = bind(&sock).unwrap_err().to_string();
    assert!(err.contains("another daemon"), "{err}");
    assert!(sock.exists());

    // A crash leaves the file with nobody behind it: it is replaced.
    drop(listener);
    assert!(sock.exists());
    let listener = bind(&sock).unwrap();
    drop(listener);

    // Never remove something that is not a socket.
    std::fs::remove_file(&sock).unwrap();
    std::fs::write(&sock, b"precious").unwrap();
    let err = bind(&sock).unwrap_err().to_string();
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&sock).unwrap(), b"precious");
}
