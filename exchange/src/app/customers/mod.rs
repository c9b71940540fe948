//! `aex customers`: a load generator. One TCP session per customer
//! (brokers `A..=B` × customers `1..=N`, user `bBBBcCCC`), each sending
//! `--rate` orders a second on a fixed schedule (phases spread over the
//! sessions); order-to-answer latency from the intended send time (so
//! coordinated omission is accounted for) in an HDR histogram. Each
//! session logs in with its broker/dealer's password, from `--passwords`
//! (`bBBB PASSWORD` lines, mode 0600, as `aex logins` writes them).

mod gen;
mod results;
mod session;

use gen::OrderGen;
use results::Stats;

use super::gateway::login::load_passwords;
use super::gateway::{raise_nofile, user_name, write_json_atomic};
use crate::net;
use crate::symbols::SymbolTable;
use anyhow::{bail, Context};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::time::Instant;

/// Flags of `aex customers`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The gateway, HOST:PORT (HOST an IPv4 address or a name asked of --dns)
    #[arg(long)]
    pub gateway: String,
    /// Broker/dealer numbers, `A-B` (or `A`), each 1..=999
    #[arg(long, value_parser = parse_range)]
    pub brokers: (u16, u16),
    /// Customers per broker/dealer (1..=999)
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=999))]
    pub customers: u16,
    /// Orders a second per session
    #[arg(long)]
    pub rate: f64,
    /// How long to send, in seconds
    #[arg(long)]
    pub duration: f64,
    /// The broker/dealers' passwords, `bBBB PASSWORD` a line (mode 0600)
    #[arg(long)]
    pub passwords: PathBuf,
    /// Seed of the random orders (session i uses seed + i)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The overlay DNS server, IP or IP:PORT (default: /etc/resolv.conf's first nameserver)
    #[arg(long, value_parser = net::parse_dns_server)]
    pub dns: Option<SocketAddr>,
    /// Where to write the summary as JSON
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// JSON status file, rewritten every second (the summary's fields so far)
    #[arg(long)]
    pub status: Option<PathBuf>,
    /// Where to write the latency histogram at the end (HDR V2 serialized,
    /// µs), so several generators' runs can be merged before percentiles
    #[arg(long)]
    pub histogram: Option<PathBuf>,
}

/// Parses `A-B` or `A` (1..=999, A <= B).
pub fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let p = |x: &str| x.trim().parse::<u16>().ok().filter(|n| (1..=999).contains(n));
    match (p(a), p(b)) {
        (Some(a), Some(b)) if a <= b => Ok((a, b)),
        _ => Err(format!("{s}: want A-B with 1 <= A <= B <= 999")),
    }
}

fn resolve_gateway(spec: &str, dns: Option<SocketAddr>) -> anyhow::Result<SocketAddr> {
    if let Ok(a) = spec.parse::<SocketAddr>() {
        return Ok(a);
    }
    let (host, port) = spec.rsplit_once(':').context("--gateway: want HOST:PORT")?;
    let port: u16 = port.parse().context("--gateway: bad port")?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let dns = match dns {
        Some(d) => d,
        None => net::system_dns().context("finding a DNS server (give --dns)")?,
    };
    let addrs = net::resolve_v4(dns, host, Duration::from_secs(30)).with_context(|| format!("resolving {host}"))?;
    Ok(SocketAddr::new(addrs[0].into(), port))
}

/// Runs the customers for `--duration` (or until SIGINT/SIGTERM).
pub fn run(args: Args, table: &SymbolTable) -> anyhow::Result<()> {
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        bail!("--rate: want a positive number of orders a second");
    }
    if !(args.duration >= 0.0 && args.duration.is_finite()) {
        bail!("--duration: want a number of seconds");
    }
    let passwords = load_passwords(&args.passwords).context("--passwords")?;
    let mut users: Vec<([u8; 8], [u8; 16])> = Vec::new();
    for b in args.brokers.0..=args.brokers.1 {
        let pw = *passwords
            .get(&b)
            .with_context(|| format!("--passwords {}: no password for b{b:03}", args.passwords.display()))?;
        users.extend((1..=args.customers).map(|c| (user_name(b, c), pw)));
    }
    let gateway = resolve_gateway(&args.gateway, args.dns)?;
    raise_nofile();
    // Client order ids: increasing per session and distinct from any earlier
    // run's (the engine remembers ids per session), so start at the clock.
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let plan =
        Arc::new(session::Plan { gateway, rate: args.rate, sessions: users.len(), first_client_id: now_ms << 20 });
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(drive(args, table, users, plan))
}

async fn drive(
    args: Args,
    table: &SymbolTable,
    users: Vec<([u8; 8], [u8; 16])>,
    plan: Arc<session::Plan>,
) -> anyhow::Result<()> {
    let stats = Arc::new(Stats::default());
    let (start_tx, start_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let n = users.len() as u64;
    let mut tasks = Vec::with_capacity(users.len());
    for (i, user) in users.into_iter().enumerate() {
        let ctl = session::Control { start: start_rx.clone(), stop: stop_rx.clone() };
        let gen = OrderGen::new(table, args.seed.wrapping_add(i as u64));
        let (user, password) = user;
        tasks.push(tokio::spawn(session::run(i, user, password, gen, plan.clone(), stats.clone(), ctl)));
    }
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    // Everyone logs in first (or 20 s pass), then the schedule starts.
    let login_deadline = Instant::now() + Duration::from_secs(20);
    while stats.logged_in.load(Relaxed) + stats.login_failures.load(Relaxed) < n && Instant::now() < login_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logged_in = stats.logged_in.load(Relaxed);
    eprintln!("aex customers: {logged_in} of {n} sessions logged in to {}", plan.gateway);
    if logged_in == 0 {
        bail!("no session could log in to {}", plan.gateway);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let _ = start_tx.send(Some(start));
    let end = start + Duration::from_secs_f64(args.duration);
    let mut second = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let (mut last_sent, mut last_acked) = (0, 0);
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = tokio::time::sleep_until(end) => break,
            _ = second.tick() => {
                let (sent, acked) = (stats.sent.load(Relaxed), stats.acked.load(Relaxed) + stats.rejects.load(Relaxed));
                let p = stats.percentiles();
                println!(
                    "t={:>4.0}s sent/s={} acked/s={} p50={}us p99={}us (sent {sent}, answered {acked})",
                    start.elapsed().as_secs_f64(),
                    sent - last_sent,
                    acked - last_acked,
                    p.p50,
                    p.p99
                );
                (last_sent, last_acked) = (sent, acked);
                if let Some(path) = &args.status {
                    let _ = write_json_atomic(path, &stats.json(start.elapsed(), logged_in));
                }
            }
        }
    }
    let sending = start.elapsed();
    let _ = stop_tx.send(true);
    let all = futures_join(tasks);
    let _ = tokio::time::timeout(session::DRAIN + Duration::from_secs(1), all).await;
    let summary = stats.json(sending, logged_in);
    println!("summary: {}", serde_json::to_string(&summary)?);
    if let Some(path) = &args.summary_json {
        write_json_atomic(path, &summary).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.status {
        let _ = write_json_atomic(path, &summary);
    }
    if let Some(path) = &args.histogram {
        std::fs::write(path, stats.serialized_histogram()?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_gateway_addresses() {
        assert_eq!(parse_range("1-3"), Ok((1, 3)));
        assert_eq!(parse_range("7"), Ok((7, 7)));
        for bad in ["0-3", "3-1", "1-1000", "x", ""] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
        assert_eq!(resolve_gateway("10.0.0.1:9000", None).unwrap(), "10.0.0.1:9000".parse().unwrap());
        assert!(resolve_gateway("10.0.0.1", None).is_err());
    }
}
