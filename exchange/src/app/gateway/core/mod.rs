//! The gateway's state, owned by one task: the orders streams (one per
//! symbol), the report streams (one per engine), the connected customers,
//! the requests waiting for an answer, and the counters. The datagrams
//! (sealed and verified) are in `datagrams.rs`.

mod datagrams;
#[cfg(test)]
mod tests;

use super::conn::{ConnStats, Event};
use super::route::{self, Fence};
use crate::app::acks_file::AckLog;
use crate::app::timing::{TimeHistogram, TimeSummary};
use crate::auth::{ReplayGuard, RequestClock, RootKey, StreamKey, StreamKind};
use crate::events::{Input, RequestKind};
use crate::net;
use crate::stream::{self, Receiver, Sender};
use crate::symbols::SymbolTable;
use crate::types::*;
use crate::wire::mold::Session;
use crate::wire::oe::OeMessage;
use crate::wire::{input, report};
use crate::RejectReason;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
/// The most requests awaiting an engine's answer (a minute at the demo's
/// 5,000 orders a second per gateway, should the engines fall silent):
/// beyond it new requests are rejected at once with
/// [`RejectReason::GatewayBusy`] rather than queued without bound.
pub const MAX_PENDING: usize = 300_000;

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
    /// Report messages that arrived past a hole beyond what a report
    /// stream holds (`stream::Limits::REPORTS`): dropped, asked for again.
    pub report_messages_over_limit: u64,
    /// Reports from an epoch below one already seen.
    pub stale_epoch_dropped: u64,
    /// Malformed datagrams, reports and customer frames.
    pub dropped_malformed: u64,
    /// Datagrams refused for a tag that does not verify (forged, altered,
    /// sent from another address than sealed for) or a stream we hold no
    /// key for.
    pub dropped_unauthenticated: u64,
    /// Authentic datagrams refused as stale: sealed too long ago, or a
    /// re-request not later than the last from its requester (a replay).
    pub dropped_stale: u64,
    /// Messages for customers not connected.
    pub undeliverable: u64,
    /// Logins refused (unknown user, wrong password).
    pub logins_refused: u64,
    /// Logins refused unchecked: the source failed too often lately.
    pub logins_throttled: u64,
    /// Connections closed at once: too many in all, or from their source.
    pub connections_refused: u64,
    /// Requests refused because the table of requests awaiting an
    /// answer was full.
    pub busy_rejects: u64,
    /// Re-requests answered.
    pub rerequests_answered: u64,
    /// Customers disconnected for not reading their messages.
    pub slow_disconnects: u64,
    /// Times a report stream moved to a higher epoch (a new primary).
    pub failovers_seen: u64,
    /// From sending a request to the engines to their first answer (sent
    /// once, not resent), µs: the overlay both ways and the engine.
    pub engine_round_trip_us: TimeSummary,
    /// From the engine sealing a reports packet to this gateway reading
    /// it, µs (the overlay one way and this gateway's loop; both clocks
    /// are wall clocks, so across machines their offset is in it too).
    pub report_transit_us: TimeSummary,
}

struct OrdersStream {
    sender: Sender,
    group: SocketAddr,
    key: StreamKey,
}

struct ReportStream {
    rx: Receiver,
    source: SocketAddr,
    fence: Fence,
    key: StreamKey,
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
    /// The connection of every customer logged in.
    customers: HashMap<SessionId, u64>,
    pending: HashMap<(SessionId, ClientOrderId, RequestKind), Pending>,
    live: HashMap<(SessionId, ClientOrderId), SymbolIndex>,
    acks: Option<AckLog>,
    start: Instant,
    last_resend_scan: Instant,
    /// Datagrams to send.
    pub out: Vec<(Vec<u8>, SocketAddr)>,
    /// Messages for customers, by connection, to write.
    pub replies: Vec<(u64, OeMessage)>,
    /// Connections to close: their session logged in again elsewhere.
    pub replaced: Vec<u64>,
    /// The counters (see [`Core::status`] for all of them).
    pub counters: Counters,
    /// Request to first answer, for requests sent once.
    engine_round_trip: TimeHistogram,
    /// Engine's seal to our read, for reports packets.
    report_transit: TimeHistogram,
    table: SymbolTable,
    /// This gateway's root key (`gw.N`): its streams' keys derive from it.
    root: RootKey,
    /// Our unicast socket's address: the source every datagram is sealed for.
    local: SocketAddr,
    replay: ReplayGuard,
    request_clock: RequestClock,
    /// What the connections count on their own.
    conns: Arc<ConnStats>,
    /// [`MAX_PENDING`] (smaller in tests).
    max_pending: usize,
}

fn unix_ns() -> Timestamp {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

impl Core {
    /// A gateway `gw` sending each symbol's orders to its group (`groups`)
    /// from `local` (its unicast socket), its streams keyed from `root`
    /// (the `gw.N` key).
    pub fn new(
        gw: u8,
        table: &SymbolTable,
        groups: &[(SymbolIndex, std::net::Ipv4Addr)],
        resend_after: Duration,
        acks: Option<AckLog>,
        root: RootKey,
        local: SocketAddr,
    ) -> Core {
        let mut streams = HashMap::new();
        let mut by_session = HashMap::new();
        for &(index, group) in groups {
            let session = Session::new(&format!("g{gw:03}.{index:03}")).expect("a valid session name");
            by_session.insert(session, index);
            let sender = Sender::new(session, stream::HISTORY);
            let key = StreamKey::derive(&root, StreamKind::Orders, &session);
            let group = SocketAddr::new(group.into(), net::ORDERS_PORT);
            streams.insert(index, OrdersStream { sender, group, key });
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
            replies: Vec::new(),
            replaced: Vec::new(),
            counters: Counters::default(),
            engine_round_trip: TimeHistogram::default(),
            report_transit: TimeHistogram::default(),
            table: table.clone(),
            root,
            local,
            replay: ReplayGuard::new(),
            request_clock: RequestClock::default(),
            conns: Arc::default(),
            max_pending: MAX_PENDING,
        }
    }

    /// The counters the connections share with the core.
    pub fn conn_stats(&self) -> Arc<ConnStats> {
        self.conns.clone()
    }

    /// Every counter: the core's and the connections'.
    pub fn status(&self) -> Counters {
        let mut c = self.counters;
        let n = &self.conns;
        c.dropped_malformed += n.malformed.load(Relaxed);
        c.logins_refused = n.logins_refused.load(Relaxed);
        c.logins_throttled = n.logins_throttled.load(Relaxed);
        c.connections_refused = n.connections_refused.load(Relaxed);
        c.engine_round_trip_us = self.engine_round_trip.summary();
        c.report_transit_us = self.report_transit.summary();
        c
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn tell(&mut self, session: SessionId, m: OeMessage) {
        match self.customers.get(&session) {
            Some(&conn) => self.replies.push((conn, m)),
            None => self.counters.undeliverable += 1,
        }
    }

    /// Handles a connection's event.
    pub fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Login { session, conn } => {
                self.replies.push((conn, OeMessage::LoginAccepted { session }));
                // A second login of a session replaces the first connection
                // (which is closed).
                if let Some(old) = self.customers.insert(session, conn).filter(|&old| old != conn) {
                    self.replaced.push(old);
                }
                self.counters.sessions = self.customers.len() as u64;
            }
            Event::Gone { session, conn } => {
                if self.customers.get(&session) == Some(&conn) {
                    self.customers.remove(&session);
                }
                self.counters.sessions = self.customers.len() as u64;
            }
            Event::Request { session, conn, msg } => {
                if self.customers.get(&session) == Some(&conn) {
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
        let key = (session, client_id, kind);
        if self.pending.len() >= self.max_pending && !self.pending.contains_key(&key) {
            self.counters.busy_rejects += 1;
            return self.reject(session, client_id, kind, RejectReason::GatewayBusy);
        }
        let mut bytes = Vec::with_capacity(input::MAX_INPUT_LEN);
        input::encode_input(&input, &mut bytes);
        if let Some(s) = self.streams.get_mut(&symbol) {
            s.sender.push(&bytes);
            self.counters.orders_sent += 1;
        }
        self.pending.insert(key, Pending { symbol, bytes, sent_at: Instant::now(), resends: 0 });
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
            if let Some(p) = self.pending.remove(key).filter(|p| p.resends == 0) {
                self.engine_round_trip.record(p.sent_at.elapsed());
            }
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
        self.poll_report_gaps();
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
