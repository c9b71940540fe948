//! Fault runs (issue 14): what applications see while a daemon is killed
//! (kill -9, then restarted), the underlay is partitioned, or it drops
//! packets at random. Each run keeps a multicast stream (500 numbered
//! datagrams a second from h1) and a TCP stream going through the fault,
//! and prints what the applications saw: the longest silence, what was
//! lost, and how long after the fault ended traffic came back. The
//! assertions are loose bounds around the issue's targets (a restarted
//! receiver gets its group again within 2 s, the other receivers see no
//! gap, a healed partition carries traffic within 3 s); the printed figures
//! are the measurement.
//!
//! ```sh
//! cargo build --workspace && CI=true cargo test -p weavers-tests --test faults -- --nocapture
//! ```
//!
//! The runs take about 1.5 minutes together (they run one at a time: each
//! measures timings, which a concurrent run's load would distort). For a
//! measurement run set `WEAVERS_FAULT_SECS` (e.g. 60): the underlay-loss
//! window lasts that long (10 s by default) and the quiet phases before and
//! after each fault a sixth of it (3 s at least).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use weavers_tests::faults::{secs, McastStream, Sent, TcpStream, Timeline};
use weavers_tests::mcast::{GroupReceiver, Join};
use weavers_tests::{lab_or_skip, wait_until, DaemonOpts, Lab};

const SEC: Duration = Duration::from_secs(1);
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 14, 0, 1);
const PORT: u16 = 5014;
const TCP_PORT: u16 = 7014;
/// Datagrams a second of the multicast stream, and their size.
const RATE: u32 = 500;
const SIZE: usize = 200;
/// Bytes a second of the paced TCP stream.
const TCP_RATE: u64 = 200_000;

/// One fault run at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The underlay-loss window (`WEAVERS_FAULT_SECS`, default 10 s).
fn fault_window() -> Duration {
    let s = std::env::var("WEAVERS_FAULT_SECS").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(10);
    Duration::from_secs(s.max(1))
}

/// The quiet phase before and after a fault.
fn phase() -> Duration {
    (fault_window() / 6).max(3 * SEC)
}

fn overlay(i: usize) -> Ipv4Addr {
    Lab::overlay(i)
}

/// Names of the peers host `i` lists as subscribed to [`GROUP`].
fn subscribers(lab: &Lab, i: usize) -> Vec<String> {
    let Ok(serde_json::Value::Array(rows)) = lab.try_cli_json(i, &["groups", "--json"]) else { return Vec::new() };
    let g = GROUP.to_string();
    let mut v: Vec<String> = rows
        .iter()
        .filter(|r| r["group"] == g.as_str())
        .flat_map(|r| r["subscribed_peers"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

/// Waits until host `i` lists every one of `names` as subscribed.
fn wait_subscribed(lab: &Lab, i: usize, names: &[&str]) {
    let ok = wait_until(15 * SEC, || {
        let s = subscribers(lab, i);
        names.iter().all(|n| s.iter().any(|x| x == n))
    });
    assert!(ok, "h{i} lists {:?} as subscribed to {GROUP}, not all of {names:?}", subscribers(lab, i));
}

/// The count of drop reason `reason` in host `i`'s `status --json`.
fn drop_count(lab: &Lab, i: usize, reason: &str) -> u64 {
    let st = lab.status_json(i);
    st["drops"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["reason"] == reason)
        .map_or_else(|| panic!("h{i}'s status has no drop reason {reason}: {st}"), |d| d["count"].as_u64().unwrap_or(0))
}

/// A receiver of [`GROUP`] in host `i`.
fn receiver(lab: &Lab, i: usize) -> GroupReceiver {
    GroupReceiver::start(lab.ns(i), PORT, Join::V4 { group: GROUP, iface: overlay(i) })
        .unwrap_or_else(|e| panic!("receiver in h{i}: {e:#}"))
}

/// The multicast stream from host `i`.
fn stream_from(lab: &Lab, i: usize) -> McastStream {
    McastStream::start(lab.ns(i), overlay(i), SocketAddrV4::new(GROUP, PORT), RATE, SIZE)
}

/// A paced (or, with None, unpaced) TCP stream from host `i` to host `j`.
fn tcp(lab: &Lab, i: usize, j: usize, rate: Option<u64>) -> TcpStream {
    TcpStream::start(lab.ns(i), lab.ns(j), SocketAddrV4::new(overlay(j), TCP_PORT), rate)
        .unwrap_or_else(|e| panic!("TCP stream h{i} -> h{j}: {e:#}"))
}

/// What one receiver saw of the stream.
struct Seen {
    host: usize,
    tl: Timeline,
}

fn seen(sent: &Sent, host: usize, rx: GroupReceiver) -> Seen {
    Seen { host, tl: Timeline::of_datagrams(&sent.stream, &rx.finish()) }
}

/// Checks that `s` saw the whole stream between `from` and `to` (the ends
/// trimmed by a little, for datagrams in flight): nothing lost, no silence
/// longer than `max_silence`. Prints the figures.
fn assert_no_gap(sent: &Sent, s: &Seen, from: Instant, to: Instant, max_silence: Duration) {
    let seqs = sent.seqs_between(from, to - SEC / 2);
    let lost = sent.missing(&s.tl, seqs.clone());
    let silence = s.tl.longest_silence(from, to - SEC / 2);
    eprintln!(
        "  h{} (undisturbed): {} datagrams sent, {lost} lost, longest silence {}",
        s.host,
        seqs.end - seqs.start,
        secs(silence)
    );
    assert_eq!(lost, 0, "h{} lost {lost} of {} datagrams while another host's fault", s.host, seqs.end - seqs.start);
    assert!(silence <= max_silence, "h{} heard nothing for {}", s.host, secs(silence));
}

/// Starts every host of `lab` (h1 first, the others with `--peer h1`, or
/// `--peer h2` for those `h1` is blocked from) and exposes each one's
/// overlay address, without waiting for a full mesh (some pairs may be
/// blocked): waits until each host lists every other as connected or
/// relayed.
fn start_exposed(lab: &mut Lab, blocked_from_h1: &[usize]) {
    let n = lab.len();
    lab.start_daemon(1, DaemonOpts::new());
    for i in 2..=n {
        let peer = if blocked_from_h1.contains(&i) { 2 } else { 1 };
        lab.start_daemon(i, DaemonOpts::new().peer(peer));
    }
    let reached = |lab: &Lab, i: usize| {
        lab.try_peers(i).is_ok_and(|peers| {
            (1..=n).filter(|&j| j != i).all(|j| {
                peers
                    .iter()
                    .any(|p| p["name"] == format!("h{j}") && (p["state"] == "connected" || p["state"] == "relayed"))
            })
        })
    };
    for i in 1..=n {
        assert!(wait_until(30 * SEC, || reached(lab, i)), "h{i} does not reach every host:\n{}", lab.describe_peers());
    }
    for i in 1..=n {
        lab.expose(i, &format!("{}/16", overlay(i)));
    }
}

/// TCP's figures around a fault that began at `fault` (and ended at
/// `healed`, for one that ends).
fn report_tcp(
    what: &str,
    tl: &Timeline,
    sent: u64,
    from: Instant,
    fault: Instant,
    healed: Option<Instant>,
    to: Instant,
) {
    let after = |t: Instant| tl.first_after(t).map_or("never".into(), secs);
    let ended = healed.map_or(String::new(), |h| format!(", {} after it ended", after(h)));
    eprintln!(
        "  TCP {what}: {sent} bytes intact; longest silence {}; first bytes {} after the fault began{ended}",
        secs(tl.longest_silence(from, to)),
        after(fault),
    );
}

#[test]
fn killed_receiving_daemon_others_see_no_gap_and_it_gets_the_group_back() {
    let _one = serial();
    let Some(mut lab) = lab_or_skip(4) else { return };
    start_exposed(&mut lab, &[]);
    let rx: Vec<(usize, GroupReceiver)> = (2..=4).map(|i| (i, receiver(&lab, i))).collect();
    wait_subscribed(&lab, 1, &["h2", "h3", "h4"]);
    let tcp = tcp(&lab, 1, 4, Some(TCP_RATE));
    let mc = stream_from(&lab, 1);
    let start = Instant::now();
    std::thread::sleep(phase());

    let killed = Instant::now();
    lab.kill9(4);
    std::thread::sleep(2 * SEC);
    lab.restart(4);
    let up = Instant::now();
    let h4 = &rx[2].1;
    let before = h4.count();
    wait_until(20 * SEC, || h4.count() > before);
    std::thread::sleep(phase());
    let end = Instant::now();
    let sent = mc.stop();
    let (tcp_tl, tcp_sent) = tcp.stop().unwrap_or_else(|e| panic!("TCP through h4's restart: {e:#}"));

    eprintln!("killed h4's daemon (a receiver) for 2 s, {} datagrams sent:", sent.at.len());
    let mut seen: Vec<Seen> = rx.into_iter().map(|(i, r)| seen(&sent, i, r)).collect();
    let s4 = seen.pop().unwrap();
    for s in &seen {
        assert_no_gap(&sent, s, start, end, SEC);
    }
    let back = s4.tl.first_after(up);
    let lost = sent.missing(&s4.tl, sent.seqs_between(start, end - SEC / 2));
    eprintln!(
        "  h4 (restarted): silence {}, {lost} datagrams lost; group back {} after the daemon was up again",
        secs(s4.tl.longest_silence(start, end)),
        back.map_or("never".into(), secs)
    );
    report_tcp("h1 -> h4", &tcp_tl, tcp_sent, start, killed, Some(up), end);
    let back = back.unwrap_or_else(|| panic!("h4 never got the group back after its restart"));
    assert!(back <= 4 * SEC, "h4 got the group back {} after its restart (target 2 s)", secs(back));
}

#[test]
fn killed_relaying_daemon_traffic_moves_to_another_relay() {
    let _one = serial();
    let Some(mut lab) = lab_or_skip(4) else { return };
    // h1 and h3 cannot talk directly: h2 or h4 relays.
    lab.block(1, 3);
    start_exposed(&mut lab, &[3]);
    let rx3 = receiver(&lab, 3);
    let rx2 = receiver(&lab, 2);
    wait_subscribed(&lab, 1, &["h2", "h3"]);
    let relay = |lab: &Lab| -> Option<String> {
        let v = lab.try_cli_json(1, &["ping", "h3", "--json"]).ok()?;
        (v["path"] == "relayed").then(|| v["via"].as_str().map(str::to_owned)).flatten()
    };
    let mut via = None;
    assert!(
        wait_until(20 * SEC, || {
            via = relay(&lab);
            via.is_some()
        }),
        "h1 has no relay to h3"
    );
    let via = via.unwrap();
    let r: usize = via.trim_start_matches('h').parse().expect("a lab host name");
    let tcp = tcp(&lab, 1, 3, Some(TCP_RATE));
    let mc = stream_from(&lab, 1);
    let start = Instant::now();
    std::thread::sleep(phase());

    let killed = Instant::now();
    lab.kill9(r);
    let before = rx3.count();
    let moved = wait_until(30 * SEC, || rx3.count() > before + RATE as usize / 10);
    let other = relay(&lab);
    std::thread::sleep(phase());
    lab.restart(r);
    let up = Instant::now();
    std::thread::sleep(phase());
    let end = Instant::now();
    let sent = mc.stop();
    let (tcp_tl, tcp_sent) = tcp.stop().unwrap_or_else(|e| panic!("TCP across the relay's death: {e:#}"));

    eprintln!("killed the relay {via} between h1 and h3; then relayed via {other:?}:");
    let s3 = seen(&sent, 3, rx3);
    let s2 = seen(&sent, 2, rx2);
    let silence = s3.tl.longest_silence(killed, up);
    let lost = sent.missing(&s3.tl, sent.seqs_between(killed, up));
    let after_restart = s3.tl.longest_silence(up, end - SEC / 2);
    eprintln!(
        "  h3: longest silence after the kill {}, {lost} datagrams lost ({} of stream); after {via}'s restart: \
         longest silence {}",
        secs(silence),
        secs(Duration::from_secs_f64(lost as f64 / RATE as f64)),
        secs(after_restart)
    );
    report_tcp("h1 -> h3", &tcp_tl, tcp_sent, start, killed, None, end);
    if r != 2 {
        assert_no_gap(&sent, &s2, start, end, SEC);
    }
    assert!(moved, "h3 got nothing for 30 s after its relay {via} died");
    assert!(silence <= 15 * SEC, "h3 heard nothing for {} after its relay died", secs(silence));
    assert!(after_restart <= 5 * SEC, "h3 heard nothing for {} after {via} came back", secs(after_restart));
}

#[test]
fn killed_sender_daemon_the_stream_comes_back_after_its_restart() {
    let _one = serial();
    let Some(mut lab) = lab_or_skip(3) else { return };
    start_exposed(&mut lab, &[]);
    let rx: Vec<(usize, GroupReceiver)> = (2..=3).map(|i| (i, receiver(&lab, i))).collect();
    wait_subscribed(&lab, 1, &["h2", "h3"]);
    let tcp = tcp(&lab, 1, 2, Some(TCP_RATE));
    let mc = stream_from(&lab, 1);
    let start = Instant::now();
    std::thread::sleep(phase());

    let killed = Instant::now();
    lab.kill9(1);
    std::thread::sleep(2 * SEC);
    lab.restart(1);
    let up = Instant::now();
    let back_all = wait_until(20 * SEC, || rx.iter().all(|(_, r)| !r.snapshot().iter().all(|(_, _, t)| *t < up)));
    std::thread::sleep(phase());
    let end = Instant::now();
    let sent = mc.stop();
    let (tcp_tl, tcp_sent) = tcp.stop().unwrap_or_else(|e| panic!("TCP through the sender's restart: {e:#}"));

    eprintln!("killed h1's daemon (the sender's) for 2 s:");
    for (i, r) in rx {
        let s = seen(&sent, i, r);
        let back = s.tl.first_after(up);
        eprintln!(
            "  h{i}: longest silence {}; stream back {} after h1's daemon was up again",
            secs(s.tl.longest_silence(start, end)),
            back.map_or("never".into(), secs)
        );
        let back = back.unwrap_or_else(|| panic!("h{i} never got the stream back"));
        assert!(back <= 5 * SEC, "h{i} got the stream back {} after h1's restart", secs(back));
        // Nothing lost once it is back.
        let after = sent.seqs_between(up + back + SEC, end - SEC / 2);
        assert_eq!(sent.missing(&s.tl, after.clone()), 0, "h{i} lost datagrams after the stream came back");
    }
    report_tcp("h1 -> h2", &tcp_tl, tcp_sent, start, killed, Some(up), end);
    assert!(back_all);
}

#[test]
fn healed_partition_carries_traffic_again_within_seconds() {
    let _one = serial();
    let Some(mut lab) = lab_or_skip(3) else { return };
    start_exposed(&mut lab, &[]);
    let rx2 = receiver(&lab, 2);
    let rx3 = receiver(&lab, 3);
    wait_subscribed(&lab, 1, &["h2", "h3"]);
    let tcp = tcp(&lab, 1, 2, Some(TCP_RATE));
    let mc = stream_from(&lab, 1);
    let start = Instant::now();
    std::thread::sleep(phase());

    let cut = Instant::now();
    lab.isolate(2);
    std::thread::sleep(10 * SEC);
    lab.reconnect(2);
    let healed = Instant::now();
    let before = rx2.count();
    wait_until(20 * SEC, || rx2.count() > before);
    std::thread::sleep(phase());
    let end = Instant::now();
    let sent = mc.stop();
    let (tcp_tl, tcp_sent) = tcp.stop().unwrap_or_else(|e| panic!("TCP across the partition: {e:#}"));

    eprintln!("h2 cut off from every host for 10 s, then healed:");
    let s2 = seen(&sent, 2, rx2);
    let s3 = seen(&sent, 3, rx3);
    assert_no_gap(&sent, &s3, start, end, SEC);
    let back = s2.tl.first_after(healed);
    eprintln!(
        "  h2: longest silence {}; traffic back {} after the partition healed",
        secs(s2.tl.longest_silence(start, end)),
        back.map_or("never".into(), secs)
    );
    report_tcp("h1 -> h2", &tcp_tl, tcp_sent, start, cut, Some(healed), end);
    let back = back.unwrap_or_else(|| panic!("h2 got nothing after the partition healed"));
    assert!(back <= 6 * SEC, "h2's traffic came back {} after the heal (target 3 s)", secs(back));
    let tcp_back = tcp_tl.first_after(healed).unwrap_or_else(|| panic!("TCP never resumed after the heal"));
    assert!(tcp_back <= 20 * SEC, "TCP resumed {} after the heal", secs(tcp_back));
}

#[test]
fn five_percent_underlay_loss_costs_about_five_percent_and_tcp_keeps_going() {
    let _one = serial();
    let Some(mut lab) = lab_or_skip(3) else { return };
    start_exposed(&mut lab, &[]);
    let rx2 = receiver(&lab, 2);
    let rx3 = receiver(&lab, 3);
    wait_subscribed(&lab, 1, &["h2", "h3"]);
    let tcp = tcp(&lab, 1, 2, None);
    let mc = stream_from(&lab, 1);
    let start = Instant::now();
    std::thread::sleep(phase());
    let lossy = Instant::now();
    lab.set_underlay_loss(5).unwrap_or_else(|e| panic!("nft: {e:#}"));
    std::thread::sleep(fault_window());
    let dropped = lab.underlay_loss_dropped();
    lab.set_underlay_loss(0).unwrap_or_else(|e| panic!("nft: {e:#}"));
    let clean = Instant::now();
    std::thread::sleep(phase());
    let end = Instant::now();
    let sent = mc.stop();
    let (tcp_tl, tcp_sent) = tcp.stop().unwrap_or_else(|e| panic!("TCP under loss: {e:#}"));

    let w = fault_window();
    eprintln!("5% random loss on the underlay for {} ({dropped} UDP packets dropped there):", secs(w));
    for s in [seen(&sent, 2, rx2), seen(&sent, 3, rx3)] {
        let during = sent.seqs_between(lossy, clean);
        let n = during.end - during.start;
        let lost = sent.missing(&s.tl, during);
        let base = sent.seqs_between(start, lossy);
        let base_lost = sent.missing(&s.tl, base.clone());
        let pct = 100.0 * lost as f64 / n.max(1) as f64;
        eprintln!(
            "  h{}: {lost} of {n} datagrams lost ({pct:.1}%) under loss; {base_lost} of {} before",
            s.host,
            base.end - base.start
        );
        assert!(pct < 15.0, "h{} lost {pct:.1}% of the stream under 5% underlay loss", s.host);
        assert_eq!(base_lost, 0, "h{} lost datagrams before any loss", s.host);
        let after = sent.seqs_between(clean + SEC, end - SEC / 2);
        assert_eq!(sent.missing(&s.tl, after), 0, "h{} still lost datagrams once the loss ended", s.host);
    }
    let mbit =
        |from: Instant, to: Instant| tcp_tl.bytes_between(from, to) as f64 * 8.0 / 1e6 / (to - from).as_secs_f64();
    let (before, during) = (mbit(start, lossy), mbit(lossy, clean));
    eprintln!(
        "  TCP h1 -> h2 (one stream, as fast as it goes): {before:.1} Mbit/s before, {during:.1} Mbit/s under 5% \
         loss ({:.0}% of it), {tcp_sent} bytes intact; longest silence under loss {}",
        100.0 * during / before.max(f64::MIN_POSITIVE),
        secs(tcp_tl.longest_silence(lossy, clean))
    );
    assert!(dropped > 0, "the underlay dropped nothing: the loss rule was not in force");
    // The TCP stream's segmentation offloads crossed as the kernel made
    // them: none of their virtio headers was refused.
    assert_eq!(drop_count(&lab, 2, "bad_offload"), 0, "h2 refused the offloads of a real TCP stream");
    assert!(during > 0.5, "TCP all but stopped under 5% loss: {during:.2} Mbit/s");
    assert!(tcp_tl.longest_silence(lossy, clean) < 5 * SEC, "TCP stalled under loss");
    // The TCP sender's retransmissions marked h2 lossy: h1 sent it parity,
    // and h2 rebuilt lost datagrams from it.
    let (g1, g2) = (&lab.status_json(1)["segmentation"], &lab.status_json(2)["segmentation"]);
    eprintln!(
        "  parity: h1 sent {}, h2 received {} and rebuilt {} lost datagrams ({} groups lost two or more)",
        g1["parity_sent"], g2["parity_received"], g2["datagrams_repaired"], g2["repairs_failed"]
    );
    assert!(g1["parity_sent"].as_u64() > Some(0), "h1 sent no parity to a lossy peer: {g1}");
    assert!(g2["datagrams_repaired"].as_u64() > Some(0), "h2 rebuilt nothing from parity: {g2}");
}
