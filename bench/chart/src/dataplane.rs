//! The data-plane chart, from `bench/run.sh`'s JSON (`latest.json`): per
//! system, TCP throughput, 64-byte UDP rate, multicast rate per receiver
//! and one-way latency, as grouped bars (median over runs, whiskers from
//! the lowest to the highest run).

use plotters::prelude::*;

use crate::doc::Node;
use crate::draw::{self, Bar, BarPanel, Group};
use crate::error::ChartError;
use crate::{caption_machine, svg};

/// The systems in the order the README's tables use, each with its colour;
/// a system not listed here comes after them, in the file's order.
const SYSTEMS: &[(&str, RGBColor)] = &[
    ("underlay", RGBColor(127, 127, 127)),
    ("weavers", RGBColor(31, 119, 180)),
    ("wireguard-go", RGBColor(255, 127, 14)),
    ("boringtun", RGBColor(214, 39, 40)),
    ("vxlan", RGBColor(44, 160, 44)),
    ("vxlan-wg", RGBColor(148, 103, 189)),
];
const OTHERS: &[RGBColor] = &[RGBColor(140, 86, 75), RGBColor(227, 119, 194), RGBColor(188, 189, 34)];

/// The colour of a system's bars (its key in `systems`), given its place
/// among the systems not in the fixed list.
pub fn color_of(key: &str, other_index: usize) -> RGBColor {
    SYSTEMS.iter().find(|(k, _)| *k == key).map_or(OTHERS[other_index % OTHERS.len()], |(_, c)| *c)
}

struct System<'a> {
    title: String,
    color: RGBColor,
    figures: Node<'a>,
}

/// One figure over the runs: the median and, when recorded, (min, max).
type Stat = (f64, Option<(f64, f64)>);

/// One figure of one system, times `scale`; None when the system has no
/// such figure (not measured for it).
fn stat(s: &System, key: &str, scale: f64) -> Result<Option<Stat>, ChartError> {
    let Some(f) = s.figures.opt(key)? else { return Ok(None) };
    let median = f.get("median")?.num()? * scale;
    let range = match (f.opt("min")?, f.opt("max")?) {
        (Some(lo), Some(hi)) => Some((lo.num()? * scale, hi.num()? * scale)),
        _ => None,
    };
    if median < 0.0 || range.is_some_and(|(lo, hi)| lo < 0.0 || hi < lo) {
        return Err(f.invalid("a negative figure or a min above the max"));
    }
    Ok(Some((median, range)))
}

/// A bar per system for one figure.
fn per_system(systems: &[System], key: &str, scale: f64, digits: usize) -> Result<Vec<Group>, ChartError> {
    let mut groups = Vec::new();
    for s in systems {
        if let Some((value, range)) = stat(s, key, scale)? {
            let bar = Bar { color: s.color, value, range, label: format!("{value:.digits$}") };
            groups.push(Group { label: s.title.clone(), bars: vec![bar] });
        }
    }
    Ok(groups)
}

/// "weavers data plane against underlay veth and wireguard-go".
fn title(systems: &[System]) -> String {
    let others: Vec<&str> = systems.iter().map(|s| s.title.as_str()).filter(|t| *t != "weavers").collect();
    match others.split_last() {
        None => "weavers data plane".to_string(),
        Some((last, [])) => format!("weavers data plane against {last}"),
        Some((last, rest)) => format!("weavers data plane against {} and {last}", rest.join(", ")),
    }
}

/// Renders the chart of a data-plane results file as SVG text.
pub fn render(doc: &Node, note: Option<&str>) -> Result<String, ChartError> {
    let mut systems = Vec::new();
    let fields = doc.get("systems")?.fields()?;
    let rank = |k: &str| SYSTEMS.iter().position(|(s, _)| *s == k).unwrap_or(SYSTEMS.len());
    let mut ordered: Vec<_> = fields.into_iter().enumerate().collect();
    ordered.sort_by_key(|(i, (k, _))| (rank(k), *i));
    let mut others = 0;
    for (_, (key, node)) in ordered {
        let title = match node.opt("title")? {
            Some(t) => t.str()?.to_string(),
            None => key.to_string(),
        };
        let color = color_of(key, others);
        if rank(key) == SYSTEMS.len() {
            others += 1;
        }
        systems.push(System { title, color, figures: node.get("figures")? });
    }
    if systems.is_empty() {
        return Err(doc.get("systems")?.invalid("no systems: nothing to chart"));
    }
    let mut latency = Vec::new();
    for (key, label) in [("lat_p50", "p50"), ("lat_p99", "p99"), ("lat_p999", "p99.9")] {
        let mut bars = Vec::new();
        for s in &systems {
            if let Some((value, range)) = stat(s, key, 1.0)? {
                if value <= 0.0 || range.is_some_and(|r| r.0 <= 0.0) {
                    return Err(s.figures.get(key)?.invalid("a latency of zero cannot go on a log axis"));
                }
                bars.push(Bar { color: s.color, value, range, label: format!("{value:.0}") });
            }
        }
        if !bars.is_empty() {
            latency.push(Group { label: label.to_string(), bars });
        }
    }
    let panels = [
        BarPanel {
            title: "TCP, 1 stream".into(),
            y_desc: "Gbit/s".into(),
            groups: per_system(&systems, "tcp_gbps", 1.0, 2)?,
            log_y: false,
        },
        BarPanel {
            title: "UDP 64 B, highest rate at ≤ 1% loss".into(),
            y_desc: "kpps".into(),
            groups: per_system(&systems, "udp_pps_1pct", 1e-3, 1)?,
            log_y: false,
        },
        BarPanel {
            title: "Multicast 64 B, 1 → 3, at ≤ 0.1% loss per receiver".into(),
            y_desc: "kpps per receiver".into(),
            groups: per_system(&systems, "mcast_pps_01pct", 1e-3, 1)?,
            log_y: false,
        },
        BarPanel {
            title: "One-way latency (sockperf ping-pong)".into(),
            y_desc: "µs (log scale)".into(),
            groups: latency,
            log_y: true,
        },
    ];
    let machine = doc.get("machine")?;
    let runs = match machine.opt("runs")? {
        Some(r) if r.num()? == 1.0 => "one run (no whiskers)".to_string(),
        Some(r) => format!("median of {} runs", r.num()?),
        None => "median over the runs".to_string(),
    };
    let mut caption = vec![
        caption_machine(doc.file(), &machine)?,
        format!("Bars: {runs}; whiskers: lowest to highest run. Higher is better except latency. All hosts are network namespaces on this one machine."),
    ];
    caption.extend(note.map(str::to_string));
    let legend: Vec<_> = systems.iter().map(|s| (s.title.clone(), s.color)).collect();
    svg((1280, 900), |root| {
        let area = draw::frame(root, &title(&systems), &legend, &caption)?;
        let cells = area.split_evenly((2, 2));
        for (cell, panel) in cells.iter().zip(&panels) {
            draw::bars(cell, panel)?;
        }
        Ok(())
    })
}
