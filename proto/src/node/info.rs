//! Snapshots of the node for the control API.

use super::{Io, Node};
use crate::keys::PublicKey;
use std::time::{Duration, Instant};
use weavers_api::{PeerInfo, PeerState, PendingPeer};

impl Node {
    /// One row per known host, sorted by name then key.
    pub fn peer_infos(&mut self, now: Instant) -> Vec<PeerInfo> {
        self.refresh_routes(now);
        let mut rows: Vec<PeerInfo> = self
            .peers
            .values()
            .map(|p| {
                let connected = p.is_connected();
                let hop = self.next_hop(&p.key);
                let state = if connected {
                    PeerState::Connected
                } else if hop.is_some_and(|h| h != p.key) {
                    PeerState::Relayed
                } else if p.in_flight.is_some() || p.attempts > 0 || p.endpoint.is_some() {
                    PeerState::Connecting
                } else {
                    PeerState::Unreachable
                };
                let via = match state {
                    PeerState::Relayed => hop.and_then(|h| self.peers.get(&h)).map(|h| {
                        if h.name.is_empty() {
                            h.key.to_base64()
                        } else {
                            h.name.clone()
                        }
                    }),
                    _ => None,
                };
                PeerInfo {
                    name: p.name.clone(),
                    public_key: p.key.to_base64(),
                    endpoint: p.endpoint.filter(|_| connected).map(|e| e.to_string()),
                    state,
                    via,
                    rtt_us: p.rtt.filter(|_| connected).map(|d| d.as_micros() as u64),
                    // The newest session's: a responder's unconfirmed one
                    // counts, and it stays while the session is kept, also
                    // once the peer stops answering (as `wg show` does).
                    session_age_s: [p.current.as_ref(), p.next.as_ref()]
                        .into_iter()
                        .flatten()
                        .map(|s| now.saturating_duration_since(s.established).as_secs())
                        .min(),
                    overlay_addr: self.record(&p.key).and_then(|r| r.overlay_addr).map(|(a, l)| format!("{a}/{l}")),
                    traffic: p.traffic,
                }
            })
            .collect();
        rows.sort_by(|a, b| (&a.name, &a.public_key).cmp(&(&b.name, &b.public_key)));
        rows
    }

    /// `weavers ping`: pings `key` now, or the relay towards it when it is
    /// reached through one (control messages travel between direct peers
    /// only). `None` when there is no path to it. The answer is seen in
    /// [`Node::pongs`] of the probe's target.
    pub fn probe(&mut self, now: Instant, key: &PublicKey, io: &mut impl Io) -> Option<Probe> {
        self.refresh_routes(now);
        let hop = self.next_hop(key)?;
        let target = self.peers.get(&hop).filter(|p| p.is_connected())?;
        let probe = Probe { target: hop, relayed_via: (hop != *key).then_some(hop), pongs_before: target.pongs };
        self.send_ping(now, hop, io);
        self.flush(io);
        Some(probe)
    }

    /// Pongs `key` has answered so far, and the round trip of the last.
    pub fn pongs(&self, key: &PublicKey) -> Option<(u64, Option<Duration>)> {
        self.peers.get(key).map(|p| (p.pongs, p.rtt))
    }

    /// Configured addresses whose peer is not known yet.
    pub fn pending(&self) -> Vec<PendingPeer> {
        self.bootstraps
            .iter()
            .filter(|b| b.key.is_none())
            .map(|b| PendingPeer { endpoint: b.addr.to_string(), attempts: b.attempts })
            .collect()
    }
}

/// A ping sent for `weavers ping` ([`Node::probe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The peer pinged: the host itself, or its relay.
    pub target: PublicKey,
    /// The relay when the host is reached through one.
    pub relayed_via: Option<PublicKey>,
    /// The target's pong count before this ping: a higher one answers it.
    pub pongs_before: u64,
}
