//! `chart KIND RESULTS.json OUT.svg [--note TEXT]`: draws the chart of a
//! benchmark results file (KIND: dataplane, scale or aex). The bench
//! scripts call it after writing their JSON, so each chart sits beside the
//! table it came from.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use weavers_chart::{render_file, Kind};

const USAGE: &str = "usage: chart dataplane|scale|aex RESULTS.json OUT.svg [--note TEXT]\n\
    --note TEXT: one more caption line, for what the file does not record (e.g. the date of an aex.json)";

fn run() -> anyhow::Result<()> {
    let mut positional = Vec::new();
    let mut note = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--note" => note = Some(args.next().context("--note needs a value")?),
            s if s.starts_with('-') => bail!("unknown option {s}\n{USAGE}"),
            _ => positional.push(a),
        }
    }
    let [kind, input, output] = <[String; 3]>::try_from(positional).map_err(|_| anyhow::anyhow!("{USAGE}"))?;
    let kind: Kind = kind.parse().map_err(anyhow::Error::msg)?;
    let (input, output) = (PathBuf::from(input), PathBuf::from(output));
    render_file(kind, &input, &output, note.as_deref())?;
    eprintln!("chart: wrote {}", output.display());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chart: {e:#}");
            ExitCode::FAILURE
        }
    }
}
