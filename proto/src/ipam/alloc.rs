//! This host's allocations, inside the space the ring says it owns.

use super::*;

/// This host's allocations: owner id (container id + interface) to offset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AllocatorState", into = "AllocatorState")]
pub struct Allocator {
    by_id: BTreeMap<String, u32>,
    pub(super) by_offset: BTreeMap<u32, String>,
    /// Where the next search starts (so a released address is not handed
    /// out again at once).
    next: u32,
}

#[derive(Serialize, Deserialize)]
pub(super) struct AllocatorState {
    pub(super) allocations: BTreeMap<String, u32>,
    pub(super) next: u32,
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
