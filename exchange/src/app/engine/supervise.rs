//! The calling thread's part once trading: the status file every second,
//! then an orderly stop and the exit's meaning.

use super::pipeline::Threads;
use super::stats::{self, Stats};
use super::wiring::Shared;
use super::{Args, FencedError};
use crate::app::replicate::Progress;
use crate::types::Epoch;
use anyhow::bail;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The `--status` file (nothing without the flag).
pub(super) struct StatusFile<'a> {
    path: Option<&'a Path>,
    name: &'a str,
    started: Instant,
}

impl<'a> StatusFile<'a> {
    /// The status of engine `--name`, its uptime counted from `started`.
    pub fn new(args: &'a Args, started: Instant) -> StatusFile<'a> {
        StatusFile { path: args.status.as_deref(), name: &args.name, started }
    }

    /// Rewrites the file with `stats` in `epoch`; a failure is reported
    /// and otherwise ignored.
    pub fn write(&self, stats: &Stats, epoch: Epoch) {
        if let Some(path) = self.path {
            let st = stats.status(self.name, epoch, self.started.elapsed().as_secs());
            if let Err(e) = stats::write_status(path, &st) {
                eprintln!("aex engine: writing {}: {e}", path.display());
            }
        }
    }
}

/// Supervises the threads until a signal (the ingress stops) or a failure
/// (any thread stops), writing the status every second (at once first,
/// with DR's progress under `--replicate`); then stops the ingress, lets
/// the pipeline drain behind it and joins the threads (ingress, matcher,
/// durability, publisher), writes the status a last time and says how it
/// ended: [`FencedError`] when DR fenced this primary (exit status 3), the
/// first fatal error, a thread's panic, or `Ok` with a last log line.
pub(super) fn supervise(
    threads: Threads,
    shared: &Shared,
    progress: Option<&Progress>,
    status: &StatusFile<'_>,
    epoch: Epoch,
) -> anyhow::Result<()> {
    let stats = &*shared.stats;
    let dr_stats = |stats: &Stats| {
        if let Some(p) = progress {
            stats::set(&stats.dr_durable_seq, p.durable());
            stats::set(&stats.dr_connected, p.connected.load(Ordering::Acquire).into());
            stats::set(&stats.dr_unauthenticated, p.unauthenticated.load(Ordering::Relaxed));
        }
    };
    wait(&threads, || {
        dr_stats(stats);
        status.write(stats, epoch);
    });
    shared.stop.store(true, Ordering::Relaxed);
    join(threads)?;
    dr_stats(stats);
    status.write(stats, epoch);
    outcome(shared, status.name)
}

/// Calls `every_second` at once and then every second until any of the
/// threads has finished (checked every 50 ms).
fn wait(threads: &Threads, mut every_second: impl FnMut()) {
    let mut next_status = Instant::now();
    let all = [&threads.ingress, &threads.durability, &threads.publisher];
    while !all.iter().any(|t| t.is_finished()) {
        if Instant::now() >= next_status {
            every_second();
            next_status += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Joins the ingress and durability threads, then the publisher
/// (which drains once they are gone); a panic is an error naming the
/// thread (and leaves the threads after it unjoined).
fn join(threads: Threads) -> anyhow::Result<()> {
    let Threads { ingress, durability, publisher } = threads;
    for (name, t) in [("ingress", ingress), ("durability", durability)] {
        if t.join().is_err() {
            bail!("the {name} thread panicked");
        }
    }
    if publisher.join().is_err() {
        bail!("the publisher thread panicked");
    }
    Ok(())
}

/// How a drained engine ended: fenced first, then the first fatal error,
/// else a clean stop (logged with the last and the durable sequence
/// numbers).
fn outcome(shared: &Shared, name: &str) -> anyhow::Result<()> {
    let fenced_by = shared.fenced.load(Ordering::SeqCst);
    if fenced_by != 0 {
        return Err(FencedError(fenced_by).into());
    }
    if let Some(e) = shared.fatal.lock().unwrap_or_else(|p| p.into_inner()).take() {
        bail!("{e}");
    }
    eprintln!(
        "aex engine {name}: stopped at seq {} (durable {})",
        shared.stats.last_seq.load(Ordering::Relaxed),
        shared.stats.durable_seq.load(Ordering::Relaxed)
    );
    Ok(())
}
