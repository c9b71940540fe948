//! The exchange under 5% random underlay loss (issue 14), end to end: the
//! demo (`demo --underlay-loss 5`, the real engine, gateways, customers and
//! recorder on weavers in a namespace lab) with the underlay dropping 5% of
//! every IP packet, UDP and TCP alike, from before the exchange starts until
//! it is audited. Every order the customers sent is acknowledged, the
//! recorder gives up on no market data (every gap it saw was re-requested
//! and filled), and `aex audit` finds the journal, the record and the
//! acknowledgements consistent with nothing missing.
//!
//! Short and light (AEX_LOSS_SECS, default 12 s of load; 4 broker/dealers x
//! 25 customers x AEX_LOSS_RATE, default 10 orders/s = 1,000 orders/s; before
//! the receivers held what arrives past a hole it was 200, the most they
//! carried) for CI; `bench/results/aex-loss.md` has the minute at 10,000
//! orders/s. Build first:
//! `cargo build --workspace && CI=true cargo test -p weavers-tests --test aex_loss -- --nocapture`.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use weavers_tests::lab::output_with_timeout;
use weavers_tests::{lab_or_skip, random_hex};

struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("no {k} in the summary: {v:#}"))
}

#[test]
fn every_order_is_acknowledged_and_no_market_data_lost_under_five_percent_underlay_loss() {
    // Skipped without root (a failure with CI=true), as every lab test.
    drop(match lab_or_skip(1) {
        Some(lab) => lab,
        None => return,
    });
    let secs: u64 = std::env::var("AEX_LOSS_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    // Orders a second per customer (100 customers).
    let rate: u64 = std::env::var("AEX_LOSS_RATE").ok().and_then(|v| v.parse().ok()).filter(|&r| r > 0).unwrap_or(10);
    let summary = Scratch(std::env::temp_dir().join(format!("weavers-aex-loss-{}.json", random_hex(6))));
    let mut demo = Command::new(env!("CARGO_BIN_EXE_demo"));
    demo.args(["--duration", &secs.to_string(), "--underlay-loss", "5"]);
    demo.args(["--brokers", "4", "--customers", "25", "--rate", &rate.to_string(), "--view-port", "0"]);
    demo.arg("--summary-json").arg(&summary.0);
    let out = output_with_timeout(demo, Duration::from_secs(secs + 240)).expect("run the demo");
    let log = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&summary.0)
        .unwrap_or_else(|e| panic!("the demo wrote no summary ({e}; {}):\n{log}", out.status));
    let s: Value = serde_json::from_str(&text).expect("summary JSON");
    let loss = &s["underlay_loss"];
    eprintln!(
        "5% underlay loss for {:.0} s, {} packets dropped: orders sent {}, acknowledged {}; market data {} messages, \
         {} gaps asked for, {} given up, {} missing in the audit; re-requests served: {} market data, {} reports; \
         order gaps asked {}; ack latency p99 {} us, max {} us",
        loss["seconds"].as_f64().unwrap_or(0.0),
        loss["dropped_packets"],
        s["orders_sent"],
        s["orders_acked"],
        s["md_messages"],
        loss["md_gaps_requested"],
        loss["md_messages_given_up"],
        s["md_gaps_unrecovered"],
        loss["md_rerequests_served"],
        loss["report_rerequests_served"],
        loss["order_gaps_requested"],
        s["ack_latency_us"]["p99"],
        s["ack_latency_us"]["max"],
    );
    assert_eq!(u(loss, "percent"), 5, "{loss}");
    assert!(u(loss, "dropped_packets") > 50, "the loss rule dropped next to nothing: {loss}");
    let sent = u(&s, "orders_sent");
    assert!(sent >= 50 * rate * secs, "the customers sent only {sent} orders in {secs} s ({}/s offered)", 100 * rate);
    assert_eq!(u(&s, "orders_acked"), sent, "orders sent but never acknowledged under 5% loss:\n{log}");
    assert!(u(&s, "md_messages") > 0, "no market data recorded");
    assert_eq!(u(loss, "md_messages_given_up"), 0, "the recorder gave up on market data: {loss}");
    assert_eq!(u(&s, "md_gaps_unrecovered"), 0, "market data missing from the record: {}", s["audit"]);
    assert_eq!(s["audit_ok"], true, "the audit failed under 5% loss: {}", s["audit"]);
    assert!(out.status.success(), "the demo failed ({}):\n{log}", out.status);
}
