//! Control-API types: the JSON the daemon serves on its unix socket and the
//! command line prints with `--json`.
//!
//! Routes (HTTP/1.1 over the unix socket):
//! - `GET /v1/status` -> [`Status`]
//! - `GET /v1/peers` -> `Vec<PeerInfo>`
//! - `POST /v1/peers` with [`PeerAddrs`] -> [`PeerAddrs`] (what was added)
//! - `DELETE /v1/peers` with [`PeerAddrs`] -> [`PeerAddrs`] (what was removed)
//! - `POST /v1/expose` with [`ExposeRequest`] -> [`ExposeResponse`]
//! - `GET /v1/groups` -> `Vec<GroupInfo>`
//! - `GET /v1/ipam` -> [`IpamStatus`]
//! - `POST /v1/ipam/allocate` with [`AllocateRequest`] -> [`Allocation`]
//! - `POST /v1/ipam/release` with [`ReleaseRequest`] -> [`Released`]
//! - `POST /v1/ipam/gc` with [`GcRequest`] -> [`Released`]
//! - `POST /v1/ipam/rmpeer` with [`RmPeerRequest`] -> [`IpamStatus`]
//! - `GET /v1/dns` -> `Vec<DnsRecordInfo>`
//! - `POST /v1/dns` with [`DnsAddRequest`] -> [`DnsEntryInfo`]
//! - `DELETE /v1/dns` with [`DnsRemoveRequest`] -> [`DnsRemoved`]
//! - `GET /v1/dns/lookup?name=NAME` -> [`DnsLookup`] (404 for an unknown name)
//! - `GET /v1/dns/stats` -> [`DnsStats`]
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
    /// Frames the kernel dropped at the TAP queue before the daemon read
    /// them (the first sign of overload).
    #[serde(default)]
    pub tap_tx_dropped: u64,
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

/// A source filter as shown to users.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterInfo {
    /// `"include"` (only `sources`) or `"exclude"` (all but `sources`).
    pub mode: String,
    pub sources: Vec<String>,
}

/// A member on this host's bridge, as learned from its IGMP/MLD reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalMemberInfo {
    /// The member's IP address (as it reported; 0.0.0.0 if it has none).
    pub address: String,
    pub mac: String,
    #[serde(flatten)]
    pub filter: FilterInfo,
    /// Seconds until the membership expires unless the member reports again.
    pub expires_in_s: u64,
}

/// A peer that announced it wants a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribedPeer {
    pub name: String,
    pub public_key: String,
    #[serde(flatten)]
    pub filter: FilterInfo,
}

/// Frames and bytes sent to one peer for a group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSent {
    pub name: String,
    pub public_key: String,
    pub frames: u64,
    pub bytes: u64,
}

/// Per-group traffic counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCounters {
    /// Frames (and bytes) sent to the group by local senders.
    pub local_frames: u64,
    pub local_bytes: u64,
    /// Copies sent to peers (all peers together).
    pub sent_frames: u64,
    pub sent_bytes: u64,
    /// Frames for the group that arrived from peers and were delivered here.
    pub delivered_frames: u64,
    pub delivered_bytes: u64,
    /// Local frames no peer wanted: dropped at this host.
    pub dropped_frames: u64,
    /// Copies per peer.
    pub sent_per_peer: Vec<PeerSent>,
}

/// One row of `weavers groups`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub group: String,
    /// Whether the group is link-local (224.0.0.0/24, ff02::/16): sent to every peer.
    pub link_local: bool,
    /// This host's merged filter, announced to peers (`None` without local members).
    pub filter: Option<FilterInfo>,
    pub local_members: Vec<LocalMemberInfo>,
    pub subscribed_peers: Vec<SubscribedPeer>,
    pub counters: GroupCounters,
}

/// `POST /v1/dns`: give `name` (in `weavers.local`) the address `addr`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsAddRequest {
    /// `NAME` or `NAME.weavers.local`, any case.
    pub name: String,
    /// An IPv4 or IPv6 address (a multicast group is fine).
    pub addr: String,
    /// A tag (e.g. a container ID) by which everything it registered can
    /// be removed at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// One DNS entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsEntryInfo {
    /// The full name, e.g. `aapl.orders.aex.weavers.local`.
    pub name: String,
    pub addr: String,
    pub owner: Option<String>,
    /// Name of the host that added it.
    pub origin: String,
    /// Public key of that host, base64.
    pub origin_key: String,
}

/// `DELETE /v1/dns`: which entries to remove; every given field must
/// match, and a name or an owner must be given. Removing nothing is not an
/// error.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRemoveRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// What `DELETE /v1/dns` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRemoved {
    pub removed: Vec<DnsEntryInfo>,
}

/// One row of `weavers dns ls`: a name's addresses from one host (and owner).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecordInfo {
    /// The full name, e.g. `aapl.orders.aex.weavers.local`.
    pub name: String,
    pub addrs: Vec<String>,
    /// Name of the host that added them.
    pub origin: String,
    pub origin_key: String,
    pub owner: Option<String>,
}

/// `weavers dns lookup NAME`: the addresses in the order a DNS query now
/// gets them (the A answer, then the AAAA answer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsLookup {
    pub name: String,
    pub addrs: Vec<String>,
}

/// The DNS server: where it listens and what it answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsStats {
    /// `ADDR:PORT` it serves on (UDP and TCP); none before `weavers expose`.
    pub listening: Option<String>,
    /// Why it does not serve, if it tried and failed.
    pub error: Option<String>,
    /// Where names outside `weavers.local` go (`--dns-upstream`).
    pub upstream: Option<String>,
    /// Entries in the merged table.
    pub entries: u64,
    pub udp_queries: u64,
    pub tcp_queries: u64,
    /// Replies with addresses (or the SOA of the domain).
    pub answers: u64,
    /// Replies for names that exist without an address of the type asked.
    pub nodata: u64,
    pub nxdomain: u64,
    /// Names outside the domain without an upstream, or classes other than IN.
    pub refused: u64,
    /// Malformed queries answered with FORMERR.
    pub formerr: u64,
    /// Opcodes other than QUERY, EDNS versions other than 0.
    pub notimp: u64,
    /// Messages dropped unanswered: too short or too long to be a query, or replies.
    pub dropped: u64,
    /// Queries passed to the upstream server, and those it did not answer in time.
    pub forwarded: u64,
    pub forward_failed: u64,
    /// TCP connections closed at once because too many were open.
    pub tcp_rejected: u64,
}

/// `POST /v1/ipam/allocate`: an address for a container interface (or the
/// host itself). Idempotent per `owner`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateRequest {
    /// Who holds the address: for CNI `CONTAINER_ID/IFNAME`; for the host `host`.
    pub owner: String,
}

/// The answer to an allocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub owner: String,
    /// Address with the range's prefix length, e.g. `10.32.0.5/12`.
    pub address: String,
    /// The bridge's overlay address, when the host exposed one (a gateway
    /// for a default route).
    pub gateway: Option<String>,
    /// The overlay MTU (for the container's interface).
    pub mtu: u32,
}

/// `POST /v1/ipam/release`: frees the address of `owner` (idempotent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    pub owner: String,
}

/// `POST /v1/ipam/gc`: frees every allocation whose owner is not in `keep`
/// (the host's own address, owner `host`, is always kept).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcRequest {
    pub keep: Vec<String>,
}

/// What a release or GC freed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    pub released: Vec<AllocationRow>,
}

/// One allocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRow {
    pub owner: String,
    pub address: String,
}

/// One span of the range as `weavers ipam ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanInfo {
    /// First and last address of the span.
    pub first: String,
    pub last: String,
    pub size: u32,
    /// The owning peer's name (or key when unknown).
    pub owner: String,
    pub owner_key: String,
    pub conflict: bool,
}

/// `GET /v1/ipam`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamStatus {
    pub range: String,
    pub seeded: bool,
    pub spans: Vec<SpanInfo>,
    /// This host's allocations.
    pub allocations: Vec<AllocationRow>,
    /// Free addresses in this host's space.
    pub free: u32,
    /// Human-readable problems (conflicting seeds, tokens in conflict).
    pub problems: Vec<String>,
}

/// `POST /v1/ipam/rmpeer`: take over a dead peer's space.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RmPeerRequest {
    /// The dead peer's name or public key.
    pub peer: String,
}
