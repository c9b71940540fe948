use super::*;
use crate::auth::{self, Kind};
use crate::events::{Ack, Response};
use crate::wire::mold::{Packet, ReRequest};
use crate::wire::oe::EnterOrder;
use crate::wire::report::Report;
use std::net::Ipv4Addr;

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 192, 1, 1);

fn root() -> RootKey {
    RootKey::from_bytes([1; 32])
}

fn local() -> SocketAddr {
    "10.40.0.2:4000".parse().unwrap()
}

fn engine() -> SocketAddr {
    "10.40.0.1:5000".parse().unwrap()
}

fn core(resend_after: Duration) -> Core {
    let t = SymbolTable::shipped();
    Core::new(1, &t, &[(1, GROUP)], resend_after, None, root(), local())
}

fn orders_key() -> StreamKey {
    StreamKey::derive(&root(), StreamKind::Orders, &Session::new("g001.001").unwrap())
}

fn reports_key() -> StreamKey {
    StreamKey::derive(&root(), StreamKind::Reports, &Session::new("r.eng1").unwrap())
}

/// Opens a datagram the gateway sent, as the engine would.
fn open(d: &[u8]) -> Vec<u8> {
    orders_key().open_fresh(local(), d, auth::unix_ns()).expect("sealed under the orders key").body.to_vec()
}

/// What the core has for one connection, as a customer reads it.
struct Rx(u64);

impl Rx {
    /// The next message for this connection, if any.
    fn try_recv(&self, c: &mut Core) -> Option<OeMessage> {
        let i = c.replies.iter().position(|(conn, _)| *conn == self.0)?;
        Some(c.replies.remove(i).1)
    }
}

fn login(c: &mut Core, session: SessionId, conn: u64) -> Rx {
    c.on_event(Event::Login { session, conn });
    let rx = Rx(conn);
    assert_eq!(rx.try_recv(c).unwrap(), OeMessage::LoginAccepted { session });
    rx
}

fn enter(client_id: u64, symbol: u16) -> OeMessage {
    OeMessage::Enter(EnterOrder {
        client_id,
        symbol: SymbolRef::Index(symbol),
        side: Side::Buy,
        price: 1830,
        qty: 100,
        kind: OrderType::Limit,
        tif: TimeInForce::Day,
    })
}

fn sent_inputs(c: &mut Core) -> Vec<(u64, Vec<u8>)> {
    c.flush();
    let to = SocketAddr::new(GROUP.into(), net::ORDERS_PORT);
    let mut v = Vec::new();
    for (p, dst) in c.out.drain(..) {
        assert_eq!(dst, to);
        let body = open(&p);
        let p = Packet::decode(&body).unwrap();
        v.extend(p.messages().map(|(s, m)| (s, m.to_vec())));
    }
    v
}

fn report_packet(s: &mut Sender, reps: &[Report]) -> Vec<u8> {
    for r in reps {
        let mut b = Vec::new();
        report::encode(r, &mut b);
        s.push(&b);
    }
    let mut out = Vec::new();
    s.take_packets(&mut out);
    assert_eq!(out.len(), 1);
    let mut p = out.pop().unwrap();
    reports_key().seal(Kind::Packet, engine(), &mut p);
    p
}

#[test]
fn resends_are_budgeted_and_back_off() {
    let mut c = core(Duration::ZERO);
    let s = 1 << 24 | 1 << 12 | 1;
    let _rx = login(&mut c, s, 1);
    for id in 0..400 {
        c.on_event(Event::Request { session: s, conn: 1, msg: enter(id, 1) });
    }
    assert_eq!(sent_inputs(&mut c).len(), 400);
    c.on_tick();
    assert_eq!(sent_inputs(&mut c).len(), RESEND_BUDGET, "at most a budget per scan");
    c.on_tick();
    assert_eq!(sent_inputs(&mut c).len(), RESEND_BUDGET);
    assert_eq!(c.counters.resends, 2 * RESEND_BUDGET as u64);
    // With a real wait, a resent request waits twice as long next time.
    let mut c = core(Duration::from_millis(100));
    let _rx = login(&mut c, s, 1);
    c.on_event(Event::Request { session: s, conn: 1, msg: enter(1, 1) });
    sent_inputs(&mut c);
    std::thread::sleep(Duration::from_millis(110));
    c.on_tick();
    assert_eq!(sent_inputs(&mut c).len(), 1, "first resend after 100 ms");
    std::thread::sleep(Duration::from_millis(110));
    c.on_tick();
    assert!(sent_inputs(&mut c).is_empty(), "the second waits 200 ms");
}

#[test]
fn a_new_primary_gets_the_unanswered_at_once() {
    let mut c = core(Duration::from_secs(60));
    let s = 1 << 24 | 1 << 12 | 1;
    let _rx = login(&mut c, s, 1);
    for id in [1, 2, 3] {
        c.on_event(Event::Request { session: s, conn: 1, msg: enter(id, 1) });
    }
    let sent = sent_inputs(&mut c);
    let engine: SocketAddr = "10.40.0.1:5000".parse().unwrap();
    let mut r = Sender::new(Session::new("r.eng1").unwrap(), 100);
    let ack = |i: usize, epoch| {
        let Input::Enter(order) = input::decode_input(&sent[i].1).unwrap() else { unreachable!() };
        let ack = Ack { seq: i as u64 + 1, order_id: 10 + i as u64, order };
        Report { epoch, seq: i as u64 + 1, time: 5, response: Response::Accepted(ack) }
    };
    // Order 1 answered by the primary (epoch 1); nothing is due for a minute.
    c.on_datagram(&report_packet(&mut r, &[ack(0, 1)]), engine);
    c.on_tick();
    assert!(sent_inputs(&mut c).is_empty());
    // A new primary (epoch 2) answers order 3: order 2 goes again at once.
    c.on_datagram(&report_packet(&mut r, &[ack(2, 2)]), engine);
    c.on_tick();
    assert_eq!(sent_inputs(&mut c).into_iter().map(|(_, b)| b).collect::<Vec<_>>(), vec![sent[1].1.clone()]);
    assert_eq!(c.counters.failovers_seen, 1);
}

#[test]
fn a_restarted_gateway_resumes_its_report_streams() {
    let mut c = core(Duration::from_secs(60));
    let s = 1 << 24 | 1 << 12 | 1;
    let _rx = login(&mut c, s, 1);
    for id in 1..=4 {
        c.on_event(Event::Request { session: s, conn: 1, msg: enter(id, 1) });
    }
    let sent = sent_inputs(&mut c);
    let session = Session::new("r.eng1").unwrap();
    c.resume_reports([(session, 3)]);
    assert_eq!(c.report_positions(), vec![(session, 3)], "resumed, not yet seen");
    let engine: SocketAddr = "10.40.0.1:5000".parse().unwrap();
    let mut r = Sender::new(session, 100);
    let reps: Vec<Report> = (0..4)
        .map(|i| {
            let Input::Enter(order) = input::decode_input(&sent[i].1).unwrap() else { unreachable!() };
            let ack = Ack { seq: i as u64 + 1, order_id: 10 + i as u64, order };
            Report { epoch: 1, seq: i as u64 + 1, time: 5, response: Response::Accepted(ack) }
        })
        .collect();
    // The engine's stream from message 1: the first two were read before the restart.
    c.on_datagram(&report_packet(&mut r, &reps), engine);
    assert_eq!((c.counters.reports_in, c.counters.acks), (2, 2));
    assert_eq!(c.report_positions(), vec![(session, 5)]);
}

#[test]
fn orders_out_resends_reports_back() {
    let mut c = core(Duration::ZERO);
    let s = 1 << 24 | 1 << 12 | 1;
    let rx = login(&mut c, s, 1);
    c.on_event(Event::Request { session: s, conn: 1, msg: enter(7, 1) });
    let first = sent_inputs(&mut c);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, 1);
    match input::decode_input(&first[0].1).unwrap() {
        Input::Enter(o) => assert_eq!((o.session, o.client_id, o.symbol), (s, 7, 1)),
        other => panic!("{other:?}"),
    }
    // Unanswered: sent again, same bytes, as message 2.
    c.on_tick();
    assert_eq!(sent_inputs(&mut c), vec![(2, first[0].1.clone())]);
    assert_eq!(c.counters.resends, 1);
    // The engine acknowledges it (and repeats the ack for the resend).
    let engine: SocketAddr = "10.40.0.1:5000".parse().unwrap();
    let mut r = Sender::new(Session::new("r.eng1").unwrap(), 100);
    let Input::Enter(order) = input::decode_input(&first[0].1).unwrap() else { unreachable!() };
    let ack = Ack { seq: 10, order_id: 99, order };
    let rep = Report { epoch: 2, seq: 10, time: 5, response: Response::Accepted(ack) };
    let again = Report { seq: 11, ..rep };
    c.on_datagram(&report_packet(&mut r, &[rep, again]), engine);
    assert_eq!(c.counters.acks, 1, "the repeat is not a first ack");
    assert_eq!(c.counters.reports_in, 2);
    assert!(matches!(rx.try_recv(&mut c).unwrap(), OeMessage::Accepted { ack, .. } if ack.order_id == 99));
    assert!(matches!(rx.try_recv(&mut c).unwrap(), OeMessage::Accepted { .. }));
    c.on_tick();
    assert!(sent_inputs(&mut c).is_empty(), "answered: no more resends");
    // A report from an older epoch is fenced off.
    let stale = Report { epoch: 1, seq: 12, ..rep };
    c.on_datagram(&report_packet(&mut r, &[stale]), engine);
    assert_eq!(c.counters.stale_epoch_dropped, 1);
    assert!(rx.try_recv(&mut c).is_none());
    // A gap (message 4 lost): asked for from the packet's source.
    let _lost = report_packet(&mut r, &[again]);
    c.on_datagram(&report_packet(&mut r, &[again]), engine);
    // Asked for as soon as seen (no tick), and not again at the next tick.
    let req: Vec<_> = c.out.drain(..).filter(|(d, _)| auth::peek(d).is_some_and(|p| p.0 == Kind::ReRequest)).collect();
    c.on_tick();
    assert!(c.out.is_empty(), "once per interval");
    assert_eq!(req.len(), 1);
    assert_eq!(req[0].1, engine);
    let opened = reports_key().open_fresh(local(), &req[0].0, auth::unix_ns()).expect("sealed under the reports key");
    let req = ReRequest::decode(opened.body).unwrap();
    assert_eq!((req.seq, req.count), (4, 1), "only the hole: 5 is held");
    assert_eq!(c.counters.report_gaps_requested, 1);
    // Our own stream is retransmitted to an engine that asks with its key.
    let ask = ReRequest { session: Session::new("g001.001").unwrap(), seq: 1, count: 2 };
    c.on_datagram(&auth::seal_rerequest(&orders_key(), &ask, engine, auth::unix_ns()), engine);
    assert_eq!(c.out.len(), 1);
    assert_eq!(c.out[0].1, engine);
    assert_eq!(Packet::decode(&open(&c.out[0].0)).unwrap().count, 2);
    assert_eq!(c.counters.rerequests_answered, 1);
}

/// The attacks of issue 16 on a gateway: each is dropped, counted, and
/// changes nothing.
#[test]
fn forged_reports_and_spoofed_rerequests_change_nothing() {
    let mut c = core(Duration::from_secs(60));
    let s = 1 << 24 | 1 << 12 | 1;
    let rx = login(&mut c, s, 1);
    c.on_event(Event::Request { session: s, conn: 1, msg: enter(1, 1) });
    let sent = sent_inputs(&mut c);
    let Input::Enter(order) = input::decode_input(&sent[0].1).unwrap() else { unreachable!() };
    let mut r = Sender::new(Session::new("r.eng1").unwrap(), 100);
    let ack =
        |epoch| Report { epoch, seq: 1, time: 5, response: Response::Accepted(Ack { seq: 1, order_id: 9, order }) };
    // A forged report with a higher epoch: sealed without the gateway's key,
    // or not sealed at all (the old format).
    let mut forged = Sender::new(Session::new("r.eng1").unwrap(), 100);
    let mut b = Vec::new();
    report::encode(&ack(99), &mut b);
    forged.push(&b);
    let mut p = Vec::new();
    forged.take_packets(&mut p);
    let plain = p[0].clone();
    let mut wrong_key = p[0].clone();
    StreamKey::derive(&RootKey::from_bytes([2; 32]), StreamKind::Reports, &Session::new("r.eng1").unwrap()).seal(
        Kind::Packet,
        engine(),
        &mut wrong_key,
    );
    c.on_datagram(&wrong_key, engine());
    c.on_datagram(&plain, engine());
    // An authentic report sent again from another address.
    let genuine = report_packet(&mut r, &[ack(1)]);
    c.on_datagram(&genuine, "10.40.0.3:5000".parse().unwrap());
    // An authentic report sealed too long ago.
    let mut old = plain.clone();
    reports_key().seal_at(Kind::Packet, engine(), auth::unix_ns() - auth::seal::WINDOW_NS - 1_000_000_000, &mut old);
    c.on_datagram(&old, engine());
    // (The unsealed one is not even a sealed datagram: malformed.)
    let counted = (c.counters.dropped_unauthenticated, c.counters.dropped_stale, c.counters.dropped_malformed);
    assert_eq!(counted, (2, 1, 1));
    assert_eq!((c.counters.reports_in, c.counters.acks, c.counters.failovers_seen), (0, 0, 0));
    assert!(c.reports.is_empty(), "no stream made by a forgery");
    assert!(rx.try_recv(&mut c).is_none(), "the customer heard nothing");
    // The real engine's epoch-1 report still gets through (not fenced out).
    c.on_datagram(&genuine, engine());
    assert_eq!((c.counters.acks, c.counters.stale_epoch_dropped), (1, 0));
    assert!(matches!(rx.try_recv(&mut c).unwrap(), OeMessage::Accepted { .. }));

    // Re-requests for our orders stream: sealed for the engine's address
    // but sent from another (the answer would go there), forged, replayed.
    let attacker: SocketAddr = "10.40.0.3:6000".parse().unwrap();
    let ask = ReRequest { session: Session::new("g001.001").unwrap(), seq: 1, count: 1000 };
    let t = auth::unix_ns();
    let genuine = auth::seal_rerequest(&orders_key(), &ask, engine(), t);
    c.on_datagram(&genuine, attacker);
    c.on_datagram(&ask.encode(), attacker);
    let wrong = StreamKey::derive(&RootKey::from_bytes([2; 32]), StreamKind::Orders, &ask.session);
    c.on_datagram(&auth::seal_rerequest(&wrong, &ask, attacker, t), attacker);
    assert!(c.out.is_empty(), "nothing sent anywhere");
    c.on_datagram(&genuine, engine());
    assert_eq!((c.out.len(), c.counters.rerequests_answered), (1, 1));
    c.on_datagram(&genuine, engine());
    assert_eq!((c.out.len(), c.counters.rerequests_answered), (1, 1), "answered once");
    assert_eq!(c.counters.dropped_stale, 2);
    assert_eq!((c.counters.dropped_unauthenticated, c.counters.dropped_malformed), (4, 2));
}

#[test]
fn a_full_table_of_pending_requests_refuses_at_once() {
    let mut c = core(Duration::from_secs(60));
    c.max_pending = 3;
    let s = 1 << 24 | 1 << 12 | 1;
    let rx = login(&mut c, s, 1);
    for id in 1..=4 {
        c.on_event(Event::Request { session: s, conn: 1, msg: enter(id, 1) });
    }
    assert_eq!(sent_inputs(&mut c).len(), 3);
    assert!(matches!(
        rx.try_recv(&mut c).unwrap(),
        OeMessage::Rejected { client_id: 4, reason: RejectReason::GatewayBusy, .. }
    ));
    assert_eq!((c.pending.len(), c.counters.busy_rejects), (3, 1));
}

#[test]
fn local_rejects_replaced_logins_and_garbage() {
    let mut c = core(Duration::from_secs(1));
    let s = 1 << 24 | 2 << 12 | 3;
    let old = login(&mut c, s, 1);
    c.on_event(Event::Request { session: s, conn: 1, msg: enter(1, 999) });
    assert!(matches!(
        old.try_recv(&mut c).unwrap(),
        OeMessage::Rejected { client_id: 1, reason: RejectReason::UnknownSymbol, .. }
    ));
    c.on_event(Event::Request { session: s, conn: 1, msg: OeMessage::Cancel { client_id: 5 } });
    assert!(matches!(
        old.try_recv(&mut c).unwrap(),
        OeMessage::Rejected { client_id: 5, request: RequestKind::Cancel, reason: RejectReason::UnknownOrder, .. }
    ));
    assert_eq!(c.counters.rejects, 2);
    assert!(sent_inputs(&mut c).is_empty());
    // A second login replaces the first: the old connection is to be closed
    // and its requests are ignored; its end does not log the new one out.
    let _new = login(&mut c, s, 2);
    assert!(old.try_recv(&mut c).is_none());
    assert_eq!(c.replaced, vec![1]);
    c.on_event(Event::Request { session: s, conn: 1, msg: enter(2, 1) });
    assert!(sent_inputs(&mut c).is_empty());
    c.on_event(Event::Gone { session: s, conn: 1 });
    assert_eq!(c.counters.sessions, 1);
    // A message for a session nobody is logged in as goes nowhere, counted.
    c.on_event(Event::Gone { session: s, conn: 2 });
    c.reject(s, 3, RequestKind::Enter, RejectReason::UnknownSymbol);
    assert_eq!((c.counters.undeliverable, c.counters.sessions), (1, 0));
    // Garbage on the unicast socket is counted, not fatal.
    let from: SocketAddr = "10.40.0.1:1".parse().unwrap();
    c.on_datagram(&[1, 2, 3], from);
    c.on_datagram(&[0xff; 60], from);
    assert_eq!(c.counters.dropped_malformed, 2);
    let mut other = crate::wire::mold::heartbeat(Session::new("x.other").unwrap(), 1);
    reports_key().seal(Kind::Packet, from, &mut other);
    c.on_datagram(&other, from);
    assert_eq!(c.counters.dropped_unauthenticated, 1, "no stream of that name to hold a key for");
}

#[test]
fn a_heartbeat_never_announces_a_message_not_yet_sent() {
    let mut c = core(Duration::from_secs(60));
    let s = 1 << 24 | 1 << 12 | 1;
    let _rx = login(&mut c, s, 1);
    c.on_event(Event::Request { session: s, conn: 1, msg: enter(1, 1) });
    // The heartbeat comes in the same loop turn as the order, before the flush.
    c.heartbeats();
    let packets: Vec<_> = c.out.drain(..).map(|(d, _)| open(&d)).collect();
    let seqs: Vec<(u64, u16)> = packets.iter().map(|b| Packet::decode(b).map(|p| (p.seq, p.count)).unwrap()).collect();
    assert_eq!(seqs, vec![(1, 1), (2, 0)], "message 1, then the heartbeat saying 2 is next");
}
