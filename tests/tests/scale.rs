//! The mesh past the size where it used to stop forming (about 35 hosts,
//! issue 12): 40 hosts, each daemon told only about h1, must all list each
//! other as connected, and then carry a group to exactly the hosts that
//! joined it. The timing of this is measured by `bench/scale.sh`; here the
//! deadlines are loose.
//! Build first: `cargo build --workspace && CI=true cargo test -p weavers-tests --test scale`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use serde_json::Value;
use weavers_tests::mcast::{self, GroupReceiver, Join, Numbered, Out};
use weavers_tests::{lab_with, wait_until, Capture, DaemonOpts, Lab};

/// Hosts in the mesh.
const HOSTS: usize = 40;
/// How long the mesh may take to form, from the last daemon's start. A
/// mesh that works forms in seconds; this is loose for a loaded machine.
const MESH_DEADLINE: Duration = Duration::from_secs(90);
/// Daemons started at once.
const WAVE: usize = 10;

/// Names of the peers that host `i` lists as subscribed to `group`.
fn subscribers(lab: &Lab, i: usize, group: Ipv4Addr) -> Vec<String> {
    let Ok(Value::Array(rows)) = lab.api_get(i, "/v1/groups") else { return Vec::new() };
    let mut v: Vec<String> = rows
        .iter()
        .filter(|r| r["group"] == group.to_string().as_str())
        .flat_map(|r| r["subscribed_peers"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

/// The `delivered_frames` counter of `group` on host `i` (0 without a row).
fn delivered(lab: &Lab, i: usize, group: Ipv4Addr) -> u64 {
    match lab.api_get(i, "/v1/groups") {
        Ok(Value::Array(rows)) => rows
            .iter()
            .find(|r| r["group"] == group.to_string().as_str())
            .and_then(|r| r["counters"]["delivered_frames"].as_u64())
            .unwrap_or(0),
        other => panic!("GET /v1/groups on h{i}: {other:?}"),
    }
}

#[test]
fn forty_hosts_form_a_full_mesh_from_one_seed_and_carry_a_group_exactly_once() {
    // Permanent neighbour entries: the machine's one ARP table would
    // overflow with 40*39 entries (see the lab's module docs).
    let Some(mut lab) = lab_with(Lab::builder(HOSTS).static_neighbours(true)) else { return };
    let all: Vec<usize> = (1..=HOSTS).collect();
    // Info logs: debug logs of 40 daemons cost the machine much.
    let opts = |o: DaemonOpts| o.env("RUST_LOG", "info");
    let mut starts = vec![(1, opts(DaemonOpts::new()))];
    starts.extend((2..=HOSTS).map(|i| (i, opts(DaemonOpts::new().peer(1)))));
    let started = lab.start_daemons(starts, WAVE);
    match lab.wait_full_mesh(&all, MESH_DEADLINE, Duration::from_millis(500)) {
        Ok(_) => {
            eprintln!("{HOSTS} hosts in a full mesh {:.1} s after the last start", started.elapsed().as_secs_f64())
        }
        Err(snap) => panic!(
            "no full mesh of {HOSTS} hosts {:.0} s after the last daemon started: {}",
            started.elapsed().as_secs_f64(),
            snap.summary(HOSTS)
        ),
    }

    // A group across the mesh: h1 sends, three hosts far apart in the
    // start order listen, h39 (no listener) must see none of it.
    let (sender, receivers, idle) = (1, [2, 20, HOSTS], HOSTS - 1);
    for i in [sender, idle].into_iter().chain(receivers) {
        let cidr = format!("{}/16", Lab::overlay(i));
        let out = lab.expose(i, &cidr);
        assert!(out.contains(&Lab::overlay(i).to_string()), "`weavers expose {cidr}` on h{i} printed {out:?}");
    }
    let group = Ipv4Addr::new(239, 12, 0, 1);
    let port = 5120;
    let rx: Vec<GroupReceiver> = receivers
        .iter()
        .map(|&i| {
            GroupReceiver::start(lab.ns(i), port, Join::V4 { group, iface: Lab::overlay(i) })
                .unwrap_or_else(|e| panic!("receiver on h{i}: {e:#}"))
        })
        .collect();
    let mut want: Vec<String> = receivers.iter().map(|i| format!("h{i}")).collect();
    want.sort();
    assert!(
        wait_until(Duration::from_secs(20), || subscribers(&lab, sender, group) == want),
        "h{sender} does not list exactly {want:?} as subscribed to {group} (it lists {:?})",
        subscribers(&lab, sender, group)
    );

    const N: u64 = 2000;
    let stream = Numbered::new(200).paced(5, Duration::from_millis(2));
    let cap_idle = Capture::start(lab.ns(idle)).expect("capture in the idle host");
    let cap_rx = Capture::start(lab.ns(receivers[0])).expect("capture in a receiver");
    let t = Instant::now();
    let dst = SocketAddr::V4(SocketAddrV4::new(group, port));
    stream.send(lab.ns(sender), Out::V4(Lab::overlay(sender)), dst, 0..N).unwrap_or_else(|e| panic!("send: {e:#}"));
    for (r, i) in rx.iter().zip(receivers) {
        assert!(r.wait_for(N as usize, Duration::from_secs(30)), "h{i} got {} of {N} datagrams of {group}", r.count());
        // Duplicates would come after the last original.
        r.wait_quiet(Duration::from_secs(1), Duration::from_secs(10));
    }
    eprintln!("{N} datagrams to {group} sent and received in {:.1} s", t.elapsed().as_secs_f64());
    let frames_idle = cap_idle.finish();
    let frames_rx = cap_rx.finish();
    for (r, i) in rx.into_iter().zip(receivers) {
        if let Err(e) = stream.check_exactly_once(&r.finish(), 0..N) {
            panic!("h{i}: {e}");
        }
    }
    let in_idle = mcast::frames_to(&frames_idle, IpAddr::V4(group)).len();
    assert_eq!(in_idle, 0, "{in_idle} frames to {group} appeared in h{idle}, which has no listener");
    assert_eq!(delivered(&lab, idle, group), 0, "h{idle}'s daemon delivered frames of {group}");
    assert!(
        mcast::frames_to(&frames_rx, IpAddr::V4(group)).len() >= N as usize,
        "the capture in h{} missed the stream: the check on h{idle} would prove nothing",
        receivers[0]
    );
}
