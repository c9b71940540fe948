//! What can go wrong between a results file and its chart.

use std::path::PathBuf;

/// An error from reading a results file or drawing its chart. Every bad
/// input ends here, with the file and the JSON path at fault; none panics.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// The file could not be read or the chart could not be written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file read or written.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{file}: not JSON: {error}")]
    Json {
        /// The results file.
        file: String,
        /// Where the parser stopped.
        error: serde_json::Error,
    },
    /// A field the chart needs is absent (or null where a value is required).
    #[error("{file}: `{path}` is missing")]
    Missing {
        /// The results file.
        file: String,
        /// The JSON path, dotted (`systems.weavers.figures.tcp_gbps.median`).
        path: String,
    },
    /// A field holds the wrong kind of value.
    #[error("{file}: `{path}` should be {want}, found {found}")]
    Type {
        /// The results file.
        file: String,
        /// The JSON path, dotted.
        path: String,
        /// What the chart expected.
        want: &'static str,
        /// A short rendering of what was there.
        found: String,
    },
    /// The fields are there but cannot make a chart (no data rows, a value
    /// that a log axis cannot show, ...).
    #[error("{file}: {msg}")]
    Invalid {
        /// The results file.
        file: String,
        /// What is wrong.
        msg: String,
    },
    /// plotters refused to draw.
    #[error("drawing the chart: {0}")]
    Draw(String),
}

/// Turns a plotters error into a [`ChartError::Draw`].
pub(crate) fn draw_err<E: std::fmt::Display>(e: E) -> ChartError {
    ChartError::Draw(e.to_string())
}
