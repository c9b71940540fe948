//! `demo --underlay-loss PCT`: the lab's underlay drops PCT % of every IP
//! packet at random (UDP and TCP alike, every port, both directions; see
//! [`weavers_tests::Lab::set_underlay_ip_loss`]; packets wire-sized, see
//! [`weavers_tests::Lab::underlay_wire_packets`]) from before the exchange
//! starts until it has been stopped and audited; then the rule is removed.
//! On an error the rule goes with the lab's namespaces.
//!
//! The summary gets `underlay_loss`: the percentage, the packets dropped,
//! and what the exchange did about them (market-data gaps the recorder asked
//! for and gave up on, re-requests the engine served, order gaps it asked
//! the gateways for).

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use weavers_tests::Lab;

/// The loss rule while it is on.
pub struct Loss {
    percent: u32,
    since: Instant,
}

/// Puts the rule on the underlay (None for 0 %: no rule, no summary).
pub fn start(lab: &Lab, percent: u32) -> Result<Option<Loss>> {
    if percent == 0 {
        return Ok(None);
    }
    // Loss per wire packet, not per 64 kB batch the veths pass as one.
    lab.underlay_wire_packets().context("segmentation offloads off on the underlay")?;
    lab.set_underlay_ip_loss(percent).context("the underlay's loss rule (nftables)")?;
    Ok(Some(Loss { percent, since: Instant::now() }))
}

impl Loss {
    /// Removes the rule and adds `underlay_loss` to `summary` (made by
    /// [`crate::exchange::Exchange::finish`]).
    pub fn finish(self, lab: &Lab, summary: &mut Value) -> Result<()> {
        let dropped = lab.underlay_loss_dropped();
        let secs = self.since.elapsed().as_secs_f64();
        lab.set_underlay_ip_loss(0).context("removing the underlay's loss rule")?;
        let (engine, record) = (&summary["engine"], &summary["record"]);
        summary["underlay_loss"] = json!({
            "percent": self.percent,
            "seconds": secs,
            "dropped_packets": dropped,
            "md_gaps_requested": record["gaps_requested"],
            "md_messages_given_up": record["gaps_unrecovered"],
            "md_rerequests_served": engine["md_rerequests_served"],
            "report_rerequests_served": engine["report_rerequests_served"],
            "rerequests_throttled": engine["rerequests_throttled"],
            "order_gaps_requested": engine["order_gaps_requested"],
            "order_messages_lost": engine["order_messages_lost"],
        });
        Ok(())
    }
}

/// The summary's loss lines for a person (empty without loss).
pub fn summary_text(s: &Value) -> String {
    let l = &s["underlay_loss"];
    if l.is_null() {
        return String::new();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "underlay loss {}% for {:.0} s: {} packets dropped; market data: {} gaps asked for, {} messages given up \
         by the recorder, {} missing from the record by the audit",
        l["percent"],
        l["seconds"].as_f64().unwrap_or(0.0),
        l["dropped_packets"],
        l["md_gaps_requested"],
        l["md_messages_given_up"],
        s["md_gaps_unrecovered"]
    );
    let _ = writeln!(
        out,
        "re-requests served by the engine: {} market data, {} reports ({} throttled); order gaps it asked the \
         gateways for: {}",
        l["md_rerequests_served"], l["report_rerequests_served"], l["rerequests_throttled"], l["order_gaps_requested"]
    );
    out
}
