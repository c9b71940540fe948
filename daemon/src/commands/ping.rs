//! `weavers ping`: a ping sent now to a peer (or to the relay that reaches
//! it), answered when its pong arrives or after [`TIMEOUT`]. Pings in
//! flight are checked after each batch of the node's work.

use crate::control::PingError;
use crate::kernel_io::Plane;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use weavers_api::{PeerInfo, PeerState, PingResult};
use weavers_proto::keys::PublicKey;
use weavers_proto::node::{Node, Probe};

/// How long a ping waits for its pong.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Pings in flight at most (more are refused at once).
const MAX_IN_FLIGHT: usize = 64;

/// A ping waiting for its pong.
#[derive(Debug)]
pub struct InFlight {
    probe: Probe,
    sent: Instant,
    answer: PingResult,
    tx: oneshot::Sender<Result<PingResult, PingError>>,
}

/// The pings in flight.
#[derive(Debug, Default)]
pub struct Pings(Vec<InFlight>);

/// The row of `peer` (a name, or a public key) among `rows`.
fn find<'a>(rows: &'a [PeerInfo], peer: &str) -> Option<&'a PeerInfo> {
    rows.iter().find(|r| r.public_key == peer.trim()).or_else(|| rows.iter().find(|r| r.name == peer.trim()))
}

impl Pings {
    /// Sends a ping to `peer` now; its answer goes to `tx` later.
    pub fn start(
        &mut self,
        plane: &mut Plane,
        peer: &str,
        now: Instant,
        tx: oneshot::Sender<Result<PingResult, PingError>>,
    ) {
        if self.0.len() >= MAX_IN_FLIGHT {
            let _ = tx.send(Err(PingError::NoAnswer("too many pings in flight; try again".into())));
            return;
        }
        let rows = plane.node.peer_infos(now);
        let Some(row) = find(&rows, peer) else {
            let _ = tx.send(Err(PingError::Unknown(format!("no peer {peer:?} (weavers peer ls lists them)"))));
            return;
        };
        let Some(key) = PublicKey::from_base64(&row.public_key) else { return };
        let Some(probe) = plane.with_io(|node, io| node.probe(now, &key, io)) else {
            let _ = tx.send(Err(PingError::Unknown(format!("{}: no path (state {:?})", row.name, row.state))));
            return;
        };
        let via = probe.relayed_via.and_then(|h| rows.iter().find(|r| r.public_key == h.to_base64()));
        let answer = PingResult {
            name: row.name.clone(),
            public_key: row.public_key.clone(),
            path: if row.state == PeerState::Relayed { "relayed" } else { "direct" }.into(),
            via: via.map(|v| v.name.clone()),
            endpoint: via.map_or(row.endpoint.clone(), |v| v.endpoint.clone()),
            rtt_us: 0,
            overlay_mtu: plane.node.overlay_mtu() as u32,
        };
        self.0.push(InFlight { probe, sent: now, answer, tx });
    }

    /// Answers the pings whose pong came, and those that waited too long.
    pub fn poll(&mut self, node: &Node, now: Instant) {
        if self.0.is_empty() {
            return;
        }
        for p in std::mem::take(&mut self.0) {
            let answered = node.pongs(&p.probe.target).filter(|(n, _)| *n > p.probe.pongs_before);
            if let Some((_, rtt)) = answered {
                let mut answer = p.answer;
                answer.rtt_us = rtt.map_or(0, |d| d.as_micros() as u64);
                let _ = p.tx.send(Ok(answer));
            } else if now.saturating_duration_since(p.sent) >= TIMEOUT {
                let _ = p.tx.send(Err(PingError::NoAnswer(format!("{}: no answer within {TIMEOUT:?}", p.answer.name))));
            } else {
                self.0.push(p);
            }
        }
    }
}
