//! The mesh as a whole, read from the hosts' control APIs a few at a time
//! in parallel: which of the sessions a full mesh needs are up, waiting
//! for all of them, and a short account of what is missing (a large lab's
//! full peer lists are too long to print).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Lab;

/// How long [`Lab::mesh_snapshot`] waits for each daemon's answer.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(5);
/// Threads [`Lab::mesh_snapshot`] asks daemons with: enough that a round
/// takes about as long as the slowest daemon's answer, not the sum of the
/// slow ones' (a thread mostly waits on its socket).
pub const POLL_WORKERS: usize = 64;

/// What one host lists about the others of a set: their states by host
/// number, or why its API did not answer.
pub type HostView = Result<BTreeMap<usize, String>, String>;

/// What each host of a set listed at one moment (see [`Lab::mesh_snapshot`]).
#[derive(Clone, Debug)]
pub struct MeshSnapshot {
    /// Per host, in the order asked: the state of each other host of the
    /// set that it lists (by host number), or why its API did not answer.
    pub hosts: Vec<(usize, HostView)>,
}

impl MeshSnapshot {
    /// Sessions seen up: over all hosts, the others of the set listed as
    /// `connected`.
    pub fn sessions(&self) -> usize {
        self.hosts.iter().map(|(_, r)| r.as_ref().map_or(0, |m| m.values().filter(|s| *s == "connected").count())).sum()
    }

    /// Sessions a full mesh of the set has: N*(N-1).
    pub fn wanted(&self) -> usize {
        let n = self.hosts.len();
        n * n.saturating_sub(1)
    }

    /// Whether every host lists every other as `connected`.
    pub fn full(&self) -> bool {
        self.sessions() == self.wanted()
    }

    /// `X of N*(N-1) sessions`, then one line per host that misses some:
    /// how many it has and the others' states (`h7 connecting`, `h9
    /// absent`), at most `max_lines` lines.
    pub fn summary(&self, max_lines: usize) -> String {
        let set: Vec<usize> = self.hosts.iter().map(|(i, _)| *i).collect();
        let mut out = format!("{} of {} sessions up", self.sessions(), self.wanted());
        let mut lines = 0;
        let mut skipped = 0;
        for (i, r) in &self.hosts {
            let line = match r {
                Err(e) => format!("h{i}: {e}"),
                Ok(m) => {
                    let missing: Vec<String> = set
                        .iter()
                        .filter(|&&j| j != *i)
                        .filter(|j| m.get(j).is_none_or(|s| s != "connected"))
                        .map(|j| format!("h{j} {}", m.get(j).map_or("absent", String::as_str)))
                        .collect();
                    if missing.is_empty() {
                        continue;
                    }
                    let shown = missing.iter().take(12).cloned().collect::<Vec<_>>().join(", ");
                    let more =
                        if missing.len() > 12 { format!(", and {} more", missing.len() - 12) } else { String::new() };
                    format!(
                        "h{i}: {} of {} connected; not: {shown}{more}",
                        set.len() - 1 - missing.len(),
                        set.len() - 1
                    )
                }
            };
            if lines < max_lines {
                out.push('\n');
                out.push_str(&line);
                lines += 1;
            } else {
                skipped += 1;
            }
        }
        if skipped > 0 {
            out.push_str(&format!("\n(and {skipped} more hosts missing sessions)"));
        }
        out
    }
}

/// The host number of a lab daemon's default name (`h12` -> 12).
fn host_of(name: &str) -> Option<usize> {
    name.strip_prefix('h')?.parse().ok()
}

impl Lab {
    /// What every host of `hosts` lists about the others of `hosts` (their
    /// daemons' default names `hJ`), read in parallel from their APIs. A
    /// daemon that does not answer within [`POLL_TIMEOUT`] counts as an
    /// error (a busy one must not hold up the whole round).
    pub fn mesh_snapshot(&self, hosts: &[usize]) -> MeshSnapshot {
        let views = crate::par::map(hosts, POLL_WORKERS, |&i| {
            self.api_peers_within(i, POLL_TIMEOUT)
                .map(|rows| {
                    rows.iter()
                        .filter_map(|r| {
                            let j = host_of(r["name"].as_str()?)?;
                            (j != i && hosts.contains(&j)).then(|| (j, r["state"].as_str().unwrap_or("?").to_owned()))
                        })
                        .collect()
                })
                .map_err(|e| format!("{e:#}"))
        });
        MeshSnapshot { hosts: hosts.iter().copied().zip(views).collect() }
    }

    /// Polls every `interval` until every host of `hosts` lists all the
    /// others as `connected`: the time that took, or at `timeout` the last
    /// snapshot.
    pub fn wait_full_mesh(
        &self,
        hosts: &[usize],
        timeout: Duration,
        interval: Duration,
    ) -> Result<Duration, MeshSnapshot> {
        let start = Instant::now();
        loop {
            let round = Instant::now();
            let snap = self.mesh_snapshot(hosts);
            if snap.full() {
                return Ok(start.elapsed());
            }
            if start.elapsed() >= timeout {
                return Err(snap);
            }
            std::thread::sleep(interval.saturating_sub(round.elapsed()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_count_connected_others_and_the_summary_names_the_missing() {
        let view = |pairs: &[(usize, &str)]| -> BTreeMap<usize, String> {
            pairs.iter().map(|(j, s)| (*j, s.to_string())).collect()
        };
        let snap = MeshSnapshot {
            hosts: vec![
                (1, Ok(view(&[(2, "connected"), (3, "connected")]))),
                (2, Ok(view(&[(1, "connected"), (3, "connecting")]))),
                (3, Err("no daemon".into())),
            ],
        };
        assert_eq!((snap.sessions(), snap.wanted(), snap.full()), (3, 6, false));
        let s = snap.summary(10);
        assert!(s.starts_with("3 of 6 sessions up"), "{s}");
        assert!(s.contains("h2: 1 of 2 connected; not: h3 connecting"), "{s}");
        assert!(s.contains("h3: no daemon"), "{s}");
        assert!(!s.contains("h1:"), "{s}");
        assert!(snap.summary(1).contains("(and 1 more hosts missing sessions)"));
        assert_eq!(host_of("h12"), Some(12));
        assert_eq!(host_of("x"), None);
    }
}
