//! What hosts tell each other: seeds, records in gossip, donations, merge results.

use super::*;

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

pub(super) fn ascending_below(tokens: &[(u32, u32)], size: u32) -> bool {
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
    /// New tokens refused because the ring holds [`super::MAX_RING_TOKENS`],
    /// plus 1 if the record was of another seed and [`super::MAX_FOREIGN`]
    /// such hosts are already kept.
    pub refused: usize,
}

impl MergeResult {
    /// Tokens `me` owned and no longer does: taken over (or a conflict
    /// recorded for another claimant). Never the result of a donation,
    /// which changes the donor's own view first.
    pub fn lost(&self, me: PublicKey) -> Vec<u32> {
        self.reassigned.iter().filter(|(_, from, _)| *from == me).map(|(s, _, _)| *s).collect()
    }
}
