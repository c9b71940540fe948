//! The weavers bench: weavers against the bare underlay, wireguard-go,
//! boringtun, kernel VXLAN with head-end replication and VXLAN over
//! wireguard-go, each on a fresh namespace lab (the one the tests use, with
//! an underlay that drops multicast). TCP throughput (iperf3), 64-byte UDP
//! packet rate and loss (iperf2), one-way latency (sockperf ping-pong),
//! multicast from one sender to three receivers with a fourth host that
//! does not listen, and CPU per packet.
//!
//! Run by `bench/run.sh`, which installs the tools and builds weavers in
//! release mode. Needs root. Every process it starts is stopped by its PID
//! and every namespace removed when it ends, also on Ctrl-C.
//!
//! ```text
//! bench [--quick] [--runs N] [--systems underlay,weavers,...] [--json FILE] [--md FILE] [--boringtun PATH]
//!       [--underlay-loss PCT,PCT,... [--underlay-rtt MS]] [--weavers-tap-tso on|off] [--tcp-cc NAME]
//! ```
//!
//! With `--underlay-loss`, only one TCP stream is measured per system, at
//! each loss level in turn (see `loss.rs`); its report goes to `--json` and
//! `--md` as well (give them other names than the main bench's).
//! `--underlay-rtt MS` makes h1's round trips MS longer for it
//! ([`weavers_tests::DelayLine`]). `--tcp-cc NAME` runs every TCP stream
//! with that congestion control (iperf3 `-C`); the report names the one
//! used (the machine's default otherwise).

/// eprintln! that never panics (a closed stderr, e.g. `| head`, must not
/// turn a clean-up into an abort).
macro_rules! log {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

mod loss;
mod measure;
mod procs;
mod report;
mod systems;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use weavers_tests::Lab;

use measure::Cfg;
use report::Results;
use systems::{System, Tools};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether Ctrl-C (or SIGTERM) asked the bench to stop.
pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

struct Args {
    quick: bool,
    runs: usize,
    systems: Vec<System>,
    json: PathBuf,
    md: PathBuf,
    boringtun: Option<PathBuf>,
    /// Loss levels (percent) of the underlay-loss bench; None: the main bench.
    underlay_loss: Option<Vec<u32>>,
    /// `--weavers-tap-tso on|off` (see [`Tools::weavers_tap_tso`]).
    weavers_tap_tso: bool,
    /// `--underlay-rtt MS`: milliseconds added to h1's round trips on the
    /// underlay (loss bench only; see [`weavers_tests::DelayLine`]).
    underlay_rtt_ms: u32,
    /// `--tcp-cc NAME`: the TCP streams' congestion control (see
    /// [`measure::Cfg::tcp_cc`]).
    tcp_cc: Option<String>,
}

fn usage() -> ! {
    log!(
        "usage: bench [--quick] [--runs N] [--systems {}] [--json FILE] [--md FILE] [--boringtun PATH] \
         [--underlay-loss PCT,PCT,... [--underlay-rtt MS]] [--weavers-tap-tso on|off] [--tcp-cc NAME]",
        System::ALL.map(System::key).join(",")
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut a = Args {
        quick: false,
        runs: 0,
        systems: System::ALL.to_vec(),
        json: PathBuf::new(),
        md: PathBuf::new(),
        boringtun: std::env::var_os("BENCH_BORINGTUN").map(PathBuf::from),
        underlay_loss: None,
        weavers_tap_tso: true,
        underlay_rtt_ms: 0,
        tcp_cc: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--runs" => a.runs = val().parse().unwrap_or_else(|_| usage()),
            "--json" => a.json = PathBuf::from(val()),
            "--md" => a.md = PathBuf::from(val()),
            "--boringtun" => a.boringtun = Some(PathBuf::from(val())),
            "--weavers-tap-tso" => {
                a.weavers_tap_tso = match val().as_str() {
                    "on" => true,
                    "off" => false,
                    _ => usage(),
                }
            }
            "--underlay-loss" => {
                let levels: Vec<u32> = val()
                    .split(',')
                    .map(|p| p.trim().parse().ok().filter(|&p| p <= 100).unwrap_or_else(|| usage()))
                    .collect();
                a.underlay_loss = Some(levels);
            }
            "--tcp-cc" => {
                let cc = val();
                if cc.is_empty() || !cc.chars().all(|c| c.is_ascii_alphanumeric()) {
                    usage();
                }
                a.tcp_cc = Some(cc);
            }
            "--underlay-rtt" => {
                a.underlay_rtt_ms = val().parse().ok().filter(|&ms| ms <= 2000).unwrap_or_else(|| usage())
            }
            "--systems" => {
                a.systems = val().split(',').map(|k| System::from_key(k.trim()).unwrap_or_else(|| usage())).collect()
            }
            _ => usage(),
        }
    }
    if a.underlay_rtt_ms > 0 && a.underlay_loss.is_none() {
        log!("bench: --underlay-rtt goes with --underlay-loss");
        usage();
    }
    // The loss bench's report has a name of its own unless told otherwise.
    let name = if a.underlay_loss.is_some() { "loss" } else { "latest" };
    if a.json.as_os_str().is_empty() {
        a.json = PathBuf::from(format!("bench/results/{name}.json"));
    }
    if a.md.as_os_str().is_empty() {
        a.md = PathBuf::from(format!("bench/results/{name}.md"));
    }
    if a.runs == 0 {
        a.runs = if a.quick { 1 } else { 3 };
    }
    a
}

fn first_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let t = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
            t.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned()
        })
        .unwrap_or_else(|| "not found".into())
}

fn machine(args: &Args, tools: &Tools) -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
    let date = first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let commit = first_line("git", &["rev-parse", "--short", "HEAD"]);
    let dirty =
        !first_line("git", &["status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"]).is_empty();
    json!({
        "date": date,
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "kernel": kernel,
        "commit": if dirty { format!("{commit} (with uncommitted changes outside bench/results)") } else { commit },
        "runs": args.runs,
        "quick": args.quick,
        "loadavg_start": loadavg(),
        "weavers_tap_tso": args.weavers_tap_tso,
        "underlay_loss_percent": args.underlay_loss,
        "underlay_rtt_ms": args.underlay_rtt_ms,
        // What the TCP streams ran: the one asked for, else the machine's default.
        "tcp_cc": args.tcp_cc.clone().or_else(|| {
            std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").ok().map(|s| s.trim().to_owned())
        }),
        "tools": {
            "iperf3": first_line("iperf3", &["--version"]),
            "iperf": first_line("iperf", &["-v"]),
            "sockperf": first_line("sockperf", &["--version"]),
            "wireguard-go": first_line("wireguard-go", &["--version"]),
            "boringtun": tools.boringtun.as_ref().map(|b| first_line(&b.display().to_string(), &["-V"])),
            "weaversd": weavers_tests::bins::dir().join("weaversd").display().to_string(),
        },
    })
}

/// The machine's load average (1, 5, 15 minutes), as /proc/loadavg has it.
fn loadavg() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Sets one system up on a fresh lab, measures it once, and records the figures.
fn run_system(sys: System, run: usize, args: &Args, cfg: &Cfg, tools: &Tools, res: &mut Results) -> Result<()> {
    let hosts = if sys.multicast() { 5 } else { 2 };
    // Kernel VXLAN, one of the systems compared, needs IP fragments (its
    // encapsulation makes a 1500-byte frame 1550 bytes on the underlay).
    let mut lab = Lab::builder(hosts).ipv6(false).drop_fragments(false).build().context("build the lab")?;
    let dir = cfg.dir.join(format!("{}-run{run}", sys.key()));
    std::fs::create_dir_all(&dir)?;
    let cfg = Cfg { dir: dir.clone(), ..cfg.clone() };
    let t0 = Instant::now();
    // `setup` is declared after `lab`, so it is dropped (its processes
    // stopped) before the lab's namespaces are removed.
    let setup = systems::setup(sys, &mut lab, &dir, tools)?;
    log!("  {} set up in {:.1} s", sys.key(), t0.elapsed().as_secs_f64());
    let mut raw = serde_json::Map::new();
    let mut errors = Vec::new();
    let tag = format!("r{run}");

    match measure::tcp(&lab, &setup, &cfg, &tag) {
        Ok(t) => {
            log!("  tcp {:.2} Gbit/s ({} retransmits)", t.gbps, t.retransmits);
            res.add(sys, "tcp_gbps", t.gbps);
            res.add(sys, "tcp_retransmits", t.retransmits as f64);
            let gb = t.bytes / 1e9;
            if gb > 0.0 {
                if !setup.overlay_pids.is_empty() {
                    res.add(sys, "cpu_tcp_overlay", t.cpu_procs / gb);
                }
                res.add(sys, "cpu_tcp_machine", t.cpu_machine / gb);
            }
            raw.insert(
                "tcp".into(),
                json!({"gbps": t.gbps, "retransmits": t.retransmits, "bytes": t.bytes,
                "cpu_overlay_s": t.cpu_procs, "cpu_machine_s": t.cpu_machine}),
            );
        }
        Err(e) => errors.push(format!("tcp: {e:#}")),
    }
    if stopped() {
        bail!("interrupted");
    }
    match measure::udp(&lab, &setup, &cfg, &tag) {
        Ok(s) => {
            let best = s.best.as_ref().map_or(0.0, |b| b.sent_pps);
            log!(
                "  udp {:.1} kpps at <= 1% loss; full rate: sent {:.1} kpps, received {:.1} kpps ({:.1}% loss)",
                best / 1e3,
                s.flood.sent_pps / 1e3,
                s.flood.min_recv() / 1e3,
                s.flood.worst_loss() * 100.0
            );
            res.add(sys, "udp_pps_1pct", best);
            res.add(sys, "udp_full_recv_pps", s.flood.min_recv());
            res.add(sys, "udp_full_sent_pps", s.flood.sent_pps);
            res.add(sys, "udp_full_loss", s.flood.worst_loss());
            if let Some(b) = &s.best {
                let pk = b.packets();
                if pk > 0.0 {
                    if !setup.overlay_pids.is_empty() {
                        res.add(sys, "cpu_udp_overlay", b.cpu_procs / pk * 1e6);
                    }
                    res.add(sys, "cpu_udp_machine", b.cpu_machine / pk * 1e6);
                }
            }
            raw.insert("udp_trials".into(), s.trials.iter().map(|t| t.to_json()).collect());
        }
        Err(e) => errors.push(format!("udp: {e:#}")),
    }
    if stopped() {
        bail!("interrupted");
    }
    match measure::latency(&lab, &setup, &cfg, &tag) {
        Ok(l) => {
            log!("  latency one-way p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us", l.p50, l.p99, l.p999);
            res.add(sys, "lat_p50", l.p50);
            res.add(sys, "lat_p99", l.p99);
            res.add(sys, "lat_p999", l.p999);
            raw.insert("latency_us".into(), json!({"avg": l.avg, "p50": l.p50, "p99": l.p99, "p999": l.p999}));
        }
        Err(e) => errors.push(format!("latency: {e:#}")),
    }
    if stopped() {
        bail!("interrupted");
    }
    if sys.multicast() {
        match measure::multicast(&lab, &setup, &cfg, &tag) {
            Ok(m) => {
                let best = m.search.best.as_ref().map_or(0.0, |b| b.sent_pps);
                let f = &m.search.flood;
                log!(
                    "  multicast {:.1} kpps at <= 0.1% loss; full rate: sent {:.1} kpps, worst receiver {:.1} kpps \
                     ({:.1}% loss); non-listener: {} overlay frames, {} B on eth0",
                    best / 1e3,
                    f.sent_pps / 1e3,
                    f.min_recv() / 1e3,
                    f.worst_loss() * 100.0,
                    m.nonlistener_frames.map_or("?".into(), |n| n.to_string()),
                    m.nonlistener_bytes
                );
                res.add(sys, "mcast_pps_01pct", best);
                if let Some(j) = m.join_secs {
                    res.add(sys, "mcast_join_secs", j);
                }
                res.add(sys, "mcast_full_sent_pps", f.sent_pps);
                res.add(sys, "mcast_full_min_recv_pps", f.min_recv());
                res.add(sys, "mcast_full_worst_loss", f.worst_loss());
                if let Some(n) = m.nonlistener_frames {
                    res.add(sys, "prune_nonlistener_frames", n as f64);
                }
                if !m.receiver_frames.is_empty() {
                    let avg = m.receiver_frames.iter().sum::<u64>() as f64 / m.receiver_frames.len() as f64;
                    res.add(sys, "prune_receiver_frames", avg);
                }
                res.add(sys, "prune_nonlistener_kbytes", m.nonlistener_bytes as f64);
                if !m.receiver_bytes.is_empty() {
                    let avg = m.receiver_bytes.iter().sum::<u64>() as f64 / m.receiver_bytes.len() as f64;
                    res.add(sys, "prune_receiver_kbytes", avg);
                }
                if let Some(b) = &m.search.best {
                    let pk = b.packets();
                    if pk > 0.0 {
                        if !setup.overlay_pids.is_empty() {
                            res.add(sys, "cpu_mcast_overlay", b.cpu_procs / pk * 1e6);
                        }
                        res.add(sys, "cpu_mcast_machine", b.cpu_machine / pk * 1e6);
                    }
                }
                raw.insert("multicast_trials".into(), m.search.trials.iter().map(|t| t.to_json()).collect());
                raw.insert(
                    "pruning".into(),
                    json!({"join_secs": m.join_secs, "nonlistener_overlay_frames": m.nonlistener_frames, "receiver_overlay_frames": m.receiver_frames, "nonlistener_eth0_bytes": m.nonlistener_bytes,
                        "nonlistener_eth0_packets": m.nonlistener_packets, "receiver_eth0_bytes": m.receiver_bytes}),
                );
            }
            Err(e) => errors.push(format!("multicast: {e:#}")),
        }
    }
    raw.insert("run".into(), json!(run));
    raw.insert("errors".into(), json!(errors));
    res.raw.entry(sys.key()).or_default().push(Value::Object(raw));
    for e in &errors {
        log!("  ERROR {e}");
        res.note(sys, format!("run {run}: {e}"));
    }
    drop(setup);
    drop(lab);
    let _ = args;
    if stopped() {
        bail!("interrupted");
    }
    Ok(())
}

fn main() {
    let args = parse_args();
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    if unsafe { libc::geteuid() } != 0 {
        log!("bench: run as root (sudo bench/run.sh): the lab makes network namespaces");
        std::process::exit(1);
    }
    for t in ["iperf", "iperf3", "sockperf", "wireguard-go", "wg", "stdbuf"] {
        if first_line("sh", &["-c", &format!("command -v {t}")]).is_empty() {
            log!("bench: {t} is missing (bench/run.sh installs it)");
            std::process::exit(1);
        }
    }
    let tools =
        Tools { boringtun: args.boringtun.clone().filter(|p| p.is_file()), weavers_tap_tso: args.weavers_tap_tso };
    let dir = std::env::temp_dir().join(format!("weavers-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let cfg = if args.quick {
        Cfg { tcp_secs: 3, trial_secs: 1, lat_secs: 2, search_steps: 4, dir: dir.clone(), tcp_cc: args.tcp_cc.clone() }
    } else {
        Cfg { tcp_secs: 10, trial_secs: 2, lat_secs: 5, search_steps: 5, dir: dir.clone(), tcp_cc: args.tcp_cc.clone() }
    };
    let mut meta = machine(&args, &tools);
    meta["tcp_secs"] = cfg.tcp_secs.into();
    log!(
        "bench: {} run(s) of {}; weaversd from {}",
        args.runs,
        args.systems.iter().map(|s| s.key()).collect::<Vec<_>>().join(", "),
        weavers_tests::bins::dir().display()
    );
    let mut res = Results::default();
    let mut loss_res = loss::LossResults::default();
    let start = Instant::now();
    let mut failed = false;
    'runs: for run in 1..=args.runs {
        // Systems alternate within each run, so that slow drifts of the
        // shared machine spread over all of them.
        for &sys in &args.systems {
            if sys == System::Boringtun && tools.boringtun.is_none() {
                if run == 1 {
                    res.note(
                        sys,
                        "skipped: boringtun-cli is not installed (bench/run.sh tries `cargo install boringtun-cli`)"
                            .into(),
                    );
                }
                continue;
            }
            log!("[{:>4.0} s] run {run}/{}: {}", start.elapsed().as_secs_f64(), args.runs, sys.key());
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &args.underlay_loss {
                None => run_system(sys, run, &args, &cfg, &tools, &mut res),
                Some(levels) => loss::run_system(sys, run, levels, args.underlay_rtt_ms, &cfg, &tools, &mut loss_res),
            }));
            let err = match r {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(p) => Some(
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panic".into()),
                ),
            };
            if stopped() {
                log!("bench: interrupted; everything it made is removed");
                failed = true;
                break 'runs;
            }
            if let Some(e) = err {
                log!("  FAILED: {e}");
                res.note(sys, format!("run {run} failed: {}", e.lines().next().unwrap_or("")));
                loss_res.failed(sys, run, &e);
            }
        }
    }
    if failed {
        let _ = std::fs::remove_dir_all(&dir);
        std::process::exit(130);
    }
    log!("bench: done in {:.0} s", start.elapsed().as_secs_f64());
    meta["loadavg_end"] = loadavg().into();
    let (md, js) = match &args.underlay_loss {
        None => (report::markdown(&res, &args.systems, &meta), report::json(&res, &args.systems, &meta)),
        Some(levels) => (
            loss::markdown(&loss_res, &args.systems, levels, &meta),
            loss::json(&loss_res, &args.systems, levels, &meta),
        ),
    };
    for (path, text) in [(&args.md, md.clone()), (&args.json, serde_json::to_string_pretty(&js).unwrap() + "\n")] {
        if let Some(d) = path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        if let Err(e) = std::fs::write(path, text) {
            log!("bench: cannot write {}: {e}", path.display());
        } else {
            log!("bench: wrote {}", path.display());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    use std::io::Write as _;
    let _ = std::io::stdout().write_all(md.as_bytes());
}
