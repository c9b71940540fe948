//! A small AEX over weavers, every process a separate host's: engine on
//! h1, a gateway on h2, customers on h3 (their TCP sessions cross the
//! overlay), the recorder on h4. The groups come from the overlay DNS: they
//! are registered at addresses that differ from the shipped symbols file,
//! and the processes (which read the shipped file) join the registered
//! ones. At the end `aex audit` checks the journal against the record and
//! the gateway's acknowledgements.
//!
//! The same exchange runs again in network-authority mode under AEX's
//! sample policy (`dist/aex-policy.sh`): each host certified for its role
//! only, and the gateway's host refused when it publishes market data.

use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use weavers_tests::mcast::{Numbered, Out};
use weavers_tests::procs::{read_json, register_aex, AexSecrets, Proc};
use weavers_tests::{bins, lab_or_skip, wait_until, DaemonOpts, Lab};

fn s(v: impl ToString) -> String {
    v.to_string()
}

fn overlay(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 40, 0, i as u8)
}

/// The shipped symbols with every group moved from 239.192.x.y to 239.193.x.y.
fn moved_symbols(dir: &Path) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../exchange/symbols.txt"))
        .expect("read the shipped symbols");
    let path = dir.join("moved-symbols.txt");
    std::fs::write(&path, shipped.replace("239.192.", "239.193.")).unwrap();
    path
}

/// Groups with local members on host `i`.
fn joined(lab: &Lab, i: usize) -> Vec<String> {
    let v = lab.try_cli_json(i, &["groups", "--json"]).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["local_members"].as_array().is_some_and(|m| !m.is_empty()))
        .filter_map(|g| g["group"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_small_exchange_trades_over_the_overlay_and_audits_clean() {
    let Some(mut lab) = lab_or_skip(4) else { return };
    lab.start_exposed_mesh(&[]);
    trade_and_audit(&lab);
}

/// Certificates for h1 (engine), h2 (gateway), h3 (customers: no groups)
/// and h4 (recorder) by `dist/aex-policy.sh`, for the moved groups; the
/// daemons started with them and exposed.
fn start_with_sample_policy(lab: &mut Lab) {
    let ca = lab.dir().join("ca");
    let ca_s = ca.display().to_string();
    lab.try_cli(1, &["ca", "init", &ca_s]).unwrap_or_else(|e| panic!("{e:#}"));
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/aex-policy.sh");
    for (i, role) in [(1, "engine"), (2, "gateway"), (3, "md"), (4, "md")] {
        let key = Command::new(bins::weaversd())
            .arg("--state-dir")
            .arg(lab.state_dir(i))
            .arg("--print-public-key")
            .output()
            .unwrap();
        let key = String::from_utf8(key.stdout).unwrap();
        let out = Command::new(&policy)
            .args([&ca_s, role, &format!("h{i}"), key.trim()])
            .env("WEAVERS", bins::weavers())
            .env("AEX_ORDERS", "239.193.1.0/24")
            .env("AEX_MD", "239.193.2.0/24")
            .output()
            .unwrap();
        assert!(out.status.success(), "aex-policy.sh {role}: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(ca.join(format!("h{i}.crt")), &out.stdout).unwrap();
    }
    for i in 1..=4 {
        let cert = ca.join(format!("h{i}.crt")).display().to_string();
        let opts = DaemonOpts::new().arg("--ca").arg(&format!("{ca_s}/ca.crt")).arg("--cert").arg(&cert);
        lab.start_daemon(i, if i == 1 { opts } else { opts.peer(1) });
    }
    lab.wait_mesh(&[1, 2, 3, 4], Duration::from_secs(30));
    for i in 1..=4 {
        lab.expose(i, &format!("{}/16", overlay(i)));
    }
}

#[test]
fn the_exchange_runs_under_the_sample_authority_policy() {
    let Some(mut lab) = lab_or_skip(4) else { return };
    start_with_sample_policy(&mut lab);
    trade_and_audit(&lab);
    // The gateway's host may publish orders, not market data: a datagram it
    // sends to a market-data group is refused at its own daemon.
    let md = Ipv4Addr::new(239, 193, 2, 1);
    let dst = std::net::SocketAddr::from((md, 5555));
    Numbered::new(64).send(lab.ns(2), Out::V4(overlay(2)), dst, 0..10).unwrap();
    let refused = wait_until(Duration::from_secs(5), || {
        lab.try_cli_json(2, &["groups", "--json"]).is_ok_and(|v| {
            v.as_array()
                .into_iter()
                .flatten()
                .any(|g| g["group"] == md.to_string().as_str() && g["counters"]["refused_frames"].as_u64() > Some(0))
        })
    });
    assert!(
        refused,
        "h2 (a gateway) sent market data unrefused: {}",
        lab.try_cli_json(2, &["groups", "--json"]).unwrap_or_default()
    );
}

/// Runs the small exchange on a lab whose daemons are up and exposed.
fn trade_and_audit(lab: &Lab) {
    let dir = lab.dir().to_path_buf();
    let p = |name: &str| dir.join(name).display().to_string();
    let moved = moved_symbols(&dir);
    register_aex(lab, 1, Some(&moved)).expect("aex register");
    let secrets = AexSecrets::make(&dir.join("secrets"), "1", "1-2").expect("aex keys and logins");

    let dns = |i: usize| [s("--dns"), overlay(i).to_string()];
    let mut engine = Proc::aex(
        lab,
        1,
        "engine",
        &[
            &[s("engine"), s("--name"), s("eng1"), s("--journal"), p("j"), s("--status"), p("engine.json")][..],
            &[s("--keys"), secrets.engine_keys()],
            &dns(1),
        ]
        .concat(),
    )
    .unwrap();
    let mut record = Proc::aex(
        lab,
        4,
        "record",
        &[
            &[s("record"), s("--out"), p("md"), s("--status"), p("record.json")][..],
            &[s("--keys"), secrets.md_keys()],
            &dns(4),
        ]
        .concat(),
    )
    .unwrap();
    let gw_addr = format!("{}:7800", overlay(2));
    let mut gateway = Proc::aex(
        lab,
        2,
        "gateway",
        &[
            &[s("gateway"), s("--id"), s(1), s("--listen"), gw_addr.clone()][..],
            &[s("--logins"), secrets.logins(), s("--keys"), secrets.gw_keys(1)],
            &[s("--acks"), p("acks"), s("--status"), p("gw.json")],
            &dns(2),
        ]
        .concat(),
    )
    .unwrap();
    for (proc_, status) in [(&engine, "engine.json"), (&gateway, "gw.json"), (&record, "record.json")] {
        assert!(
            wait_until(Duration::from_secs(60), || read_json(&dir.join(status)).is_some()),
            "{} is not up:\n{}",
            proc_.name(),
            proc_.log_tail(20)
        );
    }
    let mut customers = Proc::aex(
        lab,
        3,
        "customers",
        &[
            &[s("customers"), s("--gateway"), gw_addr, s("--brokers"), s("1-2"), s("--customers"), s(5)][..],
            &[s("--rate"), s(5), s("--duration"), s(5), s("--passwords"), secrets.passwords()],
            &[s("--summary-json"), p("c.json")],
            &dns(3),
        ]
        .concat(),
    )
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || !customers.running()),
        "customers did not finish:\n{}",
        customers.log_tail(20)
    );
    let summary = read_json(&dir.join("c.json")).unwrap_or_else(|| panic!("no summary:\n{}", customers.log_tail(20)));

    // The groups joined are the registered ones, not the file's.
    let (h1, h4) = (joined(lab, 1), joined(lab, 4));
    assert!(h1.iter().any(|g| g.starts_with("239.193.1.")), "engine joined orders groups by name: {h1:?}");
    assert!(h4.iter().any(|g| g.starts_with("239.193.2.")), "recorder joined md groups by name: {h4:?}");
    assert!(!h1.iter().chain(&h4).any(|g| g.starts_with("239.192.")), "no group from the file: {h1:?} {h4:?}");

    std::thread::sleep(Duration::from_secs(2));
    for proc_ in [&mut record, &mut gateway, &mut engine] {
        let st = proc_.stop(Duration::from_secs(10));
        assert!(st.is_some_and(|s| s.success()), "{} exits cleanly: {st:?}\n{}", proc_.name(), proc_.log_tail(20));
    }
    let audit = Command::new(bins::aex())
        .args(["audit", "--json", "--journal"])
        .arg(dir.join("j"))
        .arg("--record")
        .arg(dir.join("md"))
        .arg("--acks")
        .arg(dir.join("acks"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&audit.stdout)
        .unwrap_or_else(|e| panic!("audit JSON ({e}): {}", String::from_utf8_lossy(&audit.stderr)));
    assert!(audit.status.success() && report["ok"] == true, "audit: {report:#}");
    let sent = summary["orders_sent"].as_u64().unwrap();
    assert!(sent >= 200, "about 250 orders sent: {summary}");
    assert_eq!(summary["orders_acked"].as_u64().unwrap() + summary["rejects"].as_u64().unwrap(), sent);
    assert_eq!(report["acks_checked"], summary["orders_acked"], "every ack in the log: {report}");
    assert_eq!(report["rpo_orders"], 0);
    assert!(report["md_messages_checked"].as_u64().unwrap() > sent, "market data recorded on h4: {report}");
    assert_eq!(report["md_gaps"], 0);
}
