//! The demo: AEX, the reference exchange, running on weavers in a lab of
//! network namespaces (an underlay that drops multicast, as clouds do).
//!
//! ```text
//! h1 exchange   weaversd, aex engine (100 symbols, journal)
//! h2 gw1        weaversd, aex gateway 1, aex customers (broker/dealers 1-50)
//! h3 gw2        weaversd, aex gateway 2, aex customers (broker/dealers 51-100)
//! h4 md         weaversd, aex record, aex view (served on 127.0.0.1:8080)
//! h5 dr         (with --dr) weaversd, the DR site: a hot standby engine or
//!               the pilot light (aex journal, which becomes the engine)
//! ```
//!
//! With `--dr`, h1's engine acknowledges nothing before its input is
//! durable at h5; `--kill-primary-after S` fails the production site (its
//! engine and weaversd killed, its underlay link down) mid-run, and the
//! summary adds `rpo_orders` (acknowledged orders lost: must be 0), `rto_ms`
//! and `failovers`.
//!
//! Gateways send orders to each symbol's orders group and the engine
//! publishes market data on each symbol's md group; every process finds
//! the groups through the overlay DNS. The screen shows a live summary; at
//! the end the demo stops the load, audits the journal against the record
//! and the gateways' acknowledgements, and prints (or writes) the summary.
//!
//! ```text
//! demo [--duration S] [--summary-json FILE] [--rate R] [--brokers N] [--customers N]
//!      [--view-port P] [--hold] [--md-batch-us N] [--dr hot|pilot [--kill-primary-after S]]
//!      [--underlay-loss PCT]
//! ```
//!
//! `--underlay-loss PCT` drops PCT % of the underlay's IP packets at random
//! for the whole run (see `loss.rs`); the summary adds `underlay_loss`.
//!
//! Run by `./demo.sh` (which builds first). Ctrl-C stops it; everything it
//! made is removed either way.

mod cpu;
mod exchange;
mod loss;
mod screen;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use weavers_tests::lab_or_skip;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether Ctrl-C (or SIGTERM) asked the demo to stop.
pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The demo's options.
#[derive(Clone, Debug)]
pub struct Args {
    /// Seconds of load; None: until Ctrl-C.
    pub duration: Option<u64>,
    /// Where to write the summary JSON (no live screen then).
    pub summary_json: Option<PathBuf>,
    /// Orders a second per customer.
    pub rate: f64,
    /// Broker/dealers (split between the two gateways).
    pub brokers: u32,
    /// Customers per broker/dealer.
    pub customers: u32,
    /// Port of the view on 127.0.0.1 (0: no forward).
    pub view_port: u16,
    /// Keep the lab up after the load until Ctrl-C.
    pub hold: bool,
    /// A DR site on h5, and how it takes over.
    pub dr: Option<DrMode>,
    /// Fail production this many seconds into the load.
    pub kill_primary_after: Option<u64>,
    /// The engine's `--md-batch-us`.
    pub md_batch_us: u64,
    /// Percent of the underlay's IP packets dropped at random (0: none).
    pub underlay_loss: u32,
}

/// How the DR site takes over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrMode {
    /// A standby engine applies the log as it comes and promotes itself.
    Hot,
    /// Only the journal runs; on failure it replaces itself with an engine
    /// that replays the journal.
    Pilot,
}

const USAGE: &str = "usage: demo [--duration S] [--summary-json FILE] [--rate R] [--brokers N] [--customers N] \
                     [--view-port P] [--hold] [--md-batch-us N] [--dr hot|pilot [--kill-primary-after S]] \
                     [--underlay-loss PCT]";

fn parse_args() -> Result<Args> {
    let mut a = Args {
        duration: None,
        summary_json: None,
        rate: 1.0,
        brokers: 100,
        customers: 100,
        view_port: 8080,
        hold: false,
        dr: None,
        kill_primary_after: None,
        md_batch_us: 0,
        underlay_loss: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--duration" => a.duration = Some(value()?.parse().context("--duration: seconds")?),
            "--summary-json" => a.summary_json = Some(PathBuf::from(value()?)),
            "--rate" => a.rate = value()?.parse().context("--rate: orders a second per customer")?,
            "--brokers" => a.brokers = value()?.parse().context("--brokers: a count")?,
            "--customers" => a.customers = value()?.parse().context("--customers: a count")?,
            "--view-port" => a.view_port = value()?.parse().context("--view-port: a port")?,
            "--hold" => a.hold = true,
            "--underlay-loss" => {
                a.underlay_loss = Some(value()?.parse::<u32>().context("--underlay-loss: a percentage")?)
                    .filter(|&p| p <= 100)
                    .context("--underlay-loss: at most 100")?
            }
            "--md-batch-us" => a.md_batch_us = value()?.parse().context("--md-batch-us: microseconds")?,
            "--dr" => {
                a.dr = Some(match value()?.as_str() {
                    "hot" => DrMode::Hot,
                    "pilot" => DrMode::Pilot,
                    other => bail!("--dr {other}: hot or pilot"),
                })
            }
            "--kill-primary-after" => {
                a.kill_primary_after = Some(value()?.parse().context("--kill-primary-after: seconds")?)
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if a.kill_primary_after.is_some() && a.dr.is_none() {
        bail!("--kill-primary-after needs --dr hot|pilot: without a DR site nothing would take over");
    }
    if a.brokers < 2 || a.customers == 0 || a.rate <= 0.0 {
        bail!("need at least 2 broker/dealers, 1 customer each and a positive rate");
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("demo: {e:#}");
            std::process::exit(2);
        }
    };
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    match run(&args) {
        Ok(ok) => std::process::exit(if ok { 0 } else { 1 }),
        Err(e) => {
            eprintln!("demo: {e:#}");
            std::process::exit(1);
        }
    }
}

fn say(args: &Args, msg: &str) {
    if args.summary_json.is_none() {
        println!("\x1b[1m== {msg}\x1b[0m");
    } else {
        eprintln!("demo: {msg}");
    }
}

fn run(args: &Args) -> Result<bool> {
    let hosts = if args.dr.is_some() { 5 } else { 4 };
    let Some(mut lab) = lab_or_skip(hosts) else { bail!("the lab needs root (network namespaces)") };
    say(args, &format!("{hosts} hosts on an underlay that drops multicast; weaversd on each, the others know only h1"));
    lab.start_exposed_mesh(&[]);
    if args.summary_json.is_none() {
        print!("{}", lab.cli_ok(1, &["status"]));
    }
    say(args, "AEX: 200 names (every symbol's orders and market-data groups) into the overlay DNS");
    exchange::register(&lab)?;
    let loss = loss::start(&lab, args.underlay_loss)?;
    if args.underlay_loss > 0 {
        say(args, &format!("the underlay drops {}% of its IP packets at random from now on", args.underlay_loss));
    }

    let mut x = exchange::Exchange::start(&lab, args)?;
    say(
        args,
        &format!(
            "load: {} broker/dealers x {} customers x {}/s = {:.0} orders/s{}",
            args.brokers,
            args.customers,
            args.rate,
            args.brokers as f64 * args.customers as f64 * args.rate,
            match args.duration {
                Some(d) => format!(" for {d} s"),
                None => " until Ctrl-C".into(),
            }
        ),
    );
    if let Some(f) = x.view_addr() {
        say(args, &format!("the view: http://{f}/"));
    }
    let started = Instant::now();
    let mut screen = screen::Screen::new(args.summary_json.is_none());
    loop {
        std::thread::sleep(Duration::from_millis(1000));
        screen.draw(&lab, &x, started.elapsed());
        if stopped() || !x.load_running() {
            break;
        }
        if args.kill_primary_after.is_some_and(|k| started.elapsed() >= Duration::from_secs(k)) && !x.primary_killed() {
            say(args, "failing the production site: engine and weaversd killed, underlay link down");
            x.kill_primary(&mut lab)?;
        }
        if let Some(d) = args.duration {
            if started.elapsed() > Duration::from_secs(d + 30) {
                say(args, "the load generators overran their duration by 30 s; stopping them");
                break;
            }
        }
    }
    say(args, "stopping the load, then auditing the journal against the record and the acknowledgements");
    let mut summary = x.finish(&lab)?;
    if let Some(l) = loss {
        l.finish(&lab, &mut summary)?;
    }
    summary["dr_lag_records"] = screen::lag_summary(&screen.dr_lag);
    let ok = summary["audit_ok"].as_bool() == Some(true);
    match &args.summary_json {
        Some(path) => {
            let text = serde_json::to_string_pretty(&summary)?;
            std::fs::write(path, format!("{text}\n")).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{}{}", screen::summary_text(&summary), loss::summary_text(&summary)),
    }
    if args.hold {
        say(args, "holding the lab; Ctrl-C to remove it");
        STOP.store(false, Ordering::SeqCst);
        while !stopped() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    say(args, "removing the lab");
    drop(x);
    drop(lab);
    Ok(ok)
}
