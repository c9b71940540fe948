//! Overlay DNS: names under `weavers.local.` that every host answers for.
//!
//! Each host publishes the entries it added (`weavers dns add`, the CNI
//! plugin) in its own gossip record, so an entry lives as long as its
//! origin keeps it, and the origin's removal spreads with its next record
//! version. Removing an entry another host added takes a tombstone: the
//! remover publishes `(name, addr, origin, version)` in its own record;
//! every host hides the origin's matching entry whose `since` stamp is at
//! most `version`, and the origin, on seeing the tombstone, drops the entry
//! from its record. An entry the origin adds again later carries a newer
//! stamp and is not hidden.
//!
//! Everything here is pure: names are normalised and checked, the merged
//! view is computed from the records, the [`DnsTable`] answers lookups in
//! rotating order, and [`message`] turns a query's bytes into a reply's.
//! The clock comes in as an argument.

pub mod message;

use crate::keys::PublicKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

// The syntax of names and owner tags is shared with the command line and
// the CNI plugin: it lives in weavers-api.
pub use weavers_api::dns_name::{
    check_owner, fqdn, is_valid_name, is_valid_owner, normalize, NameError, DOMAIN, MAX_LABEL_LEN, MAX_NAME_LEN,
    MAX_OWNER_LEN,
};

/// Most entries, and most tombstones, one record may carry.
pub const MAX_ENTRIES: usize = 4096;
/// Most bytes this host's own entries and tombstones may take in its
/// gossip record (a record travels in one datagram).
pub const OWN_BUDGET: usize = 32 * 1024;
/// How long a tombstone is published at least.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(600);
/// How long a tombstone is published at most, even while its origin still
/// shows the entry (an origin that never applies it).
pub const TOMBSTONE_MAX_AGE: Duration = Duration::from_secs(3600);

/// One name -> address entry, as its origin publishes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DnsEntry {
    /// Normalised name without the domain, e.g. `aapl.orders.aex`.
    pub name: String,
    pub addr: IpAddr,
    /// Who registered it (e.g. the CNI plugin with a container's ID), so
    /// that it can remove all of its entries at once.
    pub owner: Option<String>,
    /// The origin's stamp (on its record-version clock) when it last added
    /// the entry.
    pub since: u64,
}

impl DnsEntry {
    pub fn is_valid(&self) -> bool {
        is_valid_name(&self.name) && self.owner.as_deref().is_none_or(is_valid_owner)
    }
}

/// A removal of another host's entry, published by the remover.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DnsTombstone {
    pub name: String,
    pub addr: IpAddr,
    /// The host that published the entry.
    pub origin: PublicKey,
    /// Hides the origin's entry `(name, addr)` whose `since` is at most this.
    pub version: u64,
}

impl DnsTombstone {
    pub fn is_valid(&self) -> bool {
        is_valid_name(&self.name)
    }

    fn hides(&self, origin: &PublicKey, e: &DnsEntry) -> bool {
        self.origin == *origin && self.name == e.name && self.addr == e.addr && e.since <= self.version
    }
}

/// Why a name or a request was refused; `Display` is the message for users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsError {
    Name(String),
    Owner(String),
    Full(String),
    Selector(String),
    /// Network-authority mode: the host's certificate does not allow the name.
    NotPermitted(String),
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::Name(m)
            | DnsError::Owner(m)
            | DnsError::Full(m)
            | DnsError::Selector(m)
            | DnsError::NotPermitted(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DnsError {}

impl From<NameError> for DnsError {
    fn from(e: NameError) -> Self {
        match e {
            NameError::Name { .. } => DnsError::Name(e.to_string()),
            NameError::Owner => DnsError::Owner(e.to_string()),
        }
    }
}

/// Which entries a removal is about: every given field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// A normalised name.
    pub name: Option<String>,
    pub addr: Option<IpAddr>,
    pub owner: Option<String>,
}

impl Selector {
    /// Builds a selector from user input; it needs a name or an owner.
    pub fn new(name: Option<&str>, addr: Option<IpAddr>, owner: Option<&str>) -> Result<Self, DnsError> {
        if name.is_none() && owner.is_none() {
            return Err(DnsError::Selector("give a name (and maybe an address) or an owner".into()));
        }
        let name = name.map(normalize).transpose()?;
        if let Some(o) = owner {
            check_owner(o)?;
        }
        Ok(Selector { name, addr, owner: owner.map(str::to_string) })
    }

    pub fn matches(&self, name: &str, addr: IpAddr, owner: Option<&str>) -> bool {
        self.name.as_deref().is_none_or(|n| n == name)
            && self.addr.is_none_or(|a| a == addr)
            && self.owner.as_deref().is_none_or(|o| Some(o) == owner)
    }
}

/// What one host publishes, as input to [`visible`].
#[derive(Clone, Copy, Debug)]
pub struct Published<'a> {
    pub origin: PublicKey,
    pub origin_name: &'a str,
    pub entries: &'a [DnsEntry],
    pub tombstones: &'a [DnsTombstone],
}

/// An entry that no tombstone hides, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Visible {
    pub name: String,
    pub addr: IpAddr,
    pub owner: Option<String>,
    pub origin: PublicKey,
    pub origin_name: String,
    pub since: u64,
}

/// The newest tombstone version per `(origin, name, addr)`.
type TombIndex<'a> = HashMap<(PublicKey, &'a str, IpAddr), u64>;

fn tomb_index<'a>(records: &[Published<'a>]) -> TombIndex<'a> {
    let mut tombs: TombIndex<'a> = HashMap::new();
    for r in records {
        for t in r.tombstones {
            let v = tombs.entry((t.origin, t.name.as_str(), t.addr)).or_insert(0);
            *v = (*v).max(t.version);
        }
    }
    tombs
}

/// The merged view of every host's entries (this host's among them):
/// the entries no tombstone hides, sorted by name, address, origin.
pub fn visible(records: &[Published<'_>]) -> Vec<Visible> {
    let tombs = tomb_index(records);
    let mut out: Vec<Visible> = records
        .iter()
        .flat_map(|r| r.entries.iter().map(move |e| (r, e)))
        .filter(|(r, e)| tombs.get(&(r.origin, e.name.as_str(), e.addr)).is_none_or(|v| e.since > *v))
        .map(|(r, e)| Visible {
            name: e.name.clone(),
            addr: e.addr,
            owner: e.owner.clone(),
            origin: r.origin,
            origin_name: r.origin_name.to_string(),
            since: e.since,
        })
        .collect();
    out.sort();
    out
}

/// This host's own DNS state: the entries it publishes and the tombstones
/// it publishes for others' entries, with when each tombstone was made.
#[derive(Clone, Debug, Default)]
pub struct OwnNames {
    entries: Vec<DnsEntry>,
    tombstones: Vec<(DnsTombstone, Instant)>,
}

impl OwnNames {
    pub fn new() -> Self {
        Self::default()
    }

    /// The entries to publish, sorted.
    pub fn entries(&self) -> &[DnsEntry] {
        &self.entries
    }

    /// The tombstones to publish, sorted.
    pub fn tombstones(&self) -> Vec<DnsTombstone> {
        self.tombstones.iter().map(|(t, _)| t.clone()).collect()
    }

    /// Takes entries kept from an earlier run; invalid ones and those past
    /// the limits are skipped. Returns how many were skipped.
    pub fn restore(&mut self, entries: Vec<DnsEntry>) -> usize {
        let total = entries.len();
        for e in entries {
            if !e.is_valid() || self.entries.iter().any(|x| x.name == e.name && x.addr == e.addr) {
                continue;
            }
            self.entries.push(e);
            if self.entries.len() > MAX_ENTRIES || self.encoded_len() > OWN_BUDGET {
                self.entries.pop();
                break;
            }
        }
        self.entries.sort();
        total - self.entries.len()
    }

    /// Adds `name -> addr` (or refreshes it: a new owner, a new stamp).
    /// `stamp` is the host's record-version clock now.
    pub fn add(&mut self, name: &str, addr: IpAddr, owner: Option<&str>, stamp: u64) -> Result<DnsEntry, DnsError> {
        let name = normalize(name)?;
        if let Some(o) = owner {
            check_owner(o)?;
        }
        let entry = DnsEntry { name, addr, owner: owner.map(str::to_string), since: stamp };
        let before = self.entries.clone();
        self.entries.retain(|e| !(e.name == entry.name && e.addr == entry.addr));
        self.entries.push(entry.clone());
        if self.entries.len() > MAX_ENTRIES || self.encoded_len() > OWN_BUDGET {
            self.entries = before;
            return Err(DnsError::Full(format!(
                "this host already publishes {} DNS entries, as many as its gossip record holds \
                 ({OWN_BUDGET} bytes); remove some first",
                self.entries.len()
            )));
        }
        self.entries.sort();
        Ok(entry)
    }

    /// Removes what `sel` matches: this host's own entries at once, and
    /// others' (as `view` shows them) by tombstones. Returns the removed
    /// entries; nothing matching is not an error.
    pub fn remove(
        &mut self,
        me: &PublicKey,
        sel: &Selector,
        view: &[Visible],
        now: Instant,
    ) -> Result<Vec<Visible>, DnsError> {
        let mut removed = Vec::new();
        let mut tombs = Vec::new();
        for v in view.iter().filter(|v| sel.matches(&v.name, v.addr, v.owner.as_deref())) {
            if v.origin != *me {
                tombs.push(DnsTombstone { name: v.name.clone(), addr: v.addr, origin: v.origin, version: v.since });
            }
            removed.push(v.clone());
        }
        let before = (self.entries.clone(), self.tombstones.clone());
        self.entries.retain(|e| !sel.matches(&e.name, e.addr, e.owner.as_deref()));
        for t in tombs {
            // A newer tombstone for the same entry replaces the older.
            self.tombstones.retain(|(x, _)| !(x.origin == t.origin && x.name == t.name && x.addr == t.addr));
            self.tombstones.push((t, now));
        }
        if self.tombstones.len() > MAX_ENTRIES || self.encoded_len() > OWN_BUDGET {
            (self.entries, self.tombstones) = before;
            return Err(DnsError::Full(format!(
                "too many removals of other hosts' entries under way ({} tombstones); try again in a few minutes",
                self.tombstones.len()
            )));
        }
        self.tombstones.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(removed)
    }

    /// Drops this host's entries that others' tombstones remove. Returns
    /// the dropped entries.
    pub fn apply_tombstones<'a>(
        &mut self,
        me: &PublicKey,
        tombstones: impl IntoIterator<Item = &'a DnsTombstone>,
    ) -> Vec<DnsEntry> {
        let mine: Vec<&DnsTombstone> = tombstones.into_iter().filter(|t| t.origin == *me).collect();
        if mine.is_empty() {
            return Vec::new();
        }
        let (gone, kept): (Vec<DnsEntry>, Vec<DnsEntry>) =
            std::mem::take(&mut self.entries).into_iter().partition(|e| mine.iter().any(|t| t.hides(me, e)));
        self.entries = kept;
        gone
    }

    /// Forgets tombstones older than [`TOMBSTONE_TTL`], except those whose
    /// origin (by `still_shown`) still publishes the entry, which are kept
    /// up to [`TOMBSTONE_MAX_AGE`]. Returns whether any was forgotten.
    pub fn expire(&mut self, now: Instant, still_shown: impl Fn(&DnsTombstone) -> bool) -> bool {
        let before = self.tombstones.len();
        self.tombstones.retain(|(t, made)| {
            let age = now.saturating_duration_since(*made);
            age < TOMBSTONE_TTL || (age < TOMBSTONE_MAX_AGE && still_shown(t))
        });
        self.tombstones.len() != before
    }

    /// Bytes the entries and tombstones take in a record.
    fn encoded_len(&self) -> usize {
        let t: Vec<&DnsTombstone> = self.tombstones.iter().map(|(t, _)| t).collect();
        postcard::to_allocvec(&(&self.entries, t)).map(|v| v.len()).unwrap_or(usize::MAX)
    }
}

/// Whether the origin's entries (`entries`) still show what `t` removes.
pub fn shows(entries: &[DnsEntry], t: &DnsTombstone) -> bool {
    entries.iter().any(|e| t.hides(&t.origin, e))
}

/// Where a queried name falls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `weavers.local.` itself.
    Apex,
    /// A name in the domain: the part before it, lowercase (not
    /// necessarily a valid name).
    Inside(String),
    /// Any other name.
    Outside,
}

/// Classifies a name given in any case, with or without the final dot.
pub fn scope(name: &str) -> Scope {
    let lower = name.to_ascii_lowercase();
    let s = lower.strip_suffix('.').unwrap_or(&lower);
    if s == DOMAIN {
        return Scope::Apex;
    }
    match s.strip_suffix(DOMAIN).and_then(|r| r.strip_suffix('.')) {
        Some(rel) => Scope::Inside(rel.to_string()),
        None => Scope::Outside,
    }
}

/// The addresses of one name, by family, and how often each was asked for.
#[derive(Clone, Debug, Default)]
struct NameAddrs {
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
    turns: [u64; 2],
}

/// The merged table the DNS server answers from. Lookups rotate: each one
/// starts one address further on (per name and family), so that queries
/// spread over the addresses of a name.
#[derive(Clone, Debug, Default)]
pub struct DnsTable {
    rows: Vec<Visible>,
    names: HashMap<String, NameAddrs>,
    /// Names that exist only as parents of others (`orders.aex` when
    /// `aapl.orders.aex` exists): they answer NODATA, not NXDOMAIN.
    parents: HashSet<String>,
}

/// Answer of a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup<T> {
    /// The name has addresses of the family asked for, in answer order.
    Found(Vec<T>),
    /// The name exists, but has none of this family.
    NoData,
    /// No such name.
    NoName,
}

impl DnsTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the contents, keeping the rotation of names still present.
    pub fn replace(&mut self, mut rows: Vec<Visible>) {
        rows.sort();
        let mut names: HashMap<String, NameAddrs> = HashMap::new();
        let mut parents = HashSet::new();
        for r in &rows {
            let n = names.entry(r.name.clone()).or_default();
            match r.addr {
                IpAddr::V4(a) => n.v4.push(a),
                IpAddr::V6(a) => n.v6.push(a),
            }
            let mut rest = r.name.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                parents.insert(parent.to_string());
                rest = parent;
            }
        }
        for (name, n) in names.iter_mut() {
            n.v4.sort();
            n.v4.dedup();
            n.v6.sort();
            n.v6.dedup();
            if let Some(old) = self.names.get(name) {
                n.turns = old.turns;
            }
        }
        self.rows = rows;
        self.names = names;
        self.parents = parents;
    }

    /// Every visible entry, sorted by name, address, origin.
    pub fn rows(&self) -> &[Visible] {
        &self.rows
    }

    /// Whether a normalised name has any address.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    fn exists(&self, name: &str) -> bool {
        self.names.contains_key(name) || self.parents.contains(name)
    }

    /// IPv4 addresses of a normalised name, rotated (and the rotation moved on).
    pub fn lookup_v4(&mut self, name: &str) -> Lookup<Ipv4Addr> {
        match self.names.get_mut(name) {
            Some(n) => rotate(&n.v4, &mut n.turns[0]),
            None if self.parents.contains(name) => Lookup::NoData,
            None => Lookup::NoName,
        }
    }

    /// IPv6 addresses of a normalised name, rotated (and the rotation moved on).
    pub fn lookup_v6(&mut self, name: &str) -> Lookup<Ipv6Addr> {
        match self.names.get_mut(name) {
            Some(n) => rotate(&n.v6, &mut n.turns[1]),
            None if self.parents.contains(name) => Lookup::NoData,
            None => Lookup::NoName,
        }
    }

    /// All addresses of a normalised name in answer order (the A answer,
    /// then the AAAA answer); both rotations move on. None: no such name.
    pub fn lookup_all(&mut self, name: &str) -> Option<Vec<IpAddr>> {
        if !self.exists(name) {
            return None;
        }
        let mut out: Vec<IpAddr> = Vec::new();
        if let Lookup::Found(v) = self.lookup_v4(name) {
            out.extend(v.into_iter().map(IpAddr::V4));
        }
        if let Lookup::Found(v) = self.lookup_v6(name) {
            out.extend(v.into_iter().map(IpAddr::V6));
        }
        Some(out)
    }

    /// Whether a (lowercase, maybe invalid) name in the domain exists.
    pub fn name_exists(&self, name: &str) -> bool {
        self.exists(name)
    }

    /// Rows grouped by (name, origin, owner), addresses sorted.
    pub fn grouped(&self) -> Vec<(String, &Visible, Vec<IpAddr>)> {
        type Key<'a> = (&'a str, &'a str, PublicKey, Option<&'a str>);
        let mut groups: BTreeMap<Key<'_>, (&Visible, Vec<IpAddr>)> = BTreeMap::new();
        for r in &self.rows {
            groups
                .entry((r.name.as_str(), r.origin_name.as_str(), r.origin, r.owner.as_deref()))
                .or_insert((r, Vec::new()))
                .1
                .push(r.addr);
        }
        groups.into_iter().map(|((name, ..), (first, addrs))| (name.to_string(), first, addrs)).collect()
    }
}

fn rotate<T: Copy>(addrs: &[T], turn: &mut u64) -> Lookup<T> {
    if addrs.is_empty() {
        return Lookup::NoData;
    }
    let start = (*turn % addrs.len() as u64) as usize;
    *turn = turn.wrapping_add(1);
    Lookup::Found(addrs[start..].iter().chain(&addrs[..start]).copied().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(k: u8) -> PublicKey {
        PublicKey([k; 32])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn scopes() {
        assert_eq!(scope("weavers.local."), Scope::Apex);
        assert_eq!(scope("Weavers.Local"), Scope::Apex);
        assert_eq!(scope("AAPL.orders.aex.weavers.local."), Scope::Inside("aapl.orders.aex".into()));
        assert_eq!(scope("example.com."), Scope::Outside);
        assert_eq!(scope("notweavers.local."), Scope::Outside);
        assert_eq!(scope("."), Scope::Outside);
        assert_eq!(scope(""), Scope::Outside);
    }

    fn own_view(me: PublicKey, own: &OwnNames, others: &[(PublicKey, &OwnNames)]) -> Vec<Visible> {
        let tombs_own = own.tombstones();
        let others_t: Vec<(PublicKey, Vec<DnsTombstone>)> = others.iter().map(|(k, o)| (*k, o.tombstones())).collect();
        let mut recs =
            vec![Published { origin: me, origin_name: "me", entries: own.entries(), tombstones: &tombs_own }];
        for ((k, o), (_, t)) in others.iter().zip(&others_t) {
            recs.push(Published { origin: *k, origin_name: "other", entries: o.entries(), tombstones: t });
        }
        visible(&recs)
    }

    #[test]
    fn add_is_idempotent_and_refreshes() {
        let mut o = OwnNames::new();
        let e = o.add("Web", ip("10.0.0.1"), None, 10).unwrap();
        assert_eq!(e.name, "web");
        let e2 = o.add("web.weavers.local", ip("10.0.0.1"), Some("ctr1"), 20).unwrap();
        assert_eq!(o.entries().len(), 1);
        assert_eq!(e2.owner.as_deref(), Some("ctr1"));
        assert_eq!(o.entries()[0].since, 20);
        o.add("web", ip("10.0.0.2"), None, 21).unwrap();
        assert_eq!(o.entries().len(), 2);
        assert!(o.add("web", ip("10.0.0.3"), Some("has space"), 22).is_err());
        assert!(o.add("bad..name", ip("10.0.0.3"), None, 22).is_err());
        assert_eq!(o.entries().len(), 2, "refused adds change nothing");
    }

    #[test]
    fn own_entries_are_bounded_by_the_record_budget() {
        let mut o = OwnNames::new();
        let mut n = 0u32;
        let err = loop {
            match o.add(&format!("name-{n}.a-fairly-long-label"), IpAddr::V4(n.into()), Some("owner-tag"), 1) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
            assert!(n < 10_000, "no limit");
        };
        assert!(matches!(err, DnsError::Full(_)), "{err}");
        assert!(o.encoded_len() <= OWN_BUDGET);
        assert_eq!(o.entries().len(), n as usize);
    }

    #[test]
    fn removing_own_and_others_entries() {
        let t0 = Instant::now();
        let (a, b) = (key(1), key(2));
        let mut na = OwnNames::new();
        let mut nb = OwnNames::new();
        na.add("web", ip("10.0.0.1"), None, 100).unwrap();
        na.add("web", ip("10.0.0.2"), None, 101).unwrap();
        nb.add("web", ip("10.0.0.3"), None, 200).unwrap();
        nb.add("db", ip("10.0.0.4"), Some("c1"), 201).unwrap();

        // b removes web 10.0.0.1 (a's): a tombstone, seen everywhere.
        let view_b = own_view(b, &nb, &[(a, &na)]);
        assert_eq!(view_b.len(), 4);
        let sel = Selector::new(Some("WEB"), Some(ip("10.0.0.1")), None).unwrap();
        let removed = nb.remove(&b, &sel, &view_b, t0).unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].origin, a);
        assert_eq!(nb.tombstones().len(), 1);
        let view_b = own_view(b, &nb, &[(a, &na)]);
        assert_eq!(view_b.iter().filter(|v| v.name == "web").count(), 2);
        let view_a = own_view(a, &na, &[(b, &nb)]);
        assert_eq!(view_a.iter().filter(|v| v.name == "web").count(), 2, "hidden on a too, before it drops it");

        // a sees the tombstone and drops its entry.
        let tb = nb.tombstones();
        let gone = na.apply_tombstones(&a, &tb);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].addr, ip("10.0.0.1"));
        assert_eq!(na.entries().len(), 1);
        // Applying again changes nothing; others' tombstones for other origins are ignored.
        assert!(na.apply_tombstones(&a, &tb).is_empty());
        assert!(nb.apply_tombstones(&b, &tb).is_empty());

        // a adds it again later: a newer stamp, not hidden by the old tombstone.
        na.add("web", ip("10.0.0.1"), None, 300).unwrap();
        let view = own_view(b, &nb, &[(a, &na)]);
        assert!(view.iter().any(|v| v.addr == ip("10.0.0.1")));

        // Removing by name on a: a's own entries go at once, b's by tombstone.
        let view_a = own_view(a, &na, &[(b, &nb)]);
        let removed = na.remove(&a, &Selector::new(Some("web"), None, None).unwrap(), &view_a, t0).unwrap();
        assert_eq!(removed.len(), 3);
        assert!(na.entries().is_empty());
        assert_eq!(na.tombstones().len(), 1);
        let view = own_view(a, &na, &[(b, &nb)]);
        assert_eq!(view.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["db"]);

        // By owner; then again: idempotent.
        let view_a = own_view(a, &na, &[(b, &nb)]);
        let sel = Selector::new(None, None, Some("c1")).unwrap();
        assert_eq!(na.remove(&a, &sel, &view_a, t0).unwrap().len(), 1);
        let view_a = own_view(a, &na, &[(b, &nb)]);
        assert!(view_a.is_empty());
        assert!(na.remove(&a, &sel, &view_a, t0).unwrap().is_empty());
        assert!(Selector::new(None, Some(ip("10.0.0.1")), None).is_err(), "an address alone selects too much");
    }

    #[test]
    fn tombstones_expire_after_their_time_unless_still_shown() {
        let t0 = Instant::now();
        let (a, b) = (key(1), key(2));
        let mut na = OwnNames::new();
        na.add("x", ip("10.0.0.1"), None, 5).unwrap();
        let mut nb = OwnNames::new();
        let view = own_view(b, &nb, &[(a, &na)]);
        nb.remove(&b, &Selector::new(Some("x"), None, None).unwrap(), &view, t0).unwrap();
        let t = nb.tombstones()[0].clone();
        assert!(shows(na.entries(), &t));
        assert!(!nb.expire(t0 + TOMBSTONE_TTL / 2, |_| false));
        // Due, but the origin still shows the entry: kept.
        assert!(!nb.expire(t0 + TOMBSTONE_TTL, |t| shows(na.entries(), t)));
        assert_eq!(nb.tombstones().len(), 1);
        // The origin applied it: forgotten.
        na.apply_tombstones(&a, &nb.tombstones());
        assert!(nb.expire(t0 + TOMBSTONE_TTL, |t| shows(na.entries(), t)));
        assert!(nb.tombstones().is_empty());
        // And an origin that never applies it cannot keep it forever.
        let mut nc = OwnNames::new();
        let view = own_view(b, &nc, &[(a, &OwnNames { entries: vec![t_entry()], tombstones: vec![] })]);
        nc.remove(&b, &Selector::new(Some("x"), None, None).unwrap(), &view, t0).unwrap();
        assert!(!nc.expire(t0 + TOMBSTONE_MAX_AGE - Duration::from_secs(1), |_| true));
        assert!(nc.expire(t0 + TOMBSTONE_MAX_AGE, |_| true));
    }

    fn t_entry() -> DnsEntry {
        DnsEntry { name: "x".into(), addr: ip("10.0.0.1"), owner: None, since: 5 }
    }

    #[test]
    fn a_tombstone_hides_only_its_origin_and_older_stamps() {
        let (a, b, c) = (key(1), key(2), key(3));
        let ea = [DnsEntry { since: 10, ..t_entry() }];
        let eb = [DnsEntry { since: 10, ..t_entry() }];
        let tc = [DnsTombstone { name: "x".into(), addr: ip("10.0.0.1"), origin: a, version: 10 }];
        let recs = [
            Published { origin: a, origin_name: "a", entries: &ea, tombstones: &[] },
            Published { origin: b, origin_name: "b", entries: &eb, tombstones: &[] },
            Published { origin: c, origin_name: "c", entries: &[], tombstones: &tc },
        ];
        let v = visible(&recs);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].origin, b);
        let ea = [DnsEntry { since: 11, ..t_entry() }];
        let recs = [
            Published { origin: a, origin_name: "a", entries: &ea, tombstones: &[] },
            Published { origin: c, origin_name: "c", entries: &[], tombstones: &tc },
        ];
        assert_eq!(visible(&recs).len(), 1, "added again after the tombstone");
    }

    fn row(name: &str, addr: &str, origin: u8) -> Visible {
        Visible {
            name: name.into(),
            addr: ip(addr),
            owner: None,
            origin: key(origin),
            origin_name: format!("h{origin}"),
            since: 1,
        }
    }

    #[test]
    fn lookups_rotate_per_name_and_family() {
        let mut t = DnsTable::new();
        t.replace(vec![
            row("g", "239.1.0.3", 1),
            row("g", "239.1.0.1", 2),
            row("g", "239.1.0.2", 1),
            row("g", "239.1.0.2", 3),
            row("g", "ff15::1", 1),
            row("a.b.c", "10.0.0.1", 1),
        ]);
        let a = |x: &str| x.parse::<Ipv4Addr>().unwrap();
        let (x, y, z) = (a("239.1.0.1"), a("239.1.0.2"), a("239.1.0.3"));
        assert_eq!(t.lookup_v4("g"), Lookup::Found(vec![x, y, z]), "duplicates from two hosts answer once");
        assert_eq!(t.lookup_v4("g"), Lookup::Found(vec![y, z, x]));
        // AAAA turns on its own (a client asking both does not skip A answers).
        assert_eq!(t.lookup_v6("g"), Lookup::Found(vec!["ff15::1".parse().unwrap()]));
        assert_eq!(t.lookup_v4("g"), Lookup::Found(vec![z, x, y]));
        assert_eq!(t.lookup_v6("a.b.c"), Lookup::NoData);
        assert_eq!(t.lookup_v4("b.c"), Lookup::NoData, "a parent name exists");
        assert_eq!(t.lookup_v4("c"), Lookup::NoData);
        assert_eq!(t.lookup_v4("nope"), Lookup::NoName);
        assert_eq!(t.lookup_all("nope"), None);
        assert_eq!(t.lookup_all("b.c"), Some(vec![]));
        // The rotation survives a rebuild.
        let rows = t.rows().to_vec();
        t.replace(rows);
        assert_eq!(t.lookup_all("g").unwrap()[0], IpAddr::V4(x));
        assert_eq!(t.grouped().len(), 4, "g from h1, h2, h3; a.b.c from h1");
    }

    proptest! {
        #[test]
        fn odd_names_never_panic(s in ".{0,300}", b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = normalize(&s);
            let _ = scope(&s);
            let lossy = String::from_utf8_lossy(&b);
            if let Ok(n) = normalize(&lossy) {
                prop_assert!(is_valid_name(&n));
                prop_assert!(fqdn(&n).len() <= MAX_NAME_LEN);
                prop_assert_eq!(normalize(&n), Ok(n.clone()));
                prop_assert_eq!(scope(&fqdn(&n)), Scope::Inside(n));
            }
        }

        #[test]
        fn dotted_names_round_trip(labels in proptest::collection::vec("[a-zA-Z0-9_]{1,20}", 1..6)) {
            let name = labels.join(".");
            let n = normalize(&name).unwrap();
            prop_assert_eq!(n, name.to_ascii_lowercase());
        }
    }
}
