//! The systems compared, each set up on a fresh lab: the underlay itself,
//! weavers, wireguard-go, boringtun, kernel VXLAN with head-end replication,
//! and VXLAN over wireguard-go.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use weavers_tests::{netns, DaemonOpts, Lab};

use crate::procs::{self, Proc};
use crate::stopped;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    Underlay,
    Weavers,
    WireguardGo,
    Boringtun,
    Vxlan,
    VxlanWg,
}

impl System {
    pub const ALL: [System; 6] =
        [System::Underlay, System::Weavers, System::WireguardGo, System::Boringtun, System::Vxlan, System::VxlanWg];

    /// Short key (JSON, `--systems`).
    pub fn key(self) -> &'static str {
        match self {
            System::Underlay => "underlay",
            System::Weavers => "weavers",
            System::WireguardGo => "wireguard-go",
            System::Boringtun => "boringtun",
            System::Vxlan => "vxlan",
            System::VxlanWg => "vxlan-wg",
        }
    }

    /// Column title.
    pub fn title(self) -> &'static str {
        match self {
            System::Underlay => "underlay veth",
            System::Weavers => "weavers",
            System::WireguardGo => "wireguard-go",
            System::Boringtun => "boringtun",
            System::Vxlan => "VXLAN HER",
            System::VxlanWg => "VXLAN over wg-go",
        }
    }

    pub fn from_key(k: &str) -> Option<System> {
        System::ALL.into_iter().find(|s| s.key() == k)
    }

    /// Whether it carries multicast between the lab's hosts (the lab's
    /// underlay drops multicast; WireGuard carries none).
    pub fn multicast(self) -> bool {
        matches!(self, System::Weavers | System::Vxlan | System::VxlanWg)
    }
}

/// Tools the bench needs from outside the workspace, and how to set them up.
pub struct Tools {
    /// boringtun-cli, if it could be installed.
    pub boringtun: Option<PathBuf>,
    /// Whether weavers' TAP keeps TCP segmentation offload (`--weavers-tap-tso
    /// off` turns it off with ethtool after the daemons start: the kernel then
    /// hands weaversd MTU-sized frames instead of 64 kB super-frames).
    pub weavers_tap_tso: bool,
}

/// A system set up on a lab. Drop it before the lab (its processes live in
/// the lab's namespaces).
pub struct Setup {
    pub system: System,
    /// Per host (index i-1): the address traffic to host i uses.
    pub addrs: Vec<Ipv4Addr>,
    /// The processes that do the overlay's work (empty for kernel systems).
    pub overlay_pids: Vec<u32>,
    /// The device where frames of the overlay arrive in each host (the
    /// weavers TAP, the VXLAN device), for counting what reaches a host.
    pub overlay_dev: Option<String>,
    procs: Vec<Proc>,
    sockets: Vec<PathBuf>,
}

impl Setup {
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        self.addrs[i - 1]
    }

    /// Stops the overlay processes (by PID) and removes their sockets.
    pub fn teardown(&mut self) {
        for p in self.procs.iter_mut() {
            p.stop();
        }
        self.procs.clear();
        for s in self.sockets.drain(..) {
            let _ = fs::remove_file(s);
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn ip_n(ns: &str, args: &[&str]) -> Result<()> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    netns::ip(&all).map(|_| ())
}

/// Sets `system` up on all hosts of `lab`; `dir` holds its files.
pub fn setup(system: System, lab: &mut Lab, dir: &Path, tools: &Tools) -> Result<Setup> {
    let n = lab.len();
    let mut s = Setup {
        system,
        addrs: Vec::new(),
        overlay_pids: Vec::new(),
        overlay_dev: None,
        procs: Vec::new(),
        sockets: Vec::new(),
    };
    match system {
        System::Underlay => {
            s.addrs = (1..=n).map(|i| lab.ip(i)).collect();
        }
        System::Weavers => {
            // RUST_LOG=info: the daemon's own default (the lab's is debug).
            lab.start_daemon(1, DaemonOpts::new().env("RUST_LOG", "info"));
            for i in 2..=n {
                lab.start_daemon(i, DaemonOpts::new().peer(1).env("RUST_LOG", "info"));
            }
            let all: Vec<usize> = (1..=n).collect();
            lab.wait_mesh(&all, Duration::from_secs(30));
            for i in 1..=n {
                lab.expose(i, &format!("10.40.0.{i}/16"));
                s.overlay_pids.push(lab.daemon_pid(i).context("daemon pid")?);
            }
            s.addrs = (1..=n).map(|i| Ipv4Addr::new(10, 40, 0, i as u8)).collect();
            s.overlay_dev = Some("weavers-tap".into());
            if !tools.weavers_tap_tso {
                for i in 1..=n {
                    procs::run_in(
                        lab.ns(i),
                        "ethtool",
                        &["-K", "weavers-tap", "tso", "off", "gso", "off"],
                        Duration::from_secs(10),
                    )
                    .context("ethtool -K weavers-tap tso off")?;
                }
            }
        }
        System::WireguardGo | System::Boringtun => {
            let imp = if system == System::WireguardGo {
                WgImpl::Go
            } else {
                WgImpl::Boringtun(tools.boringtun.clone().context("boringtun-cli is not installed")?)
            };
            s.addrs = wg_mesh(&mut s, lab, dir, &imp, 41)?;
        }
        System::Vxlan => {
            let locals: Vec<Ipv4Addr> = (1..=n).map(|i| lab.ip(i)).collect();
            let devs = vec!["eth0".to_owned(); n];
            s.addrs = vxlan_mesh(lab, &locals, &devs, None, 42)?;
            s.overlay_dev = Some("vx0".into());
        }
        System::VxlanWg => {
            let locals = wg_mesh(&mut s, lab, dir, &WgImpl::Go, 43)?;
            // wg's MTU 1420 minus VXLAN's 50 bytes of headers.
            let devs: Vec<String> = (1..=n).map(wg_name).collect();
            s.addrs = vxlan_mesh(lab, &locals, &devs, Some(1370), 44)?;
            s.overlay_dev = Some("vx0".into());
        }
    }
    // Warm up: every host reaches host 1 (ARP, handshakes, MAC learning).
    for i in 2..=n {
        if stopped() {
            bail!("interrupted");
        }
        if !lab.wait_ping(i, s.addr(1), Duration::from_secs(20)) {
            bail!("{}: h{i} cannot ping h1's address {}", system.key(), s.addr(1));
        }
        if !lab.wait_ping(1, s.addr(i), Duration::from_secs(20)) {
            bail!("{}: h1 cannot ping h{i}'s address {}", system.key(), s.addr(i));
        }
    }
    Ok(s)
}

enum WgImpl {
    Go,
    Boringtun(PathBuf),
}

/// The WireGuard interface name of host `i`. The userspace implementations
/// keep their control socket at /var/run/wireguard/NAME.sock, a path shared
/// by all namespaces, so the name carries the bench's PID.
pub fn wg_name(i: usize) -> String {
    format!("wg{}h{i}", std::process::id() % 1_000_000)
}

const WG_PORT: u16 = 51820;

/// A full WireGuard mesh over the underlay: host i gets 10.<net>.0.i/24 on
/// its interface. Returns those addresses.
fn wg_mesh(s: &mut Setup, lab: &Lab, dir: &Path, imp: &WgImpl, net: u8) -> Result<Vec<Ipv4Addr>> {
    let n = lab.len();
    let mut keys = Vec::new();
    for i in 1..=n {
        let private = procs::run_local("wg", &["genkey"], None)?.trim().to_owned();
        let public = procs::run_local("wg", &["pubkey"], Some(&format!("{private}\n")))?.trim().to_owned();
        let file = dir.join(format!("wg-h{i}.key"));
        fs::write(&file, format!("{private}\n"))?;
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&file, fs::Permissions::from_mode(0o600))?;
        }
        keys.push((file, public));
    }
    for i in 1..=n {
        let name = wg_name(i);
        let ns = lab.ns(i).to_owned();
        let sock = PathBuf::from(format!("/var/run/wireguard/{name}.sock"));
        if sock.exists() {
            bail!("{} exists already: another wireguard process uses the name {name}", sock.display());
        }
        let p = match imp {
            WgImpl::Go => procs::spawn(
                &ns,
                dir,
                &format!("wireguard-go-h{i}"),
                "wireguard-go",
                &["-f", &name],
                &[("WG_PROCESS_FOREGROUND", "1"), ("LOG_LEVEL", "error")],
            )?,
            WgImpl::Boringtun(bin) => procs::spawn(
                &ns,
                dir,
                &format!("boringtun-h{i}"),
                &bin.display().to_string(),
                &["--foreground", "--disable-drop-privileges", "--verbosity", "error", &name],
                &[],
            )?,
        };
        s.overlay_pids.push(p.pid());
        s.procs.push(p);
        s.sockets.push(sock.clone());
        let ok = weavers_tests::wait_until(Duration::from_secs(10), || {
            sock.exists() && netns::ip(&["-n", &ns, "link", "show", &name]).is_ok()
        });
        if !ok {
            let p = s.procs.last_mut().unwrap();
            let exited = p.exited();
            bail!("{} did not make {name} in {ns} ({exited:?}): {}{}", p.name, p.stderr(), p.stdout());
        }
        let mut args: Vec<String> = vec![
            "set".into(),
            name.clone(),
            "listen-port".into(),
            WG_PORT.to_string(),
            "private-key".into(),
            keys[i - 1].0.display().to_string(),
        ];
        for j in (1..=n).filter(|&j| j != i) {
            args.extend([
                "peer".into(),
                keys[j - 1].1.clone(),
                "allowed-ips".into(),
                format!("10.{net}.0.{j}/32"),
                "endpoint".into(),
                format!("{}:{WG_PORT}", lab.ip(j)),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        procs::run_in(&ns, "wg", &args, Duration::from_secs(10))?;
        ip_n(&ns, &["addr", "add", &format!("10.{net}.0.{i}/24"), "dev", &name])?;
        ip_n(&ns, &["link", "set", &name, "up"])?;
    }
    Ok((1..=n).map(|i| Ipv4Addr::new(10, net, 0, i as u8)).collect())
}

/// Kernel VXLAN with head-end replication: in each host a VXLAN device
/// (VNI 42) whose all-zeros FDB entries list every other host's `locals`
/// address, a bridge `brvx` (snooping off: it floods, as VXLAN HER does)
/// holding it, 10.<net>.0.i/24 on the bridge and the multicast route
/// through it. `devs[i-1]` is host i's underlying device.
fn vxlan_mesh(lab: &Lab, locals: &[Ipv4Addr], devs: &[String], mtu: Option<u32>, net: u8) -> Result<Vec<Ipv4Addr>> {
    let n = lab.len();
    for i in 1..=n {
        let ns = lab.ns(i);
        let dev = &devs[i - 1];
        let local = locals[i - 1].to_string();
        let mtu_s = mtu.map(|m| m.to_string());
        let mut add = vec!["link", "add", "vx0"];
        if let Some(m) = &mtu_s {
            add.extend(["mtu", m]);
        }
        add.extend(["type", "vxlan", "id", "42", "local", &local, "dev", dev, "dstport", "4789"]);
        ip_n(ns, &add)?;
        ip_n(ns, &["link", "add", "brvx", "type", "bridge", "mcast_snooping", "0"])?;
        ip_n(ns, &["link", "set", "vx0", "master", "brvx"])?;
        ip_n(ns, &["link", "set", "vx0", "up"])?;
        ip_n(ns, &["link", "set", "brvx", "up"])?;
        for j in (1..=n).filter(|&j| j != i) {
            let dst = locals[j - 1].to_string();
            netns::run(
                "ip",
                &["netns", "exec", ns, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", &dst],
            )?;
        }
        ip_n(ns, &["addr", "add", &format!("10.{net}.0.{i}/24"), "dev", "brvx"])?;
        ip_n(ns, &["route", "add", "224.0.0.0/4", "dev", "brvx"])?;
    }
    Ok((1..=n).map(|i| Ipv4Addr::new(10, net, 0, i as u8)).collect())
}
