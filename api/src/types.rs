//! Control-API types: the JSON the daemon serves on its unix socket and the
//! command line prints with `--json`.
//!
//! Routes (HTTP/1.1 over the unix socket; the paths are in [`routes`](crate::routes)):
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
//! - `POST /v1/ping` with [`PingRequest`] -> [`PingResult`] (404 unknown peer, 504 no answer)
//! - `GET /v1/revocations` -> `Vec<RevocationInfo>`
//! - `POST /v1/revocations` with [`RevocationRequest`] -> [`RevocationInfo`]
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
    /// Frames sent to the peer.
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Frames received from the peer.
    pub rx_frames: u64,
    /// Bytes of those frames.
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
    /// Whether and how the peer is reached.
    pub state: PeerState,
    /// Name of the next hop when the peer is reached through a relay.
    pub via: Option<String>,
    /// Round-trip time of the last keepalive, in microseconds.
    pub rtt_us: Option<u64>,
    /// Seconds since the last handshake with the peer completed (its
    /// newest session), while a session is kept: also once the peer stops
    /// answering. Sessions are renewed at least every 2 minutes, so a larger
    /// value means renewals fail.
    pub session_age_s: Option<u64>,
    /// Overlay address announced by the peer (`weavers expose`).
    pub overlay_addr: Option<String>,
    /// Traffic with the peer (flattened into the row in JSON).
    #[serde(flatten)]
    pub traffic: TrafficCounters,
}

/// A configured peer address that has not (yet) produced a known peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingPeer {
    /// The address as configured (`HOST[:PORT]`).
    pub endpoint: String,
    /// Handshake attempts since the last success.
    pub attempts: u32,
}

/// `weavers status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// This host's nickname.
    pub name: String,
    /// This host's static public key, base64.
    pub public_key: String,
    /// The daemon's version.
    pub version: String,
    /// The UDP address the daemon listens on.
    pub listen: String,
    /// The bridge's name.
    pub bridge: String,
    /// MTU of the bridge and TAP (what the overlay carries).
    pub overlay_mtu: u32,
    /// This host's address on the bridge (`weavers expose`), with prefix length.
    pub overlay_addr: Option<String>,
    /// Every known peer.
    pub peers: Vec<PeerInfo>,
    /// Configured addresses not yet matched to a peer.
    pub pending: Vec<PendingPeer>,
    /// Dropped packets by reason.
    pub drops: Vec<DropCount>,
    /// Noise handshakes since start.
    pub handshakes: HandshakeCounts,
    /// Frames the kernel dropped at the TAP queue before the daemon read
    /// them (the first sign of overload).
    #[serde(default)]
    pub tap_tx_dropped: u64,
    /// Times since start a connected peer was declared down by liveness
    /// probing: hosts that died or paths that broke, and any false
    /// failure (a healthy peer declared down).
    #[serde(default)]
    pub peers_down: u64,
    /// Times since start the daemon's periodic work ran 200 ms or more
    /// late (starved of CPU, or busy): its own overload, never charged to
    /// its peers' liveness.
    #[serde(default)]
    pub stalls: u64,
    /// How unsure this host is of its own probing (0 when sound, up to 8
    /// when its probes fail or it stalls); its probe timeouts are this
    /// many times longer, plus one.
    #[serde(default)]
    pub local_health: u32,
    /// TCP super-frames cut into segments for peers whose path loses
    /// packets (issue 14), and what found those paths.
    #[serde(default)]
    pub segmentation: SegmentationCounts,
}

/// Software segmentation of TCP super-frames on lossy paths. A peer is
/// lossy for a while after a local TCP sender retransmitted data to it;
/// super-frames to it then travel as plain TCP segments, so a lost
/// datagram costs one segment instead of the whole 64 KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentationCounts {
    /// Super-frames cut into segments since start.
    pub superframes_segmented: u64,
    /// Segments those made (each sent as a frame of its own).
    pub segments_sent: u64,
    /// TCP data frames to peers that resent data already sent
    /// (retransmissions seen by this host's sending side).
    pub retransmissions_seen: u64,
    /// Peers marked lossy now.
    pub peers_lossy: u64,
    /// TCP flows forgotten to make room for others in the table of flows
    /// watched for retransmissions (1,024 flows).
    pub flows_evicted: u64,
    /// Super-frames this host put together again from TCP segments that
    /// peers sent (written into the TAP as one).
    #[serde(default)]
    pub superframes_joined: u64,
    /// The segments in them.
    #[serde(default)]
    pub segments_joined: u64,
    /// Parity datagrams sent to lossy peers (one per group of up to 8
    /// datagrams; each rebuilds any one of its group that is lost).
    #[serde(default)]
    pub parity_sent: u64,
    /// Parity datagrams received from peers.
    #[serde(default)]
    pub parity_received: u64,
    /// Datagrams lost on the underlay and rebuilt from parity.
    #[serde(default)]
    pub datagrams_repaired: u64,
    /// Parity that found more of its group missing than it can rebuild.
    #[serde(default)]
    pub repairs_failed: u64,
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
    /// Handshake messages refused for a bad mac1 (sent without the network
    /// key): no other work was done for them.
    #[serde(default)]
    pub mac1_refused: u64,
    /// Initiations answered with a cookie reply instead of a handshake
    /// (this host was under load).
    #[serde(default)]
    pub cookies_sent: u64,
    /// Cookie replies refused: for no handshake in flight, from the wrong
    /// address, or that did not open.
    #[serde(default)]
    pub cookies_refused: u64,
    /// Handshakes refused because the peer's certificate was missing,
    /// forged, expired, revoked or for another key (network-authority
    /// mode).
    #[serde(default)]
    pub certs_refused: u64,
}

/// How many packets were dropped for one reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCount {
    /// The reason, as in the metrics (`replay`, `no_session`...).
    pub reason: String,
    /// Packets dropped for it since start.
    pub count: u64,
}

/// A list of peer addresses (`HOST[:PORT]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAddrs {
    /// `HOST[:PORT]` each.
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
    /// What went wrong, in one line for users.
    pub error: String,
}

/// A source filter as shown to users.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterInfo {
    /// `"include"` (only `sources`) or `"exclude"` (all but `sources`).
    pub mode: String,
    /// The source addresses the mode applies to.
    pub sources: Vec<String>,
}

/// A member on this host's bridge, as learned from its IGMP/MLD reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalMemberInfo {
    /// The member's IP address (as it reported; 0.0.0.0 if it has none).
    pub address: String,
    /// The member's MAC address.
    pub mac: String,
    /// Its source filter (flattened into the row in JSON).
    #[serde(flatten)]
    pub filter: FilterInfo,
    /// Seconds until the membership expires unless the member reports again.
    pub expires_in_s: u64,
}

/// A peer that announced it wants a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribedPeer {
    /// The peer's nickname.
    pub name: String,
    /// The peer's public key, base64.
    pub public_key: String,
    /// What it wants of the group (flattened into the row in JSON).
    #[serde(flatten)]
    pub filter: FilterInfo,
}

/// Frames and bytes sent to one peer for a group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSent {
    /// The peer's nickname.
    pub name: String,
    /// The peer's public key, base64.
    pub public_key: String,
    /// Frames sent.
    pub frames: u64,
    /// Bytes sent.
    pub bytes: u64,
}

/// Per-group traffic counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCounters {
    /// Frames sent to the group by local senders.
    pub local_frames: u64,
    /// Bytes of those frames.
    pub local_bytes: u64,
    /// Copies sent to peers (all peers together).
    pub sent_frames: u64,
    /// Bytes of those copies.
    pub sent_bytes: u64,
    /// Frames for the group that arrived from peers and were delivered here.
    pub delivered_frames: u64,
    /// Bytes of those frames.
    pub delivered_bytes: u64,
    /// Local frames no peer wanted: dropped at this host.
    pub dropped_frames: u64,
    /// Frames from peers whose certificate does not allow them to publish
    /// to the group, and local frames when this host's does not: dropped.
    #[serde(default)]
    pub refused_frames: u64,
    /// Copies not sent to subscribed peers whose certificate does not
    /// allow them to receive the group.
    #[serde(default)]
    pub refused_copies: u64,
    /// Copies per peer.
    pub sent_per_peer: Vec<PeerSent>,
}

/// One row of `weavers groups`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// The group address.
    pub group: String,
    /// Whether the group is link-local (224.0.0.0/24, ff02::/16): sent to every peer.
    pub link_local: bool,
    /// This host's merged filter, announced to peers (`None` without local members).
    pub filter: Option<FilterInfo>,
    /// Members on this host's bridge.
    pub local_members: Vec<LocalMemberInfo>,
    /// Peers that announced they want the group.
    pub subscribed_peers: Vec<SubscribedPeer>,
    /// Traffic counters of the group.
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
    /// The address, as text.
    pub addr: String,
    /// The owner tag it was added with.
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
    /// The name (`NAME` or `NAME.weavers.local`, any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only this address of the name (needs `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// Only entries with this owner tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// What `DELETE /v1/dns` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRemoved {
    /// The entries removed (maybe none).
    pub removed: Vec<DnsEntryInfo>,
}

/// One row of `weavers dns ls`: a name's addresses from one host (and owner).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecordInfo {
    /// The full name, e.g. `aapl.orders.aex.weavers.local`.
    pub name: String,
    /// The addresses, in the order the origin added them.
    pub addrs: Vec<String>,
    /// Name of the host that added them.
    pub origin: String,
    /// That host's public key, base64.
    pub origin_key: String,
    /// The owner tag they were added with.
    pub owner: Option<String>,
}

/// `weavers dns lookup NAME`: the addresses in the order a DNS query now
/// gets them (the A answer, then the AAAA answer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsLookup {
    /// The full name.
    pub name: String,
    /// The addresses, A answer first.
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
    /// Queries received over UDP.
    pub udp_queries: u64,
    /// Queries received over TCP.
    pub tcp_queries: u64,
    /// Replies with addresses (or the SOA of the domain).
    pub answers: u64,
    /// Replies for names that exist without an address of the type asked.
    pub nodata: u64,
    /// Replies saying the name does not exist.
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
    /// Forwarded queries the upstream server did not answer in time.
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
    /// The owner of the allocation.
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
    /// The owner whose address to free.
    pub owner: String,
}

/// `POST /v1/ipam/gc`: frees every allocation whose owner is not in `keep`
/// (the host's own address, owner `host`, is always kept).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcRequest {
    /// The owners whose addresses to keep.
    pub keep: Vec<String>,
}

/// What a release or GC freed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    /// The allocations freed.
    pub released: Vec<AllocationRow>,
}

/// One allocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRow {
    /// Who holds the address.
    pub owner: String,
    /// The address.
    pub address: String,
}

/// One span of the range as `weavers ipam ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanInfo {
    /// First and last address of the span.
    pub first: String,
    /// Last address of the span.
    pub last: String,
    /// Addresses in the span.
    pub size: u32,
    /// The owning peer's name (or key when unknown).
    pub owner: String,
    /// The owning peer's public key, base64.
    pub owner_key: String,
    /// Whether peers disagree about who owns the span.
    pub conflict: bool,
}

/// `GET /v1/ipam`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamStatus {
    /// The shared range (`--ipalloc-range`), as a CIDR.
    pub range: String,
    /// Whether the range has been shared out among peers.
    pub seeded: bool,
    /// How the range is shared out.
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

/// `POST /v1/ping`: which peer to ping (`weavers ping`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingRequest {
    /// The peer's name or public key.
    pub peer: String,
}

/// The answer to a ping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingResult {
    /// The peer's name.
    pub name: String,
    /// Its public key.
    pub public_key: String,
    /// `"direct"` or `"relayed"`.
    pub path: String,
    /// The relay's name, when relayed.
    pub via: Option<String>,
    /// The underlay address the ping went to (the peer's, or the relay's).
    pub endpoint: Option<String>,
    /// Round trip of this ping in microseconds (to the relay, when relayed:
    /// control messages travel between direct peers only).
    pub rtt_us: u64,
    /// The largest frame the overlay carries (its MTU), in bytes.
    pub overlay_mtu: u32,
}

/// `POST /v1/revocations`: a revocation signed by the network's
/// authority (its text form, as `weavers ca revoke` makes it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRequest {
    /// The revocation's text form.
    pub revocation: String,
}

/// One revocation this host holds (`GET /v1/revocations`, and the answer
/// to a `POST`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationInfo {
    /// The host name whose certificates are void.
    pub name: String,
    /// Certificates of the name valid from this moment or earlier are
    /// void (unix seconds).
    pub revoked_at: u64,
    /// In a `POST` answer: whether it was new to this host.
    #[serde(default)]
    pub new: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn peer_rows_have_the_documented_json_shape() {
        let p = PeerInfo {
            name: "b".into(),
            public_key: "KEY".into(),
            endpoint: Some("192.0.2.1:6783".into()),
            state: PeerState::Relayed,
            via: Some("c".into()),
            rtt_us: None,
            session_age_s: Some(3),
            overlay_addr: None,
            traffic: TrafficCounters { tx_frames: 1, tx_bytes: 2, rx_frames: 3, rx_bytes: 4 },
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["state"], "relayed");
        assert_eq!(v["state"], PeerState::Relayed.as_str());
        // The counters are fields of the row itself.
        assert_eq!((v["tx_frames"].as_u64(), v["rx_bytes"].as_u64()), (Some(1), Some(4)));
        assert!(v.get("traffic").is_none(), "{v}");
        assert_eq!(serde_json::from_value::<PeerInfo>(v).unwrap(), p);
    }

    #[test]
    fn optional_request_fields_may_be_left_out() {
        let r: DnsRemoveRequest = serde_json::from_value(json!({"owner": "c1"})).unwrap();
        assert_eq!(r, DnsRemoveRequest { owner: Some("c1".into()), ..Default::default() });
        assert_eq!(serde_json::to_value(&r).unwrap(), json!({"owner": "c1"}));
        let a: DnsAddRequest = serde_json::from_value(json!({"name": "web", "addr": "10.0.0.1"})).unwrap();
        assert_eq!(a.owner, None);
        // An older daemon's status without tap_tx_dropped still reads...
        let s = json!({"name": "h", "public_key": "K", "version": "0", "listen": "0.0.0.0:6783", "bridge": "weavers",
            "overlay_mtu": 1376, "overlay_addr": null, "peers": [], "pending": [], "drops": [],
            "handshakes": {"initiated": 0, "completed": 0, "failed": 0, "rate_limited": 0}});
        let st = serde_json::from_value::<Status>(s).unwrap();
        assert_eq!(st.tap_tx_dropped, 0);
        // Nor without the mac1 and cookie counters.
        assert_eq!((st.handshakes.mac1_refused, st.handshakes.cookies_sent, st.handshakes.cookies_refused), (0, 0, 0));
    }
}
