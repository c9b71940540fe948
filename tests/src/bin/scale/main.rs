//! The scale bench: the mesh at growing sizes on the namespace lab. For
//! each N, a fresh lab of N hosts whose daemons know only h1 at start;
//! time to a full mesh, idle underlay bytes per host, the daemons' CPU and
//! memory while idle, join to first multicast datagram, failure detection
//! after a `kill -9`, and the recovery of a unicast stream when the direct
//! path is cut. Prints a markdown table and the growth exponent of idle
//! bytes per host, and writes bench/results/scale.md and scale.json.
//!
//! Run by `bench/scale.sh`, which builds weavers in release mode. Needs
//! root. Every daemon is stopped by its PID and every namespace removed
//! when a size ends, also on Ctrl-C (the run stops at the next check,
//! within a second or so) or a panic.
//!
//! ```text
//! scale [--sizes 16,64,250] [--quick] [--idle SECS] [--cap SECS] [--wave N] [--arp] [--soak SECS] [--json FILE] [--md FILE]
//! ```

/// eprintln! that never panics (a closed stderr must not turn a clean-up
/// into an abort).
macro_rules! log {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

mod measure;
mod report;
mod streams;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use measure::{Cfg, SizeRun};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether Ctrl-C (or SIGTERM) asked the bench to stop.
pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

struct Args {
    sizes: Vec<usize>,
    quick: bool,
    idle: Option<u64>,
    cap: Option<u64>,
    wave: usize,
    arp: bool,
    soak: Option<u64>,
    json: PathBuf,
    md: PathBuf,
}

fn usage() -> ! {
    log!(
        "usage: scale [--sizes 16,64,250] [--quick] [--idle SECS] [--cap SECS] [--wave N] [--arp] [--soak SECS] \
         [--json FILE] [--md FILE]\n\
         sizes from 4 to 250 hosts; --idle: the idle window (default 30 s; keep it a multiple of 10 s, the \
         daemons' gossip period); --arp: hosts resolve each other by ARP instead of permanent \
         neighbour entries (the machine's one neighbour table overflows past about 32 hosts); --soak: after the idle \
         window, leave the mesh alone this long and count the peers any host declared down (false failures); --quick: 10 s idle \
         windows and shorter caps (for development)"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut a = Args {
        sizes: vec![16, 64, 250],
        quick: false,
        idle: None,
        cap: None,
        wave: 25,
        arp: false,
        soak: None,
        json: PathBuf::from("bench/results/scale.json"),
        md: PathBuf::from("bench/results/scale.md"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--sizes" => {
                a.sizes = val().split(',').map(|s| s.trim().parse().unwrap_or_else(|_| usage())).collect();
            }
            "--quick" => a.quick = true,
            "--idle" => a.idle = Some(val().parse().unwrap_or_else(|_| usage())),
            "--cap" => a.cap = Some(val().parse().unwrap_or_else(|_| usage())),
            "--wave" => a.wave = val().parse().unwrap_or_else(|_| usage()),
            "--arp" => a.arp = true,
            "--soak" => a.soak = Some(val().parse().unwrap_or_else(|_| usage())),
            "--json" => a.json = PathBuf::from(val()),
            "--md" => a.md = PathBuf::from(val()),
            _ => usage(),
        }
    }
    if a.sizes.is_empty() || a.sizes.iter().any(|&n| !(4..=250).contains(&n)) || a.wave == 0 {
        usage();
    }
    a
}

fn first_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_owned())
        .unwrap_or_default()
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default().trim().to_owned()
}

/// Raises this process's open-file limit (which the daemons inherit) to
/// its hard limit, at most 1,048,576; returns (soft, hard) after.
fn raise_nofile() -> (u64, u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid struct, on this process only.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            let want = r.rlim_max.min(1 << 20);
            if r.rlim_cur < want {
                let new = libc::rlimit { rlim_cur: want, rlim_max: r.rlim_max };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 {
                    r = new;
                }
            }
        }
    }
    (r.rlim_cur, r.rlim_max)
}

fn machine(args: &Args, cfg: &Cfg, nofile: (u64, u64)) -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let commit = first_line("git", &["rev-parse", "--short", "HEAD"]);
    let dirty =
        !first_line("git", &["status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"]).is_empty();
    let caps: Vec<String> =
        args.sizes.iter().map(|&n| format!("{} s at N={n}", cfg.converge_cap(n).as_secs())).collect();
    let polls: Vec<String> =
        args.sizes.iter().map(|&n| format!("{} ms at N={n}", measure::converge_interval(n).as_millis())).collect();
    json!({
        "date": first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "kernel": read_trim("/proc/sys/kernel/osrelease"),
        "commit": if dirty { format!("{commit} (with uncommitted changes outside bench/results)") } else { commit },
        "loadavg": read_trim("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "memory": std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| m.lines().next().map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))),
        "limits": {
            "nofile": {"soft": nofile.0, "hard": nofile.1},
            "neigh_gc_thresh3_machine": read_trim("/proc/sys/net/ipv4/neigh/default/gc_thresh3"),
            "pid_max": read_trim("/proc/sys/kernel/pid_max"),
        },
        "settings": {
            "sizes": args.sizes,
            "quick": args.quick,
            "idle_s": cfg.idle.as_secs(),
            "settle_s": cfg.settle.as_secs(),
            "probe_cap_s": cfg.probe_cap.as_secs(),
            "wave": cfg.wave,
            "neighbours": if cfg.arp { "ARP" } else { "permanent entries" },
            "converge_cap": caps.join(", "),
            "converge_poll": polls.join(", "),
        },
        "weaversd": weavers_tests::bins::dir().join("weaversd").display().to_string(),
    })
}

fn write_results(args: &Args, runs: &[SizeRun], meta: &Value) -> String {
    let md = report::markdown(runs, meta);
    let js = serde_json::to_string_pretty(&report::json(runs, meta)).unwrap_or_default() + "\n";
    for (path, text) in [(&args.md, &md), (&args.json, &js)] {
        if let Some(d) = path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        if let Err(e) = std::fs::write(path, text) {
            log!("scale: cannot write {}: {e}", path.display());
        }
    }
    md
}

fn main() {
    let args = parse_args();
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    if unsafe { libc::geteuid() } != 0 {
        log!("scale: run as root (sudo bench/scale.sh): the lab makes network namespaces");
        std::process::exit(1);
    }
    let nofile = raise_nofile();
    let max = args.sizes.iter().copied().max().unwrap_or(0) as u64;
    if nofile.0 < 4 * max + 256 {
        log!("scale: the open-file limit is {} (hard {}); {max} hosts want more", nofile.0, nofile.1);
    }
    let cfg = Cfg {
        converge_cap: args.cap.map(Duration::from_secs),
        // The gossip that spreads the new mesh ends a few seconds after it forms.
        settle: Duration::from_secs(if args.quick { 5 } else { 10 }),
        // A multiple of the daemons' 10 s gossip period: their rounds come
        // in bursts, so another window would catch one burst more or less.
        idle: Duration::from_secs(args.idle.unwrap_or(if args.quick { 10 } else { 30 })),
        probe_cap: Duration::from_secs(if args.quick { 30 } else { 60 }),
        wave: args.wave,
        arp: args.arp,
        soak: args.soak.map(Duration::from_secs),
    };
    let meta = machine(&args, &cfg, nofile);
    log!(
        "scale: sizes {:?}; weaversd from {}; machine {} CPUs, load {}",
        args.sizes,
        weavers_tests::bins::weaversd().display(),
        meta["nproc"],
        meta["loadavg"].as_str().unwrap_or("?")
    );
    let start = Instant::now();
    let mut runs: Vec<SizeRun> = Vec::new();
    for &n in &args.sizes {
        log!("[{:>5.0} s] N={n}", start.elapsed().as_secs_f64());
        let r = std::panic::catch_unwind(|| measure::run_size(n, &cfg));
        let run = r.unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            SizeRun { n, wanted: n * (n - 1), errors: vec![format!("panicked: {msg}")], ..SizeRun::default() }
        });
        log!("  N={n}: done in {:.0} s", run.total_s);
        runs.push(run);
        if stopped() {
            log!("scale: interrupted; everything it made is removed");
            std::process::exit(130);
        }
        // Partial results survive a later failure.
        write_results(&args, &runs, &meta);
    }
    let md = write_results(&args, &runs, &meta);
    log!(
        "scale: done in {:.0} s; wrote {} and {}",
        start.elapsed().as_secs_f64(),
        args.md.display(),
        args.json.display()
    );
    use std::io::Write as _;
    let _ = std::io::stdout().write_all(md.as_bytes());
}
