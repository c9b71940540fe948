//! A rogue host sends the worst it can for a while (issue 14): 4 real
//! daemons, and a fifth host that holds the mesh password but runs no
//! daemon: this test's own code ([`rogue`]) completes real Noise handshakes
//! with every daemon and then floods each with forged and oversized
//! gossip, bad IPAM ranges, 100,000 source MACs, 5,000 groups, 1-byte
//! fragments and bogus virtio-net headers. Meanwhile h1 sends a multicast
//! group (500 numbered datagrams a second) to h2, h3 and h4.
//!
//! The issue's target, asserted: no daemon restarts (same PIDs, all
//! running), each daemon's memory under 64 MiB (VmRSS sampled every 200 ms,
//! and the kernel's VmHWM), the group loses 0.1% or less at every receiver;
//! and the drop counters of the checks the rogue aims at rose at every
//! daemon in each half of the run (so its messages did reach them).
//!
//! ```sh
//! cargo build -p weaversd -p weavers
//! CI=true cargo test -p weavers-tests --test rogue_flood -- --nocapture
//! ```
//!
//! `WEAVERS_ROGUE_SECS` sets how long the rogue sends (10 s by default;
//! 60 for the issue's measurement); `WEAVERS_ROGUE_SCALE` multiplies its
//! MAC bundles and fragments (1 by default: about 1,260 datagrams a second
//! to the 4 daemons together).

mod memory;
mod rogue;
mod starved;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use weavers_proto::keys::PublicKey;
use weavers_tests::faults::{McastStream, Timeline};
use weavers_tests::mcast::{GroupReceiver, Join};
use weavers_tests::{lab_or_skip, netns, wait_until, DaemonOpts, Lab, WEAVERS_PORT};

use memory::{mib, Sampler};
use rogue::{Target, DISTINCT_MACS, TOO_MANY_GROUPS, VALID_GROUPS};

const SEC: Duration = Duration::from_secs(1);

/// One lab run at a time: each measures what a concurrent one's load
/// would distort.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 14, 6, 1);
const PORT: u16 = 5146;
/// The group's datagrams a second, and their size.
const RATE: u32 = 500;
const SIZE: usize = 200;
/// The daemons (h1..h4); the rogue is h5.
const DAEMONS: usize = 4;
const ROGUE: usize = 5;
/// The issue's bounds.
const MAX_RSS_KIB: u64 = 64 * 1024;
const MAX_LOSS: f64 = 0.001;
/// Drop reasons each check the rogue aims at counts: forged, invalid and
/// future records; MAC table evictions; refused fragments; partial messages
/// given up; refused virtio-net headers.
const MUST_RISE: [&str; 5] = ["bad_gossip", "mac_evicted", "bad_payload", "incomplete", "bad_offload"];

/// How long the rogue sends (`WEAVERS_ROGUE_SECS`, default 10 s).
fn attack_window() -> Duration {
    let s = std::env::var("WEAVERS_ROGUE_SECS").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(10);
    Duration::from_secs(s.max(2))
}

/// How many times the default MAC bundles and fragments the rogue sends
/// (`WEAVERS_ROGUE_SCALE`, default 1).
fn attack_scale() -> u32 {
    std::env::var("WEAVERS_ROGUE_SCALE").ok().and_then(|v| v.parse::<u32>().ok()).unwrap_or(1).max(1)
}

/// Every drop count of host `i`, by reason.
fn drops(lab: &Lab, i: usize) -> BTreeMap<String, u64> {
    let st = lab.status_json(i);
    st["drops"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| Some((d["reason"].as_str()?.to_owned(), d["count"].as_u64()?)))
        .collect()
}

/// `b - a`, by reason, for those that rose.
fn rose(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    b.iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(a.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

fn key_of(lab: &Lab, i: usize) -> PublicKey {
    PublicKey::from_base64(lab.status_json(i)["public_key"].as_str().unwrap()).unwrap()
}

/// Groups host `i` lists with at least one subscribed peer, and how many
/// of those are the rogue's (239.200.0.0 to 239.249.255.255).
fn groups_at(lab: &Lab, i: usize) -> (usize, usize) {
    let Ok(Value::Array(rows)) = lab.try_cli_json(i, &["groups", "--json"]) else { return (0, 0) };
    let subscribed: Vec<&Value> =
        rows.iter().filter(|r| r["subscribed_peers"].as_array().is_some_and(|p| !p.is_empty())).collect();
    let rogue = subscribed
        .iter()
        .filter(|r| {
            r["group"]
                .as_str()
                .and_then(|g| g.parse::<Ipv4Addr>().ok())
                .is_some_and(|g| (200..250).contains(&g.octets()[1]))
        })
        .count();
    (subscribed.len(), rogue)
}

/// The longest time between two of `times` (in order), and when it began
/// (seconds after `start`).
fn longest_gap(times: &[Instant], start: Instant) -> (Duration, f64) {
    times
        .windows(2)
        .map(|w| (w[1].saturating_duration_since(w[0]), w[0].saturating_duration_since(start).as_secs_f64()))
        .max_by_key(|(d, _)| *d)
        .unwrap_or_default()
}

/// Whether host `i` lists host `j` as subscribed to [`GROUP`].
fn subscribed(lab: &Lab, i: usize, j: usize) -> bool {
    let Ok(Value::Array(rows)) = lab.try_cli_json(i, &["groups", "--json"]) else { return false };
    let (g, name) = (GROUP.to_string(), format!("h{j}"));
    rows.iter()
        .filter(|r| r["group"] == g.as_str())
        .flat_map(|r| r["subscribed_peers"].as_array().cloned().unwrap_or_default())
        .any(|p| p["name"] == name.as_str())
}

#[test]
fn a_rogue_flooding_every_daemon_restarts_none_bloats_none_and_costs_the_group_nothing() {
    let _one = serial();
    let Some(mut lab) = lab_or_skip(DAEMONS + 1) else { return };
    let window = attack_window();
    lab.start_daemon(1, DaemonOpts::new());
    for i in 2..=DAEMONS {
        lab.start_daemon(i, DaemonOpts::new().peer(1));
    }
    let hosts: Vec<usize> = (1..=DAEMONS).collect();
    lab.wait_mesh(&hosts, 30 * SEC);
    for &i in &hosts {
        lab.expose(i, &format!("{}/16", Lab::overlay(i)));
    }
    let receivers: Vec<(usize, GroupReceiver)> = (2..=DAEMONS)
        .map(|i| {
            let join = Join::V4 { group: GROUP, iface: Lab::overlay(i) };
            (i, GroupReceiver::start(lab.ns(i), PORT, join).unwrap_or_else(|e| panic!("receiver in h{i}: {e:#}")))
        })
        .collect();
    for j in 2..=DAEMONS {
        assert!(wait_until(15 * SEC, || subscribed(&lab, 1, j)), "h{j}'s join did not reach h1");
    }

    let pids: Vec<u32> = hosts.iter().map(|&i| lab.daemon_pid(i).expect("running")).collect();
    let targets: Vec<Target> = hosts
        .iter()
        .map(|&i| Target {
            name: format!("h{i}"),
            key: key_of(&lab, i),
            addr: SocketAddr::V4(SocketAddrV4::new(lab.ip(i), WEAVERS_PORT)),
        })
        .collect();
    let before: Vec<_> = hosts.iter().map(|&i| drops(&lab, i)).collect();
    let sampler = Sampler::start(pids.clone());
    let sampling = Instant::now();

    // The rogue connects to every daemon, then floods until stopped.
    let (ready, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let rogue = {
        let (password, ready, stop, scale) = (lab.password().to_owned(), ready.clone(), stop.clone(), attack_scale());
        netns::spawn_in(lab.ns(ROGUE), move || rogue::attack(&password, &targets, scale, &ready, stop))
    };
    assert!(wait_until(20 * SEC, || ready.load(Ordering::SeqCst) || rogue.is_finished()), "the rogue never connected");
    if rogue.is_finished() {
        match rogue.join() {
            Ok(Err(e)) => panic!("the rogue: {e:#}"),
            Ok(Ok(_)) => panic!("the rogue stopped before its attack"),
            Err(p) => std::panic::resume_unwind(p),
        }
    }
    let stream = McastStream::start(lab.ns(1), Lab::overlay(1), SocketAddrV4::new(GROUP, PORT), RATE, SIZE);
    let start = Instant::now();
    std::thread::sleep(window / 2);
    // Also how long each daemon takes to answer its API under the flood.
    let mut answered = Vec::new();
    let middle: Vec<_> = hosts
        .iter()
        .map(|&i| {
            let t = Instant::now();
            let d = drops(&lab, i);
            answered.push(t.elapsed());
            d
        })
        .collect();
    std::thread::sleep(window.saturating_sub(start.elapsed()));
    let end = Instant::now();
    let sent = stream.stop();
    stop.store(true, Ordering::SeqCst);
    let flood = match rogue.join() {
        Ok(r) => r.unwrap_or_else(|e| panic!("the rogue: {e:#}")),
        Err(p) => std::panic::resume_unwind(p),
    };
    for (_, r) in &receivers {
        r.wait_quiet(SEC / 2, 5 * SEC);
    }
    let usage = sampler.stop();
    let sampled = sampling.elapsed();
    let after: Vec<_> = hosts.iter().map(|&i| drops(&lab, i)).collect();

    // What the rogue sent, and what the daemons saw.
    let secs = end.duration_since(start).as_secs_f64();
    eprintln!("the rogue sent for {secs:.1} s (scale {}), to {DAEMONS} daemons together: {flood:#?}", attack_scale());
    eprintln!(
        "  ({} datagrams a second; each daemon taught {} source MACs, {DISTINCT_MACS} distinct)",
        (flood.datagrams as f64 / secs) as u64,
        flood.macs_taught / DAEMONS as u64
    );
    let mut failures = Vec::new();
    for (n, &i) in hosts.iter().enumerate() {
        let u = &usage[n];
        let (first, last) = u.first_last();
        let quarters: Vec<String> = (0..4).map(|q| mib(u.peak_in(q, 4))).collect();
        eprintln!(
            "h{i} (pid {}): VmRSS {} at start, peak {} (by quarter: {}), {} at end; VmHWM {} during the run ({} before it, \
             since the daemon started); {} samples",
            pids[n],
            mib(first),
            mib(u.peak()),
            quarters.join(", "),
            mib(last),
            mib(u.hwm),
            mib(u.hwm_before),
            u.rss.len()
        );
        eprintln!(
            "  CPU {:.1} s over {:.1} s sampled ({:.0}% of a core); `status` answered in {:.3} s mid-run",
            u.cpu.as_secs_f64(),
            sampled.as_secs_f64(),
            100.0 * u.cpu.as_secs_f64() / sampled.as_secs_f64().max(0.001),
            answered[n].as_secs_f64()
        );
        eprintln!("  drops that rose: first half {:?}", rose(&before[n], &middle[n]));
        eprintln!("                   second half {:?}", rose(&middle[n], &after[n]));
        if u.peak() >= MAX_RSS_KIB || u.hwm >= MAX_RSS_KIB {
            failures.push(format!("h{i} used {} (VmHWM {}), over 64 MiB", mib(u.peak()), mib(u.hwm)));
        }
        for reason in MUST_RISE {
            for (half, a, b) in [("first", &before[n], &middle[n]), ("second", &middle[n], &after[n])] {
                if !rose(a, b).contains_key(reason) {
                    failures.push(format!("h{i}'s {reason} did not rise in the {half} half: the rogue missed it"));
                }
            }
        }
    }
    // The group, at every receiver.
    let seqs = sent.seqs_between(start, end - SEC / 2);
    let n = seqs.end - seqs.start;
    // A silence the sender made itself (its thread not scheduled: it then
    // sends the late datagrams at once) is not the mesh's.
    let (gap, gap_at) = longest_gap(&sent.at, start);
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
        - start.elapsed().as_secs_f64();
    eprintln!("the group started at unix time {started:.3}");
    eprintln!("group sender h1: longest gap between two sends {:.3} s, at {:.1} s", gap.as_secs_f64(), gap_at);
    for (i, r) in receivers {
        let tl = Timeline::of_datagrams(&sent.stream, &r.finish());
        let lost = sent.missing(&tl, seqs.clone());
        let loss = lost as f64 / n.max(1) as f64;
        let arrivals: Vec<Instant> = tl.points.iter().map(|(_, t)| *t).filter(|t| *t >= start).collect();
        let (silence, silence_at) = longest_gap(&arrivals, start);
        eprintln!(
            "group h1 -> h{i}: {lost} of {n} lost ({:.3}%), longest silence {:.3} s, at {silence_at:.1} s",
            100.0 * loss,
            silence.as_secs_f64()
        );
        if loss > MAX_LOSS {
            failures.push(format!("h{i} lost {lost} of {n} datagrams of the group ({:.3}%)", 100.0 * loss));
        }
    }
    // The rogue's last record (the most groups a record may carry, and no
    // IPAM seed) reached the group tables, its 5,000 never did; and with no
    // seed of its own any more it no longer stops allocation (its ranges
    // were refused or kept aside, never taken as the mesh's).
    for &i in &hosts {
        let mut seen = (0, 0);
        let took = wait_until(10 * SEC, || {
            seen = groups_at(&lab, i);
            seen.1 == VALID_GROUPS as usize
        });
        let mut ipam = Value::Null;
        let cleared = wait_until(10 * SEC, || {
            ipam = lab.try_cli_json(i, &["ipam", "ls", "--json"]).unwrap_or(Value::Null);
            ipam["problems"].as_array().is_some_and(|p| p.is_empty())
        });
        let owners: BTreeMap<String, u64> =
            ipam["spans"].as_array().into_iter().flatten().fold(BTreeMap::new(), |mut m, s| {
                *m.entry(s["owner"].as_str().unwrap_or("?").to_owned()).or_default() += s["size"].as_u64().unwrap_or(0);
                m
            });
        eprintln!(
            "h{i}: {} groups with subscribers, {} of them the rogue's; IPAM range {}, addresses by owner {owners:?}, \
             problems {}",
            seen.0, seen.1, ipam["range"], ipam["problems"]
        );
        if !took {
            failures.push(format!(
                "h{i} lists {} of the rogue's groups, not the {VALID_GROUPS} of its last record (never \
                 {TOO_MANY_GROUPS})",
                seen.1
            ));
        }
        if !cleared {
            failures.push(format!("h{i}'s IPAM still reports problems: {}", ipam["problems"]));
        }
    }
    for (n, &i) in hosts.iter().enumerate() {
        if !lab.daemon_running(i) || lab.daemon_pid(i) != Some(pids[n]) {
            failures.push(format!("h{i}'s daemon is not the one started (pid {}):\n{}", pids[n], lab.log_tail(i, 30)));
        }
        let log = lab.log(i);
        let loud: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
        eprintln!("h{i}'s log: {} lines, {} at WARN or ERROR{}", log.lines().count(), loud.len(), {
            let mut firsts: Vec<&str> = loud.iter().take(3).copied().collect();
            firsts.insert(0, "");
            firsts.join("\n    ")
        });
        if log.contains("panicked") {
            failures.push(format!("h{i}'s daemon panicked:\n{}", lab.log_tail(i, 30)));
        }
    }
    assert!(flood.pongs_heard > 0, "no victim ever answered the rogue's pings: its sessions were not in use");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
