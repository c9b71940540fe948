//! Containers added through the CNI plugin, as a container runtime adds
//! them: a network namespace made for the container, handed to
//! `weavers-cni` as `CNI_NETNS=/var/run/netns/NAME`, with the plugin run in
//! the lab host's namespace (where the daemon's bridge is) and pointed at
//! that host's daemon by `"socket"` in the network configuration.
//!
//! Container namespaces are named `<lab prefix>h<host>k<name>`, so the lab
//! removes them with everything else when it is dropped.

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::{bins, netns, random_hex, Lab};

/// How long one plugin run may take (an ADD may wait for the mesh to share
/// out the range, which the daemon bounds at 15 s).
pub const CNI_TIMEOUT: Duration = Duration::from_secs(60);

/// A container namespace made for the plugin.
#[derive(Clone, Debug)]
pub struct CniContainer {
    /// The lab host it lives on.
    pub host: usize,
    /// Its network namespace's name.
    pub ns: String,
    /// `CNI_CONTAINERID`: 64 hex digits, as runtimes make them.
    pub id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
}

impl CniContainer {
    /// `CNI_NETNS`.
    pub fn netns_path(&self) -> String {
        format!("/var/run/netns/{}", self.ns)
    }

    /// The attachment key (`CONTAINERID/IFNAME`), the daemon's IPAM owner.
    pub fn owner(&self) -> String {
        format!("{}/{}", self.id, self.ifname)
    }

    /// One ping from the container (1 s wait); true if answered.
    pub fn ping(&self, addr: Ipv4Addr) -> bool {
        netns::exec_in(&self.ns, "ping", &["-n", "-q", "-c", "1", "-W", "1", &addr.to_string()])
            .is_ok_and(|o| o.status.success())
    }

    /// `ip -o addr show dev IFNAME` in the container (empty if none).
    pub fn addrs(&self) -> String {
        netns::ip(&["-n", &self.ns, "-o", "addr", "show", "dev", &self.ifname]).unwrap_or_default()
    }
}

/// Makes a container namespace `name` (1-8 letters or digits) for host
/// `host`, with its loopback up, a random container ID and `eth0`.
pub fn new_container(lab: &Lab, host: usize, name: &str) -> Result<CniContainer> {
    if name.is_empty() || name.len() > 8 || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        bail!("container name {name:?}: use 1-8 letters or digits");
    }
    lab.ns(host); // checks the host number
    let ns = format!("{}h{host}k{name}", lab.prefix());
    netns::add(&ns).with_context(|| format!("create namespace {ns}"))?;
    Ok(CniContainer { host, ns, id: random_hex(32), ifname: "eth0".into() })
}

/// The network configuration for host `host`'s daemon, with `extra`
/// fields added (or replacing the defaults).
pub fn cni_config(lab: &Lab, host: usize, extra: Value) -> String {
    let mut c = json!({
        "cniVersion": "1.1.0",
        "name": "weavers",
        "type": "weavers-cni",
        "socket": lab.socket(host).display().to_string(),
    });
    if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
        c.extend(e);
    }
    c.to_string()
}

/// Runs `weavers-cni` in host `host`'s namespace with exactly `env` (and a
/// PATH) and `stdin`, within [`CNI_TIMEOUT`].
pub fn run_cni(lab: &Lab, host: usize, env: &[(&str, &str)], stdin: &str) -> Result<Output> {
    let bin = bins::weavers_cni();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", lab.ns(host)]).arg(&bin).env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    crate::lab::output_with_input(cmd, Some(stdin.as_bytes()), CNI_TIMEOUT)
        .with_context(|| format!("running {}", bin.display()))
}

/// Runs `CNI_COMMAND=command` for container `c` with `conf`.
pub fn cni(lab: &Lab, c: &CniContainer, command: &str, conf: &str) -> Result<Output> {
    let netns = c.netns_path();
    run_cni(
        lab,
        c.host,
        &[
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", &c.id),
            ("CNI_NETNS", &netns),
            ("CNI_IFNAME", &c.ifname),
            ("CNI_PATH", "/opt/cni/bin"),
        ],
        conf,
    )
}

/// Describes a plugin run for failure messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit {}; stdout: {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// ADD for `c` on its host with the default configuration (plus `extra`);
/// the result JSON.
pub fn cni_add(lab: &Lab, c: &CniContainer, extra: Value) -> Result<Value> {
    let out = cni(lab, c, "ADD", &cni_config(lab, c.host, extra))?;
    if !out.status.success() {
        bail!("ADD of {} on h{} failed: {}", c.ns, c.host, describe(&out));
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("ADD printed no JSON: {}", describe(&out)))
}

/// A command that must succeed and print nothing (DEL, CHECK, GC, STATUS).
pub fn expect_quiet_success(what: &str, out: &Output) -> Result<()> {
    if !out.status.success() || !out.stdout.is_empty() {
        bail!("{what}: expected success and no output, got {}", describe(out));
    }
    Ok(())
}

/// The error object of a failed run.
pub fn error_json(out: &Output) -> Result<Value> {
    if out.status.success() {
        bail!("expected a failure, got {}", describe(out));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| anyhow!("error output is not JSON ({e}): {}", describe(out)))
}

/// The container address of an ADD result (without the prefix).
pub fn result_addr(result: &Value) -> Result<Ipv4Addr> {
    let cidr = result["ips"][0]["address"].as_str().ok_or_else(|| anyhow!("no ips[0].address in {result}"))?;
    let addr = cidr.split('/').next().unwrap_or(cidr);
    addr.parse().with_context(|| format!("ips[0].address {cidr:?}"))
}
