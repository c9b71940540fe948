//! `aex engine` on the overlay: an engine on h1 trades orders that h2 sends
//! to a symbol's orders group as gateway 1 would, reports come back to h2's
//! unicast socket, market data reaches h2 on the symbol's md group, a gap
//! in the orders stream is re-requested and filled, and the journal replays
//! to the very market-data bytes that were published. Every datagram both
//! ways is sealed under its stream's key (h2 holds gateway 1's key and the
//! market-data key, as gateway 1 and a consumer would).
//! Build first: `cargo build --workspace && CI=true cargo test -p weavers-tests --test aex_engine`.

use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use aex::app::engine::publisher::{route, Dest};
use aex::auth::{self, Keyring, Kind, StreamKey, StreamKind};
use aex::events::{Input, NewOrder, Response};
use aex::net;
use aex::stream::{Receiver, Start};
use aex::wire::input::encode_input;
use aex::wire::mold::{heartbeat, Packet, PacketBuilder, ReRequest, Session};
use aex::wire::{itch, report};
use aex::{Engine, EngineConfig, OrderType, Side, TimeInForce};
use serde_json::Value;
use weavers_tests::procs::{register_aex, AexSecrets};
use weavers_tests::{bins, lab_or_skip, netns, wait_until, Lab};

/// Kills the engine (by its pid) if the test ends before it stops it.
struct Proc(Option<Child>);

impl Proc {
    fn pid(&self) -> i32 {
        self.0.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// SIGTERM, then the exit status and stderr.
    fn terminate(&mut self) -> (std::process::ExitStatus, String) {
        let child = self.0.take().expect("running");
        // SAFETY: a signal to the child this test started.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let out = child.wait_with_output().expect("wait for aex engine");
        (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn status(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn order(session: u32, client_id: u64, side: Side, price: u32, qty: u32) -> Input {
    Input::Enter(NewOrder {
        session,
        client_id,
        symbol: 1,
        side,
        price,
        qty,
        kind: OrderType::Limit,
        tif: TimeInForce::Day,
    })
}

/// The keys h2 holds: gateway 1's orders and reports, market data.
#[derive(Clone)]
struct Keys {
    orders: StreamKey,
    reports: StreamKey,
    md: StreamKey,
}

impl Keys {
    fn load(path: &str) -> Keys {
        let ring = Keyring::load(Path::new(path)).unwrap();
        let gw = ring.gateway(1).unwrap();
        Keys {
            orders: StreamKey::derive(gw, StreamKind::Orders, &Session::new("g001.001").unwrap()),
            reports: StreamKey::derive(gw, StreamKind::Reports, &Session::new("r.eng1").unwrap()),
            md: StreamKey::derive(ring.md().unwrap(), StreamKind::MarketData, &Session::new("md.001").unwrap()),
        }
    }

    /// The body of a datagram from `from` under the key its session names.
    fn open<'a>(&self, from: SocketAddr, d: &'a [u8]) -> Option<(Kind, &'a [u8])> {
        let (_, session) = auth::peek(d)?;
        let key = match session {
            s if s == Session::new("r.eng1").unwrap() => &self.reports,
            s if s == Session::new("md.001").unwrap() => &self.md,
            _ => &self.orders,
        };
        let o = key.open_fresh(from, d, auth::unix_ns()).ok()?;
        Some((o.kind, o.body))
    }
}

/// Orders packet `seq..` of stream g001.001, sealed as sent from `src`.
fn packet(keys: &Keys, src: SocketAddr, seq: u64, inputs: &[Input]) -> Vec<u8> {
    let mut b = PacketBuilder::new(Session::new("g001.001").unwrap(), seq, 1300);
    for i in inputs {
        let mut m = Vec::new();
        encode_input(i, &mut m);
        assert!(b.push(&m));
    }
    let mut p = b.finish();
    keys.orders.seal(Kind::Packet, src, &mut p);
    p
}

fn sealed_heartbeat(keys: &Keys, src: SocketAddr, next: u64) -> Vec<u8> {
    let mut p = heartbeat(Session::new("g001.001").unwrap(), next);
    keys.orders.seal(Kind::Packet, src, &mut p);
    p
}

/// What h2 saw, as a gateway and a market-data consumer.
#[derive(Default)]
struct Seen {
    /// Report messages by number.
    reports: BTreeMap<u64, Vec<u8>>,
    /// Report messages retransmitted on request.
    reports_again: BTreeMap<u64, Vec<u8>>,
    /// Market-data messages by number (md.001).
    md: BTreeMap<u64, Vec<u8>>,
    /// Market-data packets that came by multicast (not retransmitted).
    md_multicast_packets: usize,
    /// Re-requests the engine sent us for the orders stream.
    asked: Vec<ReRequest>,
    /// Where the engine's unicast packets came from.
    engine: Option<SocketAddr>,
}

#[test]
fn engine_trades_reports_publishes_fills_gaps_and_journals() {
    let Some(mut lab) = lab_or_skip(2) else { return };
    lab.start_exposed_mesh(&[]);
    register_aex(&lab, 1, None).expect("aex register");
    let secrets = AexSecrets::make(&lab.dir().join("secrets"), "1", "1").expect("aex keys");
    let keys = Keys::load(&secrets.engine_keys());
    let engine_keys = secrets.engine_keys();

    let journal = lab.dir().join("eng1.journal");
    let status_path = lab.dir().join("eng1.status.json");
    let (h1, h2) = (Lab::overlay(1), Lab::overlay(2));
    let aex_bin = bins::aex();
    let (h1s, journal_s, status_s) =
        (h1.to_string(), journal.to_str().unwrap().to_string(), status_path.to_str().unwrap().to_string());
    let engine_args = [
        "engine",
        "--name",
        "eng1",
        "--only",
        "1-3",
        "--journal",
        &journal_s,
        "--dns",
        &h1s,
        "--bind",
        &h1s,
        "--status",
        &status_s,
        "--keys",
        &engine_keys,
    ];
    let mut engine = Proc(Some(lab.host(1).spawn(aex_bin.to_str().unwrap(), &engine_args)));
    assert!(engine.pid() > 0);
    assert!(
        wait_until(Duration::from_secs(40), || status(&status_path).is_some()),
        "the engine never wrote its status (DNS?): {}",
        engine.terminate().1
    );

    let table = aex::symbols::SymbolTable::shipped();
    let acrn = *table.get(1).unwrap();
    let (s1, s2) = (1 << 24 | 1 << 12 | 1, 1 << 24 | 1 << 12 | 2);
    let inputs = [
        order(s1, 1, Side::Sell, 100, 10),
        order(s2, 1, Side::Buy, 100, 4),
        order(s2, 2, Side::Buy, 50, 1),
        order(s2, 3, Side::Buy, 60, 1),
    ];
    let status_for_h2 = status_path.clone();
    let k = keys.clone();
    let seen = netns::run_in(lab.ns(2), move || {
        let keys = k;
        let uni = net::unicast_socket(h2, 0, false).unwrap();
        let me = uni.local_addr().unwrap();
        let mut clock = auth::RequestClock::default();
        uni.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let md_sock = net::group_receiver(net::MD_PORT, &[acrn.md_group], h2, false).unwrap();
        md_sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let orders = SocketAddr::from(SocketAddrV4::new(acrn.orders_group, net::ORDERS_PORT));
        let session = Session::new("g001.001").unwrap();
        // Until the engine has seen the stream (membership takes a moment
        // to spread), heartbeats: it then starts at message 1.
        let seen_stream = wait_until(Duration::from_secs(20), || {
            uni.send_to(&sealed_heartbeat(&keys, me, 1), orders).unwrap();
            status(&status_for_h2).is_some_and(|s| s["order_streams"].as_u64() >= Some(1))
        });
        assert!(seen_stream, "the engine never saw h2's orders stream: {:?}", status(&status_for_h2));
        // Hostile bytes first: counted and dropped.
        uni.send_to(&[0xde; 7], orders).unwrap();
        uni.send_to(&[0xde; 40], orders).unwrap();
        // Messages 1, 2 and 4 (3 is "lost").
        uni.send_to(&packet(&keys, me, 1, &inputs[..2]), orders).unwrap();
        uni.send_to(&packet(&keys, me, 4, &inputs[3..]), orders).unwrap();

        let mut seen = Seen::default();
        let mut md_rx = Receiver::new(Start::AtOne);
        let md_session = Session::new("md.001").unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline && !(seen.reports.len() == 5 && seen.md.len() == 5 && !md_rx.in_gap()) {
            if let Ok((n, from)) = uni.recv_from(&mut buf) {
                let Some((kind, d)) = keys.open(from, &buf[..n]) else { panic!("a datagram that does not verify") };
                if kind == Kind::ReRequest {
                    let req = ReRequest::decode(d).unwrap();
                    assert_eq!(req.session, session);
                    seen.asked.push(req);
                    // The retransmission: 3 and 4, from the same socket.
                    uni.send_to(&packet(&keys, me, 3, &inputs[2..]), from).unwrap();
                } else if let Ok(p) = Packet::decode(d) {
                    seen.engine = Some(from);
                    if p.session == Session::new("r.eng1").unwrap() {
                        seen.reports.extend(p.messages().map(|(s, m)| (s, m.to_vec())));
                    } else if p.session == md_session {
                        md_rx.on_packet(&p, 0, |s, m| {
                            seen.md.insert(s, m.to_vec());
                        });
                    }
                }
            }
            if let Ok((n, from)) = md_sock.recv_from(&mut buf) {
                let (_, d) = keys.open(from, &buf[..n]).expect("market data that verifies");
                if let Ok(p) = Packet::decode(d) {
                    if p.session == md_session {
                        seen.md_multicast_packets += 1;
                        md_rx.on_packet(&p, 0, |s, m| {
                            seen.md.insert(s, m.to_vec());
                        });
                    }
                }
            }
            // Market data missed (joins spread by gossip): ask the engine,
            // as a consumer would, once its address is known.
            if let Some(engine) = seen.engine {
                let mut reqs = Vec::new();
                md_rx.poll_requests(md_session, nanos(), &mut reqs);
                for req in &reqs {
                    uni.send_to(&auth::seal_rerequest(&keys.md, req, me, clock.stamp()), engine).unwrap();
                }
            }
        }
        // A gateway that lost its reports asks for them again.
        if let Some(engine) = seen.engine {
            let again = ReRequest { session: Session::new("r.eng1").unwrap(), seq: 1, count: 5 };
            uni.send_to(&auth::seal_rerequest(&keys.reports, &again, me, clock.stamp()), engine).unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && seen.reports_again.len() < 5 {
                if let Ok((n, from)) = uni.recv_from(&mut buf) {
                    let Some((_, d)) = keys.open(from, &buf[..n]) else { continue };
                    if let Ok(p) = Packet::decode(d) {
                        if p.session == again.session {
                            seen.reports_again.extend(p.messages().map(|(s, m)| (s, m.to_vec())));
                        }
                    }
                }
            }
        }
        seen
    });

    let (code, stderr) = engine.terminate();
    assert!(code.success(), "aex engine exited with {code}: {stderr}");
    // Written once more on the way out.
    let st = status(&status_path).unwrap();
    let want = [
        ("inputs", 4),
        ("last_seq", 4),
        ("durable_seq", 4),
        ("trades", 1),
        ("reports", 5),
        ("md_messages", 5),
        ("dropped_malformed", 2),
        ("report_rerequests_served", 1),
    ];
    for (k, v) in want {
        assert_eq!(st[k].as_u64(), Some(v), "{k} in {st}");
    }
    assert!(stderr.contains("eng1") && stderr.contains("epoch 1"), "startup line: {stderr}");

    // The hole (3 alone: 4 is held) was asked of h2 and filled.
    assert!(!seen.asked.is_empty(), "no re-request for message 3; status {st}");
    assert_eq!((seen.asked[0].seq, seen.asked[0].count), (3, 1));
    assert!(st["order_gaps_requested"].as_u64() >= Some(1), "{st}");

    // Reports 1..5: four acks and an execution, in input order.
    let reports: Vec<report::Report> = seen.reports.values().map(|m| report::decode(m).unwrap()).collect();
    assert_eq!(seen.reports.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3, 4, 5], "{st}");
    let kinds: Vec<(u64, char)> = reports
        .iter()
        .map(|r| {
            let k = match r.response {
                Response::Accepted(_) => 'A',
                Response::Executed(_) => 'E',
                Response::Rejected(_) => 'J',
                Response::Cancelled(_) => 'C',
            };
            (r.seq, k)
        })
        .collect();
    assert_eq!(kinds, vec![(1, 'A'), (2, 'A'), (2, 'E'), (3, 'A'), (4, 'A')]);
    assert!(reports.iter().all(|r| r.epoch == 1));

    // The journal holds the four inputs; its replay gives the market data
    // h2 received, byte for byte, and the reports.
    let j = aex::journal::read(&journal).unwrap();
    assert_eq!(j.records.iter().map(|r| r.input).collect::<Vec<_>>(), inputs.to_vec());
    let mut e = Engine::new(j.symbols.iter().copied(), EngineConfig::default());
    let (mut md, mut rep) = (Vec::new(), Vec::new());
    for r in &j.records {
        let o = e.apply(*r).unwrap();
        route(&o, &mut Vec::new(), |d, m| match d {
            Dest::Md(1) => md.push(m.to_vec()),
            Dest::Reports(1) => rep.push(m.to_vec()),
            other => panic!("unexpected stream {other:?}"),
        });
    }
    assert_eq!(seen.md.values().cloned().collect::<Vec<_>>(), md, "md.001 as published vs replayed");
    assert_eq!(seen.reports.values().cloned().collect::<Vec<_>>(), rep);
    assert_eq!(seen.reports_again, seen.reports, "reports retransmitted on request");
    assert!(md.iter().all(|m| itch::decode(m).is_ok()));
    assert!(
        seen.md_multicast_packets > 0,
        "no market-data packet (not even a heartbeat) came by multicast; status {st}"
    );

    // Recovery: the engine restarts on its journal in epoch 2 and carries on
    // numbering where it stopped; its history answers re-requests for what
    // the first run published.
    std::fs::remove_file(&status_path).unwrap();
    let mut engine = Proc(Some(lab.host(1).spawn(aex_bin.to_str().unwrap(), &engine_args)));
    assert!(
        wait_until(Duration::from_secs(40), || status(&status_path).is_some()),
        "the restarted engine never wrote its status: {}",
        engine.terminate().1
    );
    assert_eq!(status(&status_path).unwrap()["recovered"], 4);
    let buy = order(s2, 4, Side::Buy, 100, 6);
    let status_for_h2 = status_path.clone();
    let (reports2, md_all) = netns::run_in(lab.ns(2), move || {
        let uni = net::unicast_socket(h2, 0, false).unwrap();
        let me = uni.local_addr().unwrap();
        uni.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let orders = SocketAddr::from(SocketAddrV4::new(acrn.orders_group, net::ORDERS_PORT));
        let seen_stream = wait_until(Duration::from_secs(20), || {
            uni.send_to(&sealed_heartbeat(&keys, me, 5), orders).unwrap();
            status(&status_for_h2).is_some_and(|s| s["order_streams"].as_u64() >= Some(1))
        });
        assert!(seen_stream, "the restarted engine never saw the orders stream");
        uni.send_to(&packet(&keys, me, 5, &[buy]), orders).unwrap();
        let (mut reports, mut md) = (BTreeMap::new(), BTreeMap::new());
        let md_session = Session::new("md.001").unwrap();
        let mut buf = [0u8; 2048];
        let mut asked = false;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && !(reports.len() == 2 && md.len() == 7) {
            let Ok((n, from)) = uni.recv_from(&mut buf) else { continue };
            let Some((_, d)) = keys.open(from, &buf[..n]) else { continue };
            let Ok(p) = Packet::decode(d) else { continue };
            if p.session == Session::new("r.eng1").unwrap() {
                reports.extend(p.messages().map(|(s, m)| (s, m.to_vec())));
                if !asked && reports.len() == 2 {
                    // All of md.001, before and after the restart.
                    let req = ReRequest { session: md_session, seq: 1, count: 7 };
                    uni.send_to(&auth::seal_rerequest(&keys.md, &req, me, auth::unix_ns()), from).unwrap();
                    asked = true;
                }
            } else if p.session == md_session {
                md.extend(p.messages().map(|(s, m)| (s, m.to_vec())));
            }
        }
        (reports, md)
    });
    let (code, stderr) = engine.terminate();
    assert!(code.success(), "restarted aex engine exited with {code}: {stderr}");
    assert!(stderr.contains("epoch 2, next seq 5"), "startup line: {stderr}");
    assert_eq!(reports2.keys().copied().collect::<Vec<_>>(), vec![6, 7], "reports continue at 6");
    let r: Vec<report::Report> = reports2.values().map(|m| report::decode(m).unwrap()).collect();
    assert!(r.iter().all(|r| r.epoch == 2 && r.seq == 5), "{r:?}");
    assert!(matches!(r[1].response, Response::Executed(e) if e.qty == 6));
    let j = aex::journal::read(&journal).unwrap();
    assert_eq!(
        j.records.iter().map(|r| (r.seq, r.epoch)).collect::<Vec<_>>(),
        [(1, 1), (2, 1), (3, 1), (4, 1), (5, 2)]
    );
    let mut e = Engine::new(j.symbols.iter().copied(), EngineConfig::default());
    let mut md = Vec::new();
    for r in &j.records {
        route(&e.apply(*r).unwrap(), &mut Vec::new(), |d, m| {
            if d == Dest::Md(1) {
                md.push(m.to_vec())
            }
        });
    }
    assert_eq!(md_all.into_values().collect::<Vec<_>>(), md, "md.001 across the restart vs the journal's replay");
}

fn nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}
