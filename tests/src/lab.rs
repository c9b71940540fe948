//! The lab: an underlay namespace with a bridge, N host namespaces wired to
//! it by veth pairs, and weaversd daemons run inside the hosts.
//!
//! ```text
//!   wv<pid>x<n>_h1          wv<pid>x<n>_u                wv<pid>x<n>_h2
//!   eth0 10.99.0.1 ---- v1 --+-- br0 --+-- v2 ---- eth0 10.99.0.2     ...
//!                         (nftables, bridge family: drops multicast
//!                          frames; blocks host pairs and UDP ports; can
//!                          drop IP fragments)
//! ```
//!
//! Hosts are numbered from 1, as their names (`h1`, `h2`, ...), their
//! underlay addresses (`10.99.0.1`, ...) and the MAC addresses of their
//! `eth0` (`02:99:00:00:00:01`, ...). Everything the lab made is removed
//! when it is dropped, also when a test panics; on a panic the daemon logs
//! are printed and the lab's files are kept.
//!
//! Large labs (up to 250 hosts) are set up, started and removed with a few
//! threads at a time (see [`crate::par`]). The kernel's neighbour (ARP)
//! table is one for all namespaces of the machine, with one limit
//! (`net.ipv4.neigh.default.gc_thresh3`, often 1024, settable only in the
//! machine's own namespace): a full mesh of N hosts needs N*(N-1) entries,
//! over that limit from about 33 hosts, where real hosts would each have a
//! table of their own. [`LabBuilder::static_neighbours`] gives each host
//! permanent entries for all the others, which that limit does not count.

use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::Result;

use crate::netns;
use crate::wait_until;

/// The UDP port weaversd listens on in the lab.
pub const WEAVERS_PORT: u16 = 6783;
/// The nftables table the lab uses in the underlay namespace.
const NFT_TABLE: &str = "wvlab";

mod api;
mod build;
mod cli;
mod daemons;
mod delay;
mod host;
mod mesh;
mod process;
mod stats;
mod underlay;

pub use build::LabBuilder;
pub use daemons::{DaemonOpts, Stopped};
pub use delay::DelayLine;
pub use mesh::{HostView, MeshSnapshot, POLL_TIMEOUT, POLL_WORKERS};
pub use process::{output_with_input, output_with_timeout};
use process::{remove_weavers_env, terminate_all};
pub use stats::{proc_cpu_seconds, proc_rss_bytes, PortBytes};

struct HostSlot {
    ns: String,
    ip: Ipv4Addr,
    daemon: Option<Child>,
    opts: Option<DaemonOpts>,
    starts: u32,
}

/// A running lab; see the module docs.
pub struct Lab {
    prefix: String,
    underlay: String,
    hosts: Vec<HostSlot>,
    dir: PathBuf,
    password: String,
    password_file: PathBuf,
    made: Vec<String>,
    bins_checked: bool,
}

/// One host of a lab.
pub struct Host<'a> {
    lab: &'a Lab,
    i: usize,
}

impl Lab {
    // ----- topology -----

    /// Number of hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether the lab has no hosts (never: a lab has at least one).
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Host `i` (1-based).
    pub fn host(&self, i: usize) -> Host<'_> {
        self.slot(i);
        Host { lab: self, i }
    }

    fn slot(&self, i: usize) -> &HostSlot {
        assert!(i >= 1 && i <= self.hosts.len(), "lab hosts are numbered 1..={}, not {i}", self.hosts.len());
        &self.hosts[i - 1]
    }

    fn slot_mut(&mut self, i: usize) -> &mut HostSlot {
        self.slot(i);
        &mut self.hosts[i - 1]
    }

    /// The namespace name of host `i`.
    pub fn ns(&self, i: usize) -> &str {
        &self.slot(i).ns
    }

    /// The underlay namespace (bridge `br0`, ports `v1`..`vN`).
    pub fn underlay_ns(&self) -> &str {
        &self.underlay
    }

    /// The underlay address of host `i` (`10.99.0.i`).
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        self.slot(i).ip
    }

    /// The prefix of every namespace name of this lab.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The lab's directory (state dirs, sockets, logs, password).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lab's shared network password.
    pub fn password(&self) -> &str {
        &self.password
    }

    // ----- traffic -----

    /// Pings `addr` from host `i` until one reply or `timeout`.
    pub fn wait_ping(&self, i: usize, addr: Ipv4Addr, timeout: Duration) -> bool {
        let h = self.host(i);
        wait_until(timeout, || h.ping(addr))
    }

    /// TCP transfer of `data` from host `i` to `dst` served in host `j`.
    pub fn tcp_transfer(&self, i: usize, j: usize, dst: SocketAddrV4, data: &[u8]) -> Result<()> {
        crate::probe::tcp_transfer(self.ns(i), self.ns(j), dst, data, Duration::from_secs(30))
    }

    /// UDP echo of `payload` from host `i` to `dst` served in host `j`.
    pub fn udp_echo(&self, i: usize, j: usize, dst: SocketAddrV4, payload: &[u8]) -> Result<u32> {
        crate::probe::udp_echo(self.ns(i), self.ns(j), dst, payload, Duration::from_secs(15))
    }

    /// A UDP receiver in host `i` on `port`, joined to `group` on the
    /// interface with address `iface` when given.
    pub fn udp_recv(
        &self,
        i: usize,
        group: Option<Ipv4Addr>,
        port: u16,
        iface: Option<Ipv4Addr>,
    ) -> crate::probe::Receiver {
        crate::probe::udp_listen(self.ns(i), port, group, iface)
            .unwrap_or_else(|e| panic!("UDP receiver on h{i}: {e:#}"))
    }

    /// Sends UDP datagrams from host `i` (see [`crate::probe::udp_send`]).
    pub fn udp_send(&self, i: usize, dst: SocketAddrV4, iface: Option<Ipv4Addr>, payloads: &[Vec<u8>]) {
        crate::probe::udp_send(self.ns(i), None, dst, iface, payloads, Duration::from_millis(2))
            .unwrap_or_else(|e| panic!("UDP send from h{i}: {e:#}"))
    }

    fn dump_for_failure(&self) {
        eprintln!("\n===== lab {} failed; files kept in {}", self.prefix, self.dir.display());
        // A large lab's logs are too many to print: the first two hosts and
        // the last; the others are in the lab's directory.
        let n = self.len();
        let shown: Vec<usize> = if n > 8 { vec![1, 2, n] } else { (1..=n).collect() };
        if n > 8 {
            eprintln!("(logs of h1, h2 and h{n} only; all are in {})", self.dir.display());
        }
        for i in shown {
            if self.log_path(i).exists() {
                eprintln!("----- h{i} weaversd log (last 80 lines of {}):", self.log_path(i).display());
                eprintln!("{}", self.log_tail(i, 80));
            }
            if let Ok(links) = netns::ip(&["-n", self.ns(i), "-o", "link"]) {
                eprintln!("----- h{i} links:\n{}", links.trim_end());
            }
        }
        eprintln!("===== end of lab {}", self.prefix);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            // Peer lists while the daemons still run.
            let peers = self.describe_peers();
            if !peers.is_empty() {
                eprintln!("----- peer lists at failure:\n{peers}");
            }
        }
        let children: Vec<Child> = self.hosts.iter_mut().filter_map(|slot| slot.daemon.take()).collect();
        terminate_all(children, Duration::from_secs(5));
        if failed {
            self.dump_for_failure();
        }
        // Hosts first, the underlay (made first) last.
        let (underlay, hosts) = self.made.split_first().map_or((None, &[][..]), |(u, h)| (Some(u), h));
        for r in crate::par::map(hosts, crate::par::WORKERS, |ns| netns::del(ns)) {
            if let Err(e) = r {
                eprintln!("lab cleanup: {e:#}");
            }
        }
        if let Some(Err(e)) = underlay.map(|u| netns::del(u)) {
            eprintln!("lab cleanup: {e:#}");
        }
        // Anything else carrying this lab's own prefix (nothing, normally).
        if let Ok(all) = netns::list() {
            for ns in all.iter().filter(|n| n.starts_with(&self.prefix)) {
                let _ = netns::del(ns);
            }
        }
        if !failed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
}
