//! Durability: where sequenced records become safe before anything they
//! produced may leave the process.
//!
//! [`Durability`] is the seam: [`LocalJournal`] (fsync of the local
//! journal), and [`Replicated`] (issue 7), which also hands every group to
//! the replication thread *before* the local fsync, so DR's round trip and
//! the local fsync overlap. [`Durability::commit`] returns the locally
//! durable sequence number; the publisher releases outputs only up to the
//! lower of that and DR's durable mark ([`crate::app::replicate::Progress`]),
//! woken by the replication thread whenever that mark moves — so groups
//! pipeline: the next local fsync runs while DR acknowledges the last.

use crate::app::replicate::Replicator;
use crate::events::SequencedInput;
use crate::journal::{JournalError, Writer};
use crate::types::Seq;

/// Somewhere records are made durable, in group commits.
pub trait Durability: Send {
    /// Buffers a record (records come in sequence).
    fn append(&mut self, rec: &SequencedInput) -> Result<(), JournalError>;
    /// Makes every appended record durable; returns the last durable
    /// sequence number.
    fn commit(&mut self) -> Result<Seq, JournalError>;
}

/// The local journal file, fsync'd per commit.
pub struct LocalJournal(pub Writer);

impl Durability for LocalJournal {
    fn append(&mut self, rec: &SequencedInput) -> Result<(), JournalError> {
        self.0.append(rec)
    }

    fn commit(&mut self) -> Result<Seq, JournalError> {
        self.0.sync()
    }
}

/// The local journal, with every record also sent to DR.
pub struct Replicated {
    /// The local journal.
    pub local: LocalJournal,
    /// The replication thread (dropped with this: a clean end for DR).
    pub repl: Replicator,
    batch: Vec<SequencedInput>,
}

impl Replicated {
    /// Wraps the local journal and a started replicator.
    pub fn new(local: LocalJournal, repl: Replicator) -> Replicated {
        Replicated { local, repl, batch: Vec::new() }
    }
}

impl Durability for Replicated {
    fn append(&mut self, rec: &SequencedInput) -> Result<(), JournalError> {
        self.batch.push(*rec);
        self.local.append(rec)
    }

    fn commit(&mut self) -> Result<Seq, JournalError> {
        // To DR first: its round trip overlaps our fsync.
        if !self.batch.is_empty() {
            self.repl.send(std::mem::take(&mut self.batch));
        }
        self.local.commit()
    }
}

/// One group commit: appends every record `records` yields (those already
/// waiting: it must not block), then commits once.
pub fn group_commit(
    d: &mut dyn Durability,
    records: impl Iterator<Item = SequencedInput>,
) -> Result<Seq, JournalError> {
    for rec in records {
        d.append(&rec)?;
    }
    d.commit()
}
