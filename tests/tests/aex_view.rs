//! AEX market-data consumers on the overlay, fed by the test's own
//! publisher on h1 (MoldUDP64 + ITCH from the `aex` library, sealed under
//! the deployment's `md` key, answering re-requests as an engine does):
//!
//! - `aex record` on h2 recovers deliberately dropped messages by
//!   re-request, and `aex audit` finds the record byte-equal to the replay
//!   of the journal the messages came from;
//! - `aex view` on h2 serves a page that headless Chromium (inside h2's
//!   namespace, driven over the DevTools protocol on a pipe) shows updating
//!   live: a price level after an AddOrder, a trade after an execution.
//!
//! Build first: `cargo build --workspace && CI=true cargo test -p weavers-tests --test aex_view`.
//! Chromium (`/usr/bin/chromium`) is needed for the view test: skipped
//! without it, a failure with CI=true.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aex::auth::{Keyring, Kind, StreamKey, StreamKind};
use aex::events::{Input, MdEvent, NewOrder, Response, SequencedInput};
use aex::matching::{Engine, EngineConfig};
use aex::stream::Sender;
use aex::types::{OrderType, Side, SymbolIndex, TimeInForce};
use aex::wire::itch::{self, ItchMessage};
use aex::wire::mold::ReRequest;
use serde_json::Value;
use weavers_tests::procs::{register_aex, AexSecrets};
use weavers_tests::{bins, is_ci, lab_or_skip, netns, wait_until, Lab};

const SEC: Duration = Duration::from_secs(1);
/// ACRN, the first symbol of the shipped file.
const SYMBOL: SymbolIndex = 1;
const TICKER: &str = "ACRN";

/// A child process killed (SIGTERM, then SIGKILL) when dropped.
struct Proc {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Proc {
    /// Runs `aex ARGS` inside host `i`'s namespace; output to a log in the lab dir.
    fn aex(lab: &Lab, i: usize, name: &str, args: &[&str]) -> Proc {
        let log = lab.dir().join(format!("{name}.log"));
        let f = std::fs::File::create(&log).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", lab.ns(i)])
            .arg(bins::aex())
            .args(args)
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("dup log"))
            .stderr(f)
            .spawn()
            .expect("spawn aex");
        Proc { child, name: name.to_string(), log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM (`ip netns exec` execs the command, so the pid is aex's) and
    /// the exit status within `timeout`.
    fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn assert_running(&mut self) {
        if let Ok(Some(s)) = self.child.try_wait() {
            panic!("{} exited ({s}):\n{}", self.name, self.log());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.terminate(2 * SEC);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the publisher is told.
enum Cmd {
    /// Publish these ITCH messages, one packet each; those whose sequence
    /// number is in `drop` are numbered and kept but never multicast (only
    /// a re-request gets them).
    Publish(Vec<Vec<u8>>, Vec<u64>),
    /// Like `Publish` but as many messages to a packet as fit, all at
    /// once; a packet holding a message of `drop` is not multicast.
    Burst(Vec<Vec<u8>>, Vec<u64>),
    Stop,
}

/// The publisher's counters when it stops.
#[derive(Debug, Default)]
struct PubStats {
    sent: u64,
    dropped: u64,
    rerequests: u64,
    retransmitted_packets: u64,
}

/// An md publisher for [`SYMBOL`] in h1: its unicast socket sends to the
/// group and answers re-requests; heartbeats every 200 ms.
fn publisher(lab: &Lab) -> (mpsc::Sender<Cmd>, std::thread::JoinHandle<PubStats>) {
    let (tx, rx) = mpsc::channel::<Cmd>();
    let me = Lab::overlay(1);
    let group = aex::symbols::SymbolTable::shipped().get(SYMBOL).expect("symbol 1").md_group;
    let ring = Keyring::load(Path::new(&secrets(lab).engine_keys())).expect("the engine's keys");
    let key = StreamKey::derive(ring.md().unwrap(), StreamKind::MarketData, &aex::app::mdfeed::md_session(SYMBOL));
    let h = netns::spawn_in(lab.ns(1), move || {
        let sock: UdpSocket = aex::net::unicast_socket(me, 0, false).expect("unicast socket");
        let local = sock.local_addr().unwrap();
        let seal = |p: &[u8]| {
            let mut d = p.to_vec();
            key.seal(Kind::Packet, local, &mut d);
            d
        };
        sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let to = SocketAddr::from((group, aex::net::MD_PORT));
        let mut s = Sender::new(aex::app::mdfeed::md_session(SYMBOL), aex::stream::HISTORY);
        let mut stats = PubStats::default();
        let mut last_hb = Instant::now();
        let mut buf = [0u8; 2048];
        let mut packets = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(Cmd::Publish(msgs, drop)) => {
                    for m in msgs {
                        let seq = s.push(&m);
                        packets.clear();
                        s.take_packets(&mut packets);
                        if drop.contains(&seq) {
                            stats.dropped += 1;
                            continue;
                        }
                        for p in &packets {
                            sock.send_to(&seal(p), to).expect("send md");
                            stats.sent += 1;
                        }
                    }
                }
                Ok(Cmd::Burst(msgs, drop)) => {
                    for m in msgs {
                        s.push(&m);
                    }
                    packets.clear();
                    s.take_packets(&mut packets);
                    for p in &packets {
                        let d = aex::wire::mold::Packet::decode(p).expect("own packet");
                        if drop.iter().any(|q| (d.seq..d.next_seq()).contains(q)) {
                            stats.dropped += u64::from(d.message_count());
                            continue;
                        }
                        sock.send_to(&seal(p), to).expect("send md");
                        stats.sent += 1;
                    }
                }
                Ok(Cmd::Stop) | Err(mpsc::TryRecvError::Disconnected) => return stats,
                Err(mpsc::TryRecvError::Empty) => {}
            }
            if last_hb.elapsed() >= Duration::from_millis(200) {
                let _ = sock.send_to(&seal(&s.heartbeat()), to);
                last_hb = Instant::now();
            }
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                // Only a re-request sealed under the key, for its sender's address.
                let req = key.open(from, &buf[..n]).ok().filter(|o| o.kind == Kind::ReRequest);
                if let Some(req) = req.and_then(|o| ReRequest::decode(o.body).ok()) {
                    stats.rerequests += 1;
                    packets.clear();
                    s.retransmit(&req, &mut packets);
                    for p in &packets {
                        let _ = sock.send_to(&seal(p), from);
                        stats.retransmitted_packets += 1;
                    }
                }
            }
        }
    });
    (tx, h)
}

/// h1 and h2 meshed and exposed, the AEX names registered (from h1), the
/// deployment's keys made (`secrets`).
fn aex_lab() -> Option<Lab> {
    let mut lab = lab_or_skip(2)?;
    lab.start_exposed_mesh(&[]);
    register_aex(&lab, 1, None).expect("aex register");
    AexSecrets::make(&lab.dir().join("secrets"), "1", "1").expect("aex keys");
    Some(lab)
}

/// The lab's secrets (made by [`aex_lab`]).
fn secrets(lab: &Lab) -> AexSecrets {
    AexSecrets::at(&lab.dir().join("secrets"))
}

/// The flags every consumer on h2 gets.
fn feed_flags(lab: &Lab) -> Vec<String> {
    let me = Lab::overlay(2).to_string();
    let keys = secrets(lab).md_keys();
    ["--only", "1", "--dns", &me, "--bind", &me, "--resolve-wait", "20", "--keys", &keys]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn order(client_id: u64, side: Side, price: u32, qty: u32) -> Input {
    Input::Enter(NewOrder {
        session: 7,
        client_id,
        symbol: SYMBOL,
        side,
        price,
        qty,
        kind: OrderType::Limit,
        tif: TimeInForce::Day,
    })
}

/// A journal of six resting bids and three sells each filling one: 12
/// market-data messages (6 adds, then 3 × execute + trade); returns the
/// journal's records, the encoded messages in stream order and the acks.
fn session() -> (Vec<SequencedInput>, Vec<Vec<u8>>, String) {
    let mut inputs: Vec<Input> = (0..6).map(|i| order(i + 1, Side::Buy, 1800 + i as u32, 10 + i as u32)).collect();
    inputs.extend((0..3).map(|i| order(100 + i, Side::Sell, 1700, 15 - i as u32)));
    replay(inputs)
}

/// The journal records, market data and acks of `inputs` on [`SYMBOL`].
fn replay(inputs: Vec<Input>) -> (Vec<SequencedInput>, Vec<Vec<u8>>, String) {
    let mut engine = Engine::new([SYMBOL], EngineConfig::default());
    let mut records = Vec::new();
    let mut md = Vec::new();
    let mut acks = String::new();
    for (i, input) in inputs.into_iter().enumerate() {
        let rec = SequencedInput { seq: i as u64 + 1, epoch: 3, time: 1_700_000_000_000_000_000 + i as u64, input };
        let out = engine.apply(rec).unwrap();
        for &event in &out.market_data {
            let mut b = Vec::new();
            itch::encode(&ItchMessage { epoch: out.epoch, time: out.time, event }, &mut b);
            md.push(b);
        }
        for r in &out.responses {
            if let Response::Accepted(a) = r {
                acks.push_str(&format!("{} {} {} {} {}\n", a.order.session, a.order.client_id, a.order_id, a.seq, 3));
            }
        }
        records.push(rec);
    }
    (records, md, acks)
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// What one recording session gave.
struct Recorded {
    status: Value,
    report: Value,
    pubstats: PubStats,
    journal: PathBuf,
    out: PathBuf,
}

/// Writes the journal and acks of `(records, md, acks)`, runs `aex record`
/// on h2, publishes `md` from h1 as `publish` says, waits for the recorder
/// to have all of it, stops it with SIGTERM and audits its record.
fn record_session(
    lab: &Lab,
    (records, md, acks): (Vec<SequencedInput>, Vec<Vec<u8>>, String),
    publish: impl FnOnce(Vec<Vec<u8>>) -> Cmd,
    deadline: Duration,
) -> Recorded {
    let total = md.len() as u64;
    let dir = lab.dir().to_path_buf();
    let (out, status, journal, acks_file) =
        (dir.join("md.rec"), dir.join("record.json"), dir.join("eng1.journal"), dir.join("gw1.acks"));
    let mut w = aex::journal::Writer::create(&journal, "eng1", &[SYMBOL]).unwrap();
    for r in &records {
        w.append(r).unwrap();
    }
    w.sync().unwrap();
    std::fs::write(&acks_file, acks).unwrap();

    let mut args = vec!["record".to_string(), "--out".into(), out.display().to_string()];
    args.extend(["--status".into(), status.display().to_string()]);
    args.extend(feed_flags(lab));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut rec = Proc::aex(lab, 2, "record", &args);
    // The recorder is up (its first status) before anything is published.
    assert!(wait_until(20 * SEC, || read_json(&status).is_some()), "no status from aex record:\n{}", rec.log());
    rec.assert_running();

    let (tx, publisher) = publisher(lab);
    tx.send(publish(md)).unwrap();
    let done = wait_until(deadline, || read_json(&status).is_some_and(|s| s["messages"] == total));
    let st = read_json(&status);
    assert!(done, "the recorder did not get all {total} messages: {st:?}\n{}", rec.log());
    let exit = rec.terminate(10 * SEC).expect("aex record ends on SIGTERM");
    assert!(exit.success(), "aex record exit {exit}:\n{}", rec.log());
    tx.send(Cmd::Stop).unwrap();
    let pubstats = publisher.join().unwrap();
    let status = read_json(&status).unwrap();

    let audit = Command::new(bins::aex())
        .args(["audit", "--json", "--journal"])
        .arg(&journal)
        .arg("--record")
        .arg(&out)
        .arg("--acks")
        .arg(&acks_file)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&audit.stdout)
        .unwrap_or_else(|e| panic!("audit printed no JSON ({e}): {}", String::from_utf8_lossy(&audit.stderr)));
    assert_eq!(audit.status.success(), report["ok"] == true, "{report}");
    Recorded { status, report, pubstats, journal, out }
}

#[test]
fn record_recovers_dropped_messages_and_the_audit_passes() {
    let Some(lab) = aex_lab() else { return };
    let s = session();
    assert_eq!(s.1.len(), 12);
    // 1..=5 sent, 6..=8 never multicast, 9..=12 sent.
    let r = record_session(&lab, s, |md| Cmd::Publish(md, vec![6, 7, 8]), 20 * SEC);
    assert!(r.pubstats.rerequests >= 1 && r.pubstats.dropped == 3, "{:?}", r.pubstats);
    let st = &r.status;
    assert_eq!(st["messages"], 12, "{st}");
    assert!(st["gaps_requested"].as_u64().unwrap() >= 1, "{st}");
    assert_eq!(st["gaps_unrecovered"], 0, "{st}");
    assert_eq!(st["dropped_malformed"], 0, "{st}");
    let report = &r.report;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["md_messages_checked"], 12, "{report}");
    assert_eq!(report["md_gaps"], 0, "{report}");
    assert_eq!(report["trades"], 3, "{report}");
    assert_eq!(report["acks_checked"], 9, "{report}");
    assert_eq!(report["rpo_orders"], 0, "{report}");

    // A tampered record fails the audit (exit 1).
    let mut bytes = std::fs::read(&r.out).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    let bad = lab.dir().join("bad.rec");
    std::fs::write(&bad, bytes).unwrap();
    let audit = Command::new(bins::aex())
        .args(["audit", "--json", "--journal"])
        .arg(&r.journal)
        .arg("--record")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(audit.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert_eq!(report["ok"], false, "{report}");
}

#[test]
fn record_keeps_up_with_a_burst_and_recovers_whole_packets() {
    let Some(lab) = aex_lab() else { return };
    // 30,000 resting orders on both sides, then 2,000 that each take one:
    // 34,000 messages, about 38 to a packet, sent at once.
    let mut inputs: Vec<Input> = (0..30_000u64)
        .map(|i| {
            let (side, price) =
                if i % 2 == 0 { (Side::Buy, 1000 + (i % 97) as u32) } else { (Side::Sell, 2000 + (i % 89) as u32) };
            order(i + 1, side, price, 1 + (i % 7) as u32 * 10)
        })
        .collect();
    inputs.extend((0..2_000u64).map(|i| {
        order(100_000 + i, if i % 2 == 0 { Side::Sell } else { Side::Buy }, if i % 2 == 0 { 900 } else { 2200 }, 1)
    }));
    let s = replay(inputs);
    let total = s.1.len() as u64;
    assert_eq!(total, 34_000);
    let drop = vec![1, 500, 17_000, 17_001, 33_999];
    let r = record_session(&lab, s, |md| Cmd::Burst(md, drop), 60 * SEC);
    let (st, report) = (&r.status, &r.report);
    assert_eq!(st["messages"], total, "{st}");
    assert_eq!(st["gaps_unrecovered"], 0, "{st}");
    assert!(r.pubstats.rerequests >= 1, "{:?}", r.pubstats);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["md_messages_checked"], total, "{report}");
    assert_eq!(report["trades"], 2_000, "{report}");
    assert_eq!(report["acks_checked"], 32_000, "{report}");
}

/// `GET path` from inside host `i` (HTTP/1.1, connection closed).
fn http_get(lab: &Lab, i: usize, addr: SocketAddr, path: &str) -> Option<String> {
    let path = path.to_string();
    netns::run_in(lab.ns(i), move || {
        let mut s = TcpStream::connect_timeout(&addr, SEC).ok()?;
        s.set_read_timeout(Some(2 * SEC)).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let (head, body) = out.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_string())
    })
}

/// Headless Chromium inside a namespace, driven over the DevTools protocol
/// on a pipe (`--remote-debugging-pipe`: it reads commands on fd 3 and
/// writes replies on fd 4, NUL-separated JSON).
struct Chromium {
    child: Child,
    to: std::fs::File,
    from: std::fs::File,
    buf: Vec<u8>,
    next_id: u64,
    session: String,
}

impl Chromium {
    fn open(ns: &str, url: &str, profile: &Path) -> Chromium {
        let (cmd_r, cmd_w) = pipe();
        let (rep_r, rep_w) = pipe();
        let (cr, rw) = (cmd_r.as_raw(), rep_w.as_raw());
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns, "chromium", "--headless=new", "--no-sandbox", "--disable-gpu"])
            .args(["--remote-debugging-pipe", "--no-first-run", "--disable-extensions"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let (a, b) = (libc::dup(cr), libc::dup(rw));
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("spawn chromium");
        drop(cmd_r);
        drop(rep_w);
        let mut c = Chromium { child, to: cmd_w.0, from: rep_r.0, buf: Vec::new(), next_id: 0, session: String::new() };
        let targets = c.call("Target.getTargets", serde_json::json!({}), false);
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|v| v.iter().find(|t| t["type"] == "page"))
            .unwrap_or_else(|| panic!("no page target: {targets}"))["targetId"]
            .clone();
        let att = c.call("Target.attachToTarget", serde_json::json!({"targetId": page, "flatten": true}), false);
        c.session = att["sessionId"].as_str().expect("sessionId").to_string();
        c
    }

    fn call(&mut self, method: &str, params: Value, in_page: bool) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut m = serde_json::json!({"id": id, "method": method, "params": params});
        if in_page {
            m["sessionId"] = Value::String(self.session.clone());
        }
        let mut bytes = m.to_string().into_bytes();
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        loop {
            while let Some(at) = self.buf.iter().position(|&b| b == 0) {
                let msg: Vec<u8> = self.buf.drain(..=at).collect();
                let v: Value = serde_json::from_slice(&msg[..msg.len() - 1]).expect("chromium JSON");
                if v["id"] == id {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
            let mut chunk = [0u8; 65536];
            let n = self.from.read(&mut chunk).expect("read from chromium");
            assert!(n > 0, "chromium closed its pipe");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Evaluates a JS expression in the page; its value as a string.
    fn eval(&mut self, expr: &str) -> String {
        let r = self.call("Runtime.evaluate", serde_json::json!({"expression": expr, "returnByValue": true}), true);
        match &r["result"]["value"] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            v => v.to_string(),
        }
    }
}

impl Drop for Chromium {
    /// `Browser.close` (so its helper processes go with it), then SIGKILL
    /// if it is still there after 5 s.
    fn drop(&mut self) {
        let close = serde_json::json!({"id": 0, "method": "Browser.close", "params": {}}).to_string();
        let _ = self.to.write_all(format!("{close}\0").as_bytes());
        let deadline = Instant::now() + 5 * SEC;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (what DevTools sends binary data as).
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

struct Fd(std::fs::File);

impl Fd {
    fn as_raw(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.0.as_raw_fd()
    }
}

fn pipe() -> (Fd, Fd) {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two new descriptors we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0, "pipe2");
    unsafe { (Fd(std::fs::File::from_raw_fd(fds[0])), Fd(std::fs::File::from_raw_fd(fds[1]))) }
}

fn chromium_or_skip() -> bool {
    if Path::new("/usr/bin/chromium").is_file() {
        return true;
    }
    if is_ci() {
        panic!("CI=true and /usr/bin/chromium is missing (`sudo ./test.sh --deps-only` installs it)");
    }
    eprintln!("SKIPPED: /usr/bin/chromium is missing (with CI=true this is a failure)");
    false
}

#[test]
fn view_page_updates_live_in_chromium() {
    if !chromium_or_skip() {
        return;
    }
    let Some(lab) = aex_lab() else { return };
    let listen = SocketAddr::from((Lab::overlay(2), 8080));
    let mut args = vec!["view".to_string(), "--listen".into(), listen.to_string()];
    args.extend(feed_flags(&lab));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut view = Proc::aex(&lab, 2, "view", &args);
    assert!(
        wait_until(20 * SEC, || http_get(&lab, 2, listen, "/api/books").is_some()),
        "aex view does not answer:\n{}",
        view.log()
    );
    view.assert_running();
    let page = http_get(&lab, 2, listen, "/").unwrap();
    assert!(page.contains("EventSource") && !page.contains("src=\"http"), "the page is self-contained");

    let profile = lab.dir().join("chromium-profile");
    let mut chrome = Chromium::open(lab.ns(2), &format!("http://{listen}/"), &profile);
    let text = format!("(document.getElementById('sym-{TICKER}') || {{innerText: ''}}).innerText");
    // The snapshot shows the (empty) book of the symbol.
    assert!(
        wait_until(15 * SEC, || chrome.eval(&text).contains(TICKER)),
        "the page never shows {TICKER}: {:?}",
        chrome.eval("document.body.innerText")
    );
    let empty = chrome.eval(&text);
    assert!(!empty.contains("1830"), "{empty}");

    let (tx, publisher) = publisher(&lab);
    let add = |order_id, side, price, qty| {
        let mut b = Vec::new();
        let event = MdEvent::AddOrder { symbol: SYMBOL, order_id, side, price, qty };
        itch::encode(&ItchMessage { epoch: 1, time: 1, event }, &mut b);
        b
    };
    tx.send(Cmd::Publish(vec![add(1, Side::Buy, 1830, 100), add(2, Side::Sell, 1835, 50)], vec![])).unwrap();
    assert!(
        wait_until(15 * SEC, || {
            let t = chrome.eval(&text);
            t.contains("1830") && t.contains("1835")
        }),
        "the book never shows the levels: {:?}\n{}",
        chrome.eval(&text),
        view.log()
    );
    let before = chrome.eval(&text);
    assert!(before.contains("no trades"), "{before}");

    // An execution of the ask and its trade: the same page (no reload) shows them.
    let mut msgs = Vec::new();
    for event in [
        MdEvent::OrderExecuted { symbol: SYMBOL, order_id: 2, qty: 20, match_id: 1 },
        MdEvent::Trade { symbol: SYMBOL, price: 1835, qty: 20, aggressor: Side::Buy, match_id: 1 },
    ] {
        let mut b = Vec::new();
        itch::encode(&ItchMessage { epoch: 1, time: 2, event }, &mut b);
        msgs.push(b);
    }
    tx.send(Cmd::Publish(msgs, vec![])).unwrap();
    let last = format!("(document.getElementById('last-{TICKER}') || {{textContent: ''}}).textContent");
    assert!(
        wait_until(15 * SEC, || chrome.eval(&last).contains("20 @ 1835")),
        "no trade on the page: {:?}",
        chrome.eval(&text)
    );
    let after = chrome.eval(&text);
    assert_ne!(before, after);
    // AEX_VIEW_SCREENSHOT=FILE.png keeps a picture of the page.
    if let Some(path) = std::env::var_os("AEX_VIEW_SCREENSHOT") {
        let shot = chrome.call("Page.captureScreenshot", serde_json::json!({"format": "png"}), true);
        let png = base64_decode(shot["data"].as_str().unwrap_or_default());
        std::fs::write(path, png).expect("write screenshot");
    }
    assert!(after.contains("30"), "the ask has 30 shares left: {after}");

    // The API agrees.
    let books: Value = serde_json::from_str(&http_get(&lab, 2, listen, "/api/books").unwrap()).unwrap();
    let sym = &books["symbols"][0];
    assert_eq!(sym["ticker"], TICKER, "{books}");
    assert_eq!(sym["bids"], serde_json::json!([[1830, 100]]), "{books}");
    assert_eq!(sym["asks"], serde_json::json!([[1835, 30]]), "{books}");
    assert_eq!(sym["trade_count"], 1, "{books}");
    tx.send(Cmd::Stop).unwrap();
    publisher.join().unwrap();
    drop(chrome);
    view.assert_running();
    let exit = view.terminate(10 * SEC).expect("aex view ends on SIGTERM");
    assert!(exit.success(), "aex view exit {exit}:\n{}", view.log());
}
