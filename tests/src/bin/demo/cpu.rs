//! CPU per order: the CPU time each process of the run consumed while the
//! load ran (user + system, from `/proc/PID/stat`), divided by the orders
//! sent. Consumed CPU, not a share of the machine, so it holds up on a busy
//! host better than throughput or latency do.
//!
//! The load generators report their own CPU (`cpu_s` in their summary:
//! they exit before the demo looks); every other process is sampled when
//! the load starts and when it ends.

use serde_json::{json, Map, Value};

/// Clock ticks a second of `/proc/PID/stat`'s utime and stime.
fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Seconds of CPU (user + system, all threads) process `pid` has used.
pub fn cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of stat(5), so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / ticks_per_s())
}

/// The processes watched: a role (`gateways`, `engine`, `weaversd`, ...;
/// several processes may share one) and a PID.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    at_start: Vec<(String, u32, f64)>,
    /// Last readings of processes about to be killed (a failover).
    last: Vec<(u32, f64)>,
}

impl Watch {
    /// Samples every `(role, pid)` now: the start of the load.
    pub fn start(procs: &[(String, Option<u32>)]) -> Watch {
        let at_start = procs.iter().filter_map(|(role, pid)| Some((role.clone(), (*pid)?, cpu_s((*pid)?)?))).collect();
        Watch { at_start, last: Vec::new() }
    }

    /// Reads `pid` now and keeps the reading: it is about to be killed, and
    /// a killed process's CPU can no longer be read at the end.
    pub fn keep(&mut self, pid: Option<u32>) {
        if let Some((pid, s)) = pid.and_then(|p| Some((p, cpu_s(p)?))) {
            self.last.push((pid, s));
        }
    }

    /// CPU seconds per role since [`Watch::start`] (processes gone since count
    /// nothing), plus `extra` (roles that report their own CPU).
    pub fn used(&self, extra: &[(String, f64)]) -> Vec<(String, f64)> {
        let mut by_role: Vec<(String, f64)> = Vec::new();
        let mut add = |role: &str, s: f64| match by_role.iter_mut().find(|(r, _)| r == role) {
            Some((_, v)) => *v += s,
            None => by_role.push((role.to_string(), s)),
        };
        for (role, pid, before) in &self.at_start {
            let kept = self.last.iter().find(|(p, _)| p == pid).map(|(_, s)| *s);
            if let Some(now) = kept.or_else(|| cpu_s(*pid)) {
                add(role, (now - before).max(0.0));
            }
        }
        for (role, s) in extra {
            add(role, *s);
        }
        by_role
    }
}

/// The summary's `cpu`: seconds per role, and µs per order per role and in all.
pub fn summary(used: &[(String, f64)], orders: u64) -> Value {
    let per_order =
        |s: f64| if orders == 0 { Value::Null } else { json!((s * 1e6 / orders as f64 * 10.0).round() / 10.0) };
    let mut seconds = Map::new();
    let mut us = Map::new();
    let mut total = 0.0;
    for (role, s) in used {
        seconds.insert(role.clone(), json!((s * 100.0).round() / 100.0));
        us.insert(role.clone(), per_order(*s));
        total += s;
    }
    us.insert("total".into(), per_order(total));
    json!({ "orders": orders, "cpu_s": seconds, "us_per_order": us })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_is_read_and_summarised() {
        let me = std::process::id();
        let w = Watch::start(&[("me".into(), Some(me)), ("none".into(), None)]);
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 200 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert_ne!(x, 1);
        let used = w.used(&[("other".into(), 0.5)]);
        let me_s = used.iter().find(|(r, _)| r == "me").map(|(_, s)| *s).unwrap();
        assert!(me_s > 0.05, "{used:?}");
        // A process about to be killed: its last reading stands.
        let mut w = w;
        w.keep(Some(me));
        let kept = w.used(&[]).iter().find(|(r, _)| r == "me").map(|(_, s)| *s).unwrap();
        let t = std::time::Instant::now();
        while t.elapsed().as_millis() < 200 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert_ne!(x, 1);
        let later = w.used(&[]).iter().find(|(r, _)| r == "me").map(|(_, s)| *s).unwrap();
        assert_eq!(kept, later, "the kept reading, not the live one");
        let s = summary(&used, 1000);
        assert_eq!(s["us_per_order"]["other"], 500.0);
        assert!(s["us_per_order"]["total"].as_f64().unwrap() > 500.0);
    }
}
