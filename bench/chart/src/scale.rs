//! The scale chart, from `bench/scale.sh`'s JSON (`scale.json`): the time
//! until every host lists every other as connected, and the idle underlay
//! traffic per host, against the number of hosts (log-log).

use plotters::prelude::*;

use crate::doc::Node;
use crate::draw::{self, LinePanel, Point, Series};
use crate::error::ChartError;
use crate::{caption_machine, svg};

const CONVERGE: RGBColor = RGBColor(31, 119, 180);
const IDLE: RGBColor = RGBColor(44, 160, 44);

/// The wait for a full mesh at `n` hosts, from the file's
/// `machine.settings.converge_cap` ("60 s at N=16, 120 s at N=250").
fn cap_at(machine: &Node, n: f64) -> Result<Option<f64>, ChartError> {
    let Some(settings) = machine.opt("settings")? else { return Ok(None) };
    let Some(caps) = settings.opt("converge_cap")? else { return Ok(None) };
    for part in caps.str()?.split(',') {
        let mut words = part.split_whitespace();
        let (Some(secs), Some("s"), Some("at"), Some(at)) = (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let (Ok(secs), Some(Ok(at))) = (secs.parse::<f64>(), at.strip_prefix("N=").map(str::parse::<f64>)) else {
            continue;
        };
        if at == n {
            return Ok(Some(secs));
        }
    }
    Ok(None)
}

/// Renders the chart of a scale results file as SVG text.
pub fn render(doc: &Node, note: Option<&str>) -> Result<String, ChartError> {
    let machine = doc.get("machine")?;
    let mut converge = Vec::new();
    let mut idle = Vec::new();
    let mut notes = Vec::new();
    let sizes = doc.get("sizes")?.items()?;
    if sizes.is_empty() {
        return Err(doc.get("sizes")?.invalid("no sizes: nothing to chart"));
    }
    for size in &sizes {
        let n = size.get("n")?.num()?;
        if n < 1.0 || n.fract() != 0.0 {
            return Err(size.get("n")?.invalid(format!("{n} is not a number of hosts")));
        }
        let converged = match size.nullable("converge_s")? {
            Some(c) => {
                let s = c.num()?;
                if s <= 0.0 {
                    return Err(c.invalid("a time to a full mesh of zero cannot go on a log axis"));
                }
                converge.push(Point { x: n, y: s, filled: true, label: Some(format!("{s:.1} s")) });
                true
            }
            None => {
                match cap_at(&machine, n)? {
                    Some(cap) => converge.push(Point {
                        x: n,
                        y: cap,
                        filled: false,
                        label: Some(format!("no full mesh in {cap:.0} s")),
                    }),
                    None => notes.push(format!("{n} hosts: no full mesh (the wait is not recorded)")),
                }
                false
            }
        };
        match size.opt("idle")? {
            Some(i) => {
                let mean = i.get("bytes_per_s_per_host")?.get("mean")?;
                let b = mean.num()?;
                if b <= 0.0 {
                    return Err(mean.invalid("zero bytes/s cannot go on a log axis"));
                }
                idle.push(Point { x: n, y: b, filled: converged, label: Some(format!("{} B/s", draw::tick(b))) });
            }
            None => notes.push(format!("{n} hosts: idle traffic not measured")),
        }
    }
    let panels = [
        LinePanel {
            title: "Time until every host lists every other as connected".into(),
            x_desc: "hosts (log scale)".into(),
            y_desc: "seconds (log scale)".into(),
            series: vec![Series { color: CONVERGE, labels_below: true, points: converge }],
            log_x: true,
            log_y: true,
        },
        LinePanel {
            title: "Idle underlay traffic per host".into(),
            x_desc: "hosts (log scale)".into(),
            y_desc: "bytes/s per host, mean (log scale)".into(),
            series: vec![Series { color: IDLE, labels_below: true, points: idle }],
            log_x: true,
            log_y: true,
        },
    ];
    let mut caption = vec![
        caption_machine(doc.file(), &machine)?,
        "Each size is a fresh lab of N namespaces on this one machine whose daemons know only h1 at start. \
         Hollow: no full mesh within the wait (plotted at the wait; the idle figure then measures a mesh still forming)."
            .to_string(),
    ];
    if !notes.is_empty() {
        caption.push(notes.join("; "));
    }
    caption.extend(note.map(str::to_string));
    svg((1280, 620), |root| {
        let area = draw::frame(root, "weavers control plane at growing sizes", &[], &caption)?;
        for (cell, panel) in area.split_evenly((1, 2)).iter().zip(&panels) {
            draw::lines(cell, panel)?;
        }
        Ok(())
    })
}
