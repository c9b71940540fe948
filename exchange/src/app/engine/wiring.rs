//! Durability wiring: where the durability thread makes records safe (the
//! local journal, or the local journal and DR with `--replicate`) and,
//! with DR, the publisher's release gate and what a fence does. Also the
//! flags every thread shares to stop the process.

use super::durability::{self, Durability, LocalJournal};
use super::stats::{self, Stats};
use super::threads::{self, DrGate, PubEvent};
use super::{Args, FencedError};
use crate::app::replicate::{self, Progress};
use crate::journal::Writer;
use crate::types::{Epoch, Seq, SymbolIndex};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};

/// What the threads share: the counters, and how to stop the process and
/// say why.
pub(super) struct Shared {
    /// Counters every stage bumps (and the status file reports).
    pub stats: Arc<Stats>,
    /// Set to ask every thread to stop (the ingress polls it; the others
    /// stop when their input channel closes behind it).
    pub stop: Arc<AtomicBool>,
    /// The first fatal error ([`threads::fail`]).
    pub fatal: Arc<Mutex<Option<String>>>,
    /// Non-zero: the epoch that fenced this primary (exit status 3).
    pub fenced: Arc<AtomicU32>,
}

impl Shared {
    /// Nothing stopped, failed or fenced yet.
    pub fn new(stats: Arc<Stats>) -> Shared {
        Shared { stats, stop: Arc::default(), fatal: Arc::default(), fenced: Arc::default() }
    }
}

/// The durability stage and, with `--replicate`, the release gate.
pub(super) struct Wiring {
    /// What the durability thread commits to.
    pub durability: Box<dyn Durability>,
    /// The publisher's gate: release only what DR holds too (`--replicate`).
    pub gate: Option<DrGate>,
    /// DR's progress, for the status file (`--replicate`).
    pub progress: Option<Arc<Progress>>,
}

/// Wires durability. Without `--replicate`: the local journal, no gate.
/// With it: the replicator is started now (hello at `epoch`, from after
/// `last_seq`) and wakes the publisher with [`PubEvent::DrProgress`]
/// whenever DR's progress changes; the publisher releases outputs only up
/// to DR's durable mark too; a fence from DR records the fencing epoch in
/// `shared.fenced` and `stats.fenced_by`, says so, and stops every thread
/// with a [`FencedError`]. The clone of `tx_pub` made here lives in the
/// replicator, which the durability stage owns and ends with it: the
/// publisher's channel still closes once the other stages are gone.
#[allow(clippy::too_many_arguments)]
pub(super) fn durability(
    args: &Args,
    ring: &crate::auth::Keyring,
    epoch: Epoch,
    symbols: &[SymbolIndex],
    last_seq: Seq,
    writer: Writer,
    tx_pub: &mpsc::Sender<PubEvent>,
    shared: &Shared,
) -> anyhow::Result<Wiring> {
    let Some(dr) = args.replicate else {
        return Ok(Wiring { durability: Box::new(LocalJournal(writer)), gate: None, progress: None });
    };
    let id = replicate::Identity {
        name: args.name.clone(),
        epoch,
        symbols: symbols.to_vec(),
        journal: args.journal.clone(),
        key: ring.dr()?.clone(),
    };
    let tx = Mutex::new(tx_pub.clone());
    let notify: replicate::Notify = Arc::new(move || {
        let _ = tx.lock().unwrap_or_else(|p| p.into_inner()).send(PubEvent::DrProgress);
    });
    let r = replicate::Replicator::start(dr, id, last_seq, notify);
    let progress = r.progress().clone();
    let (stop, fatal, fenced, stats) =
        (shared.stop.clone(), shared.fatal.clone(), shared.fenced.clone(), shared.stats.clone());
    let on_fenced = Box::new(move |e: Epoch| {
        fenced.store(e, Ordering::SeqCst);
        stats::set(&stats.fenced_by, e.into());
        eprintln!("aex engine: DR fenced this primary: epoch {e} exists; publishing nothing more");
        threads::fail(&stop, &fatal, FencedError(e).to_string());
    });
    let d = durability::Replicated::new(LocalJournal(writer), r);
    Ok(Wiring {
        durability: Box::new(d),
        gate: Some(DrGate { progress: progress.clone(), on_fenced }),
        progress: Some(progress),
    })
}
