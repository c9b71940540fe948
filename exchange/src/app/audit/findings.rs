//! What the audit found ([`Findings`]), printed as the report (text) or as
//! one JSON object (`--json`).

use crate::types::Epoch;
use std::fmt;

/// How many error strings the findings keep.
pub const MAX_ERRORS: usize = 20;

/// What the audit found. `ok` is false when anything failed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Findings {
    /// Every check passed.
    pub ok: bool,
    /// Journal records replayed.
    pub inputs: u64,
    /// The epochs of the journal, in order of appearance.
    pub epochs: Vec<Epoch>,
    /// Executions.
    pub trades: u64,
    /// Orders accepted (repeats answered with the original ack not counted).
    pub orders_accepted: u64,
    /// Market-data messages of the record compared with the replay.
    pub md_messages_checked: u64,
    /// Messages missing from the record (holes: gaps the recorder never recovered).
    pub md_gaps: u64,
    /// Record messages of symbols the journal does not trade (skipped).
    pub md_other_symbols: u64,
    /// Acknowledgement lines checked.
    pub acks_checked: u64,
    /// Acknowledged orders the journal does not have (lost: the recovery point objective).
    pub rpo_orders: u64,
    /// Epoch changes in the journal (failovers or restarts).
    pub failovers: u64,
    /// With `--failed-at`: milliseconds from the failure to the sequencing
    /// time of the first input of the first later epoch (trading resumed).
    pub rto_ms: Option<u64>,
    /// Checkpoint lines compared with the replay (`--checkpoints`).
    pub checkpoints_checked: u64,
    /// Checkpoint lines of an engine's un-replicated tail (another epoch
    /// than the journal's record at that seq, or past its end): not compared.
    pub checkpoints_superseded: u64,
    /// Checkpoint lines whose digest differs from the replay's or another
    /// file's at the same sequence number (0 expected).
    pub checkpoint_mismatches: u64,
    /// Match ids seen more than once (0 expected).
    pub duplicate_executions: u64,
    /// How many errors there were in all.
    pub error_count: u64,
    /// The first [`MAX_ERRORS`] errors.
    pub errors: Vec<String>,
    /// Whether the journal had a torn tail (ignored; not an error).
    pub torn_tail: bool,
    /// Whether the record had a torn tail (ignored; not an error).
    pub record_torn_tail: bool,
}

impl Findings {
    pub(super) fn error(&mut self, e: impl Into<String>) {
        self.error_count += 1;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(e.into());
        }
    }
}

impl fmt::Display for Findings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "audit: {}", if self.ok { "OK" } else { "FAILED" })?;
        writeln!(
            f,
            "  journal: {} inputs, epochs {:?}{}",
            self.inputs,
            self.epochs,
            if self.torn_tail { " (torn tail ignored)" } else { "" }
        )?;
        writeln!(
            f,
            "  orders accepted: {}, trades: {}, duplicate executions: {}",
            self.orders_accepted, self.trades, self.duplicate_executions
        )?;
        writeln!(
            f,
            "  market data: {} messages checked, {} missing (unrecovered gaps){}{}",
            self.md_messages_checked,
            self.md_gaps,
            if self.md_other_symbols > 0 {
                format!(", {} of other symbols skipped", self.md_other_symbols)
            } else {
                String::new()
            },
            if self.record_torn_tail { " (torn tail ignored)" } else { "" }
        )?;
        writeln!(
            f,
            "  acks: {} checked, {} acknowledged orders lost (rpo_orders)",
            self.acks_checked, self.rpo_orders
        )?;
        writeln!(
            f,
            "  failovers: {}, rto: {}, checkpoints: {} checked, {} mismatched, {} superseded",
            self.failovers,
            self.rto_ms.map_or("-".to_string(), |ms| format!("{ms} ms")),
            self.checkpoints_checked,
            self.checkpoint_mismatches,
            self.checkpoints_superseded
        )?;
        if self.error_count > 0 {
            writeln!(
                f,
                "  {} errors{}:",
                self.error_count,
                if self.error_count as usize > self.errors.len() { " (first shown)" } else { "" }
            )?;
            for e in &self.errors {
                writeln!(f, "    {e}")?;
            }
        }
        Ok(())
    }
}
