//! `aex engine`: the matching engine process (see `ARCHITECTURE.md`).
//!
//! Threads, each fed by a channel:
//! - ingress (tokio, one thread): the orders groups and the unicast socket;
//!   order streams, their gaps, re-requests for our streams; signals;
//! - matcher ([`matcher`]): stamps and applies inputs, no I/O;
//! - durability ([`durability`]): journal appends, one fsync per group commit;
//! - publisher ([`publisher`]): releases outputs once durable; market data,
//!   reports, heartbeats, retransmissions;
//! - the calling thread writes `--status` every second and waits.
//!
//! The logic of each stage is a plain struct without sockets, so the whole
//! pipeline runs in tests without a network.

pub mod durability;
pub mod ingress;
pub mod matcher;
pub mod publisher;
pub mod stats;

use crate::engine::{Engine, EngineConfig};
use crate::events::{Outputs, SequencedInput};
use crate::journal::Writer;
use crate::net::{self, GroupKind};
use crate::symbols::SymbolTable;
use crate::types::{Epoch, Seq, SymbolIndex, Timestamp};
use crate::wire::mold::ReRequest;
use anyhow::{bail, Context as _};
use durability::{Durability, LocalJournal};
use ingress::{Action, Ingress};
use matcher::{now_ns, Matcher};
use publisher::{GatewayId, Publisher};
use stats::Stats;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
}

/// Checks an engine name: 1 to 8 printable ASCII characters.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.len() > 8 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("--name {name:?}: 1 to 8 printable ASCII characters wanted");
    }
    Ok(())
}

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
    /// The last record's epoch (0 when none).
    pub last_epoch: Epoch,
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
    let (mut last_epoch, mut last_time) = (0, 0);
    for rec in records {
        engine.apply_into(rec, &mut out).with_context(|| format!("replaying record {}", rec.seq))?;
        publisher.replay(&out);
        (last_epoch, last_time) = (rec.epoch, rec.time);
    }
    publisher.recovered();
    Ok(Recovered { engine, last_epoch, last_time })
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

/// What the publisher thread is told.
#[derive(Debug)]
pub enum PubEvent {
    /// One input's outputs (waiting for durability).
    Outputs(Outputs),
    /// Records up to this one are durable.
    Durable(Seq),
    /// A gateway's address.
    Gateway(GatewayId, SocketAddr),
    /// A re-request from this address.
    ReRequest(SocketAddr, ReRequest),
}

/// Runs the engine until SIGINT or SIGTERM.
pub fn run(args: Args, table: &SymbolTable) -> anyhow::Result<()> {
    let started = Instant::now();
    check_name(&args.name)?;
    let selected = net::select_symbols(table, args.only.as_deref()).map_err(anyhow::Error::msg)?;
    let symbols: Vec<SymbolIndex> = selected.iter().map(|s| s.index).collect();
    let opened = open_journal(&args.journal, &args.name, &symbols)?;
    if opened.torn_tail {
        eprintln!("aex engine: {}: cut off a torn last record", args.journal.display());
    }
    let last_epoch = opened.records.last().map_or(0, |r| r.epoch);
    let epoch = choose_epoch(args.epoch, opened.records.len(), last_epoch)?;

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
    let rec = replay(&opened.records, &symbols, &mut publisher)?;
    stats::set(&stats.recovered, opened.records.len() as u64);
    stats::set(&stats.last_seq, rec.engine.last_seq());
    stats::set(&stats.durable_seq, rec.engine.last_seq());
    let next_seq = rec.engine.next_seq();
    let matcher = Matcher::new(rec.engine, epoch, rec.last_time);
    let ingress = Ingress::new(symbols.iter().copied(), stats.clone());

    let mut groups: Vec<Ipv4Addr> = orders.iter().map(|&(_, g)| g).collect();
    groups.sort();
    groups.dedup();
    let group_sock = net::group_receiver(net::ORDERS_PORT, &groups, bind, true)
        .with_context(|| format!("joining {} orders groups on {bind}", groups.len()))?;
    let uni = net::unicast_socket(bind, 0, true).with_context(|| format!("binding {bind}"))?;
    let local = uni.local_addr()?;
    let pub_sock = uni.try_clone()?;
    eprintln!(
        "aex engine {}: {} symbols, epoch {epoch}, next seq {next_seq} ({} recovered), bound {local}, dns {dns}",
        args.name,
        symbols.len(),
        opened.records.len()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let fatal: Arc<Mutex<Option<String>>> = Arc::default();
    let (tx_in, rx_in) = mpsc::channel();
    let (tx_rec, rx_rec) = mpsc::channel();
    let (tx_pub, rx_pub) = mpsc::channel();

    let matcher_thread = {
        let (tx_pub, stats, stop, fatal) = (tx_pub.clone(), stats.clone(), stop.clone(), fatal.clone());
        std::thread::Builder::new()
            .name("matcher".into())
            .spawn(move || matcher_loop(matcher, rx_in, tx_rec, tx_pub, &stats, &stop, &fatal))?
    };
    let durability_thread = {
        let (tx_pub, stats, stop, fatal) = (tx_pub.clone(), stats.clone(), stop.clone(), fatal.clone());
        let mut journal = LocalJournal(opened.writer);
        std::thread::Builder::new()
            .name("durability".into())
            .spawn(move || durability_loop(&mut journal, rx_rec, tx_pub, &stats, &stop, &fatal))?
    };
    let publisher_thread = {
        let stats = stats.clone();
        std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || publisher_loop(publisher, rx_pub, pub_sock, &stats))?
    };
    let ingress_thread = {
        let (stop, fatal) = (stop.clone(), fatal.clone());
        std::thread::Builder::new()
            .name("ingress".into())
            .spawn(move || ingress_loop(ingress, group_sock, uni, tx_in, tx_pub, &stop, &fatal))?
    };

    let write_status = |stats: &Stats| {
        if let Some(path) = &args.status {
            let st = stats.status(&args.name, epoch, started.elapsed().as_secs());
            if let Err(e) = stats::write_status(path, &st) {
                eprintln!("aex engine: writing {}: {e}", path.display());
            }
        }
    };
    let mut next_status = Instant::now();
    while !ingress_thread.is_finished() {
        if Instant::now() >= next_status {
            write_status(&stats);
            next_status += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for (name, t) in [("ingress", ingress_thread), ("matcher", matcher_thread), ("durability", durability_thread)] {
        if t.join().is_err() {
            bail!("the {name} thread panicked");
        }
    }
    if publisher_thread.join().is_err() {
        bail!("the publisher thread panicked");
    }
    write_status(&stats);
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

fn fail(stop: &AtomicBool, fatal: &Mutex<Option<String>>, msg: String) {
    let mut f = fatal.lock().unwrap_or_else(|p| p.into_inner());
    f.get_or_insert(msg);
    stop.store(true, Ordering::Relaxed);
}

fn matcher_loop(
    mut matcher: Matcher,
    rx: mpsc::Receiver<crate::events::Input>,
    tx_rec: mpsc::Sender<SequencedInput>,
    tx_pub: mpsc::Sender<PubEvent>,
    stats: &Stats,
    stop: &AtomicBool,
    fatal: &Mutex<Option<String>>,
) {
    for input in rx {
        match matcher.sequence(input, now_ns()) {
            Ok((rec, out)) => {
                stats::add(&stats.inputs, 1);
                stats::set(&stats.last_seq, rec.seq);
                // Outputs first: the publisher must hold them before it hears they are durable.
                let _ = tx_pub.send(PubEvent::Outputs(out));
                if tx_rec.send(rec).is_err() {
                    return;
                }
            }
            Err(e) => return fail(stop, fatal, format!("matcher: {e}")),
        }
    }
}

fn durability_loop(
    d: &mut dyn Durability,
    rx: mpsc::Receiver<SequencedInput>,
    tx_pub: mpsc::Sender<PubEvent>,
    stats: &Stats,
    stop: &AtomicBool,
    fatal: &Mutex<Option<String>>,
) {
    while let Ok(first) = rx.recv() {
        match durability::group_commit(d, &first, rx.try_iter()) {
            Ok(seq) => {
                stats::set(&stats.durable_seq, seq);
                let _ = tx_pub.send(PubEvent::Durable(seq));
            }
            Err(e) => return fail(stop, fatal, format!("journal: {e}")),
        }
    }
}

/// Sends one datagram from a non-blocking socket, waiting a little when
/// the send buffer is full; counts what could not go.
fn send(sock: &UdpSocket, to: SocketAddr, bytes: &[u8], stats: &Stats) {
    for _ in 0..50 {
        match sock.send_to(bytes, to) {
            Ok(_) => return,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_micros(100)),
            Err(_) => break,
        }
    }
    stats::add(&stats.send_errors, 1);
}

fn publisher_loop(mut p: Publisher, rx: mpsc::Receiver<PubEvent>, sock: UdpSocket, stats: &Stats) {
    let mut out = Vec::new();
    let mut next_heartbeat = Instant::now() + Duration::from_secs(1);
    loop {
        let timeout = next_heartbeat.saturating_duration_since(Instant::now());
        match rx.recv_timeout(timeout) {
            Ok(PubEvent::Outputs(o)) => {
                p.on_outputs(o);
                // Durability may have been reported already (never in practice: outputs go first).
                let d = p.durable();
                p.on_durable(d, &mut out);
            }
            Ok(PubEvent::Durable(seq)) => p.on_durable(seq, &mut out),
            Ok(PubEvent::Gateway(g, addr)) => p.on_gateway(g, addr, &mut out),
            Ok(PubEvent::ReRequest(from, req)) => p.on_rerequest(from, &req, mono_ns(), &mut out),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // Checked after every event too, so a steady flow cannot starve heartbeats.
        if Instant::now() >= next_heartbeat {
            p.heartbeats(&mut out);
            next_heartbeat = Instant::now() + Duration::from_secs(1);
        }
        for (to, bytes) in out.drain(..) {
            send(&sock, to, &bytes, stats);
        }
    }
    // Everything durable has been released and sent; say so once more.
    p.heartbeats(&mut out);
    for (to, bytes) in out.drain(..) {
        send(&sock, to, &bytes, stats);
    }
}

/// Nanoseconds on a monotonic clock (for timers: gaps, rate limits).
fn mono_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn ingress_loop(
    mut ingress: Ingress,
    group: UdpSocket,
    uni: UdpSocket,
    tx_in: mpsc::Sender<crate::events::Input>,
    tx_pub: mpsc::Sender<PubEvent>,
    stop: &AtomicBool,
    fatal: &Mutex<Option<String>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(stop, fatal, format!("ingress runtime: {e}")),
    };
    let result: std::io::Result<()> = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let group = tokio::net::UdpSocket::from_std(group)?;
        let uni = tokio::net::UdpSocket::from_std(uni)?;
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut gbuf, mut ubuf) = (vec![0u8; 65_536], vec![0u8; 65_536]);
        let mut actions = Vec::new();
        loop {
            tokio::select! {
                r = group.recv_from(&mut gbuf) => {
                    if let Ok((n, src)) = r {
                        ingress.on_datagram(src, &gbuf[..n], mono_ns(), &mut actions);
                    }
                }
                r = uni.recv_from(&mut ubuf) => {
                    if let Ok((n, src)) = r {
                        ingress.on_datagram(src, &ubuf[..n], mono_ns(), &mut actions);
                    }
                }
                _ = tick.tick() => {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    ingress.tick(mono_ns(), &mut actions);
                }
                _ = sigint.recv() => return Ok(()),
                _ = sigterm.recv() => return Ok(()),
            }
            for a in actions.drain(..) {
                match a {
                    Action::Deliver(input) => {
                        let _ = tx_in.send(input);
                    }
                    Action::Gateway(g, addr) => {
                        let _ = tx_pub.send(PubEvent::Gateway(g, addr));
                    }
                    Action::Serve(from, req) => {
                        let _ = tx_pub.send(PubEvent::ReRequest(from, req));
                    }
                    Action::Ask(to, req) => {
                        let _ = uni.try_send_to(&req.encode(), to);
                    }
                }
            }
        }
    });
    if let Err(e) = result {
        fail(stop, fatal, format!("ingress: {e}"));
    }
}

#[cfg(test)]
mod tests;
