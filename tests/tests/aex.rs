//! AEX on the overlay: `aex register` puts every symbol's groups in the
//! overlay DNS, and another host resolves them by name, over an underlay
//! that drops IP fragments.

use std::process::Command;
use std::time::Duration;

use weavers_tests::{bins, lab_or_skip, wait_until, DaemonOpts};

#[test]
fn symbols_registered_on_one_host_resolve_on_another() {
    let Some(mut lab) = lab_or_skip(2) else { return };
    // As many clouds do: the 200 names make one large gossip record, which
    // must cross in pieces that fit the MTU, never as IP fragments.
    lab.set_underlay_fragment_drop(true).expect("drop IP fragments on the underlay");
    lab.start_daemon(1, DaemonOpts::new());
    lab.start_daemon(2, DaemonOpts::new().peer(1));
    lab.wait_mesh(&[1, 2], Duration::from_secs(20));
    let out = Command::new(bins::aex())
        .arg("register")
        .arg("--socket")
        .arg(lab.socket(1))
        .arg("--weavers")
        .arg(bins::weavers())
        .output()
        .expect("run aex");
    assert!(out.status.success(), "aex register: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("registered 200 names for 100 symbols"));
    // The first and last symbols of the shipped file, resolved on h2.
    let lookup = |name: &str| lab.try_cli_json(2, &["dns", "lookup", name, "--json"]).ok();
    for (name, group) in [("acrn.orders.aex", "239.192.1.1"), ("acrn.md.aex", "239.192.2.1")] {
        assert!(
            wait_until(Duration::from_secs(10), || lookup(name).is_some_and(|v| v.to_string().contains(group))),
            "{name} does not resolve to {group} on h2: {:?} ({} IP fragments dropped on the underlay)",
            lookup(name),
            lab.underlay_fragments_dropped()
        );
    }
    let aex_names = || {
        let ls = lab.try_cli_json(2, &["dns", "ls", "--json"]).unwrap();
        ls.as_array().unwrap().iter().filter(|r| r["name"].as_str().is_some_and(|n| n.contains(".aex."))).count()
    };
    assert!(
        wait_until(Duration::from_secs(10), || aex_names() == 200),
        "every symbol's two names reach h2; h2 has {} ({} IP fragments dropped on the underlay)",
        aex_names(),
        lab.underlay_fragments_dropped()
    );
    assert_eq!(lab.underlay_fragments_dropped(), 0, "nothing needed IP fragmentation");
}
