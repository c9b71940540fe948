//! End-to-end sealing of relayed payloads: what a source sends through a
//! relay is opened only by its destination, and accepted only if it comes
//! from the source its header names.
//!
//! The hop sessions (Noise) protect each hop; without this layer a relay
//! would open the hop session, read the frame and re-seal it, and a
//! destination would take the header's `src` on trust, so any direct peer
//! could inject frames in another host's name. Here the inner payload of a
//! relayed packet (frames, or a piece of a super-frame) is sealed between
//! source and destination:
//!
//! - **Pair secret.** `BLAKE2s("weavers relay e2e v1\0" || X25519(own static,
//!   peer static) || lower key || higher key)`: both hosts know each
//!   other's static key (gossip, handshakes), and nobody else can compute
//!   it. One X25519 per pair of hosts, cached ([`RelayKeys`]).
//! - **Direction and epoch key.** `BLAKE2s-MAC(key = pair secret, src key ||
//!   dst key || epoch)`: one key per direction and per start of the
//!   source. The epoch is drawn at each start ([`epoch`]: the start time
//!   in milliseconds, then 20 random bits), so a restarted host never
//!   reuses a (key, nonce) pair even though its counters start again.
//! - **Seal.** AES-256-GCM, as the hop sessions (`crate::session`); the
//!   nonce is a 64-bit counter, one per source host for all its
//!   destinations, carried in the header; the associated data are the
//!   header's destination, source, epoch and counter (everything but the
//!   hop limit, which relays decrement).
//! - **Replay.** The destination keeps, per source, the newest epoch it
//!   accepted and a sliding window ([`ReplayWindow`]) of its counters. A
//!   packet is accepted only after its tag verifies; a higher epoch (the
//!   source restarted) replaces the state; a lower one is refused as a
//!   replay, unless nothing from the source was accepted for
//!   [`EPOCH_IDLE`] (a source whose clock stepped back across a restart
//!   gets through after that long).
//!
//! What it gives: a relay sees the header and ciphertext, not the frames;
//! a host can neither forge a relayed payload in another host's name, nor
//! alter one, nor replay one while the destination remembers the source.
//!
//! What it does not give:
//! - No forward secrecy beyond the epoch: whoever later learns the static
//!   key of the source or of the destination can open every relayed packet
//!   of that pair they recorded, for all epochs (the epoch is in the clear).
//!   Direct traffic, on Noise sessions with ephemeral keys, keeps forward
//!   secrecy. And whoever holds a host's static key can forge relayed
//!   packets to that host in any host's name (static-static Diffie-Hellman
//!   is open to key-compromise impersonation).
//! - Replays across a loss of state: a destination that restarts, or drops
//!   a source's entry (the cache is full, [`MAX_PAIRS`]), accepts once more
//!   packets of the source's current epoch that a relay recorded earlier.
//!   Epochs are ordered by the source's clock, so a relay can never replay
//!   an older start's packets while the destination remembers a newer one.
//! - Relays still see who talks to whom, when, and how much.
//!
//! Cost: one X25519 (42 us on the development machine, `cargo bench -p
//! weavers-proto --bench relay`) the first time one of two hosts sends
//! the other a payload through a relay, one BLAKE2s per epoch and
//! direction, then one AES-GCM seal at the source and one open at the
//! destination per relayed packet: one more of each than before, while the
//! relay does the same work as before (open the hop session, re-seal for
//! the next hop). A relayed 64-byte frame through three nodes went from
//! 0.9 us to 1.2 us of CPU. State grows with the hosts this one exchanges
//! relayed payloads with (at most [`MAX_PAIRS`] entries), not with the
//! mesh: a host whose traffic is all direct, or that only passes relayed
//! payloads on, keeps none. The header grows by 32 bytes (epoch, counter,
//! tag), which the overlay MTU gives up ([`crate::wire::overlay_mtu`]).

use crate::keys::{PublicKey, StaticKeypair, KEY_LEN};
use crate::replay::ReplayWindow;
use crate::session::COUNTER_LIMIT;
use crate::wire::{RelayHeader, TAG_LEN};
use blake2::digest::{KeyInit, Mac};
use blake2::{Blake2s256, Blake2sMac256, Digest};
use curve25519_dalek::montgomery::MontgomeryPoint;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Hosts whose pair state is kept (the same as the hosts a gossip table
/// holds, so in a mesh within that cap no entry is ever evicted for room);
/// past it the least recently used entry goes.
pub const MAX_PAIRS: usize = crate::gossip::table::MAX_HOSTS;
/// A source's lower epoch is accepted again once nothing from it was
/// accepted for this long (its clock went back across a restart).
pub const EPOCH_IDLE: Duration = Duration::from_secs(120);
/// Domain separation of the pair secrets.
const PAIR_LABEL: &[u8] = b"weavers relay e2e v1\0";
/// Random bits at the bottom of an epoch.
const EPOCH_RANDOM_BITS: u32 = 20;

/// The epoch of a start at `unix_ms` (wall clock): the milliseconds, then
/// 20 bits of `random`, so two starts in the same
/// millisecond (a clock set back) still differ unless the random bits
/// collide too.
pub fn epoch(unix_ms: u64, random: u32) -> u64 {
    let ms = unix_ms.min(u64::MAX >> EPOCH_RANDOM_BITS);
    (ms << EPOCH_RANDOM_BITS) | u64::from(random & ((1 << EPOCH_RANDOM_BITS) - 1))
}

/// Why a relayed payload could not be sealed or opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum E2eError {
    /// The peer's key gives no shared secret (a low-order point).
    #[error("no shared secret with this host's key")]
    NoKey,
    /// The tag did not verify: not sealed by the claimed source for this
    /// host, or altered on the way.
    #[error("relayed payload did not authenticate")]
    Forged,
    /// A counter seen before or too old for the window, or an older epoch.
    #[error("relayed payload replayed")]
    Replay,
    /// This start used up its counters.
    #[error("relay counters used up")]
    Exhausted,
}

/// What is kept for one other host.
struct Pair {
    /// The pair secret; None when the peer's key gives none.
    secret: Option<[u8; KEY_LEN]>,
    /// The key this host seals with for the peer (this host's epoch).
    tx: Option<Box<LessSafeKey>>,
    /// What this host accepts from the peer.
    rx: Option<Box<Rx>>,
    last_used: Instant,
}

/// The receiving state of one source: its newest epoch.
struct Rx {
    epoch: u64,
    key: LessSafeKey,
    window: ReplayWindow,
    /// When a packet of it was last accepted.
    last_ok: Instant,
}

/// This host's end-to-end keys for relayed payloads: its epoch, its
/// counter, and the state per other host (capped at [`MAX_PAIRS`]).
pub struct RelayKeys {
    private: [u8; KEY_LEN],
    public: PublicKey,
    epoch: u64,
    next_counter: u64,
    pairs: HashMap<PublicKey, Pair>,
    /// Entries evicted and not yet reported by [`RelayKeys::take_evicted`].
    evicted: u64,
}

impl std::fmt::Debug for RelayKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayKeys")
            .field("public", &self.public)
            .field("epoch", &self.epoch)
            .field("next_counter", &self.next_counter)
            .field("pairs", &self.pairs.len())
            .finish_non_exhaustive()
    }
}

impl RelayKeys {
    /// The keys of the host `keypair` in its start `epoch` (see [`epoch`]).
    pub fn new(keypair: &StaticKeypair, epoch: u64) -> Self {
        RelayKeys {
            private: keypair.private,
            public: keypair.public,
            epoch,
            next_counter: 0,
            pairs: HashMap::new(),
            evicted: 0,
        }
    }

    /// This start's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Hosts with state kept.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether no host has state kept.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Entries evicted for room since the last call.
    pub fn take_evicted(&mut self) -> u64 {
        std::mem::take(&mut self.evicted)
    }

    /// Seals `body` in place for `dst`: sets `hdr`'s epoch and counter
    /// (its other fields are the caller's, and are authenticated as they
    /// are) and returns the tag, which goes right after the body.
    pub fn seal(
        &mut self,
        now: Instant,
        dst: &PublicKey,
        hdr: &mut RelayHeader,
        body: &mut [u8],
    ) -> Result<[u8; TAG_LEN], E2eError> {
        if self.next_counter >= COUNTER_LIMIT {
            return Err(E2eError::Exhausted);
        }
        let (epoch, public, counter) = (self.epoch, self.public, self.next_counter);
        let pair = self.pair(now, dst);
        let secret = pair.secret.as_ref().ok_or(E2eError::NoKey)?;
        let key = pair.tx.get_or_insert_with(|| Box::new(direction_key(secret, &public, dst, epoch)));
        hdr.epoch = epoch;
        hdr.counter = counter;
        let tag = key
            .seal_in_place_separate_tag(nonce(counter), Aad::from(hdr.authenticated()), body)
            .map_err(|_| E2eError::Exhausted)?;
        self.next_counter += 1;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens in place what follows the header `hdr` of a payload that
    /// claims to come from `src` (its body then its tag); returns the inner
    /// payload. Nothing changes unless the tag verifies.
    pub fn open<'a>(
        &mut self,
        now: Instant,
        src: &PublicKey,
        hdr: &RelayHeader,
        sealed: &'a mut [u8],
    ) -> Result<&'a [u8], E2eError> {
        if sealed.len() < TAG_LEN {
            return Err(E2eError::Forged);
        }
        if hdr.counter >= COUNTER_LIMIT {
            return Err(E2eError::Replay);
        }
        let public = self.public;
        let pair = self.pair(now, src);
        let secret = pair.secret.as_ref().ok_or(E2eError::NoKey)?;
        let aad = hdr.authenticated();
        match pair.rx.as_deref_mut() {
            Some(rx) if rx.epoch == hdr.epoch => {
                if !rx.window.check(hdr.counter) {
                    return Err(E2eError::Replay);
                }
                let n = open_with(&rx.key, hdr.counter, &aad, sealed)?;
                rx.window.accept(hdr.counter);
                rx.last_ok = now;
                Ok(&sealed[..n])
            }
            Some(rx) if hdr.epoch < rx.epoch && now.saturating_duration_since(rx.last_ok) < EPOCH_IDLE => {
                Err(E2eError::Replay)
            }
            _ => {
                // The first from this source, or a new start of it: a key
                // for that epoch, kept only if the payload opens with it.
                let key = direction_key(secret, src, &public, hdr.epoch);
                let n = open_with(&key, hdr.counter, &aad, sealed)?;
                let mut window = ReplayWindow::new();
                window.accept(hdr.counter);
                let rx = Rx { epoch: hdr.epoch, key, window, last_ok: now };
                match pair.rx.as_deref_mut() {
                    Some(old) => *old = rx,
                    None => pair.rx = Some(Box::new(rx)),
                }
                Ok(&sealed[..n])
            }
        }
    }

    /// The entry of `peer`, made (one X25519) if there is none, evicting
    /// the least recently used one when full.
    fn pair(&mut self, now: Instant, peer: &PublicKey) -> &mut Pair {
        if self.pairs.len() >= MAX_PAIRS && !self.pairs.contains_key(peer) {
            let oldest = self.pairs.iter().min_by_key(|(_, p)| p.last_used).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.pairs.remove(&k);
                self.evicted += 1;
            }
        }
        let (private, public) = (&self.private, &self.public);
        let pair = self.pairs.entry(*peer).or_insert_with(|| Pair {
            secret: pair_secret(private, public, peer),
            tx: None,
            rx: None,
            last_used: now,
        });
        pair.last_used = now;
        pair
    }
}

/// The secret `own` (private key, public key) shares with `peer`; None if
/// `peer` is a low-order point (the Diffie-Hellman result is zero).
fn pair_secret(private: &[u8; KEY_LEN], own: &PublicKey, peer: &PublicKey) -> Option<[u8; KEY_LEN]> {
    let shared = MontgomeryPoint(peer.0).mul_clamped(*private).to_bytes();
    if shared == [0u8; KEY_LEN] {
        return None;
    }
    let (lo, hi) = if own < peer { (own, peer) } else { (peer, own) };
    let mut h = Blake2s256::new();
    h.update(PAIR_LABEL);
    h.update(shared);
    h.update(lo.0);
    h.update(hi.0);
    Some(h.finalize().into())
}

/// The key `src` seals with for `dst` in its start `epoch`.
fn direction_key(secret: &[u8; KEY_LEN], src: &PublicKey, dst: &PublicKey, epoch: u64) -> LessSafeKey {
    let mut m = <Blake2sMac256 as KeyInit>::new_from_slice(secret).expect("a 32-byte key");
    m.update(&src.0);
    m.update(&dst.0);
    m.update(&epoch.to_be_bytes());
    let key = m.finalize().into_bytes();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("a 32-byte key"))
}

/// The AES-GCM nonce of `counter`: 32 zero bits, then the counter (as
/// Noise does).
fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Opens `sealed` (body then tag) in place; the body's length.
fn open_with(key: &LessSafeKey, counter: u64, aad: &[u8], sealed: &mut [u8]) -> Result<usize, E2eError> {
    key.open_in_place(nonce(counter), Aad::from(aad), sealed).map(|b| b.len()).map_err(|_| E2eError::Forged)
}

#[cfg(test)]
mod tests;
