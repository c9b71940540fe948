//! Control-API types: the JSON the daemon serves on its unix socket and the
//! command line prints with `--json`.
//!
//! Routes (HTTP/1.1 over the unix socket):
//! - `GET /v1/status` -> [`Status`]
//! - `GET /v1/peers` -> `Vec<PeerInfo>`
//! - `POST /v1/peers` with [`PeerAddrs`] -> [`PeerAddrs`] (what was added)
//! - `DELETE /v1/peers` with [`PeerAddrs`] -> [`PeerAddrs`] (what was removed)
//! - `POST /v1/expose` with [`ExposeRequest`] -> [`ExposeResponse`]
//!
//! Errors come back with a 4xx/5xx status and an [`ApiError`] body.

use serde::{Deserialize, Serialize};

/// The state of a peer as seen from this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// An encrypted session with the peer is up and it answers.
    Connected,
    /// No direct session, but frames reach it through another peer.
    Relayed,
    /// A handshake is under way or being retried.
    Connecting,
    /// Known by gossip, but neither a direct session nor a relay route exists.
    Unreachable,
}

impl PeerState {
    /// The lowercase name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Connected => "connected",
            PeerState::Relayed => "relayed",
            PeerState::Connecting => "connecting",
            PeerState::Unreachable => "unreachable",
        }
    }
}

/// Traffic counters for one peer (frames are layer-2 frames of the overlay).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficCounters {
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
}

/// One row of `weavers peer ls`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The peer's nickname (from gossip; empty until learned).
    pub name: String,
    /// The peer's static public key, base64.
    pub public_key: String,
    /// The underlay address used for the direct session, if any.
    pub endpoint: Option<String>,
    pub state: PeerState,
    /// Name of the next hop when the peer is reached through a relay.
    pub via: Option<String>,
    /// Round-trip time of the last keepalive, in microseconds.
    pub rtt_us: Option<u64>,
    /// Seconds since the current session's handshake completed.
    pub session_age_s: Option<u64>,
    /// Overlay address announced by the peer (`weavers expose`).
    pub overlay_addr: Option<String>,
    #[serde(flatten)]
    pub traffic: TrafficCounters,
}

/// A configured peer address that has not (yet) produced a known peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingPeer {
    pub endpoint: String,
    /// Handshake attempts since the last success.
    pub attempts: u32,
}

/// `weavers status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub name: String,
    pub public_key: String,
    pub version: String,
    pub listen: String,
    pub bridge: String,
    /// MTU of the bridge and TAP (what the overlay carries).
    pub overlay_mtu: u32,
    pub overlay_addr: Option<String>,
    pub peers: Vec<PeerInfo>,
    /// Configured addresses not yet matched to a peer.
    pub pending: Vec<PendingPeer>,
    /// Dropped packets by reason.
    pub drops: Vec<DropCount>,
    pub handshakes: HandshakeCounts,
}

/// Noise handshakes since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeCounts {
    /// Handshakes this host started.
    pub initiated: u64,
    /// Handshakes that produced a session (either role).
    pub completed: u64,
    /// Handshake messages that failed to decrypt or authenticate.
    pub failed: u64,
    /// Handshake messages refused by the rate limiter.
    pub rate_limited: u64,
}

/// How many packets were dropped for one reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCount {
    pub reason: String,
    pub count: u64,
}

/// A list of peer addresses (`HOST[:PORT]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAddrs {
    pub peers: Vec<String>,
}

/// `weavers expose [CIDR]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposeRequest {
    /// Address with prefix length (e.g. `10.32.0.1/12`); when absent the
    /// daemon picks one in its `--ipalloc-range`.
    pub cidr: Option<String>,
}

/// The address given to the host's bridge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposeResponse {
    /// Address with prefix length, e.g. `10.32.0.1/12`.
    pub address: String,
    /// Whether `224.0.0.0/4` was routed to the bridge by this call.
    pub multicast_route_added: bool,
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}
