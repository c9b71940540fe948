//! `aex record`: every selected symbol's market data from message 1, gaps
//! re-requested, appended to a file (see [`mod@format`]) in stream order per
//! symbol, flushed every 100 ms and on exit (SIGINT/SIGTERM end it with
//! status 0). `--status FILE` gets a JSON summary every second.

pub mod format;

use super::mdfeed::{self, Feed, FeedArgs};
use crate::stream::Start;
use crate::symbols::SymbolTable;
use anyhow::Context;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Flags of `aex record`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The record file to create (it must not exist)
    #[arg(long)]
    pub out: PathBuf,
    /// A JSON status file, rewritten every second
    #[arg(long)]
    pub status: Option<PathBuf>,
    /// Where the market data comes from.
    #[command(flatten)]
    pub feed: FeedArgs,
}

const FLUSH_EVERY: Duration = Duration::from_millis(100);
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Runs the recorder until SIGINT or SIGTERM.
pub fn run(args: Args, table: &SymbolTable) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(record(args, table))
}

async fn record(args: Args, table: &SymbolTable) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    file.write_all(&format::header())?;
    let mut feed = Feed::open(&args.feed, table, Start::AtOne)?;
    eprintln!("aex record: {} market-data streams -> {}", feed.symbols().count(), args.out.display());
    let shutdown = mdfeed::shutdown_signal();
    tokio::pin!(shutdown);
    let mut pending: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut delivered = Vec::new();
    let mut last_flush = Instant::now();
    let mut last_status = Instant::now();
    loop {
        tokio::select! {
            r = &mut shutdown => { r?; break; }
            r = feed.step(&mut delivered) => r?,
        }
        for d in delivered.drain(..) {
            format::encode_entry(d.symbol, d.seq, &d.bytes, &mut pending);
        }
        if last_flush.elapsed() >= FLUSH_EVERY {
            flush(&mut file, &mut pending, &args.out)?;
            last_flush = Instant::now();
        }
        if last_status.elapsed() >= STATUS_EVERY {
            write_status(args.status.as_deref(), &feed);
            last_status = Instant::now();
        }
    }
    flush(&mut file, &mut pending, &args.out)?;
    file.sync_all()?;
    write_status(args.status.as_deref(), &feed);
    let s = feed.stats();
    eprintln!(
        "aex record: {} messages, {} re-requests, {} messages unrecovered, {} stale-epoch dropped, {} malformed, \
         {} unauthenticated, {} stale",
        s.messages,
        s.gaps_requested,
        s.gaps_unrecovered,
        s.stale_epoch_dropped,
        s.dropped_malformed,
        s.dropped_unauthenticated,
        s.dropped_stale
    );
    Ok(())
}

fn flush(file: &mut std::fs::File, pending: &mut Vec<u8>, path: &Path) -> anyhow::Result<()> {
    if !pending.is_empty() {
        file.write_all(pending).with_context(|| format!("writing {}", path.display()))?;
        pending.clear();
    }
    Ok(())
}

fn write_status(path: Option<&Path>, feed: &Feed) {
    let Some(path) = path else { return };
    let s = feed.stats();
    let next: serde_json::Map<String, serde_json::Value> =
        feed.next_seqs().map(|(sym, n)| (sym.to_string(), serde_json::json!(n))).collect();
    let v = serde_json::json!({
        "messages": s.messages,
        "datagrams": s.datagrams,
        "gaps_requested": s.gaps_requested,
        "gaps_unrecovered": s.gaps_unrecovered,
        "messages_over_limit": s.messages_over_limit,
        "stale_epoch_dropped": s.stale_epoch_dropped,
        "dropped_malformed": s.dropped_malformed,
        "dropped_unauthenticated": s.dropped_unauthenticated,
        "dropped_stale": s.dropped_stale,
        "epoch": s.epoch,
        "next_seq": next,
    });
    if let Err(e) = mdfeed::write_atomic(path, &v.to_string()) {
        eprintln!("aex record: writing {}: {e}", path.display());
    }
}
