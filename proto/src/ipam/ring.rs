//! The ring: who owns which part of the range, merging, seeding, donation, take-over.

use super::*;

/// One span of the ring, for `weavers ipam ls`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: u32,
    pub end: u32,
    pub owner: PublicKey,
    pub version: u32,
    pub conflict: bool,
}

/// This host's view of who owns which part of the range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    range: Range,
    seed: Option<SeedId>,
    tokens: BTreeMap<u32, Entry>,
    /// Tokens claimed by two owners at one version.
    conflicts: BTreeMap<u32, Conflict>,
    /// Latest records of hosts of another seed.
    foreign: Vec<Foreign>,
    /// Donations given and not yet seen in their recipient's record.
    pending: Vec<Donation>,
}

impl Ring {
    /// An empty, unseeded ring over `range`.
    pub fn new(range: Range) -> Self {
        Ring {
            range,
            seed: None,
            tokens: BTreeMap::new(),
            conflicts: BTreeMap::new(),
            foreign: Vec::new(),
            pending: Vec::new(),
        }
    }

    pub fn range(&self) -> Range {
        self.range
    }

    /// Number of offsets.
    pub fn size(&self) -> u32 {
        self.range.size()
    }

    pub fn is_seeded(&self) -> bool {
        self.seed.is_some()
    }

    pub fn seed_id(&self) -> Option<SeedId> {
        self.seed
    }

    /// Seeds the ring if it is unseeded and `me` has the lowest key among
    /// itself and `connected` (every host it can reach, relayed included):
    /// one token at offset 0 owned by `me`. `stamp` is the host's clock
    /// (it tells this seeding from any other). Returns whether it seeded.
    ///
    /// The caller has checked that no reachable host's record is seeded.
    pub fn seed(&mut self, me: PublicKey, connected: &[PublicKey], stamp: u64) -> bool {
        if self.seed.is_some() || connected.iter().any(|k| *k < me) {
            return false;
        }
        self.seed = Some(SeedId { stamp, seeder: me, range: self.range });
        self.tokens.clear();
        self.tokens.insert(0, Entry { owner: me, version: 1 });
        true
    }

    /// The tokens `me` owns, to publish: `(start, version)`, ascending.
    /// Includes tokens in conflict that `me` claims, so that the other
    /// claimant sees the conflict too.
    pub fn own_tokens(&self, me: PublicKey) -> Vec<(u32, u32)> {
        self.tokens
            .iter()
            .filter(|(s, e)| e.owner == me || self.conflicts.get(s).is_some_and(|c| c.claimants.contains(&me)))
            .map(|(s, e)| (*s, e.version))
            .collect()
    }

    /// What to publish in this host's gossip record (`None` while unseeded).
    pub fn record(&self, me: PublicKey, free: u32) -> Option<IpamRecord> {
        Some(IpamRecord { seed: self.seed?, tokens: self.own_tokens(me), free })
    }

    /// Merges another host's record.
    pub fn merge_record(&mut self, author: PublicKey, record: &IpamRecord) -> MergeResult {
        self.merge_from(author, record.seed, &record.tokens)
    }

    /// Merges the tokens `author` says it owns under `seed` (never this
    /// host's own record: a host knows its own tokens, and where their
    /// spans end, better than any record of itself). A token at a
    /// higher version than known takes `author` as owner; the same version
    /// with another owner is a conflict (reported, never resolved here); a
    /// record of another seed is kept aside and reported, not merged. An
    /// unseeded ring adopts the seed.
    pub fn merge_from(&mut self, author: PublicKey, seed: SeedId, tokens: &[(u32, u32)]) -> MergeResult {
        let mut res = MergeResult::default();
        if seed.range != self.range || !ascending_below(tokens, self.size()) || tokens.len() > MAX_TOKENS {
            // Another range is another seed; malformed input is dropped.
            if seed.range != self.range {
                res.foreign_seed = Some(seed);
                res.conflicts = tokens.iter().map(|t| t.0).collect();
                res.changed = self.set_foreign(author, seed, tokens, &mut res.refused);
            }
            return res;
        }
        match self.seed {
            None => {
                self.seed = Some(seed);
                res.changed = true;
            }
            Some(s) if s != seed => {
                res.foreign_seed = Some(seed);
                res.conflicts = tokens.iter().map(|t| t.0).collect();
                res.changed = self.set_foreign(author, seed, tokens, &mut res.refused);
                return res;
            }
            Some(_) => {}
        }
        if let Some(i) = self.foreign.iter().position(|f| f.author == author) {
            self.foreign.remove(i);
            res.changed = true;
        }
        for &(start, version) in tokens {
            if self.tokens.len() >= MAX_RING_TOKENS && !self.tokens.contains_key(&start) {
                res.refused += 1;
                continue;
            }
            self.merge_entry(start, Entry { owner: author, version }, &mut res);
        }
        self.settle_pending(Some((author, tokens)));
        res
    }

    fn set_foreign(&mut self, author: PublicKey, seed: SeedId, tokens: &[(u32, u32)], refused: &mut usize) -> bool {
        let f = Foreign { author, seed, tokens: tokens.iter().take(MAX_TOKENS).copied().collect() };
        let full = self.foreign.len() >= MAX_FOREIGN;
        match self.foreign.iter_mut().find(|f| f.author == author) {
            Some(old) if *old == f => false,
            Some(old) => {
                *old = f;
                true
            }
            None if full => {
                *refused += 1;
                false
            }
            None => {
                self.foreign.push(f);
                true
            }
        }
    }

    fn merge_entry(&mut self, start: u32, incoming: Entry, res: &mut MergeResult) {
        match self.tokens.get_mut(&start) {
            None => {
                self.tokens.insert(start, incoming);
                res.changed = true;
            }
            Some(cur) if incoming.version > cur.version => {
                if cur.owner != incoming.owner {
                    res.reassigned.push((start, cur.owner, incoming.owner));
                }
                *cur = incoming;
                self.conflicts.remove(&start);
                res.changed = true;
            }
            Some(cur) if incoming.version == cur.version && cur.owner != incoming.owner => {
                let c = self
                    .conflicts
                    .entry(start)
                    .or_insert_with(|| Conflict { version: cur.version, claimants: vec![cur.owner] });
                if !c.claimants.contains(&incoming.owner) {
                    c.claimants.push(incoming.owner);
                    c.claimants.sort();
                    res.changed = true;
                }
                // Every view records the same claimant: the lowest key.
                let keep = c.claimants[0];
                if keep != cur.owner {
                    res.reassigned.push((start, cur.owner, keep));
                    cur.owner = keep;
                    res.changed = true;
                }
                res.conflicts.push(start);
            }
            Some(_) => {}
        }
    }

    /// Drops donations that have arrived: every token is listed by the
    /// recipient's record at that version or later, or known at a later one.
    fn settle_pending(&mut self, record: Option<(PublicKey, &[(u32, u32)])>) {
        let tokens = &self.tokens;
        self.pending.retain(|d| {
            !d.tokens.iter().all(|&(s, v)| {
                tokens.get(&s).is_some_and(|e| e.version > v)
                    || record
                        .is_some_and(|(author, list)| author == d.to && list.iter().any(|&(ls, lv)| ls == s && lv >= v))
            })
        })
    }

    /// Forgets a host that gossip forgot: it no longer counts as a host of
    /// another seed. (Its tokens stay: its space is its own until taken over.)
    pub fn forget(&mut self, author: PublicKey) -> bool {
        let before = self.foreign.len();
        self.foreign.retain(|f| f.author != author);
        before != self.foreign.len()
    }

    /// Hosts known to be on another seed.
    pub fn foreign(&self) -> &[Foreign] {
        &self.foreign
    }

    /// Whether a host of another seed is known (then nothing is allocated).
    pub fn has_foreign_seed(&self) -> bool {
        !self.foreign.is_empty()
    }

    /// When this ring's seed lost to an older one it has seen and this host
    /// holds no allocation: drops the ring and joins the older seed (from
    /// the records kept aside). Returns whether it did. The node calls it
    /// after merging records, with `!allocator.is_empty()`.
    pub fn yield_seed(&mut self, holds_allocations: bool) -> bool {
        let Some(mine) = self.seed else { return false };
        let Some(winner) = self.foreign.iter().map(|f| f.seed).filter(|s| s.range == self.range).min() else {
            return false;
        };
        if holds_allocations || winner >= mine {
            return false;
        }
        let mut foreign = std::mem::take(&mut self.foreign);
        foreign.sort_by_key(|f| f.seed != winner);
        *self = Ring::new(self.range);
        for f in foreign {
            self.merge_from(f.author, f.seed, &f.tokens);
        }
        true
    }

    /// Tokens in conflict.
    pub fn conflicts(&self) -> &BTreeMap<u32, Conflict> {
        &self.conflicts
    }

    /// For every conflicting token the ring records as `me`'s (the lowest
    /// claimant), writes a new version, which ends the conflict everywhere.
    /// Only once the operator has removed the other claimants' containers
    /// from that space. Returns the tokens written.
    pub fn settle_conflicts(&mut self, me: PublicKey) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mine: Vec<u32> =
            self.conflicts.keys().copied().filter(|s| self.tokens.get(s).is_some_and(|e| e.owner == me)).collect();
        for s in mine {
            let e = self.tokens.get_mut(&s).expect("conflicts are tokens");
            if let Some(v) = e.version.checked_add(1) {
                e.version = v;
                self.conflicts.remove(&s);
                out.push((s, v));
            }
        }
        out
    }

    /// The owner of `offset` in this view.
    pub fn owner(&self, offset: u32) -> Option<PublicKey> {
        if offset >= self.size() {
            return None;
        }
        self.tokens.range(..=offset).next_back().map(|(_, e)| e.owner)
    }

    /// All spans in this view, ascending.
    pub fn spans(&self) -> Vec<Span> {
        let mut out: Vec<Span> = Vec::with_capacity(self.tokens.len());
        let mut it = self.tokens.iter().peekable();
        while let Some((&start, e)) = it.next() {
            let end = it.peek().map_or(self.size(), |(s, _)| **s);
            out.push(Span {
                start,
                end,
                owner: e.owner,
                version: e.version,
                conflict: self.conflicts.contains_key(&start),
            });
        }
        out
    }

    /// How many addresses `key` owns in this view (for a host other than
    /// this one, possibly more than it really does: views lag).
    pub fn owned_size(&self, key: PublicKey) -> u32 {
        self.spans().iter().filter(|s| s.owner == key).map(|s| s.end - s.start).sum()
    }

    /// The address intervals `me` may allocate from: its spans not in
    /// conflict, adjacent ones joined; none while another seed is known.
    pub fn usable(&self, me: PublicKey) -> Vec<(u32, u32)> {
        if self.has_foreign_seed() || !self.is_seeded() {
            return Vec::new();
        }
        let mut out: Vec<(u32, u32)> = Vec::new();
        for s in self.spans() {
            if s.owner != me || s.conflict {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.1 == s.start => last.1 = s.end,
                _ => out.push((s.start, s.end)),
            }
        }
        out
    }

    /// Donations given and not yet confirmed: resend them to their
    /// recipients (when reachable) until they disappear from this list.
    pub fn pending_donations(&self) -> &[Donation] {
        &self.pending
    }

    /// Gives `to` up to `want` addresses: half (rounded up) of `me`'s largest
    /// run of free addresses (see the module docs). Never an address `alloc`
    /// holds. Returns the donation to send (also kept pending), or `None`
    /// when there is nothing to give.
    pub fn donate(&mut self, me: PublicKey, to: PublicKey, want: u32, alloc: &Allocator) -> Option<Donation> {
        let seed = self.seed?;
        if to == me || want == 0 {
            return None;
        }
        let mut runs = free_runs(&self.usable(me), alloc, self.size());
        runs.sort_by_key(|&(a, b)| (std::cmp::Reverse(b - a), a));
        for (a, b) in runs {
            let n = want.min((b - a) - (b - a) / 2);
            // The given part must end at a token `to` does not own: `to`
            // would not know where that one's span ends (a donation still
            // in flight, say). So give the lower part when the run ends at
            // one of `to`'s tokens.
            let ends_at_to = b < self.size() && self.tokens.get(&b).is_some_and(|e| e.owner == to);
            let (mut p, mut q) = if ends_at_to { (a, a + n) } else { (b - n, b) };
            if ends_at_to && q == b {
                continue;
            }
            // At most MAX_DONATION_TOKENS tokens change hands.
            if ends_at_to {
                if let Some((&s, _)) = self.tokens.range(p + 1..q).nth(MAX_DONATION_TOKENS - 1) {
                    q = s;
                }
            } else if let Some((&s, _)) = self.tokens.range(p + 1..q).rev().nth(MAX_DONATION_TOKENS - 1) {
                p = s;
            }
            if self.tokens.range(p..q).any(|(_, e)| e.version == u32::MAX) {
                continue;
            }
            return Some(self.give(seed, me, to, p, q));
        }
        None
    }

    /// Gives `[p, q)`, free space of `me`'s, to `to`.
    fn give(&mut self, seed: SeedId, me: PublicKey, to: PublicKey, p: u32, q: u32) -> Donation {
        let end = if q == self.size() {
            None
        } else {
            Some((q, *self.tokens.entry(q).or_insert(Entry { owner: me, version: 1 })))
        };
        // A new token at the split is created by `me` at version 1 and
        // given at version 2.
        self.tokens.entry(p).or_insert(Entry { owner: me, version: 1 });
        let mut tokens = Vec::new();
        for (&s, e) in self.tokens.range_mut(p..q) {
            debug_assert_eq!(e.owner, me, "a free run lies in own space");
            *e = Entry { owner: to, version: e.version + 1 };
            tokens.push((s, e.version));
        }
        let d = Donation { seed, from: me, to, tokens, end };
        self.pending.push(d.clone());
        d
    }

    /// Applies a donation addressed to `me` (idempotent: a resent or stale
    /// one changes nothing). An unseeded ring adopts the donor's seed.
    pub fn accept_donation(&mut self, me: PublicKey, d: &Donation) -> Result<MergeResult, IpamError> {
        if !d.is_valid() || d.seed.range != self.range {
            return Err(IpamError::BadDonation("malformed, or for another range"));
        }
        if d.to != me {
            return Err(IpamError::BadDonation("addressed to another host"));
        }
        match self.seed {
            Some(s) if s != d.seed => return Err(IpamError::BadDonation("from another seed")),
            _ => {}
        }
        let mine = self.tokens.values().filter(|e| e.owner == me).count();
        if mine + d.tokens.len() > MAX_TOKENS {
            return Err(IpamError::BadDonation("this host owns too many tokens"));
        }
        let mut res = MergeResult::default();
        if self.seed.is_none() {
            self.seed = Some(d.seed);
            res.changed = true;
        }
        for &(s, v) in &d.tokens {
            self.merge_entry(s, Entry { owner: me, version: v }, &mut res);
        }
        if let Some((s, e)) = d.end {
            self.merge_entry(s, e, &mut res);
        }
        self.settle_pending(None);
        Ok(res)
    }

    /// Takes over every token `dead` owns in this view (`weavers ipam
    /// rmpeer`): they become `me`'s at version + 1. The operator asserts
    /// `dead` is gone for good; see the module docs for the risk. Returns
    /// the tokens taken.
    pub fn take_over(&mut self, me: PublicKey, dead: PublicKey) -> Vec<(u32, u32)> {
        if dead == me || !self.is_seeded() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (&s, e) in self.tokens.iter_mut() {
            if e.owner == dead {
                if let Some(v) = e.version.checked_add(1) {
                    *e = Entry { owner: me, version: v };
                    self.conflicts.remove(&s);
                    out.push((s, v));
                }
            }
        }
        self.settle_pending(None);
        out
    }
}

/// Maximal runs of allocatable addresses (not in use, not network or
/// broadcast) inside `intervals`.
pub(super) fn free_runs(intervals: &[(u32, u32)], alloc: &Allocator, size: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for &(a, b) in intervals {
        let (lo, hi) = (a.max(1), b.min(size - 1));
        let mut o = lo;
        for &u in alloc.by_offset.range(lo..hi).map(|(u, _)| u) {
            if u > o {
                out.push((o, u));
            }
            o = u + 1;
        }
        if o < hi {
            out.push((o, hi));
        }
    }
    out
}
