//! Forward error correction for lossy paths: one parity datagram per group
//! of up to [`GROUP`] data datagrams, from which the receiver rebuilds any
//! single one of them that was lost.
//!
//! TCP reads a lost datagram as congestion: over a path that loses 5% of
//! its packets a TCP stream spends its time in recovery, whatever the path
//! could carry. Segmenting super-frames (`segment`) makes a loss cost one
//! segment instead of 45; parity makes most losses cost nothing. With
//! groups of 8, a datagram stays lost only when another of its group (or
//! the parity) is lost too: at 5% random loss about 1.7% of datagrams
//! instead of 5% (at 1%, 0.08%), for 12.5% more datagrams, and only
//! towards peers a local TCP sender was seen retransmitting to
//! (`node::lossy`). Groups of 4 (25% more) left TCP slower in the loss
//! bench, whose path is bound by packets per second; 16 no faster than 8
//! and more retransmissions (2026-12-03, `bench --underlay-loss 5`).
//!
//! The parity covers the *plaintexts* of consecutive DATA datagrams of one
//! session (their counters `first .. first + count`); it travels as a
//! payload of kind `Parity`, sealed like any other, so it is as authentic
//! as the data it repairs: a rebuilt plaintext is accepted under its own
//! counter (the replay window records it) and handled as if it had
//! arrived. Body of a parity payload (after its kind byte):
//!
//! ```text
//! first counter  u64 BE
//! count          u8      1..=GROUP
//! lengths        u16 BE  x count    each member's plaintext length
//! xor            ...     XOR of the members, each padded with zeros to
//!                        the longest (the rest of the body)
//! ```
//!
//! Sender ([`Encoder`]) and receiver ([`Decoder`]) are sans-IO: the node
//! feeds them what it sealed and opened. Both own their buffers and do not
//! allocate per datagram once warm.

use thiserror::Error;

/// Data datagrams per parity datagram, at most.
pub const GROUP: usize = 8;

/// Bytes of a parity body before its XOR: counter, count, lengths.
pub const PARITY_HEAD: usize = 8 + 1 + 2 * GROUP;

/// Full groups whose parity a sender may hold back, at most, so that a
/// batch's data datagrams leave in one run (one UDP segmentation send)
/// and their parities after them.
pub const DEFERRED: usize = 4;

/// Plaintexts of recent datagrams a receiver keeps per peer: more than the
/// [`DEFERRED`] groups and the open one a parity may arrive after.
const KEPT: usize = 48;
const _: () = assert!(KEPT > (DEFERRED + 1) * GROUP);

/// Why a parity body was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParityError {
    #[error("parity body too short")]
    Short,
    #[error("parity group of {0} datagrams (1 to {GROUP} allowed)")]
    Count(usize),
    #[error("parity member of {len} bytes in an XOR of {xor}")]
    Length { len: usize, xor: usize },
    #[error("parity counters out of range")]
    Counters,
    #[error("a kept member's length disagrees with the parity")]
    Mismatch,
}

/// The parity being built for one peer: the group of datagrams sealed on
/// one session since the last parity.
#[derive(Debug, Default)]
pub struct Encoder {
    /// The session (remote index) the group was sealed on.
    session: u32,
    first: u64,
    lengths: [u16; GROUP],
    count: usize,
    /// XOR of the members so far; `xor.len()` is the longest member.
    xor: Vec<u8>,
}

impl Encoder {
    /// Whether a group is open (a parity is owed at the next flush).
    pub fn is_open(&self) -> bool {
        self.count > 0
    }

    /// Notes the DATA datagram `counter` of session `session`, whose
    /// plaintext was `plain`. When this completes a group, or breaks off
    /// the open one (another session, a counter out of sequence), the
    /// parity body owed is written into `out`. A plaintext longer than
    /// `max_member` (its parity would not fit a datagram) joins no group.
    pub fn sent(
        &mut self,
        session: u32,
        counter: u64,
        plain: &[u8],
        max_member: usize,
        out: &mut [u8],
    ) -> Option<Owed> {
        let follows =
            self.count > 0 && self.session == session && Some(counter) == self.first.checked_add(self.count as u64);
        let mut owed = None;
        if self.count > 0 && !follows {
            owed = self.finish(out);
        }
        if plain.len() > max_member || plain.len() > u16::MAX as usize {
            if owed.is_none() {
                owed = self.finish(out);
            }
            return owed;
        }
        if self.count == 0 {
            self.session = session;
            self.first = counter;
            self.xor.clear();
        }
        if self.xor.len() < plain.len() {
            self.xor.resize(plain.len(), 0);
        }
        for (x, b) in self.xor.iter_mut().zip(plain) {
            *x ^= b;
        }
        self.lengths[self.count] = plain.len() as u16;
        self.count += 1;
        if self.count == GROUP {
            // A break-off and a completion cannot both happen: a group
            // broken off leaves this datagram alone in the new one.
            debug_assert!(owed.is_none());
            return self.finish(out);
        }
        owed
    }

    /// Closes the open group: its parity body into `out`. `None` when no
    /// group is open or `out` is too small (the group is dropped either
    /// way).
    pub fn finish(&mut self, out: &mut [u8]) -> Option<Owed> {
        let count = std::mem::take(&mut self.count);
        let len = PARITY_HEAD - 2 * (GROUP - count) + self.xor.len();
        if count == 0 || out.len() < len {
            return None;
        }
        out[..8].copy_from_slice(&self.first.to_be_bytes());
        out[8] = count as u8;
        let mut at = 9;
        for l in &self.lengths[..count] {
            out[at..at + 2].copy_from_slice(&l.to_be_bytes());
            at += 2;
        }
        out[at..at + self.xor.len()].copy_from_slice(&self.xor);
        Some(Owed { session: self.session, len })
    }
}

/// A parity body an [`Encoder`] wrote: it must be sealed on `session`
/// (the one its group's counters belong to) or not at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owed {
    /// The remote index of the group's session.
    pub session: u32,
    /// Bytes of the body.
    pub len: usize,
}

/// A parity body, parsed and checked.
#[derive(Debug)]
pub struct Parity<'a> {
    pub first: u64,
    lengths: &'a [u8],
    xor: &'a [u8],
}

impl<'a> Parity<'a> {
    /// Parses a parity body (after its kind byte).
    pub fn parse(body: &'a [u8]) -> Result<Self, ParityError> {
        if body.len() < 9 {
            return Err(ParityError::Short);
        }
        let first = u64::from_be_bytes(body[..8].try_into().expect("8 bytes"));
        let count = body[8] as usize;
        if count == 0 || count > GROUP {
            return Err(ParityError::Count(count));
        }
        if first.checked_add(count as u64).is_none() {
            return Err(ParityError::Counters);
        }
        let lengths = body.get(9..9 + 2 * count).ok_or(ParityError::Short)?;
        let xor = &body[9 + 2 * count..];
        let p = Parity { first, lengths, xor };
        for i in 0..count {
            let len = p.length(i);
            if len > xor.len() {
                return Err(ParityError::Length { len, xor: xor.len() });
            }
        }
        Ok(p)
    }

    /// Datagrams in the group.
    pub fn count(&self) -> usize {
        self.lengths.len() / 2
    }

    fn length(&self, i: usize) -> usize {
        u16::from_be_bytes([self.lengths[2 * i], self.lengths[2 * i + 1]]) as usize
    }
}

/// What a parity did.
#[derive(Debug, PartialEq, Eq)]
pub enum Repair {
    /// Every member had arrived: nothing to do (the usual case).
    Complete,
    /// The one missing member was rebuilt: its counter and length (the
    /// plaintext is in the caller's buffer).
    Rebuilt { counter: u64, len: usize },
    /// More than one member is missing, or one is and another that
    /// arrived is not kept: nothing can be rebuilt.
    Unrepairable,
}

/// One kept plaintext.
#[derive(Debug, Default)]
struct Kept {
    session: u32,
    counter: u64,
    valid: bool,
    plain: Vec<u8>,
}

/// The plaintexts of the last [`KEPT`] datagrams from one peer, kept while
/// that peer sends parity.
#[derive(Debug, Default)]
pub struct Decoder {
    kept: Vec<Kept>,
}

impl Decoder {
    /// Keeps the plaintext of datagram `counter` of session `session`.
    pub fn keep(&mut self, session: u32, counter: u64, plain: &[u8]) {
        if self.kept.is_empty() {
            self.kept.resize_with(KEPT, Kept::default);
        }
        let k = &mut self.kept[(counter % KEPT as u64) as usize];
        k.session = session;
        k.counter = counter;
        k.valid = true;
        k.plain.clear();
        k.plain.extend_from_slice(plain);
    }

    fn find(&self, session: u32, counter: u64) -> Option<&[u8]> {
        let k = self.kept.get((counter % KEPT as u64) as usize)?;
        (k.valid && k.session == session && k.counter == counter).then_some(k.plain.as_slice())
    }

    /// Applies `parity`, which arrived on session `session`: when exactly
    /// one member is missing (`arrived(counter)` false) and the others are
    /// kept, rebuilds it into `out`. The caller must then record its
    /// counter as received.
    pub fn repair(
        &self,
        session: u32,
        parity: &Parity<'_>,
        arrived: impl Fn(u64) -> bool,
        out: &mut [u8],
    ) -> Result<Repair, ParityError> {
        let mut missing = None;
        // A member that arrived but is not kept (it came before keeping
        // started, or was pushed out) matters only when another is lost.
        let mut unkept = false;
        for i in 0..parity.count() {
            let counter = parity.first + i as u64;
            if arrived(counter) {
                match self.find(session, counter) {
                    Some(p) if p.len() != parity.length(i) => return Err(ParityError::Mismatch),
                    Some(_) => {}
                    None => unkept = true,
                }
            } else if missing.replace(i).is_some() {
                return Ok(Repair::Unrepairable);
            }
        }
        let Some(m) = missing else { return Ok(Repair::Complete) };
        if unkept {
            return Ok(Repair::Unrepairable);
        }
        let len = parity.length(m);
        if out.len() < len {
            return Ok(Repair::Unrepairable);
        }
        out[..len].copy_from_slice(&parity.xor[..len]);
        for i in (0..parity.count()).filter(|&i| i != m) {
            let p = self.find(session, parity.first + i as u64).expect("checked above");
            for (o, b) in out[..len].iter_mut().zip(p) {
                *o ^= b;
            }
        }
        Ok(Repair::Rebuilt { counter: parity.first + m as u64, len })
    }
}

#[cfg(test)]
mod tests;
