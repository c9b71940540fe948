//! Routes: for every reachable host, the direct peer a payload for it goes
//! to first (itself when connected, else a relay), from this node's live
//! sessions and the connections every host reports in gossip (the
//! computation is [`crate::routing::next_hops`]).

use super::Node;
use crate::keys::PublicKey;
use std::time::Instant;

impl Node {
    /// Recomputes next hops if anything they depend on changed.
    pub(super) fn refresh_routes(&mut self, now: Instant) {
        if !self.routes_dirty {
            return;
        }
        self.routes_dirty = false;
        let t = &self.cfg.timers;
        let direct: Vec<PublicKey> = self.peers.values().filter(|p| p.is_connected(now, t)).map(|p| p.key).collect();
        let links: Vec<(PublicKey, Vec<PublicKey>)> =
            self.gossip.records().map(|r| (r.key, r.connections.iter().map(|c| c.key).collect())).collect();
        self.hops =
            crate::routing::next_hops(self.public_key(), &direct, links.iter().map(|(k, v)| (*k, v.as_slice())));
    }

    /// The direct peer a payload for `dst` goes to, if `dst` is reachable
    /// (as of the last [`Node::refresh_routes`]).
    pub(super) fn next_hop(&self, dst: &PublicKey) -> Option<PublicKey> {
        self.hops.get(dst).copied()
    }
}
