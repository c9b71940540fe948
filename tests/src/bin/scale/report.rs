//! The scale bench's markdown table, the growth exponent of idle bytes
//! per host, and the JSON file.

use serde_json::{json, Value};

use crate::measure::SizeRun;

/// Least-squares slope of ln(y) over ln(x): the exponent k of y ~ x^k.
/// None with fewer than two usable points (x and y above zero, two x).
pub fn loglog_slope(points: &[(f64, f64)]) -> Option<f64> {
    let p: Vec<(f64, f64)> =
        points.iter().filter(|(x, y)| *x > 0.0 && *y > 0.0).map(|(x, y)| (x.ln(), y.ln())).collect();
    let n = p.len() as f64;
    if p.len() < 2 {
        return None;
    }
    let (mx, my) = (p.iter().map(|q| q.0).sum::<f64>() / n, p.iter().map(|q| q.1).sum::<f64>() / n);
    let sxx: f64 = p.iter().map(|q| (q.0 - mx).powi(2)).sum();
    let sxy: f64 = p.iter().map(|q| (q.0 - mx) * (q.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// (N, mean idle bytes/s per host) of every size that has an idle window.
fn idle_points(runs: &[SizeRun]) -> Vec<(f64, f64)> {
    runs.iter().filter_map(|r| r.idle.as_ref().map(|i| (r.n as f64, i.bytes_mean()))).collect()
}

/// The exponent line printed under the table.
pub fn exponent_line(runs: &[SizeRun]) -> String {
    let pts = idle_points(runs);
    let sizes = pts.iter().map(|(n, _)| format!("{n}")).collect::<Vec<_>>().join(", ");
    let partial: Vec<String> =
        runs.iter().filter(|r| r.idle.is_some() && r.converge_s.is_none()).map(|r| r.n.to_string()).collect();
    let note = if partial.is_empty() {
        String::new()
    } else {
        format!("; N = {} did not converge, measured anyway", partial.join(", "))
    };
    match loglog_slope(&pts) {
        Some(k) => format!(
            "Idle underlay bytes/s per host grow as N^{k:.2} (least-squares slope of log bytes/s over log N, N = {sizes}{note}); \
             the whole underlay carries N times that, N^{:.2}.",
            k + 1.0
        ),
        None => "Growth exponent: needs idle figures at two sizes or more.".into(),
    }
}

/// Integer with thousands separators.
fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (k, c) in s.chars().enumerate() {
        if k > 0 && (s.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The report: header with the machine, the table, the exponent, the
/// definitions and any errors.
pub fn markdown(runs: &[SizeRun], meta: &Value) -> String {
    let mut md = String::from("# weavers at scale\n\n");
    md.push_str(&format!(
        "{} - {} CPUs ({}), kernel {}; commit {}. Load average at the start: {}.\n\n",
        meta["date"].as_str().unwrap_or("?"),
        meta["nproc"],
        meta["cpu"].as_str().unwrap_or("?"),
        meta["kernel"].as_str().unwrap_or("?"),
        meta["commit"].as_str().unwrap_or("?"),
        meta["loadavg"].as_str().unwrap_or("?"),
    ));
    md.push_str(
        "| N | full mesh after | sessions up | idle B/s per host: mean | max | all daemons' CPU, % of one core | \
         RSS per daemon: mean | max | join to first datagram | kill -9: not connected at all | kill -9: gone at all | \
         path cut: flowing again | run time | load (1 min) at start, end |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in runs {
        let idle = r.idle.as_ref();
        let converge = match r.converge_s {
            Some(s) => format!("{s:.1} s"),
            None => format!("not converged: {} of {} sessions", r.sessions, r.wanted),
        };
        let failure = r.failure.as_ref().map_or("-".into(), |f| match f.all_s {
            Some(s) => format!("{s:.1} s (h{})", f.victim),
            None => format!("not by {} hosts (h{})", f.undetected, f.victim),
        });
        let gone = r.failure.as_ref().map_or("-".into(), |f| match f.gone_all_s {
            Some(s) => format!("{s:.1} s"),
            None => format!("not by {} hosts", f.not_gone),
        });
        let cut = r.cut.as_ref().map_or("-".into(), |c| match c.resumed_s {
            Some(s) => format!("{s:.1} s (h{}-h{})", c.from, c.to),
            None => format!("never (h{}-h{})", c.from, c.to),
        });
        md.push_str(&format!(
            "| {} | {} | {} of {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} s | {}, {} |\n",
            r.n,
            converge,
            r.sessions,
            r.wanted,
            idle.map_or("-".into(), |i| thousands(i.bytes_mean())),
            idle.map_or("-".into(), |i| thousands(i.bytes_max())),
            idle.map_or("-".into(), |i| format!("{:.1}", i.cpu_pct)),
            idle.map_or("-".into(), |i| format!("{:.1} MiB", i.rss_mean() / 1048576.0)),
            idle.map_or("-".into(), |i| format!("{:.1} MiB", i.rss_max() as f64 / 1048576.0)),
            r.join_ms.map_or("-".into(), |ms| format!("{ms:.0} ms")),
            failure,
            gone,
            cut,
            r.total_s,
            r.load.0,
            r.load.1,
        ));
    }
    md.push('\n');
    for r in runs {
        if let Some(s) = &r.soak {
            md.push_str(&format!(
                "Soak at N={}: {:.0} s left alone after the idle window; peers declared down by any host (false \
                 failures): {}{}; every host listed all others connected at the end: {}.\n\n",
                r.n,
                s.secs,
                s.false_failures,
                if s.by_host.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", s.by_host.iter().map(|(h, d)| format!("h{h}: {d}")).collect::<Vec<_>>().join(", "))
                },
                if s.full_at_end { "yes" } else { "no" }
            ));
        }
    }
    md.push_str(&exponent_line(runs));
    md.push_str("\n\n");
    let s = &meta["settings"];
    md.push_str(&format!(
        "How: each N is a fresh lab of N network namespaces on one underlay bridge (which drops multicast), IPv6 \
         off, neighbours: {} (with permanent entries the underlay carries only the daemons' datagrams, and the \
         machine's one neighbour table, which ARP would overflow past about 32 hosts, is not in the way); release \
         `weaversd` (log level info), h1 started with no peer and every other host with `--peer` h1 only, {} at \
         a time. The mesh is read from every host's control API (`GET /v1/peers`, what `weavers peer ls --json` \
         prints), up to 64 hosts at a time, every {} (every max(250 ms, 4 ms x N)); full mesh = every host lists the N-1 \
         others `connected`, timed from the last daemon's start to the end of the first full poll; the wait is \
         capped at {}. Idle: {} s after a {} s pause, bytes sent + received on each host's port of the \
         underlay bridge (the daemons' gossip rounds come in bursts every 10 s: the window is a multiple of that); CPU is utime + stime of all daemons over that window; RSS is VmRSS at its end. Join: \
         h1 sends 64-byte datagrams to 239.12.0.1 at 1 kpps from its overlay address; the last host joins; time \
         from just before its IP_ADD_MEMBERSHIP to its first datagram. Path cut: 1 kpps of unicast UDP h2 -> \
         hN between overlay addresses; the underlay path between them is blocked (nftables); time until the \
         first datagram sent after the block arrives. Kill: `kill -9` of h(N/2+1)'s daemon; every other host \
         polled every max(100 ms, 2 ms x N): time until none lists it `connected`, and until none lists it \
         `connected` or `relayed` (gone). Run time: the whole size, lab \
         set-up and removal included.\n",
        s["neighbours"].as_str().unwrap_or("?"),
        s["wave"],
        s["converge_poll"].as_str().unwrap_or("?"),
        s["converge_cap"].as_str().unwrap_or("?"),
        s["idle_s"],
        s["settle_s"],
    ));
    let notes: Vec<String> = runs
        .iter()
        .flat_map(|r| {
            let mut v: Vec<String> = r.errors.iter().map(|e| format!("- N={}: {e}", r.n)).collect();
            if r.slowest_round() > 1.0 {
                v.push(format!(
                    "- N={}: a poll of all hosts took up to {:.1} s while the mesh formed (daemons slow to answer \
                     their API): the time to a full mesh is known to within that",
                    r.n,
                    r.slowest_round()
                ));
            }
            if let Some(c) = &r.formation {
                v.push(format!("- N={}: counted by the daemons when the wait ended: {}", r.n, c.summary(r.n)));
            }
            if let Some(m) = &r.missing {
                let lines: Vec<&str> = m.lines().collect();
                v.push(format!("- N={}: at the cap, {}", r.n, lines.first().unwrap_or(&"")));
                v.extend(lines.iter().skip(1).map(|l| format!("  - {l}")));
            }
            v
        })
        .collect();
    if !notes.is_empty() {
        md.push_str("\nNotes:\n\n");
        md.push_str(&notes.join("\n"));
        md.push('\n');
    }
    md
}

/// The JSON file: the machine, the settings, every size's figures.
pub fn json(runs: &[SizeRun], meta: &Value) -> Value {
    let pts = idle_points(runs);
    json!({
        "machine": meta,
        "idle_bytes_per_host_exponent": loglog_slope(&pts),
        "sizes": runs.iter().map(SizeRun::to_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_power_law_is_its_exponent() {
        let pts: Vec<(f64, f64)> = [8.0, 16.0, 32.0, 64.0].iter().map(|&n: &f64| (n, 3.0 * n.powf(2.5))).collect();
        assert!((loglog_slope(&pts).unwrap() - 2.5).abs() < 1e-9);
        // The user's figures: 8 -> 2,950, 16 -> 19,944, 32 -> 144,141 B/s.
        let k = loglog_slope(&[(8.0, 2950.0), (16.0, 19944.0), (32.0, 144141.0)]).unwrap();
        assert!((2.7..2.9).contains(&k), "{k}");
        assert_eq!(loglog_slope(&[(8.0, 1.0)]), None);
        assert_eq!(loglog_slope(&[(8.0, 1.0), (8.0, 2.0)]), None);
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(144141.4), "144,141");
        assert_eq!(thousands(950.0), "950");
        assert_eq!(thousands(1000.0), "1,000");
    }
}
