//! AEX's streams are authenticated (issue 16): a small exchange over
//! weavers (engine on h1, gateway 1 on h2, customers on h3, the recorder on
//! h4), and an attacker on h3 — a host of the overlay, like any customer's
//! — that sends while orders flow:
//!
//! - a forged report to the gateway (a higher epoch, sealed without the
//!   gateway's key), the same unsealed, and an authentic report sent again
//!   from the attacker's address;
//! - a forged market-data packet and a forged heartbeat (announcing a
//!   billion messages) to the recorder's group;
//! - spoofed re-requests: for the gateway's orders stream and for market
//!   data, sealed under the real keys (as if captured) but for another
//!   address, and unsealed ones.
//!
//! Each changes nothing and is counted as dropped: no failover is seen, no
//! report is fenced out, nothing is retransmitted to the attacker, the
//! recorder neither skips nor loses a message, every order is answered and
//! the audit (journal, record, acks) is clean.
//! Build first: `cargo build --workspace && CI=true cargo test -p weavers-tests --test aex_auth`.

use aex::auth::{self, Keyring, Kind, RootKey, StreamKey, StreamKind};
use aex::events::{Ack, NewOrder, Response};
use aex::stream::Sender;
use aex::symbols::SymbolTable;
use aex::wire::itch::{self, ItchMessage};
use aex::wire::mold::{heartbeat, ReRequest, Session};
use aex::wire::report::{self, Report};
use aex::{MdEvent, OrderType, Side, TimeInForce};
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use weavers_tests::procs::{read_json, register_aex, AexSecrets, Proc};
use weavers_tests::{bins, lab_or_skip, netns, wait_until};

fn s(v: impl ToString) -> String {
    v.to_string()
}

fn overlay(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 40, 0, i as u8)
}

/// The unicast address a process logged (`... WORD ADDR` on its startup line).
fn logged_addr(log: &str, word: &str) -> SocketAddr {
    let at = log.find(word).unwrap_or_else(|| panic!("no {word:?} in the log:\n{log}")) + word.len();
    let addr: String = log[at..].trim_start().chars().take_while(|c| !c.is_whitespace() && *c != ',').collect();
    addr.parse().unwrap_or_else(|_| panic!("{addr:?} after {word:?}"))
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"))
}

/// An epoch-99 acknowledgement of an order of session b001c001, as a
/// deposed or forged primary would send it.
fn report_packet(epoch: u32) -> Vec<u8> {
    let order = NewOrder {
        session: 1 << 24 | 1 << 12 | 1,
        client_id: 1,
        symbol: 1,
        side: Side::Buy,
        price: 100,
        qty: 1,
        kind: OrderType::Limit,
        tif: TimeInForce::Day,
    };
    let rep = Report { epoch, seq: 1, time: 1, response: Response::Accepted(Ack { seq: 1, order_id: 1, order }) };
    let mut s = Sender::new(Session::new("r.eng1").unwrap(), 10);
    let mut b = Vec::new();
    report::encode(&rep, &mut b);
    s.push(&b);
    let mut out = Vec::new();
    s.take_packets(&mut out);
    out.pop().unwrap()
}

fn sealed(key: &StreamKey, from: SocketAddr, body: &[u8]) -> Vec<u8> {
    let mut d = body.to_vec();
    key.seal(Kind::Packet, from, &mut d);
    d
}

#[test]
fn forged_reports_market_data_and_spoofed_rerequests_change_nothing() {
    let Some(mut lab) = lab_or_skip(4) else { return };
    lab.start_exposed_mesh(&[]);
    let dir = lab.dir().to_path_buf();
    let p = |name: &str| dir.join(name).display().to_string();
    register_aex(&lab, 1, None).expect("aex register");
    let secrets = AexSecrets::make(&dir.join("secrets"), "1", "1-2").expect("aex keys and logins");
    let dns = |i: usize| [s("--dns"), overlay(i).to_string()];

    let engine_args = [s("engine"), s("--name"), s("eng1"), s("--journal"), p("j"), s("--status"), p("engine.json")];
    let mut engine =
        Proc::aex(&lab, 1, "engine", &[&engine_args[..], &[s("--keys"), secrets.engine_keys()], &dns(1)].concat())
            .unwrap();
    let record_args =
        [s("record"), s("--out"), p("md"), s("--status"), p("record.json"), s("--keys"), secrets.md_keys()];
    let mut record = Proc::aex(&lab, 4, "record", &[&record_args[..], &dns(4)].concat()).unwrap();
    let gw_listen = format!("{}:7800", overlay(2));
    let gw_args = [s("gateway"), s("--id"), s(1), s("--listen"), gw_listen.clone(), s("--acks"), p("acks")];
    let gw_more = [s("--status"), p("gw.json"), s("--logins"), secrets.logins(), s("--keys"), secrets.gw_keys(1)];
    let mut gateway = Proc::aex(&lab, 2, "gateway", &[&gw_args[..], &gw_more, &dns(2)].concat()).unwrap();
    for (proc_, status) in [(&engine, "engine.json"), (&gateway, "gw.json"), (&record, "record.json")] {
        assert!(
            wait_until(Duration::from_secs(60), || read_json(&dir.join(status)).is_some()),
            "{} is not up:\n{}",
            proc_.name(),
            proc_.log_tail(20)
        );
    }
    let gw_udp = logged_addr(&gateway.log(), "orders from");
    let engine_udp = logged_addr(&engine.log(), "bound");

    let customers_args = [s("customers"), s("--gateway"), gw_listen, s("--brokers"), s("1-2"), s("--customers"), s(5)];
    let more = [s("--rate"), s(5), s("--duration"), s(10), s("--passwords"), secrets.passwords()];
    let mut customers = Proc::aex(
        &lab,
        3,
        "customers",
        &[&customers_args[..], &more, &[s("--summary-json"), p("c.json")], &dns(3)].concat(),
    )
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || read_json(&dir.join("gw.json")).is_some_and(|v| u(&v, "acks") > 20)),
        "no orders acknowledged:\n{}\n{}",
        customers.log_tail(20),
        gateway.log_tail(20)
    );

    // The attack, from h3, while orders flow.
    let ring = Keyring::load(Path::new(&secrets.engine_keys())).unwrap();
    let gw_root = ring.gateway(1).unwrap().clone();
    let md_root = ring.md().unwrap().clone();
    let md_group = SymbolTable::shipped().get(1).unwrap().md_group;
    let heard_by_attacker = netns::run_in(lab.ns(3), move || {
        let sock = aex::net::unicast_socket(overlay(3), 0, false).unwrap();
        let me = sock.local_addr().unwrap();
        let stranger = RootKey::random();
        let r_eng1 = Session::new("r.eng1").unwrap();
        // Reports: forged (another key), unsealed, authentic but from here.
        let forged_key = StreamKey::derive(&stranger, StreamKind::Reports, &r_eng1);
        sock.send_to(&sealed(&forged_key, me, &report_packet(99)), gw_udp).unwrap();
        sock.send_to(&report_packet(99), gw_udp).unwrap();
        let real_reports = StreamKey::derive(&gw_root, StreamKind::Reports, &r_eng1);
        sock.send_to(&sealed(&real_reports, engine_udp, &report_packet(1)), gw_udp).unwrap();
        // Market data: an epoch-99 add far ahead, and a heartbeat announcing
        // a billion messages, both sealed without the md key.
        let md_session = aex::app::mdfeed::md_session(1);
        let forged_md = StreamKey::derive(&stranger, StreamKind::MarketData, &md_session);
        let mut s = Sender::new(md_session, 10);
        let mut add = Vec::new();
        let event = MdEvent::AddOrder { symbol: 1, order_id: 1 << 40, side: Side::Buy, price: 1, qty: 1_000_000 };
        itch::encode(&ItchMessage { epoch: 99, time: 1, event }, &mut add);
        s.push(&add);
        let mut pkts = Vec::new();
        s.take_packets(&mut pkts);
        let group = SocketAddr::from((md_group, aex::net::MD_PORT));
        sock.send_to(&sealed(&forged_md, me, &pkts[0]), group).unwrap();
        sock.send_to(&sealed(&forged_md, me, &heartbeat(md_session, 1_000_000_000)), group).unwrap();
        // Re-requests: under the real keys but sealed for another address
        // (the answer would come here), and unsealed.
        let g001 = Session::new("g001.001").unwrap();
        let orders_key = StreamKey::derive(&gw_root, StreamKind::Orders, &g001);
        let ask = ReRequest { session: g001, seq: 1, count: 1000 };
        sock.send_to(&auth::seal_rerequest(&orders_key, &ask, engine_udp, auth::unix_ns()), gw_udp).unwrap();
        sock.send_to(&ask.encode(), gw_udp).unwrap();
        let md_key = StreamKey::derive(&md_root, StreamKind::MarketData, &md_session);
        let ask_md = ReRequest { session: md_session, seq: 1, count: 1000 };
        let elsewhere = SocketAddr::from((overlay(4), 40000));
        sock.send_to(&auth::seal_rerequest(&md_key, &ask_md, elsewhere, auth::unix_ns()), engine_udp).unwrap();
        sock.send_to(&ask_md.encode(), engine_udp).unwrap();
        // Whatever comes back to the attacker in the next two seconds.
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut heard = 0;
        let mut buf = [0u8; 2048];
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if sock.recv_from(&mut buf).is_ok() {
                heard += 1;
            }
        }
        heard
    });
    assert_eq!(heard_by_attacker, 0, "nothing is sent to the attacker");

    // Each was counted as dropped (the status files are rewritten every second).
    // (An unsealed datagram is not even a sealed one: malformed, unless its
    // last bytes happen to look like a trailer, then it fails the tag.)
    let counted = |name: &str, want: &dyn Fn(u64, u64) -> bool, what: &str| {
        let path = dir.join(name);
        let ok = wait_until(Duration::from_secs(10), || {
            read_json(&path).is_some_and(|v| want(u(&v, "dropped_unauthenticated"), u(&v, "dropped_malformed")))
        });
        assert!(ok, "{name}: want {what} in {:?}", read_json(&path));
    };
    counted("gw.json", &|a, m| a >= 3 && a + m == 5, "3 forged and 2 unsealed dropped");
    counted("record.json", &|a, _| a == 2, "2 forged dropped");
    counted("engine.json", &|a, m| (a, m) == (1, 1), "1 spoofed and 1 unsealed re-request dropped");

    assert!(
        wait_until(Duration::from_secs(60), || !customers.running()),
        "customers did not finish:\n{}",
        customers.log_tail(20)
    );
    let summary = read_json(&dir.join("c.json")).unwrap_or_else(|| panic!("no summary:\n{}", customers.log_tail(20)));
    std::thread::sleep(Duration::from_secs(2));
    for proc_ in [&mut record, &mut gateway, &mut engine] {
        let st = proc_.stop(Duration::from_secs(10));
        assert!(st.is_some_and(|s| s.success()), "{} exits cleanly: {st:?}\n{}", proc_.name(), proc_.log_tail(20));
    }

    // Nothing changed: no failover, nothing fenced out or lost, every order
    // answered, the record and the acks agree with the journal.
    let gw = read_json(&dir.join("gw.json")).unwrap();
    for k in ["failovers_seen", "stale_epoch_dropped", "report_messages_lost", "dropped_stale"] {
        assert_eq!(u(&gw, k), 0, "gateway {k}: {gw}");
    }
    let rec = read_json(&dir.join("record.json")).unwrap();
    for k in ["gaps_unrecovered", "stale_epoch_dropped", "dropped_stale"] {
        assert_eq!(u(&rec, k), 0, "record {k}: {rec}");
    }
    assert_eq!(u(&rec, "epoch"), 1, "the recorder never saw epoch 99: {rec}");
    let eng = read_json(&dir.join("engine.json")).unwrap();
    assert_eq!(u(&eng, "order_messages_lost"), 0, "{eng}");
    let sent = u(&summary, "orders_sent");
    assert!(sent >= 300, "about 500 orders sent: {summary}");
    assert_eq!(u(&summary, "orders_acked") + u(&summary, "rejects"), sent, "every order answered: {summary}");
    let audit = Command::new(bins::aex())
        .args(["audit", "--json", "--journal"])
        .arg(dir.join("j"))
        .arg("--record")
        .arg(dir.join("md"))
        .arg("--acks")
        .arg(dir.join("acks"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&audit.stdout)
        .unwrap_or_else(|e| panic!("audit JSON ({e}): {}", String::from_utf8_lossy(&audit.stderr)));
    assert!(audit.status.success() && report["ok"] == true, "audit: {report:#}");
    assert_eq!(report["acks_checked"], summary["orders_acked"], "every ack in the log: {report}");
    assert_eq!(report["md_gaps"], 0, "{report}");
}
