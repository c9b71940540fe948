//! The plugin binary against a stand-in daemon, in network namespaces this
//! test makes: a "host" namespace with a bridge `weavers`, and "container"
//! namespaces handed to the plugin as a runtime does
//! (`CNI_NETNS=/var/run/netns/NAME`, the plugin run in the host's
//! namespace). The stand-in serves the control-API routes the plugin uses
//! on a unix socket, with a trivial allocator, and records what it was asked.
//!
//! The real daemons are tested in `tests/tests/cni.rs`. These need root;
//! without it they are skipped unless `CI=true`. Everything made here is
//! removed when a test ends, also when it fails.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use weavers_api::{
    AllocateRequest, Allocation, AllocationRow, ApiError, DnsAddRequest, DnsEntryInfo, DnsRecordInfo, DnsRemoveRequest,
    DnsRemoved, GcRequest, IpamStatus, ReleaseRequest, Released,
};

const PLUGIN: &str = env!("CARGO_BIN_EXE_weavers-cni");
const BRIDGE: &str = "weavers";
const MTU: u32 = 1410;
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 47, 255, 254);
const MY_KEY: &str = "my-key";

// ---------------------------------------------------------------------
// The stand-in daemon

#[derive(Debug, Default)]
struct Fake {
    next: u32,
    allocs: BTreeMap<String, String>,
    /// (name, addr, owner, origin key)
    dns: Vec<(String, String, Option<String>, String)>,
    seeded: bool,
    calls: Vec<String>,
}

type Shared = Arc<Mutex<Fake>>;

fn refuse(msg: &str) -> axum::response::Response {
    (StatusCode::BAD_REQUEST, Json(ApiError { error: msg.to_owned() })).into_response()
}

fn router(state: Shared) -> Router {
    Router::new()
        .route(
            "/v1/status",
            get(|State(s): State<Shared>| async move {
                s.lock().unwrap().calls.push("status".into());
                Json(json!({"name": "h1", "public_key": MY_KEY, "bridge": BRIDGE, "overlay_mtu": MTU}))
            }),
        )
        .route(
            "/v1/ipam",
            get(|State(s): State<Shared>| async move {
                let f = s.lock().unwrap();
                Json(IpamStatus {
                    range: "10.32.0.0/12".into(),
                    seeded: f.seeded,
                    spans: vec![],
                    allocations: f
                        .allocs
                        .iter()
                        .map(|(o, a)| AllocationRow {
                            owner: o.clone(),
                            address: a.split('/').next().unwrap().to_owned(),
                        })
                        .collect(),
                    free: if f.seeded { 1000 } else { 0 },
                    problems: vec![],
                })
            }),
        )
        .route(
            "/v1/ipam/allocate",
            post(|State(s): State<Shared>, Json(req): Json<AllocateRequest>| async move {
                let mut f = s.lock().unwrap();
                f.calls.push(format!("allocate {}", req.owner));
                if !f.seeded {
                    return refuse("the range is not seeded yet");
                }
                let address = match f.allocs.get(&req.owner) {
                    Some(a) => a.clone(),
                    None => {
                        f.next += 1;
                        let a = format!("{}/12", Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 32, 0, 0)) + f.next));
                        f.allocs.insert(req.owner.clone(), a.clone());
                        a
                    }
                };
                Json(Allocation { owner: req.owner, address, gateway: Some(GATEWAY.to_string()), mtu: MTU })
                    .into_response()
            }),
        )
        .route(
            "/v1/ipam/release",
            post(|State(s): State<Shared>, Json(req): Json<ReleaseRequest>| async move {
                let mut f = s.lock().unwrap();
                f.calls.push(format!("release {}", req.owner));
                let released = f
                    .allocs
                    .remove(&req.owner)
                    .map(|address| AllocationRow { owner: req.owner.clone(), address })
                    .into_iter()
                    .collect();
                Json(Released { released })
            }),
        )
        .route(
            "/v1/ipam/gc",
            post(|State(s): State<Shared>, Json(req): Json<GcRequest>| async move {
                let mut f = s.lock().unwrap();
                f.calls.push(format!("gc {:?}", req.keep));
                let gone: Vec<String> = f.allocs.keys().filter(|o| !req.keep.contains(o)).cloned().collect();
                let released = gone
                    .into_iter()
                    .map(|o| AllocationRow { address: f.allocs.remove(&o).unwrap(), owner: o })
                    .collect();
                Json(Released { released })
            }),
        )
        .route(
            "/v1/dns",
            get(|State(s): State<Shared>| async move {
                let f = s.lock().unwrap();
                let recs: Vec<DnsRecordInfo> = f
                    .dns
                    .iter()
                    .map(|(n, a, o, k)| DnsRecordInfo {
                        name: format!("{n}.weavers.local"),
                        addrs: vec![a.clone()],
                        origin: "h".into(),
                        origin_key: k.clone(),
                        owner: o.clone(),
                    })
                    .collect();
                Json(recs)
            })
            .post(|State(s): State<Shared>, Json(req): Json<DnsAddRequest>| async move {
                let mut f = s.lock().unwrap();
                f.calls.push(format!("dns add {} {} {:?}", req.name, req.addr, req.owner));
                if weavers_api::dns_name::normalize(&req.name).is_err() {
                    return refuse("bad name");
                }
                f.dns.push((req.name.clone(), req.addr.clone(), req.owner.clone(), MY_KEY.into()));
                Json(DnsEntryInfo {
                    name: format!("{}.weavers.local", req.name),
                    addr: req.addr,
                    owner: req.owner,
                    origin: "h1".into(),
                    origin_key: MY_KEY.into(),
                })
                .into_response()
            })
            .delete(|State(s): State<Shared>, Json(req): Json<DnsRemoveRequest>| async move {
                let mut f = s.lock().unwrap();
                f.calls.push(format!("dns rm {:?}", req.owner));
                let before = f.dns.len();
                f.dns.retain(|(_, _, o, _)| o.as_ref() != req.owner.as_ref());
                let n = before - f.dns.len();
                Json(DnsRemoved {
                    removed: (0..n)
                        .map(|_| DnsEntryInfo {
                            name: "x".into(),
                            addr: "0.0.0.0".into(),
                            owner: req.owner.clone(),
                            origin: "h1".into(),
                            origin_key: MY_KEY.into(),
                        })
                        .collect(),
                })
            }),
        )
        .with_state(state)
}

/// Serves the stand-in on `sock` from a thread of its own.
fn start_fake(sock: &Path) -> Shared {
    let state: Shared = Arc::new(Mutex::new(Fake { seeded: true, ..Fake::default() }));
    let app = router(state.clone());
    let sock = sock.to_owned();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::UnixListener::bind(&sock).expect("bind the fake daemon's socket");
            ready_tx.send(()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).expect("fake daemon listening");
    state
}

// ---------------------------------------------------------------------
// Namespaces

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn ip_ok(args: &[&str]) -> String {
    ip(args).unwrap_or_else(|e| panic!("{e}"))
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A host namespace with a bridge, a stand-in daemon, and the container
/// namespaces made for it; all removed on drop.
struct Setup {
    prefix: String,
    host: String,
    dir: PathBuf,
    sock: PathBuf,
    fake: Shared,
    made: Vec<String>,
}

impl Setup {
    /// None (a skip) when not root and not CI.
    fn new() -> Option<Setup> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "CI=true: these tests need root (network namespaces)");
            eprintln!("SKIPPED: needs root (network namespaces)");
            return None;
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("wvcni{}t{n}", std::process::id());
        let host = format!("{prefix}h");
        let dir = std::env::temp_dir().join(format!("weavers-cni-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("weavers.sock");
        let fake = start_fake(&sock);
        let mut s = Setup { prefix, host: host.clone(), dir, sock, fake, made: vec![] };
        ip_ok(&["netns", "add", &host]);
        s.made.push(host.clone());
        ip_ok(&["-n", &host, "link", "set", "lo", "up"]);
        ip_ok(&["-n", &host, "link", "add", BRIDGE, "mtu", &MTU.to_string(), "type", "bridge"]);
        ip_ok(&["-n", &host, "link", "set", BRIDGE, "up"]);
        ip_ok(&["-n", &host, "addr", "add", &format!("{GATEWAY}/12"), "dev", BRIDGE]);
        Some(s)
    }

    /// A container namespace `c<name>`; returns its name.
    fn container(&mut self, name: &str) -> String {
        let ns = format!("{}c{name}", self.prefix);
        ip_ok(&["netns", "add", &ns]);
        self.made.push(ns.clone());
        ip_ok(&["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    fn config(&self, extra: Value) -> String {
        let mut c = json!({"cniVersion": "1.1.0", "name": "weavers", "type": "weavers-cni",
                           "socket": self.sock.display().to_string()});
        if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
            c.extend(e);
        }
        c.to_string()
    }

    /// Runs the plugin in the host namespace with `env` and `stdin`.
    fn run(&self, env: &[(&str, &str)], stdin: &str) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.host, PLUGIN]).env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// `CNI_COMMAND=cmd` for container `ns`, id `id`, interface `ifname`.
    fn cni(&self, cmd: &str, ns: &str, id: &str, ifname: &str, conf: &str) -> Output {
        let netns = format!("/var/run/netns/{ns}");
        self.run(
            &[
                ("CNI_COMMAND", cmd),
                ("CNI_CONTAINERID", id),
                ("CNI_NETNS", &netns),
                ("CNI_IFNAME", ifname),
                ("CNI_PATH", "/opt/cni/bin"),
                ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default"),
            ],
            conf,
        )
    }

    fn host_links(&self) -> Vec<String> {
        ip_ok(&["-n", &self.host, "-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_owned())
            .collect()
    }

    fn fake(&self) -> std::sync::MutexGuard<'_, Fake> {
        self.fake.lock().unwrap()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "plugin failed ({}): stdout {} stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", out.stdout))
}

fn ok_empty(out: &Output) {
    assert!(
        out.status.success(),
        "plugin failed ({}): stdout {} stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "expected no output, got {}", String::from_utf8_lossy(&out.stdout));
}

/// The error object of a failed run, checked against the spec's shape.
fn error_of(out: &Output) -> Value {
    assert!(!out.status.success(), "expected a failure, got {}", String::from_utf8_lossy(&out.stdout));
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("error output is not JSON ({e}): {:?}", String::from_utf8_lossy(&out.stdout)));
    assert!(v["cniVersion"].is_string(), "{v}");
    assert!(v["code"].is_u64(), "{v}");
    assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(v["details"].is_string(), "{v}");
    v
}

fn ping(ns: &str, addr: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-n", "-q", "-c", "1", "-W", "1", addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn addr_of(result: &Value) -> String {
    result["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_owned()
}

// ---------------------------------------------------------------------
// Tests

#[test]
fn add_gives_a_working_interface_and_a_spec_result() {
    let Some(mut s) = Setup::new() else { return };
    let c1 = s.container("1");
    let c2 = s.container("2");
    let conf = s.config(json!({"defaultRoute": true}));
    let r1 = ok_json(&s.cni("ADD", &c1, "ctr1", "eth0", &conf));
    let r2 = ok_json(&s.cni("ADD", &c2, "ctr2", "eth0", &conf));

    // The result, field by field as the spec has it.
    assert_eq!(r1["cniVersion"], "1.1.0");
    let ifs = r1["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 2);
    let host_if = ifs[0]["name"].as_str().unwrap();
    assert!(host_if.starts_with("vwv") && host_if.len() == 11, "{host_if}");
    assert!(ifs[0].get("sandbox").is_none());
    assert_eq!(ifs[1]["name"], "eth0");
    assert_eq!(ifs[1]["sandbox"], format!("/var/run/netns/{c1}"));
    assert_eq!(ifs[1]["mtu"], MTU);
    for i in ifs {
        assert_eq!(i["mac"].as_str().unwrap().len(), 17, "{i}");
    }
    let ips = r1["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 1);
    assert_eq!(ips[0]["address"], "10.32.0.1/12");
    assert_eq!(ips[0]["gateway"], GATEWAY.to_string());
    assert_eq!(ips[0]["interface"], 1);
    assert!(ips[0].get("version").is_none(), "no version in 1.x ips");
    let routes = r1["routes"].as_array().unwrap();
    assert!(routes.contains(&json!({"dst": "224.0.0.0/4"})), "{r1}");
    assert!(routes.contains(&json!({"dst": "0.0.0.0/0", "gw": GATEWAY.to_string()})), "{r1}");
    assert_eq!(r1["dns"]["nameservers"], json!([GATEWAY.to_string()]));
    assert_eq!(r1["dns"]["domain"], "weavers.local");

    // The kernel's side.
    let links = ip_ok(&["-n", &s.host, "-d", "link", "show", host_if]);
    assert!(links.contains(&format!("master {BRIDGE}")), "{links}");
    assert!(links.contains("alias weavers-cni:ctr1/eth0"), "{links}");
    assert!(links.contains(&format!("mtu {MTU}")), "{links}");
    let eth0 = ip_ok(&["-n", &c1, "addr", "show", "eth0"]);
    assert!(eth0.contains("10.32.0.1/12") && eth0.contains(&format!("mtu {MTU}")) && eth0.contains("UP"), "{eth0}");
    let routes = ip_ok(&["-n", &c1, "route", "show"]);
    assert!(routes.contains("default via 10.47.255.254 dev eth0"), "{routes}");
    assert!(routes.contains("224.0.0.0/4 dev eth0"), "{routes}");
    assert!(routes.contains("10.32.0.0/12 dev eth0"), "{routes}");

    // Traffic: container to container over the bridge, and to the bridge.
    assert!(ping(&c1, &addr_of(&r2)), "c1 cannot reach c2");
    assert!(ping(&c2, &addr_of(&r1)), "c2 cannot reach c1");
    assert!(ping(&c1, &GATEWAY.to_string()), "c1 cannot reach the gateway");

    // The daemon was asked for an address per attachment and a name per container.
    let f = s.fake();
    assert_eq!(f.allocs.get("ctr1/eth0").map(String::as_str), Some("10.32.0.1/12"));
    assert!(f.dns.iter().any(|(n, a, o, _)| n == "ctr1" && a == "10.32.0.1" && o.as_deref() == Some("cni:ctr1/eth0")));
}

#[test]
fn pod_name_is_the_dns_name_and_other_versions_shape_the_result() {
    let Some(mut s) = Setup::new() else { return };
    let c = s.container("p");
    let netns = format!("/var/run/netns/{c}");
    let conf = s.config(json!({"cniVersion": "0.4.0"}));
    let out = s.run(
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "0123456789abcdef0123456789abcdef"),
            ("CNI_NETNS", &netns),
            ("CNI_IFNAME", "net1"),
            ("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=Web_Server-0"),
        ],
        &conf,
    );
    let r = ok_json(&out);
    assert_eq!(r["cniVersion"], "0.4.0");
    assert_eq!(r["ips"][0]["version"], "4");
    assert!(r["interfaces"][1].get("mtu").is_none(), "no mtu before 1.1.0");
    // No defaultRoute asked: no default route.
    assert!(!r["routes"].as_array().unwrap().iter().any(|x| x["dst"] == "0.0.0.0/0"), "{r}");
    let routes = ip_ok(&["-n", &c, "route", "show"]);
    assert!(!routes.contains("default"), "{routes}");
    let f = s.fake();
    assert!(f.dns.iter().any(|(n, _, _, _)| n == "web-server-0"), "{:?}", f.dns);

    drop(f);
    // Without a pod name, the container ID's first 12 characters.
    let c2 = s.container("q");
    ok_json(&s.cni("ADD", &c2, "FEDCBA9876543210fedcba", "eth0", &s.config(json!({}))));
    assert!(s.fake().dns.iter().any(|(n, _, _, _)| n == "fedcba987654"), "{:?}", s.fake().dns);
}

#[test]
fn del_is_idempotent_and_releases_everything() {
    let Some(mut s) = Setup::new() else { return };
    let c = s.container("d");
    let conf = s.config(json!({}));
    let r = ok_json(&s.cni("ADD", &c, "ctrd", "eth0", &conf));
    let host_if = r["interfaces"][0]["name"].as_str().unwrap().to_owned();
    assert!(s.host_links().contains(&host_if));

    ok_empty(&s.cni("DEL", &c, "ctrd", "eth0", &conf));
    assert!(!s.host_links().contains(&host_if));
    assert!(ip(&["-n", &c, "link", "show", "eth0"]).is_err(), "eth0 is still in the container");
    {
        let f = s.fake();
        assert!(f.allocs.is_empty(), "{:?}", f.allocs);
        assert!(f.dns.is_empty(), "{:?}", f.dns);
    }
    // Again; then with the namespace gone; then without CNI_NETNS.
    ok_empty(&s.cni("DEL", &c, "ctrd", "eth0", &conf));
    ip_ok(&["netns", "del", &c]);
    ok_empty(&s.cni("DEL", &c, "ctrd", "eth0", &conf));
    ok_empty(&s.run(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "ctrd"), ("CNI_IFNAME", "eth0")], &conf));

    // A DEL with prevResult (as runtimes send it) works the same.
    let c2 = s.container("e");
    let r = ok_json(&s.cni("ADD", &c2, "ctre", "eth0", &conf));
    let with_prev = s.config(json!({"prevResult": r}));
    ok_empty(&s.cni("DEL", &c2, "ctre", "eth0", &with_prev));
    assert!(s.fake().allocs.is_empty());
}

#[test]
fn check_passes_after_add_and_fails_when_the_interface_is_gone() {
    let Some(mut s) = Setup::new() else { return };
    let c = s.container("k");
    let conf = s.config(json!({}));
    let r = ok_json(&s.cni("ADD", &c, "ctrk", "eth0", &conf));
    let with_prev = s.config(json!({"prevResult": r.clone()}));
    ok_empty(&s.cni("CHECK", &c, "ctrk", "eth0", &with_prev));
    ok_empty(&s.cni("CHECK", &c, "ctrk", "eth0", &conf)); // without prevResult: the daemon's word

    // prevResult with an address the daemon does not hold.
    let mut wrong = r.clone();
    wrong["ips"][0]["address"] = json!("10.32.9.9/12");
    let e = error_of(&s.cni("CHECK", &c, "ctrk", "eth0", &s.config(json!({"prevResult": wrong}))));
    assert!(e["details"].as_str().unwrap().contains("10.32.9.9"), "{e}");

    // The address removed by hand.
    ip_ok(&["-n", &c, "addr", "flush", "dev", "eth0"]);
    let e = error_of(&s.cni("CHECK", &c, "ctrk", "eth0", &with_prev));
    assert!(e["details"].as_str().unwrap().contains("lacks"), "{e}");

    // The interface deleted.
    ip_ok(&["-n", &c, "link", "del", "eth0"]);
    let e = error_of(&s.cni("CHECK", &c, "ctrk", "eth0", &with_prev));
    assert!(e["details"].as_str().unwrap().contains("does not exist"), "{e}");

    // And after DEL, the daemon holds nothing: CHECK fails on that first.
    ok_empty(&s.cni("DEL", &c, "ctrk", "eth0", &conf));
    let e = error_of(&s.cni("CHECK", &c, "ctrk", "eth0", &with_prev));
    assert!(e["details"].as_str().unwrap().contains("holds no address"), "{e}");
}

#[test]
fn gc_removes_what_is_not_valid() {
    let Some(mut s) = Setup::new() else { return };
    let conf = s.config(json!({}));
    let mut host_ifs = vec![];
    let mut nss = vec![];
    for i in 0..3 {
        let c = s.container(&format!("g{i}"));
        let r = ok_json(&s.cni("ADD", &c, &format!("ctrg{i}"), "eth0", &conf));
        host_ifs.push(r["interfaces"][0]["name"].as_str().unwrap().to_owned());
        nss.push(c);
    }
    // A user's own entry with an owner tag on this host, and a link with
    // the plugin's prefix but not its alias: both must survive.
    s.fake().dns.push(("mine".into(), "239.1.1.1".into(), Some("ctrg2".into()), MY_KEY.into()));
    s.fake().dns.push(("theirs".into(), "10.32.5.5".into(), Some("cni:other/eth0".into()), "other-key".into()));
    ip_ok(&["-n", &s.host, "link", "add", "vwvdeadbeef", "type", "bridge"]);

    let gc = s.config(json!({"cni.dev/valid-attachments": [{"containerID": "ctrg0", "ifname": "eth0"}]}));
    ok_empty(&s.run(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")], &gc));

    let links = s.host_links();
    assert!(links.contains(&host_ifs[0]), "{links:?}");
    assert!(!links.contains(&host_ifs[1]) && !links.contains(&host_ifs[2]), "{links:?}");
    assert!(links.contains(&"vwvdeadbeef".to_owned()), "{links:?}");
    let f = s.fake();
    assert_eq!(f.allocs.keys().cloned().collect::<Vec<_>>(), vec!["ctrg0/eth0".to_string()]);
    let names: Vec<&str> = f.dns.iter().map(|(n, _, _, _)| n.as_str()).collect();
    assert!(names.contains(&"ctrg0") && names.contains(&"mine") && names.contains(&"theirs"), "{names:?}");
    assert!(!names.contains(&"ctrg1") && !names.contains(&"ctrg2"), "{names:?}");
    drop(f);
    ok_empty(&s.cni("CHECK", &nss[0], "ctrg0", "eth0", &conf));

    // GC without the list is refused, and removes nothing.
    let e = error_of(&s.run(&[("CNI_COMMAND", "GC")], &conf));
    assert_eq!(e["code"], 7);
    assert!(s.host_links().contains(&host_ifs[0]));
}

#[test]
fn bad_invocations_create_nothing() {
    let Some(mut s) = Setup::new() else { return };
    let c = s.container("b");
    let netns = format!("/var/run/netns/{c}");
    let conf = s.config(json!({}));
    let links_before = s.host_links();
    let full = |cmd: &'static str| {
        vec![("CNI_COMMAND", cmd), ("CNI_CONTAINERID", "ctrb"), ("CNI_NETNS", netns.as_str()), ("CNI_IFNAME", "eth0")]
    };
    let without = |k: &str| full("ADD").into_iter().filter(|(n, _)| *n != k).collect::<Vec<_>>();

    type Env<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Env, String, u64)> = vec![
        (full("ADD"), "{not json".into(), 6),
        (full("ADD"), "".into(), 6),
        (full("ADD"), r#"{"cniVersion":"0.3.1","name":"weavers","type":"weavers-cni"}"#.into(), 1),
        (full("ADD"), r#"{"cniVersion":"1.1.0","type":"weavers-cni"}"#.into(), 7),
        (full("ADD"), s.config(json!({"defaultRoute": "yes"})), 7),
        (without("CNI_COMMAND"), conf.clone(), 4),
        (full("BOGUS"), conf.clone(), 4),
        (without("CNI_CONTAINERID"), conf.clone(), 4),
        (without("CNI_NETNS"), conf.clone(), 4),
        (without("CNI_IFNAME"), conf.clone(), 4),
        (
            vec![
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "ctrb"),
                ("CNI_NETNS", "/nonexistent"),
                ("CNI_IFNAME", "eth0"),
            ],
            conf.clone(),
            4,
        ),
        (
            vec![("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "ctrb"), ("CNI_NETNS", &netns), ("CNI_IFNAME", "a/b")],
            conf.clone(),
            4,
        ),
    ];
    for (env, stdin, code) in &cases {
        let e = error_of(&s.run(env, stdin));
        assert_eq!(e["code"], *code, "env {env:?} stdin {stdin}: {e}");
    }
    assert_eq!(s.host_links(), links_before);
    let ctr_links = ip_ok(&["-n", &c, "-o", "link", "show"]);
    assert_eq!(ctr_links.lines().count(), 1, "only lo: {ctr_links}");
    let f = s.fake();
    assert!(f.calls.is_empty(), "the daemon was asked: {:?}", f.calls);
    drop(f);

    // An interface name taken in the container: an error, and the address
    // is given back.
    ip_ok(&["-n", &c, "link", "add", "eth0", "type", "bridge"]);
    let e = error_of(&s.cni("ADD", &c, "ctrb", "eth0", &conf));
    assert!(e["details"].as_str().unwrap().contains("already exists"), "{e}");
    assert_eq!(s.host_links(), links_before);
    assert!(s.fake().allocs.is_empty());
}

#[test]
fn without_a_daemon_add_says_try_again_and_del_still_cleans_links() {
    let Some(mut s) = Setup::new() else { return };
    let c = s.container("n");
    let conf = s.config(json!({}));
    let r = ok_json(&s.cni("ADD", &c, "ctrn", "eth0", &conf));
    let host_if = r["interfaces"][0]["name"].as_str().unwrap().to_owned();

    let dead = s.config(json!({"socket": s.dir.join("nobody.sock").display().to_string(), "bridge": BRIDGE}));
    let c2 = s.container("m");
    let links_before = s.host_links();
    let e = error_of(&s.cni("ADD", &c2, "ctrm", "eth0", &dead));
    assert_eq!(e["code"], 11, "{e}");
    assert!(e["details"].as_str().unwrap().contains("nobody.sock"), "{e}");
    assert_eq!(s.host_links(), links_before);

    let e = error_of(&s.cni("DEL", &c, "ctrn", "eth0", &dead));
    assert_eq!(e["code"], 11, "{e}");
    assert!(!s.host_links().contains(&host_if), "the links go even without the daemon");
    // Once the daemon answers again, DEL finishes the job.
    ok_empty(&s.cni("DEL", &c, "ctrn", "eth0", &conf));
    assert!(s.fake().allocs.is_empty());

    let e = error_of(&s.run(&[("CNI_COMMAND", "STATUS"), ("CNI_PATH", "/opt/cni/bin")], &dead));
    assert_eq!(e["code"], 50, "{e}");
}

#[test]
fn status_follows_the_daemons_ipam() {
    let Some(s) = Setup::new() else { return };
    let conf = s.config(json!({}));
    let status = || s.run(&[("CNI_COMMAND", "STATUS"), ("CNI_PATH", "/opt/cni/bin")], &conf);
    ok_empty(&status());
    s.fake().seeded = false;
    let e = error_of(&status());
    assert_eq!(e["code"], 50, "{e}");
    assert!(e["details"].as_str().unwrap().contains("not ready"), "{e}");
    s.fake().seeded = true;
    ok_empty(&status());
    // A configured bridge that does not exist.
    let e = error_of(&s.run(&[("CNI_COMMAND", "STATUS")], &s.config(json!({"bridge": "nosuchbr"}))));
    assert_eq!(e["code"], 50, "{e}");
}

#[test]
fn version_needs_only_the_command() {
    let Some(s) = Setup::new() else { return };
    let out = s.run(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"1.0.0"}"#);
    let v = ok_json(&out);
    assert_eq!(v, json!({"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]}));
    let v = ok_json(&s.run(&[("CNI_COMMAND", "VERSION")], ""));
    assert_eq!(v["cniVersion"], "1.1.0");
}

#[test]
fn twenty_concurrent_adds_on_one_host() {
    let Some(mut s) = Setup::new() else { return };
    let conf = s.config(json!({}));
    let nss: Vec<String> = (0..20).map(|i| s.container(&format!("x{i}"))).collect();
    let results: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = nss
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let (s, conf) = (&s, &conf);
                scope.spawn(move || ok_json(&s.cni("ADD", ns, &format!("ctrx{i}"), "eth0", conf)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut addrs: Vec<String> = results.iter().map(addr_of).collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 20);
    let host_ifs: Vec<&str> = results.iter().map(|r| r["interfaces"][0]["name"].as_str().unwrap()).collect();
    let links = s.host_links();
    assert!(host_ifs.iter().all(|h| links.iter().any(|l| l == h)));
    // Every one works: the first reaches the last.
    assert!(ping(&nss[0], &addr_of(&results[19])));
}
