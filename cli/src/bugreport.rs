//! `weavers bugreport`: one text file with what a bug report needs: this
//! command's version, the daemon's status, peers, groups, IPAM, DNS and
//! revocations (its JSON answers as they came), the host's links,
//! addresses, routes and multicast memberships, and the daemon's recent
//! log from journald. Secrets never go in: not the password, the identity
//! key or the configuration file. A part that cannot be had (the daemon is
//! down, no journald) says why and the rest is still written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use weavers_api::{routes, Client};

/// The daemon's answers a report holds, by title and path.
const API_PARTS: [(&str, &str); 7] = [
    ("status", routes::STATUS),
    ("peers", routes::PEERS),
    ("groups", routes::GROUPS),
    ("ipam", routes::IPAM),
    ("dns", routes::DNS),
    ("dns stats", routes::DNS_STATS),
    ("revocations", routes::REVOCATIONS),
];

/// Commands whose output a report holds (run if present).
const COMMANDS: [(&str, &[&str]); 7] = [
    ("uname", &["uname", "-a"]),
    ("links", &["ip", "-d", "link", "show"]),
    ("addresses", &["ip", "addr", "show"]),
    ("routes", &["ip", "route", "show", "table", "all"]),
    ("multicast memberships", &["ip", "maddr", "show"]),
    ("bridge ports", &["bridge", "link", "show"]),
    ("daemon log (journald, last 500 lines)", &["journalctl", "-u", "weaversd", "-n", "500", "--no-pager"]),
];

fn section(out: &mut String, title: &str, body: &str) {
    let _ = writeln!(out, "===== {title} =====\n{}\n", body.trim_end());
}

/// Writes the report to `path` (default: `weavers-bugreport-UNIXTIME.txt`
/// in the current directory); the line to print.
pub async fn run(client: &Client, path: Option<&Path>) -> Result<String, String> {
    let mut out = String::new();
    let now = weavers_cert::unix_now();
    section(&mut out, "weavers bugreport", &format!("weavers {}\nunix time {now}", env!("CARGO_PKG_VERSION")));
    for (title, route) in API_PARTS {
        let body = match client.get_raw(route).await {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => format!("(not available: {e})"),
        };
        section(&mut out, &format!("daemon: {title} (GET {route})"), &body);
    }
    for (title, argv) in COMMANDS {
        let body = match Command::new(argv[0]).args(&argv[1..]).output() {
            Ok(o) => format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
            Err(e) => format!("(could not run {}: {e})", argv[0]),
        };
        section(&mut out, &format!("{title} ({})", argv.join(" ")), &body);
    }
    let path = path.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(format!("weavers-bugreport-{now}.txt")));
    write_private(&path, out.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(format!("wrote {} ({} bytes): attach it to the bug report\n", path.display(), out.len()))
}

/// Writes `bytes` to a new file only its owner can read (the report shows
/// the host's network layout).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_report_is_written_even_without_a_daemon() {
        let dir = std::env::temp_dir().join(format!("weavers-bugreport-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("r.txt");
        let client = Client::new(dir.join("no.sock"));
        let line = run(&client, Some(&file)).await.unwrap();
        assert!(line.starts_with(&format!("wrote {}", file.display())), "{line}");
        let text = std::fs::read_to_string(&file).unwrap();
        for want in ["===== weavers bugreport =====", "daemon: status (GET /v1/status)", "(not available: ", "uname"] {
            assert!(text.contains(want), "missing {want:?}:\n{text}");
        }
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
