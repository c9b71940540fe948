//! `aex engine`: the matching engine process (see `ARCHITECTURE.md`).
//!
//! Threads, each fed by a channel:
//! - ingress (tokio, one thread): the orders groups and the unicast socket;
//!   order streams, their gaps, re-requests for our streams; signals;
//! - matcher ([`matcher`]): stamps and applies inputs, no I/O;
//! - durability ([`durability`]): journal appends, one fsync per group commit;
//! - publisher ([`publisher`]): releases outputs once durable; market data,
//!   reports, heartbeats, retransmissions;
//!
//! (their bodies and channels: [`threads`]; recovery: [`recovery`])
//! - the calling thread writes `--status` every second and waits.
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
pub mod matcher;
pub mod publisher;
pub mod recovery;
pub mod standby;
pub mod stats;
pub mod threads;

use crate::app::replicate;
use crate::net::{self, GroupKind};
use crate::symbols::SymbolTable;
use crate::types::{Epoch, SymbolIndex};
use anyhow::{bail, Context as _};
use durability::LocalJournal;
use ingress::Ingress;
use matcher::Matcher;
use publisher::Publisher;
pub use recovery::{choose_epoch, open_journal, replay, Opened, Recovered};
use stats::Stats;
use std::net::TcpListener;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use threads::{durability_loop, ingress_loop, matcher_loop, publisher_loop, DrGate, IngressIo, PubEvent};

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
    /// The overlay DNS server, `IP[:PORT]`; default the first nameserver of
    /// /etc/resolv.conf
    #[arg(long, value_parser = net::parse_dns_server)]
    pub dns: Option<SocketAddr>,
    /// The overlay address to bind and join on; default the source address
    /// towards 239.192.0.1
    #[arg(long)]
    pub bind: Option<Ipv4Addr>,
    /// How long to wait for the groups' names to resolve (seconds)
    #[arg(long, default_value_t = 30)]
    pub resolve_wait: u64,
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
    #[arg(long)]
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
}

/// The engine stopped because DR fenced it: a newer primary exists (exit status 3).
#[derive(Debug, thiserror::Error)]
#[error("fenced by epoch {0}: a newer primary exists; stopped trading")]
pub struct FencedError(pub Epoch);

/// What trading starts from: a recovered journal or a promoted standby.
struct Start {
    matcher: Matcher,
    epoch: Epoch,
    writer: crate::journal::Writer,
    checkpoints: Option<checkpoint::Checkpoints>,
}

/// Checks an engine name: 1 to 8 printable ASCII characters.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.len() > 8 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("--name {name:?}: 1 to 8 printable ASCII characters wanted");
    }
    Ok(())
}

/// Runs the engine until SIGINT or SIGTERM.
pub fn run(args: Args, table: &SymbolTable) -> anyhow::Result<()> {
    let started = Instant::now();
    check_name(&args.name)?;
    let selected = net::select_symbols(table, args.only.as_deref()).map_err(anyhow::Error::msg)?;
    let symbols: Vec<SymbolIndex> = selected.iter().map(|s| s.index).collect();
    let dns = match args.dns {
        Some(d) => d,
        None => net::system_dns().context("finding the DNS server (give --dns)")?,
    };
    let bind = match args.bind {
        Some(b) => b,
        None => net::overlay_addr().context("finding the overlay address (give --bind)")?,
    };
    let wait = Duration::from_secs(args.resolve_wait);
    let orders = net::resolve_groups(dns, selected.iter().copied(), GroupKind::Orders, wait)?;
    let md = net::resolve_groups(dns, selected.iter().copied(), GroupKind::MarketData, wait)?;

    let stats = Arc::new(Stats::default());
    let md_groups = md.iter().map(|&(s, g)| (s, SocketAddr::from(SocketAddrV4::new(g, net::MD_PORT))));
    let mut publisher = Publisher::new(&args.name, md_groups, stats.clone()).context("engine name")?;
    let mut checkpoints = match &args.checkpoints {
        Some(p) => Some(
            checkpoint::Checkpoints::open(p, args.checkpoint_every)
                .with_context(|| format!("opening {}", p.display()))?,
        ),
        None => None,
    };
    let write_status = |stats: &Stats, epoch: Epoch| {
        if let Some(path) = &args.status {
            let st = stats.status(&args.name, epoch, started.elapsed().as_secs());
            if let Err(e) = stats::write_status(path, &st) {
                eprintln!("aex engine: writing {}: {e}", path.display());
            }
        }
    };

    let start = if let Some(listen) = args.standby_listen {
        let listener = TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
        eprintln!("aex engine {}: hot standby on {listen}, journal {}", args.name, args.journal.display());
        let shadow = standby::Shadow {
            name: &args.name,
            symbols: &symbols,
            stats: &stats,
            checkpoints: checkpoints.take(),
            write_status: &|| write_status(&stats, 0),
        };
        let failover_after = Duration::from_millis(args.failover_after_ms);
        let Some(p) = standby::shadow(listener, &args.journal, failover_after, &mut publisher, shadow)? else {
            write_status(&stats, 0);
            return Ok(());
        };
        fence::spawn(p.listener, p.epoch).context("the fencing responder")?;
        let matcher = Matcher::new(p.engine, p.epoch, p.last_time);
        Start { matcher, epoch: p.epoch, writer: p.writer, checkpoints: p.checkpoints }
    } else {
        let opened = open_journal(&args.journal, &args.name, &symbols)?;
        if opened.torn_tail {
            eprintln!("aex engine: {}: cut off a torn last record", args.journal.display());
        }
        let last_epoch = opened.records.last().map_or(0, |r| r.epoch);
        let epoch = choose_epoch(args.epoch, opened.records.len(), last_epoch)?;
        let rec = replay(&opened.records, &symbols, &mut publisher)?;
        stats::set(&stats.recovered, opened.records.len() as u64);
        if let Some(listen) = args.fence_listen {
            let listener = TcpListener::bind(listen).with_context(|| format!("--fence-listen {listen}"))?;
            fence::spawn(listener, epoch).context("the fencing responder")?;
        }
        Start { matcher: Matcher::new(rec.engine, epoch, rec.last_time), epoch, writer: opened.writer, checkpoints }
    };
    let epoch = start.epoch;
    let last_seq = start.matcher.engine().last_seq();
    stats::set(&stats.last_seq, last_seq);
    stats::set(&stats.durable_seq, last_seq);
    let next_seq = last_seq + 1;
    let ingress = Ingress::new(symbols.iter().copied(), stats.clone());

    let mut groups: Vec<Ipv4Addr> = orders.iter().map(|&(_, g)| g).collect();
    groups.sort();
    groups.dedup();
    let group_sock = net::group_receiver(net::ORDERS_PORT, &groups, bind, true)
        .with_context(|| format!("joining {} orders groups on {bind}", groups.len()))?;
    let uni = net::unicast_socket(bind, 0, true).with_context(|| format!("binding {bind}"))?;
    let local = uni.local_addr()?;
    let pub_sock = uni.try_clone()?;
    let io = IngressIo::new(group_sock, uni).context("the ingress runtime")?;
    eprintln!(
        "aex engine {}: {} symbols, epoch {epoch}, next seq {next_seq} ({} recovered), bound {local}, dns {dns}{}",
        args.name,
        symbols.len(),
        stats.recovered.load(Ordering::Relaxed),
        args.replicate.map(|a| format!(", replicating to {a}")).unwrap_or_default()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let fatal: Arc<Mutex<Option<String>>> = Arc::default();
    let (tx_in, rx_in) = mpsc::channel();
    let (tx_rec, rx_rec) = mpsc::channel();
    let (tx_pub, rx_pub) = mpsc::channel::<PubEvent>();
    let fenced = Arc::new(AtomicU32::new(0));
    let (durability, gate): (Box<dyn durability::Durability>, _) = match args.replicate {
        None => (Box::new(LocalJournal(start.writer)), None),
        Some(dr) => {
            let id = replicate::Identity {
                name: args.name.clone(),
                epoch,
                symbols: symbols.clone(),
                journal: args.journal.clone(),
            };
            let tx = Mutex::new(tx_pub.clone());
            let notify: replicate::Notify = Arc::new(move || {
                let _ = tx.lock().unwrap_or_else(|p| p.into_inner()).send(PubEvent::DrProgress);
            });
            let r = replicate::Replicator::start_notifying(dr, id, last_seq, notify);
            let progress = r.progress().clone();
            let (stop, fatal, fenced, stats) = (stop.clone(), fatal.clone(), fenced.clone(), stats.clone());
            let on_fenced = Box::new(move |e: Epoch| {
                fenced.store(e, Ordering::SeqCst);
                stats::set(&stats.fenced_by, e.into());
                eprintln!("aex engine: DR fenced this primary: epoch {e} exists; publishing nothing more");
                threads::fail(&stop, &fatal, FencedError(e).to_string());
            });
            let d = durability::Replicated::new(LocalJournal(start.writer), r);
            (
                Box::new(d) as Box<dyn durability::Durability>,
                Some((DrGate { progress: progress.clone(), on_fenced }, progress)),
            )
        }
    };
    let (gate, progress) = match gate {
        Some((g, p)) => (Some(g), Some(p)),
        None => (None, None),
    };

    let matcher_thread = {
        let (tx_pub, stats, stop, fatal) = (tx_pub.clone(), stats.clone(), stop.clone(), fatal.clone());
        let (matcher, checkpoints) = (start.matcher, start.checkpoints);
        std::thread::Builder::new()
            .name("matcher".into())
            .spawn(move || matcher_loop(matcher, rx_in, (tx_rec, tx_pub), checkpoints, &stats, &stop, &fatal))?
    };
    let durability_thread = {
        let (tx_pub, stats, stop, fatal) = (tx_pub.clone(), stats.clone(), stop.clone(), fatal.clone());
        let mut journal = durability;
        std::thread::Builder::new()
            .name("durability".into())
            .spawn(move || durability_loop(&mut *journal, rx_rec, tx_pub, &stats, &stop, &fatal))?
    };
    let publisher_thread = {
        let stats = stats.clone();
        std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || publisher_loop(publisher, rx_pub, pub_sock, &stats, gate))?
    };
    let ingress_thread = {
        let (stop, fatal) = (stop.clone(), fatal.clone());
        std::thread::Builder::new()
            .name("ingress".into())
            .spawn(move || ingress_loop(io, ingress, tx_in, tx_pub, &stop, &fatal))?
    };

    let dr_stats = |stats: &Stats| {
        if let Some(p) = &progress {
            stats::set(&stats.dr_durable_seq, p.durable.load(Ordering::Acquire));
            stats::set(&stats.dr_connected, p.connected.load(Ordering::Acquire).into());
        }
    };
    let mut next_status = Instant::now();
    let threads = [&ingress_thread, &matcher_thread, &durability_thread, &publisher_thread];
    // Until a signal (the ingress stops) or a failure (any thread stops):
    // then the ingress stops too and the pipeline drains behind it.
    while !threads.iter().any(|t| t.is_finished()) {
        if Instant::now() >= next_status {
            dr_stats(&stats);
            write_status(&stats, epoch);
            next_status += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for (name, t) in [("ingress", ingress_thread), ("matcher", matcher_thread), ("durability", durability_thread)] {
        if t.join().is_err() {
            bail!("the {name} thread panicked");
        }
    }
    if publisher_thread.join().is_err() {
        bail!("the publisher thread panicked");
    }
    dr_stats(&stats);
    write_status(&stats, epoch);
    let fenced_by = fenced.load(Ordering::SeqCst);
    if fenced_by != 0 {
        return Err(FencedError(fenced_by).into());
    }
    if let Some(e) = fatal.lock().unwrap_or_else(|p| p.into_inner()).take() {
        bail!("{e}");
    }
    eprintln!(
        "aex engine {}: stopped at seq {} (durable {})",
        args.name,
        stats.last_seq.load(Ordering::Relaxed),
        stats.durable_seq.load(Ordering::Relaxed)
    );
    Ok(())
}

#[cfg(test)]
mod dr_tests;
#[cfg(test)]
mod tests;
