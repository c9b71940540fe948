//! The gateway's state, owned by one task: the orders streams (one per
//! symbol), the report streams (one per engine), the connected customers,
//! the requests waiting for an answer, and the counters.

use super::conn::Event;
use super::route::{self, Fence};
use crate::app::acks_file::AckLog;
use crate::events::{Input, RequestKind};
use crate::net::{self, DatagramKind};
use crate::stream::{self, Receiver, Sender, Start};
use crate::symbols::SymbolTable;
use crate::types::*;
use crate::wire::mold::{Packet, ReRequest, Session};
use crate::wire::oe::OeMessage;
use crate::wire::{input, report};
use crate::RejectReason;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// The most engine report streams a gateway keeps (a bound on what hostile
/// datagrams can make it allocate).
pub const MAX_REPORT_STREAMS: usize = 64;
/// How often the requests waiting for an answer are checked for resending.
pub const RESEND_SCAN: Duration = Duration::from_millis(50);
/// The most requests resent per scan (5,000 a second): under overload
/// resends must not become the load (at 20,000 a second per gateway they
/// were: the engine sequenced 1.3 M inputs for 600 k orders at 30,000
/// orders/s, and the reports for the repeats buried everything else), yet
/// after a failover the orders the old primary took with it (about a
/// second's worth) must go again within a couple of seconds.
pub const RESEND_BUDGET: usize = 250;
/// A request's nth resend waits `resend_after * 2^min(n, MAX_BACKOFF_SHIFT)`.
pub const MAX_BACKOFF_SHIFT: u32 = 4;
/// How long a gap in a report stream is asked for before its reports are
/// given up (executions must not be dropped lightly; the engine keeps
/// 100,000 per stream).
pub const REPORT_PATIENCE_NS: u64 = 30_000_000_000;
/// The most orders a gateway remembers the symbol of (for cancels and reduces).
pub const MAX_LIVE_ORDERS: usize = 4_000_000;

/// The counters of the status file.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Counters {
    /// Customers connected now.
    pub sessions: u64,
    /// Requests (enter, cancel, reduce) from customers.
    pub orders_in: u64,
    /// Requests sent to the engines (first sends).
    pub orders_sent: u64,
    /// Requests sent again for want of an answer.
    pub resends: u64,
    /// First acknowledgements of orders.
    pub acks: u64,
    /// Rejects (the engine's and the gateway's own).
    pub rejects: u64,
    /// Executions delivered to customers.
    pub executions_out: u64,
    /// Report messages received in order.
    pub reports_in: u64,
    /// Re-requests sent for report gaps.
    pub report_gaps_requested: u64,
    /// Report messages given up on.
    pub report_messages_lost: u64,
    /// Reports from an epoch below one already seen.
    pub stale_epoch_dropped: u64,
    /// Malformed datagrams, reports and customer frames.
    pub dropped_malformed: u64,
    /// Messages for customers not connected.
    pub undeliverable: u64,
    /// Logins refused.
    pub logins_refused: u64,
    /// Re-requests answered.
    pub rerequests_answered: u64,
    /// Customers disconnected for not reading their messages.
    pub slow_disconnects: u64,
    /// Times a report stream moved to a higher epoch (a new primary).
    pub failovers_seen: u64,
}

struct OrdersStream {
    sender: Sender,
    group: SocketAddr,
}

struct ReportStream {
    rx: Receiver,
    source: SocketAddr,
    fence: Fence,
}

struct Pending {
    symbol: SymbolIndex,
    bytes: Vec<u8>,
    sent_at: Instant,
    /// Resends so far (each doubles the wait, up to a limit).
    resends: u32,
}

/// The gateway's state.
pub struct Core {
    gw: u8,
    resend_after: Duration,
    streams: HashMap<SymbolIndex, OrdersStream>,
    by_session: HashMap<Session, SymbolIndex>,
    reports: HashMap<Session, ReportStream>,
    /// Where report streams not yet seen start (from `--state`).
    resume: HashMap<Session, u64>,
    customers: HashMap<SessionId, (u64, mpsc::Sender<OeMessage>)>,
    pending: HashMap<(SessionId, ClientOrderId, RequestKind), Pending>,
    live: HashMap<(SessionId, ClientOrderId), SymbolIndex>,
    acks: Option<AckLog>,
    start: Instant,
    last_resend_scan: Instant,
    /// Datagrams to send.
    pub out: Vec<(Vec<u8>, SocketAddr)>,
    /// The counters.
    pub counters: Counters,
    table: SymbolTable,
}

fn unix_ns() -> Timestamp {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

impl Core {
    /// A gateway `gw` sending each symbol's orders to its group (`groups`).
    pub fn new(
        gw: u8,
        table: &SymbolTable,
        groups: &[(SymbolIndex, std::net::Ipv4Addr)],
        resend_after: Duration,
        acks: Option<AckLog>,
    ) -> Core {
        let mut streams = HashMap::new();
        let mut by_session = HashMap::new();
        for &(index, group) in groups {
            let session = Session::new(&format!("g{gw:03}.{index:03}")).expect("a valid session name");
            by_session.insert(session, index);
            let sender = Sender::new(session, stream::HISTORY);
            streams.insert(index, OrdersStream { sender, group: SocketAddr::new(group.into(), net::ORDERS_PORT) });
        }
        Core {
            gw,
            resend_after,
            streams,
            by_session,
            reports: HashMap::new(),
            resume: HashMap::new(),
            customers: HashMap::new(),
            pending: HashMap::new(),
            live: HashMap::new(),
            acks,
            start: Instant::now(),
            last_resend_scan: Instant::now(),
            out: Vec::new(),
            counters: Counters::default(),
            table: table.clone(),
        }
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn tell(&mut self, session: SessionId, m: OeMessage) {
        let Some((_, tx)) = self.customers.get(&session) else {
            self.counters.undeliverable += 1;
            return;
        };
        match tx.try_send(m) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Not reading: disconnected (dropping the sender closes it).
                self.customers.remove(&session);
                self.counters.sessions = self.customers.len() as u64;
                self.counters.slow_disconnects += 1;
                self.counters.undeliverable += 1;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.counters.undeliverable += 1,
        }
    }

    /// Handles a connection's event.
    pub fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Login { session, conn, tx } => {
                let _ = tx.try_send(OeMessage::LoginAccepted { session });
                // A second login of a session replaces the first connection
                // (dropping its sender closes it).
                self.customers.insert(session, (conn, tx));
                self.counters.sessions = self.customers.len() as u64;
            }
            Event::Gone { session, conn } => {
                if self.customers.get(&session).is_some_and(|(c, _)| *c == conn) {
                    self.customers.remove(&session);
                }
                self.counters.sessions = self.customers.len() as u64;
            }
            Event::Malformed => self.counters.dropped_malformed += 1,
            Event::LoginRefused => self.counters.logins_refused += 1,
            Event::Request { session, conn, msg } => {
                if self.customers.get(&session).is_some_and(|(c, _)| *c == conn) {
                    self.on_request(session, msg);
                }
            }
        }
    }

    fn reject(&mut self, session: SessionId, client_id: ClientOrderId, request: RequestKind, reason: RejectReason) {
        self.counters.rejects += 1;
        self.tell(session, OeMessage::Rejected { client_id, request, reason, time: unix_ns() });
    }

    fn on_request(&mut self, session: SessionId, msg: OeMessage) {
        self.counters.orders_in += 1;
        let (input, kind, client_id) = match msg {
            OeMessage::Enter(o) => {
                let Some(sym) = self.table.resolve(o.symbol).map(|s| s.index).filter(|i| self.streams.contains_key(i))
                else {
                    return self.reject(session, o.client_id, RequestKind::Enter, RejectReason::UnknownSymbol);
                };
                if self.live.len() < MAX_LIVE_ORDERS {
                    self.live.insert((session, o.client_id), sym);
                }
                (Input::Enter(o.to_new_order(session, sym)), RequestKind::Enter, o.client_id)
            }
            OeMessage::Cancel { client_id } => {
                let Some(&symbol) = self.live.get(&(session, client_id)) else {
                    return self.reject(session, client_id, RequestKind::Cancel, RejectReason::UnknownOrder);
                };
                (Input::Cancel { session, client_id, symbol }, RequestKind::Cancel, client_id)
            }
            OeMessage::Reduce { client_id, qty } => {
                let Some(&symbol) = self.live.get(&(session, client_id)) else {
                    return self.reject(session, client_id, RequestKind::Reduce, RejectReason::UnknownOrder);
                };
                (Input::Reduce { session, client_id, symbol, qty }, RequestKind::Reduce, client_id)
            }
            _ => return,
        };
        let symbol = match input {
            Input::Enter(o) => o.symbol,
            Input::Cancel { symbol, .. } | Input::Reduce { symbol, .. } => symbol,
            Input::EndOfDay => return,
        };
        let mut bytes = Vec::with_capacity(input::MAX_INPUT_LEN);
        input::encode_input(&input, &mut bytes);
        if let Some(s) = self.streams.get_mut(&symbol) {
            s.sender.push(&bytes);
            self.counters.orders_sent += 1;
        }
        self.pending.insert((session, client_id, kind), Pending { symbol, bytes, sent_at: Instant::now(), resends: 0 });
    }

    /// Handles a datagram on the unicast socket.
    pub fn on_datagram(&mut self, d: &[u8], from: SocketAddr) {
        match net::classify(d) {
            None => self.counters.dropped_malformed += 1,
            Some(DatagramKind::ReRequest) => {
                let Ok(req) = ReRequest::decode(d) else {
                    self.counters.dropped_malformed += 1;
                    return;
                };
                let Some(s) = self.by_session.get(&req.session).and_then(|i| self.streams.get(i)) else {
                    self.counters.dropped_malformed += 1;
                    return;
                };
                let mut packets = Vec::new();
                s.sender.retransmit(&req, &mut packets);
                self.counters.rerequests_answered += 1;
                self.out.extend(packets.into_iter().map(|p| (p, from)));
            }
            Some(DatagramKind::Packet) => self.on_report_packet(d, from),
        }
    }

    fn on_report_packet(&mut self, d: &[u8], from: SocketAddr) {
        let Ok(p) = Packet::decode(d) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        if !p.session.0.starts_with(b"r.") {
            self.counters.dropped_malformed += 1;
            return;
        }
        let now = self.now_ns();
        if !self.reports.contains_key(&p.session) && self.reports.len() >= MAX_REPORT_STREAMS {
            self.counters.dropped_malformed += 1;
            return;
        }
        let resume = self.resume.get(&p.session).copied();
        let rs = self.reports.entry(p.session).or_insert_with(|| ReportStream {
            rx: Receiver::new(resume.map_or(Start::AtOne, Start::At)),
            source: from,
            fence: Fence::default(),
        });
        rs.source = from;
        let arrival = rs.rx.on_packet(p.seq, usize::from(p.message_count()), now);
        let mut reps = Vec::with_capacity(arrival.take);
        for (_, m) in p.messages().skip(arrival.skip).take(arrival.take) {
            match report::decode(m) {
                Ok(r) => reps.push(r),
                Err(_) => self.counters.dropped_malformed += 1,
            }
        }
        self.counters.reports_in += arrival.take as u64;
        for rep in reps {
            let Some(rs) = self.reports.get_mut(&p.session) else { break };
            let before = rs.fence.highest();
            if !rs.fence.admit(rep.epoch) {
                self.counters.stale_epoch_dropped += 1;
                continue;
            }
            if before.is_some_and(|b| rep.epoch > b) {
                self.on_new_primary();
            }
            self.on_report(&rep);
        }
    }

    /// Report streams start at these messages instead of 1 (a restarted
    /// gateway resuming from its state file; see [`Core::report_positions`]).
    pub fn resume_reports(&mut self, positions: impl IntoIterator<Item = (Session, u64)>) {
        self.resume.extend(positions);
    }

    /// The next message expected on each report stream (what a restart
    /// resumes from), including those resumed but not yet seen.
    pub fn report_positions(&self) -> Vec<(Session, u64)> {
        let mut v: Vec<(Session, u64)> = self.resume.iter().map(|(&s, &n)| (s, n)).collect();
        for (s, rs) in &self.reports {
            if let Some(n) = rs.rx.next() {
                v.retain(|(x, _)| x != s);
                v.push((*s, n));
            }
        }
        v.sort();
        v
    }

    /// A new primary (a higher epoch) answers: whatever is still unanswered
    /// may have died with the old one, so it is resent at the next tick,
    /// not after its backoff (the new primary answers repeats with the
    /// original acknowledgement).
    fn on_new_primary(&mut self) {
        let now = Instant::now();
        for p in self.pending.values_mut() {
            p.sent_at = now.checked_sub(self.resend_after).unwrap_or(p.sent_at);
            p.resends = 0;
        }
        self.last_resend_scan = now.checked_sub(RESEND_SCAN).unwrap_or(self.last_resend_scan);
        self.counters.failovers_seen += 1;
    }

    fn on_report(&mut self, rep: &report::Report) {
        let r = route::route(rep, self.gw);
        if let Some((session, ack)) = r.first_ack {
            self.counters.acks += 1;
            if let Some(log) = &mut self.acks {
                if let Err(e) = log.write(session, &ack, rep.epoch) {
                    eprintln!("aex gateway: writing the acks log: {e}");
                }
            }
        }
        for key in &r.answered {
            self.pending.remove(key);
        }
        for key in &r.done {
            self.live.remove(key);
        }
        for (session, m) in r.messages {
            match m {
                OeMessage::Rejected { .. } => self.counters.rejects += 1,
                OeMessage::Executed(_) => self.counters.executions_out += 1,
                _ => {}
            }
            self.tell(session, m);
        }
    }

    /// Packets of every orders stream with new messages.
    pub fn flush(&mut self) {
        let mut packets = Vec::new();
        for s in self.streams.values_mut() {
            if s.sender.has_unsent() {
                packets.clear();
                s.sender.take_packets(&mut packets);
                let group = s.group;
                self.out.extend(packets.drain(..).map(|p| (p, group)));
            }
        }
    }

    /// Timers: resends, report gaps (re-requests, giving up).
    pub fn on_tick(&mut self) {
        let now = Instant::now();
        // Every pending request is looked at, so not at every tick.
        if now.duration_since(self.last_resend_scan) >= RESEND_SCAN || self.resend_after < RESEND_SCAN {
            self.last_resend_scan = now;
            let mut resend = Vec::new();
            for p in self.pending.values_mut() {
                if resend.len() == RESEND_BUDGET {
                    break;
                }
                if now.duration_since(p.sent_at) >= self.resend_after * (1 << p.resends.min(MAX_BACKOFF_SHIFT)) {
                    p.sent_at = now;
                    p.resends += 1;
                    resend.push((p.symbol, p.bytes.clone()));
                }
            }
            for (symbol, bytes) in resend {
                if let Some(s) = self.streams.get_mut(&symbol) {
                    s.sender.push(&bytes);
                    self.counters.resends += 1;
                }
            }
        }
        let now_ns = self.now_ns();
        for (session, rs) in &mut self.reports {
            if let Some(req) = rs.rx.poll_request(*session, now_ns) {
                self.counters.report_gaps_requested += 1;
                self.out.push((req.encode().to_vec(), rs.source));
            }
            self.counters.report_messages_lost += rs.rx.give_up_after(now_ns, REPORT_PATIENCE_NS);
        }
    }

    /// A heartbeat on every orders stream that has sent anything.
    pub fn heartbeats(&mut self) {
        for s in self.streams.values() {
            if s.sender.next_seq() > 1 {
                self.out.push((s.sender.heartbeat(), s.group));
            }
        }
    }

    /// Flushes the acks log.
    pub fn flush_acks(&mut self) {
        if let Some(log) = &mut self.acks {
            if let Err(e) = log.flush() {
                eprintln!("aex gateway: flushing the acks log: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Ack, Response};
    use crate::wire::oe::EnterOrder;
    use crate::wire::report::Report;
    use std::net::Ipv4Addr;

    const GROUP: Ipv4Addr = Ipv4Addr::new(239, 192, 1, 1);

    fn core(resend_after: Duration) -> Core {
        let t = SymbolTable::shipped();
        Core::new(1, &t, &[(1, GROUP)], resend_after, None)
    }

    fn login(c: &mut Core, session: SessionId, conn: u64) -> mpsc::Receiver<OeMessage> {
        let (tx, mut rx) = mpsc::channel(4);
        c.on_event(Event::Login { session, conn, tx });
        assert_eq!(rx.try_recv().unwrap(), OeMessage::LoginAccepted { session });
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
            let p = Packet::decode(&p).unwrap();
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
        out.pop().unwrap()
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
        let mut rx = login(&mut c, s, 1);
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
        assert!(matches!(rx.try_recv().unwrap(), OeMessage::Accepted { ack, .. } if ack.order_id == 99));
        assert!(matches!(rx.try_recv().unwrap(), OeMessage::Accepted { .. }));
        c.on_tick();
        assert!(sent_inputs(&mut c).is_empty(), "answered: no more resends");
        // A report from an older epoch is fenced off.
        let stale = Report { epoch: 1, seq: 12, ..rep };
        c.on_datagram(&report_packet(&mut r, &[stale]), engine);
        assert_eq!(c.counters.stale_epoch_dropped, 1);
        assert!(rx.try_recv().is_err());
        // A gap (message 4 lost): asked for from the packet's source.
        let _lost = report_packet(&mut r, &[again]);
        c.on_datagram(&report_packet(&mut r, &[again]), engine);
        c.on_tick();
        let req: Vec<_> = c.out.drain(..).filter(|(d, _)| net::classify(d) == Some(DatagramKind::ReRequest)).collect();
        assert_eq!(req.len(), 1);
        assert_eq!(req[0].1, engine);
        let req = ReRequest::decode(&req[0].0).unwrap();
        assert_eq!((req.seq, req.count), (4, 2));
        assert_eq!(c.counters.report_gaps_requested, 1);
        // Our own stream is retransmitted to whoever asks.
        let asker: SocketAddr = "10.40.0.3:6000".parse().unwrap();
        let ask = ReRequest { session: Session::new("g001.001").unwrap(), seq: 1, count: 2 };
        c.on_datagram(&ask.encode(), asker);
        assert_eq!(c.out.len(), 1);
        assert_eq!(c.out[0].1, asker);
        assert_eq!(Packet::decode(&c.out[0].0).unwrap().count, 2);
    }

    #[test]
    fn local_rejects_replaced_logins_and_garbage() {
        let mut c = core(Duration::from_secs(1));
        let s = 1 << 24 | 2 << 12 | 3;
        let mut old = login(&mut c, s, 1);
        c.on_event(Event::Request { session: s, conn: 1, msg: enter(1, 999) });
        assert!(matches!(
            old.try_recv().unwrap(),
            OeMessage::Rejected { client_id: 1, reason: RejectReason::UnknownSymbol, .. }
        ));
        c.on_event(Event::Request { session: s, conn: 1, msg: OeMessage::Cancel { client_id: 5 } });
        assert!(matches!(
            old.try_recv().unwrap(),
            OeMessage::Rejected { client_id: 5, request: RequestKind::Cancel, reason: RejectReason::UnknownOrder, .. }
        ));
        assert_eq!(c.counters.rejects, 2);
        assert!(sent_inputs(&mut c).is_empty());
        // A second login replaces the first: the old connection's channel closes
        // and its requests are ignored; its end does not log the new one out.
        let _new = login(&mut c, s, 2);
        assert!(old.try_recv().is_err() && old.is_closed());
        c.on_event(Event::Request { session: s, conn: 1, msg: enter(2, 1) });
        assert!(sent_inputs(&mut c).is_empty());
        c.on_event(Event::Gone { session: s, conn: 1 });
        assert_eq!(c.counters.sessions, 1);
        // A customer that does not read is disconnected when its queue is full.
        let slow = 1 << 24 | 9;
        let (tx, _rx) = mpsc::channel(1);
        c.on_event(Event::Login { session: slow, conn: 3, tx });
        c.on_event(Event::Request { session: slow, conn: 3, msg: enter(1, 999) });
        assert_eq!((c.counters.slow_disconnects, c.counters.sessions), (1, 1));
        // Garbage on the unicast socket is counted, not fatal.
        let from: SocketAddr = "10.40.0.1:1".parse().unwrap();
        c.on_datagram(&[1, 2, 3], from);
        c.on_datagram(&[0xff; 40], from);
        c.on_datagram(&crate::wire::mold::heartbeat(Session::new("x.other").unwrap(), 1), from);
        assert_eq!(c.counters.dropped_malformed, 3);
    }
}
