//! `aex audit`: replays a journal through a fresh engine and checks it, a
//! market-data record against the replay, and gateways' acknowledgements
//! against the journal (the checks are in [`check`], pure and tested
//! without files). Prints a report (`--json`: one object); exits 1 when
//! anything failed.

pub mod check;
pub mod dr;
pub mod findings;

use super::record::format;
use crate::journal;
use crate::symbols::SymbolTable;
use anyhow::Context;
use std::path::PathBuf;

/// Flags of `aex audit`.
///
/// Checks: journal sequence contiguous from 1 and epochs never decreasing;
/// after every input no book crossed; every order's shares conserved
/// (accepted = executed + cancelled + resting, never negative); every
/// execution within both orders' limits and no match twice. With
/// `--record`: per symbol, messages numbered from 1 without holes (a hole is
/// an unrecovered gap), each byte-equal to the replay's message of that
/// number (the record may be shorter than the replay), and the book rebuilt
/// from it never crossed. With `--acks` (repeatable): each acknowledged
/// order has its accepting input in the journal (missing ones count as
/// `rpo_orders`; so does one acknowledged by an engine of an older epoch
/// than the journal's record at that sequence number: that engine's record
/// was never durable here). Always: `failovers` (epoch changes); with
/// `--failed-at`, `rto_ms`; with `--checkpoints` (repeatable), every state
/// digest equal to the replay's at the same sequence number.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The engine's journal
    #[arg(long)]
    pub journal: PathBuf,
    /// A market-data record written by `aex record`
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// A gateway's acks file (`session client_id order_id seq epoch` a line); repeatable
    #[arg(long)]
    pub acks: Vec<PathBuf>,
    /// When the primary failed (Unix nanoseconds): report `rto_ms`, from
    /// then to the first input sequenced by a later epoch
    #[arg(long)]
    pub failed_at: Option<u64>,
    /// An engine's checkpoints file (`seq epoch digest_hex` a line); repeatable
    #[arg(long)]
    pub checkpoints: Vec<PathBuf>,
    /// Print one JSON object instead of the report
    #[arg(long)]
    pub json: bool,
}

/// Runs the audit; an `Err` for files that cannot be read, `Ok(false)`
/// when a check failed.
pub fn audit(args: &Args) -> anyhow::Result<check::Findings> {
    let j = journal::read(&args.journal).with_context(|| format!("reading journal {}", args.journal.display()))?;
    let record = match &args.record {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("reading record {}", p.display()))?;
            Some(format::parse(&bytes).with_context(|| format!("record {}", p.display()))?)
        }
        None => None,
    };
    let mut acks = Vec::new();
    for p in &args.acks {
        let text = std::fs::read_to_string(p).with_context(|| format!("reading acks {}", p.display()))?;
        acks.push(check::AckFile::parse(&p.display().to_string(), &text));
    }
    let mut rep = check::audit(&j.symbols, &j.records, j.torn_tail, record.as_ref(), &acks);
    rep.failovers = dr::failovers(&j.records);
    rep.rto_ms = args.failed_at.and_then(|t| dr::rto_ms(&j.records, t));
    let mut files = Vec::new();
    for p in &args.checkpoints {
        let text = std::fs::read_to_string(p).with_context(|| format!("reading checkpoints {}", p.display()))?;
        let (lines, bad_lines) = crate::app::engine::checkpoint::parse(&text);
        files.push(dr::CheckpointFile { name: p.display().to_string(), lines, bad_lines });
    }
    dr::check_checkpoints(&j.symbols, &j.records, &files, &mut rep);
    rep.ok = rep.error_count == 0;
    Ok(rep)
}

/// Runs `aex audit`: prints the report and fails when it is not ok.
pub fn run(args: Args, _table: &SymbolTable) -> anyhow::Result<()> {
    let rep = audit(&args)?;
    if args.json {
        println!("{}", serde_json::to_string(&rep)?);
    } else {
        print!("{rep}");
    }
    if !rep.ok {
        anyhow::bail!("audit failed: {} errors", rep.error_count);
    }
    Ok(())
}
