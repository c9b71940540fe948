//! The gossip protocol between peers, as a state machine without I/O.
//!
//! Two mechanisms, each with a cost per host that grows at most linearly
//! with the mesh:
//!
//! - **Push by the origin.** A host whose record changes sends it to every
//!   peer it has a session with, once. Receivers do not pass it on: in a
//!   full mesh every host already heard it from the origin. A change costs
//!   its origin one message per peer and every other host one message.
//! - **Anti-entropy by digests** (scuttlebutt-like), for whatever the push
//!   missed (loss, hosts only reachable through a relay, a host that just
//!   joined). Every `interval`, and whenever a session comes up, a host
//!   sends one peer its table's summary hash (8 bytes). Equal: done. Else
//!   the peer answers with its [`BUCKETS`] bucket hashes, the host sends the
//!   `(key, version)` entries of the buckets that differ, and each side then
//!   sends only the records the other lacks (the peer directly, the host
//!   after a `Want`). An idle, converged mesh costs one 8-byte summary per
//!   host per interval.
//!
//! Every record is checked ([`SignedRecord::open`]) before it is believed,
//! and skipped without a signature check when it is not newer than what
//! the table holds. Messages are cut to about [`MESSAGE_BUDGET`] bytes so
//! that each fits a datagram; only a single record larger than that goes
//! alone (the node sends it in pieces).

use super::record::{PeerRecord, RecordError, SignedRecord};
use super::table::{bucket_of, Merge, Table, BUCKETS};
use crate::keys::PublicKey;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Target size of one message (fits one datagram with every header).
pub const MESSAGE_BUDGET: usize = 1100;
/// Most messages queued for sending; beyond it anti-entropy messages are
/// dropped (a later round repeats them) and counted.
pub const MAX_QUEUED: usize = 4096;

/// One gossip message (postcard-encoded after the `Gossip` kind byte).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Signed records, as their authors signed them.
    Records(Vec<Vec<u8>>),
    /// "My table's summary digest is this."
    Summary(u64),
    /// "Yours differs; mine, bucket by bucket." Always [`BUCKETS`] long.
    Buckets(Vec<u64>),
    /// "In the buckets of `mask`, I hold these versions" (tombstones too).
    Digest { mask: u64, entries: Vec<(PublicKey, u64)> },
    /// "Send me these records."
    Want(Vec<PublicKey>),
}

impl Message {
    /// Encodes for the wire.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("messages serialize")
    }

    /// Decodes a received message; `None` if malformed.
    pub fn decode(bytes: &[u8]) -> Option<Message> {
        let (m, rest): (Message, _) = postcard::take_from_bytes(bytes).ok()?;
        rest.is_empty().then_some(m)
    }
}

/// What the gossip layer tells its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Another host's record was added or replaced.
    Merged { key: PublicKey, merge: Merge },
    /// Another host's record was forgotten.
    Forgotten(PublicKey),
    /// A peer holds a record of ours newer than ours (this host lost its
    /// state): the owner should publish a version above it.
    OwnSeenNewer(u64),
}

/// Counters, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_out: u64,
    pub records_merged: u64,
    pub records_stale: u64,
    /// Messages that did not decode.
    pub malformed: u64,
    /// Records refused: bad signature or key.
    pub bad_signature: u64,
    /// Records refused: malformed or over the limits.
    pub bad_record: u64,
    /// Records refused: version too far in the future.
    pub from_the_future: u64,
    /// Records refused: the table is full.
    pub table_full: u64,
    /// Messages dropped because the send queue was full.
    pub queue_full: u64,
}

/// Timing of the anti-entropy rounds.
#[derive(Clone, Copy, Debug)]
pub struct SyncConfig {
    /// One summary to one random peer this often.
    pub interval: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig { interval: Duration::from_secs(2) }
    }
}

/// One host's gossip state.
pub struct Gossip {
    me: PublicKey,
    cfg: SyncConfig,
    table: Table,
    /// Peers with a session, and since when.
    peers: HashMap<PublicKey, Instant>,
    /// The same keys, for picking one at random.
    peer_list: Vec<PublicKey>,
    out: VecDeque<(PublicKey, Vec<u8>)>,
    events: VecDeque<Event>,
    next_round: Instant,
    rng: StdRng,
    stats: Stats,
    /// Checks a record: [`SignedRecord::open`]; the simulator's thousand
    /// hosts swap in one without the signature check.
    open: Opener,
}

type Opener = fn(&[u8], PeerRecord, u64) -> Result<(SignedRecord, PeerRecord), RecordError>;

impl Gossip {
    /// A gossip state holding only `own`, this host's first record.
    pub fn new(own: (SignedRecord, PeerRecord), cfg: SyncConfig, seed: u64, now: Instant) -> Self {
        let me = own.1.key;
        let mut table = Table::new();
        table.merge(own.0, own.1, now);
        Gossip {
            me,
            cfg,
            table,
            peers: HashMap::new(),
            peer_list: Vec::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            next_round: now + cfg.interval,
            rng: StdRng::seed_from_u64(seed),
            stats: Stats::default(),
            open: SignedRecord::open,
        }
    }

    /// Skips signature checks (simulations of thousands of hosts).
    #[cfg(test)]
    pub(crate) fn skip_signature_checks(&mut self) {
        self.open = SignedRecord::open_unchecked;
    }

    /// Every record known, this host's own included.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// This host's current record.
    pub fn own(&self) -> &PeerRecord {
        &self.table.get(&self.me).expect("own record is never forgotten").record
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Peers with a session.
    pub fn peers(&self) -> &[PublicKey] {
        &self.peer_list
    }

    /// Replaces this host's record (a newer version, signed) and pushes it
    /// to every peer.
    pub fn publish(&mut self, signed: SignedRecord, record: PeerRecord, now: Instant) {
        debug_assert_eq!(record.key, self.me);
        let bytes = signed.as_bytes().to_vec();
        if self.table.merge(signed, record, now) == Merge::Stale {
            return;
        }
        let msg = Message::Records(vec![bytes]).encode();
        for i in 0..self.peer_list.len() {
            let to = self.peer_list[i];
            self.queue(to, msg.clone(), true);
        }
    }

    /// A session with `peer` came up: it gets our record at once. The first
    /// peer also gets a summary at once (a host that just started or
    /// rejoined learns everything from it); later ones wait for the rounds,
    /// so that a host whose sessions all come up together does not start a
    /// synchronisation with each.
    pub fn peer_up(&mut self, peer: PublicKey, now: Instant) {
        if peer == self.me || self.peers.insert(peer, now).is_some() {
            return;
        }
        self.peer_list.push(peer);
        let own = self.table.get(&self.me).expect("own record").signed.as_bytes().to_vec();
        self.queue(peer, Message::Records(vec![own]).encode(), true);
        if self.peer_list.len() == 1 {
            self.queue(peer, Message::Summary(self.table.summary()).encode(), false);
        }
    }

    /// The session with `peer` is gone.
    pub fn peer_down(&mut self, peer: &PublicKey) {
        if self.peers.remove(peer).is_some() {
            self.peer_list.retain(|p| p != peer);
        }
    }

    /// When [`Gossip::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Instant {
        self.next_round
    }

    /// Starts an anti-entropy round with one random peer when it is time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_round {
            return;
        }
        // Jitter of +-25% keeps hosts from falling into step.
        let quarter = self.cfg.interval / 4;
        let jitter = self.rng.gen_range(0..=quarter.as_micros() as u64 * 2);
        self.next_round = now + self.cfg.interval - quarter + Duration::from_micros(jitter);
        if self.peer_list.is_empty() {
            return;
        }
        let to = self.peer_list[self.rng.gen_range(0..self.peer_list.len())];
        self.queue(to, Message::Summary(self.table.summary()).encode(), false);
    }

    /// Forgets hosts that `keep` does not vouch for and whose record has
    /// not advanced for `forget_after`.
    pub fn forget_stale(&mut self, now: Instant, forget_after: Duration, keep: impl Fn(&PublicKey) -> bool) {
        let me = self.me;
        for k in self.table.forget_stale(now, forget_after, |k| *k == me || keep(k)) {
            self.events.push_back(Event::Forgotten(k));
        }
    }

    /// The next message to send, and to whom.
    pub fn poll_transmit(&mut self) -> Option<(PublicKey, Vec<u8>)> {
        self.out.pop_front()
    }

    /// The next thing the owner should know.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Handles a message from the direct peer `from`. `now_ms` is this
    /// host's millisecond clock (for the version bound). Malformed input
    /// is counted and changes nothing.
    pub fn handle(&mut self, from: PublicKey, bytes: &[u8], now: Instant, now_ms: u64) {
        self.stats.messages_in += 1;
        let Some(msg) = Message::decode(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        match msg {
            Message::Records(records) => {
                for r in records {
                    self.receive_record(&r, now, now_ms);
                }
            }
            Message::Summary(hash) => {
                if hash != self.table.summary() {
                    let buckets = self.table.buckets().to_vec();
                    self.queue(from, Message::Buckets(buckets).encode(), false);
                }
            }
            Message::Buckets(theirs) => {
                if theirs.len() != BUCKETS {
                    self.stats.malformed += 1;
                    return;
                }
                let mine = self.table.buckets();
                let mask = (0..BUCKETS).filter(|&b| mine[b] != theirs[b]).fold(0u64, |m, b| m | 1 << b);
                self.send_digests(from, mask);
            }
            Message::Digest { mask, entries } => self.on_digest(from, mask, &entries),
            Message::Want(keys) => {
                let mut records: Vec<Vec<u8>> = Vec::new();
                for k in keys.iter().take(super::table::MAX_HOSTS) {
                    if let Some(e) = self.table.get(k) {
                        records.push(e.signed.as_bytes().to_vec());
                    }
                }
                self.send_records(from, records);
            }
        }
    }

    fn receive_record(&mut self, bytes: &[u8], now: Instant, now_ms: u64) {
        let peeked = match SignedRecord::peek(bytes) {
            Ok(r) => r,
            Err(e) => return self.count_refused(e),
        };
        let key = peeked.key;
        if key == self.me {
            // Only we sign our records: a newer one is ours from before a
            // restart that lost state. Checked like any other.
            if peeked.version > self.own().version {
                match (self.open)(bytes, peeked, now_ms) {
                    Ok((_, r)) => self.events.push_back(Event::OwnSeenNewer(r.version)),
                    Err(e) => self.count_refused(e),
                }
            }
            return;
        }
        if !self.table.is_newer(&key, peeked.version) {
            self.stats.records_stale += 1;
            return;
        }
        let (signed, record) = match (self.open)(bytes, peeked, now_ms) {
            Ok(x) => x,
            Err(e) => return self.count_refused(e),
        };
        match self.table.merge(signed, record, now) {
            Merge::Stale => self.stats.records_stale += 1,
            Merge::Full => self.stats.table_full += 1,
            merge => {
                self.stats.records_merged += 1;
                self.events.push_back(Event::Merged { key, merge });
            }
        }
    }

    fn count_refused(&mut self, e: RecordError) {
        match e {
            RecordError::Signature(_) => self.stats.bad_signature += 1,
            RecordError::FromTheFuture => self.stats.from_the_future += 1,
            RecordError::Length | RecordError::Malformed | RecordError::Invalid => self.stats.bad_record += 1,
        }
    }

    /// Sends our entries of the buckets in `mask`, several buckets a
    /// message as they fit.
    fn send_digests(&mut self, to: PublicKey, mask: u64) {
        // An entry is at most 32 bytes of key and a 10-byte varint.
        const ENTRY: usize = 42;
        let mut by_bucket: Vec<Vec<(PublicKey, u64)>> = vec![Vec::new(); BUCKETS];
        for (k, v) in self.table.versions_in(mask) {
            by_bucket[bucket_of(&k)].push((k, v));
        }
        let mut cur_mask = 0u64;
        let mut cur: Vec<(PublicKey, u64)> = Vec::new();
        for (b, entries) in by_bucket.into_iter().enumerate() {
            if mask & (1 << b) == 0 {
                continue;
            }
            if cur_mask != 0 && (cur.len() + entries.len()) * ENTRY > MESSAGE_BUDGET {
                let m = Message::Digest { mask: cur_mask, entries: std::mem::take(&mut cur) };
                self.queue(to, m.encode(), false);
                cur_mask = 0;
            }
            cur_mask |= 1 << b;
            cur.extend(entries);
        }
        if cur_mask != 0 {
            self.queue(to, Message::Digest { mask: cur_mask, entries: cur }.encode(), false);
        }
    }

    fn on_digest(&mut self, from: PublicKey, mask: u64, theirs: &[(PublicKey, u64)]) {
        let mut their_versions: HashMap<PublicKey, u64> = HashMap::with_capacity(theirs.len());
        for (k, v) in theirs {
            if mask & (1 << bucket_of(k)) == 0 {
                self.stats.malformed += 1;
                return;
            }
            their_versions.insert(*k, *v);
        }
        // What they lack or hold older: ours to send.
        let mut records = Vec::new();
        for (k, v) in self.table.versions_in(mask) {
            if their_versions.get(&k).is_none_or(|tv| *tv < v) {
                if let Some(e) = self.table.get(&k) {
                    records.push(e.signed.as_bytes().to_vec());
                }
            }
        }
        self.send_records(from, records);
        // What they hold newer: ours to ask for.
        let want: Vec<PublicKey> = their_versions
            .iter()
            .filter(|(k, v)| self.table.is_newer(k, **v) && **k != self.me)
            .map(|(k, _)| *k)
            .collect();
        for chunk in want.chunks(MESSAGE_BUDGET / 33) {
            self.queue(from, Message::Want(chunk.to_vec()).encode(), false);
        }
    }

    /// Sends records in messages of about [`MESSAGE_BUDGET`] bytes.
    fn send_records(&mut self, to: PublicKey, records: Vec<Vec<u8>>) {
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut size = 0;
        for r in records {
            if !batch.is_empty() && size + r.len() + 3 > MESSAGE_BUDGET {
                self.queue(to, Message::Records(std::mem::take(&mut batch)).encode(), false);
                size = 0;
            }
            size += r.len() + 3;
            batch.push(r);
        }
        if !batch.is_empty() {
            self.queue(to, Message::Records(batch).encode(), false);
        }
    }

    fn queue(&mut self, to: PublicKey, msg: Vec<u8>, must: bool) {
        if !must && self.out.len() >= MAX_QUEUED {
            self.stats.queue_full += 1;
            return;
        }
        self.stats.messages_out += 1;
        self.stats.bytes_out += msg.len() as u64;
        self.out.push_back((to, msg));
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
