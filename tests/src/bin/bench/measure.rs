//! The measurements, driven with iperf3 (TCP), iperf2 (UDP and multicast,
//! 64-byte payloads) and sockperf (latency) inside the lab's namespaces.
//! Unicast goes from host 1 to host 2; multicast from host 1 to hosts 2-4,
//! with host 5 not listening.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use socket2::{Domain, Protocol, Socket, Type};
use weavers_tests::{netns, Lab};

use crate::procs::{self, CpuMark, Proc};
use crate::stopped;
use crate::systems::{Setup, System};

pub const GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
/// iperf2's default port, where the multicast receivers listen.
pub const IPERF_PORT: u16 = 5001;
/// The UDP payload size of the packet-rate tests.
pub const PAYLOAD: u32 = 64;
/// Offered rate of the "full rate" trials: more than any system here
/// carries (iperf2's own sender tops out below it on these cores).
pub const FLOOD_PPS: f64 = 1_000_000.0;
/// Loss allowed in the unicast search, and in the multicast search.
pub const UDP_MAX_LOSS: f64 = 0.01;
pub const MCAST_MAX_LOSS: f64 = 0.001;
/// Multicast receivers and the host that does not listen.
pub const RECEIVERS: [usize; 3] = [2, 3, 4];
pub const NON_LISTENER: usize = 5;

#[derive(Clone, Debug)]
pub struct Cfg {
    pub tcp_secs: u32,
    pub trial_secs: u32,
    pub lat_secs: u32,
    /// Trials after the full-rate one in each rate search.
    pub search_steps: usize,
    pub dir: PathBuf,
    /// `--tcp-cc NAME`: the TCP sender's congestion control (iperf3 `-C`);
    /// None: the machine's default.
    pub tcp_cc: Option<String>,
}

fn sleep_checked(d: Duration) -> Result<()> {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        if stopped() {
            bail!("interrupted");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

// ---------------------------------------------------------------- TCP

#[derive(Clone, Debug)]
pub struct Tcp {
    pub gbps: f64,
    pub retransmits: u64,
    pub bytes: f64,
    pub cpu_procs: f64,
    pub cpu_machine: f64,
}

/// One iperf3 stream from host 1 to host 2 for `tcp_secs`.
pub fn tcp(lab: &Lab, s: &Setup, cfg: &Cfg, tag: &str) -> Result<Tcp> {
    let dst = s.addr(2).to_string();
    let mut server = procs::spawn(
        lab.ns(2),
        &cfg.dir,
        &format!("{tag}-iperf3-s"),
        "iperf3",
        &["-s", "-B", &dst, "-p", "5201"],
        &[],
    )?;
    sleep_checked(Duration::from_millis(500))?;
    let t = cfg.tcp_secs.to_string();
    let mut args = vec!["-c", &dst, "-p", "5201", "-t", &t, "-J"];
    if let Some(cc) = &cfg.tcp_cc {
        args.extend(["-C", cc]);
    }
    let mark = CpuMark::now(&s.overlay_pids);
    let mut client = procs::spawn(lab.ns(1), &cfg.dir, &format!("{tag}-iperf3-c"), "iperf3", &args, &[])?;
    client.wait(Duration::from_secs(cfg.tcp_secs as u64 + 30))?;
    let (cpu_procs, cpu_machine, _) = mark.since(&s.overlay_pids);
    server.stop();
    let v: Value = serde_json::from_str(&client.stdout())
        .with_context(|| format!("iperf3 printed no JSON: {}", client.stderr()))?;
    if let Some(e) = v["error"].as_str() {
        bail!("iperf3: {e}");
    }
    let bps = v["end"]["sum_received"]["bits_per_second"].as_f64().ok_or_else(|| anyhow!("iperf3: no sum_received"))?;
    let bytes = v["end"]["sum_received"]["bytes"].as_f64().unwrap_or(0.0);
    let retransmits = v["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
    Ok(Tcp { gbps: bps / 1e9, retransmits, bytes, cpu_procs, cpu_machine })
}

// ---------------------------------------------------------------- latency

#[derive(Clone, Debug)]
pub struct Latency {
    /// One-way (round trip / 2), microseconds.
    pub avg: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

/// sockperf ping-pong (64-byte UDP messages, one at a time) from host 1 to
/// host 2; sockperf reports half the round trip.
pub fn latency(lab: &Lab, s: &Setup, cfg: &Cfg, tag: &str) -> Result<Latency> {
    let dst = s.addr(2).to_string();
    let mut server = procs::spawn(
        lab.ns(2),
        &cfg.dir,
        &format!("{tag}-sockperf-s"),
        "sockperf",
        &["server", "-i", &dst, "-p", "11111"],
        &[],
    )?;
    sleep_checked(Duration::from_millis(500))?;
    let t = cfg.lat_secs.to_string();
    let mut client = procs::spawn(
        lab.ns(1),
        &cfg.dir,
        &format!("{tag}-sockperf-c"),
        "sockperf",
        &["ping-pong", "-i", &dst, "-p", "11111", "-t", &t, "-m", "64"],
        &[],
    )?;
    client.wait(Duration::from_secs(cfg.lat_secs as u64 + 30))?;
    server.stop();
    let out = client.stdout() + &client.stderr();
    parse_sockperf(&out).with_context(|| format!("sockperf output:\n{out}"))
}

fn parse_sockperf(out: &str) -> Result<Latency> {
    let pct = |p: &str| -> Option<f64> {
        out.lines()
            .find(|l| l.contains(&format!("percentile {p} =")))
            .and_then(|l| l.rsplit('=').next())
            .and_then(|v| v.trim().parse().ok())
    };
    let avg = out
        .lines()
        .find_map(|l| l.split("avg-latency=").nth(1))
        .and_then(|v| v.split(|c: char| !(c.is_ascii_digit() || c == '.')).next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no avg-latency"))?;
    Ok(Latency {
        avg,
        p50: pct("50.000").ok_or_else(|| anyhow!("no p50"))?,
        p99: pct("99.000").ok_or_else(|| anyhow!("no p99"))?,
        p999: pct("99.900").ok_or_else(|| anyhow!("no p99.9"))?,
    })
}

// ---------------------------------------------------------------- UDP rate trials

/// One trial at an offered rate.
#[derive(Clone, Debug)]
pub struct Trial {
    /// Offered (asked of iperf), packets/s.
    pub target: f64,
    /// Sent by iperf, packets/s.
    pub sent_pps: f64,
    /// Received, per receiver, packets/s.
    pub recv_pps: Vec<f64>,
    /// Loss per receiver (fraction of what was sent).
    pub loss: Vec<f64>,
    /// CPU seconds of the overlay processes, of the machine; wall seconds.
    pub cpu_procs: f64,
    pub cpu_machine: f64,
    pub wall: f64,
    /// Bytes and packets arriving on eth0 of hosts 2..=5 (multicast only).
    pub rx_eth0: Vec<(u64, u64)>,
}

impl Trial {
    pub fn worst_loss(&self) -> f64 {
        self.loss.iter().copied().fold(0.0, f64::max)
    }
    pub fn min_recv(&self) -> f64 {
        self.recv_pps.iter().copied().fold(f64::INFINITY, f64::min)
    }
    /// Packets received in all (for CPU per packet).
    pub fn packets(&self) -> f64 {
        self.recv_pps.iter().sum::<f64>() * self.wall_secs()
    }
    fn wall_secs(&self) -> f64 {
        self.wall
    }
    pub fn to_json(&self) -> Value {
        json!({
            "offered_pps": self.target.round(), "sent_pps": self.sent_pps.round(),
            "recv_pps": self.recv_pps.iter().map(|v| v.round()).collect::<Vec<_>>(),
            "loss": self.loss, "cpu_overlay_s": self.cpu_procs, "cpu_machine_s": self.cpu_machine,
            "secs": self.wall,
            "eth0_rx_bytes_h2_to_h5": self.rx_eth0.iter().map(|r| r.0).collect::<Vec<_>>(),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Search {
    /// The full-rate trial.
    pub flood: Trial,
    /// The passing trial with the highest sending rate.
    pub best: Option<Trial>,
    pub trials: Vec<Trial>,
}

/// Finds the highest rate whose worst loss is <= `max_loss`: a trial at
/// full rate, then a bisection between 0 and what the full-rate trial
/// actually sent, starting at what it delivered.
fn search(steps: usize, max_loss: f64, mut trial: impl FnMut(f64) -> Result<Trial>) -> Result<Search> {
    let flood = trial(FLOOD_PPS)?;
    let mut trials = vec![flood.clone()];
    let mut best: Option<Trial> = None;
    if flood.worst_loss() <= max_loss {
        best = Some(flood.clone());
    } else {
        let mut lo = 0.0f64;
        let mut hi = flood.sent_pps;
        let mut x = (flood.min_recv() * 0.98).clamp(hi * 0.05, hi * 0.9);
        for _ in 0..steps {
            let t = trial(x)?;
            let pass = t.worst_loss() <= max_loss;
            if pass {
                lo = x;
                if best.as_ref().is_none_or(|b| t.sent_pps > b.sent_pps) {
                    best = Some(t.clone());
                }
            } else {
                hi = x;
            }
            trials.push(t);
            if lo > 0.0 && hi / lo < 1.04 {
                break;
            }
            x = if lo == 0.0 { x / 2.0 } else { (lo + hi) / 2.0 };
            if x < 500.0 {
                break;
            }
        }
    }
    Ok(Search { flood, best, trials })
}

/// Fields of an iperf2 `-y C` line: (src port, bytes, lost, total) when
/// it has the UDP layout.
fn csv_fields(line: &str) -> Option<(u16, u64, Option<i64>, Option<i64>)> {
    let f: Vec<&str> = line.trim().split(',').collect();
    if f.len() < 9 {
        return None;
    }
    let port = f[2].parse().ok()?;
    let bytes = f[7].parse().ok()?;
    let lost = f.get(10).and_then(|v| v.parse().ok());
    let total = f.get(11).and_then(|v| v.parse().ok());
    Some((port, bytes, lost, total))
}

/// Runs the iperf2 UDP client in host 1 to `dst` at `target` pps for the
/// trial time; returns (its own CSV line fields, all its output).
fn udp_client(lab: &Lab, cfg: &Cfg, tag: &str, dst: &str, target: f64, multicast: bool) -> Result<(u16, u64, String)> {
    let rate = format!("{}pps", target.round() as u64);
    let t = cfg.trial_secs.to_string();
    let l = PAYLOAD.to_string();
    let mut args = vec!["-c", dst, "-u", "-l", &l, "-b", &rate, "-t", &t, "-y", "C"];
    if multicast {
        args.extend(["-T", "4"]);
    }
    let mut c = procs::spawn(lab.ns(1), &cfg.dir, tag, "iperf", &args, &[])?;
    c.wait(Duration::from_secs(cfg.trial_secs as u64 + 30))?;
    let out = c.stdout();
    let (port, bytes, _, _) =
        out.lines().find_map(csv_fields).ok_or_else(|| anyhow!("iperf client printed no CSV: {out}{}", c.stderr()))?;
    Ok((port, bytes, out))
}

/// The unicast UDP search (64-byte payloads, host 1 to host 2).
pub fn udp(lab: &Lab, s: &Setup, cfg: &Cfg, tag: &str) -> Result<Search> {
    let dst = s.addr(2).to_string();
    // A 2 MB receive buffer so that the receiving iperf's own scheduling
    // delays are not what is measured (the same for every system).
    let mut server = procs::spawn(
        lab.ns(2),
        &cfg.dir,
        &format!("{tag}-iperf-s"),
        "stdbuf",
        &["-oL", "iperf", "-s", "-u", "-B", &dst, "-w", "2M", "-y", "C"],
        &[],
    )?;
    sleep_checked(Duration::from_millis(500))?;
    let mut n = 0;
    let r = search(cfg.search_steps, UDP_MAX_LOSS, |target| {
        n += 1;
        sleep_checked(Duration::from_millis(300))?;
        let mark = CpuMark::now(&s.overlay_pids);
        let (port, bytes, _) = udp_client(lab, cfg, &format!("{tag}-iperf-c{n}"), &dst, target, false)?;
        let (cpu_procs, cpu_machine, _) = mark.since(&s.overlay_pids);
        let secs = cfg.trial_secs as f64;
        let sent = bytes as f64 / PAYLOAD as f64;
        let recv = server_report(&server, port, n, 2) as f64 / PAYLOAD as f64;
        let loss = if sent > 0.0 { (1.0 - recv / sent).max(0.0) } else { 1.0 };
        Ok(Trial {
            target,
            sent_pps: sent / secs,
            recv_pps: vec![recv / secs],
            loss: vec![loss],
            cpu_procs,
            cpu_machine,
            wall: secs,
            rx_eth0: Vec::new(),
        })
    });
    server.stop();
    r
}

/// The bytes that an iperf2 server (`-y C`, line-buffered) reports for the
/// stream from client port `port`; 0 (with a warning) if no report comes.
fn server_report(srv: &Proc, port: u16, trial: usize, host: usize) -> u64 {
    let find = || srv.stdout().lines().filter_map(csv_fields).filter(|f| f.0 == port).map(|f| f.1).next_back();
    if weavers_tests::wait_until(Duration::from_secs(4), || find().is_some()) {
        find().unwrap_or(0)
    } else {
        let out = srv.stdout();
        let last = out.lines().last().unwrap_or("").to_owned();
        log!(
            "  (no iperf report from h{host} for trial {trial}: counted as nothing received; its last line: {last:?}; \
             stderr: {:?})",
            srv.stderr().trim()
        );
        0
    }
}

/// Bytes and packets received on eth0 of host `i`.
fn eth0_rx(lab: &Lab, i: usize) -> Result<(u64, u64)> {
    dev_rx(lab, i, "eth0")
}

/// Bytes and packets received on device `dev` of host `i`.
fn dev_rx(lab: &Lab, i: usize, dev: &str) -> Result<(u64, u64)> {
    let out = netns::ip(&["-n", lab.ns(i), "-j", "-s", "link", "show", "dev", dev])?;
    let v: Value = serde_json::from_str(&out)?;
    let rx = &v[0]["stats64"]["rx"];
    Ok((rx["bytes"].as_u64().unwrap_or(0), rx["packets"].as_u64().unwrap_or(0)))
}

#[derive(Clone, Debug)]
pub struct Multicast {
    pub search: Search,
    /// Bytes and packets on the non-listener's eth0 during the full-rate
    /// trial, and on each receiver's eth0 (for scale).
    pub nonlistener_bytes: u64,
    pub nonlistener_packets: u64,
    pub receiver_bytes: Vec<u64>,
    /// Frames that the overlay delivered to the non-listener's overlay
    /// device (weavers' TAP, the VXLAN device) in that trial.
    pub nonlistener_frames: Option<u64>,
    /// The same on each receiver (for scale).
    pub receiver_frames: Vec<u64>,
    /// weavers: seconds until h1 listed every receiver as subscribed.
    pub join_secs: Option<f64>,
}

/// A multicast receiver in a namespace: a socket bound to the iperf port
/// and joined to [`GROUP`] (the join follows the route of 224.0.0.0/4),
/// with a 2 MB receive buffer like the iperf servers, counting iperf2 data
/// datagrams (non-negative sequence number) per sending port. (iperf2's own
/// multicast server stops reporting after a stream whose end it missed.)
pub struct McastCounter {
    stop: Arc<AtomicBool>,
    counts: Arc<Mutex<HashMap<u16, u64>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl McastCounter {
    pub fn start(ns: &str) -> Result<McastCounter> {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let (tx, rx) = mpsc::channel::<std::result::Result<(), String>>();
        let (stop2, counts2) = (stop.clone(), counts.clone());
        let handle = netns::spawn_in(ns, move || {
            let open = || -> Result<UdpSocket> {
                let so = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
                so.set_reuse_address(true)?;
                so.set_recv_buffer_size(2 << 20)?;
                so.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, IPERF_PORT)).into())?;
                so.join_multicast_v4(&GROUP, &Ipv4Addr::UNSPECIFIED)?;
                let u: UdpSocket = so.into();
                u.set_read_timeout(Some(Duration::from_millis(20)))?;
                Ok(u)
            };
            let sock = match open() {
                Ok(u) => {
                    let _ = tx.send(Ok(()));
                    u
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("{e:#}")));
                    return;
                }
            };
            let mut local: HashMap<u16, u64> = HashMap::new();
            let mut buf = [0u8; 2048];
            let mut since_publish = 0u32;
            while !stop2.load(Ordering::Relaxed) {
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        if n >= 4 && i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) >= 0 {
                            *local.entry(from.port()).or_insert(0) += 1;
                        }
                        since_publish += 1;
                        if since_publish >= 4096 {
                            since_publish = 0;
                            counts2.lock().unwrap().clone_from(&local);
                        }
                    }
                    Err(_) => {
                        since_publish = 0;
                        counts2.lock().unwrap().clone_from(&local);
                    }
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(McastCounter { stop, counts, handle: Some(handle) }),
            Ok(Err(e)) => bail!("multicast receiver in {ns}: {e}"),
            Err(_) => bail!("multicast receiver in {ns} did not start"),
        }
    }

    /// Data datagrams received from sending port `port` so far.
    pub fn count(&self, port: u16) -> u64 {
        self.counts.lock().unwrap().get(&port).copied().unwrap_or(0)
    }
}

impl Drop for McastCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The peers that host 1's weavers lists as subscribed to the group.
fn subscribed(lab: &Lab) -> Option<Vec<String>> {
    let v = lab.try_cli_json(1, &["groups", "--json"]).ok()?;
    let g = v.as_array()?.iter().find(|g| g["group"] == GROUP.to_string())?;
    Some(g["subscribed_peers"].as_array()?.iter().filter_map(|p| p["name"].as_str().map(str::to_owned)).collect())
}

/// Multicast from host 1 to the group, joined by hosts 2-4 (iperf2
/// servers bound to the group; the join follows the route of 224.0.0.0/4,
/// which each multicast-capable setup points at its bridge); host 5 does
/// not listen.
pub fn multicast(lab: &Lab, s: &Setup, cfg: &Cfg, tag: &str) -> Result<Multicast> {
    for i in 1..=lab.len() {
        let r = netns::ip(&["-n", lab.ns(i), "route", "get", &GROUP.to_string()])?;
        if r.contains("dev eth0") {
            bail!("h{i} routes {GROUP} to the underlay: {r}");
        }
    }
    let g = GROUP.to_string();
    let counters: Vec<McastCounter> =
        RECEIVERS.iter().map(|&i| McastCounter::start(lab.ns(i))).collect::<Result<_>>()?;
    // The joins travel (for weavers, by gossip) before the first trial: at
    // least 3 s for every system, and for weavers until the sender lists
    // all three receivers as subscribed (30 s at most; the time is a figure).
    let t0 = std::time::Instant::now();
    let mut join_secs = None;
    if s.system == System::Weavers {
        let ok = weavers_tests::wait_until(Duration::from_secs(30), || {
            stopped() || subscribed(lab).is_some_and(|names| RECEIVERS.iter().all(|i| names.contains(&format!("h{i}"))))
        });
        if ok && !stopped() {
            join_secs = Some(t0.elapsed().as_secs_f64());
        } else {
            log!("  (h1 does not list all receivers as subscribed after 30 s: {:?})", subscribed(lab));
        }
    }
    sleep_checked(Duration::from_secs(3).saturating_sub(t0.elapsed()))?;
    let mut n = 0;
    let mut prune = None;
    let result = search(cfg.search_steps, MCAST_MAX_LOSS, |target| {
        n += 1;
        sleep_checked(Duration::from_millis(300))?;
        let rx0: Vec<(u64, u64)> = (2..=NON_LISTENER).map(|i| eth0_rx(lab, i)).collect::<Result<_>>()?;
        // Frames the overlay delivered to each host's overlay device.
        let dev_frames =
            |d: &str| -> Result<Vec<u64>> { (2..=NON_LISTENER).map(|i| Ok(dev_rx(lab, i, d)?.1)).collect() };
        let dev0 = match &s.overlay_dev {
            Some(d) => Some(dev_frames(d)?),
            None => None,
        };
        let mark = CpuMark::now(&s.overlay_pids);
        let (port, bytes, _) = udp_client(lab, cfg, &format!("{tag}-iperf-mc{n}"), &g, target, true)?;
        let (cpu_procs, cpu_machine, _) = mark.since(&s.overlay_pids);
        // What each receiver got from this stream (by the client's port),
        // once the queues drained.
        sleep_checked(Duration::from_millis(500))?;
        let recvs: Vec<f64> = counters.iter().map(|c| c.count(port) as f64).collect();
        let rx1: Vec<(u64, u64)> = (2..=NON_LISTENER).map(|i| eth0_rx(lab, i)).collect::<Result<_>>()?;
        let rx: Vec<(u64, u64)> = rx0.iter().zip(&rx1).map(|(a, b)| (b.0 - a.0, b.1 - a.1)).collect();
        let frames = match (&s.overlay_dev, dev0) {
            (Some(d), Some(f0)) => Some(dev_frames(d)?.iter().zip(&f0).map(|(b, a)| b - a).collect::<Vec<u64>>()),
            _ => None,
        };
        let secs = cfg.trial_secs as f64;
        let sent = bytes as f64 / PAYLOAD as f64;
        let t = Trial {
            target,
            sent_pps: sent / secs,
            recv_pps: recvs.iter().map(|r| r / secs).collect(),
            loss: recvs.iter().map(|r| if sent > 0.0 { (1.0 - r / sent).max(0.0) } else { 1.0 }).collect(),
            cpu_procs,
            cpu_machine,
            wall: secs,
            rx_eth0: rx.clone(),
        };
        if prune.is_none() {
            prune = Some((rx, frames));
        }
        // A receiver that gets (almost) nothing is a delivery failure, not
        // overload: show what the sender knows.
        if s.system == System::Weavers && t.recv_pps.iter().any(|&r| r < t.sent_pps * 0.1) {
            let g = lab.try_cli(1, &["groups"]).unwrap_or_else(|e| format!("{e:#}"));
            log!("  (trial {n}: a receiver got < 10%; `weavers groups` on h1:\n{})", g.trim_end());
        }
        Ok(t)
    });
    drop(counters);
    let search = result?;
    let (rx, frames) = prune.unwrap_or_default();
    let (nb, np) = rx.last().copied().unwrap_or((0, 0));
    Ok(Multicast {
        search,
        join_secs,
        nonlistener_bytes: nb,
        nonlistener_packets: np,
        nonlistener_frames: frames.as_ref().and_then(|f| f.last().copied()),
        receiver_frames: frames.map(|f| f[..f.len() - 1].to_vec()).unwrap_or_default(),
        receiver_bytes: rx[..rx.len().saturating_sub(1)].iter().map(|r| r.0).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockperf_parse() {
        let out = "sockperf: ====> avg-latency=6.519 (std-dev=5.837)\n\
                   sockperf: ---> percentile 99.900 =   22.668\n\
                   sockperf: ---> percentile 99.000 =    8.672\n\
                   sockperf: ---> percentile 50.000 =    6.284\n";
        let l = parse_sockperf(out).unwrap();
        assert_eq!((l.avg, l.p50, l.p99, l.p999), (6.519, 6.284, 8.672, 22.668));
    }

    #[test]
    fn csv() {
        let l = "19700101000000,10.98.0.1,52514,10.98.0.2,5001,1,0.0-2.0,6149516,24503468,0.002,3780,99866,3.785,0";
        assert_eq!(csv_fields(l), Some((52514, 6149516, Some(3780), Some(99866))));
    }
}
