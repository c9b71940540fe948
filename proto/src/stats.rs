//! Counters of dropped packets, by reason.

/// Why a packet or frame was dropped. Every drop is counted under one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not a weavers datagram: too short, bad type or version.
    Malformed,
    /// A DATA packet for a session this host does not have.
    UnknownSession,
    /// The authentication tag did not verify.
    Decrypt,
    /// A counter seen before, or too old for the replay window.
    Replay,
    /// A handshake message that failed (wrong password, bad key, garbage).
    HandshakeFailed,
    /// A handshake initiation over the rate limit.
    RateLimited,
    /// A frame longer than the overlay MTU.
    Oversize,
    /// A frame for a peer with no session and no relay route.
    NoRoute,
    /// A relayed frame whose hop limit ran out, or that would loop.
    RelayLoop,
    /// A gossip message that did not decode or broke limits.
    BadGossip,
    /// A decrypted payload of unknown kind or bad length.
    BadPayload,
    /// The daemon could not hand a datagram or frame to the kernel.
    SendFailed,
    /// A malformed IGMP/MLD message, or one that came from a peer (they
    /// stay on their host).
    BadMembership,
    /// A multicast frame for a group no peer wants (pruned at the sender).
    NoListeners,
    /// A super-frame whose fragments did not all arrive in time.
    Incomplete,
    /// A handshake message whose mac1 did not verify (no network key):
    /// refused before any other work.
    BadMac1,
    /// A cookie reply for no handshake in flight, from the wrong address,
    /// or that did not open.
    BadCookie,
    /// A handshake whose peer had no valid certificate from this network's
    /// authority (missing, forged, expired, revoked, or for another key),
    /// or a revocation that did not verify.
    BadCertificate,
    /// A group frame its certificate does not allow: from a peer that may
    /// not publish to the group, or from a local sender on a host that may
    /// not.
    NotPermitted,
    /// A relayed payload for this host that did not open end to end: not
    /// sealed by the source its header names (a forgery by a relay or any
    /// other peer), altered on the way, or claiming a source whose key
    /// gives no shared secret.
    RelayForged,
    /// A host's end-to-end relay state evicted to make room for another
    /// ([`crate::e2e::MAX_PAIRS`]): not a packet, but this host may then
    /// accept once more a replay of that host's earlier relayed packets.
    RelayPairEvicted,
    /// A learned MAC forgotten to make room for another (the table holds
    /// [`crate::mac::MAX_MACS`]; the peer holding the most gives way):
    /// frames to it flood until it is learned again.
    MacEvicted,
    /// Local membership over a limit ([`crate::groups`]): a group refused
    /// (too many groups, or too many members in one), a source list
    /// widened to every source (EXCLUDE {}), or a group left out of the own
    /// gossip record so that the record stays within what peers accept.
    GroupLimit,
    /// Another host's record refused because the gossip table is full
    /// ([`crate::gossip::table::MAX_HOSTS`]).
    GossipTableFull,
    /// IPAM tokens or another seed's records refused because the ring is at
    /// its limit ([`crate::ipam::MAX_RING_TOKENS`], [`crate::ipam::MAX_FOREIGN`]).
    IpamLimit,
    /// A super-frame whose virtio-net header a peer set to something other
    /// than sane TCP segmentation: delivered plain when it fits the MTU
    /// (its checksum completed), otherwise dropped; counted either way.
    BadOffload,
    /// A peer forgotten to make room in a full peer table
    /// ([`crate::node::MAX_PEERS`]): one with no gossip record (it never
    /// said who it is) that no configured address leads to.
    PeerEvicted,
}

impl DropReason {
    /// All reasons, in a fixed order.
    pub const ALL: [DropReason; 27] = [
        DropReason::Malformed,
        DropReason::UnknownSession,
        DropReason::Decrypt,
        DropReason::Replay,
        DropReason::HandshakeFailed,
        DropReason::RateLimited,
        DropReason::Oversize,
        DropReason::NoRoute,
        DropReason::RelayLoop,
        DropReason::BadGossip,
        DropReason::BadPayload,
        DropReason::SendFailed,
        DropReason::BadMembership,
        DropReason::NoListeners,
        DropReason::Incomplete,
        DropReason::BadMac1,
        DropReason::BadCookie,
        DropReason::BadCertificate,
        DropReason::NotPermitted,
        DropReason::RelayForged,
        DropReason::RelayPairEvicted,
        DropReason::MacEvicted,
        DropReason::GroupLimit,
        DropReason::GossipTableFull,
        DropReason::IpamLimit,
        DropReason::BadOffload,
        DropReason::PeerEvicted,
    ];

    /// The snake_case name used in the API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnknownSession => "unknown_session",
            DropReason::Decrypt => "decrypt",
            DropReason::Replay => "replay",
            DropReason::HandshakeFailed => "handshake_failed",
            DropReason::RateLimited => "rate_limited",
            DropReason::Oversize => "oversize",
            DropReason::NoRoute => "no_route",
            DropReason::RelayLoop => "relay_loop",
            DropReason::BadGossip => "bad_gossip",
            DropReason::BadPayload => "bad_payload",
            DropReason::SendFailed => "send_failed",
            DropReason::BadMembership => "bad_membership",
            DropReason::NoListeners => "no_listeners",
            DropReason::Incomplete => "incomplete",
            DropReason::BadMac1 => "bad_mac1",
            DropReason::BadCookie => "bad_cookie",
            DropReason::BadCertificate => "bad_certificate",
            DropReason::NotPermitted => "not_permitted",
            DropReason::RelayForged => "relay_forged",
            DropReason::RelayPairEvicted => "relay_pair_evicted",
            DropReason::MacEvicted => "mac_evicted",
            DropReason::GroupLimit => "group_limit",
            DropReason::GossipTableFull => "gossip_table_full",
            DropReason::IpamLimit => "ipam_limit",
            DropReason::BadOffload => "bad_offload",
            DropReason::PeerEvicted => "peer_evicted",
        }
    }
}

/// Drop counters.
#[derive(Clone, Debug, Default)]
pub struct Drops([u64; DropReason::ALL.len()]);

impl Drops {
    pub fn count(&mut self, r: DropReason) {
        self.0[r as usize] += 1;
    }

    pub fn add(&mut self, r: DropReason, n: u64) {
        self.0[r as usize] += n;
    }

    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r as usize]
    }

    /// Every reason with its count (zeros included).
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (*r, self.0[*r as usize]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_slot_and_name() {
        let mut names = std::collections::HashSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?} is listed in declaration order");
            assert!(names.insert(r.as_str()), "{} is unique", r.as_str());
        }
    }
}
