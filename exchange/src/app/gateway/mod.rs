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
//!   ([`limits`]); the requests awaiting an answer are bounded, and a full
//!   table refuses (`GatewayBusy`); a customer that does not read is
//!   disconnected.
//! - One thread, one event loop (`io`): customer frames go straight into
//!   the core, and each loop turn ends with one write per customer with
//!   messages and one packet per orders stream with news.
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
mod io;
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
use std::time::Duration;

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
    let ctx = conn::ConnCtx { gw: args.id, logins, stats: core.conn_stats() };
    io::serve(&args, ctx, udp, core)
}

fn write_status(path: Option<&Path>, core: &core::Core) {
    let Some(path) = path else { return };
    let v = serde_json::to_value(core.status()).unwrap_or_default();
    if let Err(e) = write_json_atomic(path, &v) {
        eprintln!("aex gateway: writing {}: {e}", path.display());
    }
}
