//! Self-tests of the namespace lab: the underlay connects hosts, drops
//! multicast (and can stop dropping it), blocks what it is told to, the
//! probes and the capture work, and nothing is left behind.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use weavers_tests::{lab_or_skip, lab_with, netns, packet, probe, random_hex, Lab};

const SEC: Duration = Duration::from_secs(1);

#[test]
fn hosts_reach_each_other_over_the_underlay() {
    let Some(lab) = lab_or_skip(3) else { return };
    for i in 1..=3 {
        let h = lab.host(i);
        let links = h.links();
        assert!(links.iter().any(|l| l.contains(" eth0@")), "h{i} has no eth0: {links:?}");
        assert!(h.addrs("eth0").contains(&format!("{}/24", lab.ip(i))));
        for j in 1..=3 {
            if i != j {
                assert!(lab.wait_ping(i, lab.ip(j), 10 * SEC), "h{i} cannot ping h{j} ({}) on the underlay", lab.ip(j));
            }
        }
    }
}

#[test]
fn underlay_drops_multicast_but_carries_broadcast_and_unicast() {
    let Some(lab) = lab_or_skip(2) else { return };
    let group = Ipv4Addr::new(239, 1, 2, 3);
    let port = 5001;
    let marker = random_hex(8);
    let payloads: Vec<Vec<u8>> = (0..5).map(|k| format!("{marker}-{k}").into_bytes()).collect();

    // Dropped: nothing arrives.
    let rx = lab.udp_recv(2, Some(group), port, Some(lab.ip(2)));
    lab.udp_send(1, SocketAddrV4::new(group, port), Some(lab.ip(1)), &payloads);
    assert!(!rx.wait_for(1, 2 * SEC), "multicast crossed the underlay");
    drop(rx);

    // Broadcast still goes through (ARP needs it).
    let rx = lab.udp_recv(2, None, port, None);
    lab.udp_send(1, SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 255), port), None, &payloads);
    assert!(rx.wait_for(5, 5 * SEC), "broadcast did not cross the underlay");
    drop(rx);

    // With the drop off, the same multicast arrives: the check above can fail.
    lab.set_underlay_multicast_drop(false).unwrap();
    let rx = lab.udp_recv(2, Some(group), port, Some(lab.ip(2)));
    lab.udp_send(1, SocketAddrV4::new(group, port), Some(lab.ip(1)), &payloads);
    assert!(rx.wait_for(5, 5 * SEC), "multicast did not arrive with the drop off");
    let got = rx.finish();
    assert_eq!(got[0].1, payloads[0]);
    assert_eq!(got[0].0.ip(), std::net::IpAddr::V4(lab.ip(1)));

    // And back on.
    lab.set_underlay_multicast_drop(true).unwrap();
    let rx = lab.udp_recv(2, Some(group), port, Some(lab.ip(2)));
    lab.udp_send(1, SocketAddrV4::new(group, port), Some(lab.ip(1)), &payloads);
    assert!(!rx.wait_for(1, 2 * SEC), "multicast crossed the underlay after re-enabling the drop");
}

#[test]
fn blocking_cuts_only_the_given_pair() {
    let Some(lab) = lab_or_skip(3) else { return };
    assert!(lab.wait_ping(1, lab.ip(2), 10 * SEC));
    lab.block(1, 2);
    assert!(!lab.wait_ping(1, lab.ip(2), 3 * SEC), "h1 reaches h2 through a block");
    assert!(!lab.wait_ping(2, lab.ip(1), 3 * SEC), "h2 reaches h1 through a block");
    assert!(lab.wait_ping(1, lab.ip(3), 10 * SEC), "the block of h1-h2 cut h1-h3");
    assert!(lab.wait_ping(2, lab.ip(3), 10 * SEC), "the block of h1-h2 cut h2-h3");
    lab.unblock(1, 2);
    assert!(lab.wait_ping(1, lab.ip(2), 10 * SEC), "unblock did not restore h1-h2");
}

#[test]
fn blocking_a_udp_port() {
    let Some(lab) = lab_or_skip(2) else { return };
    let dst = SocketAddrV4::new(lab.ip(2), 7001);
    lab.udp_echo(1, 2, dst, b"before").expect("UDP echo before the block");
    lab.block_udp_port(7001);
    assert!(probe::udp_echo(lab.ns(1), lab.ns(2), dst, b"blocked", 3 * SEC).is_err(), "UDP crossed a blocked port");
    lab.udp_echo(1, 2, SocketAddrV4::new(lab.ip(2), 7002), b"other port").expect("another port is not blocked");
    lab.unblock_udp_port(7001);
    lab.udp_echo(1, 2, dst, b"after").expect("UDP echo after unblocking");
}

#[test]
fn tcp_and_udp_probes_work() {
    let Some(lab) = lab_or_skip(2) else { return };
    let data = weavers_tests::random_bytes(300_000);
    lab.tcp_transfer(1, 2, SocketAddrV4::new(lab.ip(2), 7100), &data).expect("TCP transfer over the underlay");
    let tries = lab.udp_echo(2, 1, SocketAddrV4::new(lab.ip(1), 7101), b"ping").expect("UDP echo over the underlay");
    assert!(tries >= 1);
    // Nothing listens there: the probe must report failure.
    assert!(probe::tcp_transfer(
        lab.ns(1),
        lab.ns(2),
        SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 77), 7102),
        b"x",
        2 * SEC
    )
    .is_err());
}

#[test]
fn capture_sees_underlay_udp_payloads() {
    let Some(lab) = lab_or_skip(2) else { return };
    let marker = format!("LABCAPTURE-{}", random_hex(12));
    let dst = SocketAddrV4::new(lab.ip(2), 7200);
    let cap = lab.capture_underlay();
    lab.udp_echo(1, 2, dst, marker.as_bytes()).unwrap();
    let frames = cap.finish();
    let hits: Vec<_> = frames.iter().filter(|f| packet::contains(&f.data, marker.as_bytes())).collect();
    assert!(!hits.is_empty(), "the capture missed a plaintext UDP payload ({} frames)", frames.len());
    let udp = hits[0].udp().expect("UDP frame");
    assert!(udp.src.port() == 7200 || udp.dst.port() == 7200);
}

#[test]
fn raw_injection_spoofs_the_source() {
    let Some(lab) = lab_or_skip(3) else { return };
    assert!(lab.wait_ping(3, lab.ip(2), 10 * SEC));
    let rx = lab.udp_recv(2, None, 7300, None);
    let spoofed = SocketAddrV4::new(lab.ip(1), 6783);
    let pkt = packet::build_ipv4_udp(spoofed, SocketAddrV4::new(lab.ip(2), 7300), b"spoofed");
    probe::send_raw_ipv4(lab.ns(3), &[pkt], Duration::ZERO).unwrap();
    assert!(rx.wait_for(1, 5 * SEC), "raw packet did not arrive");
    let got = rx.finish();
    assert_eq!(got[0].0, std::net::SocketAddr::V4(spoofed));
    assert_eq!(got[0].1, b"spoofed");
}

#[test]
fn closures_and_commands_run_inside_the_namespace() {
    let Some(lab) = lab_or_skip(2) else { return };
    let out = lab.host(2).exec("ip", &["-o", "-4", "addr", "show", "dev", "eth0"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("10.99.0.2/24"));
    // A socket bound on a thread inside h1 can use h1's address.
    let ok = lab.host(1).run(|| std::net::UdpSocket::bind((Ipv4Addr::new(10, 99, 0, 1), 0)).is_ok());
    assert!(ok, "could not bind h1's address inside h1");
    // ... and not h2's.
    let ok = lab.host(1).run(|| std::net::UdpSocket::bind((Ipv4Addr::new(10, 99, 0, 2), 0)).is_ok());
    assert!(!ok, "bound h2's address inside h1: not isolated");
}

/// The round trip h1 -> h2 by `ping`, in milliseconds (the average of 5).
fn ping_ms(lab: &Lab) -> f64 {
    let out = netns::exec_in(lab.ns(1), "ping", &["-c", "5", "-i", "0.2", "-W", "2", &lab.ip(2).to_string()])
        .expect("run ping");
    let text = String::from_utf8_lossy(&out.stdout);
    // "rtt min/avg/max/mdev = 0.040/0.052/0.071/0.010 ms"
    let avg = text.lines().find(|l| l.contains("min/avg/max")).and_then(|l| l.split('=').nth(1)?.split('/').nth(1));
    avg.and_then(|a| a.trim().parse().ok()).unwrap_or_else(|| panic!("no round trip in ping's output: {text}"))
}

#[test]
fn a_delay_line_lengthens_round_trips_and_goes_away() {
    let Some(lab) = lab_or_skip(2) else { return };
    assert!(lab.wait_ping(1, lab.ip(2), 10 * SEC));
    let before = ping_ms(&lab);
    let line = lab.delay_host(1, Duration::from_millis(15)).expect("a delay line on h1");
    let during = ping_ms(&lab);
    // 15 ms each way: 30 ms more, and the pump's wake-ups a little on top.
    assert!((30.0..45.0).contains(&(during - before)), "round trip {before:.2} ms -> {during:.2} ms");
    assert!(line.carried.load(std::sync::atomic::Ordering::Relaxed) >= 10, "the pump carried the pings");
    line.stop().expect("the delay line stops cleanly");
    let after = ping_ms(&lab);
    assert!(after < before + 5.0, "round trip back to {after:.2} ms (was {before:.2})");
    let links = netns::exec_in(lab.underlay_ns(), "ip", &["-o", "link"]).expect("ip link");
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains("d1a") && !links.contains("d1b"), "the delay line's veths are gone: {links}");
    assert!(links.lines().any(|l| l.contains(" v1@") && l.contains("master br0")), "v1 is back on the bridge: {links}");
}

#[test]
fn drop_removes_every_namespace_and_file() {
    let Some(lab) = lab_with(Lab::builder(3).ipv6(false)) else {
        return;
    };
    let prefix = lab.prefix().to_owned();
    let dir = lab.dir().to_owned();
    let mine: Vec<String> = netns::list().unwrap().into_iter().filter(|n| n.starts_with(&prefix)).collect();
    assert_eq!(mine.len(), 4, "expected an underlay and 3 hosts: {mine:?}");
    assert!(dir.is_dir());
    drop(lab);
    let left: Vec<String> = netns::list().unwrap().into_iter().filter(|n| n.starts_with(&prefix)).collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    assert!(!dir.exists(), "lab dir left behind: {}", dir.display());
}

#[test]
fn labs_in_parallel_have_distinct_names() {
    let Some(a) = lab_or_skip(1) else { return };
    let Some(b) = lab_or_skip(1) else { return };
    assert_ne!(a.prefix(), b.prefix());
    assert_ne!(a.ns(1), b.ns(1));
    assert_ne!(a.dir(), b.dir());
    // Same addresses in both, no clash: they are isolated.
    assert_eq!(a.ip(1), b.ip(1));
}
