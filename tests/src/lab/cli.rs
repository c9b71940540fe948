//! The lab's command-line helpers: `weavers` against a host's daemon,
//! its JSON answers, and waiting for the mesh.

use super::{output_with_timeout, remove_weavers_env, DaemonOpts, Lab};
use crate::{bins, wait_until};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

impl Lab {
    /// Runs `weavers --socket <h_i socket> ARGS...` (in the test's own
    /// namespace: the socket is a path) with a 30 s limit.
    pub fn cli(&self, i: usize, args: &[&str]) -> Output {
        self.cli_output(i, args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Like [`Lab::cli`] but an error (not a panic) if it cannot run.
    pub fn cli_output(&self, i: usize, args: &[&str]) -> Result<Output> {
        let bin = bins::dir().join("weavers");
        let mut cmd = Command::new(&bin);
        cmd.arg("--socket").arg(self.socket(i)).args(args);
        remove_weavers_env(&mut cmd);
        output_with_timeout(cmd, Duration::from_secs(30))
            .with_context(|| format!("weavers {} ({})", args.join(" "), bin.display()))
    }

    /// Like [`Lab::cli`] but an error unless it exits 0; returns stdout.
    pub fn try_cli(&self, i: usize, args: &[&str]) -> Result<String> {
        let out = self.cli_output(i, args)?;
        if !out.status.success() {
            bail!(
                "`weavers {}` on h{i} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a CLI command that must succeed; returns stdout.
    pub fn cli_ok(&self, i: usize, args: &[&str]) -> String {
        self.try_cli(i, args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Runs a CLI command and parses its stdout as JSON.
    pub fn try_cli_json(&self, i: usize, args: &[&str]) -> Result<Value> {
        let out = self.try_cli(i, args)?;
        serde_json::from_str(&out).with_context(|| format!("`weavers {}` printed no JSON: {out}", args.join(" ")))
    }

    /// `weavers peer ls --json` on host `i`, as an array.
    pub fn try_peers(&self, i: usize) -> Result<Vec<Value>> {
        match self.try_cli_json(i, &["peer", "ls", "--json"])? {
            Value::Array(v) => Ok(v),
            other => Err(anyhow!("`peer ls --json` is not an array: {other}")),
        }
    }

    /// `weavers peer ls --json` on host `i`.
    pub fn peers_json(&self, i: usize) -> Value {
        self.try_cli_json(i, &["peer", "ls", "--json"]).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// `weavers status --json` on host `i`.
    pub fn status_json(&self, i: usize) -> Value {
        self.try_cli_json(i, &["status", "--json"]).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// The entry of host `i`'s `peer ls --json` whose name is `name`.
    pub fn peer_entry(&self, i: usize, name: &str) -> Option<Value> {
        self.try_peers(i).ok()?.into_iter().find(|p| p["name"] == name)
    }

    /// `weavers expose CIDR` on host `i`; returns what it printed.
    pub fn expose(&self, i: usize, cidr: &str) -> String {
        self.cli_ok(i, &["expose", cidr])
    }

    /// Waits until host `i` lists each of `names` as `connected`.
    pub fn wait_connected(&self, i: usize, names: &[&str], timeout: Duration) -> bool {
        wait_until(timeout, || {
            self.try_peers(i).is_ok_and(|peers| {
                names.iter().all(|n| peers.iter().any(|p| p["name"] == *n && p["state"] == "connected"))
            })
        })
    }

    /// The overlay address tests give host `i` (`10.40.0.I`, in a /16).
    pub fn overlay(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 40, 0, i as u8)
    }

    /// Starts h1 with no peers and every other host with only `--peer h1`,
    /// each with `args` added; waits (up to 30 s) for the full mesh and
    /// exposes [`Lab::overlay`]`(i)/16` on every host.
    pub fn start_exposed_mesh(&mut self, args: &[&str]) {
        let n = self.len();
        let opts = |o: DaemonOpts| args.iter().fold(o, |o, a| o.arg(a));
        self.start_daemon(1, opts(DaemonOpts::new()));
        for i in 2..=n {
            self.start_daemon(i, opts(DaemonOpts::new().peer(1)));
        }
        let hosts: Vec<usize> = (1..=n).collect();
        self.wait_mesh(&hosts, Duration::from_secs(30));
        for i in 1..=n {
            let cidr = format!("{}/16", Self::overlay(i));
            let out = self.expose(i, &cidr);
            assert!(out.contains(&Self::overlay(i).to_string()), "`weavers expose {cidr}` on h{i} printed {out:?}");
        }
    }

    /// Waits until every host in `hosts` lists all the others as
    /// `connected`; on timeout, panics showing each host's peer list.
    pub fn wait_mesh(&self, hosts: &[usize], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for &i in hosts {
            let others: Vec<String> = hosts.iter().filter(|&&j| j != i).map(|j| format!("h{j}")).collect();
            let others: Vec<&str> = others.iter().map(String::as_str).collect();
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.wait_connected(i, &others, left) {
                panic!("no full mesh of {hosts:?} after {timeout:?}; peer lists:\n{}", self.describe_peers());
            }
        }
    }

    /// Every running host's `peer ls --json`, for failure messages; in a
    /// lab of more than 8 hosts, a summary of the sessions missing instead
    /// (see [`super::MeshSnapshot::summary`]).
    pub fn describe_peers(&self) -> String {
        if self.len() > 8 {
            let running: Vec<usize> = (1..=self.len()).filter(|&i| self.slot(i).daemon.is_some()).collect();
            return format!("{}\n", self.mesh_snapshot(&running).summary(40));
        }
        let mut s = String::new();
        for i in 1..=self.len() {
            if self.slot(i).daemon.is_some() {
                let p = match self.try_cli(i, &["peer", "ls", "--json"]) {
                    Ok(o) => o,
                    Err(e) => format!("{e:#}"),
                };
                s.push_str(&format!("h{i}: {}\n", p.trim()));
            }
        }
        s
    }
}
