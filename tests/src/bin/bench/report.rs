//! Figures over runs (median, min, max), the markdown table, ratios of
//! weavers to each peer, the targets, and the JSON.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::systems::System;

/// How a figure reads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    /// No direction (context figures).
    None,
}

/// A figure's definition.
pub struct Def {
    pub key: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    pub better: Better,
    /// Digits after the point in the table.
    pub digits: usize,
}

pub const DEFS: &[Def] = &[
    Def { key: "tcp_gbps", title: "TCP throughput, 1 stream", unit: "Gbit/s", better: Better::Higher, digits: 2 },
    Def { key: "tcp_retransmits", title: "TCP retransmits", unit: "segments", better: Better::None, digits: 0 },
    Def {
        key: "udp_pps_1pct",
        title: "UDP 64 B: highest rate with <= 1% loss",
        unit: "kpps",
        better: Better::Higher,
        digits: 1,
    },
    Def {
        key: "udp_full_recv_pps",
        title: "UDP 64 B at full rate: received",
        unit: "kpps",
        better: Better::Higher,
        digits: 1,
    },
    Def {
        key: "udp_full_sent_pps",
        title: "UDP 64 B at full rate: sent",
        unit: "kpps",
        better: Better::None,
        digits: 1,
    },
    Def { key: "udp_full_loss", title: "UDP 64 B at full rate: loss", unit: "%", better: Better::Lower, digits: 1 },
    Def { key: "lat_p50", title: "one-way latency p50", unit: "us", better: Better::Lower, digits: 1 },
    Def { key: "lat_p99", title: "one-way latency p99", unit: "us", better: Better::Lower, digits: 1 },
    Def { key: "lat_p999", title: "one-way latency p99.9", unit: "us", better: Better::Lower, digits: 1 },
    Def {
        key: "mcast_pps_01pct",
        title: "multicast 64 B, 1 -> 3: highest rate with <= 0.1% loss at every receiver",
        unit: "kpps",
        better: Better::Higher,
        digits: 1,
    },
    Def {
        key: "mcast_full_sent_pps",
        title: "multicast at full rate: sent",
        unit: "kpps",
        better: Better::None,
        digits: 1,
    },
    Def {
        key: "mcast_full_min_recv_pps",
        title: "multicast at full rate: received by the worst receiver",
        unit: "kpps",
        better: Better::Higher,
        digits: 1,
    },
    Def {
        key: "mcast_full_worst_loss",
        title: "multicast at full rate: loss at the worst receiver",
        unit: "%",
        better: Better::Lower,
        digits: 1,
    },
    Def {
        key: "prune_nonlistener_frames",
        title: "pruning: overlay frames delivered to the non-listener during the full-rate trial",
        unit: "frames",
        better: Better::Lower,
        digits: 0,
    },
    Def {
        key: "prune_nonlistener_kbytes",
        title: "pruning: bytes on the non-listener's eth0 during the full-rate trial (all traffic)",
        unit: "kB",
        better: Better::Lower,
        digits: 1,
    },
    Def {
        key: "mcast_join_secs",
        title: "weavers: seconds until the sender lists the 3 receivers as subscribed",
        unit: "s",
        better: Better::None,
        digits: 1,
    },
    Def {
        key: "prune_receiver_frames",
        title: "(for scale) overlay frames delivered to each receiver in that trial",
        unit: "frames",
        better: Better::None,
        digits: 0,
    },
    Def {
        key: "prune_receiver_kbytes",
        title: "(for scale) bytes on each receiver's eth0 in that trial",
        unit: "kB",
        better: Better::None,
        digits: 0,
    },
    Def {
        key: "cpu_tcp_overlay",
        title: "CPU of the overlay processes per GB of TCP",
        unit: "CPU-s/GB",
        better: Better::Lower,
        digits: 2,
    },
    Def {
        key: "cpu_tcp_machine",
        title: "CPU of the whole machine per GB of TCP",
        unit: "CPU-s/GB",
        better: Better::Lower,
        digits: 2,
    },
    Def {
        key: "cpu_udp_overlay",
        title: "CPU of the overlay processes per 64 B UDP packet (at the <= 1% rate)",
        unit: "us",
        better: Better::Lower,
        digits: 2,
    },
    Def {
        key: "cpu_udp_machine",
        title: "CPU of the whole machine per 64 B UDP packet (at the <= 1% rate)",
        unit: "us",
        better: Better::Lower,
        digits: 2,
    },
    Def {
        key: "cpu_mcast_overlay",
        title: "CPU of the overlay processes per delivered multicast packet (at the <= 0.1% rate)",
        unit: "us",
        better: Better::Lower,
        digits: 2,
    },
    Def {
        key: "cpu_mcast_machine",
        title: "CPU of the whole machine per delivered multicast packet (at the <= 0.1% rate)",
        unit: "us",
        better: Better::Lower,
        digits: 2,
    },
];

pub fn def(key: &str) -> &'static Def {
    DEFS.iter().find(|d| d.key == key).unwrap_or_else(|| panic!("no figure {key}"))
}

/// Values of each figure over the runs, per system.
#[derive(Default)]
pub struct Results {
    /// system key -> figure key -> values (one per run that produced it).
    pub values: BTreeMap<&'static str, BTreeMap<&'static str, Vec<f64>>>,
    /// system key -> notes (errors, skips).
    pub notes: BTreeMap<&'static str, Vec<String>>,
    /// system key -> raw per-run JSON.
    pub raw: BTreeMap<&'static str, Vec<Value>>,
}

#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

pub fn stat(v: &[f64]) -> Option<Stat> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
    Some(Stat { median, min: s[0], max: s[n - 1], n })
}

impl Results {
    pub fn add(&mut self, sys: System, key: &'static str, v: f64) {
        def(key);
        if v.is_finite() {
            self.values.entry(sys.key()).or_default().entry(key).or_default().push(v);
        }
    }

    pub fn note(&mut self, sys: System, note: String) {
        let n = self.notes.entry(sys.key()).or_default();
        if !n.contains(&note) {
            n.push(note);
        }
    }

    pub fn get(&self, sys: System, key: &str) -> Option<Stat> {
        self.values.get(sys.key()).and_then(|m| m.get(key)).and_then(|v| stat(v))
    }

    /// weavers' median over `peer`'s median.
    pub fn ratio(&self, key: &str, peer: System) -> Option<f64> {
        let w = self.get(System::Weavers, key)?.median;
        let p = self.get(peer, key)?.median;
        (p != 0.0).then(|| w / p)
    }
}

/// Unit scaling from the stored value (pps, fractions, bytes) to the shown one.
fn scale(d: &Def) -> f64 {
    match d.unit {
        "kpps" => 1e-3,
        "%" => 100.0,
        "kB" => 1e-3,
        _ => 1.0,
    }
}

fn fmt(v: f64, digits: usize) -> String {
    format!("{v:.digits$}")
}

fn cell(r: &Results, sys: System, d: &Def) -> String {
    match r.get(sys, d.key) {
        None => "n/a".into(),
        Some(s) => {
            let k = scale(d);
            if s.n == 1 || (s.min == s.max) {
                fmt(s.median * k, d.digits)
            } else {
                format!("{} ({}-{})", fmt(s.median * k, d.digits), fmt(s.min * k, d.digits), fmt(s.max * k, d.digits))
            }
        }
    }
}

/// The targets of issue 5: (text, met?) with the figures behind them.
pub fn targets(r: &Results) -> Vec<(String, Option<bool>, String)> {
    let mut t = Vec::new();
    let ratio = |k: &str, p: System| r.ratio(k, p);
    let tcp = ratio("tcp_gbps", System::WireguardGo);
    t.push((
        "TCP >= 3x wireguard-go".to_string(),
        tcp.map(|x| x >= 3.0),
        tcp.map_or("n/a".into(), |x| format!("{x:.2}x")),
    ));
    let udp = ratio("udp_pps_1pct", System::WireguardGo);
    t.push((
        "UDP 64 B pps at <= 1% loss >= 2x wireguard-go".into(),
        udp.map(|x| x >= 2.0),
        udp.map_or("n/a".into(), |x| format!("{x:.2}x")),
    ));
    let p99 = (r.get(System::Weavers, "lat_p99"), r.get(System::WireguardGo, "lat_p99"));
    t.push((
        "p99 one-way latency <= wireguard-go's".into(),
        match p99 {
            (Some(w), Some(g)) => Some(w.median <= g.median),
            _ => None,
        },
        match p99 {
            (Some(w), Some(g)) => format!("{:.1} us vs {:.1} us", w.median, g.median),
            _ => "n/a".into(),
        },
    ));
    // DESIGN.md: weavers aims above every peer, boringtun included.
    let (bt_tcp, bt_udp) = (ratio("tcp_gbps", System::Boringtun), ratio("udp_pps_1pct", System::Boringtun));
    t.push((
        "(DESIGN) TCP and UDP 64 B rate above boringtun".into(),
        bt_tcp.zip(bt_udp).map(|(a, b)| a > 1.0 && b > 1.0),
        match (bt_tcp, bt_udp) {
            (Some(a), Some(b)) => format!("TCP {a:.2}x, UDP {b:.2}x"),
            _ => "n/a".into(),
        },
    ));
    let bt99 = (r.get(System::Weavers, "lat_p99"), r.get(System::Boringtun, "lat_p99"));
    t.push((
        "(DESIGN) p99 one-way latency <= boringtun's".into(),
        match bt99 {
            (Some(w), Some(g)) => Some(w.median <= g.median),
            _ => None,
        },
        match bt99 {
            (Some(w), Some(g)) => format!("{:.1} us vs {:.1} us", w.median, g.median),
            _ => "n/a".into(),
        },
    ));
    let m = ratio("mcast_pps_01pct", System::Vxlan);
    t.push((
        "multicast rate with <= 0.1% loss per receiver >= kernel VXLAN HER".into(),
        m.map(|x| x >= 1.0),
        m.map_or("n/a".into(), |x| format!("{x:.2}x")),
    ));
    let p = r.get(System::Weavers, "prune_nonlistener_frames");
    t.push((
        "no multicast data to the non-listening host".into(),
        p.map(|s| s.max == 0.0),
        p.map_or("n/a".into(), |s| {
            let kb = r.get(System::Weavers, "prune_nonlistener_kbytes").map_or(f64::NAN, |b| b.median / 1e3);
            format!("{:.0} frames delivered (max over runs); {kb:.1} kB of other traffic on its eth0", s.max)
        }),
    ));
    t
}

pub fn markdown(r: &Results, systems: &[System], meta: &Value) -> String {
    let mut s = String::new();
    s.push_str("# weavers bench\n\n");
    s.push_str(&format!(
        "{} - {} CPUs ({}), kernel {}, {} run(s) per figure{}; commit {}.\n\n",
        meta["date"].as_str().unwrap_or("?"),
        meta["nproc"],
        meta["cpu"].as_str().unwrap_or("?"),
        meta["kernel"].as_str().unwrap_or("?"),
        meta["runs"],
        if meta["quick"].as_bool() == Some(true) { " (--quick: shorter, not for comparison)" } else { "" },
        meta["commit"].as_str().unwrap_or("?"),
    ));
    s.push_str("Each cell: median (min-max) over the runs. Unicast: h1 -> h2. Multicast: h1 -> h2, h3, h4; h5 does not listen. ");
    s.push_str("Machine CPU includes the traffic tools and the kernel's softirq work; for kernel VXLAN that is the only CPU figure.\n\n");
    s.push_str("| figure | unit |");
    for sys in systems {
        s.push_str(&format!(" {} |", sys.title()));
    }
    s.push_str("\n|---|---|");
    for _ in systems {
        s.push_str("---|");
    }
    s.push('\n');
    for d in DEFS {
        if !systems.iter().any(|&sys| r.get(sys, d.key).is_some()) {
            continue;
        }
        s.push_str(&format!("| {} | {} |", d.title, d.unit));
        for &sys in systems {
            s.push_str(&format!(" {} |", cell(r, sys, d)));
        }
        s.push('\n');
    }
    let peers: Vec<System> = systems.iter().copied().filter(|&p| p != System::Weavers).collect();
    if systems.contains(&System::Weavers) && !peers.is_empty() {
        s.push_str("\n## weavers / peer (ratio of medians)\n\n");
        s.push_str("Above 1 is better for weavers where more is better (throughput, rates), below 1 where less is (latency, CPU, loss).\n\n| figure |");
        for p in &peers {
            s.push_str(&format!(" / {} |", p.title()));
        }
        s.push_str("\n|---|");
        for _ in &peers {
            s.push_str("---|");
        }
        s.push('\n');
        for d in
            DEFS.iter().filter(|d| d.better != Better::None && d.unit != "%" && d.unit != "frames" && d.unit != "kB")
        {
            if r.get(System::Weavers, d.key).is_none() {
                continue;
            }
            s.push_str(&format!("| {} |", d.title));
            for &p in &peers {
                s.push_str(&match r.ratio(d.key, p) {
                    Some(x) => format!(" {x:.2} |"),
                    None => " - |".into(),
                });
            }
            s.push('\n');
        }
    }
    s.push_str("\n## Targets (reported, not asserted)\n\n| target | met | figure |\n|---|---|---|\n");
    for (text, met, fig) in targets(r) {
        let m = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        s.push_str(&format!("| {text} | {m} | {fig} |\n"));
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

/// How the figures were taken, and what limits them.
const METHOD: &str = "
## How

- Every system runs on a fresh lab of the tests (`tests/src/lab.rs`): hosts are network namespaces on veth pairs to
  a bridge that drops multicast. 2 hosts for the unicast-only systems, 5 for the others. Systems alternate within each
  run, so slow drifts of the shared machine spread over all of them.
- weavers: `weaversd` (release build, `RUST_LOG=info`) on every host, all peering with h1, `weavers expose 10.40.0.I/16`
  (which routes 224.0.0.0/4 through the bridge). wireguard-go and boringtun (defaults; boringtun-cli 0.7.1 with its
  default 4 threads): a full mesh configured with `wg set`. VXLAN: VNI 42 on eth0 with an all-zeros FDB entry per
  other host (head-end replication) in a bridge with snooping off, 224.0.0.0/4 routed through it; VXLAN over wg-go is
  the same on the wireguard-go mesh (MTU 1370).
- Versions matter: wireguard-go is Debian 12's package (0.0.20220316), older than wireguard-go's 2023 work on batched
  I/O and offloads (TUN TSO/GRO, UDP GSO/GRO), which multiplies its TCP throughput; a current build would narrow
  weavers' TCP lead over it a great deal (Debian 12's Go 1.19 cannot build one). boringtun 0.7.1 has no such
  offloads. weavers uses TAP offloads (TSO) and UDP GSO/GRO.
- TCP: iperf3, one stream h1 -> h2. UDP: iperf2, 64-byte payloads, server with a 2 MB receive buffer; a trial at
  1 Mpps offered (\"full rate\"), then a bisection for the highest rate with <= 1% loss (multicast: <= 0.1% at every
  receiver); the rate shown is what the sender actually sent in the best passing trial. Loss is counted against what
  the sender sent. Latency: sockperf ping-pong, 64-byte messages; sockperf reports half the round trip.
- Multicast: the iperf2 client on h1 sends to 239.1.1.1 (TTL 4); h2, h3, h4 join it with a receiver of the bench's
  own (a socket with a 2 MB buffer counting iperf's datagrams per stream; the join follows the 224.0.0.0/4 route;
  iperf2's multicast server stops reporting after a stream whose end it missed); h5 does not listen. Pruning: the
  frames that the overlay delivered to h5's overlay device (weavers' TAP, the VXLAN device) and the bytes on its eth0
  (gossip and keepalives included) during the full-rate trial.
- CPU: utime+stime of the overlay processes (weaversd, wireguard-go, boringtun on all hosts) from /proc/PID/stat, and
  busy time of the whole machine from /proc/stat (includes the traffic tools and softirq: the only CPU figure for
  kernel VXLAN), divided by the packets delivered (UDP, multicast) or the GB received (TCP).
- Where the kernel does the work in the sender's system call (the underlay, kernel VXLAN), the sending iperf itself is
  the limit: their UDP and multicast rates show no loss at \"full rate\" because the sender could not go faster,
  not because the path would carry more. The userspace overlays decouple the sender (TUN/TAP queues), so they can be
  offered more than they carry, and drop the rest.
- 2 shared cores, other work on the machine: compare ratios taken in one run, not absolute figures across runs.
";

pub fn json(r: &Results, systems: &[System], meta: &Value) -> Value {
    let mut sys_json = serde_json::Map::new();
    for &sys in systems {
        let mut figs = serde_json::Map::new();
        for d in DEFS {
            if let Some(v) = r.values.get(sys.key()).and_then(|m| m.get(d.key)) {
                let st = stat(v).unwrap();
                figs.insert(
                    d.key.into(),
                    json!({"median": st.median, "min": st.min, "max": st.max, "runs": v, "unit": unit_raw(d), "title": d.title}),
                );
            }
        }
        sys_json.insert(
            sys.key().into(),
            json!({
                "title": sys.title(),
                "figures": figs,
                "notes": r.notes.get(sys.key()).cloned().unwrap_or_default(),
                "raw_runs": r.raw.get(sys.key()).cloned().unwrap_or_default(),
            }),
        );
    }
    let mut ratios = serde_json::Map::new();
    for &p in systems.iter().filter(|&&p| p != System::Weavers) {
        let mut m = serde_json::Map::new();
        for d in DEFS.iter().filter(|d| d.better != Better::None) {
            if let Some(x) = r.ratio(d.key, p) {
                m.insert(d.key.into(), json!(x));
            }
        }
        ratios.insert(p.key().into(), Value::Object(m));
    }
    let targets: Vec<Value> =
        targets(r).into_iter().map(|(t, met, fig)| json!({"target": t, "met": met, "figure": fig})).collect();
    json!({"machine": meta, "systems": sys_json, "ratios_weavers_to": ratios, "targets": targets})
}

/// The stored (unscaled) unit.
fn unit_raw(d: &Def) -> &'static str {
    match d.unit {
        "kpps" => "pps",
        "%" => "fraction",
        "kB" => "bytes",
        u => u,
    }
}
