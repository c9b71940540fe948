//! The start state: what trading begins from. Either this process is the
//! hot standby (`--standby-listen`), which shadows the primary and trades
//! only once promoted, or it recovers its journal (created when absent),
//! optionally answering old primaries with a fence (`--fence-listen`: the
//! pilot light).

use super::checkpoint::Checkpoints;
use super::matcher::Matcher;
use super::publisher::Publisher;
use super::stats::{self, Stats};
use super::supervise::StatusFile;
use super::{choose_epoch, fence, open_journal, replay, standby, Args};
use crate::auth::Keyring;
use crate::journal::Writer;
use crate::types::{Epoch, SymbolIndex};
use anyhow::Context as _;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// What trading starts from: a recovered journal or a promoted standby.
pub(super) struct Start {
    /// The engine after the last record, stamping from the next sequence
    /// number in `epoch`.
    pub matcher: Matcher,
    /// The epoch to trade in.
    pub epoch: Epoch,
    /// The journal, positioned after its last good record.
    pub writer: Writer,
    /// The checkpoints writer (`--checkpoints`), to go on with.
    pub checkpoints: Option<Checkpoints>,
}

/// Reaches the start state. On return the publisher's streams hold every
/// record's outputs, marked as already sent (no re-blast), so numbering
/// continues and re-requests for history can be answered; `stats` count
/// what was recovered or applied. `None`: a standby stopped by a signal
/// before it was promoted (its status written, epoch 0): nothing to trade.
pub(super) fn start(
    args: &Args,
    ring: &Keyring,
    symbols: &[SymbolIndex],
    stats: &Stats,
    publisher: &mut Publisher,
    checkpoints: Option<Checkpoints>,
    status: &StatusFile<'_>,
) -> anyhow::Result<Option<Start>> {
    match args.standby_listen {
        Some(listen) => standby_then_promote(listen, args, ring, symbols, stats, publisher, checkpoints, status),
        None => recover(args, ring, symbols, stats, publisher, checkpoints).map(Some),
    }
}

/// The hot standby: the DR journal on `listen`, every durable record
/// applied in shadow until the primary is silent for
/// `--failover-after-ms`; then promoted at the fence's epoch + 1, the
/// listener kept as the fencing responder (so the old primary is fenced
/// from then on). `--epoch` and `--fence-listen` do not apply.
#[allow(clippy::too_many_arguments)]
fn standby_then_promote(
    listen: SocketAddr,
    args: &Args,
    ring: &Keyring,
    symbols: &[SymbolIndex],
    stats: &Stats,
    publisher: &mut Publisher,
    checkpoints: Option<Checkpoints>,
    status: &StatusFile<'_>,
) -> anyhow::Result<Option<Start>> {
    let listener = TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
    eprintln!("aex engine {}: hot standby on {listen}, journal {}", args.name, args.journal.display());
    let dr_key = ring.dr()?.clone();
    let shadow = standby::Shadow {
        name: &args.name,
        symbols,
        stats,
        checkpoints,
        write_status: &|| status.write(stats, 0),
        dr_key: dr_key.clone(),
    };
    let failover_after = Duration::from_millis(args.failover_after_ms);
    let Some(p) = standby::shadow(listener, &args.journal, failover_after, publisher, shadow)? else {
        status.write(stats, 0);
        return Ok(None);
    };
    fence::spawn(p.listener, p.epoch, dr_key).context("the fencing responder")?;
    let matcher = Matcher::new(p.engine, p.epoch, p.last_time);
    Ok(Some(Start { matcher, epoch: p.epoch, writer: p.writer, checkpoints: p.checkpoints }))
}

/// Recovery: the journal is created, or opened (a torn last record cut off
/// and reported) and replayed; the epoch is `--epoch` or the journal's
/// next ([`choose_epoch`], never below the journal's). With
/// `--fence-listen`, a fencing responder answers older primaries from
/// before the first input is sequenced.
fn recover(
    args: &Args,
    ring: &Keyring,
    symbols: &[SymbolIndex],
    stats: &Stats,
    publisher: &mut Publisher,
    checkpoints: Option<Checkpoints>,
) -> anyhow::Result<Start> {
    let opened = open_journal(&args.journal, &args.name, symbols)?;
    if opened.torn_tail {
        eprintln!("aex engine: {}: cut off a torn last record", args.journal.display());
    }
    let last_epoch = opened.records.last().map_or(0, |r| r.epoch);
    let epoch = choose_epoch(args.epoch, opened.records.len(), last_epoch)?;
    let rec = replay(&opened.records, symbols, publisher)?;
    stats::set(&stats.recovered, opened.records.len() as u64);
    if let Some(listen) = args.fence_listen {
        let listener = TcpListener::bind(listen).with_context(|| format!("--fence-listen {listen}"))?;
        fence::spawn(listener, epoch, ring.dr()?.clone()).context("the fencing responder")?;
    }
    Ok(Start { matcher: Matcher::new(rec.engine, epoch, rec.last_time), epoch, writer: opened.writer, checkpoints })
}
