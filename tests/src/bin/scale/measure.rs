//! One size of the scale bench: a fresh lab of N hosts, every daemon told
//! only about h1, and the figures: time to a full mesh, idle underlay
//! bytes, the daemons' CPU and memory while idle, join to first datagram,
//! failure detection and the recovery from a cut path.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use weavers_tests::lab::{proc_cpu_seconds, proc_rss_bytes};
use weavers_tests::{par, DaemonOpts, Lab};

use crate::stopped;
use crate::streams::{self, Sink, Stream};

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct Cfg {
    /// Longest wait for the full mesh.
    pub converge_cap: Option<Duration>,
    /// Quiet time after convergence before the idle window.
    pub settle: Duration,
    /// The idle window.
    pub idle: Duration,
    /// Longest wait in the join, failure and path-cut measures.
    pub probe_cap: Duration,
    /// Daemons started at once.
    pub wave: usize,
    /// Hosts resolve each other by ARP (the lab's default) instead of
    /// permanent neighbour entries. The machine's one neighbour table
    /// then overflows past about 32 hosts (N*(N-1) entries over its
    /// gc_thresh3, often 1024): to show that effect, not the daemons'.
    pub arp: bool,
    /// A soak after the idle window: this long with no fault, counting
    /// every peer any host declared down (each one a false failure).
    pub soak: Option<Duration>,
}

impl Cfg {
    /// The wait for the full mesh at size `n`: 60 s up to 64 hosts, 120 s above.
    pub fn converge_cap(&self, n: usize) -> Duration {
        self.converge_cap.unwrap_or(Duration::from_secs(if n <= 64 { 60 } else { 120 }))
    }
}

/// How often the mesh is polled while it forms: every 250 ms, less often
/// past 62 hosts (4 ms a host: a round reads every host's peer list).
pub fn converge_interval(n: usize) -> Duration {
    Duration::from_millis(250).max(Duration::from_millis(4 * n as u64))
}

/// How often the hosts are polled after a kill: every 100 ms, less often
/// past 50 hosts (2 ms a host).
pub fn failure_interval(n: usize) -> Duration {
    Duration::from_millis(100).max(Duration::from_millis(2 * n as u64))
}

/// The figures of one size; None where a measure failed (see `errors`).
#[derive(Debug, Default)]
pub struct SizeRun {
    pub n: usize,
    pub setup_s: f64,
    /// From the first daemon spawned to the last.
    pub start_s: f64,
    /// Seconds from the last daemon's start to the full mesh.
    pub converge_s: Option<f64>,
    /// Sessions up at the end of the wait (N*(N-1) when converged).
    pub sessions: usize,
    pub wanted: usize,
    /// Each poll round: (its start and its end in seconds since the last
    /// start, sessions up). A round takes long when daemons answer slowly.
    pub trajectory: Vec<(f64, f64, usize)>,
    /// Hosts missing sessions when the wait ended, in short.
    pub missing: Option<String>,
    /// What the daemons counted while the mesh formed (see [`Counters`]).
    pub formation: Option<Counters>,
    pub idle: Option<Idle>,
    pub join_ms: Option<f64>,
    pub failure: Option<Failure>,
    pub cut: Option<Cut>,
    pub soak: Option<Soak>,
    pub teardown_s: f64,
    pub total_s: f64,
    /// The machine's load average (1 min) when the size started and ended.
    pub load: (String, String),
    pub errors: Vec<String>,
}

/// The idle window.
#[derive(Debug)]
pub struct Idle {
    pub secs: f64,
    /// Bytes per second on each host's underlay port (sent + received), h1 first.
    pub bytes_per_s: Vec<f64>,
    /// All daemons' CPU over the window, in % of one core.
    pub cpu_pct: f64,
    /// Each daemon's VmRSS at the end of the window, h1 first.
    pub rss: Vec<u64>,
    /// Mean bytes per second per host in each second of the window.
    pub series: Vec<f64>,
}

impl Idle {
    pub fn bytes_mean(&self) -> f64 {
        mean(&self.bytes_per_s)
    }
    pub fn bytes_max(&self) -> f64 {
        self.bytes_per_s.iter().copied().fold(0.0, f64::max)
    }
    pub fn rss_mean(&self) -> f64 {
        mean(&self.rss.iter().map(|&b| b as f64).collect::<Vec<_>>())
    }
    pub fn rss_max(&self) -> u64 {
        self.rss.iter().copied().max().unwrap_or(0)
    }
}

/// A `kill -9` and how long the others took to see it.
#[derive(Debug)]
pub struct Failure {
    pub victim: usize,
    /// Seconds until every other host listed it not connected (None: not
    /// all did within the cap).
    pub all_s: Option<f64>,
    /// Seconds until every other host listed it neither connected nor
    /// relayed (None: not all did within the cap).
    pub gone_all_s: Option<f64>,
    /// Seconds until each host that did saw it not connected.
    pub per_host_s: Vec<f64>,
    /// Hosts that still listed it connected at the cap.
    pub undetected: usize,
    /// Hosts that still listed it connected or relayed at the cap.
    pub not_gone: usize,
    /// How the hosts listed it when they first did not as connected.
    pub states: BTreeMap<String, usize>,
    /// How the hosts listed it when they first did as neither connected nor relayed.
    pub states_gone: BTreeMap<String, usize>,
    pub poll_ms: u64,
}

/// A soak: a healthy mesh left alone, and the peers declared down meanwhile.
#[derive(Debug)]
pub struct Soak {
    pub secs: f64,
    /// Peers declared down by liveness, all hosts together (status
    /// `peers_down`, its rise over the soak): each a false failure.
    pub false_failures: u64,
    /// Hosts that declared any, with how many.
    pub by_host: Vec<(usize, u64)>,
    /// Every host listed every other connected at the end.
    pub full_at_end: bool,
}

/// A cut of the direct underlay path under a unicast stream.
#[derive(Debug)]
pub struct Cut {
    pub from: usize,
    pub to: usize,
    /// Seconds from the cut to the first datagram sent after it arriving
    /// (None: none within the cap).
    pub resumed_s: Option<f64>,
    /// How `from` listed `to` once it flowed again (state, via).
    pub listed: String,
    pub sent: u64,
    pub received: usize,
}

pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Sleeps `d` in short steps; an error if the bench is interrupted.
fn pause(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stopped() {
            bail!("interrupted");
        }
        std::thread::sleep(Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())));
    }
    Ok(())
}

/// The machine's 1-minute load average.
pub fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("?").to_owned()
}

/// The hosts the probes use at size `n`: (multicast sender, receiver, the
/// pair whose path is cut, the host killed).
fn roles(n: usize) -> (usize, usize, (usize, usize), usize) {
    (1, n, (2, n), n / 2 + 1)
}

/// Runs every measure on a fresh lab of `n` hosts.
pub fn run_size(n: usize, cfg: &Cfg) -> SizeRun {
    let t_all = Instant::now();
    let mut run = SizeRun { n, wanted: n * (n - 1), ..SizeRun::default() };
    run.load.0 = load1();
    let r = measure(n, cfg, &mut run);
    if let Err(e) = r {
        run.errors.push(format!("{e:#}"));
    }
    run.total_s = t_all.elapsed().as_secs_f64();
    run.load.1 = load1();
    run
}

fn measure(n: usize, cfg: &Cfg, run: &mut SizeRun) -> Result<()> {
    let t = Instant::now();
    // No IPv6 and permanent neighbour entries: the underlay then carries
    // only the daemons' datagrams, and the machine's one ARP table does
    // not overflow (see the lab's module docs).
    let mut lab = Lab::builder(n).ipv6(false).static_neighbours(!cfg.arp).build().context("build the lab")?;
    run.setup_s = t.elapsed().as_secs_f64();
    log!("  N={n}: lab set up in {:.1} s", run.setup_s);
    // Measures come after the lab so that the lab is dropped last; the
    // teardown is timed by hand.
    let r = measure_on(&mut lab, n, cfg, run);
    let t = Instant::now();
    drop(lab);
    run.teardown_s = t.elapsed().as_secs_f64();
    log!("  N={n}: lab removed in {:.1} s", run.teardown_s);
    r
}

fn measure_on(lab: &mut Lab, n: usize, cfg: &Cfg, run: &mut SizeRun) -> Result<()> {
    let all: Vec<usize> = (1..=n).collect();
    let opts = |o: DaemonOpts| o.env("RUST_LOG", "info");
    let mut starts = vec![(1, opts(DaemonOpts::new()))];
    starts.extend((2..=n).map(|i| (i, opts(DaemonOpts::new().peer(1)))));
    let t = Instant::now();
    let last_start = lab.start_daemons(starts, cfg.wave);
    run.start_s = last_start.duration_since(t).as_secs_f64();
    log!("  N={n}: {n} daemons started in {:.1} s", run.start_s);

    converge(lab, &all, last_start, cfg.converge_cap(n), run)?;
    match counters(lab, &all) {
        Ok(c) => {
            log!("  N={n}: while forming: {}", c.summary(n));
            run.formation = Some(c);
        }
        Err(e) => run.errors.push(format!("counters: {e:#}")),
    }
    match &run.converge_s {
        Some(s) => log!("  N={n}: full mesh {s:.2} s after the last start"),
        None => log!(
            "  N={n}: not converged after {:.0} s: {} of {} sessions",
            cfg.converge_cap(n).as_secs_f64(),
            run.sessions,
            run.wanted
        ),
    }

    pause(cfg.settle)?;
    match idle(lab, cfg.idle) {
        Ok(i) => {
            log!(
                "  N={n}: idle {:.0} B/s per host (max {:.0}), daemons {:.1}% of a core, RSS {:.1} MiB (max {:.1})",
                i.bytes_mean(),
                i.bytes_max(),
                i.cpu_pct,
                i.rss_mean() / 1048576.0,
                i.rss_max() as f64 / 1048576.0
            );
            run.idle = Some(i);
        }
        Err(e) => run.errors.push(format!("idle: {e:#}")),
    }
    if let Some(window) = cfg.soak {
        match soak(lab, &all, window) {
            Ok(s) => {
                log!(
                    "  N={n}: soak of {:.0} s: {} peers declared down (false failures) {:?}, full mesh at the end: {}",
                    s.secs,
                    s.false_failures,
                    s.by_host,
                    s.full_at_end
                );
                run.soak = Some(s);
            }
            Err(e) => run.errors.push(format!("soak: {e:#}")),
        }
    }

    let (sender, receiver, (a, b), victim) = roles(n);
    for i in [sender, receiver, a, b] {
        lab.try_cli(i, &["expose", &format!("{}/16", Lab::overlay(i))]).with_context(|| format!("expose on h{i}"))?;
    }
    if stopped() {
        bail!("interrupted");
    }
    match join(lab, sender, receiver, cfg.probe_cap) {
        Ok(ms) => {
            log!("  N={n}: join on h{receiver} to first datagram from h{sender}: {ms:.0} ms");
            run.join_ms = Some(ms);
        }
        Err(e) => run.errors.push(format!("join: {e:#}")),
    }
    if stopped() {
        bail!("interrupted");
    }
    match cut(lab, a, b, cfg.probe_cap) {
        Ok(c) => {
            log!(
                "  N={n}: path h{a} -> h{b} cut: flowing again after {} ({})",
                c.resumed_s.map_or("never".into(), |s| format!("{s:.2} s")),
                c.listed
            );
            run.cut = Some(c);
        }
        Err(e) => run.errors.push(format!("path cut: {e:#}")),
    }
    if stopped() {
        bail!("interrupted");
    }
    match failure(lab, &all, victim, cfg.probe_cap) {
        Ok(f) => {
            log!(
                "  N={n}: h{victim} killed: not connected at all others after {}, neither connected nor relayed after {} \
                 (first seen as {:?})",
                f.all_s.map_or(format!("never ({} did not)", f.undetected), |s| format!("{s:.2} s")),
                f.gone_all_s.map_or(format!("never ({} did not)", f.not_gone), |s| format!("{s:.2} s")),
                f.states
            );
            run.failure = Some(f);
        }
        Err(e) => run.errors.push(format!("failure detection: {e:#}")),
    }
    Ok(())
}

/// Polls every host until all list all others as connected, or `cap`.
fn converge(lab: &Lab, all: &[usize], last_start: Instant, cap: Duration, run: &mut SizeRun) -> Result<()> {
    let every = converge_interval(all.len());
    loop {
        let round = Instant::now();
        let began = last_start.elapsed();
        let snap = lab.mesh_snapshot(all);
        let at = last_start.elapsed();
        run.sessions = snap.sessions();
        run.trajectory.push((began.as_secs_f64(), at.as_secs_f64(), run.sessions));
        if snap.full() {
            run.converge_s = Some(at.as_secs_f64());
            return Ok(());
        }
        if at >= cap {
            run.missing = Some(snap.summary(12));
            return Ok(());
        }
        if stopped() {
            bail!("interrupted");
        }
        std::thread::sleep(every.saturating_sub(round.elapsed()));
    }
}

/// What all daemons together counted since start (`GET /v1/status`):
/// where a forming mesh spends its handshakes and drops its packets.
#[derive(Debug, Default)]
pub struct Counters {
    /// Handshake counters by name (`initiated`, `completed`, ...), summed.
    pub handshakes: BTreeMap<String, u64>,
    /// Drops by reason, summed.
    pub drops: BTreeMap<String, u64>,
    /// Peers declared down by liveness, summed.
    pub peers_down: u64,
    /// Stalls of the daemons' own periodic work (200 ms late), summed.
    pub stalls: u64,
    /// The highest local health score (0 sound .. 8) of any daemon.
    pub worst_health: u64,
    /// Hosts that did not answer.
    pub unanswered: usize,
}

impl Counters {
    /// One line: handshakes per pair, peers declared down, the largest drops.
    pub fn summary(&self, n: usize) -> String {
        let pairs = (n * (n - 1) / 2).max(1) as f64;
        let hs = |k: &str| self.handshakes.get(k).copied().unwrap_or(0);
        let mut drops: Vec<(&String, &u64)> = self.drops.iter().collect();
        drops.sort_by(|a, b| b.1.cmp(a.1));
        let top: Vec<String> = drops.iter().take(6).map(|(k, v)| format!("{k} {v}")).collect();
        format!(
            "handshakes initiated {} ({:.2} per pair), completed {}, failed {}, rate-limited {}, cookies sent {}; \
             peers declared down {}; own stalls {}, worst local health {}; drops: {}{}",
            hs("initiated"),
            hs("initiated") as f64 / pairs,
            hs("completed"),
            hs("failed"),
            hs("rate_limited"),
            hs("cookies_sent"),
            self.peers_down,
            self.stalls,
            self.worst_health,
            if top.is_empty() { "none".into() } else { top.join(", ") },
            if self.unanswered > 0 { format!(" ({} hosts did not answer)", self.unanswered) } else { String::new() }
        )
    }

    pub fn to_json(&self) -> Value {
        json!({"handshakes": self.handshakes, "drops": self.drops, "peers_down": self.peers_down,
            "stalls": self.stalls, "worst_local_health": self.worst_health, "unanswered": self.unanswered})
    }
}

/// Sums every host's status counters.
fn counters(lab: &Lab, all: &[usize]) -> Result<Counters> {
    let mut c = Counters::default();
    for &i in all {
        let Ok(st) = lab.api_get(i, "/v1/status") else {
            c.unanswered += 1;
            continue;
        };
        if let Some(h) = st["handshakes"].as_object() {
            for (k, v) in h {
                *c.handshakes.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
            }
        }
        for d in st["drops"].as_array().into_iter().flatten() {
            if let (Some(r), Some(n)) = (d["reason"].as_str(), d["count"].as_u64()) {
                *c.drops.entry(r.to_string()).or_default() += n;
            }
        }
        c.peers_down += st["peers_down"].as_u64().unwrap_or(0);
        c.stalls += st["stalls"].as_u64().unwrap_or(0);
        c.worst_health = c.worst_health.max(st["local_health"].as_u64().unwrap_or(0));
    }
    if c.unanswered == all.len() {
        bail!("no host answered GET /v1/status");
    }
    Ok(c)
}

/// Every host's count of peers declared down (`GET /v1/status`).
fn peers_down(lab: &Lab, all: &[usize]) -> Result<Vec<u64>> {
    all.iter()
        .map(|&i| {
            let st = lab.api_get(i, "/v1/status")?;
            st["peers_down"].as_u64().with_context(|| format!("h{i}: status has no peers_down"))
        })
        .collect()
}

/// Leaves the mesh alone for `window` and counts the peers declared down.
fn soak(lab: &Lab, all: &[usize], window: Duration) -> Result<Soak> {
    let before = peers_down(lab, all)?;
    let t = Instant::now();
    while t.elapsed() < window {
        if stopped() {
            bail!("interrupted");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let secs = t.elapsed().as_secs_f64();
    let after = peers_down(lab, all)?;
    let by_host: Vec<(usize, u64)> = all
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(&i, (b, a))| (i, a.saturating_sub(*b)))
        .filter(|(_, d)| *d > 0)
        .collect();
    Ok(Soak {
        secs,
        false_failures: by_host.iter().map(|(_, d)| d).sum(),
        by_host,
        full_at_end: lab.mesh_snapshot(all).full(),
    })
}

/// Bytes on the underlay ports, daemons' CPU and memory over `window`.
fn idle(lab: &Lab, window: Duration) -> Result<Idle> {
    let pids: Vec<u32> = (1..=lab.len())
        .map(|i| lab.daemon_pid(i).with_context(|| format!("no daemon on h{i}")))
        .collect::<Result<_>>()?;
    let cpu = |pids: &[u32]| -> Result<f64> {
        pids.iter().map(|&p| proc_cpu_seconds(p).with_context(|| format!("daemon {p} is gone"))).sum()
    };
    let total = |b: &[weavers_tests::lab::PortBytes]| b.iter().map(|p| p.total()).sum::<u64>();
    let (b0, c0, t0) = (lab.underlay_port_bytes()?, cpu(&pids)?, Instant::now());
    // One read of the underlay's counters a second: the rate over time.
    let mut series = Vec::new();
    let (mut last, mut last_t) = (total(&b0), t0);
    for k in 1..=window.as_secs() {
        pause((t0 + Duration::from_secs(k)).saturating_duration_since(Instant::now()))?;
        let now = total(&lab.underlay_port_bytes()?);
        series.push((now - last) as f64 / last_t.elapsed().as_secs_f64() / pids.len() as f64);
        (last, last_t) = (now, Instant::now());
    }
    pause(window.saturating_sub(t0.elapsed()))?;
    let (b1, c1, secs) = (lab.underlay_port_bytes()?, cpu(&pids)?, t0.elapsed().as_secs_f64());
    let rss = pids
        .iter()
        .map(|&p| proc_rss_bytes(p).with_context(|| format!("daemon {p} is gone")))
        .collect::<Result<_>>()?;
    Ok(Idle {
        secs,
        bytes_per_s: b0.iter().zip(&b1).map(|(a, b)| (b.total() - a.total()) as f64 / secs).collect(),
        cpu_pct: (c1 - c0) / secs * 100.0,
        rss,
        series,
    })
}

/// A 1 kpps stream from `sender` to a group; `receiver` joins it: the time
/// from its join to its first datagram, in ms.
fn join(lab: &Lab, sender: usize, receiver: usize, cap: Duration) -> Result<f64> {
    let group = Ipv4Addr::new(239, 12, 0, 1);
    let port = 5120;
    let marker = streams::marker();
    let stream =
        Stream::start(lab.ns(sender), Some(Lab::overlay(sender)), SocketAddrV4::new(group, port), 1000, marker)?;
    // The stream runs (into no subscriber) before anyone joins.
    pause(Duration::from_secs(1))?;
    let took = streams::time_join(lab.ns(receiver), group, Lab::overlay(receiver), port, marker, cap);
    stream.stop()?;
    Ok(took?.as_secs_f64() * 1e3)
}

/// A 1 kpps unicast stream between the overlay addresses of `a` and `b`;
/// their direct underlay path is blocked: how long until datagrams sent
/// after the cut arrive (through a relay).
fn cut(lab: &Lab, a: usize, b: usize, cap: Duration) -> Result<Cut> {
    let port = 5121;
    let marker = streams::marker();
    let sink = Sink::start(lab.ns(b), SocketAddrV4::new(Lab::overlay(b), port), marker)?;
    let stream = Stream::start(lab.ns(a), None, SocketAddrV4::new(Lab::overlay(b), port), 1000, marker)?;
    let t = Instant::now();
    while sink.count() < 200 {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("h{a} -> h{b} carried {} of {} datagrams before any cut", sink.count(), stream.count());
        }
        pause(Duration::from_millis(20))?;
    }
    let mut seen = sink.count();
    lab.block(a, b);
    let t_cut = Instant::now();
    let resumed = (|| -> Result<Option<Duration>> {
        while t_cut.elapsed() < cap {
            let new = sink.since(seen);
            seen += new.len();
            for (seq, at) in new {
                if stream.sent_at(seq).is_some_and(|s| s > t_cut) {
                    return Ok(Some(at - t_cut));
                }
            }
            pause(Duration::from_millis(10))?;
        }
        Ok(None)
    })();
    let listed = match lab.api_peers(a) {
        Ok(rows) => rows
            .iter()
            .find(|r| r["name"] == format!("h{b}").as_str())
            .map_or("not listed".into(), |r| format!("{} via {}", r["state"], r["via"])),
        Err(e) => format!("{e:#}"),
    };
    lab.unblock(a, b);
    let received = sink.count();
    let (sent, _) = stream.stop()?;
    Ok(Cut { from: a, to: b, resumed_s: resumed?.map(|d| d.as_secs_f64()), listed, sent, received })
}

/// `kill -9` of `victim`'s daemon: how long until every other host lists
/// it as anything but connected, and until every one lists it as neither
/// connected nor relayed (or not at all).
fn failure(lab: &mut Lab, all: &[usize], victim: usize, cap: Duration) -> Result<Failure> {
    let every = failure_interval(all.len());
    let name = format!("h{victim}");
    // Hosts still to see it gone, and whether each has seen it not connected.
    let mut pending: Vec<(usize, bool)> = all.iter().copied().filter(|&i| i != victim).map(|i| (i, false)).collect();
    let others = pending.len();
    let (mut not_connected_s, mut gone_s) = (Vec::new(), Vec::new());
    let (mut states, mut states_gone) = (BTreeMap::new(), BTreeMap::new());
    lab.kill9(victim);
    let t = Instant::now();
    let lab = &*lab;
    while !pending.is_empty() && t.elapsed() < cap {
        let round = Instant::now();
        let views = par::map(&pending, weavers_tests::lab::POLL_WORKERS, |&(i, _)| {
            lab.api_peers_within(i, weavers_tests::lab::POLL_TIMEOUT).map(|rows| {
                rows.iter()
                    .find(|r| r["name"] == name.as_str())
                    .map_or("absent".to_owned(), |r| r["state"].as_str().unwrap_or("?").to_owned())
            })
        });
        let at = t.elapsed().as_secs_f64();
        let mut still = Vec::new();
        for (&(i, mut seen), v) in pending.iter().zip(views) {
            let Ok(state) = v else {
                still.push((i, seen));
                continue;
            };
            if !seen && state != "connected" {
                seen = true;
                not_connected_s.push(at);
                *states.entry(state.clone()).or_insert(0) += 1;
            }
            if state != "connected" && state != "relayed" {
                gone_s.push(at);
                *states_gone.entry(state).or_insert(0) += 1;
            } else {
                still.push((i, seen));
            }
        }
        pending = still;
        if stopped() {
            bail!("interrupted");
        }
        std::thread::sleep(every.saturating_sub(round.elapsed()));
    }
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    Ok(Failure {
        victim,
        all_s: (not_connected_s.len() == others).then(|| max(&not_connected_s)),
        gone_all_s: (gone_s.len() == others).then(|| max(&gone_s)),
        undetected: others - not_connected_s.len(),
        not_gone: others - gone_s.len(),
        per_host_s: not_connected_s,
        states,
        states_gone,
        poll_ms: every.as_millis() as u64,
    })
}

impl SizeRun {
    /// The longest poll round while the mesh formed, in seconds.
    pub fn slowest_round(&self) -> f64 {
        self.trajectory.iter().map(|(a, b, _)| b - a).fold(0.0, f64::max)
    }

    /// Everything measured, for the JSON file.
    pub fn to_json(&self) -> Value {
        let idle = self.idle.as_ref().map(|i| {
            json!({
                "window_s": i.secs,
                "bytes_per_s_per_host": {"mean": i.bytes_mean(), "max": i.bytes_max(), "h1": i.bytes_per_s.first()},
                "bytes_per_s_each": i.bytes_per_s.iter().map(|b| b.round()).collect::<Vec<_>>(),
                "cpu_pct_of_one_core": i.cpu_pct,
                "rss_bytes": {"mean": i.rss_mean(), "max": i.rss_max()},
                "bytes_per_s_per_host_each_second": i.series.iter().map(|b| b.round()).collect::<Vec<_>>(),
            })
        });
        let failure = self.failure.as_ref().map(|f| {
            json!({"victim": f.victim, "not_connected_all_s": f.all_s, "not_connected_median_s": median(&f.per_host_s),
                "not_connected_missing": f.undetected, "states_when_not_connected": f.states,
                "gone_all_s": f.gone_all_s, "gone_missing": f.not_gone, "states_when_gone": f.states_gone,
                "poll_ms": f.poll_ms})
        });
        let cut = self.cut.as_ref().map(|c| {
            json!({"from": c.from, "to": c.to, "resumed_s": c.resumed_s, "listed": c.listed,
                "sent": c.sent, "received": c.received})
        });
        let soak = self.soak.as_ref().map(|s| {
            json!({"window_s": s.secs, "false_failures": s.false_failures, "by_host": s.by_host,
                "full_mesh_at_end": s.full_at_end})
        });
        json!({
            "n": self.n,
            "setup_s": self.setup_s,
            "start_s": self.start_s,
            "converge_s": self.converge_s,
            "sessions": self.sessions,
            "sessions_wanted": self.wanted,
            "missing": self.missing,
            "formation_counters": self.formation.as_ref().map(Counters::to_json),
            "trajectory_start_end_sessions": self
                .trajectory
                .iter()
                .map(|(a, b, s)| json!([(a * 100.0).round() / 100.0, (b * 100.0).round() / 100.0, s]))
                .collect::<Vec<_>>(),
            "slowest_poll_round_s": self.slowest_round(),
            "idle": idle,
            "join_to_first_datagram_ms": self.join_ms,
            "failure": failure,
            "path_cut": cut,
            "soak": soak,
            "teardown_s": self.teardown_s,
            "total_s": self.total_s,
            "load1": {"start": self.load.0, "end": self.load.1},
            "errors": self.errors,
        })
    }
}

/// The median of `v` (None when empty).
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (!s.is_empty()).then(|| if s.len() % 2 == 1 { s[s.len() / 2] } else { (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0 })
}
