//! Gossip: every host's record of itself, spread to all peers and merged by
//! version.
//!
//! A host is the only writer of its own record and raises its version on
//! every change and periodically (so a live host's record stays fresh even
//! when nothing changes). Others keep the highest version they have seen and
//! pass newer ones on. A record that has not advanced for `forget_after`
//! while its host is not directly connected is forgotten, and a tombstone
//! keeps the forgotten version from coming back through a slower peer.

use crate::dns::{DnsEntry, DnsTombstone};
use crate::groups::GroupFilter;
use crate::keys::PublicKey;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Longest host name accepted in a record.
pub const MAX_NAME_LEN: usize = 64;
/// Most connections accepted in one record.
pub const MAX_CONNECTIONS: usize = 1024;
/// Target size of one gossip message's payload (fits one datagram). A
/// single larger record goes alone, in pieces (`Kind::Fragment`).
pub const MESSAGE_BUDGET: usize = 1200;

/// One direct session a host reports, with the underlay address it uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub key: PublicKey,
    pub endpoint: SocketAddr,
}

/// What a host says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    pub key: PublicKey,
    pub version: u64,
    pub name: String,
    /// Address given by `weavers expose`, with its prefix length.
    pub overlay_addr: Option<(IpAddr, u8)>,
    /// Peers this host has a live direct session with.
    pub connections: Vec<Connection>,
    /// Multicast groups local members want, with their source filters.
    pub groups: Vec<GroupFilter>,
    /// Overlay DNS entries this host added (see [`crate::dns`]).
    pub dns: Vec<DnsEntry>,
    /// Other hosts' DNS entries this host removed.
    pub dns_tombstones: Vec<DnsTombstone>,
    /// This host's share of the address range (absent until seeded).
    pub ipam: Option<crate::ipam::IpamRecord>,
}

impl PeerRecord {
    /// Checks the limits a well-behaved host stays within.
    pub fn is_valid(&self) -> bool {
        self.name.len() <= MAX_NAME_LEN
            && self.connections.len() <= MAX_CONNECTIONS
            && self.overlay_addr.is_none_or(|(a, p)| p <= if a.is_ipv4() { 32 } else { 128 })
            && self.groups.len() <= crate::groups::MAX_GROUPS
            && self.groups.iter().all(GroupFilter::is_valid)
            && self.dns.len() <= crate::dns::MAX_ENTRIES
            && self.dns.iter().all(DnsEntry::is_valid)
            && self.dns_tombstones.len() <= crate::dns::MAX_ENTRIES
            && self.dns_tombstones.iter().all(DnsTombstone::is_valid)
            && self.ipam.as_ref().is_none_or(crate::ipam::IpamRecord::is_valid)
    }
}

/// Encodes records into gossip message payloads of about
/// [`MESSAGE_BUDGET`] bytes each (a single larger record goes alone).
pub fn encode_messages<'a>(records: impl IntoIterator<Item = &'a PeerRecord>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut batch: Vec<&PeerRecord> = Vec::new();
    let mut size = 0;
    for r in records {
        let len = postcard::to_allocvec(r).map(|v| v.len()).unwrap_or(0);
        if !batch.is_empty() && size + len > MESSAGE_BUDGET {
            out.push(postcard::to_allocvec(&batch).expect("records serialize"));
            batch.clear();
            size = 0;
        }
        batch.push(r);
        size += len;
    }
    if !batch.is_empty() {
        out.push(postcard::to_allocvec(&batch).expect("records serialize"));
    }
    out
}

/// Decodes one gossip message; `None` if it is malformed or breaks limits.
pub fn decode_message(bytes: &[u8]) -> Option<Vec<PeerRecord>> {
    let (records, rest): (Vec<PeerRecord>, _) = postcard::take_from_bytes(bytes).ok()?;
    (rest.is_empty() && records.iter().all(PeerRecord::is_valid)).then_some(records)
}

fn has_dns(r: &PeerRecord) -> bool {
    !r.dns.is_empty() || !r.dns_tombstones.is_empty()
}

/// What merging a record did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// A host not known before.
    New,
    /// A newer version of a known host.
    Updated,
    /// Not newer than what is known (or forgotten): ignored.
    Stale,
}

#[derive(Clone, Debug)]
struct Entry {
    record: PeerRecord,
    /// When the version last advanced.
    advanced: Instant,
}

/// The records of every other host.
#[derive(Clone, Debug, Default)]
pub struct GossipTable {
    entries: HashMap<PublicKey, Entry>,
    /// Forgotten hosts: the version forgotten, and until when to remember it.
    tombstones: HashMap<PublicKey, (u64, Instant)>,
    /// Counts changes of the DNS entries and tombstones the records carry.
    dns_changes: u64,
}

impl GossipTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Merges a record received from any peer.
    pub fn merge(&mut self, record: PeerRecord, now: Instant) -> Merge {
        if let Some((v, _)) = self.tombstones.get(&record.key) {
            if record.version <= *v {
                return Merge::Stale;
            }
            self.tombstones.remove(&record.key);
        }
        match self.entries.get_mut(&record.key) {
            Some(e) if e.record.version >= record.version => Merge::Stale,
            Some(e) => {
                // The origin's name shows with its entries, so it counts too.
                if e.record.dns != record.dns
                    || e.record.dns_tombstones != record.dns_tombstones
                    || (e.record.name != record.name && has_dns(&record))
                {
                    self.dns_changes += 1;
                }
                *e = Entry { record, advanced: now };
                Merge::Updated
            }
            None => {
                if has_dns(&record) {
                    self.dns_changes += 1;
                }
                self.entries.insert(record.key, Entry { record, advanced: now });
                Merge::New
            }
        }
    }

    pub fn get(&self, key: &PublicKey) -> Option<&PeerRecord> {
        self.entries.get(key).map(|e| &e.record)
    }

    pub fn records(&self) -> impl Iterator<Item = &PeerRecord> {
        self.entries.values().map(|e| &e.record)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A counter that grows whenever the DNS entries or tombstones of any
    /// record change (or a record carrying some comes or goes), so that the
    /// DNS view knows when to be rebuilt.
    pub fn dns_changes(&self) -> u64 {
        self.dns_changes
    }

    /// Forgets hosts whose record has not advanced for `forget_after` and
    /// that `connected` says are not directly connected; returns them.
    pub fn forget_stale(
        &mut self,
        now: Instant,
        forget_after: Duration,
        connected: impl Fn(&PublicKey) -> bool,
    ) -> Vec<PublicKey> {
        let gone: Vec<PublicKey> = self
            .entries
            .iter()
            .filter(|(k, e)| now.saturating_duration_since(e.advanced) >= forget_after && !connected(k))
            .map(|(k, _)| *k)
            .collect();
        for k in &gone {
            let e = self.entries.remove(k).expect("listed above");
            if has_dns(&e.record) {
                self.dns_changes += 1;
            }
            self.tombstones.insert(*k, (e.record.version, now + forget_after * 2));
        }
        self.tombstones.retain(|_, (_, until)| *until > now);
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(k: u8, version: u64) -> PeerRecord {
        PeerRecord {
            key: PublicKey([k; 32]),
            version,
            name: format!("h{k}"),
            overlay_addr: None,
            connections: vec![],
            groups: vec![],
            dns: vec![],
            dns_tombstones: vec![],
            ipam: None,
        }
    }

    #[test]
    fn newer_wins_and_forgotten_stays_forgotten() {
        let t0 = Instant::now();
        let mut t = GossipTable::new();
        assert_eq!(t.merge(rec(1, 5), t0), Merge::New);
        assert_eq!(t.merge(rec(1, 5), t0), Merge::Stale);
        assert_eq!(t.merge(rec(1, 4), t0), Merge::Stale);
        assert_eq!(t.merge(rec(1, 6), t0), Merge::Updated);
        let d = Duration::from_secs(60);
        assert!(t.forget_stale(t0 + d / 2, d, |_| false).is_empty());
        assert!(t.forget_stale(t0 + d, d, |_| true).is_empty(), "connected hosts are kept");
        assert_eq!(t.forget_stale(t0 + d, d, |_| false), vec![PublicKey([1; 32])]);
        assert_eq!(t.merge(rec(1, 6), t0 + d), Merge::Stale, "a slow peer cannot bring it back");
        assert_eq!(t.merge(rec(1, 7), t0 + d), Merge::New, "but the host itself can");
    }

    #[test]
    fn dns_changes_count_only_dns_changes() {
        let t0 = Instant::now();
        let mut t = GossipTable::new();
        t.merge(rec(1, 1), t0);
        assert_eq!(t.dns_changes(), 0);
        let mut r = rec(1, 2);
        r.dns = vec![DnsEntry { name: "web".into(), addr: [10, 0, 0, 1].into(), owner: None, since: 2 }];
        t.merge(r.clone(), t0);
        assert_eq!(t.dns_changes(), 1);
        r.version = 3;
        r.connections = vec![Connection { key: PublicKey([2; 32]), endpoint: "10.0.0.2:6783".parse().unwrap() }];
        t.merge(r, t0);
        assert_eq!(t.dns_changes(), 1, "only the connections changed");
        let d = Duration::from_secs(60);
        t.forget_stale(t0 + d, d, |_| false);
        assert_eq!(t.dns_changes(), 2, "its entries went with it");
    }

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let recs: Vec<PeerRecord> = (0..40).map(|k| rec(k, 1)).collect();
        let msgs = encode_messages(&recs);
        assert!(msgs.len() > 1, "split into several messages");
        let back: Vec<PeerRecord> = msgs.iter().flat_map(|m| decode_message(m).unwrap()).collect();
        assert_eq!(back, recs);
        assert_eq!(decode_message(&[0xff, 0xff, 0xff, 0xff, 0x0f]), None);
        let mut long = rec(1, 1);
        long.name = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(decode_message(&postcard::to_allocvec(&vec![long]).unwrap()), None);
        let entry = |name: &str| DnsEntry { name: name.into(), addr: [10, 0, 0, 1].into(), owner: None, since: 1 };
        let mut named = rec(1, 1);
        named.dns = vec![entry("web")];
        assert!(decode_message(&postcard::to_allocvec(&vec![named.clone()]).unwrap()).is_some());
        for bad in ["", "UPPER", "a..b", "x\u{1b}", &"a".repeat(300)] {
            named.dns = vec![entry(bad)];
            assert_eq!(decode_message(&postcard::to_allocvec(&vec![named.clone()]).unwrap()), None, "{bad:?}");
        }
        named.dns = vec![entry("web"); crate::dns::MAX_ENTRIES + 1];
        assert_eq!(decode_message(&postcard::to_allocvec(&vec![named]).unwrap()), None);
    }

    proptest! {
        /// Merge order does not matter: any interleaving ends at the highest version.
        #[test]
        fn merge_converges(versions in proptest::collection::vec((0u8..4, 0u64..50), 1..60)) {
            let t0 = Instant::now();
            let mut a = GossipTable::new();
            let mut b = GossipTable::new();
            for (k, v) in &versions { a.merge(rec(*k, *v), t0); }
            for (k, v) in versions.iter().rev() { b.merge(rec(*k, *v), t0); }
            for k in 0..4u8 {
                let max = versions.iter().filter(|(kk, _)| *kk == k).map(|(_, v)| *v).max();
                prop_assert_eq!(a.get(&PublicKey([k; 32])).map(|r| r.version), max);
                prop_assert_eq!(b.get(&PublicKey([k; 32])).map(|r| r.version), max);
            }
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_message(&bytes);
        }
    }
}
