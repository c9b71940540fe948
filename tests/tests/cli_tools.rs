//! The operator's tools (issue 15) with real daemons. `weavers ping`: a
//! direct peer answers with its path, endpoint, round trip and MTU; a peer
//! reached through a relay says which; an unknown peer and one that is gone
//! exit 1 with a reason. `weavers top` shows the peers with their rates;
//! `weavers bugreport` writes the daemon's answers into one file.

use std::time::Duration;

use weavers_tests::{lab_or_skip, wait_until, DaemonOpts};

const SEC: Duration = Duration::from_secs(1);

#[test]
fn ping_top_and_bugreport_against_a_relayed_mesh() {
    let Some(mut lab) = lab_or_skip(3) else { return };
    lab.block(1, 3);
    lab.start_daemon(2, DaemonOpts::new());
    lab.start_daemon(1, DaemonOpts::new().peer(2));
    lab.start_daemon(3, DaemonOpts::new().peer(2));
    assert!(lab.wait_connected(2, &["h1", "h3"], 20 * SEC), "{}", lab.describe_peers());
    let relayed = || lab.peer_entry(1, "h3").is_some_and(|p| p["state"] == "relayed");
    assert!(wait_until(20 * SEC, relayed), "h1 does not reach h3 through h2:\n{}", lab.describe_peers());

    // Direct, by name and by key.
    let direct = lab.try_cli_json(1, &["ping", "h2", "--json"]).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(direct["path"], "direct", "{direct}");
    assert_eq!(direct["endpoint"], format!("{}:6783", lab.ip(2)), "{direct}");
    assert!(direct["rtt_us"].as_u64().is_some_and(|r| r > 0 && r < 1_000_000), "{direct}");
    assert!(direct["overlay_mtu"].as_u64().is_some_and(|m| m >= 1200), "{direct}");
    let key = direct["public_key"].as_str().unwrap().to_owned();
    let line = lab.try_cli(1, &["ping", &key]).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(line.starts_with("h2 (") && line.contains("direct to") && line.contains(" ms, overlay MTU "), "{line}");

    // Relayed.
    let via = lab.try_cli_json(1, &["ping", "h3", "--json"]).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!((via["path"].as_str(), via["via"].as_str()), (Some("relayed"), Some("h2")), "{via}");
    let line = lab.try_cli(1, &["ping", "h3"]).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(line.contains("relayed via h2"), "{line}");

    // top: one page, the peers and their rates.
    let page = lab.try_cli(1, &["top", "-n", "1"]).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(page.contains("PEER") && page.contains("GROUP"), "{page}");
    for name in ["h2", "h3"] {
        assert!(page.lines().any(|l| l.starts_with(name)), "no row for {name}:\n{page}");
    }
    // bugreport: the daemon's answers and the host's network in one file.
    let file = lab.dir().join("report.txt");
    let line = lab.try_cli(1, &["bugreport", "-o", file.to_str().unwrap()]).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(line.starts_with("wrote "), "{line}");
    let report = std::fs::read_to_string(&file).unwrap();
    assert!(
        report.contains("\"name\":\"h1\"") && report.contains("daemon: peers"),
        "{}",
        &report[..report.len().min(2000)]
    );
    assert!(!report.contains(lab.password()), "the report holds the password");

    // Unknown, then gone.
    let out = lab.cli(1, &["ping", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no peer \"nobody\""), "{out:?}");
    lab.kill9(2);
    let gone = wait_until(15 * SEC, || !lab.cli(1, &["ping", "h2"]).status.success());
    assert!(gone, "h1 still pings h2 15 s after its daemon was killed");
}
