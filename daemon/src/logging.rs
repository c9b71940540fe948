//! Logging: lines on stderr, as text or as one JSON object each
//! (`--log-format`), filtered by `--log-level`, else `RUST_LOG`, else the
//! config file's `log_level`, else `info`.
//!
//! Text carries no ANSI colour unless stderr is a terminal, and no timestamp
//! when stderr is the journal (systemd's `JOURNAL_STREAM` names it), which
//! stamps every line itself. In JSON every line the daemon writes is one
//! object, fatal errors included ([`fatal`]), and, when the flags ask for
//! JSON, also the errors of the command line itself ([`usage_error`]).

use std::io::IsTerminal;

use anyhow::Context;
use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `TIME LEVEL target: message key=value...` (no time under journald).
    #[default]
    Text,
    /// One JSON object a line: `timestamp`, `level`, `fields` (with
    /// `message`), `target`.
    Json,
}

/// What the flags, environment and config file say about logging.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// `--log-format` (or the config file's `log_format`).
    pub format: LogFormat,
    /// `--log-level` or `WEAVERS_LOG_LEVEL`: wins over `RUST_LOG`.
    pub level: Option<String>,
    /// The config file's `log_level`: used when neither the flag nor
    /// `RUST_LOG` is given.
    pub file_level: Option<String>,
}

/// The format chosen, kept for [`fatal`].
static FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Installs the global subscriber. A bad `--log-level` is an error (nothing
/// is installed); a bad `RUST_LOG` or config-file level is reported through
/// the log, and `info` used instead.
pub fn init(opts: &LogOptions) -> anyhow::Result<()> {
    let (filter, warning) = filter(opts)?;
    let _ = FORMAT.set(opts.format);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match opts.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => {
            let builder = builder.with_ansi(std::io::stderr().is_terminal());
            if stderr_is_journal() {
                builder.without_time().init()
            } else {
                builder.init()
            }
        }
    }
    if let Some(w) = warning {
        tracing::warn!("{w}; logging at info");
    }
    Ok(())
}

/// The filter, and a warning when a level from the environment or the file
/// was unusable.
fn filter(opts: &LogOptions) -> anyhow::Result<(EnvFilter, Option<String>)> {
    if let Some(level) = &opts.level {
        let f = EnvFilter::try_new(level).with_context(|| {
            format!(
                "--log-level {level:?}: give error, warn, info, debug, trace or directives like info,weaversd=debug"
            )
        })?;
        return Ok((f, None));
    }
    let (source, level) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => ("RUST_LOG", v),
        _ => match &opts.file_level {
            Some(v) => ("log_level in the config file", v.clone()),
            None => return Ok((EnvFilter::new("info"), None)),
        },
    };
    match EnvFilter::try_new(&level) {
        Ok(f) => Ok((f, None)),
        Err(e) => Ok((EnvFilter::new("info"), Some(format!("{source} {level:?} is not a log filter ({e})")))),
    }
}

/// Whether stderr is the journal's stream (systemd sets `JOURNAL_STREAM` to
/// its `DEVICE:INODE`; a child whose stderr was redirected must not match).
fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = v.split_once(':') else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    // SAFETY: fstat writes only into the stat buffer we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    st.st_dev as u64 == dev && st.st_ino as u64 == ino
}

/// Reports an error that ends the daemon: a log record in JSON mode (so
/// every line stays an object), `weaversd: ERROR` on stderr otherwise.
pub fn fatal(e: &anyhow::Error) {
    if FORMAT.get() == Some(&LogFormat::Json) {
        tracing::error!(error = %format!("{e:#}"), "weaversd failed");
    } else {
        eprintln!("weaversd: {e:#}");
    }
}

/// Whether the command line or `WEAVERS_LOG_FORMAT` asks for JSON, looked
/// at directly for when the command line itself does not parse.
pub fn json_requested(args: &[std::ffi::OsString]) -> bool {
    if std::env::var("WEAVERS_LOG_FORMAT").is_ok_and(|v| v == "json") {
        return true;
    }
    args.iter()
        .enumerate()
        .any(|(i, a)| a == "--log-format=json" || (a == "--log-format" && args.get(i + 1).is_some_and(|v| v == "json")))
}

/// Writes a command-line error as one JSON log record and exits 2 (clap's
/// status for usage errors).
pub fn usage_error(e: &clap::Error) -> ! {
    let _ = FORMAT.set(LogFormat::Json);
    tracing_subscriber::fmt().json().with_writer(std::io::stderr).init();
    let text = e.render().to_string();
    tracing::error!(error = %text.trim_end(), "weaversd: bad command line");
    std::process::exit(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<std::ffi::OsString> {
        s.iter().map(|a| a.into()).collect()
    }

    #[test]
    fn json_is_seen_in_either_spelling() {
        assert!(json_requested(&args(&["weaversd", "--log-format", "json", "--listen", "x"])));
        assert!(json_requested(&args(&["weaversd", "--log-format=json"])));
        assert!(!json_requested(&args(&["weaversd", "--log-format", "text"])));
        assert!(!json_requested(&args(&["weaversd", "--log-format"])));
    }

    #[test]
    fn a_bad_level_flag_is_an_error_naming_it() {
        let opts = LogOptions { level: Some("loud[".into()), ..Default::default() };
        let e = format!("{:#}", filter(&opts).unwrap_err());
        assert!(e.starts_with("--log-level \"loud[\""), "{e}");
        let opts = LogOptions { level: Some("info,weaversd=debug".into()), ..Default::default() };
        assert_eq!(filter(&opts).unwrap().0.to_string(), "weaversd=debug,info");
    }
}
