//! The ingress logic, without sockets: order streams (one receiver per
//! source address and session, late joiners welcome), gaps re-requested
//! from the stream's source, inputs delivered in stream order, and every
//! datagram treated as hostile (malformed or foreign: counted, dropped).
//!
//! Every datagram must verify under its stream's key ([`EngineKeys`])
//! from the address it came from, and be fresh, before anything in it is
//! believed: an orders packet before its inputs are delivered or its
//! source is taken for the gateway's (where reports go), a re-request
//! before it is answered (market data: any holder of the `md` key; reports:
//! only the gateway whose orders come from that address, with its key).

use super::keys::EngineKeys;
use super::publisher::GatewayId;
use super::stats::{add, Stats};
use crate::auth::{self, AuthError, Kind, ReplayGuard, RequestClock};
use crate::events::Input;
use crate::stream::{Receiver, Start};
use crate::types::SymbolIndex;
use crate::wire::input::decode_input;
use crate::wire::mold::{Packet, ReRequest, Session};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// The most order streams tracked (a flood of made-up sessions stops here).
pub const MAX_STREAMS: usize = 65_536;

/// What the ingress wants done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Hand this input to the matcher (in this order).
    Deliver(Input),
    /// Gateway `id`'s orders come from this address.
    Gateway(GatewayId, SocketAddr),
    /// A re-request for one of our streams arrived from this address,
    /// authentic and fresh (for the publisher).
    Serve(SocketAddr, ReRequest),
    /// Send this sealed re-request to this address (a gap in an order stream).
    Ask(SocketAddr, Vec<u8>),
}

/// Parses an order stream's session name `g<gw>.<symbol>` (each at least
/// three digits; the gateway at most 255): returns (gateway, symbol).
pub fn parse_order_session(s: &Session) -> Option<(GatewayId, SymbolIndex)> {
    let name = std::str::from_utf8(&s.0).ok()?.trim_end_matches(' ');
    let rest = name.strip_prefix('g')?;
    let (gw, sym) = rest.split_once('.')?;
    let digits = |d: &str| d.len() >= 3 && d.bytes().all(|b| b.is_ascii_digit());
    if !digits(gw) || !digits(sym) {
        return None;
    }
    Some((gw.parse().ok()?, sym.parse().ok()?))
}

/// The ingress state.
pub struct Ingress {
    traded: Vec<bool>,
    streams: HashMap<(SocketAddr, Session), Receiver>,
    gateways: HashMap<GatewayId, SocketAddr>,
    stats: Arc<Stats>,
    keys: EngineKeys,
    replay: ReplayGuard,
    clock: RequestClock,
    /// Our unicast socket's address (our re-requests are sealed for it).
    local: SocketAddr,
}

impl Ingress {
    /// An ingress for an engine trading `symbols`, verifying with `keys`,
    /// whose unicast socket is `local`.
    pub fn new(
        symbols: impl IntoIterator<Item = SymbolIndex>,
        stats: Arc<Stats>,
        keys: EngineKeys,
        local: SocketAddr,
    ) -> Ingress {
        let mut traded = vec![false; usize::from(u16::MAX) + 1];
        for s in symbols {
            traded[usize::from(s)] = true;
        }
        Ingress {
            traded,
            streams: HashMap::new(),
            gateways: HashMap::new(),
            stats,
            keys,
            replay: ReplayGuard::new(),
            clock: RequestClock::default(),
            local,
        }
    }

    fn refused(&self, e: AuthError) {
        let c = match e {
            AuthError::Malformed => &self.stats.dropped_malformed,
            AuthError::Forged => &self.stats.dropped_unauthenticated,
            AuthError::Stale => &self.stats.dropped_stale,
        };
        add(c, 1);
    }

    /// A datagram from `src` (on the orders groups or the unicast socket);
    /// `now_ns` is the monotonic clock of the streams' timers.
    pub fn on_datagram(&mut self, src: SocketAddr, d: &[u8], now_ns: u64, out: &mut Vec<Action>) {
        let Some((kind, session)) = auth::peek(d) else {
            add(&self.stats.dropped_malformed, 1);
            return;
        };
        let now = auth::unix_ns();
        match kind {
            Kind::ReRequest => self.on_rerequest(src, session, d, now, out),
            Kind::Packet => {
                let Some((gateway, symbol)) = parse_order_session(&session) else {
                    add(&self.stats.dropped_foreign, 1);
                    return;
                };
                if !self.traded[usize::from(symbol)] {
                    add(&self.stats.dropped_foreign, 1);
                    return;
                }
                let Some(key) = self.keys.orders(session, gateway) else {
                    // A gateway whose key we lack: nothing of it verifies.
                    add(&self.stats.dropped_unauthenticated, 1);
                    return;
                };
                let body = match key.open_fresh(src, d, now) {
                    Ok(o) => {
                        let transit = std::time::Duration::from_nanos(now.saturating_sub(o.time));
                        self.stats.transit_times.record(transit);
                        o.body
                    }
                    Err(e) => return self.refused(e),
                };
                match Packet::decode(body) {
                    Ok(p) => self.on_packet(src, gateway, &p, now_ns, out),
                    Err(_) => add(&self.stats.dropped_malformed, 1),
                }
            }
        }
    }

    /// A re-request for one of our streams: market data from anyone with
    /// the `md` key; reports only from the gateway whose orders come from
    /// that address, under that gateway's key.
    fn on_rerequest(&mut self, src: SocketAddr, session: Session, d: &[u8], now: u64, out: &mut Vec<Action>) {
        let key = if let Some(k) = self.keys.md_by_session(&session) {
            Some(k)
        } else if session == self.keys.report_session() {
            let g = self.gateways.iter().find(|(_, &a)| a == src).map(|(&g, _)| g);
            g.and_then(|g| self.keys.reports(g))
        } else {
            None
        };
        let Some(key) = key else {
            add(&self.stats.dropped_unauthenticated, 1);
            return;
        };
        match auth::open_rerequest(key, &mut self.replay, src, d, now) {
            Ok(req) => out.push(Action::Serve(src, req)),
            Err(e) => self.refused(e),
        }
    }

    fn on_packet(&mut self, src: SocketAddr, gateway: GatewayId, p: &Packet<'_>, now_ns: u64, out: &mut Vec<Action>) {
        let key = (src, p.session);
        if !self.streams.contains_key(&key) {
            if self.streams.len() >= MAX_STREAMS {
                add(&self.stats.dropped_foreign, 1);
                return;
            }
            self.streams.insert(key, Receiver::new(Start::AtFirst));
            add(&self.stats.order_streams, 1);
        }
        if self.gateways.get(&gateway) != Some(&src) {
            self.gateways.insert(gateway, src);
            out.push(Action::Gateway(gateway, src));
        }
        let Ingress { streams, traded, stats, keys, clock, local, .. } = self;
        let Some(receiver) = streams.get_mut(&key) else { return };
        // Inputs past a hole are held by the receiver and delivered (here
        // or with a later packet) once it is filled.
        let arrival = receiver.on_packet(p, now_ns, |_, msg| deliver(traded, stats, gateway, msg, out));
        add(&stats.order_messages_over_limit, arrival.dropped as u64);
        // A hole seen is asked for now, not at the next tick: every
        // millisecond waited is added to every order behind it.
        let mut reqs = Vec::new();
        receiver.poll_requests(p.session, now_ns, &mut reqs);
        if let Some(key) = keys.orders_known(&p.session) {
            for req in &reqs {
                add(&stats.order_gaps_requested, 1);
                out.push(Action::Ask(src, auth::seal_rerequest(key, req, *local, clock.stamp())));
            }
        }
    }
}

/// Decodes an input of gateway `gateway`'s stream and delivers it if this
/// engine takes it (counting what it does not).
fn deliver(traded: &[bool], stats: &Stats, gateway: GatewayId, msg: &[u8], out: &mut Vec<Action>) {
    match decode_input(msg) {
        Err(_) => add(&stats.dropped_malformed, 1),
        Ok(input) if accepts(traded, gateway, &input) => out.push(Action::Deliver(input)),
        Ok(_) => add(&stats.dropped_foreign, 1),
    }
}

/// Whether an input from gateway `gateway`'s stream is one this engine
/// takes (`traded`: by symbol index).
fn accepts(traded: &[bool], gateway: GatewayId, input: &Input) -> bool {
    let (session, symbol) = match *input {
        Input::Enter(o) => (o.session, o.symbol),
        Input::Cancel { session, symbol, .. } | Input::Reduce { session, symbol, .. } => (session, symbol),
        // The end of the day is not a gateway's to call.
        Input::EndOfDay => return false,
    };
    super::publisher::gateway_of(session) == gateway && traded[usize::from(symbol)]
}

impl Ingress {
    /// The periodic work (every ~10 ms): re-requests for open gaps, and
    /// gaps given up on after [`crate::stream::GIVE_UP_NS`].
    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<Action>) {
        let mut reqs = Vec::new();
        for ((src, session), receiver) in &mut self.streams {
            let Some((gateway, _)) = parse_order_session(session) else { continue };
            let lost = receiver.give_up(now_ns, |_, msg| deliver(&self.traded, &self.stats, gateway, msg, out));
            add(&self.stats.order_messages_lost, lost);
            reqs.clear();
            receiver.poll_requests(*session, now_ns, &mut reqs);
            // Streams exist only once a packet verified: the key is known.
            let Some(key) = self.keys.orders_known(session) else { continue };
            for req in &reqs {
                add(&self.stats.order_gaps_requested, 1);
                out.push(Action::Ask(*src, auth::seal_rerequest(key, req, self.local, self.clock.stamp())));
            }
        }
    }

    /// The number of order streams tracked.
    pub fn streams(&self) -> usize {
        self.streams.len()
    }
}
