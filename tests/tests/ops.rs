//! What operators look at, checked on real daemons in network namespaces:
//! the JSON log of a running daemon and the log level it obeys.
//! Build first: `cargo build --workspace && CI=true cargo test -p weavers-tests --test ops`.

use std::time::Duration;

use serde_json::Value;
use weavers_tests::{lab_or_skip, DaemonOpts, Lab};

const SEC: Duration = Duration::from_secs(1);

/// Host `i`'s daemon log without the lab's own `===== lab:` lines, each line
/// parsed as a JSON object (panics on one that is not).
fn json_log(lab: &Lab, i: usize) -> Vec<Value> {
    let log = lab.log(i);
    log.lines()
        .filter(|l| !l.starts_with("===== lab:"))
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("h{i} logged a line that is not JSON ({e}): {l:?}"));
            assert!(v.is_object() && v["level"].is_string() && v["timestamp"].is_string(), "h{i}: {l}");
            v
        })
        .collect()
}

fn messages(lines: &[Value]) -> Vec<&str> {
    lines.iter().filter_map(|l| l["fields"]["message"].as_str()).collect()
}

#[test]
fn a_running_daemon_logs_one_json_object_a_line_at_the_level_asked() {
    let Some(mut lab) = lab_or_skip(2) else { return };
    // The lab sets RUST_LOG=debug: h1's --log-level wins over it, h2 has
    // none, so RUST_LOG holds there.
    lab.start_daemon(1, DaemonOpts::new().arg("--log-format").arg("json").arg("--log-level").arg("info"));
    lab.start_daemon(2, DaemonOpts::new().peer(1).env("WEAVERS_LOG_FORMAT", "json"));
    assert!(lab.wait_connected(1, &["h2"], 20 * SEC), "no session: {}", lab.describe_peers());
    for i in [2, 1] {
        let stopped = lab.stop_daemon(i, 10 * SEC);
        assert!(stopped.status.success() && !stopped.killed, "h{i}: {stopped:?}");
    }

    let h1 = json_log(&lab, 1);
    let msgs = messages(&h1);
    assert!(msgs.contains(&"weaversd ready"), "{msgs:?}");
    assert!(msgs.contains(&"stopped cleanly"), "{msgs:?}");
    let ready = h1.iter().find(|l| l["fields"]["message"] == "weaversd ready").unwrap();
    assert_eq!(ready["fields"]["name"], "h1", "structured fields stay fields: {ready}");
    let levels: Vec<&str> = h1.iter().map(|l| l["level"].as_str().unwrap()).collect();
    assert!(!levels.iter().any(|l| *l == "DEBUG" || *l == "TRACE"), "--log-level info let through: {levels:?}");

    let h2 = json_log(&lab, 2);
    assert!(h2.iter().any(|l| l["level"] == "DEBUG"), "RUST_LOG=debug without --log-level: no DEBUG line in h2's log");
}
