//! What synchronous replication costs (issue 7), measured in the lab:
//! order-to-ack latency of the in-test gateway (h2) at the same load with
//! the engine (h1) alone and with `--replicate` to a hot standby (h3), and
//! the standby's lag under load, sampled from the primary's status
//! (`last_seq - dr_durable_seq`: sequenced, not yet durable at the standby,
//! which applies a record as soon as it is durable). Each load runs twice,
//! alternating, so start-up transients do not favour one. Ignored (slow, for figures): `cargo build --workspace &&
//! CI=true cargo test -p weavers-tests --test aex_dr_bench -- --ignored --nocapture`
//! (AEX_DR_RATE orders a second, default 1000; AEX_DR_SECS, default 10).

#[path = "aex_dr/gateway.rs"]
mod gateway;
#[path = "aex_dr/proc.rs"]
mod proc;

use proc::Proc;
use serde_json::Value;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weavers_tests::{bins, lab_or_skip, netns, wait_until, Lab};

fn status(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(0)
}

/// One load; returns (sorted latencies µs, replication lag samples).
fn load(lab: &Lab, replicate: bool, tag: &str, rate: u32, secs: u64) -> (Vec<u64>, Vec<i64>) {
    let dir = lab.dir();
    let p = |n: &str| dir.join(format!("{tag}.{n}")).to_str().unwrap().to_string();
    let dr_addr = format!("{}:7800", Lab::overlay(3));
    let args = |h: usize, journal: String, status: String| -> Vec<String> {
        let ip = Lab::overlay(h).to_string();
        ["engine", "--name", "eng1", "--only", "1-2", "--dns", &ip, "--bind", &ip, "--journal", &journal, "--status"]
            .iter()
            .map(|s| s.to_string())
            .chain([status])
            .collect()
    };
    let (p_status, s_status) = (p("p.status"), p("s.status"));
    let mut standby = replicate.then(|| {
        let mut a = args(3, p("s.journal"), s_status.clone());
        a.extend(["--standby-listen".into(), dr_addr.clone()]);
        let s = Proc::spawn(lab, 3, &a);
        assert!(wait_until(Duration::from_secs(40), || status(Path::new(&s_status)).is_some()), "{}", s.stderr());
        s
    });
    let mut a = args(1, p("p.journal"), p_status.clone());
    if replicate {
        a.extend(["--replicate".into(), dr_addr.clone()]);
    }
    let mut primary = Proc::spawn(lab, 1, &a);
    assert!(
        wait_until(Duration::from_secs(40), || status(Path::new(&p_status))
            .is_some_and(|s| !replicate || s["dr_connected"] == true)),
        "{}",
        primary.stderr()
    );
    let table = aex::symbols::SymbolTable::shipped();
    let symbols = (1..=2u16)
        .map(|i| (i, SocketAddr::from(SocketAddrV4::new(table.get(i).unwrap().orders_group, aex::net::ORDERS_PORT))))
        .collect();
    let opts = gateway::Opts {
        bind: Lab::overlay(2),
        symbols,
        rate,
        duration: Duration::from_secs(secs),
        drain: Duration::from_secs(10),
        acks: p("acks").into(),
        acked: Arc::new(AtomicU64::new(0)),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let gw = netns::spawn_in(lab.ns(2), move || gateway::run(opts));
    let mut repl_lag = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(500));
        if let Some(ps) = status(Path::new(&p_status)) {
            let last = ps["last_seq"].as_i64().unwrap_or(0);
            if replicate {
                repl_lag.push(last - ps["dr_durable_seq"].as_i64().unwrap_or(0));
            }
        }
    }
    let seen = gw.join().unwrap();
    assert_eq!(seen.unacked, 0, "{}", primary.stderr());
    primary.signal(libc::SIGTERM);
    primary.wait(Duration::from_secs(20));
    if let Some(s) = standby.as_mut() {
        s.signal(libc::SIGTERM);
        s.wait(Duration::from_secs(20));
    }
    let mut lat = seen.latencies_us;
    lat.sort_unstable();
    (lat, repl_lag)
}

#[test]
#[ignore]
fn replication_cost_and_standby_lag() {
    let Some(mut lab) = lab_or_skip(3) else { return };
    lab.start_exposed_mesh(&[]);
    let out = Command::new(bins::aex())
        .args(["register", "--socket"])
        .arg(lab.socket(1))
        .arg("--weavers")
        .arg(bins::weavers())
        .output()
        .unwrap();
    assert!(out.status.success());
    let (rate, secs) = (env_or("AEX_DR_RATE", 1000) as u32, env_or("AEX_DR_SECS", 10));
    for (replicate, tag) in [(false, "alone1"), (true, "replicated1"), (false, "alone2"), (true, "replicated2")] {
        let (lat, repl) = load(&lab, replicate, tag, rate, secs);
        eprintln!(
            "{tag}: {} acks at {rate}/s: order-to-ack µs p50 {} p90 {} p99 {} p99.9 {} max {}",
            lat.len(),
            pct(&lat, 0.5),
            pct(&lat, 0.9),
            pct(&lat, 0.99),
            pct(&lat, 0.999),
            lat.last().copied().unwrap_or(0)
        );
        if replicate {
            eprintln!("{tag}: standby lag (records sequenced, not yet durable at DR) samples {repl:?}");
        }
    }
}
