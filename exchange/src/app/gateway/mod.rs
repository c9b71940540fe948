//! `aex gateway`: TCP order entry (`wire::oe`) for a broker/dealer's
//! customers, one orders stream per symbol to the engines, reports back.
//!
//! - Customers log in as `bBBBcCCC` with broker/dealer BBB's password
//!   (`--logins`: a salted hash per broker/dealer, [`login`]); their
//!   engine session is `id << 24 | BBB << 12 | CCC`. A second login of a
//!   session that is connected **replaces** the old connection (which is
//!   closed), so a customer that lost its connection can come back at once;
//!   only its own broker/dealer's password can do that.
//! - Connections are capped in all and per source address, and a source
//!   whose logins fail too often is refused unchecked for a minute
//!   ([`limits`]); the queue to the core and the requests awaiting an
//!   answer are bounded, and a full one refuses (`GatewayBusy`).
//! - Orders go into the symbol's stream `gNNN.SSS` to its orders group
//!   (found by DNS) on port 7701, from the one unicast socket; packets are
//!   flushed every event-loop turn. Requests unanswered after
//!   `--resend-after-ms` are sent again (same bytes, a new message).
//! - Reports (`r.NAME` streams) come back on the same socket; gaps are
//!   re-requested from the packets' source; reports from an epoch lower
//!   than one seen on that stream are dropped (fencing).
//! - Every datagram is sealed under its stream's key, derived from this
//!   gateway's `gw.N` key (`--keys`); one that does not verify, or is stale,
//!   is dropped and counted (`crate::auth`).
//! - `--acks FILE`: `session client_id order_id seq epoch` per first
//!   acknowledgement; `--status FILE`: JSON counters every second.

mod conn;
mod core;
pub mod limits;
pub mod login;
mod route;

pub use login::{pad_password, user_name};

use crate::app::acks_file::AckLog;
use crate::app::overlay::OverlayArgs;
use crate::auth::Keyring;
use crate::net;
use crate::symbols::SymbolTable;
use crate::wire::mold::Session;
use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, UdpSocket};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// Flags of `aex gateway`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// This gateway's id (1..=255): the top byte of its sessions
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=255))]
    pub id: u8,
    /// TCP address to accept customers on
    #[arg(long)]
    pub listen: SocketAddr,
    /// Who may log in: `bBBB SALT HASH` a line, a salted hash of each
    /// broker/dealer's password (`aex logins` writes it); mode 0600
    #[arg(long)]
    pub logins: PathBuf,
    /// The key file with this gateway's key, `gw.ID` (`aex keys` writes
    /// it); mode 0600
    #[arg(long)]
    pub keys: PathBuf,
    /// Customer connections at once, in all
    #[arg(long, default_value_t = 20_000)]
    pub max_connections: usize,
    /// Customer connections at once from one source address
    #[arg(long, default_value_t = 10_000)]
    pub max_connections_per_source: usize,
    /// Failed logins a source address may have in a minute; beyond, its
    /// logins are refused unchecked until the minute is over
    #[arg(long, default_value_t = 10)]
    pub max_login_failures: u32,
    /// Log of first acknowledgements (`session client_id order_id seq epoch`), appended
    #[arg(long)]
    pub acks: Option<PathBuf>,
    /// Send a request again when not answered within this many milliseconds
    #[arg(long, default_value_t = 1000)]
    pub resend_after_ms: u64,
    /// Where it meets the overlay.
    #[command(flatten)]
    pub overlay: OverlayArgs,
    /// JSON status file, rewritten every second
    #[arg(long)]
    pub status: Option<PathBuf>,
    /// Where the gateway keeps how far it has read each engine's report
    /// stream (rewritten every second and at exit); a restart resumes there
    /// instead of asking the engine for the whole day again
    #[arg(long)]
    pub state: Option<PathBuf>,
}

/// Reads a `--state` file: report stream → next message.
fn read_state(path: &Path) -> anyhow::Result<Vec<(Session, u64)>> {
    let v: serde_json::Value = match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| format!("{}: not JSON", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut out = Vec::new();
    for (name, next) in v["report_streams"].as_object().into_iter().flatten() {
        let session = Session::new(name).with_context(|| format!("{}: bad stream name {name:?}", path.display()))?;
        let next = next.as_u64().with_context(|| format!("{}: bad position for {name}", path.display()))?;
        out.push((session, next));
    }
    Ok(out)
}

fn write_state(path: Option<&Path>, core: &core::Core) {
    let Some(path) = path else { return };
    let streams: serde_json::Map<String, serde_json::Value> =
        core.report_positions().into_iter().map(|(s, n)| (s.to_string().trim().to_string(), n.into())).collect();
    if let Err(e) = write_json_atomic(path, &serde_json::json!({ "report_streams": streams })) {
        eprintln!("aex gateway: writing {}: {e}", path.display());
    }
}

/// Writes `value` as JSON to `path` atomically (a temporary file renamed over it).
pub fn write_json_atomic(path: &Path, value: &serde_json::Value) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

/// Raises the open-files limit to its hard limit (10,000 sessions need it,
/// on both ends).
pub fn raise_nofile() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                eprintln!("aex: cannot raise RLIMIT_NOFILE: {}", std::io::Error::last_os_error());
            }
        }
    }
}

/// Runs the gateway until SIGINT or SIGTERM.
pub fn run(args: Args, table: &SymbolTable) -> anyhow::Result<()> {
    let logins = login::Logins::load(&args.logins).context("--logins")?;
    if logins.is_empty() {
        bail!("--logins {}: no broker/dealer may log in", args.logins.display());
    }
    let keys = Keyring::load(&args.keys).context("--keys")?;
    let root = keys
        .gateway(args.id)
        .with_context(|| format!("--keys {}: no key `gw.{}` for this gateway", args.keys.display(), args.id))?
        .clone();
    let (dns, bind) = (args.overlay.dns()?, args.overlay.bind()?);
    let groups = net::resolve_groups(dns, table.iter(), net::GroupKind::Orders, args.overlay.wait())
        .context("resolving the orders groups")?;
    let acks = match &args.acks {
        Some(p) => Some(AckLog::open(p).with_context(|| format!("opening {}", p.display()))?),
        None => None,
    };
    raise_nofile();
    let udp = net::unicast_socket(bind, 0, true).with_context(|| format!("unicast socket on {bind}"))?;
    // One thread: the core is single-threaded anyway, and on a busy host a
    // multi-threaded runtime spent its time waking tasks across cores.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = udp.local_addr()?;
    let resend_after = Duration::from_millis(args.resend_after_ms.max(1));
    let mut core = core::Core::new(args.id, table, &groups, resend_after, acks, root, local);
    if let Some(p) = &args.state {
        let positions = read_state(p)?;
        if !positions.is_empty() {
            eprintln!("aex gateway {}: resuming report streams at {positions:?}", args.id);
        }
        core.resume_reports(positions);
    }
    rt.block_on(serve(args, logins, udp, core))
}

async fn serve(
    args: Args,
    logins: login::Logins,
    udp: std::net::UdpSocket,
    mut core: core::Core,
) -> anyhow::Result<()> {
    let udp = UdpSocket::from_std(udp)?;
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    eprintln!("aex gateway {}: customers on {}, orders from {}", args.id, listener.local_addr()?, udp.local_addr()?);
    let (ev_tx, mut ev_rx) = mpsc::channel(conn::EVENT_QUEUE);
    let stats = core.conn_stats();
    let ctx = Arc::new(conn::ConnCtx { gw: args.id, logins, stats: stats.clone() });
    let admission = Arc::new(Mutex::new(limits::Admission::new(limits::Limits {
        max_connections: args.max_connections,
        max_per_source: args.max_connections_per_source,
        max_failures: args.max_login_failures,
        failure_window: Duration::from_secs(60),
    })));
    {
        let ev_tx = ev_tx.clone();
        tokio::spawn(async move {
            let mut next_conn = 0u64;
            loop {
                match listener.accept().await {
                    Ok((s, peer)) => match limits::Ticket::take(&admission, peer.ip()) {
                        Ok(ticket) => {
                            next_conn += 1;
                            tokio::spawn(conn::serve(s, next_conn, ticket, ctx.clone(), ev_tx.clone()));
                        }
                        // Closed at once (dropping the stream): counted.
                        Err(_) => {
                            stats.connections_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    },
                    Err(e) => {
                        // Out of descriptors and the like: wait, do not spin.
                        eprintln!("aex gateway: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    drop(ev_tx);
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_hb = Instant::now();
    let mut last_status = Instant::now();
    let mut last_acks = Instant::now();
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            r = udp.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    core.on_datagram(&buf[..n], from);
                }
                for _ in 0..1024 {
                    match udp.try_recv_from(&mut buf) {
                        Ok((n, from)) => core.on_datagram(&buf[..n], from),
                        Err(_) => break,
                    }
                }
            }
            ev = ev_rx.recv() => {
                if let Some(ev) = ev {
                    core.on_event(ev);
                }
                for _ in 0..4096 {
                    match ev_rx.try_recv() {
                        Ok(ev) => core.on_event(ev),
                        Err(_) => break,
                    }
                }
            }
            _ = tick.tick() => {
                core.on_tick();
                if last_hb.elapsed() >= Duration::from_secs(1) {
                    last_hb = Instant::now();
                    core.heartbeats();
                }
                if last_acks.elapsed() >= Duration::from_millis(100) {
                    last_acks = Instant::now();
                    core.flush_acks();
                }
                if last_status.elapsed() >= Duration::from_secs(1) {
                    last_status = Instant::now();
                    write_status(args.status.as_deref(), &core);
                    write_state(args.state.as_deref(), &core);
                }
            }
        }
        core.flush();
        for (d, to) in core.out.drain(..) {
            if let Err(e) = udp.send_to(&d, to).await {
                eprintln!("aex gateway: sending to {to}: {e}");
            }
        }
    }
    core.flush_acks();
    write_status(args.status.as_deref(), &core);
    write_state(args.state.as_deref(), &core);
    eprintln!("aex gateway {}: stopped; {}", args.id, serde_json::to_string(&core.status())?);
    Ok(())
}

fn write_status(path: Option<&Path>, core: &core::Core) {
    let Some(path) = path else { return };
    let v = serde_json::to_value(core.status()).unwrap_or_default();
    if let Err(e) = write_json_atomic(path, &v) {
        eprintln!("aex gateway: writing {}: {e}", path.display());
    }
}
