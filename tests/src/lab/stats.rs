//! What a running lab costs: bytes through each host's port on the
//! underlay bridge, and each daemon's CPU time and memory (from /proc).

use std::path::Path;

use anyhow::{anyhow, Context, Result};

use super::Lab;
use crate::netns;

/// Bytes through one host's underlay port since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortBytes {
    /// Bytes the host sent onto the underlay.
    pub sent: u64,
    /// Bytes the underlay delivered to the host.
    pub received: u64,
}

impl PortBytes {
    /// Sent and received.
    pub fn total(&self) -> u64 {
        self.sent + self.received
    }
}

impl Lab {
    /// Bytes through every host's port (`vI` in the underlay namespace,
    /// the other end of its `eth0`), host 1 first: one read of the
    /// underlay's `/proc/net/dev`, no process.
    pub fn underlay_port_bytes(&self) -> Result<Vec<PortBytes>> {
        let dev = netns::run_in(self.underlay_ns(), || std::fs::read_to_string("/proc/thread-self/net/dev"))
            .context("read /proc/net/dev in the underlay")?;
        let ports = parse_net_dev(&dev);
        (1..=self.len())
            .map(|i| {
                let (rx, tx) = ports
                    .iter()
                    .find(|(n, _, _)| *n == format!("v{i}"))
                    .map(|(_, rx, tx)| (*rx, *tx))
                    .ok_or_else(|| anyhow!("no port v{i} in the underlay's /proc/net/dev"))?;
                // The port receives what the host sends, and the reverse.
                Ok(PortBytes { sent: rx, received: tx })
            })
            .collect()
    }
}

/// (interface, rx bytes, tx bytes) from the text of `/proc/net/dev`.
fn parse_net_dev(text: &str) -> Vec<(String, u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            (f.len() >= 16).then(|| (name.trim().to_owned(), f[0], f[8]))
        })
        .collect()
}

/// User plus system CPU time of process `pid` so far, in seconds (fields 14
/// and 15 of `/proc/PID/stat`); None once it is gone.
pub fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_ticks_of_stat(&stat).map(|t| t as f64 / clock_ticks())
}

/// Resident memory of process `pid` (`VmRSS` of `/proc/PID/status`) in
/// bytes; None once it is gone.
pub fn proc_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// utime + stime, in clock ticks, from the text of `/proc/PID/stat` (the
/// command name, field 2, may hold spaces and parentheses: count from the
/// last `)`).
fn cpu_ticks_of_stat(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14, stime 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_lines_give_rx_and_tx_bytes() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
                    face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n    \
                    v12: 1234 5 0 0 0 0 0 0 5678 6 0 0 0 0 0 0\n";
        let p = parse_net_dev(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[1], ("v12".to_string(), 1234, 5678));
    }

    #[test]
    fn stat_cpu_ticks_survive_odd_command_names() {
        let stat =
            "4242 (we (i) rd) S 1 4242 4242 0 -1 4194560 100 0 0 0 17 4 0 0 20 0 1 0 100 1000 200 18446744073709551615";
        assert_eq!(cpu_ticks_of_stat(stat), Some(21));
        assert_eq!(cpu_ticks_of_stat("garbage"), None);
        let me = std::process::id();
        assert!(proc_cpu_seconds(me).is_some());
        assert!(proc_rss_bytes(me).is_some_and(|b| b > 0));
    }
}
