//! Charts of the benchmark results: reads the JSON that `bench/run.sh`,
//! `bench/scale.sh` and `bench/aex.sh` write into `bench/results/` and draws
//! an SVG beside it (plotters' SVG backend: text stays text, no font files).
//!
//! Every figure drawn is read from the file; a file without a field the
//! chart needs gives a [`ChartError`] naming the file and the JSON path.

pub mod aex;
pub mod dataplane;
pub mod doc;
pub mod draw;
pub mod error;
pub mod scale;

use std::path::Path;

use plotters::prelude::*;

pub use error::ChartError;

use doc::Node;
use draw::Area;
use error::draw_err;

/// Which results file a chart is drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `bench/run.sh`: weavers against the underlay and other overlays.
    Dataplane,
    /// `bench/scale.sh`: the control plane at growing sizes.
    Scale,
    /// `bench/aex.sh`: the exchange's order-to-ack latency at rising rates.
    Aex,
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dataplane" => Ok(Kind::Dataplane),
            "scale" => Ok(Kind::Scale),
            "aex" => Ok(Kind::Aex),
            other => Err(format!("unknown chart `{other}` (dataplane, scale or aex)")),
        }
    }
}

/// Renders the chart of `kind` from the JSON text of a results file as SVG
/// text. `file` names the file in the caption and in errors; `note`, when
/// given, is one more caption line (what the file does not record).
pub fn render(kind: Kind, file: &str, json: &str, note: Option<&str>) -> Result<String, ChartError> {
    let value = doc::parse(file, json)?;
    let root = Node::root(file, &value);
    match kind {
        Kind::Dataplane => dataplane::render(&root, note),
        Kind::Scale => scale::render(&root, note),
        Kind::Aex => aex::render(&root, note),
    }
}

/// Reads `input`, renders its chart and writes it to `output` (through a
/// temporary file beside it, so a failed run leaves the old chart whole).
pub fn render_file(kind: Kind, input: &Path, output: &Path, note: Option<&str>) -> Result<(), ChartError> {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ChartError + '_ {
        move |error| ChartError::Io { path: path.to_path_buf(), error }
    }
    let json = std::fs::read_to_string(input).map_err(io(input))?;
    let svg = render(kind, &input.display().to_string(), &json, note)?;
    let mut tmp = output.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = Path::new(&tmp);
    std::fs::write(tmp, svg).map_err(io(tmp))?;
    std::fs::rename(tmp, output).map_err(io(output))
}

/// Draws with `f` on an SVG of `size` pixels and returns the SVG text.
pub(crate) fn svg(size: (u32, u32), f: impl FnOnce(&Area) -> Result<(), ChartError>) -> Result<String, ChartError> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        f(&root)?;
        root.present().map_err(draw_err)?;
    }
    Ok(buf)
}

/// The caption line that says where and when a file was measured, from its
/// `machine` object: `date` and `commit` are required, the rest optional.
pub(crate) fn caption_machine(file: &str, machine: &Node) -> Result<String, ChartError> {
    let mut s = format!("{file}: measured {}, commit {}", machine.get("date")?.str()?, machine.get("commit")?.str()?);
    let cores = machine.opt("nproc")?.map(|n| n.num()).transpose()?;
    let cpu = machine.opt("cpu")?.map(|c| c.str()).transpose()?;
    match (cores, cpu) {
        (Some(n), Some(c)) => s.push_str(&format!(", {n} shared {c} cores")),
        (Some(n), None) => s.push_str(&format!(", {n} cores")),
        (None, Some(c)) => s.push_str(&format!(", {c}")),
        (None, None) => {}
    }
    if let Some(k) = machine.opt("kernel")? {
        s.push_str(&format!(", kernel {}", k.str()?));
    }
    let quick = match machine.opt("quick")? {
        Some(q) => q.bool()?,
        None => match machine.opt("settings")? {
            Some(settings) => settings.opt("quick")?.map(|q| q.bool()).transpose()?.unwrap_or(false),
            None => false,
        },
    };
    if quick {
        s.push_str(" (--quick: for development, not for comparison)");
    }
    Ok(s)
}
