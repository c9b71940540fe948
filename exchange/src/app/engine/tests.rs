//! The engine's stages wired together without sockets.

use super::durability::{group_commit, LocalJournal};
use super::ingress::{parse_order_session, Action, Ingress};
use super::keys::EngineKeys;
use super::matcher::Matcher;
use super::publisher::{md_session, route, Dest, Publisher, RETRANSMIT_BURST};
use super::stats::Stats;
use super::*;
use crate::auth::{self, Keyring, Kind, RootKey, StreamKey, StreamKind};
use crate::events::*;
use crate::journal;
use crate::matching::{Engine, EngineConfig};
use crate::net;
use crate::types::*;
use crate::wire::input::encode_input;
use crate::wire::mold::{Packet, PacketBuilder, ReRequest, Session};
use crate::wire::{itch, report};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::atomic::Ordering;

const GW1: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 40, 0, 2), 4001));
const GW2: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 40, 0, 3), 4002));
/// The engine's unicast socket.
const ENGINE: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 40, 0, 1), 5000));

fn ring() -> Keyring {
    let text = format!("md {}\ngw.1 {}\ngw.2 {}\n", "01".repeat(32), "02".repeat(32), "03".repeat(32));
    Keyring::parse(&text).unwrap()
}

fn keys() -> EngineKeys {
    EngineKeys::new(&ring(), "eng1", &[1, 2]).unwrap()
}

fn gw_root(g: u8) -> RootKey {
    ring().gateway(g).unwrap().clone()
}

fn orders_key(name: &str) -> StreamKey {
    let s = Session::new(name).unwrap();
    StreamKey::derive(&gw_root(parse_order_session(&s).unwrap().0), StreamKind::Orders, &s)
}

fn md_key(symbol: SymbolIndex) -> StreamKey {
    StreamKey::derive(ring().md().unwrap(), StreamKind::MarketData, &md_session(symbol))
}

fn ingress(symbols: &[SymbolIndex], stats: &Arc<Stats>) -> Ingress {
    Ingress::new(symbols.iter().copied(), stats.clone(), keys(), ENGINE)
}

/// The body of a datagram the engine sent to `to` (sealed for `ENGINE`
/// under its stream's key), None if it does not verify.
fn open_sent(to: SocketAddr, d: &[u8]) -> Option<Vec<u8>> {
    let (_, session) = auth::peek(d)?;
    let key = if session.0.starts_with(b"md.") {
        let s: SymbolIndex = session.to_string()[3..].trim().parse().ok()?;
        md_key(s)
    } else if session == Session::new("r.eng1").unwrap() {
        let g = if to == GW1 { 1 } else { 2 };
        StreamKey::derive(&gw_root(g), StreamKind::Reports, &session)
    } else {
        orders_key(&session.to_string())
    };
    Some(key.open_fresh(ENGINE, d, auth::unix_ns()).ok()?.body.to_vec())
}

fn md_addr(s: SymbolIndex) -> SocketAddr {
    SocketAddr::from(SocketAddrV4::new(Ipv4Addr::new(239, 192, 2, s as u8), net::MD_PORT))
}

fn session(gw: u8, b: u32, c: u32) -> SessionId {
    u32::from(gw) << 24 | b << 12 | c
}

fn order(session: SessionId, client_id: u64, symbol: SymbolIndex, side: Side, price: Price, qty: Qty) -> Input {
    Input::Enter(NewOrder {
        session,
        client_id,
        symbol,
        side,
        price,
        qty,
        kind: OrderType::Limit,
        tif: TimeInForce::Day,
    })
}

/// An orders packet of stream `name`, sealed as sent from `src`.
fn packet(src: SocketAddr, name: &str, seq: u64, inputs: &[Input]) -> Vec<u8> {
    let mut b = PacketBuilder::new(Session::new(name).unwrap(), seq, 1300);
    for i in inputs {
        let mut m = Vec::new();
        encode_input(i, &mut m);
        assert!(b.push(&m));
    }
    let mut p = b.finish();
    orders_key(name).seal(Kind::Packet, src, &mut p);
    p
}

fn publisher(stats: &Arc<Stats>) -> Publisher {
    let mut p = Publisher::new("eng1", [1, 2].map(|s| (s, md_addr(s))), stats.clone(), keys()).unwrap();
    p.set_source(ENGINE);
    p
}

fn count(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Messages of the packets sent to `to`, by session, in order.
fn messages_to(sent: &[(SocketAddr, Vec<u8>)], to: SocketAddr) -> BTreeMap<String, Vec<(u64, Vec<u8>)>> {
    let mut m: BTreeMap<String, Vec<(u64, Vec<u8>)>> = BTreeMap::new();
    for (a, p) in sent {
        if *a == to && auth::peek(p).is_some_and(|k| k.0 == Kind::Packet) {
            let body = open_sent(to, p).expect("sealed for the engine under its stream's key");
            let p = Packet::decode(&body).unwrap();
            m.entry(p.session.to_string().trim().to_string())
                .or_default()
                .extend(p.messages().map(|(s, b)| (s, b.to_vec())));
        }
    }
    m
}

#[test]
fn order_session_names() {
    let s = |n: &str| Session::new(n).unwrap();
    assert_eq!(parse_order_session(&s("g001.042")), Some((1, 42)));
    assert_eq!(parse_order_session(&s("g255.1234")), Some((255, 1234)));
    assert_eq!(parse_order_session(&s("g256.001")), None);
    assert_eq!(parse_order_session(&s("g01.001")), None);
    assert_eq!(parse_order_session(&s("md.001")), None);
    assert_eq!(parse_order_session(&s("g001.0x1")), None);
    assert_eq!(parse_order_session(&s("r.eng1")), None);
}

#[test]
fn names_and_epochs() {
    assert!(check_name("eng1").is_ok());
    assert!(check_name("").is_err());
    assert!(check_name("toolongname").is_err());
    assert!(check_name("a b").is_err());
    assert_eq!(choose_epoch(None, 0, 0).unwrap(), 1);
    assert_eq!(choose_epoch(None, 5, 3).unwrap(), 4);
    assert_eq!(choose_epoch(Some(7), 5, 3).unwrap(), 7);
    assert!(choose_epoch(Some(2), 5, 3).is_err());
}

#[test]
fn routing_follows_the_architecture() {
    let (maker, taker) = (session(1, 1, 1), session(2, 1, 1));
    let exec = |taker| {
        Response::Executed(Execution {
            match_id: 1,
            symbol: 2,
            price: 100,
            qty: 5,
            aggressor: Side::Buy,
            maker: Party { session: maker, client_id: 1, order_id: 1, leaves: 0 },
            taker: Party { session: taker, client_id: 9, order_id: 2, leaves: 0 },
        })
    };
    let md = MdEvent::Trade { symbol: 2, price: 100, qty: 5, aggressor: Side::Buy, match_id: 1 };
    let o = Outputs {
        seq: 7,
        epoch: 3,
        time: 99,
        responses: vec![exec(taker), exec(session(1, 2, 2))],
        market_data: vec![md],
    };
    let mut got = Vec::new();
    route(&o, &mut Vec::new(), |d, b| got.push((d, b.to_vec())));
    let dests: Vec<Dest> = got.iter().map(|(d, _)| *d).collect();
    // Maker's gateway then taker's; a trade within one gateway goes there once.
    assert_eq!(dests, vec![Dest::Md(2), Dest::Reports(1), Dest::Reports(2), Dest::Reports(1)]);
    let mut want = Vec::new();
    itch::encode(&itch::ItchMessage { epoch: 3, time: 99, event: md }, &mut want);
    assert_eq!(got[0].1, want);
    let mut want = Vec::new();
    report::encode(&report::Report { epoch: 3, seq: 7, time: 99, response: exec(taker) }, &mut want);
    assert_eq!((&got[1].1, &got[2].1), (&want, &want));
}

#[test]
fn publisher_releases_only_durable_outputs_and_holds_reports_for_unknown_gateways() {
    let stats = Arc::new(Stats::default());
    let mut p = publisher(&stats);
    let mut m = Matcher::new(Engine::new([1, 2], EngineConfig::default()), 1, 0);
    let (_, o1) = m.sequence(order(session(1, 1, 1), 1, 1, Side::Sell, 100, 10), 5).unwrap();
    let (_, o2) = m.sequence(order(session(2, 1, 1), 1, 1, Side::Buy, 100, 4), 6).unwrap();
    p.on_outputs(o1);
    p.on_outputs(o2);
    let mut out = Vec::new();
    p.on_durable(0, &mut out);
    assert!(out.is_empty() && p.pending() == 2);
    p.on_durable(1, &mut out);
    // Seq 1: an add on md.001; the ack for gateway 1 waits for its address.
    assert_eq!(messages_to(&out, md_addr(1))["md.001"].len(), 1);
    assert_eq!(out.len(), 1);
    out.clear();
    p.on_gateway(1, GW1, &mut out);
    assert_eq!(messages_to(&out, GW1)["r.eng1"].iter().map(|m| m.0).collect::<Vec<_>>(), vec![1]);
    out.clear();
    p.on_durable(2, &mut out);
    // Seq 2: executed + trade on md.001; gateway 1 gets the execution, gateway 2 (unknown) waits.
    assert_eq!(messages_to(&out, md_addr(1))["md.001"].iter().map(|m| m.0).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(messages_to(&out, GW1)["r.eng1"].iter().map(|m| m.0).collect::<Vec<_>>(), vec![2]);
    assert_eq!((p.next_seq(Dest::Reports(2)), p.pending()), (3, 0));
    assert_eq!((count(&stats.md_messages), count(&stats.reports), count(&stats.trades)), (3, 4, 1));
    out.clear();
    p.on_gateway(2, GW2, &mut out);
    assert_eq!(messages_to(&out, GW2)["r.eng1"].iter().map(|m| m.0).collect::<Vec<_>>(), vec![1, 2]);
    // Heartbeats: every md stream and both gateways, with their next numbers.
    out.clear();
    p.heartbeats(&mut out);
    let hb: BTreeMap<SocketAddr, u64> =
        out.iter().map(|(a, b)| (*a, Packet::decode(&open_sent(*a, b).unwrap()).unwrap().next_seq())).collect();
    assert_eq!(hb, BTreeMap::from([(md_addr(1), 4), (md_addr(2), 1), (GW1, 3), (GW2, 3)]));
    // Re-requests: md from anyone, reports by the gateway's address only.
    out.clear();
    let anyone: SocketAddr = "10.40.0.9:5000".parse().unwrap();
    p.on_rerequest(anyone, &ReRequest { session: md_session(1), seq: 2, count: 2 }, 10, &mut out);
    assert_eq!(messages_to(&out, anyone)["md.001"].iter().map(|m| m.0).collect::<Vec<_>>(), vec![2, 3]);
    let r = ReRequest { session: Session::new("r.eng1").unwrap(), seq: 1, count: 5 };
    p.on_rerequest(anyone, &r, 10, &mut out);
    assert_eq!(out.len(), 1, "reports are not served to strangers");
    p.on_rerequest(GW2, &r, 10, &mut out);
    assert_eq!(messages_to(&out, GW2)["r.eng1"].len(), 2);
    assert_eq!(count(&stats.md_rerequests_served), 1);
    assert_eq!(count(&stats.report_rerequests_served), 1);
    assert_eq!(count(&stats.rerequests_unknown), 1);
}

#[test]
fn retransmissions_are_rate_limited() {
    let stats = Arc::new(Stats::default());
    let mut p = publisher(&stats);
    let mut m = Matcher::new(Engine::new([1, 2], EngineConfig::default()), 1, 0);
    for i in 0..2000 {
        let (_, o) = m.sequence(order(session(1, 1, 1), i, 1, Side::Sell, 100 + i as u32, 1), 1).unwrap();
        p.on_outputs(o);
    }
    let mut out = Vec::new();
    p.on_durable(2000, &mut out);
    let mut served = 0;
    for i in 0..100 {
        out.clear();
        p.on_rerequest(GW1, &ReRequest { session: md_session(1), seq: 1 + i * 10, count: 1000 }, 0, &mut out);
        served += out.len();
    }
    assert_eq!(served, RETRANSMIT_BURST as usize);
    assert!(count(&stats.rerequests_throttled) > 0);
    // Market data's budget spent, a gateway's report re-request is still served.
    for i in 0..20 {
        let (_, o) = m.sequence(order(session(1, 1, 1), 5000 + i, 1, Side::Buy, 1, 1), 1).unwrap();
        p.on_outputs(o);
    }
    out.clear();
    p.on_gateway(1, GW1, &mut out);
    p.on_durable(2020, &mut out);
    out.clear();
    let reports = Session::new("r.eng1").unwrap();
    p.on_rerequest(GW1, &ReRequest { session: reports, seq: 1, count: 5 }, 0, &mut out);
    assert!(!out.is_empty(), "reports have a budget of their own");
}

/// Everything a run sends, and its journal.
struct Run {
    sent: Vec<(SocketAddr, Vec<u8>)>,
    journal: PathBuf,
}

/// Drives ingress -> matcher -> journal -> publisher by hand.
fn pipeline(dir: &Path, datagrams: &[(SocketAddr, Vec<u8>)], stats: &Arc<Stats>) -> Run {
    let journal = dir.join("journal");
    let opened = open_journal(&journal, "eng1", &[1, 2]).unwrap();
    let mut p = publisher(stats);
    let rec = replay(&opened.records, &[1, 2], &mut p).unwrap();
    let last_epoch = opened.records.last().map_or(0, |r| r.epoch);
    let epoch = choose_epoch(None, opened.records.len(), last_epoch).unwrap();
    let mut m = Matcher::new(rec.engine, epoch, rec.last_time);
    let mut d = LocalJournal(opened.writer);
    let mut ingress = ingress(&[1, 2], stats);
    let (mut actions, mut sent) = (Vec::new(), Vec::new());
    let mut now = 1_000;
    for (src, bytes) in datagrams {
        now += 1_000_000;
        ingress.on_datagram(*src, bytes, now, &mut actions);
        ingress.tick(now, &mut actions);
        let mut records = Vec::new();
        for a in actions.drain(..) {
            match a {
                Action::Deliver(input) => {
                    let (rec, out) = m.sequence(input, now).unwrap();
                    p.on_outputs(out);
                    records.push(rec);
                }
                Action::Gateway(g, addr) => p.on_gateway(g, addr, &mut sent),
                Action::Serve(from, req) => p.on_rerequest(from, &req, now, &mut sent),
                Action::Ask(to, sealed) => sent.push((to, sealed)),
            }
        }
        if !records.is_empty() {
            let seq = group_commit(&mut d, records.into_iter()).unwrap();
            p.on_durable(seq, &mut sent);
        }
    }
    Run { sent, journal }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aex-engine-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn pipeline_sequences_journals_and_publishes_like_a_replay() {
    let dir = temp_dir("pipeline");
    let stats = Arc::new(Stats::default());
    let (a, b) = (session(1, 1, 1), session(2, 1, 1));
    let datagrams = vec![
        (GW1, packet(GW1, "g001.001", 1, &[order(a, 1, 1, Side::Sell, 100, 10), order(a, 2, 1, Side::Sell, 101, 10)])),
        // Gateway 2 starts late (at 5); its 6 is lost: 7 waits for it.
        (GW2, packet(GW2, "g002.001", 5, &[order(b, 1, 1, Side::Buy, 100, 3)])),
        (GW2, packet(GW2, "g002.001", 7, &[order(b, 3, 1, Side::Buy, 101, 20)])),
        // Garbage, a foreign symbol, another gateway's session, an altered packet.
        (GW1, vec![1, 2, 3]),
        (GW1, packet(GW1, "g001.003", 3, &[order(a, 3, 3, Side::Buy, 1, 1)])),
        (GW1, packet(GW1, "g001.001", 3, &[order(b, 9, 1, Side::Buy, 1, 1)])),
        (GW1, {
            let mut p = packet(GW1, "g001.001", 4, &[order(a, 4, 1, Side::Buy, 1, 1)]);
            p[25] ^= 1;
            p
        }),
        // The retransmission of 6..7 on the unicast socket, from the same address.
        (GW2, packet(GW2, "g002.001", 6, &[order(b, 2, 2, Side::Buy, 50, 1), order(b, 3, 1, Side::Buy, 101, 20)])),
    ];
    let run = pipeline(&dir, &datagrams, &stats);
    // The hole (6 alone: 7 is held) was asked of gateway 2's address.
    let asks: Vec<_> = run.sent.iter().filter(|(_, b)| auth::peek(b).is_some_and(|k| k.0 == Kind::ReRequest)).collect();
    assert_eq!(asks.len(), 1);
    let opened = orders_key("g002.001").open_fresh(ENGINE, &asks[0].1, auth::unix_ns()).expect("sealed by the engine");
    let ask = ReRequest::decode(opened.body).unwrap();
    assert_eq!((asks[0].0, ask.seq, ask.count), (GW2, 6, 1));
    assert_eq!(count(&stats.dropped_malformed), 1);
    assert_eq!(count(&stats.dropped_unauthenticated), 1);
    assert_eq!(count(&stats.dropped_foreign), 2);
    // (The foreign symbol's packet is refused before it makes a stream.)
    assert_eq!(count(&stats.order_streams), 2);

    let j = journal::read(&run.journal).unwrap();
    let kinds: Vec<(SessionId, u64)> = j
        .records
        .iter()
        .map(|r| match r.input {
            Input::Enter(o) => (o.session, o.client_id),
            _ => panic!(),
        })
        .collect();
    assert_eq!(kinds, vec![(a, 1), (a, 2), (b, 1), (b, 2), (b, 3)]);
    assert!(j.records.windows(2).all(|w| w[0].time <= w[1].time && w[0].epoch == 1));

    // What went out on md equals a fresh replay of the journal, numbered from 1.
    let mut e = Engine::new([1, 2], EngineConfig::default());
    let mut want: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut reports: BTreeMap<u8, Vec<Vec<u8>>> = BTreeMap::new();
    for r in &j.records {
        let o = e.apply(*r).unwrap();
        route(&o, &mut Vec::new(), |d, m| match d {
            Dest::Md(s) => want.entry(md_session(s).to_string().trim().to_string()).or_default().push(m.to_vec()),
            Dest::Reports(g) => reports.entry(g).or_default().push(m.to_vec()),
        });
    }
    let mut got: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for addr in [md_addr(1), md_addr(2)] {
        for (s, msgs) in messages_to(&run.sent, addr) {
            assert_eq!(msgs.iter().map(|m| m.0).collect::<Vec<_>>(), (1..=msgs.len() as u64).collect::<Vec<_>>());
            got.insert(s, msgs.into_iter().map(|m| m.1).collect());
        }
    }
    assert_eq!(got, want);
    assert_eq!(count(&stats.trades), 3);
    for (g, addr) in [(1u8, GW1), (2, GW2)] {
        let msgs = messages_to(&run.sent, addr).remove("r.eng1").unwrap();
        assert_eq!(msgs.into_iter().map(|m| m.1).collect::<Vec<_>>(), reports[&g], "gateway {g}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn recovery_continues_the_numbering_in_a_new_epoch() {
    let dir = temp_dir("recovery");
    let stats = Arc::new(Stats::default());
    let a = session(1, 1, 1);
    let first = vec![(GW1, packet(GW1, "g001.001", 1, &[order(a, 1, 1, Side::Sell, 100, 10)]))];
    let run1 = pipeline(&dir, &first, &stats);
    let second = vec![(GW1, packet(GW1, "g001.001", 2, &[order(a, 2, 1, Side::Buy, 100, 4)]))];
    let run2 = pipeline(&dir, &second, &stats);
    let j = journal::read(&run1.journal).unwrap();
    assert_eq!(j.records.iter().map(|r| (r.seq, r.epoch)).collect::<Vec<_>>(), vec![(1, 1), (2, 2)]);
    // md.001: the add was message 1 before the restart; the execution and trade are 2 and 3 after it.
    let md = messages_to(&run2.sent, md_addr(1)).remove("md.001").unwrap();
    assert_eq!(md.iter().map(|m| m.0).collect::<Vec<_>>(), vec![2, 3]);
    // Gateway 1's reports continue at 2 (ack) and 3 (execution).
    let r = messages_to(&run2.sent, GW1).remove("r.eng1").unwrap();
    assert_eq!(r.iter().map(|m| m.0).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(report::decode(&r[0].1).unwrap().epoch, 2);
    // A journal of another engine or other symbols is refused.
    assert!(open_journal(&run1.journal, "eng2", &[1, 2]).is_err());
    assert!(open_journal(&run1.journal, "eng1", &[1]).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ingress_gives_up_on_old_gaps_and_passes_rerequests_on() {
    let stats = Arc::new(Stats::default());
    let mut ingress = ingress(&[1], &stats);
    let a = session(1, 1, 1);
    let mut out = Vec::new();
    ingress.on_datagram(GW1, &packet(GW1, "g001.001", 1, &[order(a, 1, 1, Side::Buy, 1, 1)]), 0, &mut out);
    assert_eq!(out, vec![Action::Gateway(1, GW1), Action::Deliver(order(a, 1, 1, Side::Buy, 1, 1))]);
    out.clear();
    // The gap is asked for as soon as it is seen, not at the next tick.
    ingress.on_datagram(GW1, &packet(GW1, "g001.001", 4, &[order(a, 4, 1, Side::Buy, 1, 1)]), 1, &mut out);
    let [Action::Ask(to, sealed)] = &out[..] else { panic!("one re-request: {out:?}") };
    let opened = orders_key("g001.001").open_fresh(ENGINE, sealed, auth::unix_ns()).unwrap();
    // Only the hole: order 4 is held until it is filled or given up.
    let want = ReRequest { session: Session::new("g001.001").unwrap(), seq: 2, count: 2 };
    assert_eq!((*to, ReRequest::decode(opened.body).unwrap()), (GW1, want));
    out.clear();
    ingress.tick(2, &mut out);
    ingress.tick(3, &mut out);
    assert!(out.is_empty(), "once per interval");
    ingress.tick(2 + crate::stream::GIVE_UP_NS, &mut out);
    assert_eq!(count(&stats.order_messages_lost), 2);
    // The order held past the hole goes through when it is given up.
    assert_eq!(out, vec![Action::Deliver(order(a, 4, 1, Side::Buy, 1, 1))]);
    out.clear();
    // The stream goes on from the next packet.
    ingress.on_datagram(
        GW1,
        &packet(GW1, "g001.001", 5, &[order(a, 5, 1, Side::Buy, 1, 1)]),
        3 + crate::stream::GIVE_UP_NS,
        &mut out,
    );
    assert_eq!(out, vec![Action::Deliver(order(a, 5, 1, Side::Buy, 1, 1))]);
    // A re-request for market data, from anyone with the md key, goes to the publisher.
    out.clear();
    let req = ReRequest { session: md_session(1), seq: 1, count: 9 };
    ingress.on_datagram(GW2, &auth::seal_rerequest(&md_key(1), &req, GW2, auth::unix_ns()), 0, &mut out);
    assert_eq!(out, vec![Action::Serve(GW2, req)]);
    // An end of day from a gateway is not taken.
    out.clear();
    ingress.on_datagram(GW1, &packet(GW1, "g001.001", 6, &[Input::EndOfDay]), 4 + crate::stream::GIVE_UP_NS, &mut out);
    assert!(out.is_empty());
    assert_eq!(count(&stats.dropped_foreign), 1);
    assert_eq!(ingress.streams(), 1);
}

#[test]
fn batched_market_data_waits_for_its_flush_and_reports_do_not() {
    let stats = Arc::new(Stats::default());
    let mut p = publisher(&stats);
    p.batch_md(std::time::Duration::from_millis(5));
    let mut m = Matcher::new(Engine::new([1, 2], EngineConfig::default()), 1, 0);
    let mut out = Vec::new();
    p.on_gateway(1, GW1, &mut out);
    // Ten group commits of one order each.
    for i in 0..10 {
        let (_, o) = m.sequence(order(session(1, 1, 1), i, 1, Side::Sell, 100 + i as u32, 1), 1).unwrap();
        p.on_outputs(o);
        p.on_durable(i + 1, &mut out);
    }
    assert_eq!(messages_to(&out, GW1)["r.eng1"].len(), 10, "reports go at once");
    assert!(messages_to(&out, md_addr(1)).is_empty(), "market data waits");
    assert!(p.md_unsent());
    let before = out.len();
    p.flush_md(&mut out);
    let md: Vec<_> = out[before..].iter().filter(|(a, _)| *a == md_addr(1)).collect();
    assert_eq!(md.len(), 1, "ten adds in one packet");
    assert_eq!(messages_to(&out, md_addr(1))["md.001"].len(), 10);
    assert!(!p.md_unsent());
}

/// The attacks of issue 16 on an engine's ingress: forged or replayed
/// orders, spoofed re-requests. Each is dropped and counted, delivers
/// nothing and redirects nothing.
#[test]
fn forged_orders_and_spoofed_rerequests_change_nothing() {
    let stats = Arc::new(Stats::default());
    let mut ing = ingress(&[1], &stats);
    let a = session(1, 1, 1);
    let attacker: SocketAddr = "10.40.0.9:4001".parse().unwrap();
    let mut out = Vec::new();
    // An orders packet sealed without gateway 1's key; one of a gateway the
    // engine has no key for; gateway 1's authentic packet sent again from
    // another address (it would redirect gateway 1's reports there).
    let genuine = packet(GW1, "g001.001", 1, &[order(a, 1, 1, Side::Buy, 1, 1)]);
    let mut wrong_key = PacketBuilder::new(Session::new("g001.001").unwrap(), 1, 1300);
    let mut m = Vec::new();
    encode_input(&order(a, 7, 1, Side::Buy, 1, 1), &mut m);
    wrong_key.push(&m);
    let mut wrong_key = wrong_key.finish();
    StreamKey::derive(&RootKey::from_bytes([9; 32]), StreamKind::Orders, &Session::new("g001.001").unwrap()).seal(
        Kind::Packet,
        attacker,
        &mut wrong_key,
    );
    ing.on_datagram(attacker, &wrong_key, 0, &mut out);
    let mut no_key = PacketBuilder::new(Session::new("g003.001").unwrap(), 1, 1300).finish();
    StreamKey::derive(&RootKey::from_bytes([9; 32]), StreamKind::Orders, &Session::new("g003.001").unwrap()).seal(
        Kind::Packet,
        attacker,
        &mut no_key,
    );
    ing.on_datagram(attacker, &no_key, 0, &mut out);
    ing.on_datagram(attacker, &genuine, 0, &mut out);
    assert!(out.is_empty(), "nothing delivered, no gateway address taken: {out:?}");
    assert_eq!(count(&stats.dropped_unauthenticated), 3);
    assert_eq!(ing.streams(), 0);
    // The real one from gateway 1 is taken.
    ing.on_datagram(GW1, &genuine, 1, &mut out);
    assert_eq!(out, vec![Action::Gateway(1, GW1), Action::Deliver(order(a, 1, 1, Side::Buy, 1, 1))]);
    out.clear();
    // Re-requests: sealed for the recorder but sent from the attacker (the
    // answer would go to the attacker), a report re-request from an address
    // that is no gateway's, one under another gateway's key, a replay.
    let recorder: SocketAddr = "10.40.0.4:7000".parse().unwrap();
    let req = ReRequest { session: md_session(1), seq: 1, count: 1000 };
    let t = auth::unix_ns();
    let sealed = auth::seal_rerequest(&md_key(1), &req, recorder, t);
    ing.on_datagram(attacker, &sealed, 2, &mut out);
    let reports = ReRequest { session: Session::new("r.eng1").unwrap(), seq: 1, count: 1000 };
    let gw2_reports = StreamKey::derive(&gw_root(2), StreamKind::Reports, &reports.session);
    ing.on_datagram(attacker, &auth::seal_rerequest(&gw2_reports, &reports, attacker, t), 2, &mut out);
    ing.on_datagram(GW1, &auth::seal_rerequest(&gw2_reports, &reports, GW1, t), 2, &mut out);
    ing.on_datagram(GW1, &reports.encode(), 2, &mut out);
    assert!(out.is_empty(), "nothing served: {out:?}");
    assert_eq!((count(&stats.dropped_unauthenticated), count(&stats.dropped_malformed)), (6, 1));
    ing.on_datagram(recorder, &sealed, 2, &mut out);
    assert_eq!(out, vec![Action::Serve(recorder, req)]);
    ing.on_datagram(recorder, &sealed, 3, &mut out);
    assert_eq!(out.len(), 1, "served once");
    assert_eq!(count(&stats.dropped_stale), 1);
    // Gateway 1's own report re-request, under its key, from its address.
    let gw1_reports = StreamKey::derive(&gw_root(1), StreamKind::Reports, &reports.session);
    ing.on_datagram(GW1, &auth::seal_rerequest(&gw1_reports, &reports, GW1, t), 4, &mut out);
    assert_eq!(out.last(), Some(&Action::Serve(GW1, reports)));
}
