//! Durability: where sequenced records become safe before anything they
//! produced may leave the process.
//!
//! [`Durability`] is the seam: today [`LocalJournal`] (fsync of the local
//! journal); issue 7 adds a replicating implementation that wraps it and
//! returns from [`Durability::commit`] only once the DR journal has
//! acknowledged the records too (the durable sequence number is then the
//! lower of the two).

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

/// One group commit: appends `first` and every record `more` yields
/// without waiting, then commits once.
pub fn group_commit(
    d: &mut dyn Durability,
    first: &SequencedInput,
    more: impl Iterator<Item = SequencedInput>,
) -> Result<Seq, JournalError> {
    d.append(first)?;
    for rec in more {
        d.append(&rec)?;
    }
    d.commit()
}
