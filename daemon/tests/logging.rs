//! The daemon binary's log output, where it can be seen without root: the
//! errors that stop it before it touches the host (a bad setting, a bad
//! command line) and the warnings before them. A running daemon's JSON log
//! is checked in the namespace lab (tests/tests/mesh.rs).

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs weaversd with `args` and a clean environment plus `env`.
fn weaversd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weaversd"));
    cmd.args(args).env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run weaversd")
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weaversd-logging-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every stderr line parsed as a JSON object (panics, showing the line, on
/// one that is not).
fn json_lines(out: &Output) -> Vec<Value> {
    let text = String::from_utf8(out.stderr.clone()).expect("UTF-8 stderr");
    assert!(!text.trim().is_empty(), "nothing on stderr");
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\nall:\n{text}"));
            assert!(v.is_object(), "not an object: {l}");
            v
        })
        .collect()
}

#[test]
fn a_bad_setting_is_one_json_error_record() {
    let dir = temp_dir("setting");
    let state = dir.to_str().unwrap();
    let out = weaversd(
        &["--log-format", "json", "--state-dir", state, "--ipalloc-range", "10.32.0.0/99"],
        &[("WEAVERS_PASSWORD", "pw")],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["level"], "ERROR");
    let error = lines[0]["fields"]["error"].as_str().expect("an error field");
    assert!(error.starts_with("--ipalloc-range \"10.32.0.0/99\""), "{error}");
    assert!(lines[0]["timestamp"].is_string());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_environment_filter_is_a_json_warning_and_info_is_used() {
    let dir = temp_dir("rustlog");
    let state = dir.to_str().unwrap();
    // RUST_LOG that does not parse: warned about (at info, which is on).
    let out = weaversd(
        &["--state-dir", state, "--ipalloc-range", "bogus"],
        &[("WEAVERS_PASSWORD", "pw"), ("WEAVERS_LOG_FORMAT", "json"), ("RUST_LOG", "x=[")],
    );
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    let levels: Vec<&str> = lines.iter().map(|l| l["level"].as_str().unwrap()).collect();
    assert_eq!(levels, ["WARN", "ERROR"], "{lines:?}");
    assert!(lines[0]["fields"]["message"].as_str().unwrap().starts_with("RUST_LOG \"x=[\" is not a log filter"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_command_line_is_json_too_when_json_is_asked_for() {
    let out = weaversd(&["--log-format", "json", "--listen", "not-an-address"], &[]);
    assert_eq!(out.status.code(), Some(2), "clap's status for usage errors");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let error = lines[0]["fields"]["error"].as_str().unwrap();
    assert!(error.contains("--listen") && error.contains("not-an-address"), "{error}");

    // Without it, clap's usual text.
    let out = weaversd(&["--listen", "not-an-address"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: invalid value 'not-an-address'"));
}

#[test]
fn the_config_file_picks_the_format_and_the_flag_wins() {
    let dir = temp_dir("config");
    let cfg = dir.join("weaversd.toml");
    std::fs::write(&cfg, "password = \"pw\"\nlog_format = \"json\"\nipalloc_range = \"nope\"\n").unwrap();
    let cfg = cfg.to_str().unwrap();
    let state = dir.to_str().unwrap();
    let out = weaversd(&["--config", cfg, "--state-dir", state], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_lines(&out)[0]["level"], "ERROR");

    let out = weaversd(&["--config", cfg, "--state-dir", state, "--log-format", "text"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(text.starts_with("weaversd: --ipalloc-range \"nope\""), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_log_level_is_refused_and_text_has_no_colour_off_a_terminal() {
    let out = weaversd(&["--log-level", "x=[", "--print-public-key"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(text.starts_with("weaversd: --log-level \"x=[\": give error, warn, info"), "{text}");

    // A warning in text mode, to a pipe: no escape sequences.
    let dir = temp_dir("colour");
    let out = weaversd(
        &["--state-dir", dir.to_str().unwrap(), "--ipalloc-range", "bogus"],
        &[("WEAVERS_PASSWORD", "pw"), ("RUST_LOG", "x=[")],
    );
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(text.contains(" WARN ") && text.contains("is not a log filter"), "{text}");
    assert!(!text.contains('\u{1b}'), "ANSI escapes on a pipe: {text:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
