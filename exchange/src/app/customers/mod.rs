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

mod timer;

use gen::OrderGen;
use results::Stats;
use session::Session;
use timer::Timer;

use super::gateway::login::load_passwords;
use super::gateway::{raise_nofile, user_name, write_json_atomic};
use crate::app::signals;
use crate::net;
use crate::symbols::SymbolTable;
use anyhow::{bail, Context};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The timer's token (sessions are 0..n).
const TIMER: Token = Token(usize::MAX);
/// How often every session is looked at (heartbeats, the end of the drain).
const SWEEP: Duration = Duration::from_millis(50);
/// The least time between two wake-ups for orders due: at high rates the
/// orders due meanwhile go together (up to this late, which their
/// latency, measured from when they were due, includes) instead of one
/// wake-up each. At the demo's 10,000 orders/s (5,000 per generator, 200 µs
/// apart) it changes nothing.
const MIN_WAKE_GAP: Duration = Duration::from_micros(100);

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
    signals::catch();
    // Client order ids: increasing per session and distinct from any earlier
    // run's (the engine remembers ids per session), so start at the clock.
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let plan = session::Plan { gateway, rate: args.rate, sessions: users.len(), first_client_id: now_ms << 20 };
    let stats = Stats::default();
    let n = users.len();
    let users = users
        .into_iter()
        .enumerate()
        .map(|(i, (u, p))| (u, p, OrderGen::new(table, args.seed.wrapping_add(i as u64))))
        .collect();
    let sessions = session::login_all(&plan, users, &stats);
    eprintln!("aex customers: {} of {n} sessions logged in to {}", sessions.len(), plan.gateway);
    if sessions.is_empty() {
        bail!("no session could log in to {}", plan.gateway);
    }
    let logged_in = sessions.len() as u64;
    let sending = drive(&args, &plan, sessions, &stats)?;
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

/// The event loop: every session's orders on schedule (woken by a timerfd
/// at the next one due, to the microsecond rather than the millisecond),
/// the answers read as they come, a status line a second; then up to
/// [`session::DRAIN`] for the last answers. Returns how long it sent.
fn drive(args: &Args, plan: &session::Plan, mut sessions: Vec<Session>, stats: &Stats) -> anyhow::Result<Duration> {
    let mut poll = Poll::new()?;
    let mut timer = Timer::new()?;
    poll.registry().register(&mut SourceFd(&timer.fd()), TIMER, Interest::READABLE)?;
    for (idx, s) in sessions.iter_mut().enumerate() {
        poll.registry().register(&mut s.stream, Token(idx), Interest::READABLE)?;
    }
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + Duration::from_secs_f64(args.duration);
    let mut schedule: BinaryHeap<Reverse<(Instant, usize)>> =
        sessions.iter().enumerate().map(|(idx, s)| Reverse((s.due(plan, start), idx))).collect();
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 65_536];
    let (mut next_second, mut next_sweep) = (start + Duration::from_secs(1), start + SWEEP);
    let (mut last_sent, mut last_acked) = (0, 0);
    let mut stopping: Option<(Instant, Duration)> = None;
    let mut blocked: Vec<usize> = Vec::new();
    let mut last_send_wake = Instant::now();
    loop {
        let now = Instant::now();
        if stopping.is_none() && (now >= end || signals::stopped()) {
            stopping = Some((now + session::DRAIN, now.saturating_duration_since(start)));
        }
        if stopping.is_none() && schedule.peek().is_some_and(|r| r.0 .0 <= now) {
            last_send_wake = now;
            while let Some(&Reverse((due, idx))) = schedule.peek() {
                if due > now {
                    break;
                }
                schedule.pop();
                let s = &mut sessions[idx];
                if !s.gone {
                    let was = s.want_write;
                    s.send_order(plan, due, stats, now);
                    if s.want_write && !was {
                        blocked.push(idx);
                    }
                    schedule.push(Reverse((s.due(plan, start), idx)));
                }
            }
        }
        if now >= next_second {
            next_second += Duration::from_secs(1);
            let (sent, acked) = (stats.sent.load(Relaxed), stats.acked.load(Relaxed) + stats.rejects.load(Relaxed));
            let p = stats.percentiles();
            println!(
                "t={:>4.0}s sent/s={} acked/s={} p50={}us p99={}us (sent {sent}, answered {acked})",
                now.saturating_duration_since(start).as_secs_f64(),
                sent - last_sent,
                acked - last_acked,
                p.p50,
                p.p99
            );
            (last_sent, last_acked) = (sent, acked);
            if let Some(path) = &args.status {
                let json = stats.json(now.saturating_duration_since(start), sessions.len() as u64);
                let _ = write_json_atomic(path, &json);
            }
        }
        if now >= next_sweep {
            next_sweep = now + SWEEP;
            for (idx, s) in sessions.iter_mut().enumerate() {
                let was = s.want_write;
                s.heartbeat_if_quiet(stats, now);
                if s.want_write && !was {
                    blocked.push(idx);
                }
            }
            if let Some((until, sent_for)) = stopping {
                if now >= until || sessions.iter().all(Session::settled) {
                    return Ok(sent_for);
                }
            }
        }
        // Writes that did not finish: wait for room.
        for idx in blocked.drain(..) {
            let s = &mut sessions[idx];
            let _ = poll.registry().reregister(&mut s.stream, Token(idx), Interest::READABLE | Interest::WRITABLE);
        }
        let mut wake = next_second.min(next_sweep);
        match stopping {
            None => {
                let next_order = schedule.peek().map_or(wake, |r| r.0 .0.max(last_send_wake + MIN_WAKE_GAP));
                wake = wake.min(end).min(next_order);
            }
            Some((until, _)) => wake = wake.min(until),
        }
        timer.arm_at(wake)?;
        match poll.poll(&mut events, Some(Duration::from_secs(1))) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("waiting for events"),
        }
        for ev in events.iter() {
            if ev.token() == TIMER {
                // Not read: re-arming resets it, and each expiry is a new edge.
                timer.fired();
                continue;
            }
            let Some(s) = sessions.get_mut(ev.token().0) else { continue };
            if ev.is_writable() {
                s.flush(stats, Instant::now());
                if !s.want_write {
                    let _ = poll.registry().reregister(&mut s.stream, ev.token(), Interest::READABLE);
                }
            }
            let closed = ev.is_read_closed() || ev.is_error();
            if ev.is_readable() || closed {
                s.on_readable(stats, &mut scratch, stopping.is_some(), closed);
            }
        }
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
