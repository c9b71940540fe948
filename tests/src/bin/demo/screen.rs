//! The live one-screen summary, and the latency merged across load
//! generators (each writes its HDR histogram; percentiles are taken of the
//! merged histogram, never averaged).

use crate::exchange::Exchange;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;
use weavers_tests::Lab;

/// The percentiles of the customers' histograms merged (µs), or null.
pub fn merged_latency(files: &[PathBuf]) -> Value {
    let mut merged: Option<Histogram<u64>> = None;
    for f in files {
        let Ok(bytes) = std::fs::read(f) else { continue };
        let Ok(h) = Deserializer::new().deserialize::<u64, _>(&mut bytes.as_slice()) else { continue };
        match merged.as_mut() {
            None => merged = Some(h),
            Some(m) => {
                let _ = m.add(&h);
            }
        }
    }
    match merged {
        Some(h) if !h.is_empty() => json!({
            "p50": h.value_at_quantile(0.5),
            "p90": h.value_at_quantile(0.9),
            "p99": h.value_at_quantile(0.99),
            "p999": h.value_at_quantile(0.999),
            "max": h.max(),
            "count": h.len(),
        }),
        _ => Value::Null,
    }
}

/// Draws the summary once a second: a full screen on a terminal, a line
/// every 5 s otherwise.
pub struct Screen {
    tty: bool,
    ticks: u64,
    last_sent: u64,
    last_acked: u64,
    last_trades: u64,
    last_bytes: Vec<u64>,
    /// With a DR site: records the primary had sequenced but DR had not yet
    /// made durable, sampled once a second until a failure.
    pub dr_lag: Vec<u64>,
}

impl Screen {
    /// A screen; `interactive` when a person watches.
    pub fn new(interactive: bool) -> Screen {
        // SAFETY: isatty on fd 1.
        let tty = interactive && unsafe { libc::isatty(1) } == 1;
        Screen {
            tty,
            ticks: 0,
            last_sent: 0,
            last_acked: 0,
            last_trades: 0,
            last_bytes: Vec::new(),
            dr_lag: Vec::new(),
        }
    }

    /// Reads every status and draws.
    pub fn draw(&mut self, lab: &Lab, x: &Exchange, elapsed: Duration) {
        self.ticks += 1;
        let cust = x.customer_statuses();
        let sum = |k: &str| cust.iter().map(|c| c[k].as_u64().unwrap_or(0)).sum::<u64>();
        let (sent, acked) = (sum("orders_sent"), sum("orders_acked"));
        let p = |q: &str| cust.iter().filter_map(|c| c["ack_latency_us"][q].as_u64()).max().unwrap_or(0);
        // After a failover the DR site's engine is the one trading.
        let dr_primary = x.status("dr").filter(|d| d["role"] == "primary" && x.primary_killed());
        let engine = dr_primary.or_else(|| x.status("engine")).unwrap_or(Value::Null);
        let record = x.status("record").unwrap_or(Value::Null);
        let trades = engine["trades"].as_u64().unwrap_or(0);
        if x.has_dr() && !x.primary_killed() {
            if let (Some(seq), Some(dr)) = (engine["last_seq"].as_u64(), engine["dr_durable_seq"].as_u64()) {
                self.dr_lag.push(seq.saturating_sub(dr));
            }
        }
        let mut out = String::new();
        if self.tty {
            out.push_str("\x1b[H\x1b[2J");
        }
        let _ = writeln!(
            out,
            "AEX on weavers  t={:>4}s  orders/s sent {:>6} acked {:>6}  total sent {} acked {}",
            elapsed.as_secs(),
            sent.saturating_sub(self.last_sent),
            acked.saturating_sub(self.last_acked),
            sent,
            acked
        );
        let _ = writeln!(
            out,
            "  trades {} ({}/s)   order-to-ack latency (worst generator) p50 {} us  p99 {} us   sessions {}",
            trades,
            trades.saturating_sub(self.last_trades),
            p("p50"),
            p("p99"),
            sum("sessions")
        );
        let _ = writeln!(
            out,
            "  engine seq {} durable {}   market data recorded {} (gaps asked {}, unrecovered {})",
            engine["last_seq"],
            engine["durable_seq"],
            record["messages"],
            record["gaps_requested"],
            record["gaps_unrecovered"]
        );
        if let Some(dr) = x.status("dr") {
            let _ = match dr["role"].as_str() {
                Some("journal") => writeln!(
                    out,
                    "  DR (h5): pilot light, journal holds {} records, primary connected {}",
                    dr["have"], dr["primary_connected"]
                ),
                role => writeln!(
                    out,
                    "  DR (h5): {} epoch {} seq {}   production: DR-durable {}",
                    role.unwrap_or("engine"),
                    dr["epoch"],
                    dr["last_seq"],
                    engine["dr_durable_seq"]
                ),
            };
        }
        if self.tty {
            out.push_str(&self.hosts(lab));
        }
        self.last_sent = sent;
        self.last_acked = acked;
        self.last_trades = trades;
        if self.tty {
            print!("{out}");
        } else if self.ticks.is_multiple_of(5) {
            eprint!("{out}");
        }
    }

    /// Traffic per host (encrypted bytes over the underlay) and groups.
    fn hosts(&mut self, lab: &Lab) -> String {
        let names = ["exchange", "gw1", "gw2", "md", "dr"];
        let mut out = String::from("  host       peers  tx MB/s  rx MB/s  groups joined here\n");
        self.last_bytes.resize(lab.len() * 2, 0);
        for i in 1..=lab.len() {
            let (mut tx, mut rx, mut peers) = (0u64, 0u64, 0);
            if let Ok(v) = lab.try_cli_json(i, &["peer", "ls", "--json"]) {
                for p in v.as_array().into_iter().flatten() {
                    peers += (p["state"] == "connected") as usize;
                    tx += p["traffic"]["tx_bytes"].as_u64().unwrap_or(0);
                    rx += p["traffic"]["rx_bytes"].as_u64().unwrap_or(0);
                }
            }
            let groups = lab
                .try_cli_json(i, &["groups", "--json"])
                .ok()
                .and_then(|v| {
                    v.as_array().map(|a| {
                        a.iter().filter(|g| g["local_members"].as_array().is_some_and(|m| !m.is_empty())).count()
                    })
                })
                .unwrap_or(0);
            let (ltx, lrx) = (self.last_bytes[2 * (i - 1)], self.last_bytes[2 * (i - 1) + 1]);
            let _ = writeln!(
                out,
                "  h{i} {:<8} {:>5} {:>8.2} {:>8.2}  {}",
                names.get(i - 1).unwrap_or(&""),
                peers,
                tx.saturating_sub(ltx) as f64 / 1e6,
                rx.saturating_sub(lrx) as f64 / 1e6,
                groups
            );
            self.last_bytes[2 * (i - 1)] = tx;
            self.last_bytes[2 * (i - 1) + 1] = rx;
        }
        out
    }
}

/// The end-of-run summary for a person (the JSON file has everything).
pub fn summary_text(s: &Value) -> String {
    let lat = &s["ack_latency_us"];
    let audit = if s["audit_ok"] == true { "clean".to_string() } else { format!("FAILED: {}", s["audit"]["errors"]) };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "orders sent {}, acknowledged {}, rejected {}; trades {}",
        s["orders_sent"], s["orders_acked"], s["rejects"], s["trades"]
    );
    let _ = writeln!(
        out,
        "order-to-ack latency (us, from the intended send time): p50 {} p90 {} p99 {} p99.9 {} max {}",
        lat["p50"], lat["p90"], lat["p99"], lat["p999"], lat["max"]
    );
    let _ = writeln!(
        out,
        "market data recorded {} (unrecovered gaps {}); audit {audit}",
        s["md_messages"], s["md_gaps_unrecovered"]
    );
    if s["failovers"].as_u64().is_some_and(|n| n > 0) {
        let _ = writeln!(
            out,
            "failovers {}, acknowledged orders lost {}, RTO {} ms",
            s["failovers"], s["rpo_orders"], s["rto_ms"]
        );
    }
    out
}

/// The DR lag samples summarised (null without samples).
pub fn lag_summary(samples: &[u64]) -> Value {
    if samples.is_empty() {
        return Value::Null;
    }
    let max = samples.iter().copied().max().unwrap_or(0);
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64;
    json!({ "samples": samples.len(), "max": max, "mean": mean })
}
