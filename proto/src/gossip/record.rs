//! A host's record of itself, and its signed form.
//!
//! Every host is the only author of its record: it signs the encoded body
//! with its identity key ([`StaticKeypair::sign`]) and every receiver checks
//! the signature against the record's key before believing a byte of it, on
//! every hop ([`SignedRecord::open`]). A record is forwarded as the exact
//! bytes its author signed.
//!
//! Layout of a signed record:
//!
//! ```text
//! signer 32 | signature 64 | body (postcard PeerRecord)
//! ```
//!
//! The signature covers a domain-separation prefix and the body. The signer
//! is the author's Ed25519 key, which must map to the record's X25519 key
//! (see [`crate::keys`]).

use crate::dns::{DnsEntry, DnsTombstone};
use crate::groups::GroupFilter;
use crate::keys::{PublicKey, SignatureError, SignerKey, StaticKeypair, KEY_LEN, SIGNATURE_LEN};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// Longest host name accepted in a record.
pub const MAX_NAME_LEN: usize = 64;
/// Most underlay endpoints a record lists.
pub const MAX_ENDPOINTS: usize = 4;
/// Most unreachable hosts a record lists; beyond that it says only that
/// there are more (`unreachable_more`), and no one relays through it.
pub const MAX_UNREACHABLE: usize = 32;
/// Largest signed record accepted (a record with the most DNS entries a
/// host may publish fits).
pub const MAX_RECORD_LEN: usize = 48 * 1024;
/// How far ahead of the receiver's clock a version may be (milliseconds).
/// Versions are the author's millisecond clock; one further ahead would
/// freeze its record (no later version could follow) and is refused.
pub const MAX_FUTURE_MS: u64 = 3_600_000;

const DOMAIN: &[u8] = b"weavers record v2\0";
const HEADER_LEN: usize = KEY_LEN + SIGNATURE_LEN;

/// What a host says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// The author's identity (X25519) key.
    pub key: PublicKey,
    /// Grows with every change; the author's millisecond clock.
    pub version: u64,
    pub name: String,
    /// Underlay addresses its peers see it at (most seen first).
    pub endpoints: Vec<SocketAddr>,
    /// Short ids ([`PublicKey::short_id`]) of hosts it knows but has no
    /// live direct session with: it is no relay towards them.
    pub unreachable: Vec<u64>,
    /// More hosts are unreachable than listed: it is no relay at all.
    pub unreachable_more: bool,
    /// Address given by `weavers expose`, with its prefix length.
    pub overlay_addr: Option<(IpAddr, u8)>,
    /// Multicast groups local members want, with their source filters.
    pub groups: Vec<GroupFilter>,
    /// Overlay DNS entries this host added (see [`crate::dns`]).
    pub dns: Vec<DnsEntry>,
    /// Other hosts' DNS entries this host removed.
    pub dns_tombstones: Vec<DnsTombstone>,
    /// This host's share of the address range (absent until seeded).
    pub ipam: Option<crate::ipam::IpamRecord>,
    /// Its certificate (network-authority mode), so that hosts without a
    /// direct session (relayed ones) know what it may do.
    pub cert: Option<Vec<u8>>,
}

impl PeerRecord {
    /// An empty record of `key` at `version`.
    pub fn new(key: PublicKey, version: u64, name: &str) -> Self {
        PeerRecord {
            key,
            version,
            name: name.to_owned(),
            endpoints: Vec::new(),
            unreachable: Vec::new(),
            unreachable_more: false,
            overlay_addr: None,
            groups: Vec::new(),
            dns: Vec::new(),
            dns_tombstones: Vec::new(),
            ipam: None,
            cert: None,
        }
    }

    /// Checks the limits a well-behaved host stays within.
    pub fn is_valid(&self) -> bool {
        self.name.len() <= MAX_NAME_LEN
            && self.endpoints.len() <= MAX_ENDPOINTS
            && self.unreachable.len() <= MAX_UNREACHABLE
            && self.overlay_addr.is_none_or(|(a, p)| p <= if a.is_ipv4() { 32 } else { 128 })
            && self.groups.len() <= crate::groups::MAX_GROUPS
            && self.groups.iter().all(GroupFilter::is_valid)
            && self.dns.len() <= crate::dns::MAX_ENTRIES
            && self.dns.iter().all(DnsEntry::is_valid)
            && self.dns_tombstones.len() <= crate::dns::MAX_ENTRIES
            && self.dns_tombstones.iter().all(DnsTombstone::is_valid)
            && self.ipam.as_ref().is_none_or(crate::ipam::IpamRecord::is_valid)
            && self.cert.as_ref().is_none_or(|c| c.len() <= weavers_cert::MAX_ENCODED_LEN)
    }

    /// Makes the record's group filters fit: the signed record must be at
    /// most [`MAX_RECORD_LEN`] bytes, or every peer refuses it. Source
    /// lists widen to EXCLUDE {} (every source: more traffic, never less),
    /// the longest first; if that is not enough, groups are left out from
    /// the end (highest addresses). Returns how many groups were widened
    /// or left out (0 when the record already fits).
    pub fn fit_groups(&mut self) -> usize {
        let groups = std::mem::take(&mut self.groups);
        let rest = postcard::to_allocvec(self).map_or(usize::MAX, |v| v.len());
        // The groups' length prefix is a varint of at most 3 bytes for
        // MAX_GROUPS; 1 of them is already in `rest`.
        let budget = MAX_RECORD_LEN.saturating_sub(HEADER_LEN + rest + 2);
        self.groups = groups;
        let len = |g: &GroupFilter| postcard::to_allocvec(g).map_or(usize::MAX, |v| v.len());
        let mut sizes: Vec<usize> = self.groups.iter().map(len).collect();
        let mut total: usize = sizes.iter().sum();
        let mut changed = 0;
        if total <= budget {
            return 0;
        }
        let mut longest: Vec<usize> = (0..self.groups.len()).filter(|&i| !self.groups[i].sources.is_empty()).collect();
        longest.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
        for i in longest {
            if total <= budget {
                break;
            }
            let g = &mut self.groups[i];
            g.mode = crate::groups::FilterMode::Exclude;
            g.sources.clear();
            let now = len(g);
            total = total - sizes[i] + now;
            sizes[i] = now;
            changed += 1;
        }
        while total > budget {
            let Some(n) = sizes.pop() else { break };
            self.groups.pop();
            total -= n;
            changed += 1;
        }
        changed
    }

    /// Whether this host may relay towards `to`.
    pub fn reaches(&self, to: &PublicKey) -> bool {
        !self.unreachable_more && !self.unreachable.contains(&to.short_id().0)
    }
}

/// Why a signed record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record too short or too long")]
    Length,
    #[error("record body does not decode")]
    Malformed,
    #[error("record breaks the limits")]
    Invalid,
    #[error("record version too far in the future")]
    FromTheFuture,
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// A record as its author signed it: the bytes that travel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRecord(Vec<u8>);

impl SignedRecord {
    /// Encodes and signs `record` with `identity`, whose record it must be.
    pub fn sign(record: &PeerRecord, identity: &StaticKeypair) -> Self {
        debug_assert_eq!(record.key, identity.public);
        let body = postcard::to_allocvec(record).expect("records serialize");
        let mut msg = Vec::with_capacity(DOMAIN.len() + body.len());
        msg.extend_from_slice(DOMAIN);
        msg.extend_from_slice(&body);
        let sig = identity.sign(&msg);
        let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
        bytes.extend_from_slice(&identity.signer().0);
        bytes.extend_from_slice(&sig);
        bytes.extend_from_slice(&body);
        SignedRecord(bytes)
    }

    /// The bytes as signed, to send on.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: a signed record has at least its header.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Decodes the body without checking the signature: enough to see
    /// whose record it claims to be and its version, so that stale copies
    /// are skipped before paying for a verification. Nothing from it may
    /// be believed until [`SignedRecord::open`] succeeded.
    pub fn peek(bytes: &[u8]) -> Result<PeerRecord, RecordError> {
        if bytes.len() <= HEADER_LEN || bytes.len() > MAX_RECORD_LEN {
            return Err(RecordError::Length);
        }
        let (record, rest): (PeerRecord, _) =
            postcard::take_from_bytes(&bytes[HEADER_LEN..]).map_err(|_| RecordError::Malformed)?;
        if !rest.is_empty() {
            return Err(RecordError::Malformed);
        }
        Ok(record)
    }

    /// Checks a received record completely: it decodes, keeps the limits,
    /// its version is at most [`MAX_FUTURE_MS`] ahead of `now_ms` (the
    /// receiver's clock), and its author signed it. `peeked` is what
    /// [`SignedRecord::peek`] returned for the same bytes.
    pub fn open(bytes: &[u8], peeked: PeerRecord, now_ms: u64) -> Result<(SignedRecord, PeerRecord), RecordError> {
        if !peeked.is_valid() {
            return Err(RecordError::Invalid);
        }
        if peeked.version > now_ms.saturating_add(MAX_FUTURE_MS) {
            return Err(RecordError::FromTheFuture);
        }
        let signer = SignerKey(bytes[..KEY_LEN].try_into().expect("length checked in peek"));
        let sig: [u8; SIGNATURE_LEN] = bytes[KEY_LEN..HEADER_LEN].try_into().expect("length checked in peek");
        let body = &bytes[HEADER_LEN..];
        let mut msg = Vec::with_capacity(DOMAIN.len() + body.len());
        msg.extend_from_slice(DOMAIN);
        msg.extend_from_slice(body);
        signer.verify(&peeked.key, &msg, &sig)?;
        Ok((SignedRecord(bytes.to_vec()), peeked))
    }

    /// [`SignedRecord::open`] without the signature check, for simulations
    /// of thousands of hosts where Ed25519 would be all the cost.
    #[cfg(test)]
    pub(crate) fn open_unchecked(
        bytes: &[u8],
        peeked: PeerRecord,
        now_ms: u64,
    ) -> Result<(SignedRecord, PeerRecord), RecordError> {
        if !peeked.is_valid() {
            return Err(RecordError::Invalid);
        }
        if peeked.version > now_ms.saturating_add(MAX_FUTURE_MS) {
            return Err(RecordError::FromTheFuture);
        }
        Ok((SignedRecord(bytes.to_vec()), peeked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn open(bytes: &[u8], now_ms: u64) -> Result<PeerRecord, RecordError> {
        let peeked = SignedRecord::peek(bytes)?;
        SignedRecord::open(bytes, peeked, now_ms).map(|(_, r)| r)
    }

    #[test]
    fn signed_records_open_and_forgeries_do_not() {
        let id = StaticKeypair::generate();
        let mut r = PeerRecord::new(id.public, 1_000, "h1");
        r.endpoints.push("192.0.2.1:6783".parse().unwrap());
        let s = SignedRecord::sign(&r, &id);
        assert_eq!(open(s.as_bytes(), 1_000), Ok(r.clone()));

        // A password holder rewriting another host's record: signs it with
        // its own key, which does not belong to that host.
        let mallory = StaticKeypair::generate();
        let mut forged = r.clone();
        forged.version += 1;
        forged.groups.clear();
        let mut f = SignedRecord::sign(&PeerRecord { key: mallory.public, ..forged.clone() }, &mallory).0;
        let body = postcard::to_allocvec(&forged).unwrap();
        f.truncate(HEADER_LEN);
        f.extend_from_slice(&body);
        assert_eq!(open(&f, 1_000), Err(RecordError::Signature(SignatureError::WrongKey)));

        // One flipped bit anywhere in the body.
        let mut b = s.as_bytes().to_vec();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(open(&b, 1_000).is_err());
    }

    #[test]
    fn versions_far_in_the_future_are_refused() {
        let id = StaticKeypair::generate();
        let r = PeerRecord::new(id.public, u64::MAX, "h1");
        let s = SignedRecord::sign(&r, &id);
        assert_eq!(open(s.as_bytes(), 5_000), Err(RecordError::FromTheFuture));
        let r = PeerRecord::new(id.public, 5_000 + MAX_FUTURE_MS, "h1");
        assert!(open(SignedRecord::sign(&r, &id).as_bytes(), 5_000).is_ok());
    }

    #[test]
    fn limits_are_checked() {
        let id = StaticKeypair::generate();
        let mut r = PeerRecord::new(id.public, 1, "h1");
        r.unreachable = (0..MAX_UNREACHABLE as u64 + 1).collect();
        assert_eq!(open(SignedRecord::sign(&r, &id).as_bytes(), 1), Err(RecordError::Invalid));
        r.unreachable.clear();
        r.name = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(open(SignedRecord::sign(&r, &id).as_bytes(), 1), Err(RecordError::Invalid));
        assert_eq!(open(&[0; 10], 1), Err(RecordError::Length));
        assert_eq!(open(&vec![0; MAX_RECORD_LEN + 1], 1), Err(RecordError::Length));
    }

    #[test]
    fn a_record_with_too_many_groups_is_fitted_to_what_peers_accept() {
        use crate::groups::{FilterMode, MAX_SOURCES};
        let id = StaticKeypair::generate();
        let mut r = PeerRecord::new(id.public, 1, "h1");
        assert_eq!(r.fit_groups(), 0);
        // 4,000 IPv6 groups, the first hundred with long source lists: far
        // over the record's size.
        let v6 = |i: u32| IpAddr::from([0xff0e, 0, 0, 0, 0, 0, (i >> 16) as u16, i as u16]);
        r.groups = (0..4000u32)
            .map(|i| {
                let sources = if i < 100 { (0..MAX_SOURCES as u32).map(|s| v6(0x10000 + s)).collect() } else { vec![] };
                let mode = if i < 100 { FilterMode::Include } else { FilterMode::Exclude };
                GroupFilter { group: v6(i), mode, sources }
            })
            .collect();
        assert_eq!(open(SignedRecord::sign(&r, &id).as_bytes(), 1), Err(RecordError::Length));
        let changed = r.fit_groups();
        let signed = SignedRecord::sign(&r, &id);
        assert!(signed.len() <= MAX_RECORD_LEN);
        assert_eq!(open(signed.as_bytes(), 1), Ok(r.clone()), "peers take it");
        assert!(r.groups.iter().all(|g| g.sources.is_empty()), "widened first");
        assert_eq!(changed, 100 + (4000 - r.groups.len()));
        assert!(r.groups.len() > 2000, "as many groups as fit are kept: {}", r.groups.len());
        assert_eq!(r.groups[0].group, v6(0), "the lowest kept");
        assert_eq!(r.fit_groups(), 0, "fitted once");
    }

    #[test]
    fn reaches_follows_the_unreachable_list() {
        let a = PublicKey([1; 32]);
        let mut r = PeerRecord::new(PublicKey([2; 32]), 1, "h");
        assert!(r.reaches(&a));
        r.unreachable.push(a.short_id().0);
        assert!(!r.reaches(&a));
        r.unreachable.clear();
        r.unreachable_more = true;
        assert!(!r.reaches(&a));
    }

    proptest! {
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = open(&bytes, u64::MAX);
        }
    }
}
