//! The hot standby (`--standby-listen`): at the DR site, it is the DR
//! journal (durable records acknowledged to the primary, older epochs
//! fenced) and applies every durable record to its own engine and
//! publisher in shadow mode: streams numbered and history kept, nothing
//! sent. When the primary falls silent (`--failover-after-ms`) it is
//! promoted: epoch = the fence + 1, the listener stays as the fencing
//! responder, and the caller starts trading at the next sequence number,
//! with everything applied marked as already sent (no re-blast: consumers
//! and gateways re-request what they missed from the heartbeats).

use super::checkpoint::Checkpoints;
use super::publisher::Publisher;
use super::stats::{self, Stats};
use crate::app::dr_journal::{serve, DrJournal, ServeOpts, Served};
use crate::events::{Outputs, SequencedInput};
use crate::journal::{self, Writer};
use crate::matching::{Engine, EngineConfig};
use crate::types::{Epoch, SymbolIndex, Timestamp};
use anyhow::{bail, Context as _};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// A standby's state, apart from the DR journal.
pub struct Shadow<'a> {
    /// The engine name (the journal's owner).
    pub name: &'a str,
    /// Our symbols (a primary trading others is refused).
    pub symbols: &'a [SymbolIndex],
    /// Counters (`last_seq`: the last record applied).
    pub stats: &'a Stats,
    /// Checkpoints at the same sequence points as the primary's.
    pub checkpoints: Option<Checkpoints>,
    /// Writes the status file (called every second).
    pub write_status: &'a (dyn Fn() + Sync),
    /// The `dr` key the primary's channel is authenticated with.
    pub dr_key: crate::auth::RootKey,
}

/// A promoted standby, ready to trade.
pub struct Promoted {
    /// The engine after the last durable record.
    pub engine: Engine,
    /// The last record's time.
    pub last_time: Timestamp,
    /// The new epoch (the fence + 1).
    pub epoch: Epoch,
    /// The journal, to append to.
    pub writer: Writer,
    /// The replication listener, now the fencing responder's.
    pub listener: TcpListener,
    /// The checkpoints writer, to go on with.
    pub checkpoints: Option<Checkpoints>,
}

/// Shadows the primary until it is lost (`Some`: promote) or a signal
/// (`None`). `publisher` ends with every applied record on its streams,
/// marked as sent.
pub fn shadow(
    listener: TcpListener,
    path: &Path,
    failover_after: Duration,
    publisher: &mut Publisher,
    mut sh: Shadow<'_>,
) -> anyhow::Result<Option<Promoted>> {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let mut engine = Engine::new(sh.symbols.iter().copied(), EngineConfig::default());
    let mut last_time = 0;
    let mut dr = DrJournal::open(path)?;
    if path.exists() {
        let c = journal::read(path).with_context(|| format!("reading {}", path.display()))?;
        if c.name != sh.name || c.symbols != sh.symbols {
            bail!("{}: the journal of {} ({} symbols), not ours", path.display(), c.name, c.symbols.len());
        }
        apply(&c.records, &mut engine, publisher, &mut last_time, &mut sh)?;
    }
    dr.expect_symbols(sh.symbols);
    dr.keep_durable();
    stats::set(&sh.stats.standby, 1);
    let (tx, rx) = mpsc::channel::<Vec<SequencedInput>>();
    let opts = ServeOpts { failover_after, status: None, on_durable: Some(tx), key: sh.dr_key.clone() };
    let done = AtomicBool::new(false);
    let write_status = sh.write_status;
    let served = std::thread::scope(|sc| {
        let applier = sc.spawn(|| -> anyhow::Result<()> {
            for recs in rx {
                apply(&recs, &mut engine, publisher, &mut last_time, &mut sh)?;
            }
            Ok(())
        });
        let status = sc.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                write_status();
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let served = serve(&listener, &mut dr, &opts, &STOP);
        drop(opts);
        let applied = applier.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the applier panicked")));
        done.store(true, Ordering::Relaxed);
        let _ = status.join();
        applied.and(served)
    })?;
    publisher.recovered();
    stats::set(&sh.stats.standby, 0);
    if served == Served::Stopped {
        return Ok(None);
    }
    let epoch = dr.fence().checked_add(1).context("the fence epoch is at its maximum")?;
    let records = dr.have();
    let writer = dr.into_writer()?.context("promoted without a journal")?;
    eprintln!("aex engine {}: promoted: epoch {epoch}, {records} records applied", sh.name);
    Ok(Some(Promoted { engine, last_time, epoch, writer, listener, checkpoints: sh.checkpoints }))
}

/// Applies durable records to the shadow engine and its publisher.
fn apply(
    recs: &[SequencedInput],
    engine: &mut Engine,
    publisher: &mut Publisher,
    last_time: &mut Timestamp,
    sh: &mut Shadow<'_>,
) -> anyhow::Result<()> {
    let mut out = Outputs::default();
    for rec in recs {
        engine.apply_into(rec, &mut out).with_context(|| format!("applying record {}", rec.seq))?;
        publisher.replay(&out);
        *last_time = rec.time;
        if let Some(c) = sh.checkpoints.as_mut() {
            if let Err(e) = c.after(engine, rec.seq, rec.epoch) {
                eprintln!("aex engine: writing a checkpoint: {e}; no more checkpoints");
                sh.checkpoints = None;
            }
        }
    }
    if let Some(last) = recs.last() {
        stats::set(&sh.stats.last_seq, last.seq);
        stats::set(&sh.stats.durable_seq, last.seq);
        stats::add(&sh.stats.recovered, recs.len() as u64);
    }
    Ok(())
}
