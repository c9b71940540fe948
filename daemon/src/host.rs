//! This host's state across restarts, as the running daemon keeps it: the
//! peers file (peers added by hand, hosts met, the exposed address) and the
//! saving of it, of the IPAM state (`ipam.json`) and of this host's DNS
//! entries (`dns.json`) from what the node holds. The file formats and
//! the atomic writes are [`crate::state`].

use crate::state::{DnsFile, KnownPeer, PeersFile, StateDir};
use std::time::{Duration, Instant};
use weavers_proto::node::Node;

/// At most one save of `peers.json` per this long when the node's peers
/// change (see [`Host::peers_changed`]).
const PEERS_SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// The state directory and the peers file as last saved.
pub struct Host {
    state: StateDir,
    /// What `peers.json` holds; commands change it, then call [`Host::save_peers`].
    pub peers_file: PeersFile,
    /// When `peers.json` was last written from the node.
    peers_saved: Option<Instant>,
    /// The node's peers changed since then.
    peers_dirty: bool,
}

impl Host {
    /// The state dir.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// The host's state from an opened state dir and its peers file.
    pub fn new(state: StateDir, peers_file: PeersFile) -> Self {
        Host { state, peers_file, peers_saved: None, peers_dirty: false }
    }

    /// The overlay address `weavers expose` gave this host, e.g. `10.32.0.1/12`.
    pub fn exposed(&self) -> Option<&str> {
        self.peers_file.exposed.as_deref()
    }

    /// The node's peers changed (a handshake, a new or forgotten host):
    /// saved at once when the last save is [`PEERS_SAVE_INTERVAL`] old,
    /// else at the first [`Host::save_peers_if_due`] after that. A forming
    /// mesh of N hosts changes each host's peers about 2N times within
    /// seconds, and every save writes (and syncs) the whole file from the
    /// event loop: unbounded, that was most of a host's CPU and stalled
    /// its handshakes. Cost: a crash within a second of a handshake may
    /// lose its timestamp, so that one initiation could be replayed once
    /// after the restart (it gets a response its sender cannot use, and
    /// no session).
    pub fn peers_changed(&mut self, node: &Node, now: Instant) {
        self.peers_dirty = true;
        self.save_peers_if_due(node, now);
    }

    /// Saves `peers.json` if the node's peers changed and the last save is
    /// old enough (each tick).
    pub fn save_peers_if_due(&mut self, node: &Node, now: Instant) {
        if self.peers_dirty && self.peers_saved.is_none_or(|t| now.saturating_duration_since(t) >= PEERS_SAVE_INTERVAL)
        {
            self.save_peers(node);
            self.peers_saved = Some(now);
        }
    }

    /// Saves `peers.json` with the hosts the node knows now. Failures are
    /// logged: the daemon goes on with what it has in memory.
    pub fn save_peers(&mut self, node: &Node) {
        self.peers_dirty = false;
        self.peers_file.known = node
            .known_peers()
            .into_iter()
            .map(|k| KnownPeer {
                public_key: k.key.to_base64(),
                endpoint: k.endpoint.to_string(),
                name: k.name,
                last_handshake: k.last_handshake,
            })
            .collect();
        self.peers_file.known.sort_by(|a, b| a.public_key.cmp(&b.public_key));
        if let Err(e) = self.state.save_peers(&self.peers_file) {
            tracing::warn!("saving peers: {e:#}");
        }
    }

    /// Writes the ring and allocations to `ipam.json`. The error is the
    /// caller's: an allocation is answered only once it is on disk.
    pub fn save_ipam(&self, node: &Node) -> anyhow::Result<()> {
        let (ring, alloc) = node.ipam_snapshot();
        self.state.save_ipam(ring, alloc)
    }

    /// Saves this host's own DNS entries to `dns.json`; failures are logged.
    pub fn save_dns(&self, node: &Node) {
        let file = DnsFile { entries: node.dns_own_entries().to_vec() };
        if let Err(e) = self.state.save_dns(&file) {
            tracing::warn!("saving DNS entries: {e:#}");
        }
    }
}
