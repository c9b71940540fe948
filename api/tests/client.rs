//! The control-socket client against a scripted HTTP/1.1 server on a unix
//! socket: what it sends, what it makes of answers good and bad, and the
//! one-line errors when there is no daemon or it does not answer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use weavers_api::client::Method;
use weavers_api::{
    AllocateRequest, Client, ClientError, DnsRemoveRequest, DnsStats, ExposeRequest, GcRequest, PeerAddrs,
    ReleaseRequest, RmPeerRequest,
};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("weavers-api-client-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn sock(&self) -> PathBuf {
        self.0.join("weavers.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    content_type: Option<String>,
    body: String,
}

/// What the server answers to a request: `None` never answers.
type Script = fn(&Seen) -> Option<(u16, String)>;

/// Serves `script` on `sock` and records every request.
fn serve(sock: &Path, script: Script) -> Arc<Mutex<Vec<Seen>>> {
    let listener = UnixListener::bind(sock).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move { answer(stream, script, log).await });
        }
    });
    seen
}

async fn answer(mut stream: UnixStream, script: Script, log: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before the request ended");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap().split(' ');
    let (method, path) = (first.next().unwrap().to_owned(), first.next().unwrap().to_owned());
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let len: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
    while buf.len() < head_end + len {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
    }
    let seen = Seen {
        method,
        path,
        content_type: header("content-type"),
        body: String::from_utf8(buf[head_end..head_end + len].to_vec()).unwrap(),
    };
    log.lock().unwrap().push(seen.clone());
    match script(&seen) {
        Some((status, body)) => {
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(resp.as_bytes()).await.unwrap();
        }
        None => tokio::time::sleep(Duration::from_secs(60)).await,
    }
}

fn error(msg: &str) -> String {
    json!({ "error": msg }).to_string()
}

/// A daemon that answers every route with a plausible body.
fn daemon(s: &Seen) -> Option<(u16, String)> {
    let ipam = json!({"range": "10.32.0.0/12", "seeded": true, "spans": [], "allocations": [], "free": 10,
        "problems": []});
    let body = match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/v1/status") => json!({"name": "h1", "public_key": "K", "version": "0.1.0", "listen": "0.0.0.0:6783",
            "bridge": "weavers", "overlay_mtu": 1376, "overlay_addr": null, "peers": [], "pending": [], "drops": [],
            "handshakes": {"initiated": 1, "completed": 1, "failed": 0, "rate_limited": 0}}),
        ("GET", "/v1/peers") | ("GET", "/v1/groups") | ("GET", "/v1/dns") => json!([]),
        ("POST" | "DELETE", "/v1/peers") => serde_json::from_str(&s.body).unwrap(),
        ("POST", "/v1/expose") => json!({"address": "10.32.0.1/12", "multicast_route_added": true}),
        ("GET", "/v1/ipam") | ("POST", "/v1/ipam/rmpeer") => ipam,
        ("POST", "/v1/ipam/allocate") => {
            let owner = serde_json::from_str::<Value>(&s.body).unwrap()["owner"].clone();
            json!({"owner": owner, "address": "10.32.0.5/12", "gateway": null, "mtu": 1376})
        }
        ("POST", "/v1/ipam/release") | ("POST", "/v1/ipam/gc") => json!({"released": []}),
        ("DELETE", "/v1/dns") => json!({"removed": []}),
        ("GET", "/v1/dns/stats") => serde_json::to_value(DnsStats { entries: 2, ..Default::default() }).unwrap(),
        ("GET", p) if p.starts_with("/v1/dns/lookup?name=") => {
            if p == "/v1/dns/lookup?name=web%20x" {
                json!({"name": "web.weavers.local", "addrs": ["10.0.0.1"]})
            } else {
                return Some((404, error("no such name: nothere.weavers.local")));
            }
        }
        ("POST", "/v1/dns") => return Some((400, error("invalid name \"bad..name\": empty label"))),
        _ => return Some((404, error("no such route"))),
    };
    Some((200, body.to_string()))
}

#[tokio::test]
async fn every_route_sends_its_request_and_reads_its_answer() {
    let dir = TempDir::new("routes");
    let seen = serve(&dir.sock(), daemon);
    let c = Client::new(dir.sock());
    assert_eq!(c.socket(), dir.sock());

    assert_eq!(c.status().await.unwrap().handshakes.completed, 1);
    assert!(c.peers().await.unwrap().is_empty());
    let addrs = PeerAddrs { peers: vec!["192.0.2.1".into(), "[2001:db8::1]:6783".into()] };
    assert_eq!(c.add_peers(&addrs).await.unwrap(), addrs);
    assert_eq!(c.remove_peers(&addrs).await.unwrap(), addrs);
    assert!(c.expose(&ExposeRequest { cidr: None }).await.unwrap().multicast_route_added);
    assert!(c.groups().await.unwrap().is_empty());
    assert_eq!(c.ipam().await.unwrap().free, 10);
    let a = c.allocate(&AllocateRequest { owner: "c1/eth0".into() }).await.unwrap();
    assert_eq!((a.owner.as_str(), a.address.as_str()), ("c1/eth0", "10.32.0.5/12"));
    assert!(c.release(&ReleaseRequest { owner: "c1/eth0".into() }).await.unwrap().released.is_empty());
    assert!(c.ipam_gc(&GcRequest { keep: vec![] }).await.unwrap().released.is_empty());
    assert!(c.ipam_rmpeer(&RmPeerRequest { peer: "h2".into() }).await.unwrap().seeded);
    assert!(c.dns_list().await.unwrap().is_empty());
    let req = DnsRemoveRequest { owner: Some("c1".into()), ..Default::default() };
    assert!(c.dns_remove(&req).await.unwrap().removed.is_empty());
    assert_eq!(c.dns_lookup("web x").await.unwrap().addrs, ["10.0.0.1"]);
    assert_eq!(c.dns_stats().await.unwrap().entries, 2);

    let seen = seen.lock().unwrap().clone();
    let calls: Vec<String> = seen.iter().map(|s| format!("{} {}", s.method, s.path)).collect();
    assert_eq!(
        calls,
        [
            "GET /v1/status",
            "GET /v1/peers",
            "POST /v1/peers",
            "DELETE /v1/peers",
            "POST /v1/expose",
            "GET /v1/groups",
            "GET /v1/ipam",
            "POST /v1/ipam/allocate",
            "POST /v1/ipam/release",
            "POST /v1/ipam/gc",
            "POST /v1/ipam/rmpeer",
            "GET /v1/dns",
            "DELETE /v1/dns",
            "GET /v1/dns/lookup?name=web%20x",
            "GET /v1/dns/stats",
        ]
    );
    // Bodies are JSON, said so, and only when there is one.
    let alloc = &seen[7];
    assert_eq!(alloc.content_type.as_deref(), Some("application/json"));
    assert_eq!(serde_json::from_str::<Value>(&alloc.body).unwrap(), json!({"owner": "c1/eth0"}));
    assert_eq!(seen[0].content_type, None);
    assert_eq!(seen[0].body, "");
    // Absent optional fields are left out.
    assert_eq!(seen[12].body, r#"{"owner":"c1"}"#);
}

#[tokio::test]
async fn raw_answers_come_as_they_came() {
    let dir = TempDir::new("raw");
    serve(&dir.sock(), |_| Some((200, r#"{"b": 1,  "a": [2]}"#.into())));
    let c = Client::new(dir.sock());
    assert_eq!(&c.get_raw("/v1/anything").await.unwrap()[..], br#"{"b": 1,  "a": [2]}"#);
    let sent = c.send_raw(Method::POST, "/v1/x", &json!({"k": "v"})).await.unwrap();
    assert_eq!(weavers_api::client::decode::<Value>(&sent).unwrap(), json!({"b": 1, "a": [2]}));
    let e = weavers_api::client::decode::<Vec<u8>>(&sent).unwrap_err();
    assert!(matches!(e, ClientError::BadAnswer(_)), "{e:?}");
}

#[tokio::test]
async fn refusals_carry_the_daemons_message_and_their_kind() {
    let dir = TempDir::new("refusals");
    serve(&dir.sock(), |s| match s.path.as_str() {
        "/v1/busy" => Some((503, error("the daemon is shutting down"))),
        "/v1/slow" => Some((504, error("upstream timeout"))),
        "/v1/old" => Some((405, error("method POST not allowed on /v1/old"))),
        "/v1/proxy" => Some((502, "<html>bad gateway</html>".into())),
        "/v1/garbage" => Some((200, "not json".into())),
        _ => daemon(s),
    });
    let c = Client::new(dir.sock());

    let e = c.dns_add(&Default::default()).await.unwrap_err();
    assert_eq!(e.to_string(), "invalid name \"bad..name\": empty label");
    assert!(!e.is_unavailable() && !e.is_unknown_route(), "{e:?}");
    match &e {
        ClientError::Api { method, path, status, .. } => {
            assert_eq!((method, path.as_str(), status.as_u16()), (&Method::POST, "/v1/dns", 400));
        }
        other => panic!("{other:?}"),
    }
    let e = c.dns_lookup("nothere").await.unwrap_err();
    assert_eq!(e.to_string(), "no such name: nothere.weavers.local");

    for path in ["/v1/busy", "/v1/slow"] {
        let e = c.get::<Value>(path).await.unwrap_err();
        assert!(e.is_unavailable(), "{path}: {e:?}");
    }
    let e = c.send::<_, Value>(Method::POST, "/v1/old", &json!({})).await.unwrap_err();
    assert!(e.is_unknown_route() && !e.is_unavailable(), "{e:?}");
    let e = c.get::<Value>("/v1/proxy").await.unwrap_err();
    assert!(e.to_string().starts_with("unexpected answer from weaversd: HTTP 502"), "{e}");
    assert!(e.to_string().contains("<html>bad gateway</html>"), "{e}");
    let e = c.get::<Value>("/v1/garbage").await.unwrap_err();
    assert!(matches!(e, ClientError::BadAnswer(_)), "{e:?}");
    assert!(e.to_string().starts_with("unexpected answer from weaversd: GET /v1/garbage: "), "{e}");
}

#[tokio::test]
async fn no_daemon_is_one_clear_line() {
    let dir = TempDir::new("nodaemon");
    let missing = dir.0.join("missing.sock");
    let e = Client::new(&missing).status().await.unwrap_err();
    assert_eq!(e.to_string(), format!("weaversd is not running (no socket at {})", missing.display()));
    assert!(e.is_unavailable());

    // A socket file left by a daemon that stopped: connection refused.
    let stale = dir.sock();
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let e = Client::new(&stale).peers().await.unwrap_err();
    assert_eq!(e.to_string(), format!("weaversd is not running (nothing answers on {})", stale.display()));
    assert!(e.is_unavailable());

    // Something that is not a socket.
    let file = dir.0.join("file");
    std::fs::write(&file, "").unwrap();
    let e = Client::new(&file).status().await.unwrap_err();
    assert!(e.is_unavailable(), "{e:?}");
    assert_eq!(e.to_string().lines().count(), 1, "{e}");
}

#[tokio::test]
async fn a_daemon_that_does_not_answer_times_out() {
    let dir = TempDir::new("timeout");
    serve(&dir.sock(), |_| None);
    let c = Client::new(dir.sock()).with_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let e = c.allocate(&AllocateRequest { owner: "c1/eth0".into() }).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(e, ClientError::Timeout { .. }), "{e:?}");
    assert!(e.is_unavailable());
    assert_eq!(
        e.to_string(),
        format!("weaversd on {} did not answer POST /v1/ipam/allocate within 300ms", dir.sock().display())
    );
}
