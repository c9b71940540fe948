//! The gateway's unicast socket: its orders streams out (sealed under each
//! stream's key), the engines' reports in, and re-requests both ways. Every
//! datagram must verify under the key of its stream before anything in it
//! is believed: a report that does not verify never reaches the epoch
//! fence, and a re-request that does not, or that is stale, is never
//! answered.

use super::{Core, OrdersStream, ReportStream, MAX_REPORT_STREAMS, REPORT_PATIENCE_NS};
use crate::app::gateway::route::Fence;
use crate::auth::{self, AuthError, Kind, StreamKey, StreamKind};
use crate::stream::{Limits, Receiver, Start};
use crate::wire::mold::{Packet, Session};
use crate::wire::report;
use std::net::SocketAddr;

impl Core {
    fn refused(&mut self, e: AuthError) {
        match e {
            AuthError::Malformed => self.counters.dropped_malformed += 1,
            AuthError::Forged => self.counters.dropped_unauthenticated += 1,
            AuthError::Stale => self.counters.dropped_stale += 1,
        }
    }

    /// Handles a datagram on the unicast socket.
    pub fn on_datagram(&mut self, d: &[u8], from: SocketAddr) {
        let now = auth::unix_ns();
        let Some((kind, session)) = auth::peek(d) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        match kind {
            Kind::ReRequest => self.on_rerequest(d, session, from, now),
            Kind::Packet => self.on_report_packet(d, session, from, now),
        }
    }

    /// A re-request for one of our orders streams (from an engine with a
    /// gap): answered to the address it was sealed for, once.
    fn on_rerequest(&mut self, d: &[u8], session: Session, from: SocketAddr, now: u64) {
        let Some(s) = self.by_session.get(&session).and_then(|i| self.streams.get(i)) else {
            // No stream of ours: no key it could verify under.
            self.counters.dropped_unauthenticated += 1;
            return;
        };
        let req = match auth::open_rerequest(&s.key, &mut self.replay, from, d, now) {
            Ok(r) => r,
            Err(e) => return self.refused(e),
        };
        let mut packets = Vec::new();
        s.sender.retransmit(&req, &mut packets);
        for p in &mut packets {
            s.key.seal(Kind::Packet, self.local, p);
        }
        self.counters.rerequests_answered += 1;
        self.out.extend(packets.into_iter().map(|p| (p, from)));
    }

    fn on_report_packet(&mut self, d: &[u8], session: Session, from: SocketAddr, now: u64) {
        if !session.0.starts_with(b"r.") {
            // Not a report stream: nothing we hold a key for.
            self.counters.dropped_unauthenticated += 1;
            return;
        }
        let fresh_key;
        let key = match self.reports.get(&session) {
            Some(rs) => &rs.key,
            None => {
                fresh_key = StreamKey::derive(&self.root, StreamKind::Reports, &session);
                &fresh_key
            }
        };
        let body = match key.open_fresh(from, d, now) {
            Ok(o) => {
                self.report_transit.record(std::time::Duration::from_nanos(now.saturating_sub(o.time)));
                o.body
            }
            Err(e) => return self.refused(e),
        };
        let Ok(p) = Packet::decode(body) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        if !self.reports.contains_key(&session) {
            if self.reports.len() >= MAX_REPORT_STREAMS {
                self.counters.dropped_malformed += 1;
                return;
            }
            let key = StreamKey::derive(&self.root, StreamKind::Reports, &session);
            let start = self.resume.get(&session).copied().map_or(Start::AtOne, Start::At);
            let rx = Receiver::with_limits(start, Limits::REPORTS);
            self.reports.insert(session, ReportStream { rx, source: from, fence: Fence::default(), key });
        }
        let mono = self.now_ns();
        let Some(rs) = self.reports.get_mut(&session) else { return };
        rs.source = from;
        // Reports past a hole are held by the receiver and come out (here
        // or with a later packet) once it is filled.
        let mut reps = Vec::new();
        let mut malformed = 0;
        let arrival = rs.rx.on_packet(&p, mono, |_, m| match report::decode(m) {
            Ok(r) => reps.push(r),
            Err(_) => malformed += 1,
        });
        self.counters.dropped_malformed += malformed;
        self.counters.report_messages_over_limit += arrival.dropped as u64;
        // A hole seen is asked for now, not at the next tick.
        let mut reqs = Vec::new();
        rs.rx.poll_requests(session, mono, &mut reqs);
        for req in &reqs {
            self.counters.report_gaps_requested += 1;
            let d = auth::seal_rerequest(&rs.key, req, self.local, self.request_clock.stamp());
            self.out.push((d, rs.source));
        }
        self.counters.reports_in += arrival.delivered as u64;
        self.on_reports(session, reps);
    }

    /// Reports of a stream in stream order: fenced by epoch, then acted on.
    fn on_reports(&mut self, session: Session, reps: Vec<report::Report>) {
        for rep in reps {
            let Some(rs) = self.reports.get_mut(&session) else { break };
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

    /// Re-requests for the holes of every report stream, sealed, to where
    /// each stream's packets come from; holes given up after their
    /// patience (the reports held past them then go through).
    pub(super) fn poll_report_gaps(&mut self) {
        let now_ns = self.now_ns();
        let mut reqs = Vec::new();
        let mut released: Vec<(Session, Vec<report::Report>)> = Vec::new();
        for (session, rs) in &mut self.reports {
            reqs.clear();
            rs.rx.poll_requests(*session, now_ns, &mut reqs);
            for req in &reqs {
                self.counters.report_gaps_requested += 1;
                let d = auth::seal_rerequest(&rs.key, req, self.local, self.request_clock.stamp());
                self.out.push((d, rs.source));
            }
            let mut reps = Vec::new();
            let malformed = &mut self.counters.dropped_malformed;
            self.counters.report_messages_lost +=
                rs.rx.give_up_after(now_ns, REPORT_PATIENCE_NS, |_, m| match report::decode(m) {
                    Ok(r) => reps.push(r),
                    Err(_) => *malformed += 1,
                });
            if !reps.is_empty() {
                released.push((*session, reps));
            }
        }
        for (session, reps) in released {
            self.counters.reports_in += reps.len() as u64;
            self.on_reports(session, reps);
        }
    }

    /// Packets of every orders stream with new messages, sealed.
    pub fn flush(&mut self) {
        let mut packets = Vec::new();
        for s in self.streams.values_mut() {
            if s.sender.has_unsent() {
                packets.clear();
                s.sender.take_packets(&mut packets);
                let OrdersStream { key, group, .. } = &*s;
                for mut p in packets.drain(..) {
                    key.seal(Kind::Packet, self.local, &mut p);
                    self.out.push((p, *group));
                }
            }
        }
    }

    /// A heartbeat on every orders stream that has sent anything, after
    /// the packets of every message pushed so far (a heartbeat announces
    /// them: sent before them, it would make the engine see a gap and ask).
    pub fn heartbeats(&mut self) {
        self.flush();
        for s in self.streams.values() {
            if s.sender.next_seq() > 1 {
                let mut hb = s.sender.heartbeat();
                s.key.seal(Kind::Packet, self.local, &mut hb);
                self.out.push((hb, s.group));
            }
        }
    }
}
