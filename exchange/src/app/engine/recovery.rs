//! Recovery: the journal is created or opened, and what it holds is
//! replayed through a fresh engine and onto the publisher's streams.

use super::publisher::Publisher;
use crate::events::{Outputs, SequencedInput};
use crate::journal::Writer;
use crate::matching::{Engine, EngineConfig};
use crate::types::{Epoch, SymbolIndex, Timestamp};
use anyhow::{bail, Context as _};
use std::path::Path;

/// An opened journal: its writer and the records it already holds.
pub struct Opened {
    /// Appends after the last good record.
    pub writer: Writer,
    /// The records to replay.
    pub records: Vec<SequencedInput>,
    /// Whether a torn tail was cut off.
    pub torn_tail: bool,
}

/// Creates the journal or opens it for recovery; its name and symbols must
/// be `name` and `symbols`.
pub fn open_journal(path: &Path, name: &str, symbols: &[SymbolIndex]) -> anyhow::Result<Opened> {
    if !path.exists() {
        let writer = Writer::create(path, name, symbols).with_context(|| format!("creating {}", path.display()))?;
        return Ok(Opened { writer, records: Vec::new(), torn_tail: false });
    }
    let (writer, contents) = Writer::open(path, name).with_context(|| format!("opening {}", path.display()))?;
    if contents.symbols != symbols {
        bail!(
            "{}: the journal trades {} symbols ({:?}..), this engine was asked for {} ({:?}..): use the same --only",
            path.display(),
            contents.symbols.len(),
            contents.symbols.first(),
            symbols.len(),
            symbols.first()
        );
    }
    Ok(Opened { writer, records: contents.records, torn_tail: contents.torn_tail })
}

/// What recovery leaves.
pub struct Recovered {
    /// The engine after the last record.
    pub engine: Engine,
    /// The last record's time (0 when none).
    pub last_time: Timestamp,
}

/// Replays `records` through a fresh engine trading `symbols`, putting
/// their outputs on `publisher`'s streams (so numbering continues and
/// re-requests for them can be answered).
pub fn replay(
    records: &[SequencedInput],
    symbols: &[SymbolIndex],
    publisher: &mut Publisher,
) -> anyhow::Result<Recovered> {
    let mut engine = Engine::new(symbols.iter().copied(), EngineConfig::default());
    let mut out = Outputs::default();
    let mut last_time = 0;
    for rec in records {
        engine.apply_into(rec, &mut out).with_context(|| format!("replaying record {}", rec.seq))?;
        publisher.replay(&out);
        last_time = rec.time;
    }
    publisher.recovered();
    Ok(Recovered { engine, last_time })
}

/// The epoch to run in: `--epoch`, else 1 for a new journal and the last
/// record's + 1 for a recovered one. Never below the journal's.
pub fn choose_epoch(flag: Option<Epoch>, records: usize, last_epoch: Epoch) -> anyhow::Result<Epoch> {
    let epoch = match flag {
        Some(e) => e,
        None if records == 0 => 1,
        None => last_epoch.checked_add(1).context("the journal's epoch is at its maximum")?,
    };
    if epoch < last_epoch {
        bail!("--epoch {epoch} is below the journal's last epoch {last_epoch}");
    }
    Ok(epoch)
}
