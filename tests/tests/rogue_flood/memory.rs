//! Each daemon's memory, sampled from `/proc/PID/status` every 200 ms on
//! a thread until stopped: resident size (VmRSS) at every sample, and the
//! kernel's own high-water mark (VmHWM), which also catches a peak between
//! two samples.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often each process is sampled.
pub const INTERVAL: Duration = Duration::from_millis(200);

/// One process's samples.
#[derive(Clone, Debug, Default)]
pub struct Usage {
    /// `(when, VmRSS in KiB)`, in order.
    pub rss: Vec<(Instant, u64)>,
    /// VmHWM at the start (KiB): the peak before sampling began.
    pub hwm_before: u64,
    /// The last VmHWM read (KiB): the peak since sampling began.
    pub hwm: u64,
    /// CPU time (user + system) the process used while sampled.
    pub cpu: Duration,
}

impl Usage {
    /// The largest VmRSS sampled (KiB).
    pub fn peak(&self) -> u64 {
        self.rss.iter().map(|(_, k)| *k).max().unwrap_or(0)
    }

    /// The first and last VmRSS sampled (KiB).
    pub fn first_last(&self) -> (u64, u64) {
        (self.rss.first().map_or(0, |s| s.1), self.rss.last().map_or(0, |s| s.1))
    }

    /// The largest VmRSS sampled in the `part`-th of `parts` equal slices
    /// of the time sampled (KiB): a table that grows shows as a rising
    /// sequence.
    pub fn peak_in(&self, part: usize, parts: usize) -> u64 {
        let (Some(a), Some(b)) = (self.rss.first(), self.rss.last()) else { return 0 };
        let span = b.0.duration_since(a.0);
        let from = a.0 + span.mul_f64(part as f64 / parts as f64);
        let to = a.0 + span.mul_f64((part + 1) as f64 / parts as f64);
        self.rss.iter().filter(|(t, _)| *t >= from && *t <= to).map(|(_, k)| *k).max().unwrap_or(0)
    }
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// CPU time (user + system) process `pid` used so far (`/proc/PID/stat`,
/// in clock ticks of 1/100 s).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command (which may hold spaces), from field 3.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Samples a set of processes until [`Sampler::stop`].
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Usage>>>,
}

impl Sampler {
    /// Starts sampling `pids`, after resetting each one's VmHWM to its
    /// current VmRSS (`clear_refs` 5), so that VmHWM is the peak from now
    /// on (the daemon's start, Argon2id's 64 MiB included, not counted).
    pub fn start(pids: Vec<u32>) -> Sampler {
        let hwm_before: std::collections::HashMap<u32, u64> =
            pids.iter().filter_map(|p| Some((*p, status_kib(*p, "VmHWM")?))).collect();
        for pid in &pids {
            std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
                .unwrap_or_else(|e| panic!("reset VmHWM of pid {pid}: {e}"));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut usage = vec![Usage::default(); pids.len()];
                let cpu_before: Vec<Duration> = pids.iter().map(|p| cpu_time(*p).unwrap_or_default()).collect();
                for (u, pid) in usage.iter_mut().zip(&pids) {
                    u.hwm_before = hwm_before.get(pid).copied().unwrap_or(0);
                }
                loop {
                    let now = Instant::now();
                    for (u, pid) in usage.iter_mut().zip(&pids) {
                        if let Some(k) = status_kib(*pid, "VmRSS") {
                            u.rss.push((now, k));
                        }
                        if let Some(k) = status_kib(*pid, "VmHWM") {
                            u.hwm = k;
                        }
                    }
                    if stop.load(Ordering::SeqCst) {
                        for ((u, pid), before) in usage.iter_mut().zip(&pids).zip(&cpu_before) {
                            u.cpu = cpu_time(*pid).unwrap_or_default().saturating_sub(*before);
                        }
                        return usage;
                    }
                    std::thread::sleep(INTERVAL);
                }
            })
        };
        Sampler { stop, handle: Some(handle) }
    }

    /// Stops sampling (after one last sample): each process's samples, in
    /// the order of the pids given.
    pub fn stop(mut self) -> Vec<Usage> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().expect("running").join().expect("the sampler thread")
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
