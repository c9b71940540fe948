//! Integration tests of the mesh: real `weaversd` daemons in network
//! namespaces, driven and observed with the `weavers` command line, as a user
//! would. Build first: `cargo build --workspace && cargo test --workspace`.
//!
//! Contract (DESIGN.md "Interface contract"): `peer ls --json` rows have
//! `name`, `public_key`, `endpoint`, `state` (connected, relayed, connecting,
//! unreachable), `via`, `rtt_us` and traffic counters; `status --json` has
//! `name`, `public_key`, `peers`, `drops`, `handshakes`, `overlay_mtu`;
//! `expose CIDR` puts the address on the bridge `weavers` and prints it.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use weavers_tests::{
    bins, lab_or_skip, lab_with, packet, probe, random_bytes, random_hex, wait_until, DaemonOpts, Lab, WEAVERS_PORT,
};

const SEC: Duration = Duration::from_secs(1);
/// Loose bound for "connected within 10 s".
const MESH_DEADLINE: Duration = Duration::from_secs(20);

/// The overlay address of host `i` in these tests.
fn overlay(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 40, 0, i as u8)
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key:?} is not a number in {v}"))
}

/// Starts h1 with no peers and every other host with only `--peer h1`.
fn start_star(lab: &mut Lab, hosts: &[usize]) {
    lab.start_daemon(hosts[0], DaemonOpts::new());
    for &i in &hosts[1..] {
        lab.start_daemon(i, DaemonOpts::new().peer(hosts[0]));
    }
}

/// `weavers expose 10.40.0.I/16` on each host; checks what it printed and
/// that the address is on the bridge `weavers`.
fn expose_all(lab: &Lab, hosts: &[usize]) {
    for &i in hosts {
        let cidr = format!("{}/16", overlay(i));
        let out = lab.expose(i, &cidr);
        assert!(out.contains(&overlay(i).to_string()), "`weavers expose {cidr}` on h{i} printed {out:?}");
        let addrs = lab.host(i).addrs("weavers");
        assert!(addrs.contains(&cidr), "after `expose {cidr}`, h{i}'s bridge weavers has: {addrs:?}");
    }
}

/// Standard base64 (with padding) decoder, for checking `public_key`.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let b = s.as_bytes();
    if b.is_empty() || b.len() & 3 != 0 {
        return None;
    }
    let mut out = Vec::new();
    for chunk in b.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

/// Checks one row of `peer ls --json` against the contract.
fn check_peer_row(row: &Value) {
    let s = row.to_string();
    assert!(row["name"].is_string(), "name: {s}");
    let key = row["public_key"].as_str().unwrap_or_else(|| panic!("public_key: {s}"));
    let raw = base64_decode(key).unwrap_or_else(|| panic!("public_key is not base64: {s}"));
    assert!(raw.len() >= 32, "public_key decodes to {} bytes: {s}", raw.len());
    assert!(row["endpoint"].is_string() || row["endpoint"].is_null(), "endpoint: {s}");
    let state = row["state"].as_str().unwrap_or_else(|| panic!("state: {s}"));
    assert!(["connected", "relayed", "connecting", "unreachable"].contains(&state), "state {state:?}: {s}");
    assert!(row["via"].is_string() || row["via"].is_null(), "via: {s}");
    assert!(row["rtt_us"].is_u64() || row["rtt_us"].is_null(), "rtt_us: {s}");
    for k in ["tx_frames", "tx_bytes", "rx_frames", "rx_bytes"] {
        assert!(row[k].is_u64(), "{k}: {s}");
    }
}

fn drops_total(status: &Value) -> u64 {
    status["drops"]
        .as_array()
        .unwrap_or_else(|| panic!("drops is not an array: {status}"))
        .iter()
        .map(|d| u64_of(d, "count"))
        .sum()
}

fn handshakes(status: &Value, key: &str) -> u64 {
    u64_of(&status["handshakes"], key)
}

/// Pings from `i` to `j`'s overlay address, failing with context.
fn assert_overlay_ping(lab: &Lab, i: usize, j: usize) {
    assert!(
        lab.wait_ping(i, overlay(j), 10 * SEC),
        "h{i} cannot ping h{j}'s overlay address {}; peer lists:\n{}",
        overlay(j),
        lab.describe_peers()
    );
}

/// Checks the daemon made exactly one bridge `weavers` with one TAP in it.
fn assert_one_bridge_one_tap(lab: &Lab, i: usize) {
    let h = lab.host(i);
    let bridges = h.bridges();
    let taps = h.taps();
    assert_eq!(bridges, vec!["weavers".to_string()], "bridges on h{i}; links:\n{:#?}", h.links());
    assert_eq!(taps.len(), 1, "TUN/TAP devices on h{i}: {taps:?}; links:\n{:#?}", h.links());
    let tap_line = h.links().into_iter().find(|l| l.contains(&format!(": {}:", taps[0]))).expect("tap link line");
    assert!(tap_line.contains("master weavers"), "the TAP is not a port of the bridge weavers: {tap_line}");
}

// ---------------------------------------------------------------------
// 1. A mesh forms from one seed and carries ICMP, TCP and UDP.

#[test]
fn three_hosts_mesh_from_one_seed_and_carry_icmp_tcp_udp() {
    let Some(mut lab) = lab_or_skip(3) else {
        return;
    };
    start_star(&mut lab, &[1, 2, 3]);
    lab.wait_mesh(&[1, 2, 3], MESH_DEADLINE);

    // The contract's JSON, and consistency between hosts.
    let status: Vec<Value> = (1..=3).map(|i| lab.status_json(i)).collect();
    for i in 1..=3 {
        let st = &status[i - 1];
        assert_eq!(st["name"], format!("h{i}"), "status name: {st}");
        assert!(st["drops"].is_array(), "drops: {st}");
        for k in ["initiated", "completed", "failed", "rate_limited", "mac1_refused", "cookies_sent", "cookies_refused"]
        {
            assert!(st["handshakes"][k].is_u64(), "handshakes.{k}: {st}");
        }
        assert!(handshakes(st, "completed") >= 1, "no handshake completed on h{i}: {st}");
        let peers = lab.peers_json(i);
        let rows = peers.as_array().expect("peer ls --json is an array");
        assert_eq!(rows.len(), 2, "h{i} should list exactly the 2 others: {peers}");
        for row in rows {
            check_peer_row(row);
            let name = row["name"].as_str().unwrap();
            let j: usize = name
                .strip_prefix('h')
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected peer name {name} on h{i}"));
            assert_ne!(i, j, "h{i} lists itself: {peers}");
            assert_eq!(row["public_key"], status[j - 1]["public_key"], "h{i}'s key for h{j} is not h{j}'s own key");
            assert_eq!(row["state"], "connected");
            assert!(row["via"].is_null(), "direct peer with a via: {row}");
            let ep = row["endpoint"].as_str().unwrap_or_default();
            assert!(
                ep.contains(&lab.ip(j).to_string()),
                "h{i}'s endpoint for h{j} is {ep:?}, not h{j}'s underlay address {}",
                lab.ip(j)
            );
        }
        assert_eq!(st["peers"].as_array().map(Vec::len), Some(2), "status.peers on h{i}: {st}");
        assert_one_bridge_one_tap(&lab, i);
        // The bridge carries the MTU the daemon reports.
        let mtu = u64_of(st, "overlay_mtu");
        assert!((576..=1500).contains(&mtu), "overlay_mtu {mtu}");
        let line = lab.host(i).links().into_iter().find(|l| l.contains(": weavers:")).unwrap();
        assert!(line.contains(&format!(" mtu {mtu} ")), "bridge MTU is not overlay_mtu {mtu}: {line}");
    }
    // The control socket is root-only (design: mode 0600 or a group).
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(lab.socket(1)).unwrap().permissions().mode();
        assert_eq!(mode & 0o007, 0, "control socket mode {mode:o} lets others in");
    }

    expose_all(&lab, &[1, 2, 3]);
    for i in 1..=3 {
        for j in 1..=3 {
            if i != j {
                assert_overlay_ping(&lab, i, j);
            }
        }
    }
    // UDP both ways on every pair, small and larger than the overlay MTU
    // (fragmented inside the overlay).
    for (i, j) in [(1, 2), (2, 1), (2, 3), (3, 2), (1, 3), (3, 1)] {
        for size in [32, 3000] {
            let payload = random_bytes(size);
            let dst = SocketAddrV4::new(overlay(j), 7000 + (i * 10 + j) as u16);
            lab.udp_echo(i, j, dst, &payload)
                .unwrap_or_else(|e| panic!("UDP {size} bytes h{i} -> h{j} over the overlay: {e:#}"));
        }
    }
    // TCP, enough data for full-size segments.
    for (i, j) in [(1, 2), (2, 3), (3, 1)] {
        let data = random_bytes(512 * 1024);
        let dst = SocketAddrV4::new(overlay(j), 7100 + (i * 10 + j) as u16);
        lab.tcp_transfer(i, j, dst, &data).unwrap_or_else(|e| panic!("TCP h{i} -> h{j} over the overlay: {e:#}"));
    }
    // The traffic shows in the counters.
    let row = lab.peer_entry(1, "h2").expect("h1 lists h2");
    for k in ["tx_frames", "tx_bytes", "rx_frames", "rx_bytes"] {
        assert!(u64_of(&row, k) > 0, "h1's {k} for h2 is 0 after traffic: {row}");
    }
    assert!(
        u64_of(&row, "tx_bytes") >= 512 * 1024 || u64_of(&row, "rx_bytes") >= 512 * 1024,
        "h1-h2 byte counters miss the 512 KiB transfer: {row}"
    );
}

// ---------------------------------------------------------------------
// 2. Nothing crosses the underlay in plaintext.

#[test]
fn overlay_payloads_never_appear_on_the_underlay() {
    let Some(mut lab) = lab_or_skip(2) else {
        return;
    };
    start_star(&mut lab, &[1, 2]);
    lab.wait_mesh(&[1, 2], MESH_DEADLINE);
    expose_all(&lab, &[1, 2]);
    assert_overlay_ping(&lab, 1, 2);

    let marker = format!("WEAVERS-PLAINTEXT-MARKER-{}", random_hex(16));
    let cap = lab.capture_underlay();
    lab.udp_echo(1, 2, SocketAddrV4::new(overlay(2), 7200), marker.as_bytes())
        .expect("UDP with the marker over the overlay");
    let mut data = Vec::new();
    while data.len() < 64 * 1024 {
        data.extend_from_slice(marker.as_bytes());
        data.push(b'\n');
    }
    lab.tcp_transfer(2, 1, SocketAddrV4::new(overlay(1), 7201), &data).expect("TCP with the marker over the overlay");
    assert!(lab.host(1).ping(overlay(2)));
    let frames = cap.finish();

    let mesh_frames = frames
        .iter()
        .filter_map(|f| f.udp())
        .filter(|u| u.src.port() == WEAVERS_PORT || u.dst.port() == WEAVERS_PORT)
        .count();
    assert!(
        mesh_frames >= 10,
        "the capture saw only {mesh_frames} UDP/{WEAVERS_PORT} frames of {}: it cannot vouch for anything",
        frames.len()
    );
    // The marker (and any 16-byte piece of it) never shows.
    let needles = [marker.as_bytes(), &marker.as_bytes()[..16], &marker.as_bytes()[marker.len() - 16..]];
    for f in &frames {
        for n in needles {
            assert!(
                !packet::contains(&f.data, n),
                "plaintext {:?} on the underlay in a frame of {} bytes",
                String::from_utf8_lossy(n),
                f.data.len()
            );
        }
    }
    // Every IPv4 packet between the hosts is the mesh's UDP (or an ICMP
    // error). (The hosts' own link-local chatter, like IGMP reports for
    // their underlay interfaces, is not the overlay's.)
    let hosts = [lab.ip(1), lab.ip(2)];
    for f in &frames {
        let Some(ip) = f.ipv4() else { continue };
        let h = packet::parse_ipv4(ip).unwrap();
        if !(hosts.contains(&h.src) && hosts.contains(&h.dst)) {
            continue;
        }
        match h.protocol {
            packet::IPPROTO_UDP => {
                if let Some(u) = packet::udp_of_ipv4(ip) {
                    assert!(
                        u.src.port() == WEAVERS_PORT || u.dst.port() == WEAVERS_PORT,
                        "UDP {} -> {} crossed the underlay outside the mesh port",
                        u.src,
                        u.dst
                    );
                }
            }
            packet::IPPROTO_ICMP => {
                assert_eq!(ip[h.header_len], 3, "ICMP other than an error on the underlay: {h:?}");
            }
            p => panic!("IP protocol {p} crossed the underlay: {h:?}"),
        }
    }
}

// ---------------------------------------------------------------------
// 3. A host without the password gets nothing.

#[test]
fn host_with_wrong_password_is_never_admitted() {
    let Some(mut lab) = lab_or_skip(3) else {
        return;
    };
    lab.start_daemon(1, DaemonOpts::new());
    lab.start_daemon(2, DaemonOpts::new().peer(1));
    lab.start_daemon(3, DaemonOpts::new().peers(&[1, 2]).password(&format!("not-the-password-{}", random_hex(8))));
    lab.wait_mesh(&[1, 2], MESH_DEADLINE);
    let intruder_key = lab.status_json(3)["public_key"].as_str().expect("h3 public_key").to_owned();

    // Its handshakes are refused at mac1 on the hosts it tries, before any
    // handshake work: none counts as a failed handshake.
    let mut first_refused = 0;
    assert!(
        wait_until(MESH_DEADLINE, || {
            first_refused = handshakes(&lab.status_json(1), "mac1_refused");
            first_refused >= 1
        }),
        "h1 refuses no handshake of the host with the wrong password at mac1: {}",
        lab.status_json(1)
    );
    expose_all(&lab, &[1, 2, 3]);
    assert_overlay_ping(&lab, 1, 2);
    for (i, j) in [(1, 3), (3, 1), (2, 3), (3, 2)] {
        assert!(
            !lab.wait_ping(i, overlay(j), 4 * SEC),
            "h{i} reached h{j}'s overlay address with h3 on a wrong password"
        );
    }
    let dst = SocketAddrV4::new(overlay(1), 7300);
    assert!(
        probe::udp_echo(lab.ns(3), lab.ns(1), dst, b"let me in", 3 * SEC).is_err(),
        "UDP from the host with the wrong password reached h1"
    );
    // And it keeps being refused: the count goes up as it retries.
    assert!(
        wait_until(30 * SEC, || handshakes(&lab.status_json(1), "mac1_refused") > first_refused),
        "h1's mac1 refusals stay at {first_refused}: the intruder's retries are not counted"
    );
    let st = lab.status_json(1);
    assert_eq!(handshakes(&st, "failed"), 0, "the intruder cost h1 a handshake: {}", st["handshakes"]);
    for i in [1, 2] {
        let peers = lab.peers_json(i);
        for row in peers.as_array().unwrap() {
            assert_ne!(row["public_key"], intruder_key.as_str(), "h{i} lists the intruder: {peers}");
            assert_ne!(row["name"], "h3", "h{i} lists h3: {peers}");
        }
    }
    let peers3 = lab.peers_json(3);
    for row in peers3.as_array().unwrap() {
        assert!(
            row["state"] != "connected" && row["state"] != "relayed",
            "the host with the wrong password got a session: {peers3}"
        );
    }
}

// ---------------------------------------------------------------------
// 4. Relaying around a blocked underlay path.

fn wait_relayed(lab: &Lab, i: usize, target: &str, via: &str, timeout: Duration) {
    let ok =
        wait_until(timeout, || lab.peer_entry(i, target).is_some_and(|r| r["state"] == "relayed" && r["via"] == via));
    assert!(
        ok,
        "h{i} does not list {target} as relayed via {via} after {timeout:?}; peer lists:\n{}",
        lab.describe_peers()
    );
}

#[test]
fn blocked_pair_is_relayed_through_the_third_host() {
    let Some(mut lab) = lab_or_skip(3) else {
        return;
    };
    lab.block(1, 3);
    assert!(!lab.wait_ping(1, lab.ip(3), 2 * SEC), "the underlay block does not hold");
    lab.start_daemon(2, DaemonOpts::new());
    lab.start_daemon(1, DaemonOpts::new().peer(2));
    lab.start_daemon(3, DaemonOpts::new().peer(2));
    assert!(lab.wait_connected(2, &["h1", "h3"], MESH_DEADLINE), "{}", lab.describe_peers());
    assert!(lab.wait_connected(1, &["h2"], MESH_DEADLINE), "{}", lab.describe_peers());
    assert!(lab.wait_connected(3, &["h2"], MESH_DEADLINE), "{}", lab.describe_peers());
    wait_relayed(&lab, 1, "h3", "h2", MESH_DEADLINE);
    wait_relayed(&lab, 3, "h1", "h2", MESH_DEADLINE);

    expose_all(&lab, &[1, 2, 3]);
    assert_overlay_ping(&lab, 1, 3);
    assert_overlay_ping(&lab, 3, 1);
    lab.udp_echo(1, 3, SocketAddrV4::new(overlay(3), 7400), &random_bytes(1000))
        .expect("UDP h1 -> h3 through the relay");
    lab.tcp_transfer(3, 1, SocketAddrV4::new(overlay(1), 7401), &random_bytes(256 * 1024))
        .expect("TCP h3 -> h1 through the relay");
    // Still relayed: the frames did go through h2.
    let row = lab.peer_entry(1, "h3").unwrap();
    assert_eq!(row["state"], "relayed", "{row}");
    // Sealed end to end, and every relayed frame opened as from its source.
    for i in [1, 3] {
        let st = lab.status_json(i);
        let forged = st["drops"].as_array().and_then(|d| d.iter().find(|d| d["reason"] == "relay_forged"));
        assert_eq!(forged.map(|d| &d["count"]), Some(&Value::from(0)), "h{i}'s relay_forged drops: {st}");
    }
}

#[test]
fn relay_takes_over_when_the_direct_path_breaks() {
    let Some(mut lab) = lab_or_skip(3) else {
        return;
    };
    start_star(&mut lab, &[1, 2, 3]);
    lab.wait_mesh(&[1, 2, 3], MESH_DEADLINE);
    expose_all(&lab, &[1, 2, 3]);
    assert_overlay_ping(&lab, 1, 3);
    lab.block(1, 3);
    // Loose: detecting a dead path takes keepalive timeouts.
    wait_relayed(&lab, 1, "h3", "h2", 60 * SEC);
    wait_relayed(&lab, 3, "h1", "h2", 60 * SEC);
    assert_overlay_ping(&lab, 1, 3);
    assert_overlay_ping(&lab, 3, 1);
}

// ---------------------------------------------------------------------
// 5. kill -9 and restart on the same state dir.

#[test]
fn restart_after_kill9_keeps_identity_and_leaves_no_stale_links() {
    let Some(mut lab) = lab_or_skip(3) else {
        return;
    };
    start_star(&mut lab, &[1, 2, 3]);
    lab.wait_mesh(&[1, 2, 3], MESH_DEADLINE);
    expose_all(&lab, &[1, 2, 3]);
    assert_overlay_ping(&lab, 1, 2);
    assert_one_bridge_one_tap(&lab, 2);
    let key = lab.status_json(2)["public_key"].as_str().unwrap().to_owned();

    lab.kill9(2);
    lab.restart(2);
    let st = lab.status_json(2);
    assert_eq!(st["public_key"], key.as_str(), "h2's identity changed across a restart");
    lab.wait_mesh(&[1, 2, 3], MESH_DEADLINE);
    for i in 1..=3 {
        let peers = lab.peers_json(i);
        assert_eq!(peers.as_array().unwrap().len(), 2, "h{i} after h2's restart: {peers}");
    }
    assert_eq!(lab.peer_entry(1, "h2").unwrap()["public_key"], key.as_str());
    // What `weaversd --print-public-key` prints (certificates bind it) is
    // the key every other host knows h2 by.
    let out = Command::new(bins::weaversd())
        .arg("--state-dir")
        .arg(lab.state_dir(2))
        .arg("--print-public-key")
        .output()
        .expect("runs weaversd");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), key, "--print-public-key");
    assert_one_bridge_one_tap(&lab, 2);

    let out = lab.expose(2, &format!("{}/16", overlay(2)));
    assert!(out.contains(&overlay(2).to_string()), "expose after restart printed {out:?}");
    assert_one_bridge_one_tap(&lab, 2);
    assert_overlay_ping(&lab, 1, 2);
    assert_overlay_ping(&lab, 2, 3);
}

// ---------------------------------------------------------------------
// 6. Hostile datagrams are counted and dropped.

#[test]
fn garbage_truncated_tampered_and_replayed_datagrams_are_counted_and_dropped() {
    // h3 is the attacker: no daemon, just a raw socket on the same underlay.
    // No IPv6, so the overlay is quiet and frame counters mean something.
    let Some(mut lab) = lab_with(Lab::builder(3).ipv6(false)) else {
        return;
    };
    lab.start_daemon(1, DaemonOpts::new());
    lab.start_daemon(2, DaemonOpts::new().peer(1));
    lab.wait_mesh(&[1, 2], MESH_DEADLINE);
    expose_all(&lab, &[1, 2]);
    assert_overlay_ping(&lab, 1, 2);

    // Real datagrams h1 -> h2, carrying pings.
    let (h1, h2) = (SocketAddrV4::new(lab.ip(1), WEAVERS_PORT), SocketAddrV4::new(lab.ip(2), WEAVERS_PORT));
    let cap = lab.capture_underlay();
    let out = lab.host(1).exec("ping", &["-n", "-q", "-c", "10", "-i", "0.2", &overlay(2).to_string()]);
    assert!(out.status.success(), "pings h1 -> h2: {}", String::from_utf8_lossy(&out.stdout));
    let frames = cap.finish();
    let mut seen = HashSet::new();
    let captured: Vec<Vec<u8>> = frames
        .iter()
        .filter_map(|f| f.udp())
        .filter(|u| u.src == h1 && u.dst == h2)
        .map(|u| u.payload.to_vec())
        .filter(|p| seen.insert(p.clone()))
        .collect();
    assert!(captured.len() >= 10, "captured only {} datagrams h1 -> h2 for 10 pings", captured.len());

    let mut spoofed: Vec<Vec<u8>> = Vec::new(); // from h1's address and port
    let mut own: Vec<Vec<u8>> = Vec::new(); // from the attacker's own address
    let mut replays = 0;
    let mut tampered = 0;
    // Random bytes of many sizes.
    for size in [1, 2, 3, 4, 8, 13, 14, 15, 16, 29, 30, 31, 32, 48, 64, 100, 148, 200, 512, 1000, 1400, 1472] {
        own.push(random_bytes(size));
    }
    for p in captured.iter().take(5) {
        // Tampered: last byte, middle byte, second byte, second half random.
        for pos in [p.len() - 1, p.len() / 2, 1] {
            let mut t = p.clone();
            t[pos] ^= 0x5a;
            spoofed.push(t);
            tampered += 1;
        }
        let mut t = p.clone();
        let half = p.len() / 2;
        t[half..].copy_from_slice(&random_bytes(p.len() - half));
        spoofed.push(t);
        tampered += 1;
        // Truncated.
        for len in [p.len() - 1, p.len() / 2, 4] {
            spoofed.push(p[..len].to_vec());
        }
    }
    // Forged counters: a DATA packet (proto/src/wire.rs: version 1, type 4,
    // receiver u32, counter u64 at bytes 6..14, then AEAD) with a counter far
    // ahead and the old ciphertext. Its tag cannot verify, so it must be
    // dropped without moving the replay window: were the window moved,
    // h1's next real packets would look old and the pings below would fail.
    let data_packets: Vec<&Vec<u8>> = captured.iter().filter(|p| p.len() > 14 + 16 && p[0] == 1 && p[1] == 4).collect();
    assert!(
        data_packets.len() >= 5,
        "fewer than 5 DATA packets among {} captured: has the wire format changed?",
        captured.len()
    );
    for (k, p) in data_packets.iter().take(5).enumerate() {
        let counter = u64::from_be_bytes(p[6..14].try_into().unwrap());
        for forged in [counter + 1_000_000 + k as u64, u64::MAX - k as u64] {
            let mut t = (*p).clone();
            t[6..14].copy_from_slice(&forged.to_be_bytes());
            spoofed.push(t);
            tampered += 1;
        }
    }
    // Replayed, exactly, from h1's address and from another address.
    for p in &captured {
        spoofed.push(p.clone());
        own.push(p.clone());
        replays += 2;
    }
    let total = (spoofed.len() + own.len()) as u64;

    let before = lab.status_json(2);
    let rx_before = u64_of(&lab.peer_entry(2, "h1").unwrap(), "rx_frames");
    let raw: Vec<Vec<u8>> = spoofed.iter().map(|p| packet::build_ipv4_udp(h1, h2, p)).collect();
    probe::send_raw_ipv4(lab.ns(3), &raw, Duration::from_millis(2)).expect("inject spoofed datagrams");
    probe::udp_send(lab.ns(3), None, h2, None, &own, Duration::from_millis(2)).expect("send datagrams");

    let accounted = |st: &Value| drops_total(st) + handshakes(st, "failed") + handshakes(st, "rate_limited");
    let mut after = lab.status_json(2);
    let ok = wait_until(10 * SEC, || {
        after = lab.status_json(2);
        accounted(&after) - accounted(&before) >= total
    });
    assert!(
        ok,
        "{total} bad datagrams sent to h2 ({replays} replays, {tampered} tampered), but its drops and \
         failed handshakes grew by {} only.\nbefore: drops {} handshakes {}\nafter:  drops {} handshakes {}",
        accounted(&after) - accounted(&before),
        before["drops"],
        before["handshakes"],
        after["drops"],
        after["handshakes"]
    );
    assert!(
        drops_total(&after) - drops_total(&before) >= (replays + tampered) as u64,
        "replayed and tampered data packets are not all in the drops: before {} after {}",
        before["drops"],
        after["drops"]
    );
    eprintln!(
        "sent {total} bad datagrams ({replays} replays, {tampered} tampered); h2 drops before {} after {}, handshakes before {} after {}",
        before["drops"], after["drops"], before["handshakes"], after["handshakes"]
    );
    // None of the replays was delivered as a frame.
    let rx_after = u64_of(&lab.peer_entry(2, "h1").unwrap(), "rx_frames");
    assert!(
        rx_after - rx_before <= 3,
        "h2 took {} frames from h1 while only replays and forgeries were sent ({replays} replays)",
        rx_after - rx_before
    );
    // And the daemon is fine.
    assert!(lab.daemon_running(2), "h2's daemon died:\n{}", lab.log_tail(2, 40));
    assert!(!lab.log(2).contains("panicked"), "h2 panicked:\n{}", lab.log_tail(2, 40));
    assert!(lab.wait_connected(2, &["h1"], 10 * SEC), "{}", lab.describe_peers());
    assert_overlay_ping(&lab, 1, 2);
    assert_overlay_ping(&lab, 2, 1);
}

// ---------------------------------------------------------------------
// 7. Clean shutdown.

#[test]
fn sigterm_exits_zero_and_removes_bridge_and_tap() {
    let Some(mut lab) = lab_or_skip(2) else {
        return;
    };
    start_star(&mut lab, &[1, 2]);
    lab.wait_mesh(&[1, 2], MESH_DEADLINE);
    expose_all(&lab, &[1, 2]);
    assert_overlay_ping(&lab, 1, 2);
    assert_one_bridge_one_tap(&lab, 1);

    let stopped = lab.stop_daemon(1, 10 * SEC);
    assert!(!stopped.killed, "weaversd ignored SIGTERM for 10 s:\n{}", lab.log_tail(1, 40));
    assert!(stopped.status.success(), "weaversd exited with {} on SIGTERM:\n{}", stopped.status, lab.log_tail(1, 40));
    let h = lab.host(1);
    assert!(h.bridges().is_empty(), "bridges left after shutdown: {:?}", h.links());
    assert!(h.taps().is_empty(), "TAPs left after shutdown: {:?}", h.links());
    // With no daemon, the command line says so in one line and exits 1.
    let out = lab.cli(1, &["status"]);
    assert_eq!(out.status.code(), Some(1), "weavers status with the daemon stopped: {out:?}");
    // The other host keeps running.
    assert!(lab.daemon_running(2));
}

// ---------------------------------------------------------------------
// Configuration paths of the contract.

#[test]
fn password_from_env_and_file_and_a_custom_port_interoperate() {
    let Some(mut lab) = lab_or_skip(3) else { return };
    // h1: password file (with a trailing newline), UDP port 7777, the
    // network named by the flag.
    lab.start_daemon(
        1,
        DaemonOpts { listen: Some("0.0.0.0:7777".into()), ..DaemonOpts::new() }.arg("--network").arg("lab-net"),
    );
    // h2: the same password from WEAVERS_PASSWORD, the same network from
    // WEAVERS_NETWORK, peer given as HOST:PORT.
    lab.start_daemon(
        2,
        DaemonOpts { password_env: true, peer_addrs: vec![format!("{}:7777", lab.ip(1))], ..DaemonOpts::new() }
            .env("WEAVERS_NETWORK", "lab-net"),
    );
    // h3: the right password on another network (the default name): the
    // key it derives differs, so it never gets in.
    lab.start_daemon(3, DaemonOpts { peer_addrs: vec![format!("{}:7777", lab.ip(1))], ..DaemonOpts::new() });
    lab.wait_mesh(&[1, 2], MESH_DEADLINE);
    let row = lab.peer_entry(2, "h1").unwrap();
    assert_eq!(row["endpoint"], format!("{}:7777", lab.ip(1)), "{row}");
    expose_all(&lab, &[1, 2]);
    assert_overlay_ping(&lab, 2, 1);
    // Its initiations fail mac1 (keyed by the network key): refused before
    // any handshake work.
    assert!(
        wait_until(MESH_DEADLINE, || handshakes(&lab.status_json(1), "mac1_refused") >= 1),
        "h1 refuses nothing from the host on another network: {}",
        lab.status_json(1)
    );
    assert_eq!(handshakes(&lab.status_json(1), "failed"), 0, "no handshake work for it");
    assert!(lab.peer_entry(1, "h3").is_none(), "h1 lists the host on another network: {}", lab.peers_json(1));
    assert!(
        lab.log(1).contains("every holder of the network password is trusted"),
        "h1 does not say what the password grants"
    );
}

#[test]
fn peer_add_connects_now_and_survives_a_restart() {
    let Some(mut lab) = lab_or_skip(2) else { return };
    lab.start_daemon(1, DaemonOpts::new());
    lab.start_daemon(2, DaemonOpts::new());
    let out = lab.cli_ok(2, &["peer", "add", &lab.ip(1).to_string()]);
    assert!(out.contains(&lab.ip(1).to_string()), "`peer add` printed {out:?}");
    lab.wait_mesh(&[1, 2], MESH_DEADLINE);
    // h2 restarts with no --peer at all: it must find h1 again by itself.
    let stopped = lab.stop_daemon(2, 10 * SEC);
    assert!(stopped.status.success(), "{stopped:?}");
    lab.restart(2);
    lab.wait_mesh(&[1, 2], MESH_DEADLINE);
    expose_all(&lab, &[1, 2]);
    assert_overlay_ping(&lab, 1, 2);
}

// ---------------------------------------------------------------------
// The command line without a daemon (needs no namespaces).

#[test]
fn a_password_file_others_can_read_stops_the_daemon_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("weavers-pwmode-{}-{}", std::process::id(), random_hex(4)));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("password");
    std::fs::write(&file, format!("{}\n", random_hex(32))).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = Command::new(bins::weaversd());
    cmd.arg("--password-file").arg(&file).arg("--state-dir").arg(dir.join("state"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WEAVERS_") {
            cmd.env_remove(k);
        }
    }
    let out = weavers_tests::lab::output_with_timeout(cmd, 10 * SEC).expect("run weaversd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("readable by its group or others") && err.contains("chmod 600"), "{err}");
    assert!(!dir.join("state").exists(), "it refused before making its state dir");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cli_without_a_daemon_prints_one_line_and_exits_1() {
    let dir = std::env::temp_dir().join(format!("weavers-nodaemon-{}-{}", std::process::id(), random_hex(4)));
    let sock = dir.join("weavers.sock");
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["peer", "ls", "--json"],
        &["peer", "add", "10.99.0.1"],
        &["expose", "10.40.0.1/16"],
    ] {
        let out = Command::new(bins::weavers())
            .arg("--socket")
            .arg(&sock)
            .args(args)
            .env_remove("WEAVERS_SOCKET")
            .output()
            .expect("run weavers");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "weavers {args:?} with no daemon: {text}");
        assert_eq!(
            text.trim_end().lines().count(),
            1,
            "weavers {args:?} with no daemon printed not one line: {text:?}"
        );
    }
}
