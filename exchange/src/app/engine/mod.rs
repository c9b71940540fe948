//! `aex engine`: the matching engine process (see `ARCHITECTURE.md`).
//!
//! Threads, each fed by a channel:
//! - ingress (tokio, one thread): the orders groups and the unicast socket;
//!   order streams, their gaps, re-requests for our streams; signals; and
//!   the matcher ([`matcher`], no I/O), which stamps and applies each
//!   turn's inputs on this thread (no hop between reading and matching);
//! - durability ([`durability`]): journal appends, one fsync per group commit;
//! - publisher ([`publisher`]): releases outputs once durable; market data,
//!   reports, heartbeats, retransmissions;
//!
//! (their bodies and channels: [`threads`]; recovery: [`recovery`])
//! - the calling thread writes `--status` every second and waits.
//!
//! [`run`] is a sequence of steps, one file each: `network.rs` (names,
//! DNS, address; then the sockets), `start.rs` (the start state: hot
//! standby then promotion, or journal recovery and the optional fencing
//! responder), `wiring.rs` (durability: local or replicated, the release
//! gate, what a fence does), `pipeline.rs` (the three threads started) and
//! `supervise.rs` (status, orderly stop, how it ended).
//!
//! Disaster recovery (issue 7): `--replicate` sends every record to the DR
//! journal or a hot standby ([`crate::app::replicate`], [`durability::Replicated`])
//! and releases outputs only once DR holds them too; a fence from DR stops
//! the engine (exit status 3). `--standby-listen` makes this process the hot
//! standby ([`standby`]); `--fence-listen` answers old primaries ([`fence`]);
//! `--checkpoints` writes state digests ([`checkpoint`]).
//!
//! The logic of each stage is a plain struct without sockets, so the whole
//! pipeline runs in tests without a network.

pub mod checkpoint;
pub mod durability;
pub mod fence;
pub mod ingress;
pub mod keys;
pub mod matcher;
mod network;
mod pipeline;
pub mod publisher;
pub mod recovery;
pub mod standby;
mod start;
pub mod stats;
mod supervise;
pub mod threads;
mod wiring;

use crate::app::overlay::OverlayArgs;
use crate::auth::Keyring;
use crate::symbols::SymbolTable;
use crate::types::Epoch;
use anyhow::{bail, Context as _};
use ingress::Ingress;
use keys::EngineKeys;
use publisher::Publisher;
pub use recovery::{choose_epoch, open_journal, replay};
use stats::Stats;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Instant;
use supervise::StatusFile;
use threads::PubEvent;

/// The flags of `aex engine`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Logical engine name (1 to 8 ASCII characters): the `r.NAME` report
    /// session and the journal's owner
    #[arg(long)]
    pub name: String,
    /// Symbol indices to trade (`1-50,60`); default all
    #[arg(long)]
    pub only: Option<String>,
    /// The journal: created if absent; if present, replayed first
    /// (recovery) and appended to
    #[arg(long)]
    pub journal: PathBuf,
    /// Fencing epoch; default 1 for a new journal, else the journal's last
    /// record's epoch + 1
    #[arg(long)]
    pub epoch: Option<Epoch>,
    /// Where it meets the overlay.
    #[command(flatten)]
    pub overlay: OverlayArgs,
    /// A JSON status file, rewritten every second
    #[arg(long)]
    pub status: Option<PathBuf>,
    /// Synchronous replication to the DR journal or hot standby at
    /// `ADDR:PORT`: outputs leave only once DR holds their record too; a
    /// fence from DR stops the engine (exit status 3)
    #[arg(long)]
    pub replicate: Option<SocketAddr>,
    /// Answer replication hellos of older epochs on `ADDR:PORT` with a fence
    /// (an engine recovered from the DR journal: the pilot light)
    #[arg(long)]
    pub fence_listen: Option<SocketAddr>,
    /// Be the hot standby: the DR journal on `ADDR:PORT` (`--journal`),
    /// every durable record applied in shadow; promoted when the primary is
    /// silent for `--failover-after-ms`
    #[arg(long, conflicts_with_all = ["epoch", "fence_listen", "replicate"])]
    pub standby_listen: Option<SocketAddr>,
    /// How long the primary may be silent before the standby takes over
    #[arg(long, default_value_t = 1000)]
    pub failover_after_ms: u64,
    /// Append `seq epoch digest_hex` to this file every `--checkpoint-every` inputs
    #[arg(long)]
    pub checkpoints: Option<PathBuf>,
    /// Inputs between checkpoints
    #[arg(long, default_value_t = 10_000)]
    pub checkpoint_every: u64,
    /// The key file (`aex keys`): `md`, `gw.N` for every gateway whose
    /// orders it takes, and `dr` with --replicate, --standby-listen or
    /// --fence-listen; mode 0600
    #[arg(long)]
    pub keys: PathBuf,
    /// Hold released market data up to this long to pack more messages per
    /// packet (fewer frames for the host at high rates; reports are never
    /// held); 0 sends at every group commit
    #[arg(long, default_value_t = 0)]
    pub md_batch_us: u64,
}

/// The engine stopped because DR fenced it: a newer primary exists (exit status 3).
#[derive(Debug, thiserror::Error)]
#[error("fenced by epoch {0}: a newer primary exists; stopped trading")]
pub struct FencedError(pub Epoch);

/// Checks an engine name: 1 to 8 printable ASCII characters.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.len() > 8 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("--name {name:?}: 1 to 8 printable ASCII characters wanted");
    }
    Ok(())
}

/// Runs the engine until SIGINT or SIGTERM, one step after another:
/// resolve where it stands on the overlay, reach the start state (a
/// promoted hot standby or a recovered journal), open its sockets, wire
/// durability (with DR under `--replicate`), start the three threads and
/// supervise them to the end. Nothing is bound before every name has
/// resolved, and no thread trades before the start state is reached and
/// the sockets and signal handlers are in place. A fence from DR ends it
/// with [`FencedError`] (exit status 3).
pub fn run(args: Args, table: &SymbolTable) -> anyhow::Result<()> {
    let started = Instant::now();
    check_name(&args.name)?;
    let ring = Keyring::load(&args.keys).context("--keys")?;
    if (args.replicate.is_some() || args.standby_listen.is_some() || args.fence_listen.is_some()) && ring.dr().is_err()
    {
        bail!("--keys {}: no `dr` key, which replication and fencing need", args.keys.display());
    }
    let network = network::resolve(&args, table)?;
    let keys = EngineKeys::new(&ring, &args.name, &network.symbols)
        .with_context(|| format!("--keys {}", args.keys.display()))?;
    if keys.gateway_ids().next().is_none() {
        eprintln!("aex engine {}: no gw.N key in {}: no gateway's orders will verify", args.name, args.keys.display());
    }
    let stats = Arc::new(Stats::default());
    let mut publisher =
        Publisher::new(&args.name, network.md_destinations(), stats.clone(), keys.clone()).context("engine name")?;
    publisher.batch_md(std::time::Duration::from_micros(args.md_batch_us));
    let checkpoints = open_checkpoints(&args)?;
    let status = StatusFile::new(&args, started);
    let Some(start) = start::start(&args, &ring, &network.symbols, &stats, &mut publisher, checkpoints, &status)?
    else {
        return Ok(()); // a standby stopped before it was promoted
    };
    let epoch = start.epoch;
    let last_seq = start.matcher.engine().last_seq();
    stats::set(&stats.last_seq, last_seq);
    stats::set(&stats.durable_seq, last_seq);
    let sockets = network::open_sockets(&network)?;
    publisher.set_source(sockets.local);
    let ingress = Ingress::new(network.symbols.iter().copied(), stats.clone(), keys, sockets.local);
    announce(&args, &network, &stats, epoch, last_seq + 1, sockets.local);

    let shared = wiring::Shared::new(stats);
    let (tx_pub, rx_pub) = mpsc::channel::<PubEvent>();
    let wired = wiring::durability(&args, &ring, epoch, &network.symbols, last_seq, start.writer, &tx_pub, &shared)?;
    let stages = pipeline::Stages {
        matcher: start.matcher,
        checkpoints: start.checkpoints,
        durability: wired.durability,
        publisher,
        gate: wired.gate,
        publisher_socket: sockets.publisher,
        ingress,
        io: sockets.io,
    };
    let threads = pipeline::spawn(stages, tx_pub, rx_pub, &shared)?;
    supervise::supervise(threads, &shared, wired.progress.as_deref(), &status, epoch)
}

/// Opens the `--checkpoints` file for appending, if any, before the start
/// state: a hot standby writes checkpoints for the records it shadows too,
/// at the same sequence points as the primary's.
fn open_checkpoints(args: &Args) -> anyhow::Result<Option<checkpoint::Checkpoints>> {
    let Some(p) = &args.checkpoints else { return Ok(None) };
    let c =
        checkpoint::Checkpoints::open(p, args.checkpoint_every).with_context(|| format!("opening {}", p.display()))?;
    Ok(Some(c))
}

/// Logs the one line that says the engine is about to trade: symbols,
/// epoch, next sequence number, records recovered, address, DNS and DR.
fn announce(args: &Args, network: &network::Network, stats: &Stats, epoch: Epoch, next_seq: u64, local: SocketAddr) {
    eprintln!(
        "aex engine {}: {} symbols, epoch {epoch}, next seq {next_seq} ({} recovered), bound {local}, dns {}{}",
        args.name,
        network.symbols.len(),
        stats.recovered.load(Ordering::Relaxed),
        network.dns,
        args.replicate.map(|a| format!(", replicating to {a}")).unwrap_or_default()
    );
}

#[cfg(test)]
mod dr_tests;
#[cfg(test)]
mod tests;
