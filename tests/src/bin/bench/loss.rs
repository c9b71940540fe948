//! `bench --underlay-loss 1,5`: one TCP stream (iperf3, h1 -> h2) through
//! each system while the underlay drops a share of every IP packet at
//! random (nftables `numgen random mod 100 < P drop` on the underlay
//! bridge: every underlay port, both directions, UDP and TCP alike; see
//! [`weavers_tests::Lab::set_underlay_ip_loss`]). One lab per system and
//! run; the loss levels are measured one after the other on it.
//!
//! Issue 14's figures (measured on an earlier day and machine load, one TCP
//! stream) are shown for reference; what compares is the ratio to kernel
//! VXLAN taken in the same invocation.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use weavers_tests::Lab;

use crate::measure::{self, Cfg};
use crate::report::stat;
use crate::stopped;
use crate::systems::{self, System, Tools};

/// Issue 14's reference (percent, system, Gbit/s): "1% -> 6.0 Gbit/s,
/// kernel VXLAN 5.3, wireguard-go and boringtun 0.97; 5% -> 1.21, VXLAN 0.87".
const ISSUE: &[(u32, System, f64)] = &[
    (1, System::Weavers, 6.0),
    (1, System::Vxlan, 5.3),
    (1, System::WireguardGo, 0.97),
    (1, System::Boringtun, 0.97),
    (5, System::Weavers, 1.21),
    (5, System::Vxlan, 0.87),
];

/// One TCP measurement at one loss level.
#[derive(Clone, Debug)]
pub struct Point {
    pub run: usize,
    pub gbps: f64,
    pub retransmits: u64,
    /// Packets the underlay's rule dropped during the measurement.
    pub dropped: u64,
    /// weavers only: parity datagrams h1 sent, datagrams h2 rebuilt from
    /// parity, and parity groups h2 could not repair, during the measurement.
    pub parity: Option<[u64; 3]>,
}

/// weavers' parity counters now: h1's parity sent, h2's datagrams
/// rebuilt and failed repairs (`segmentation` in `weavers status --json`).
fn parity_counts(lab: &Lab) -> Option<[u64; 3]> {
    let (a, b) = (lab.try_cli_json(1, &["status", "--json"]).ok()?, lab.try_cli_json(2, &["status", "--json"]).ok()?);
    let n = |v: &Value, k: &str| v["segmentation"][k].as_u64();
    Some([n(&a, "parity_sent")?, n(&b, "datagrams_repaired")?, n(&b, "repairs_failed")?])
}

/// The points per system and loss level, and what went wrong.
#[derive(Default)]
pub struct LossResults {
    pub points: BTreeMap<(&'static str, u32), Vec<Point>>,
    pub notes: BTreeMap<&'static str, Vec<String>>,
}

impl LossResults {
    fn note(&mut self, sys: System, n: String) {
        self.notes.entry(sys.key()).or_default().push(n);
    }

    /// Median Gbit/s of `sys` at `pct`.
    fn median(&self, sys: System, pct: u32) -> Option<f64> {
        let v: Vec<f64> = self.points.get(&(sys.key(), pct))?.iter().map(|p| p.gbps).collect();
        stat(&v).map(|s| s.median)
    }

    /// Notes a failed or interrupted run of a system.
    pub fn failed(&mut self, sys: System, run: usize, e: &str) {
        self.note(sys, format!("run {run} failed: {}", e.lines().next().unwrap_or("")));
    }
}

/// Sets `sys` up on a fresh two-host lab and measures one TCP stream at
/// each of `levels` (percent) in turn.
pub fn run_system(
    sys: System,
    run: usize,
    levels: &[u32],
    rtt_ms: u32,
    cfg: &Cfg,
    tools: &Tools,
    res: &mut LossResults,
) -> Result<()> {
    // As in the main bench: kernel VXLAN needs IP fragments.
    let mut lab = Lab::builder(2).ipv6(false).drop_fragments(false).build().context("build the lab")?;
    // The loss rule counts packets as a wire has them, not 64 kB batches.
    lab.underlay_wire_packets().context("segmentation offloads off on the underlay")?;
    // A long path: h1's frames and those to it wait half the round trip each.
    let delay = match rtt_ms {
        0 => None,
        ms => Some(lab.delay_host(1, Duration::from_micros(u64::from(ms) * 500))?),
    };
    let dir = cfg.dir.join(format!("{}-loss-run{run}", sys.key()));
    std::fs::create_dir_all(&dir)?;
    let cfg = Cfg { dir: dir.clone(), ..cfg.clone() };
    let t0 = Instant::now();
    // Declared after `lab`: its processes stop before the namespaces go.
    let setup = systems::setup(sys, &mut lab, &dir, tools)?;
    log!("  {} set up in {:.1} s", sys.key(), t0.elapsed().as_secs_f64());
    for &pct in levels {
        lab.set_underlay_ip_loss(pct).context("the underlay's loss rule")?;
        let before = if sys == System::Weavers { parity_counts(&lab) } else { None };
        let r = measure::tcp(&lab, &setup, &cfg, &format!("r{run}-loss{pct}"));
        let dropped = lab.underlay_loss_dropped();
        let parity = before.zip(parity_counts(&lab)).map(|(b, a)| [0, 1, 2].map(|k| a[k].saturating_sub(b[k])));
        lab.set_underlay_ip_loss(0).context("removing the underlay's loss rule")?;
        match r {
            Ok(t) => {
                log!(
                    "  {pct}% loss: tcp {:.2} Gbit/s ({} retransmits, {dropped} packets dropped{})",
                    t.gbps,
                    t.retransmits,
                    parity
                        .map_or(String::new(), |[s, r, f]| format!("; parity {s} sent, {r} rebuilt, {f} groups lost"))
                );
                let p = Point { run, gbps: t.gbps, retransmits: t.retransmits, dropped, parity };
                res.points.entry((sys.key(), pct)).or_default().push(p);
            }
            Err(e) => {
                log!("  {pct}% loss: ERROR {e:#}");
                res.note(sys, format!("run {run}, {pct}% loss: {e:#}"));
            }
        }
        if stopped() {
            bail!("interrupted");
        }
    }
    drop(setup);
    if let Some(d) = delay {
        let overflowed = d.overflowed.load(std::sync::atomic::Ordering::Relaxed);
        if overflowed > 0 {
            res.note(sys, format!("run {run}: the delay line dropped {overflowed} frames (too many held)"));
        }
        d.stop()?;
    }
    drop(lab);
    Ok(())
}

/// Decimals that show a rate of `gbps` Gbit/s to three significant
/// figures, two at least (a long lossy path runs at a few Mbit/s).
fn rate_digits(gbps: f64) -> usize {
    if gbps <= 0.0 {
        return 2;
    }
    (2 - gbps.log10().floor() as i64).clamp(2, 6) as usize
}

/// A rate in Gbit/s (see [`rate_digits`]).
fn rate(gbps: f64) -> String {
    format!("{gbps:.*}", rate_digits(gbps))
}

fn cell(v: &[f64], digits: usize) -> String {
    match stat(v) {
        None => "n/a".into(),
        Some(s) if s.n == 1 || s.min == s.max => format!("{:.digits$}", s.median),
        Some(s) => format!("{:.digits$} ({:.digits$}-{:.digits$})", s.median, s.min, s.max),
    }
}

/// The markdown report.
pub fn markdown(r: &LossResults, systems: &[System], levels: &[u32], meta: &Value) -> String {
    let mut s = String::new();
    s.push_str("# weavers bench: one TCP stream under underlay loss\n\n");
    s.push_str(&format!(
        "{} - {} CPUs ({}), kernel {}, {} run(s) per figure; commit {}. Load average (1, 5, 15 min) at the start \
         {}, at the end {}.{}\n\n",
        meta["date"].as_str().unwrap_or("?"),
        meta["nproc"],
        meta["cpu"].as_str().unwrap_or("?"),
        meta["kernel"].as_str().unwrap_or("?"),
        meta["runs"],
        meta["commit"].as_str().unwrap_or("?"),
        meta["loadavg_start"].as_str().unwrap_or("?"),
        meta["loadavg_end"].as_str().unwrap_or("?"),
        if meta["weavers_tap_tso"] == false {
            " **weavers' TAP with TSO off** (`--weavers-tap-tso off`): weaversd gets MTU-sized frames, no super-frames."
        } else {
            ""
        },
    ));
    s.push_str(&format!(
        "iperf3, one stream h1 -> h2, {} s per figure, through each system on a fresh two-host lab, while the \
         underlay bridge drops that share of every IPv4/IPv6 packet at random (nftables `numgen random mod 100 < P \
         drop`, every port, both directions; ARP spared), the packets being wire-sized (segmentation offloads off on the \
         underlay, see How); TCP congestion control {}.{} Each cell: median (min-max) over the runs.\n\n",
        meta["tcp_secs"],
        meta["tcp_cc"].as_str().map_or("the machine's default".to_owned(), |c| format!("`{c}`")),
        match meta["underlay_rtt_ms"].as_u64() {
            Some(ms) if ms > 0 => format!(
                " **A long path**: h1's underlay link is delayed {} ms each way (`--underlay-rtt {ms}`: its round \
                 trips are {ms} ms longer; a delay line in user space, see How).",
                ms as f64 / 2.0
            ),
            _ => String::new(),
        }
    ));
    let table = |s: &mut String, title: &str, f: &dyn Fn(&Point) -> f64, digits: Option<usize>| {
        s.push_str(&format!("### {title}\n\n| loss |"));
        for sys in systems {
            s.push_str(&format!(" {} |", sys.title()));
        }
        s.push_str("\n|---|");
        s.push_str(&"---|".repeat(systems.len()));
        s.push('\n');
        for &pct in levels {
            s.push_str(&format!("| {pct}% |"));
            for sys in systems {
                let v: Vec<f64> = r.points.get(&(sys.key(), pct)).into_iter().flatten().map(f).collect();
                let digits = digits.unwrap_or_else(|| rate_digits(stat(&v).map_or(0.0, |s| s.median)));
                s.push_str(&format!(" {} |", cell(&v, digits)));
            }
            s.push('\n');
        }
        s.push('\n');
    };
    // Rates to three significant figures, each cell by its median.
    table(&mut s, "TCP throughput, Gbit/s", &|p| p.gbps, None);
    table(&mut s, "TCP retransmits (segments, sender's count)", &|p| p.retransmits as f64, Some(0));
    table(&mut s, "packets dropped by the underlay's rule during the stream", &|p| p.dropped as f64, Some(0));
    if systems.contains(&System::Weavers) {
        s.push_str(
            "### weavers' parity during the stream (h1's parity datagrams sent / datagrams h2 rebuilt from parity / \
             groups h2 could not repair; medians)\n\n| loss | sent | rebuilt | not repaired |\n|---|---|---|---|\n",
        );
        for &pct in levels {
            let pts: Vec<[u64; 3]> =
                r.points.get(&(System::Weavers.key(), pct)).into_iter().flatten().filter_map(|p| p.parity).collect();
            let col = |k: usize| cell(&pts.iter().map(|c| c[k] as f64).collect::<Vec<_>>(), 0);
            s.push_str(&format!("| {pct}% | {} | {} | {} |\n", col(0), col(1), col(2)));
        }
        s.push('\n');
    }

    let peers: Vec<System> = systems.iter().copied().filter(|&p| p != System::Weavers).collect();
    if systems.contains(&System::Weavers) && !peers.is_empty() {
        s.push_str("### weavers / peer (ratio of medians, same invocation)\n\n| loss |");
        for p in &peers {
            s.push_str(&format!(" / {} |", p.title()));
        }
        s.push_str("\n|---|");
        s.push_str(&"---|".repeat(peers.len()));
        s.push('\n');
        for &pct in levels {
            s.push_str(&format!("| {pct}% |"));
            for &p in &peers {
                s.push_str(&match (r.median(System::Weavers, pct), r.median(p, pct)) {
                    (Some(w), Some(x)) if x > 0.0 => format!(" {:.2} |", w / x),
                    _ => " - |".into(),
                });
            }
            s.push('\n');
        }
        s.push('\n');
    }
    if levels.contains(&0) {
        s.push_str("### share of each system's own rate without loss (medians)\n\n| loss |");
        for sys in systems {
            s.push_str(&format!(" {} |", sys.title()));
        }
        s.push_str("\n|---|");
        s.push_str(&"---|".repeat(systems.len()));
        s.push('\n');
        for &pct in levels.iter().filter(|&&p| p != 0) {
            s.push_str(&format!("| {pct}% |"));
            for &sys in systems {
                s.push_str(&match (r.median(sys, pct), r.median(sys, 0)) {
                    (Some(a), Some(b)) if b > 0.0 => format!(" {:.0}% |", 100.0 * a / b),
                    _ => " - |".into(),
                });
            }
            s.push('\n');
        }
        s.push('\n');
    }
    // Issue 14's figures were taken without delay.
    let rtt = meta["underlay_rtt_ms"].as_u64().unwrap_or(0);
    if rtt == 0 {
        s.push_str("### Issue 14's target: no worse than measured before\n\n");
        s.push_str(
            "| loss | system | issue 14 (earlier) | this run (median) | this run / earlier |\n|---|---|---|---|---|\n",
        );
        for &(pct, sys, gbps) in ISSUE.iter().filter(|(p, sys, _)| levels.contains(p) && systems.contains(sys)) {
            let now = r.median(sys, pct);
            s.push_str(&format!(
                "| {pct}% | {} | {gbps:.2} | {} | {} |\n",
                sys.title(),
                now.map_or("n/a".into(), rate),
                now.map_or("-".into(), |v| format!("{:.2}", v / gbps)),
            ));
        }
    }
    if systems.contains(&System::Weavers) && systems.contains(&System::Vxlan) {
        s.push_str(
            "\nweavers against kernel VXLAN in this invocation (the comparison that holds across machine loads):\n\n",
        );
        for &pct in levels.iter().filter(|&&p| p != 0) {
            if let (Some(w), Some(v)) = (r.median(System::Weavers, pct), r.median(System::Vxlan, pct)) {
                let was = if rtt == 0 { issue_ratio(pct) } else { None };
                let verdict = if w >= v { "at or above" } else { "**below**" };
                s.push_str(&format!(
                    "- {pct}%: weavers {} Gbit/s, VXLAN {}: {:.2}x, {verdict} VXLAN{}\n",
                    rate(w),
                    rate(v),
                    w / v,
                    was.map_or(String::new(), |x| format!(" (issue 14: {x:.2}x)"))
                ));
            }
        }
    }
    let notes: Vec<String> = systems
        .iter()
        .flat_map(|sys| r.notes.get(sys.key()).into_iter().flatten().map(move |n| format!("- {}: {n}", sys.title())))
        .collect();
    if !notes.is_empty() {
        s.push_str("\n## Notes from this run\n\n");
        for n in notes {
            s.push_str(&n);
            s.push('\n');
        }
    }
    s.push_str(METHOD);
    s
}

/// weavers over VXLAN in issue 14's figures at `pct`.
fn issue_ratio(pct: u32) -> Option<f64> {
    let f = |sys| ISSUE.iter().find(|(p, s, _)| *p == pct && *s == sys).map(|x| x.2);
    Some(f(System::Weavers)? / f(System::Vxlan)?)
}

const METHOD: &str = "
## How

- `bench --underlay-loss LEVELS` (percent, comma-separated): each system set up as in the main bench (see
  `bench/results/latest.md`: weaversd release build with `RUST_LOG=info`, kernel VXLAN with head-end replication,
  wireguard-go from Debian 12), then at each level the loss rule is put on the underlay bridge, iperf3 runs one
  stream h1 -> h2 (10 s; 3 s with `--quick`), and the rule is removed. The systems alternate within each run.
- Wire-sized packets: the lab's veths pass TCP (TSO) and UDP-GSO batches of up to 64 kB across the bridge as one
  packet, so a rule there would drop whole batches (40-odd wire packets at once) and punish the systems that batch.
  The loss bench turns segmentation offloads off on each host's eth0 (`ethtool -K eth0 tso off gso off
  tx-udp-segmentation off`) and GRO off on the bridge's ports (`Lab::underlay_wire_packets`): the kernel cuts
  batches into MTU-sized packets before the bridge, as a NIC does on the wire (in software here, so the rate without
  loss is lower than the main bench's, the bare underlay's most).
- The rule drops IP packets, not overlay frames: an overlay datagram that the underlay carries as two IP fragments
  (kernel VXLAN's 1550-byte packets on a 1500-byte underlay, if any) is lost when either is.
- `--underlay-rtt MS` lengthens h1's round trips by MS (the kernel here has no netem): h1's underlay port leaves
  the bridge and two threads of the bench carry its frames to and from the bridge MS/2 later each way
  (`Lab::delay_host`), the loss rule still on the bridge. The pump carries some 100k frames a second each way,
  far above what one TCP stream reaches on a lossy path that long.
- TCP congestion control: what the header says (`--tcp-cc NAME` passes `-C NAME` to iperf3; else the machine's
  default, `bbr` on these machines, which hardly slows down for random loss; `cubic`, most Linux hosts' default,
  halves its window at each loss and is what parity is for).
- 2 shared cores with other work on the machine: absolute figures move with the load; the ratios taken within one
  invocation are what compares.
";

/// The JSON report.
pub fn json(r: &LossResults, systems: &[System], levels: &[u32], meta: &Value) -> Value {
    let mut sys_json = serde_json::Map::new();
    for &sys in systems {
        let mut by = serde_json::Map::new();
        for &pct in levels {
            let pts = r.points.get(&(sys.key(), pct)).cloned().unwrap_or_default();
            let g: Vec<f64> = pts.iter().map(|p| p.gbps).collect();
            let st = stat(&g);
            by.insert(
                pct.to_string(),
                json!({
                    "tcp_gbps": st.map(|s| json!({"median": s.median, "min": s.min, "max": s.max})),
                    "runs": pts.iter().map(|p| json!({"run": p.run, "gbps": p.gbps, "retransmits": p.retransmits,
                        "underlay_dropped_packets": p.dropped,
                        "parity": p.parity.map(|[s, r, f]| json!({"sent": s, "rebuilt": r, "not_repaired": f}))}))
                        .collect::<Vec<_>>(),
                }),
            );
        }
        sys_json.insert(
            sys.key().into(),
            json!({"title": sys.title(), "loss_percent": by, "notes": r.notes.get(sys.key()).cloned().unwrap_or_default()}),
        );
    }
    let issue: Vec<Value> =
        ISSUE.iter().map(|(p, s, g)| json!({"loss_percent": p, "system": s.key(), "tcp_gbps": g})).collect();
    json!({"machine": meta, "loss_percent": levels, "systems": sys_json, "issue14_reference": issue})
}
