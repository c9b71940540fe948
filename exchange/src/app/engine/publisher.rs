//! The publisher's logic, without sockets: outputs wait until their record
//! is durable, then become market-data messages (`md.SSS`, one stream per
//! symbol) and reports (`r.NAME`, one stream per gateway), numbered exactly
//! as `ARCHITECTURE.md` says ([`route`]); heartbeats; re-requests answered
//! from the streams' history under a rate limit. Every packet leaves sealed
//! under its stream's key ([`EngineKeys`]) for the engine's unicast address
//! ([`Publisher::set_source`]); reports to a gateway whose key the engine
//! lacks are not sent (counted in `send_errors`).

use super::keys::EngineKeys;
use super::stats::{add, Stats};
use crate::auth::{Kind, StreamKey};
use crate::events::{Outputs, Response};
use crate::stream::{Sender, HISTORY};
use crate::types::{Seq, SessionId, SymbolIndex};
use crate::wire::mold::{ReRequest, Session};
use crate::wire::{itch, report};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

/// A gateway's number: the top byte of its sessions' ids.
pub type GatewayId = u8;

/// The gateway a session belongs to (`session >> 24`).
pub fn gateway_of(session: SessionId) -> GatewayId {
    (session >> 24) as GatewayId
}

/// The stream a message goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dest {
    /// Market data of a symbol (`md.SSS`).
    Md(SymbolIndex),
    /// Reports to a gateway (`r.NAME`).
    Reports(GatewayId),
}

/// The market-data session name of a symbol: `md.<symbol:03>`.
pub fn md_session(symbol: SymbolIndex) -> Session {
    Session::new(&format!("md.{symbol:03}")).expect("md.NNNNN fits a session name")
}

/// Calls `emit` with every message one input's outputs put on the streams,
/// in stream order: each market-data event on its symbol's stream (ITCH,
/// stamped with the outputs' epoch and time), then each response on the
/// stream of every gateway it concerns (an execution: the maker's, then
/// the taker's if different). `scratch` is a reusable buffer.
pub fn route(o: &Outputs, scratch: &mut Vec<u8>, mut emit: impl FnMut(Dest, &[u8])) {
    for &event in &o.market_data {
        scratch.clear();
        itch::encode(&itch::ItchMessage { epoch: o.epoch, time: o.time, event }, scratch);
        emit(Dest::Md(event.symbol()), scratch);
    }
    for &response in &o.responses {
        scratch.clear();
        report::encode(&report::Report { epoch: o.epoch, seq: o.seq, time: o.time, response }, scratch);
        let (first, second) = match response {
            Response::Accepted(a) => (a.order.session, None),
            Response::Rejected(r) => (r.session, None),
            Response::Cancelled(c) => (c.session, None),
            Response::Executed(e) => {
                let (m, t) = (gateway_of(e.maker.session), gateway_of(e.taker.session));
                (e.maker.session, (m != t).then_some(e.taker.session))
            }
        };
        emit(Dest::Reports(gateway_of(first)), scratch);
        if let Some(s) = second {
            emit(Dest::Reports(gateway_of(s)), scratch);
        }
    }
}

/// Retransmissions allowed in a burst (packets).
pub const RETRANSMIT_BURST: f64 = 500.0;
/// Retransmissions allowed per second, sustained (packets).
pub const RETRANSMIT_RATE: f64 = 5000.0;

/// A token bucket for retransmitted packets.
#[derive(Clone, Debug)]
struct Bucket {
    tokens: f64,
    at_ns: u64,
}

impl Bucket {
    fn take(&mut self, now_ns: u64, want: usize) -> usize {
        let dt = now_ns.saturating_sub(self.at_ns) as f64 / 1e9;
        self.at_ns = now_ns.max(self.at_ns);
        self.tokens = (self.tokens + dt * RETRANSMIT_RATE).min(RETRANSMIT_BURST);
        let n = (self.tokens as usize).min(want);
        self.tokens -= n as f64;
        n
    }
}

struct MdStream {
    sender: Sender,
    group: SocketAddr,
}

/// The publisher's state.
pub struct Publisher {
    md: BTreeMap<SymbolIndex, MdStream>,
    md_by_session: HashMap<Session, SymbolIndex>,
    report_session: Session,
    reports: BTreeMap<GatewayId, Sender>,
    gateways: HashMap<GatewayId, SocketAddr>,
    pending: VecDeque<Outputs>,
    durable: Seq,
    /// Market-data retransmissions (any number of consumers).
    bucket: Bucket,
    /// Report retransmissions, apart: consumers asking for market data
    /// must never starve a gateway of its executions.
    report_bucket: Bucket,
    /// How long market data may wait for [`Publisher::flush_md`] (see [`Publisher::batch_md`]).
    md_batch: std::time::Duration,
    /// Market data was absorbed since the last flush (so the publisher
    /// thread need not look at every stream after every event).
    md_waiting: bool,
    scratch: Vec<u8>,
    packets: Vec<Vec<u8>>,
    stats: Arc<Stats>,
    keys: EngineKeys,
    /// Where our packets come from (sealed for it): the unicast socket.
    local: SocketAddr,
}

/// Seals `packets` under `key` as sent from `local` and queues them for
/// `to`; without a key they are dropped and counted.
fn seal_out(
    key: Option<&StreamKey>,
    local: SocketAddr,
    packets: &mut Vec<Vec<u8>>,
    to: SocketAddr,
    out: &mut Vec<(SocketAddr, Vec<u8>)>,
    stats: &Stats,
) {
    let Some(key) = key else {
        add(&stats.send_errors, packets.len() as u64);
        packets.clear();
        return;
    };
    for mut p in packets.drain(..) {
        key.seal(Kind::Packet, local, &mut p);
        out.push((to, p));
    }
}

impl Publisher {
    /// A publisher for `engine_name`'s reports and the market data of the
    /// symbols in `md_groups` (each with the address its packets go to),
    /// sealing with `keys`.
    pub fn new(
        engine_name: &str,
        md_groups: impl IntoIterator<Item = (SymbolIndex, SocketAddr)>,
        stats: Arc<Stats>,
        keys: EngineKeys,
    ) -> Option<Publisher> {
        let report_session = Session::new(&format!("r.{engine_name}"))?;
        let mut md = BTreeMap::new();
        let mut md_by_session = HashMap::new();
        for (symbol, group) in md_groups {
            let session = md_session(symbol);
            md_by_session.insert(session, symbol);
            md.insert(symbol, MdStream { sender: Sender::new(session, HISTORY), group });
        }
        Some(Publisher {
            md,
            md_by_session,
            report_session,
            reports: BTreeMap::new(),
            gateways: HashMap::new(),
            pending: VecDeque::new(),
            durable: 0,
            bucket: Bucket { tokens: RETRANSMIT_BURST, at_ns: 0 },
            report_bucket: Bucket { tokens: RETRANSMIT_BURST, at_ns: 0 },
            md_batch: std::time::Duration::ZERO,
            md_waiting: false,
            scratch: Vec::new(),
            packets: Vec::new(),
            stats,
            keys,
            local: SocketAddr::from(([0, 0, 0, 0], 0)),
        })
    }

    /// The address our packets leave from (the unicast socket's), which
    /// every packet is sealed for; set before anything is sent.
    pub fn set_source(&mut self, local: SocketAddr) {
        self.local = local;
    }

    /// The highest durable sequence number seen.
    pub fn durable(&self) -> Seq {
        self.durable
    }

    /// Outputs waiting for durability.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The next message number of a stream (1 before any).
    pub fn next_seq(&self, dest: Dest) -> u64 {
        match dest {
            Dest::Md(s) => self.md.get(&s).map_or(1, |m| m.sender.next_seq()),
            Dest::Reports(g) => self.reports.get(&g).map_or(1, Sender::next_seq),
        }
    }

    /// Puts one input's outputs on the streams without counting or sending
    /// them (recovery: what the journal already produced keeps its numbers
    /// and stays available for re-requests). Call [`Publisher::recovered`]
    /// after the last.
    pub fn replay(&mut self, o: &Outputs) {
        self.absorb(o);
        self.durable = self.durable.max(o.seq);
    }

    /// Marks everything replayed as already sent.
    pub fn recovered(&mut self) {
        self.md_waiting = false;
        for m in self.md.values_mut() {
            m.sender.mark_sent();
        }
        for s in self.reports.values_mut() {
            s.mark_sent();
        }
    }

    /// Routes outputs into the streams; returns (md messages, reports).
    fn absorb(&mut self, o: &Outputs) -> (u64, u64) {
        let (md, reports, report_session) = (&mut self.md, &mut self.reports, self.report_session);
        let md_waiting = &mut self.md_waiting;
        let (mut n_md, mut n_rep) = (0, 0);
        route(o, &mut self.scratch, |dest, msg| match dest {
            Dest::Md(s) => {
                if let Some(m) = md.get_mut(&s) {
                    m.sender.push(msg);
                    *md_waiting = true;
                    n_md += 1;
                }
            }
            Dest::Reports(g) => {
                reports.entry(g).or_insert_with(|| Sender::new(report_session, HISTORY)).push(msg);
                n_rep += 1;
            }
        });
        (n_md, n_rep)
    }

    /// Takes an input's outputs; they wait for [`Publisher::on_durable`].
    pub fn on_outputs(&mut self, o: Outputs) {
        self.pending.push_back(o);
    }

    /// Records up to `seq` are durable: releases their outputs and appends
    /// the packets to send to `out`.
    pub fn on_durable(&mut self, seq: Seq, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        self.durable = self.durable.max(seq);
        let mut released = false;
        while self.pending.front().is_some_and(|o| o.seq <= self.durable) {
            let Some(o) = self.pending.pop_front() else { break };
            let (n_md, n_rep) = self.absorb(&o);
            add(&self.stats.md_messages, n_md);
            add(&self.stats.reports, n_rep);
            for r in &o.responses {
                match r {
                    Response::Rejected(_) => add(&self.stats.rejects, 1),
                    Response::Executed(_) => add(&self.stats.trades, 1),
                    _ => {}
                }
            }
            released = true;
        }
        if released {
            self.flush_reports(out);
            if self.md_batch.is_zero() {
                self.flush_md(out);
            }
        }
    }

    /// With a nonzero `batch`, market data released by
    /// [`Publisher::on_durable`] waits for [`Publisher::flush_md`], which the
    /// publisher thread calls at most `batch` after the first message waits
    /// (more messages per packet, fewer frames for the host, at the cost of
    /// market-data latency); reports are never held.
    pub fn batch_md(&mut self, batch: std::time::Duration) {
        self.md_batch = batch;
    }

    /// How long market data may wait (zero: not at all).
    pub fn md_batch(&self) -> std::time::Duration {
        self.md_batch
    }

    /// Whether market data waits to be sent (set when some is absorbed,
    /// cleared by a flush or [`Publisher::recovered`]; may be set with
    /// nothing left to send, then a flush finds nothing).
    pub fn md_unsent(&self) -> bool {
        self.md_waiting
    }

    /// Appends the packets of the market data not yet sent.
    pub fn flush_md(&mut self, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        self.md_waiting = false;
        for (s, m) in self.md.iter_mut() {
            if m.sender.has_unsent() {
                m.sender.take_packets(&mut self.packets);
                seal_out(self.keys.md(*s), self.local, &mut self.packets, m.group, out, &self.stats);
            }
        }
    }

    /// Appends the packets of the reports not yet sent to known gateways.
    pub fn flush_reports(&mut self, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        for (g, s) in &mut self.reports {
            if let Some(&addr) = self.gateways.get(g) {
                if s.has_unsent() {
                    s.take_packets(&mut self.packets);
                    seal_out(self.keys.reports(*g), self.local, &mut self.packets, addr, out, &self.stats);
                }
            }
        }
    }

    /// A gateway's orders come from `addr`: its reports go there from now
    /// on (those held back for want of an address are appended to `out`;
    /// if none are, but the stream has history — recovered, or applied by a
    /// promoted standby — a heartbeat, so the gateway asks at once for what
    /// it missed instead of at the next second).
    pub fn on_gateway(&mut self, id: GatewayId, addr: SocketAddr, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        if self.gateways.insert(id, addr) != Some(addr) {
            if let Some(s) = self.reports.get_mut(&id) {
                if s.has_unsent() {
                    s.take_packets(&mut self.packets);
                } else {
                    self.packets.push(s.heartbeat());
                }
                seal_out(self.keys.reports(id), self.local, &mut self.packets, addr, out, &self.stats);
            }
        }
    }

    /// Appends a heartbeat for every market-data stream and the report
    /// stream of every gateway whose address is known.
    pub fn heartbeats(&mut self, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        for (s, m) in &self.md {
            self.packets.push(m.sender.heartbeat());
            seal_out(self.keys.md(*s), self.local, &mut self.packets, m.group, out, &self.stats);
        }
        for (&g, &addr) in &self.gateways {
            let hb = match self.reports.get(&g) {
                Some(s) => s.heartbeat(),
                None => crate::wire::mold::heartbeat(self.report_session, 1),
            };
            self.packets.push(hb);
            seal_out(self.keys.reports(g), self.local, &mut self.packets, addr, out, &self.stats);
        }
    }

    /// Answers a re-request from `from` (authenticated by the ingress:
    /// market data, anyone with the `md` key; reports, the gateway at that
    /// address), within the retransmission budget (one for market data, one
    /// for reports).
    pub fn on_rerequest(
        &mut self,
        from: SocketAddr,
        req: &ReRequest,
        now_ns: u64,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        let (sender, key, counter, bucket) = if let Some(s) = self.md_by_session.get(&req.session) {
            (self.md.get(s).map(|m| &m.sender), self.keys.md(*s), &self.stats.md_rerequests_served, &mut self.bucket)
        } else if req.session == self.report_session {
            let g = self.gateways.iter().find(|(_, &a)| a == from).map(|(&g, _)| g);
            let key = g.and_then(|g| self.keys.reports(g));
            (g.and_then(|g| self.reports.get(&g)), key, &self.stats.report_rerequests_served, &mut self.report_bucket)
        } else {
            (None, None, &self.stats.rerequests_unknown, &mut self.bucket)
        };
        let Some(sender) = sender else {
            add(&self.stats.rerequests_unknown, 1);
            return;
        };
        sender.retransmit(req, &mut self.packets);
        let allowed = bucket.take(now_ns, self.packets.len());
        if allowed < self.packets.len() {
            add(&self.stats.rerequests_throttled, 1);
        }
        if allowed > 0 {
            add(counter, 1);
        }
        self.packets.truncate(allowed);
        seal_out(key, self.local, &mut self.packets, from, out, &self.stats);
        self.packets.clear();
    }
}
