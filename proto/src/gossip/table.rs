//! The records of every host, merged by version, with digests.
//!
//! Each known host has one slot: its newest record, or a tombstone that
//! remembers the version at which it was forgotten (so that a slower peer
//! cannot bring the old record back). Both count in the digests with the
//! same `(key, version)` hash, so a host that forgot a record and one that
//! still holds the same version agree.
//!
//! Digests: hosts fall into [`BUCKETS`] buckets by a byte of their key; a
//! bucket's digest is the wrapping sum of its entries' hashes, and the
//! summary the wrapping sum of the buckets. All three are updated per
//! change, so a digest costs nothing to produce and two peers find what
//! differs in three short messages (see [`super::sync`]).

use super::record::{PeerRecord, SignedRecord};
use crate::keys::PublicKey;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Number of digest buckets.
pub const BUCKETS: usize = 64;
/// Most hosts a table holds (tombstones included); records of further
/// hosts are refused and counted.
pub const MAX_HOSTS: usize = 4096;

/// Which bucket a host falls in.
pub fn bucket_of(key: &PublicKey) -> usize {
    key.0[31] as usize % BUCKETS
}

/// The digest hash of one `(key, version)`.
pub fn entry_hash(key: &PublicKey, version: u64) -> u64 {
    let mut h = splitmix(version);
    for chunk in key.0.chunks_exact(8) {
        h = splitmix(h ^ u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
    }
    h
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What merging a record did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// A host not known before (or forgotten and now back with a newer version).
    New,
    /// A newer version of a known host.
    Updated,
    /// Not newer than what is known (or forgotten): ignored.
    Stale,
    /// The table is full: refused.
    Full,
}

/// A known host's record.
#[derive(Clone, Debug)]
pub struct Entry {
    pub record: PeerRecord,
    pub signed: SignedRecord,
    /// When its version last advanced here.
    pub advanced: Instant,
}

#[derive(Clone, Debug)]
enum Slot {
    Live(Box<Entry>),
    Forgotten { version: u64, until: Instant },
}

impl Slot {
    fn version(&self) -> u64 {
        match self {
            Slot::Live(e) => e.record.version,
            Slot::Forgotten { version, .. } => *version,
        }
    }
}

/// The records of every host (this one's own included).
#[derive(Clone, Debug)]
pub struct Table {
    slots: HashMap<PublicKey, Slot>,
    buckets: [u64; BUCKETS],
    live: usize,
    /// Grows whenever any record's DNS entries or tombstones change.
    dns_changes: u64,
}

impl Default for Table {
    fn default() -> Self {
        Table { slots: HashMap::new(), buckets: [0; BUCKETS], live: 0, dns_changes: 0 }
    }
}

fn has_dns(r: &PeerRecord) -> bool {
    !r.dns.is_empty() || !r.dns_tombstones.is_empty()
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The version known for `key` (of its record or its tombstone).
    pub fn version(&self, key: &PublicKey) -> Option<u64> {
        self.slots.get(key).map(Slot::version)
    }

    /// Whether a record of `key` at `version` would be new here (checked
    /// before paying for a signature check).
    pub fn is_newer(&self, key: &PublicKey, version: u64) -> bool {
        self.version(key).is_none_or(|v| version > v)
    }

    /// Merges a record whose signature has been checked.
    pub fn merge(&mut self, signed: SignedRecord, record: PeerRecord, now: Instant) -> Merge {
        let key = record.key;
        let version = record.version;
        let old = match self.slots.get(&key) {
            Some(s) if s.version() >= version => return Merge::Stale,
            Some(s) => Some((s.version(), matches!(s, Slot::Live(_)))),
            None if self.slots.len() >= MAX_HOSTS => return Merge::Full,
            None => None,
        };
        let b = bucket_of(&key);
        if let Some((v, _)) = old {
            self.buckets[b] = self.buckets[b].wrapping_sub(entry_hash(&key, v));
        }
        self.buckets[b] = self.buckets[b].wrapping_add(entry_hash(&key, version));
        let dns_changed = match self.slots.get(&key) {
            Some(Slot::Live(e)) => {
                e.record.dns != record.dns
                    || e.record.dns_tombstones != record.dns_tombstones
                    || (e.record.name != record.name && has_dns(&record))
            }
            _ => has_dns(&record),
        };
        if dns_changed {
            self.dns_changes += 1;
        }
        self.slots.insert(key, Slot::Live(Box::new(Entry { record, signed, advanced: now })));
        match old {
            Some((_, true)) => Merge::Updated,
            _ => {
                self.live += 1;
                Merge::New
            }
        }
    }

    /// The record of `key`, if known and not forgotten.
    pub fn get(&self, key: &PublicKey) -> Option<&Entry> {
        match self.slots.get(key) {
            Some(Slot::Live(e)) => Some(e),
            _ => None,
        }
    }

    /// Every known record.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.values().filter_map(|s| match s {
            Slot::Live(e) => Some(&**e),
            Slot::Forgotten { .. } => None,
        })
    }

    /// Number of known records (tombstones not counted).
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no record is known.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Grows whenever the DNS entries or tombstones of any record change (or
    /// a record carrying some comes or goes).
    pub fn dns_changes(&self) -> u64 {
        self.dns_changes
    }

    /// The summary digest: equal on two hosts that know the same versions.
    pub fn summary(&self) -> u64 {
        self.buckets.iter().fold(0u64, |a, b| a.wrapping_add(*b))
    }

    /// The per-bucket digests.
    pub fn buckets(&self) -> &[u64; BUCKETS] {
        &self.buckets
    }

    /// `(key, version)` of every slot, tombstones included, in the buckets
    /// set in `mask`.
    pub fn versions_in(&self, mask: u64) -> impl Iterator<Item = (PublicKey, u64)> + '_ {
        self.slots.iter().filter(move |(k, _)| mask & (1 << bucket_of(k)) != 0).map(|(k, s)| (*k, s.version()))
    }

    /// Forgets the records of hosts that `keep` does not vouch for and
    /// whose version has not advanced for `forget_after`; their tombstones
    /// last twice as long. Returns the hosts forgotten.
    pub fn forget_stale(
        &mut self,
        now: Instant,
        forget_after: Duration,
        keep: impl Fn(&PublicKey) -> bool,
    ) -> Vec<PublicKey> {
        let gone: Vec<PublicKey> = self
            .slots
            .iter()
            .filter(|(k, s)| match s {
                Slot::Live(e) => now.saturating_duration_since(e.advanced) >= forget_after && !keep(k),
                Slot::Forgotten { .. } => false,
            })
            .map(|(k, _)| *k)
            .collect();
        for k in &gone {
            let Some(Slot::Live(e)) = self.slots.remove(k) else { continue };
            if has_dns(&e.record) {
                self.dns_changes += 1;
            }
            self.live -= 1;
            // Same version, same hash: the digests do not change.
            self.slots.insert(*k, Slot::Forgotten { version: e.record.version, until: now + forget_after * 2 });
        }
        let expired: Vec<(PublicKey, u64)> = self
            .slots
            .iter()
            .filter_map(|(k, s)| match s {
                Slot::Forgotten { version, until } if *until <= now => Some((*k, *version)),
                _ => None,
            })
            .collect();
        for (k, v) in expired {
            self.slots.remove(&k);
            let b = bucket_of(&k);
            self.buckets[b] = self.buckets[b].wrapping_sub(entry_hash(&k, v));
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::StaticKeypair;
    use proptest::prelude::*;

    fn signed(id: &StaticKeypair, version: u64) -> (SignedRecord, PeerRecord) {
        let r = PeerRecord::new(id.public, version, "h");
        (SignedRecord::sign(&r, id), r)
    }

    #[test]
    fn newer_wins_and_forgotten_stays_forgotten() {
        let t0 = Instant::now();
        let id = StaticKeypair::generate();
        let mut t = Table::new();
        let m = |t: &mut Table, v, now| {
            let (s, r) = signed(&id, v);
            t.merge(s, r, now)
        };
        assert_eq!(m(&mut t, 5, t0), Merge::New);
        assert_eq!(m(&mut t, 5, t0), Merge::Stale);
        assert_eq!(m(&mut t, 4, t0), Merge::Stale);
        assert_eq!(m(&mut t, 6, t0), Merge::Updated);
        let d = Duration::from_secs(60);
        assert!(t.forget_stale(t0 + d / 2, d, |_| false).is_empty());
        assert!(t.forget_stale(t0 + d, d, |_| true).is_empty(), "vouched-for hosts are kept");
        let sum = t.summary();
        assert_eq!(t.forget_stale(t0 + d, d, |_| false), vec![id.public]);
        assert_eq!(t.summary(), sum, "a tombstone digests like the record it replaced");
        assert!(t.get(&id.public).is_none());
        assert_eq!(m(&mut t, 6, t0 + d), Merge::Stale, "a slow peer cannot bring it back");
        assert_eq!(m(&mut t, 7, t0 + d), Merge::New, "but the host itself can");
        assert_eq!(t.len(), 1);
        t.forget_stale(t0 + d * 2, d, |_| false);
        t.forget_stale(t0 + d * 5, d, |_| false);
        assert_eq!(t.summary(), 0, "expired tombstones leave the digests");
        assert_eq!(t.version(&id.public), None);
    }

    proptest! {
        /// Any order of merges ends at the highest versions, with the same
        /// digests as a table built from those versions alone.
        #[test]
        fn merge_converges_and_digests_agree(versions in proptest::collection::vec((0usize..4, 1u64..50), 1..40)) {
            let t0 = Instant::now();
            let ids: Vec<StaticKeypair> = (0..4).map(|_| StaticKeypair::generate()).collect();
            let mut a = Table::new();
            let mut b = Table::new();
            for (k, v) in &versions { let (s, r) = signed(&ids[*k], *v); a.merge(s, r, t0); }
            for (k, v) in versions.iter().rev() { let (s, r) = signed(&ids[*k], *v); b.merge(s, r, t0); }
            let mut c = Table::new();
            for (k, id) in ids.iter().enumerate() {
                let max = versions.iter().filter(|(kk, _)| *kk == k).map(|(_, v)| *v).max();
                prop_assert_eq!(a.version(&id.public), max);
                prop_assert_eq!(b.version(&id.public), max);
                if let Some(v) = max { let (s, r) = signed(id, v); c.merge(s, r, t0); }
            }
            prop_assert_eq!(a.buckets(), b.buckets());
            prop_assert_eq!(a.buckets(), c.buckets());
            prop_assert_eq!(a.summary(), c.summary());
        }
    }
}
