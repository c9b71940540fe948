//! IPAM in the namespace lab: hosts started together share
//! `--ipalloc-range` without handing out an address twice, and keep their
//! allocations across a crash. (Containers through the CNI plugin are
//! tested in cni.rs.)

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use weavers_tests::{lab_or_skip, wait_until, DaemonOpts, Lab};

const SEC: Duration = Duration::from_secs(1);

/// `weavers expose` with no address: IPAM picks one. Returns it without the prefix.
fn expose_auto(lab: &Lab, i: usize) -> Ipv4Addr {
    let out = lab.cli_ok(i, &["expose"]);
    let text = out.trim();
    let (addr, len) = text.split_once('/').unwrap_or_else(|| panic!("h{i}: `weavers expose` printed {text:?}"));
    assert_eq!(len, "12", "h{i}: the default range's prefix");
    addr.parse().unwrap_or_else(|e| panic!("h{i}: {text:?}: {e}"))
}

/// Spans of `ipam ls --json` on host i: (first, last, owner key).
fn spans(lab: &Lab, i: usize) -> Vec<(String, String, String)> {
    let v = lab.try_cli_json(i, &["ipam", "ls", "--json"]).unwrap();
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "h{i} reports IPAM problems: {v}");
    v["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["first"].as_str().unwrap().into(),
                s["last"].as_str().unwrap().into(),
                s["owner_key"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn hosts_started_together_get_distinct_addresses_that_survive_a_crash() {
    let Some(mut lab) = lab_or_skip(3) else { return };
    lab.start_daemon(1, DaemonOpts::new());
    lab.start_daemon(2, DaemonOpts::new().peer(1));
    lab.start_daemon(3, DaemonOpts::new().peer(1));
    lab.wait_mesh(&[1, 2, 3], 20 * SEC);

    let addrs: Vec<Ipv4Addr> = (1..=3).map(|i| expose_auto(&lab, i)).collect();
    let distinct: HashSet<_> = addrs.iter().collect();
    assert_eq!(distinct.len(), 3, "three hosts, three addresses: {addrs:?}");
    for a in &addrs {
        let o = a.octets();
        assert!(o[0] == 10 && (32..48).contains(&o[1]), "{a} outside 10.32.0.0/12");
    }
    // They work: every host reaches the others' addresses.
    for i in 1..=3 {
        for (j, a) in addrs.iter().enumerate() {
            if j + 1 != i {
                assert!(lab.wait_ping(i, *a, 10 * SEC), "h{i} cannot ping h{}'s {a}", j + 1);
            }
        }
    }
    // Every host sees the same division of the range.
    assert!(
        wait_until(10 * SEC, || { (2..=3).all(|i| spans(&lab, i) == spans(&lab, 1)) }),
        "the hosts disagree on who owns what:\n{:?}\n{:?}\n{:?}",
        spans(&lab, 1),
        spans(&lab, 2),
        spans(&lab, 3)
    );

    // A crash and a restart on the same state dir: the same address comes back.
    lab.kill9(2);
    lab.restart(2);
    lab.wait_mesh(&[1, 2, 3], 20 * SEC);
    let status = lab.try_cli_json(2, &["ipam", "ls", "--json"]).unwrap();
    let kept: Vec<&str> =
        status["allocations"].as_array().unwrap().iter().map(|a| a["address"].as_str().unwrap()).collect();
    assert_eq!(kept, vec![addrs[1].to_string().as_str()], "h2's allocation after the restart: {status}");
    assert_eq!(expose_auto(&lab, 2), addrs[1], "expose after a restart gives the same address");
}

#[test]
fn a_dead_hosts_space_is_taken_over_with_rmpeer() {
    let Some(mut lab) = lab_or_skip(3) else { return };
    lab.start_daemon(1, DaemonOpts::new());
    lab.start_daemon(2, DaemonOpts::new().peer(1));
    lab.start_daemon(3, DaemonOpts::new().peer(1));
    lab.wait_mesh(&[1, 2, 3], 20 * SEC);
    for i in 1..=3 {
        expose_auto(&lab, i);
    }
    let key3 = lab.status_json(3)["public_key"].as_str().unwrap().to_string();
    let owned_by = |lab: &Lab, i: usize, key: &str| spans(lab, i).iter().filter(|s| s.2 == key).count();
    assert!(wait_until(10 * SEC, || owned_by(&lab, 1, &key3) > 0), "h1 sees h3 owning space");

    // A live peer cannot be taken over.
    let refused = lab.cli(1, &["ipam", "rmpeer", "h3"]);
    assert!(!refused.status.success(), "rmpeer of a connected peer must be refused");

    // h3 dies for good; once h1 no longer counts it as connected, h1 takes its space.
    lab.kill9(3);
    let key1 = lab.status_json(1)["public_key"].as_str().unwrap().to_string();
    assert!(
        wait_until(40 * SEC, || lab.cli(1, &["ipam", "rmpeer", "h3"]).status.success()),
        "rmpeer h3 never succeeded after h3 died"
    );
    assert_eq!(owned_by(&lab, 1, &key3), 0, "h3 owns nothing after the take-over: {:?}", spans(&lab, 1));
    assert!(owned_by(&lab, 1, &key1) >= 2, "h1 owns its own span and h3's: {:?}", spans(&lab, 1));
    // h2 learns it by gossip.
    assert!(wait_until(10 * SEC, || owned_by(&lab, 2, &key3) == 0), "h2 still sees h3's space: {:?}", spans(&lab, 2));
}
