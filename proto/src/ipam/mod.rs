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
/// Most tokens the ring holds from other hosts' records: a new token past
/// it is refused and counted ([`MergeResult::refused`]). Refusing one only
/// leaves its span to the token before it, another host's (a host's own
/// spans end at tokens it made itself), so nothing is allocated twice.
/// Donations to this host are not held to it (they are bounded by
/// [`MAX_TOKENS`]).
pub const MAX_RING_TOKENS: usize = 16_384;
/// Most hosts of another seed remembered (their records are kept aside;
/// one is enough to refuse allocating): one more is refused and counted.
pub const MAX_FOREIGN: usize = 64;
/// Longest owner id (container id + interface name).
pub const MAX_OWNER_ID_LEN: usize = weavers_api::check::MAX_OWNER_ID_LEN;

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

mod alloc;
mod messages;
mod range;
mod ring;

pub use alloc::Allocator;
pub use messages::*;
pub use range::Range;
pub use ring::{Ring, Span};

#[cfg(test)]
mod tests;

#[cfg(test)]
use alloc::AllocatorState;
use messages::ascending_below;
use ring::free_runs;
