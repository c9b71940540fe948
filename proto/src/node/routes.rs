//! Routes: for every reachable host, the direct peer a payload for it goes
//! to first: itself when a live session is up, else a relay whose signed
//! record says it reaches the host (the choice is
//! [`crate::routing::next_hops`]). Recomputed only when a session, a
//! liveness verdict or a record changed.

use super::Node;
use crate::keys::PublicKey;
use std::time::Instant;

impl Node {
    /// Recomputes next hops if anything they depend on changed.
    pub(super) fn refresh_routes(&mut self, _now: Instant) {
        if !self.routes_dirty {
            return;
        }
        self.routes_dirty = false;
        let direct: Vec<PublicKey> = self.peers.values().filter(|p| p.is_connected()).map(|p| p.key).collect();
        let targets: Vec<PublicKey> = self.peers.values().filter(|p| !p.is_connected()).map(|p| p.key).collect();
        let hops =
            crate::routing::next_hops(&direct, targets, |relay, to| self.record(relay).is_some_and(|r| r.reaches(to)));
        self.hops = hops;
    }

    /// The direct peer a payload for `dst` goes to, if `dst` is reachable
    /// (as of the last [`Node::refresh_routes`]).
    pub(super) fn next_hop(&self, dst: &PublicKey) -> Option<PublicKey> {
        self.hops.get(dst).copied()
    }
}
