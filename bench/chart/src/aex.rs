//! The AEX chart, from `bench/aex.sh`'s JSON (`aex.json`): order-to-ack
//! latency (p50, p99, p99.9) against the offered order rate, log y; a run
//! that was not sustained gets hollow markers.

use plotters::prelude::*;

use crate::doc::Node;
use crate::draw::{self, LinePanel, Point, Series};
use crate::error::ChartError;
use crate::{caption_machine, svg};

/// The percentiles drawn: the key in `ack_latency_us`, the legend's name,
/// the colour.
const PERCENTILES: [(&str, &str, RGBColor); 3] = [
    ("p50", "p50", RGBColor(31, 119, 180)),
    ("p99", "p99", RGBColor(255, 127, 14)),
    ("p999", "p99.9", RGBColor(214, 39, 40)),
];

/// Whether a run was sustained, by `bench/aex.sh`'s rule: the audit passed
/// and at least 99% of the orders sent were acknowledged.
fn sustained(run: &Node) -> Result<bool, ChartError> {
    let sent = run.get("orders_sent")?.num()?;
    let acked = run.get("orders_acked")?.num()?;
    Ok(run.get("audit_ok")?.bool()? && sent > 0.0 && acked >= 0.99 * sent)
}

/// Renders the chart of an AEX results file as SVG text. The file is the
/// list of runs `bench/aex.sh` writes, or an object with `runs` and a
/// `machine` (date, commit, ...) for the caption.
pub fn render(doc: &Node, note: Option<&str>) -> Result<String, ChartError> {
    let (runs, machine) =
        if doc.is_array() { (doc.clone(), None) } else { (doc.get("runs")?, Some(doc.get("machine")?)) };
    let runs = runs.items()?;
    let mut series: Vec<Series> = PERCENTILES
        .iter()
        .map(|(key, _, color)| Series { color: *color, labels_below: *key == "p99", points: Vec::new() })
        .collect();
    let mut notes = Vec::new();
    for run in &runs {
        let offered = run.get("offered_per_s")?.num()?;
        if let Some(e) = run.opt("error")? {
            notes.push(format!("{offered:.0} orders/s: no result ({})", e.str().unwrap_or("error")));
            continue;
        }
        let filled = sustained(run)?;
        let lat = run.get("ack_latency_us")?;
        for ((key, _, _), s) in PERCENTILES.iter().zip(&mut series) {
            let us = lat.get(key)?.num()?;
            if us <= 0.0 {
                notes.push(format!("{offered:.0} orders/s: {key} is {us} us (nothing acknowledged?)"));
                continue;
            }
            let ms = us / 1000.0;
            let label = if ms >= 100.0 { format!("{ms:.0} ms") } else { format!("{ms:.1} ms") };
            s.points.push(Point { x: offered, y: ms, filled, label: Some(label) });
        }
    }
    if series.iter().all(|s| s.points.is_empty()) {
        return Err(doc.invalid("no run with a latency: nothing to chart"));
    }
    let panel = LinePanel {
        title: "Order-to-ack latency against the offered order rate".into(),
        x_desc: "offered orders/s (100 broker/dealers x 100 customers)".into(),
        y_desc: "order to acknowledgement, ms (log scale)".into(),
        series,
        log_x: false,
        log_y: true,
    };
    let mut caption = match (&machine, note) {
        (Some(m), _) => vec![caption_machine(doc.file(), m)?],
        (None, Some(n)) => vec![format!("{}: {n}", doc.file())],
        (None, None) => vec![format!("{}: the file records no date or machine", doc.file())],
    };
    if machine.is_some() {
        caption.extend(note.map(str::to_string));
    }
    caption.push(
        "Latency from each order's intended send time (coordinated omission accounted). Hollow: not sustained \
         (under 99% of orders acknowledged, or the audit failed)."
            .to_string(),
    );
    if !notes.is_empty() {
        caption.push(notes.join("; "));
    }
    let legend: Vec<_> = PERCENTILES.iter().map(|(_, name, color)| (name.to_string(), *color)).collect();
    svg((1000, 680), |root| {
        let area = draw::frame(root, "AEX end to end over weavers", &legend, &caption)?;
        draw::lines(&area, &panel)
    })
}
