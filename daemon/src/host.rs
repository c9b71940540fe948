//! This host's state across restarts, as the running daemon keeps it: the
//! peers file (peers added by hand, hosts met, the exposed address) and the
//! saving of it, of the IPAM state (`ipam.json`) and of this host's DNS
//! entries (`dns.json`) from what the node holds. The file formats and
//! the atomic writes are [`crate::state`].

use crate::state::{DnsFile, KnownPeer, PeersFile, StateDir};
use weavers_proto::node::Node;

/// The state directory and the peers file as last saved.
pub struct Host {
    state: StateDir,
    /// What `peers.json` holds; commands change it, then call [`Host::save_peers`].
    pub peers_file: PeersFile,
}

impl Host {
    /// The state dir.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// The host's state from an opened state dir and its peers file.
    pub fn new(state: StateDir, peers_file: PeersFile) -> Self {
        Host { state, peers_file }
    }

    /// The overlay address `weavers expose` gave this host, e.g. `10.32.0.1/12`.
    pub fn exposed(&self) -> Option<&str> {
        self.peers_file.exposed.as_deref()
    }

    /// Saves `peers.json` with the hosts the node knows now. Failures are
    /// logged: the daemon goes on with what it has in memory.
    pub fn save_peers(&mut self, node: &Node) {
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
