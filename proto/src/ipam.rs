//! IPAM: the `--ipalloc-range` shared among the hosts of the mesh so that no
//! address is ever held by two containers, whether the hosts start together,
//! restart, lose each other for a while, or one of them dies for good.
//!
//! Pure logic, modelled on Weave Net's ring and simplified. No I/O and no
//! clock: the node feeds in gossip records and donation messages, the daemon
//! persists [`Ring`] and [`Allocator`] (both serde) in the state dir.
//!
//! # The ring
//!
//! The range is `size` addresses, offsets `0..size`. Ownership is a ring of
//! *tokens*: a token at offset `start` owns `[start, next token's start)`,
//! the last one up to `size`. Each token has an owner (a host's public key)
//! and a version.
//!
//! **Single writer per token.** Only the current owner of a token changes it
//! (gives it away), and every change raises its version. So for each token
//! the writes form one chain, the same `(start, version)` always names the
//! same owner everywhere, and merging is "highest version wins", in any
//! order, from any source. Tokens are never removed; a split adds one.
//!
//! **Seeding.** The ring starts empty and unseeded. When hosts start
//! together, the one with the lowest public key among the hosts it can
//! reach seeds ([`Ring::seed`]): one token at offset 0, owned by itself at
//! version 1, tagged with a [`SeedId`] (seeder, stamp, range). The others
//! wait (allocation answers [`IpamError::NotSeeded`]) until a record from a
//! seeded host reaches them, and adopt its seed.
//!
//! **Donation.** A host with no free address asks the reachable host with
//! the most free addresses (free counts travel in [`IpamRecord`]s). The
//! donor ([`Ring::donate`]) takes its largest run of free addresses (never
//! one it has allocated) and gives half of it, the upper half (the lower
//! one if the run ends where a token of the recipient starts: the end of
//! the given part must be a token the recipient does not own, or it could
//! not know where that token's span stops). It creates a token at the
//! split point if none is there (its own write, version 1), and raises the
//! version of every token in the given part to the recipient. If the part
//! ends inside the donor's own span it also creates a token there, owned
//! by itself, so the end is a token too. The [`Donation`] message carries
//! the given tokens and that end token, so the recipient knows exactly
//! where its new space stops even before gossip tells it anything. The donor keeps the donation pending and resends it
//! until the recipient's record lists the tokens (or a later version of
//! them is seen); [`Ring::accept_donation`] is idempotent.
//!
//! **Allocation.** [`Allocator::allocate`] hands out an address only from
//! spans this host owns in its own view, never offset 0 (network) nor the
//! last offset (broadcast), never one in use, and the same address for the
//! same owner id (container id + interface) until it is released.
//!
//! **Restart.** Ring and allocator are state to persist (the daemon saves
//! them after every change, *before* it answers the CNI plugin or sends a
//! donation). A restarted host keeps its space and its allocations; what it
//! missed while down reaches it by gossip (anything newer wins).
//!
//! # Guarantees
//!
//! With one seed, and without [`Ring::take_over`]:
//!
//! 1. At any moment the spans that hosts believe they own, each in its own
//!    view, are disjoint: a host only owns what it seeded, kept, or was
//!    given, and it knows the exact end of each of its spans (it made the
//!    split, or the donation told it). Other hosts' views may be stale, but
//!    staleness only ever makes a host think *another* host owns more.
//! 2. So no address is ever allocated on two hosts: each host allocates
//!    only inside its own spans and never twice inside them.
//! 3. This holds across partitions: each side allocates only from what it
//!    owned when the link broke or was given inside the side. A host whose
//!    side has no free space gets [`IpamError::NoSpace`], never a
//!    duplicate. When the sides meet again, the records merge with no
//!    conflict (every token still has one chain of writes).
//! 4. A lost donation message leaves its space owned by nobody who
//!    allocates (the donor gave it up, the recipient never learned):
//!    unused, never duplicated, until a resend arrives.
//! 5. Across a restart a host keeps its allocations and its space, as long
//!    as the state dir survives.
//!
//! What is *not* guaranteed, and how it shows:
//!
//! - **Two seeds.** Hosts that never saw each other (or started before they
//!   could) may each seed, and later meet: both rings cover the whole range.
//!   A record with another [`SeedId`] is never merged: [`MergeResult`]
//!   reports it (`foreign_seed`, `conflicts`) and every host that saw it
//!   refuses to allocate ([`IpamError::Conflict`]) while a host of the
//!   other seed is known. The older seed wins (lower [`SeedId`]): a host of
//!   the younger one that holds no allocation gives up its ring by itself
//!   ([`Ring::yield_seed`]) and joins the older; one that holds
//!   allocations stays, and allocation stays refused on both sides, until
//!   the operator removes its containers (or forgets it with `rmpeer`).
//!   Hosts with different `--ipalloc-range`s also show as two seeds.
//! - **Taking over a dead host** ([`Ring::take_over`], `rmpeer`): the
//!   operator asserts the host is gone for good; every token it owned
//!   becomes the taker's at version + 1. This is the one write by a
//!   non-owner. Do it only once the mesh has settled (records of every live
//!   host have reached the taker), or the taker may not know of a split the
//!   dead host made and a donation it gave, and would think it owns the
//!   given part for a while. If the host was not really dead: its old
//!   tokens come back at a lower version and lose, so it stops allocating
//!   there (the merge reports them as taken from it, see
//!   [`MergeResult::lost`]), but its live containers keep their addresses,
//!   which the taker may hand out again: those addresses must be treated as
//!   in use (remove those containers; [`Allocator::outside`] lists them).
//!   If it had given a token away in the meantime at the same version, or
//!   two hosts took it over, the merge reports a conflict (same version,
//!   two owners): the space is refused by both until the operator settles
//!   it ([`Ring::settle_conflicts`] on the owner the ring records, the lower
//!   key, after removing the other claimant's containers there).
//! - **Wiping a state dir** while its containers still run, or without
//!   `rmpeer`, loses the allocations (the containers keep their addresses)
//!   and leaves the host's old space unused until someone takes it over.
//!
//! # Wiring (what the node does)
//!
//! - Publish [`Ring::record`] (seed, own tokens, free count) in the host's
//!   gossip record, `None` while unseeded; merge every newer record with
//!   [`Ring::merge_record`]; call [`Ring::forget`] when gossip forgets a
//!   host; after merges call [`Ring::yield_seed`] with whether the
//!   allocator holds anything.
//! - Seed lazily: when an allocation is wanted, the ring is unseeded, every
//!   reachable host's record says "unseeded", the host has waited long
//!   enough to have heard from them, and it has the lowest key.
//! - On [`IpamError::NoSpace`], send a donation request to
//!   [`choose_donor`] of the reachable hosts' free counts; on a request,
//!   [`Ring::donate`], persist, send the [`Donation`]; resend
//!   [`Ring::pending_donations`] every gossip interval to recipients that
//!   are reachable; on a donation, [`Ring::accept_donation`] and persist.

use crate::keys::PublicKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Most tokens one record or donation may carry, and one host may own.
pub const MAX_TOKENS: usize = 1024;
/// Most tokens one donation transfers (bounds how fast a host's count grows).
pub const MAX_DONATION_TOKENS: usize = 32;
/// Longest owner id (container id + interface name).
pub const MAX_OWNER_ID_LEN: usize = 256;

/// Why IPAM refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// This host owns no free address: request a donation.
    #[error("no free address in this host's space (a donation has to be requested)")]
    NoSpace,
    /// No seeded ring has been seen yet.
    #[error("the address range is not shared out yet (waiting for the mesh to seed it)")]
    NotSeeded,
    /// Conflicting claims on the space (two seeds, or two owners of a token).
    #[error("conflicting claims on the address range; see `weavers ipam ls`")]
    Conflict,
    /// An owner id that is empty or too long.
    #[error("invalid owner id (empty or longer than {MAX_OWNER_ID_LEN} bytes)")]
    InvalidOwner,
    /// A malformed donation, or one for another host or seed.
    #[error("invalid donation: {0}")]
    BadDonation(&'static str),
    /// A bad `--ipalloc-range`.
    #[error("invalid address range {0:?}: expected an IPv4 network such as 10.32.0.0/12, prefix 1 to 30")]
    BadRange(String),
}

/// The shared IPv4 range (`--ipalloc-range`): a network address and prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Range {
    base: Ipv4Addr,
    prefix: u8,
}

impl Range {
    /// A network address (host bits zero) with a prefix of 1 to 30.
    pub fn new(base: Ipv4Addr, prefix: u8) -> Result<Self, IpamError> {
        let bad = || IpamError::BadRange(format!("{base}/{prefix}"));
        if !(1..=30).contains(&prefix) {
            return Err(bad());
        }
        let host_mask = u32::MAX >> prefix;
        if u32::from(base) & host_mask != 0 {
            return Err(bad());
        }
        Ok(Range { base, prefix })
    }

    pub fn base(&self) -> Ipv4Addr {
        self.base
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Number of addresses, network and broadcast included.
    pub fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    /// The address at `offset`.
    pub fn addr(&self, offset: u32) -> Option<Ipv4Addr> {
        (offset < self.size()).then(|| Ipv4Addr::from(u32::from(self.base) + offset))
    }

    /// The offset of `addr`, if it is in the range.
    pub fn offset(&self, addr: Ipv4Addr) -> Option<u32> {
        let o = u32::from(addr).wrapping_sub(u32::from(self.base));
        (o < self.size()).then_some(o)
    }
}

impl Default for Range {
    /// 10.32.0.0/12, the default `--ipalloc-range`.
    fn default() -> Self {
        Range { base: Ipv4Addr::new(10, 32, 0, 0), prefix: 12 }
    }
}

impl FromStr for Range {
    type Err = IpamError;
    fn from_str(s: &str) -> Result<Self, IpamError> {
        let bad = || IpamError::BadRange(s.to_string());
        let (a, p) = s.trim().split_once('/').ok_or_else(bad)?;
        let base: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        Range::new(base, prefix).map_err(|_| bad())
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// Which seeding a ring descends from. Rings of different seeds never
/// merge. The lower one (older stamp first) wins a meeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeedId {
    /// The seeder's clock (milliseconds that grow across restarts).
    pub stamp: u64,
    pub seeder: PublicKey,
    pub range: Range,
}

/// Who owns a token, at which version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub owner: PublicKey,
    pub version: u32,
}

/// Two claims on one token at the same version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub version: u32,
    /// Every owner seen at that version (the ring records the lowest).
    pub claimants: Vec<PublicKey>,
}

/// A record of another seed, kept (not merged) while its author is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Foreign {
    pub author: PublicKey,
    pub seed: SeedId,
    pub tokens: Vec<(u32, u32)>,
}

/// What a host publishes about its IPAM state in its gossip record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamRecord {
    pub seed: SeedId,
    /// The tokens it owns: `(start, version)`, ascending.
    pub tokens: Vec<(u32, u32)>,
    /// How many addresses it could still allocate.
    pub free: u32,
}

impl IpamRecord {
    /// Checks the limits a well-behaved host stays within.
    pub fn is_valid(&self) -> bool {
        let size = self.seed.range.size();
        self.tokens.len() <= MAX_TOKENS && ascending_below(&self.tokens, size) && self.free <= size
    }
}

fn ascending_below(tokens: &[(u32, u32)], size: u32) -> bool {
    tokens.windows(2).all(|w| w[0].0 < w[1].0) && tokens.iter().all(|&(s, _)| s < size)
}

/// Space given by one host to another: sent by the donor until the
/// recipient's record lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Donation {
    pub seed: SeedId,
    pub from: PublicKey,
    pub to: PublicKey,
    /// The tokens now owned by `to`: `(start, version)`, ascending and
    /// contiguous (together they cover `[first start, end)`).
    pub tokens: Vec<(u32, u32)>,
    /// The token where the given space ends, as the donor knows it; `None`
    /// when it ends at the top of the range.
    pub end: Option<(u32, Entry)>,
}

impl Donation {
    /// Checks the shape (not whether it applies to a given ring).
    pub fn is_valid(&self) -> bool {
        let size = self.seed.range.size();
        !self.tokens.is_empty()
            && self.tokens.len() <= MAX_DONATION_TOKENS
            && ascending_below(&self.tokens, size)
            && self.end.is_none_or(|(e, _)| e < size && self.tokens.last().is_some_and(|&(s, _)| s < e))
            && self.from != self.to
    }
}

/// The IPAM messages hosts send each other directly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpamMessage {
    /// "I have no free address: give me up to `want`."
    Request { want: u32 },
    /// Space for the receiver.
    Donation(Donation),
}

impl IpamMessage {
    pub fn is_valid(&self) -> bool {
        match self {
            IpamMessage::Request { want } => *want > 0,
            IpamMessage::Donation(d) => d.is_valid(),
        }
    }
}

/// Of the reachable hosts and their published free counts, the one to ask
/// for a donation: the most free (ties: the lowest key), none if all are 0.
pub fn choose_donor(me: PublicKey, candidates: impl IntoIterator<Item = (PublicKey, u32)>) -> Option<PublicKey> {
    candidates
        .into_iter()
        .filter(|&(k, free)| k != me && free > 0)
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(k, _)| k)
}

/// What a merge did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeResult {
    /// The ring changed (the daemon persists it).
    pub changed: bool,
    /// Tokens with conflicting claims: same version, another owner; or,
    /// for a record of another seed, all the tokens it lists.
    pub conflicts: Vec<u32>,
    /// The other seed the record came from, if it was not merged for that.
    pub foreign_seed: Option<SeedId>,
    /// Tokens that changed owner: `(start, previous owner, new owner)`.
    pub reassigned: Vec<(u32, PublicKey, PublicKey)>,
}

impl MergeResult {
    /// Tokens `me` owned and no longer does: taken over (or a conflict
    /// recorded for another claimant). Never the result of a donation,
    /// which changes the donor's own view first.
    pub fn lost(&self, me: PublicKey) -> Vec<u32> {
        self.reassigned.iter().filter(|(_, from, _)| *from == me).map(|(s, _, _)| *s).collect()
    }
}

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
                res.changed = self.set_foreign(author, seed, tokens);
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
                res.changed = self.set_foreign(author, seed, tokens);
                return res;
            }
            Some(_) => {}
        }
        if let Some(i) = self.foreign.iter().position(|f| f.author == author) {
            self.foreign.remove(i);
            res.changed = true;
        }
        for &(start, version) in tokens {
            self.merge_entry(start, Entry { owner: author, version }, &mut res);
        }
        self.settle_pending(Some((author, tokens)));
        res
    }

    fn set_foreign(&mut self, author: PublicKey, seed: SeedId, tokens: &[(u32, u32)]) -> bool {
        let f = Foreign { author, seed, tokens: tokens.iter().take(MAX_TOKENS).copied().collect() };
        match self.foreign.iter_mut().find(|f| f.author == author) {
            Some(old) if *old == f => false,
            Some(old) => {
                *old = f;
                true
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
fn free_runs(intervals: &[(u32, u32)], alloc: &Allocator, size: u32) -> Vec<(u32, u32)> {
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

/// This host's allocations: owner id (container id + interface) to offset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AllocatorState", into = "AllocatorState")]
pub struct Allocator {
    by_id: BTreeMap<String, u32>,
    by_offset: BTreeMap<u32, String>,
    /// Where the next search starts (so a released address is not handed
    /// out again at once).
    next: u32,
}

#[derive(Serialize, Deserialize)]
struct AllocatorState {
    allocations: BTreeMap<String, u32>,
    next: u32,
}

impl From<Allocator> for AllocatorState {
    fn from(a: Allocator) -> Self {
        AllocatorState { allocations: a.by_id, next: a.next }
    }
}

impl TryFrom<AllocatorState> for Allocator {
    type Error = String;
    fn try_from(s: AllocatorState) -> Result<Self, String> {
        let mut by_offset = BTreeMap::new();
        for (id, &o) in &s.allocations {
            if let Some(other) = by_offset.insert(o, id.clone()) {
                return Err(format!("offset {o} allocated to both {other:?} and {id:?}"));
            }
        }
        Ok(Allocator { by_id: s.allocations, by_offset, next: s.next })
    }
}

impl Allocator {
    pub fn new() -> Self {
        Self::default()
    }

    /// The address for `owner_id`: the one it already has, or a free one
    /// from the space `ring` says `me` owns (never network or broadcast).
    pub fn allocate(&mut self, ring: &Ring, me: PublicKey, owner_id: &str) -> Result<u32, IpamError> {
        if owner_id.is_empty() || owner_id.len() > MAX_OWNER_ID_LEN {
            return Err(IpamError::InvalidOwner);
        }
        if let Some(&o) = self.by_id.get(owner_id) {
            return Ok(o);
        }
        if !ring.is_seeded() {
            return Err(IpamError::NotSeeded);
        }
        if ring.has_foreign_seed() {
            return Err(IpamError::Conflict);
        }
        let runs = free_runs(&ring.usable(me), self, ring.size());
        // Next fit: the first free address at or after the cursor, else the first.
        let pick =
            runs.iter().find_map(|&(a, b)| (self.next < b).then_some(a.max(self.next))).or(runs.first().map(|r| r.0));
        match pick {
            Some(o) => {
                self.by_id.insert(owner_id.to_string(), o);
                self.by_offset.insert(o, owner_id.to_string());
                self.next = o + 1;
                Ok(o)
            }
            None if ring.spans().iter().any(|s| s.conflict && s.owner == me) => Err(IpamError::Conflict),
            None => Err(IpamError::NoSpace),
        }
    }

    /// The address `owner_id` holds.
    pub fn get(&self, owner_id: &str) -> Option<u32> {
        self.by_id.get(owner_id).copied()
    }

    /// Frees `owner_id`'s address; returns it.
    pub fn release(&mut self, owner_id: &str) -> Option<u32> {
        let o = self.by_id.remove(owner_id)?;
        self.by_offset.remove(&o);
        Some(o)
    }

    /// Frees every allocation whose owner id is not in `keep` (CNI GC);
    /// returns the offsets freed.
    pub fn release_all_except(&mut self, keep: &[&str]) -> Vec<u32> {
        let keep: BTreeSet<&str> = keep.iter().copied().collect();
        let gone: Vec<String> = self.by_id.keys().filter(|id| !keep.contains(id.as_str())).cloned().collect();
        gone.iter().filter_map(|id| self.release(id)).collect()
    }

    /// Every allocation: `(owner id, offset)`, by owner id.
    pub fn in_use(&self) -> impl Iterator<Item = (&str, u32)> {
        self.by_id.iter().map(|(id, o)| (id.as_str(), *o))
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// How many more addresses `me` could allocate now (published in its
    /// record, so others know whom to ask for space).
    pub fn free_count(&self, ring: &Ring, me: PublicKey) -> u32 {
        free_runs(&ring.usable(me), self, ring.size()).iter().map(|(a, b)| b - a).sum()
    }

    /// Allocations outside the space `me` may allocate from: taken over
    /// while this host was away, or in conflict. Their containers keep
    /// addresses another host may hand out: report them.
    pub fn outside(&self, ring: &Ring, me: PublicKey) -> Vec<(String, u32)> {
        let usable = ring.usable(me);
        self.by_id
            .iter()
            .filter(|(_, &o)| !usable.iter().any(|&(a, b)| a <= o && o < b))
            .map(|(id, &o)| (id.clone(), o))
            .collect()
    }
}

#[cfg(test)]
mod tests;
