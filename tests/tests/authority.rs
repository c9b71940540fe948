//! Network-authority mode with real daemons (issue 13): certificates made
//! with `weavers ca`, hosts started with `--ca` and `--cert`; a host
//! without a certificate never joins; a certified host is held to its
//! certificate's groups and names while a group runs beside it without
//! loss; a revocation handed to one host cuts the revoked host off
//! everywhere within 5 s, and every host keeps it.
//! Build first: `cargo build --workspace && CI=true cargo test -p weavers-tests --test authority`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use weavers_tests::mcast::{GroupReceiver, Join, Numbered, Out};
use weavers_tests::{bins, lab_or_skip, wait_until, DaemonOpts, Lab};

const SEC: Duration = Duration::from_secs(1);

/// Signs a certificate for lab host `i` (its key from `--print-public-key`
/// on its state dir) with `extra` flags; returns the file.
fn certify(lab: &Lab, ca: &Path, i: usize, extra: &[&str]) -> String {
    let out = Command::new(bins::weaversd())
        .arg("--state-dir")
        .arg(lab.state_dir(i))
        .arg("--print-public-key")
        .output()
        .expect("weaversd --print-public-key");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let name = format!("h{i}");
    let dir = ca.to_str().unwrap();
    let mut args = vec!["ca", "sign", dir, "--name", &name, "--public-key", &key];
    args.extend_from_slice(extra);
    let cert = lab.try_cli(i, &args).unwrap_or_else(|e| panic!("{e:#}"));
    let file = ca.join(format!("{name}.crt"));
    std::fs::write(&file, cert).unwrap();
    file.to_str().unwrap().to_owned()
}

/// `peer ls --json` of host `i` lists `name` as connected.
fn connected(lab: &Lab, i: usize, name: &str) -> bool {
    lab.peer_entry(i, name).is_some_and(|p| p["state"] == "connected")
}

/// A counter of `group` in host `i`'s `groups --json` (0 without a row).
fn group_counter(lab: &Lab, i: usize, group: Ipv4Addr, key: &str) -> u64 {
    let rows = lab.try_cli_json(i, &["groups", "--json"]).unwrap_or_else(|e| panic!("{e:#}"));
    let g = group.to_string();
    rows.as_array()
        .and_then(|v| v.iter().find(|r| r["group"] == g.as_str()))
        .map_or(0, |r| r["counters"][key].as_u64().unwrap_or(0))
}

#[test]
fn certificates_decide_who_joins_what_they_may_do_and_a_revocation_cuts_a_host_off() {
    let Some(mut lab) = lab_or_skip(4) else { return };
    let ca = lab.dir().join("ca");
    let ca_s = ca.to_str().unwrap().to_owned();
    lab.try_cli(1, &["ca", "init", &ca_s, "--name", "lab"]).unwrap_or_else(|e| panic!("{e:#}"));
    let crt = format!("{ca_s}/ca.crt");
    // h3 may publish to and subscribe to only 239.9.0.0/16, and register
    // only "h3".
    let certs = [
        certify(&lab, &ca, 1, &[]),
        certify(&lab, &ca, 2, &[]),
        certify(&lab, &ca, 3, &["--publish", "239.9.0.0/16", "--subscribe", "239.9.0.0/16", "--names", "h3"]),
    ];
    let opts = |i: usize| DaemonOpts::new().arg("--ca").arg(&crt).arg("--cert").arg(&certs[i - 1]);
    lab.start_daemon(1, opts(1));
    lab.start_daemon(2, opts(2).peer(1));
    lab.start_daemon(3, opts(3).peer(1));
    lab.wait_mesh(&[1, 2, 3], 30 * SEC);
    // h4 holds the password but no certificate: it never becomes a peer.
    lab.start_daemon(4, DaemonOpts::new().peer(1));
    std::thread::sleep(5 * SEC);
    for i in 1..=3 {
        assert!(!connected(&lab, i, "h4"), "h{i} took h4 without a certificate:\n{}", lab.describe_peers());
    }
    let refused = lab.status_json(1)["handshakes"]["mac1_refused"].as_u64().unwrap_or(0);
    assert!(refused > 0, "h1 counted no refused handshake from h4: {}", lab.status_json(1));
    for i in 1..=3 {
        lab.expose(i, &format!("{}/16", Lab::overlay(i)));
    }

    // A legitimate group runs h1 -> h2 while h3 tries what it may not.
    let (group, port) = (Ipv4Addr::new(239, 1, 1, 1), 5301);
    let (denied, dport) = (Ipv4Addr::new(239, 1, 2, 2), 5302);
    let rx = GroupReceiver::start(lab.ns(2), port, Join::V4 { group, iface: Lab::overlay(2) }).unwrap();
    let rx_denied = GroupReceiver::start(lab.ns(2), dport, Join::V4 { group: denied, iface: Lab::overlay(2) }).unwrap();
    // h3 joins the legitimate group too, which it may not receive.
    let rx_h3 = GroupReceiver::start(lab.ns(3), port, Join::V4 { group, iface: Lab::overlay(3) }).unwrap();
    let joined = |i: usize, who: &str| {
        lab.try_cli_json(i, &["groups", "--json"]).is_ok_and(|v| v.to_string().contains(&format!("\"{who}\"")))
    };
    assert!(
        wait_until(10 * SEC, || joined(1, "h2") && joined(3, "h2") && joined(1, "h3")),
        "the joins of h2 and h3 did not reach h1 and h3"
    );
    std::thread::sleep(SEC);
    const N: u64 = 2000;
    let stream = Numbered::new(200).paced(5, Duration::from_millis(2));
    let sender = {
        let ns = lab.ns(1).to_owned();
        let stream = stream.clone();
        std::thread::spawn(move || {
            let dst = SocketAddr::V4(SocketAddrV4::new(group, port));
            stream.send(&ns, Out::V4(Lab::overlay(1)), dst, 0..N)
        })
    };
    let rogue = Numbered::new(200);
    let dst = SocketAddr::V4(SocketAddrV4::new(denied, dport));
    rogue.send(lab.ns(3), Out::V4(Lab::overlay(3)), dst, 0..100).unwrap();
    let dns = lab.cli(3, &["dns", "add", "engine.md.aex", "10.32.9.9"]);
    assert!(!dns.status.success(), "h3 registered a name its certificate does not allow");
    let err = String::from_utf8_lossy(&dns.stderr);
    assert!(err.contains("does not allow"), "unclear refusal: {err}");
    lab.try_cli(3, &["dns", "add", "h3", "10.32.9.9"]).unwrap_or_else(|e| panic!("an allowed name refused: {e:#}"));
    sender.join().unwrap().unwrap();
    rx.wait_for(N as usize, 30 * SEC);
    rx.wait_quiet(SEC, 5 * SEC);
    let got = rx.finish();
    let lost = N.saturating_sub(got.len() as u64);
    assert!(lost * 1000 <= N, "the legitimate group lost {lost} of {N}");
    assert_eq!(rx_denied.finish().len(), 0, "h2 received h3's frames to a group h3 may not publish");
    assert_eq!(rx_h3.finish().len(), 0, "h3 received a group it may not subscribe to");
    assert_eq!(group_counter(&lab, 1, group, "refused_copies"), N, "h1 did not count the copies it kept from h3");
    assert_eq!(group_counter(&lab, 3, denied, "refused_frames"), 100, "h3 did not count its refused frames");
    eprintln!("legitimate group: {} of {N} delivered while h3 was refused", got.len());

    // Revoke h2 through h1: gone from every host within 5 s.
    let started = Instant::now();
    let out = lab.try_cli(1, &["ca", "revoke", &ca_s, "h2"]).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(out.contains("revoked h2"), "{out}");
    let cut = wait_until(5 * SEC, || !connected(&lab, 1, "h2") && !connected(&lab, 3, "h2"));
    let took = started.elapsed();
    assert!(cut, "h2 still connected 5 s after its revocation:\n{}", lab.describe_peers());
    eprintln!("revocation: h2 cut off everywhere after {took:?}");
    for i in [1, 3] {
        let list = lab.api_get(i, "/v1/revocations").unwrap();
        assert_eq!(list[0]["name"], "h2", "h{i}'s revocations: {list}");
    }
    // It stays out across the rest of the mesh's life: h1 and h3 keep each
    // other, h2 does not come back.
    std::thread::sleep(5 * SEC);
    assert!(connected(&lab, 1, "h3") && !connected(&lab, 1, "h2") && !connected(&lab, 3, "h2"));
    assert!(lab.state_dir(3).join("revocations.json").exists(), "h3 did not save the revocation");
}
