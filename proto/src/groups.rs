//! Group membership: what local members asked for (learned by snooping
//! IGMP/MLD on the TAP, per reporter, with expiry), the host-level filter
//! that gossip carries to peers, and the index of remote filters that the
//! replication decision reads.
//!
//! Each reporter (a member's MAC and IP) holds one INCLUDE(S) or EXCLUDE(S)
//! state per group, as an IGMPv3/MLDv2 host does (RFC 3376 section 3,
//! RFC 3810 section 4); v1/v2 joins are EXCLUDE({}) and leaves remove the
//! reporter. Keeping reporters apart means one member's leave never cuts
//! off another. The host's filter merges them as RFC 3376 section 3.2 does
//! for interfaces: EXCLUDE if any reporter excludes (sources excluded by
//! all excluders and included by none), else INCLUDE of the union.
//!
//! Members are hostile input too (any container on the bridge can send
//! reports), and the host's filters travel in its signed gossip record,
//! which peers refuse when it breaks the limits. So everything here is
//! bounded, and always in the direction of receiving more, never less:
//! at most [`MAX_GROUPS`] groups (a report for one more is refused), at
//! most [`MAX_REPORTERS`] reporters a group and [`MAX_MEMBERSHIPS`] in all
//! (one more is refused), and a source list longer than [`MAX_SOURCES`]
//! (one reporter's, the merged INCLUDE of a group, or any once
//! [`MAX_SOURCE_STATE`] sources are held) falls back to EXCLUDE {}: every
//! source. Each such case is counted ([`LocalGroups::take_limited`]).

use crate::keys::PublicKey;
use crate::mac::Mac;
use crate::snoop::{GroupRecord, Membership, RecordKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Groups a host may announce at most.
pub const MAX_GROUPS: usize = 4096;
/// Sources per group filter at most.
pub const MAX_SOURCES: usize = 256;
/// Reporters (members) of one group at most.
pub const MAX_REPORTERS: usize = 256;
/// Memberships (a reporter in a group) in all at most.
pub const MAX_MEMBERSHIPS: usize = 16_384;
/// Sources held in all reporters' states at most.
pub const MAX_SOURCE_STATE: usize = 65_536;

/// Source filter mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FilterMode {
    /// Only the listed sources.
    Include,
    /// Every source but the listed ones.
    Exclude,
}

/// A host's wish for one group: which sources it wants.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupFilter {
    pub group: IpAddr,
    pub mode: FilterMode,
    /// Sorted, no duplicates.
    pub sources: Vec<IpAddr>,
}

impl GroupFilter {
    /// Whether traffic from `source` is wanted.
    pub fn admits(&self, source: &IpAddr) -> bool {
        let listed = self.sources.binary_search(source).is_ok();
        match self.mode {
            FilterMode::Include => listed,
            FilterMode::Exclude => !listed,
        }
    }

    /// Within the limits a well-behaved host keeps.
    pub fn is_valid(&self) -> bool {
        self.group.is_multicast()
            && self.sources.len() <= MAX_SOURCES
            && self.sources.windows(2).all(|w| w[0] < w[1])
            && !(self.mode == FilterMode::Include && self.sources.is_empty())
    }
}

/// Who reported: a member's MAC and IP (hosts without an address report
/// from 0.0.0.0, so the MAC keeps them apart).
pub type Reporter = (Mac, IpAddr);

#[derive(Clone, Debug)]
struct ReporterState {
    mode: FilterMode,
    sources: BTreeSet<IpAddr>,
    expires: Instant,
}

/// Local members' state, per group and reporter.
#[derive(Debug, Default)]
pub struct LocalGroups {
    groups: HashMap<IpAddr, HashMap<Reporter, ReporterState>>,
    /// Reporter states held (all groups).
    memberships: usize,
    /// Sources held in all reporter states.
    sources_held: usize,
    /// Grows with every change of the host-level filters.
    generation: u64,
    /// Reports refused or widened for a limit, not yet taken.
    limited: u64,
}

/// A local member as shown by `weavers groups`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalMember {
    pub reporter: Reporter,
    pub mode: FilterMode,
    pub sources: Vec<IpAddr>,
    pub expires_in: Duration,
}

impl LocalGroups {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a membership message from `mac`; `ttl` is the membership
    /// interval. Returns whether the host-level filters may have changed.
    pub fn apply(&mut self, mac: Mac, msg: &Membership, now: Instant, ttl: Duration) -> bool {
        match msg {
            Membership::Report { reporter, records } => {
                let mut changed = false;
                for r in records {
                    changed |= self.apply_record(mac, *reporter, r, now, ttl);
                }
                changed
            }
            Membership::Leave { reporter, group } => self.remove((mac, *reporter), group),
            Membership::Query { .. } => false,
        }
    }

    fn apply_record(&mut self, mac: Mac, ip: IpAddr, r: &GroupRecord, now: Instant, ttl: Duration) -> bool {
        if !r.group.is_multicast() {
            return false;
        }
        if !self.groups.contains_key(&r.group) && self.groups.len() >= MAX_GROUPS {
            self.limited += 1;
            return false;
        }
        let key = (mac, ip);
        let srcs: BTreeSet<IpAddr> = r.sources.iter().copied().collect();
        let old = self.groups.get(&r.group).and_then(|m| m.get(&key)).map(|s| (s.mode, s.sources.clone()));
        let (mut mode, mut sources) = match (r.kind, old.clone()) {
            (RecordKind::IsInclude | RecordKind::ToInclude, _) => (FilterMode::Include, srcs),
            (RecordKind::IsExclude | RecordKind::ToExclude, _) => (FilterMode::Exclude, srcs),
            (RecordKind::AllowNew, Some((FilterMode::Exclude, x))) => (FilterMode::Exclude, &x - &srcs),
            (RecordKind::AllowNew, Some((FilterMode::Include, a))) => (FilterMode::Include, &a | &srcs),
            (RecordKind::AllowNew, None) => (FilterMode::Include, srcs),
            (RecordKind::BlockOld, Some((FilterMode::Exclude, x))) => (FilterMode::Exclude, &x | &srcs),
            (RecordKind::BlockOld, Some((FilterMode::Include, a))) => (FilterMode::Include, &a - &srcs),
            (RecordKind::BlockOld, None) => return false,
        };
        if mode == FilterMode::Include && sources.is_empty() {
            // INCLUDE({}) is no membership: a leave.
            return self.remove(key, &r.group);
        }
        if old.is_none() {
            let members = self.groups.get(&r.group).map_or(0, HashMap::len);
            if members >= MAX_REPORTERS || self.memberships >= MAX_MEMBERSHIPS {
                self.limited += 1;
                return false;
            }
        }
        let old_len = old.as_ref().map_or(0, |(_, s)| s.len());
        if sources.len() > MAX_SOURCES || self.sources_held - old_len + sources.len() > MAX_SOURCE_STATE {
            // Too many to keep: every source, a superset of what was asked
            // (later ALLOW/BLOCK records keep it a superset).
            (mode, sources) = (FilterMode::Exclude, BTreeSet::new());
            self.limited += 1;
        }
        let changed = old.as_ref() != Some(&(mode, sources.clone()));
        self.sources_held = self.sources_held - old_len + sources.len();
        if old.is_none() {
            self.memberships += 1;
        }
        self.groups.entry(r.group).or_default().insert(key, ReporterState { mode, sources, expires: now + ttl });
        if changed {
            self.generation += 1;
        }
        changed
    }

    fn remove(&mut self, key: Reporter, group: &IpAddr) -> bool {
        let Some(members) = self.groups.get_mut(group) else { return false };
        let Some(old) = members.remove(&key) else { return false };
        if members.is_empty() {
            self.groups.remove(group);
        }
        self.memberships -= 1;
        self.sources_held -= old.sources.len();
        self.generation += 1;
        true
    }

    /// Drops reporters whose membership interval ran out; returns whether
    /// anything went.
    pub fn expire(&mut self, now: Instant) -> bool {
        let (mut gone, mut sources) = (0, 0);
        self.groups.retain(|_, members| {
            members.retain(|_, s| {
                let keep = s.expires > now;
                if !keep {
                    gone += 1;
                    sources += s.sources.len();
                }
                keep
            });
            !members.is_empty()
        });
        self.memberships -= gone;
        self.sources_held -= sources;
        if gone > 0 {
            self.generation += 1;
        }
        gone > 0
    }

    /// The host-level filter of every group with a member, sorted by group.
    pub fn filters(&self) -> Vec<GroupFilter> {
        self.filters_counted().0
    }

    /// [`LocalGroups::filters`], and how many groups' merged INCLUDE lists
    /// were over [`MAX_SOURCES`] and widened to EXCLUDE {}.
    pub fn filters_counted(&self) -> (Vec<GroupFilter>, usize) {
        let mut widened = 0;
        let mut out: Vec<GroupFilter> = self
            .groups
            .iter()
            .filter_map(|(g, m)| {
                let (f, w) = merge(*g, m.values())?;
                widened += usize::from(w);
                Some(f)
            })
            .collect();
        out.sort();
        (out, widened)
    }

    /// Grows whenever the host-level filters may have changed: the owner
    /// recomputes them only then.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Reports refused or widened for a limit since the last call (see the
    /// module docs).
    pub fn take_limited(&mut self) -> u64 {
        std::mem::take(&mut self.limited)
    }

    /// Memberships (reporter and group) held.
    pub fn memberships(&self) -> usize {
        self.memberships
    }

    /// Members of `group`, for display.
    pub fn members(&self, group: &IpAddr, now: Instant) -> Vec<LocalMember> {
        let mut v: Vec<LocalMember> = self
            .groups
            .get(group)
            .into_iter()
            .flatten()
            .map(|(r, s)| LocalMember {
                reporter: *r,
                mode: s.mode,
                sources: s.sources.iter().copied().collect(),
                expires_in: s.expires.saturating_duration_since(now),
            })
            .collect();
        v.sort_by_key(|m| m.reporter);
        v
    }

    /// Groups with at least one local member.
    pub fn groups(&self) -> impl Iterator<Item = &IpAddr> {
        self.groups.keys()
    }
}

/// The host-level filter of one group, and whether its INCLUDE list was
/// over [`MAX_SOURCES`] and widened to EXCLUDE {} (every source).
fn merge<'a>(group: IpAddr, states: impl Iterator<Item = &'a ReporterState>) -> Option<(GroupFilter, bool)> {
    let mut include: BTreeSet<IpAddr> = BTreeSet::new();
    let mut exclude: Option<BTreeSet<IpAddr>> = None;
    for s in states {
        match s.mode {
            FilterMode::Include => include.extend(s.sources.iter().copied()),
            FilterMode::Exclude => {
                exclude = Some(match exclude {
                    None => s.sources.clone(),
                    Some(x) => &x & &s.sources,
                })
            }
        }
    }
    // An intersection of lists of at most MAX_SOURCES is no longer; a union may be.
    let (mode, sources, widened) = match exclude {
        Some(x) => (FilterMode::Exclude, &x - &include, false),
        None if include.is_empty() => return None,
        None if include.len() > MAX_SOURCES => (FilterMode::Exclude, BTreeSet::new(), true),
        None => (FilterMode::Include, include, false),
    };
    Some((GroupFilter { group, mode, sources: sources.into_iter().collect() }, widened))
}

/// Remote hosts' filters, indexed by group for the replication decision.
#[derive(Debug, Default)]
pub struct RemoteIndex {
    by_group: HashMap<IpAddr, Vec<(PublicKey, GroupFilter)>>,
}

impl RemoteIndex {
    /// Builds the index from each host's announced filters.
    pub fn build<'a>(hosts: impl IntoIterator<Item = (PublicKey, &'a [GroupFilter])>) -> Self {
        let mut by_group: HashMap<IpAddr, Vec<(PublicKey, GroupFilter)>> = HashMap::new();
        for (k, filters) in hosts {
            for f in filters {
                by_group.entry(f.group).or_default().push((k, f.clone()));
            }
        }
        for v in by_group.values_mut() {
            v.sort_by_key(|(k, _)| *k);
        }
        RemoteIndex { by_group }
    }

    /// Hosts that want `group` traffic from `source`.
    pub fn wanting<'a>(&'a self, group: &IpAddr, source: &'a IpAddr) -> impl Iterator<Item = PublicKey> + 'a {
        self.by_group.get(group).into_iter().flatten().filter(move |(_, f)| f.admits(source)).map(|(k, _)| *k)
    }

    /// Every host's filter for `group`.
    pub fn subscribers(&self, group: &IpAddr) -> &[(PublicKey, GroupFilter)] {
        self.by_group.get(group).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every group some remote host wants.
    pub fn groups(&self) -> impl Iterator<Item = &IpAddr> {
        self.by_group.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: Duration = Duration::from_secs(260);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn report(reporter: &str, kind: RecordKind, group: &str, sources: &[&str]) -> Membership {
        Membership::Report {
            reporter: ip(reporter),
            records: vec![GroupRecord { kind, group: ip(group), sources: sources.iter().map(|s| ip(s)).collect() }],
        }
    }

    const M1: Mac = [2, 0, 0, 0, 0, 1];
    const M2: Mac = [2, 0, 0, 0, 0, 2];

    #[test]
    fn one_members_leave_does_not_cut_off_another() {
        let t0 = Instant::now();
        let mut g = LocalGroups::new();
        assert!(g.apply(M1, &report("10.0.0.1", RecordKind::IsExclude, "239.1.1.1", &[]), t0, T));
        g.apply(M2, &report("10.0.0.2", RecordKind::IsExclude, "239.1.1.1", &[]), t0, T);
        g.apply(M1, &Membership::Leave { reporter: ip("10.0.0.1"), group: ip("239.1.1.1") }, t0, T);
        assert_eq!(g.filters().len(), 1, "the other member still wants it");
        assert!(g.apply(M2, &report("10.0.0.2", RecordKind::ToInclude, "239.1.1.1", &[]), t0, T), "TO_IN {{}} leaves");
        assert!(g.filters().is_empty());
    }

    #[test]
    fn silent_members_expire() {
        let t0 = Instant::now();
        let mut g = LocalGroups::new();
        g.apply(M1, &report("10.0.0.1", RecordKind::IsExclude, "239.1.1.1", &[]), t0, T);
        assert!(!g.expire(t0 + T - Duration::from_secs(1)));
        // A refresh pushes expiry out.
        g.apply(M1, &report("10.0.0.1", RecordKind::IsExclude, "239.1.1.1", &[]), t0 + Duration::from_secs(100), T);
        assert!(!g.expire(t0 + T));
        assert!(g.expire(t0 + T + Duration::from_secs(100)));
        assert!(g.filters().is_empty());
    }

    #[test]
    fn source_filters_merge_and_admit() {
        let t0 = Instant::now();
        let mut g = LocalGroups::new();
        // Member 1 wants only h1; member 2 wants h2 too, then blocks h1... from its include.
        g.apply(M1, &report("10.0.0.1", RecordKind::IsInclude, "232.1.1.1", &["10.9.0.1"]), t0, T);
        g.apply(M2, &report("10.0.0.2", RecordKind::AllowNew, "232.1.1.1", &["10.9.0.2", "10.9.0.1"]), t0, T);
        let f = &g.filters()[0];
        assert_eq!(f.mode, FilterMode::Include);
        assert_eq!(f.sources, vec![ip("10.9.0.1"), ip("10.9.0.2")]);
        assert!(f.admits(&ip("10.9.0.2")) && !f.admits(&ip("10.9.0.4")));
        g.apply(M2, &report("10.0.0.2", RecordKind::BlockOld, "232.1.1.1", &["10.9.0.2"]), t0, T);
        assert_eq!(g.filters()[0].sources, vec![ip("10.9.0.1")]);
        // An excluder makes it EXCLUDE minus what others include.
        g.apply(M2, &report("10.0.0.2", RecordKind::ToExclude, "232.1.1.1", &["10.9.0.1", "10.9.0.4"]), t0, T);
        let f = &g.filters()[0];
        assert_eq!((f.mode, f.sources.clone()), (FilterMode::Exclude, vec![ip("10.9.0.4")]));
        assert!(f.admits(&ip("10.9.0.1")) && !f.admits(&ip("10.9.0.4")));
    }

    #[test]
    fn remote_index_selects_by_group_and_source() {
        let a = PublicKey([1; 32]);
        let b = PublicKey([2; 32]);
        let fa = [GroupFilter { group: ip("239.1.1.1"), mode: FilterMode::Exclude, sources: vec![] }];
        let fb = [GroupFilter { group: ip("232.1.1.1"), mode: FilterMode::Include, sources: vec![ip("10.9.0.1")] }];
        let idx = RemoteIndex::build(vec![(a, &fa[..]), (b, &fb[..])]);
        let s1 = ip("10.9.0.1");
        let s4 = ip("10.9.0.4");
        assert_eq!(idx.wanting(&ip("239.1.1.1"), &s4).collect::<Vec<_>>(), vec![a]);
        assert_eq!(idx.wanting(&ip("232.1.1.1"), &s1).collect::<Vec<_>>(), vec![b]);
        assert_eq!(idx.wanting(&ip("232.1.1.1"), &s4).count(), 0);
        assert_eq!(idx.wanting(&ip("239.9.9.9"), &s1).count(), 0);
    }

    fn sources(n: u32, base: u8) -> Vec<IpAddr> {
        (0..n).map(|i| IpAddr::from([10, base, (i >> 8) as u8, i as u8])).collect()
    }

    fn report_n(kind: RecordKind, group: IpAddr, sources: Vec<IpAddr>) -> Membership {
        Membership::Report { reporter: ip("10.0.0.1"), records: vec![GroupRecord { kind, group, sources }] }
    }

    #[test]
    fn too_many_sources_fall_back_to_every_source() {
        let t0 = Instant::now();
        let mut g = LocalGroups::new();
        let grp = ip("232.1.1.1");
        // One member asks for 300 sources: it gets all of them, and more.
        g.apply(M1, &report_n(RecordKind::IsInclude, grp, sources(300, 9)), t0, T);
        assert_eq!(g.take_limited(), 1);
        let f = &g.filters()[0];
        assert!(f.is_valid());
        assert_eq!((f.mode, f.sources.len()), (FilterMode::Exclude, 0));
        assert!(sources(300, 9).iter().all(|s| f.admits(s)));
        // Blocking some later keeps it a superset of what it wants.
        g.apply(M1, &report_n(RecordKind::BlockOld, grp, sources(10, 9)), t0, T);
        let f = &g.filters()[0];
        assert!(f.is_valid() && sources(300, 9)[10..].iter().all(|s| f.admits(s)));

        // Two members of 200 sources each: the merged INCLUDE of 400 is widened.
        let mut g = LocalGroups::new();
        g.apply(M1, &report_n(RecordKind::IsInclude, grp, sources(200, 1)), t0, T);
        g.apply(M2, &report_n(RecordKind::IsInclude, grp, sources(200, 2)), t0, T);
        assert_eq!(g.take_limited(), 0, "each member's list is within the limit");
        let (filters, widened) = g.filters_counted();
        assert_eq!(widened, 1);
        assert_eq!((filters[0].mode, filters[0].sources.len()), (FilterMode::Exclude, 0));
        assert!(filters[0].is_valid());
    }

    #[test]
    fn groups_and_members_are_capped_and_counted() {
        let t0 = Instant::now();
        let mut g = LocalGroups::new();
        for i in 0..5000u32 {
            let grp = IpAddr::from([239, 2, (i >> 8) as u8, i as u8]);
            g.apply(M1, &report_n(RecordKind::IsExclude, grp, vec![]), t0, T);
        }
        assert_eq!(g.filters().len(), MAX_GROUPS);
        assert_eq!(g.take_limited(), 5000 - MAX_GROUPS as u64);
        assert!(g.filters().iter().all(GroupFilter::is_valid));
        // A group's members are capped too; one that leaves makes room.
        let mut g = LocalGroups::new();
        let grp = ip("239.9.9.9");
        for i in 0..300u32 {
            let mac = [2, 0, 0, 0, (i >> 8) as u8, i as u8];
            g.apply(mac, &report_n(RecordKind::IsExclude, grp, vec![]), t0, T);
        }
        assert_eq!(g.members(&grp, t0).len(), MAX_REPORTERS);
        assert_eq!(g.take_limited(), 300 - MAX_REPORTERS as u64);
        let gen = g.generation();
        g.apply([2, 0, 0, 0, 0, 0], &Membership::Leave { reporter: ip("10.0.0.1"), group: grp }, t0, T);
        assert!(g.generation() > gen);
        g.apply([2, 0, 0, 0, 9, 9], &report_n(RecordKind::IsExclude, grp, vec![]), t0, T);
        assert_eq!((g.members(&grp, t0).len(), g.take_limited()), (MAX_REPORTERS, 0));
        assert!(g.expire(t0 + T));
        assert_eq!(g.memberships(), 0);
    }

    #[test]
    fn held_sources_are_capped_in_all() {
        let t0 = Instant::now();
        let mut g = LocalGroups::new();
        let per = MAX_SOURCES as u32;
        let groups = MAX_SOURCE_STATE / MAX_SOURCES + 10;
        for i in 0..groups as u32 {
            let grp = IpAddr::from([232, 3, (i >> 8) as u8, i as u8]);
            g.apply(M1, &report_n(RecordKind::IsInclude, grp, sources(per, 4)), t0, T);
        }
        assert_eq!(g.take_limited(), 10, "the groups past the budget get every source");
        let (filters, _) = g.filters_counted();
        assert_eq!(filters.iter().filter(|f| f.mode == FilterMode::Exclude).count(), 10);
        assert!(filters.iter().all(GroupFilter::is_valid));
        assert!(g.expire(t0 + T));
        assert_eq!((g.memberships(), g.sources_held), (0, 0));
    }

    proptest! {
        /// The merged filter admits a source exactly when some member's own
        /// state admits it.
        #[test]
        fn merge_admits_iff_some_member_does(
            states in proptest::collection::vec((any::<bool>(), proptest::collection::btree_set(0u8..6, 0..4)), 1..5),
            probe in 0u8..6,
        ) {
            let t0 = Instant::now();
            let mut g = LocalGroups::new();
            let src = |n: u8| IpAddr::from([10, 9, 0, n]);
            let mut want = false;
            for (i, (excl, set)) in states.iter().enumerate() {
                let kind = if *excl { RecordKind::IsExclude } else { RecordKind::IsInclude };
                let srcs: Vec<IpAddr> = set.iter().map(|n| src(*n)).collect();
                g.apply([2, 0, 0, 0, 0, i as u8], &Membership::Report { reporter: IpAddr::from([10, 0, 0, i as u8]), records: vec![GroupRecord { kind, group: ip("239.1.1.1"), sources: srcs }] }, t0, T);
                want |= if *excl { !set.contains(&probe) } else { set.contains(&probe) };
            }
            let got = g.filters().first().is_some_and(|f| f.admits(&src(probe)));
            prop_assert_eq!(got, want);
        }
    }
}
