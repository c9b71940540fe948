//! One host of a lab: its name and addresses, programs run in its namespace, its links.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Output, Stdio};

use super::Host;
use crate::netns;

impl Host<'_> {
    /// Host number (1-based).
    pub fn index(&self) -> usize {
        self.i
    }

    /// The host's name, `hI` (also its daemon's default `--name`).
    pub fn name(&self) -> String {
        format!("h{}", self.i)
    }

    /// Namespace name.
    pub fn ns(&self) -> &str {
        self.lab.ns(self.i)
    }

    /// Underlay address.
    pub fn ip(&self) -> Ipv4Addr {
        self.lab.ip(self.i)
    }

    /// Runs a program inside the namespace and returns its output.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        netns::exec_in(self.ns(), program, args)
            .unwrap_or_else(|e| panic!("ip netns exec {} {program}: {e}", self.ns()))
    }

    /// Starts a program inside the namespace (stdout/stderr piped). The
    /// caller owns the child: kill it by its PID when done.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", self.ns(), program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program} in {}: {e}", self.ns()))
    }

    /// Runs a closure on a thread inside the namespace.
    pub fn run<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        netns::run_in(self.ns(), f)
    }

    /// One ping (1 s wait); true if answered.
    pub fn ping(&self, addr: Ipv4Addr) -> bool {
        self.exec("ping", &["-n", "-q", "-c", "1", "-W", "1", &addr.to_string()]).status.success()
    }

    /// `ip -d -o link` lines of the namespace.
    pub fn links(&self) -> Vec<String> {
        netns::ip(&["-n", self.ns(), "-d", "-o", "link", "show"])
            .unwrap_or_else(|e| panic!("{e:#}"))
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Names of the bridges in the namespace.
    pub fn bridges(&self) -> Vec<String> {
        link_names(&netns::ip(&["-n", self.ns(), "-o", "link", "show", "type", "bridge"]).unwrap_or_default())
    }

    /// Names of the TUN/TAP devices in the namespace.
    pub fn taps(&self) -> Vec<String> {
        link_names(&netns::ip(&["-n", self.ns(), "-o", "link", "show", "type", "tun"]).unwrap_or_default())
    }

    /// `ip -o -4 addr show dev DEV` in the namespace (empty if no such device).
    pub fn addrs(&self, dev: &str) -> String {
        netns::ip(&["-n", self.ns(), "-o", "addr", "show", "dev", dev]).unwrap_or_default()
    }
}

/// Interface names out of `ip -o link` lines (`3: name@peer: <...`).
fn link_names(out: &str) -> Vec<String> {
    out.lines().filter_map(|l| l.split(": ").nth(1)).map(|n| n.split('@').next().unwrap_or(n).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::link_names;

    #[test]
    fn link_names_strip_peers() {
        let out = "2: eth0@if3: <BROADCAST> mtu 1500\n3: weavers: <UP> mtu 1420\n";
        assert_eq!(link_names(out), vec!["eth0", "weavers"]);
    }
}
