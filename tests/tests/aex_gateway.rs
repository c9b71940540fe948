//! `aex gateway` and `aex customers` on the overlay: customers and their
//! gateway on h2, an engine on h1. The engine here is a small one made in
//! the test from the library (`aex::Engine` behind the Mold streams of
//! `ARCHITECTURE.md`), so the gateway's side of the contract is checked on
//! its own: orders reach the engine through the orders groups, reports come
//! back to the gateway's unicast socket, every order is answered, and the
//! acks log lists exactly the engine's first acknowledgements. Every
//! datagram is sealed under its stream's key (the test's engine holds the
//! deployment's engine keys); customers log in with their broker/dealer's
//! password from the files `aex logins` made.
//! Build first: `cargo build --workspace && CI=true cargo test -p weavers-tests --test aex_gateway`.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aex::auth::{self, Keyring, Kind, StreamKey, StreamKind};
use aex::events::{Input, Response, SequencedInput};
use aex::stream::{Receiver, Sender, Start};
use aex::symbols::SymbolTable;
use aex::wire::mold::{Packet, ReRequest, Session};
use aex::wire::{input, oe, report};
use aex::{net, Engine, EngineConfig};
use serde_json::Value;
use weavers_tests::procs::{register_aex, AexSecrets};
use weavers_tests::{bins, lab_or_skip, netns, wait_until, Lab};

const GW_PORT: u16 = 9400;

/// (session, client_id, order_id, seq) of every first acknowledgement.
type Acks = Arc<Mutex<BTreeSet<(u32, u64, u64, u64)>>>;

/// A tiny engine: one receiver per orders stream, one report stream per
/// gateway (`r.eng1`), re-requests answered, heartbeats every second. It
/// loses the first data packet of every orders stream and the first report
/// packet to every gateway, so both sides must recover by re-requests.
fn fake_engine(table: SymbolTable, addr: Ipv4Addr, stop: Arc<AtomicBool>, acks: Acks, ring: Keyring) {
    let groups: Vec<Ipv4Addr> = table.iter().map(|s| s.orders_group).collect();
    let orders = net::group_receiver(net::ORDERS_PORT, &groups, addr, true).expect("orders socket");
    let uni = net::unicast_socket(addr, 0, true).expect("unicast socket");
    let me = uni.local_addr().unwrap();
    let gw = ring.gateway(1).expect("gateway 1's key").clone();
    let reports_key = StreamKey::derive(&gw, StreamKind::Reports, &Session::new("r.eng1").unwrap());
    let orders_key = |s: &Session| StreamKey::derive(&gw, StreamKind::Orders, s);
    let seal = |key: &StreamKey, p: &[u8]| {
        let mut d = p.to_vec();
        key.seal(Kind::Packet, me, &mut d);
        d
    };
    let mut clock = auth::RequestClock::default();
    let mut engine = Engine::new(table.indices(), EngineConfig::default());
    let t0 = Instant::now();
    let mut rxs: HashMap<Session, (Receiver, SocketAddr)> = HashMap::new();
    let mut reports: HashMap<u32, (Sender, SocketAddr)> = HashMap::new();
    let mut last_hb = Instant::now();
    let mut lost_orders: std::collections::HashSet<Session> = Default::default();
    let mut lost_reports: std::collections::HashSet<u32> = Default::default();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let now_ns = t0.elapsed().as_nanos() as u64;
        let mut idle = true;
        // Orders packets come on the group socket, and retransmissions of
        // them on the unicast socket (where re-requests are answered too).
        let mut got: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
        while let Ok((n, from)) = orders.recv_from(&mut buf) {
            got.push((buf[..n].to_vec(), from));
        }
        while let Ok((n, from)) = uni.recv_from(&mut buf) {
            if auth::peek(&buf[..n]).map(|k| k.0) != Some(Kind::ReRequest) {
                got.push((buf[..n].to_vec(), from));
                continue;
            }
            idle = false;
            // Only gateway 1's re-requests, sealed for where they come from.
            let Ok(o) = reports_key.open(from, &buf[..n]) else { continue };
            if let Ok(req) = ReRequest::decode(o.body) {
                for (s, _) in reports.values() {
                    let mut out = Vec::new();
                    s.retransmit(&req, &mut out);
                    for p in out {
                        let _ = uni.send_to(&seal(&reports_key, &p), from);
                    }
                }
            }
        }
        for (d, from) in got {
            idle = false;
            let Some((_, session)) = auth::peek(&d) else { continue };
            let Ok(o) = orders_key(&session).open_fresh(from, &d, auth::unix_ns()) else { continue };
            let Ok(p) = Packet::decode(o.body) else { continue };
            if p.message_count() > 0 && lost_orders.insert(p.session) {
                continue;
            }
            let Some(gw) = std::str::from_utf8(&p.session.0[1..4]).ok().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let (rx, src) = rxs.entry(p.session).or_insert_with(|| (Receiver::new(Start::AtOne), from));
            *src = from;
            let mut inputs: Vec<Input> = Vec::new();
            rx.on_packet(&p, now_ns, |_, m| inputs.extend(input::decode_input(m).ok()));
            for inp in inputs {
                let time = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
                let seq = engine.next_seq();
                let out = engine.apply(SequencedInput { seq, epoch: 1, time, input: inp }).expect("apply");
                for resp in &out.responses {
                    let mut gws = match *resp {
                        Response::Accepted(a) => {
                            if a.seq == out.seq {
                                acks.lock().unwrap().insert((a.order.session, a.order.client_id, a.order_id, a.seq));
                            }
                            vec![a.order.session >> 24]
                        }
                        Response::Rejected(r) => vec![r.session >> 24],
                        Response::Cancelled(c) => vec![c.session >> 24],
                        Response::Executed(e) => vec![e.maker.session >> 24, e.taker.session >> 24],
                    };
                    gws.dedup();
                    for g in gws {
                        let entry = reports
                            .entry(g)
                            .or_insert_with(|| (Sender::new(Session::new("r.eng1").unwrap(), 100_000), from));
                        if g == gw {
                            entry.1 = from;
                        }
                        let mut b = Vec::new();
                        report::encode(
                            &report::Report { epoch: out.epoch, seq: out.seq, time: out.time, response: *resp },
                            &mut b,
                        );
                        entry.0.push(&b);
                    }
                }
            }
        }
        for (session, (rx, src)) in &mut rxs {
            let mut reqs = Vec::new();
            rx.poll_requests(*session, now_ns, &mut reqs);
            for req in &reqs {
                let _ = uni.send_to(&auth::seal_rerequest(&orders_key(session), req, me, clock.stamp()), *src);
            }
            // (Never here: the gateway answers every re-request.)
            rx.give_up(now_ns, |_, _| ());
        }
        for (gw, (s, to)) in reports.iter_mut() {
            let mut out = Vec::new();
            s.take_packets(&mut out);
            if !out.is_empty() && lost_reports.insert(*gw) {
                out.remove(0);
            }
            for p in out {
                let _ = uni.send_to(&seal(&reports_key, &p), *to);
            }
        }
        if last_hb.elapsed() >= Duration::from_secs(1) {
            last_hb = Instant::now();
            for (s, to) in reports.values() {
                let _ = uni.send_to(&seal(&reports_key, &s.heartbeat()), *to);
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// `aex ARGS` in host `i`'s namespace, stderr to `log`.
fn spawn_aex(lab: &Lab, i: usize, args: &[&str], log: &Path) -> Child {
    Command::new("ip")
        .args(["netns", "exec", lab.ns(i)])
        .arg(bins::aex())
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawn aex")
}

fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

fn frame(m: &oe::OeMessage) -> Vec<u8> {
    let mut b = Vec::new();
    oe::encode_frame(m, &mut b);
    b
}

fn read_frame(s: &mut TcpStream) -> oe::OeMessage {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64];
    loop {
        if let Some((m, _)) = oe::decode_frame(&buf).expect("a valid frame") {
            if m != oe::OeMessage::Heartbeat {
                return m;
            }
            buf.clear();
            continue;
        }
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A bad password, and another broker/dealer's, are refused; an unknown
/// symbol is rejected by the gateway itself.
fn check_login_and_unknown_symbol(lab: &Lab, gw: SocketAddr, passwords: &str) {
    let pws = aex::app::gateway::login::load_passwords(Path::new(passwords)).unwrap();
    let (p1, p2) = (pws[&1], pws[&2]);
    netns::run_in(lab.ns(2), move || {
        let login = |user: &[u8; 8], password| oe::OeMessage::Login { user: *user, password };
        let refused = |m: oe::OeMessage| {
            let mut s = TcpStream::connect(gw).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(&frame(&m)).unwrap();
            assert_eq!(read_frame(&mut s), oe::OeMessage::LoginRejected(oe::LoginReject::NotAuthorized));
        };
        refused(login(b"b001c009", aex::app::gateway::pad_password("wrong").unwrap()));
        // Broker 2's password does not open broker 1's session.
        refused(login(b"b001c009", p2));
        let mut s = TcpStream::connect(gw).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&frame(&login(b"b001c009", p1))).unwrap();
        assert_eq!(read_frame(&mut s), oe::OeMessage::LoginAccepted { session: 1 << 24 | 1 << 12 | 9 });
        let order = oe::EnterOrder {
            client_id: 5,
            symbol: aex::SymbolRef::Index(999),
            side: aex::Side::Buy,
            price: 100,
            qty: 1,
            kind: aex::OrderType::Limit,
            tif: aex::TimeInForce::Day,
        };
        s.write_all(&frame(&oe::OeMessage::Enter(order))).unwrap();
        match read_frame(&mut s) {
            oe::OeMessage::Rejected { client_id: 5, reason: aex::RejectReason::UnknownSymbol, .. } => {}
            other => panic!("want a local reject, got {other:?}"),
        }
        // Garbage (a frame too long for any message) closes the connection.
        s.write_all(&[0, 200, b'O', 1, 2, 3]).unwrap();
        let mut rest = Vec::new();
        assert!(s.read_to_end(&mut rest).is_ok(), "closed by the gateway (not a read timeout)");
    });
}

/// A lab of two hosts with three symbols registered, and the paths of a run.
struct Setup {
    lab: Lab,
    dir: PathBuf,
    symbols: String,
    table: SymbolTable,
    secrets: AexSecrets,
}

impl Setup {
    fn new() -> Option<Setup> {
        let mut lab = lab_or_skip(2)?;
        lab.start_exposed_mesh(&[]);
        let dir: PathBuf = lab.dir().join("aex");
        std::fs::create_dir_all(&dir).unwrap();
        // Three symbols keep DNS and group joins quick.
        let lines: String = SymbolTable::shipped()
            .iter()
            .take(3)
            .map(|s| format!("{} {} {} {} {}\n", s.index, s.ticker.as_str(), s.orders_group, s.md_group, s.ref_price))
            .collect();
        let path = dir.join("symbols.txt");
        std::fs::write(&path, &lines).unwrap();
        let symbols = path.to_str().unwrap().to_string();
        register_aex(&lab, 1, Some(&path)).expect("aex register");
        let secrets = AexSecrets::make(&dir.join("secrets"), "1", "1-2").expect("aex keys and logins");
        Some(Setup { lab, dir, symbols, table: SymbolTable::parse(&lines).unwrap(), secrets })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Gateway 1 on h2, listening on its overlay address; waits for its status.
    fn gateway(&self) -> Child {
        let listen = SocketAddrV4::new(Lab::overlay(2), GW_PORT).to_string();
        let dns = Lab::overlay(2).to_string();
        let (acks, status, state) = (self.path("acks.log"), self.path("gw.json"), self.path("gw.state.json"));
        let (logins, keys) = (self.secrets.logins(), self.secrets.gw_keys(1));
        let args = [
            "--symbols",
            &self.symbols,
            "gateway",
            "--id",
            "1",
            "--listen",
            &listen,
            "--logins",
            &logins,
            "--keys",
            &keys,
            "--dns",
            &dns,
            "--acks",
            acks.to_str().unwrap(),
            "--status",
            status.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ];
        let _ = std::fs::remove_file(&status);
        let gw = spawn_aex(&self.lab, 2, &args, &self.path("gw.log"));
        assert!(
            wait_until(Duration::from_secs(30), || read_json(&status).is_some()),
            "the gateway writes its status: {}",
            self.gw_log()
        );
        // The engine's joins reach h2 by gossip; orders sent before are re-requested or resent anyway.
        let groups = || self.lab.try_cli_json(2, &["groups", "--json"]).map(|v| v.to_string()).unwrap_or_default();
        wait_until(Duration::from_secs(15), || {
            let g = groups();
            self.table.iter().all(|s| g.contains(&s.orders_group.to_string())) && g.contains("h1")
        });
        gw
    }

    fn gw_log(&self) -> String {
        std::fs::read_to_string(self.path("gw.log")).unwrap_or_default()
    }

    /// `aex customers` on h2 (finding the gateway by name); returns the
    /// summary after checking that every order was answered.
    fn customers(&self, brokers: &str, customers: &str, rate: &str, duration: &str) -> Value {
        if !self.lab.try_cli(1, &["dns", "lookup", "gw1.aex"]).is_ok_and(|o| o.contains(&Lab::overlay(2).to_string())) {
            self.lab.cli_ok(1, &["dns", "add", "gw1.aex", &Lab::overlay(2).to_string()]);
        }
        let gw_name = format!("gw1.aex.weavers.local:{GW_PORT}");
        let dns = Lab::overlay(2).to_string();
        let summary = self.path("summary.json");
        let passwords = self.secrets.passwords();
        let args = [
            "--symbols",
            &self.symbols,
            "customers",
            "--gateway",
            &gw_name,
            "--dns",
            &dns,
            "--brokers",
            brokers,
            "--customers",
            customers,
            "--rate",
            rate,
            "--duration",
            duration,
            "--passwords",
            &passwords,
            "--summary-json",
            summary.to_str().unwrap(),
        ];
        let out = self.lab.host(2).exec(bins::aex().to_str().unwrap(), &args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "aex customers: {stdout}\n{}\ngateway: {}",
            String::from_utf8_lossy(&out.stderr),
            self.gw_log()
        );
        assert!(stdout.contains("acked/s="), "a line a second: {stdout}");
        let s = read_json(&summary).expect("summary JSON");
        eprintln!("customers: {stdout}");
        let n_sessions = {
            let (a, b) = brokers.split_once('-').unwrap_or((brokers, brokers));
            (b.parse::<u64>().unwrap() - a.parse::<u64>().unwrap() + 1) * customers.parse::<u64>().unwrap()
        };
        let sent = s["orders_sent"].as_u64().unwrap();
        assert_eq!(s["sessions"], n_sessions, "{s}");
        let planned = n_sessions as f64 * rate.parse::<f64>().unwrap() * duration.parse::<f64>().unwrap();
        assert!(sent as f64 >= planned * 0.8, "about {planned} orders planned: {s}");
        assert_eq!(s["orders_acked"].as_u64().unwrap() + s["rejects"].as_u64().unwrap(), sent, "all answered: {s}");
        for k in ["p50", "p90", "p99", "p999", "max"] {
            assert!(s["ack_latency_us"][k].as_u64().is_some_and(|v| v > 0), "{k}: {s}");
        }
        assert!(s["executions"].as_u64().is_some(), "{s}");
        s
    }

    /// The acks log: (session, client_id, order_id, seq), checking every line's shape and epoch.
    fn acks_log(&self, epoch: u64) -> BTreeSet<(u32, u64, u64, u64)> {
        let text = std::fs::read_to_string(self.path("acks.log")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let set: BTreeSet<_> = lines
            .iter()
            .map(|l| {
                let f: Vec<u64> =
                    l.split(' ').map(|x| x.parse().unwrap_or_else(|_| panic!("bad acks line {l:?}"))).collect();
                assert_eq!(f.len(), 5, "{l:?}");
                assert_eq!(f[4], epoch, "epoch: {l:?}");
                assert_eq!(f[0] >> 24, 1, "gateway 1's sessions only: {l:?}");
                (f[0] as u32, f[1], f[2], f[3])
            })
            .collect();
        assert_eq!(set.len(), lines.len(), "no line twice");
        set
    }
}

/// The customers' load: a few sessions by default; `AEX_GW_TEST_BROKERS=1-11
/// AEX_GW_TEST_CUSTOMERS=910 AEX_GW_TEST_RATE=1 AEX_GW_TEST_DURATION=10` (with
/// `--release`) makes it a load test of 10,010 sessions.
fn load(setup: &Setup) -> Value {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    setup.customers(
        &env("AEX_GW_TEST_BROKERS", "1-2"),
        &env("AEX_GW_TEST_CUSTOMERS", "3"),
        &env("AEX_GW_TEST_RATE", "20"),
        &env("AEX_GW_TEST_DURATION", "3"),
    )
}

/// SIGTERM to a child; waits for it; its exit status.
fn terminate(child: &mut Child) -> std::process::ExitStatus {
    // SAFETY: a signal to a child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no exit 10 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn customers_through_gateway_to_engine_and_back() {
    let Some(setup) = Setup::new() else { return };
    let stop = Arc::new(AtomicBool::new(false));
    let engine_acks: Acks = Arc::default();
    let engine = {
        let (stop, acks, table) = (stop.clone(), engine_acks.clone(), setup.table.clone());
        let ring = Keyring::load(Path::new(&setup.secrets.engine_keys())).unwrap();
        netns::spawn_in(setup.lab.ns(1), move || fake_engine(table, Lab::overlay(1), stop, acks, ring))
    };
    let mut gw = setup.gateway();
    let gw_addr = SocketAddr::from(SocketAddrV4::new(Lab::overlay(2), GW_PORT));
    check_login_and_unknown_symbol(&setup.lab, gw_addr, &setup.secrets.passwords());

    let s = load(&setup);
    eprintln!("summary: {s}");
    let (sent, acked) = (s["orders_sent"].as_u64().unwrap(), s["orders_acked"].as_u64().unwrap());

    // SIGTERM: the gateway flushes the acks log and exits 0.
    std::thread::sleep(Duration::from_millis(300));
    let code = terminate(&mut gw);
    assert!(code.success(), "gateway exit {code}: {}", setup.gw_log());
    stop.store(true, Ordering::Relaxed);
    engine.join().unwrap();

    let logged = setup.acks_log(1);
    let engine_acks = engine_acks.lock().unwrap().clone();
    let ours: BTreeSet<_> = engine_acks.into_iter().filter(|a| a.0 >> 24 == 1).collect();
    assert_eq!(logged.len() as u64, acked, "one line per acknowledged order");
    assert_eq!(logged, ours, "the acks log is exactly the engine's first acknowledgements");
    let st = read_json(&setup.path("gw.json")).unwrap();
    eprintln!("gateway status: {st}");
    assert_eq!(st["acks"].as_u64(), Some(acked), "{st}");
    assert_eq!(st["orders_in"].as_u64(), Some(sent + 1), "customers' orders and the unknown symbol: {st}");
    assert_eq!(st["stale_epoch_dropped"], 0, "{st}");
    assert_eq!(st["dropped_malformed"], 1, "the garbage frame: {st}");
    assert_eq!(st["logins_refused"], 2, "a wrong password, another broker/dealer's: {st}");
    assert_eq!(st["dropped_unauthenticated"], 0, "{st}");
    assert!(st["rerequests_answered"].as_u64().unwrap() >= 1, "the engine's lost orders packets: {st}");
    assert!(st["report_gaps_requested"].as_u64().unwrap() >= 1, "the lost report packet: {st}");
    assert_eq!(st["report_messages_lost"], 0, "{st}");
}

/// The real `aex engine` on h1: every order answered, and `aex audit` finds
/// every acknowledged order of the gateway's acks log in the engine's journal.
#[test]
fn real_engine_and_audit() {
    let Some(setup) = Setup::new() else { return };
    let (journal, eng_status) = (setup.path("eng1.journal"), setup.path("eng1.json"));
    let h1 = Lab::overlay(1).to_string();
    let engine_keys = setup.secrets.engine_keys();
    let args = [
        "--symbols",
        &setup.symbols,
        "engine",
        "--name",
        "eng1",
        "--journal",
        journal.to_str().unwrap(),
        "--dns",
        &h1,
        "--bind",
        &h1,
        "--status",
        eng_status.to_str().unwrap(),
        "--keys",
        &engine_keys,
    ];
    let eng_log = setup.path("eng1.log");
    let mut engine = spawn_aex(&setup.lab, 1, &args, &eng_log);
    let eng_log_text = || std::fs::read_to_string(&eng_log).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(40), || read_json(&eng_status).is_some()),
        "the engine writes its status: {}",
        eng_log_text()
    );
    let mut gw = setup.gateway();
    let s = load(&setup);
    eprintln!("summary: {s}");
    let acked = s["orders_acked"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let code = terminate(&mut gw);
    assert!(code.success(), "gateway exit {code}: {}", setup.gw_log());
    let logged = setup.acks_log(1);
    assert_eq!(logged.len() as u64, acked, "one line per acknowledged order");
    let st = read_json(&setup.path("gw.json")).unwrap();
    eprintln!("gateway status: {st}");
    assert_eq!(st["acks"].as_u64(), Some(acked), "{st}");
    assert_eq!(st["stale_epoch_dropped"], 0, "{st}");

    // The gateway restarts on its state: it resumes the engine's report
    // stream where it stopped (no gap asked for, no report twice).
    let mut gw = setup.gateway();
    let s2 = load(&setup);
    let acked2 = s2["orders_acked"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let code = terminate(&mut gw);
    assert!(code.success(), "gateway exit {code}: {}", setup.gw_log());
    assert!(setup.gw_log().contains("resuming report streams"), "{}", setup.gw_log());
    let st2 = read_json(&setup.path("gw.json")).unwrap();
    assert_eq!(st2["report_gaps_requested"], 0, "resumed where it stopped: {st2}");
    assert_eq!(st2["acks"].as_u64(), Some(acked2), "{st2}");
    assert_eq!(setup.acks_log(1).len() as u64, acked + acked2, "both runs' acks, none twice");
    let code = terminate(&mut engine);
    assert!(code.success(), "engine exit {code}: {}", eng_log_text());
    let out = Command::new(bins::aex())
        .args(["--symbols", &setup.symbols, "audit", "--journal", journal.to_str().unwrap(), "--json", "--acks"])
        .arg(setup.path("acks.log"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "aex audit: {report}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("audit: {report}");
}
