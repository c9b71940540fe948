//! End to end: the `weavers` binary against the daemon's real control-API
//! server and a fake data-plane task that answers its `Command`s.
//!
//! The server code is the daemon's own `daemon/src/api.rs` (with the
//! `control.rs` it speaks), compiled into this test: the daemon is a binary
//! crate, so this is how a test outside it can run that code. Should
//! `control.rs` come to use other modules of the daemon, copy it here
//! instead (the server only needs the variants it sends).

#[allow(dead_code)]
#[path = "../../daemon/src/control.rs"]
mod control;

#[allow(dead_code)]
#[path = "../../daemon/src/api.rs"]
mod api;

use std::path::{Path, PathBuf};
use std::process::Output;

use control::Command;
use tokio::sync::{mpsc, oneshot};
use weavers_api::{
    DnsEntryInfo, DnsLookup, DnsRecordInfo, DnsRemoved, DnsStats, DropCount, ExposeResponse, HandshakeCounts,
    PeerAddrs, PeerInfo, PeerState, Status, TrafficCounters,
};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("weavers-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn peer(name: &str, state: PeerState, rtt_us: Option<u64>) -> PeerInfo {
    PeerInfo {
        name: name.into(),
        public_key: format!("{name}pubkeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        endpoint: Some(format!("192.0.2.{}:6783", name.len())),
        state,
        via: None,
        rtt_us,
        session_age_s: Some(12),
        overlay_addr: None,
        traffic: TrafficCounters { tx_frames: 100, tx_bytes: 6400, rx_frames: 90, rx_bytes: 5760 },
    }
}

fn status() -> Status {
    Status {
        name: "alpha".into(),
        public_key: "alphaKEY".into(),
        version: "0.1.0".into(),
        listen: "0.0.0.0:6783".into(),
        bridge: "weavers".into(),
        overlay_mtu: 1376,
        overlay_addr: None,
        peers: vec![peer("beta", PeerState::Connected, Some(1234)), peer("gamma", PeerState::Connecting, None)],
        pending: vec![],
        drops: vec![DropCount { reason: "replay".into(), count: 5 }],
        handshakes: HandshakeCounts { initiated: 3, completed: 2, mac1_refused: 5, ..Default::default() },
        tap_tx_dropped: 0,
        peers_down: 0,
        stalls: 0,
        local_health: 0,
        segmentation: Default::default(),
    }
}

/// Answers like a daemon would; refuses `nowhere.invalid`.
fn fake_data_plane() -> mpsc::Sender<Command> {
    let (tx, mut rx) = mpsc::channel::<Command>(8);
    tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            // Commands added later get no answer (the API says 503).
            #[allow(unreachable_patterns)]
            match cmd {
                Command::Status(r) => {
                    let _ = r.send(status());
                }
                Command::Peers(r) => {
                    let _ = r.send(status().peers);
                }
                Command::AddPeers(p, r) => {
                    let _ = r.send(if p.iter().any(|a| a.starts_with("nowhere.invalid")) {
                        Err("cannot resolve nowhere.invalid: no such host".into())
                    } else {
                        Ok(PeerAddrs { peers: p })
                    });
                }
                Command::RemovePeers(p, r) => {
                    let _ = r.send(Ok(PeerAddrs { peers: p }));
                }
                Command::Expose(cidr, r) => {
                    let _ = r.send(Ok(ExposeResponse {
                        address: cidr.unwrap_or_else(|| "10.32.0.1/12".into()),
                        multicast_route_added: true,
                    }));
                }
                Command::DnsAdd(a, r) => {
                    let _ = r.send(Ok(dns_entry(&a.name, &a.addr.to_string(), a.owner)));
                }
                Command::DnsRemove(sel, r) => {
                    let removed = match sel.name.as_deref() {
                        Some("web") => vec![dns_entry("web", "10.0.0.1", None), dns_entry("web", "10.0.0.2", None)],
                        _ => vec![],
                    };
                    let _ = r.send(Ok(DnsRemoved { removed }));
                }
                Command::DnsList(r) => {
                    let _ = r.send(vec![DnsRecordInfo {
                        name: "web.weavers.local".into(),
                        addrs: vec!["10.0.0.1".into(), "10.0.0.2".into()],
                        origin: "beta".into(),
                        origin_key: "betaKEY".into(),
                        owner: None,
                    }]);
                }
                Command::DnsLookup(name, r) => {
                    let _ = r.send((name == "web").then(|| DnsLookup {
                        name: "web.weavers.local".into(),
                        addrs: vec!["10.0.0.2".into(), "10.0.0.1".into()],
                    }));
                }
                Command::DnsStats(r) => {
                    let _ = r.send(DnsStats { listening: Some("10.32.0.1:53".into()), ..DnsStats::default() });
                }
                _ => {}
            }
        }
    });
    tx
}

fn dns_entry(name: &str, addr: &str, owner: Option<String>) -> DnsEntryInfo {
    DnsEntryInfo {
        name: format!("{name}.weavers.local"),
        addr: addr.into(),
        owner,
        origin: "alpha".into(),
        origin_key: "alphaKEY".into(),
    }
}

/// Run the binary with `args` (blocking, off the runtime's threads).
async fn weavers(socket: Option<&Path>, args: &[&str]) -> Output {
    let socket = socket.map(Path::to_path_buf);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_weavers"));
        cmd.env_remove("WEAVERS_SOCKET");
        if let Some(s) = socket {
            cmd.env("WEAVERS_SOCKET", s);
        }
        cmd.args(&args).output().unwrap()
    })
    .await
    .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_against_the_api_server() {
    let dir = TempDir::new("api");
    let sock = dir.0.join("run/weavers.sock");
    let listener = api::bind(&sock).unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, fake_data_plane(), async {
        let _ = stop_rx.await;
    }));
    let s = Some(sock.as_path());

    // status, human
    let o = weavers(s, &["status"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for want in [
        "name             alpha",
        "overlay MTU      1376",
        "peers: 2 (1 connected, 0 relayed, 1 connecting, 0 unreachable)",
        "handshakes: 3 initiated, 2 completed, 0 failed, 0 rate limited, 5 bad mac1, 0 cookies sent, 0 cookies refused, 0 certificates refused",
        "drops: replay 5",
    ] {
        assert!(text.lines().any(|l| l == want), "missing {want:?} in:\n{text}");
    }

    // status --json: the Status object
    let o = weavers(s, &["status", "--json"]).await;
    assert!(o.status.success());
    let back: Status = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(back, status());

    // peer ls, human: a header and one row per peer
    let o = weavers(s, &["peer", "ls"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("NAME  "));
    assert!(lines[1].starts_with("beta ") && lines[1].contains(" connected "));
    assert!(lines[1].contains(" 1.23 "), "{text}");
    assert!(lines[2].starts_with("gamma") && lines[2].contains(" connecting "));

    // peer ls --json (global flag before the command, socket by flag)
    let sock_arg = sock.to_str().unwrap();
    let o = weavers(None, &["--json", "--socket", sock_arg, "peer", "ls"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["name"], "beta");
    assert_eq!(arr[0]["state"], "connected");
    assert_eq!(arr[0]["endpoint"], "192.0.2.4:6783");
    assert!(arr[0]["public_key"].is_string());
    assert_eq!(arr[0]["rtt_us"], 1234);

    // peer add / rm
    let o = weavers(s, &["peer", "add", "b.example", "[2001:db8::2]:6783"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "added b.example\nadded [2001:db8::2]:6783\n");
    let o = weavers(s, &["peer", "rm", "b.example"]).await;
    assert!(o.status.success());
    assert_eq!(stdout(&o), "removed b.example\n");
    let o = weavers(s, &["peer", "add", "--json", "b.example"]).await;
    assert_eq!(serde_json::from_str::<PeerAddrs>(&stdout(&o)).unwrap().peers, ["b.example"]);

    // refused by the daemon, and refused by the API's own checks
    let o = weavers(s, &["peer", "add", "nowhere.invalid"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "weavers: cannot resolve nowhere.invalid: no such host\n");
    assert!(o.stdout.is_empty());
    let o = weavers(s, &["peer", "add", "bad host:70000"]).await;
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.starts_with("weavers: invalid peer address"), "{err}");
    assert_eq!(err.lines().count(), 1);

    // expose prints just the address
    let o = weavers(s, &["expose"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "10.32.0.1/12\n");
    let o = weavers(s, &["expose", "10.32.0.7/12"]).await;
    assert_eq!(stdout(&o), "10.32.0.7/12\n");
    let o = weavers(s, &["expose", "10.32.0.7"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("invalid CIDR"));
    let o = weavers(s, &["expose", "--json"]).await;
    let e: ExposeResponse = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(e.multicast_route_added);

    // usage errors exit 2 without talking to the daemon
    let o = weavers(s, &["peer", "add"]).await;
    assert_eq!(o.status.code(), Some(2));

    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(!sock.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_commands() {
    let dir = TempDir::new("dns");
    let sock = dir.0.join("weavers.sock");
    let listener = api::bind(&sock).unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, fake_data_plane(), async {
        let _ = stop_rx.await;
    }));
    let s = Some(sock.as_path());

    let o = weavers(s, &["dns", "add", "AAPL.Orders.aex", "239.1.0.1"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "added aapl.orders.aex.weavers.local 239.1.0.1\n");
    let o = weavers(s, &["dns", "add", "--json", "--owner", "c1", "web.weavers.local.", "fd00::1"]).await;
    let e: DnsEntryInfo = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!((e.name.as_str(), e.owner.as_deref()), ("web.weavers.local", Some("c1")));
    let o = weavers(s, &["dns", "add", "bad..name", "10.0.0.1"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("weavers: invalid name \"bad..name\""), "{}", stderr(&o));
    let o = weavers(s, &["dns", "add", "web", "10.0.0"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("invalid address"), "{}", stderr(&o));

    let o = weavers(s, &["dns", "rm", "web"]).await;
    assert_eq!(
        stdout(&o),
        "removed web.weavers.local 10.0.0.1 (added by alpha)\nremoved web.weavers.local 10.0.0.2 (added by alpha)\n"
    );
    let o = weavers(s, &["dns", "rm", "--owner", "gone"]).await;
    assert!(o.status.success());
    assert_eq!(stdout(&o), "nothing removed (no such entry)\n");

    let o = weavers(s, &["dns", "ls"]).await;
    let text = stdout(&o);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().nth(1).unwrap().starts_with("web.weavers.local  10.0.0.1  beta"), "{text}");
    let o = weavers(s, &["dns", "ls", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v[0]["addrs"][1], "10.0.0.2");
    assert_eq!(v[0]["origin"], "beta");

    let o = weavers(s, &["dns", "lookup", "WEB"]).await;
    assert_eq!(stdout(&o), "10.0.0.2\n10.0.0.1\n");
    let o = weavers(s, &["dns", "lookup", "nothere"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "weavers: no such name: nothere.weavers.local\n");

    let o = weavers(s, &["dns", "stats"]).await;
    assert!(stdout(&o).starts_with("listening        10.32.0.1:53\n"), "{}", stdout(&o));

    let o = weavers(None, &["dns", "--help"]).await;
    for word in ["add", "rm", "ls", "lookup", "stats"] {
        assert!(stdout(&o).contains(word), "dns --help lacks {word}");
    }

    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_daemon_is_one_line_and_exit_1() {
    let dir = TempDir::new("nodaemon");

    // No socket file at all.
    let missing = dir.0.join("missing.sock");
    let o = weavers(Some(&missing), &["status"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), format!("weavers: weaversd is not running (no socket at {})\n", missing.display()));
    assert!(o.stdout.is_empty());

    // A socket file left by a crashed daemon: connection refused.
    let stale = dir.0.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let o = weavers(Some(&stale), &["peer", "ls", "--json"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), format!("weavers: weaversd is not running (nothing answers on {})\n", stale.display()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_explains_every_command() {
    let o = weavers(None, &["--help"]).await;
    assert!(o.status.success());
    let text = stdout(&o);
    for word in ["status", "peer", "expose", "--socket", "--json", "WEAVERS_SOCKET"] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
    let o = weavers(None, &["peer", "--help"]).await;
    let text = stdout(&o);
    for word in ["add", "rm", "ls"] {
        assert!(text.contains(word), "peer --help lacks {word}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_generate_prints_one_line_without_a_daemon() {
    let dir = TempDir::new("password");
    let o = weavers(Some(&dir.0.join("missing.sock")), &["password", "generate"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    let text = stdout(&o);
    let line = text.strip_suffix('\n').expect("ends with a newline");
    assert_eq!(line.len(), 43, "{text:?}");
    assert!(!line.contains('\n') && line.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let again = weavers(None, &["password", "generate"]).await;
    assert_ne!(stdout(&again), text, "a new password each time");
}
