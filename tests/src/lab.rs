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

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::netns;
use crate::{bins, random_hex, wait_until};

/// The UDP port weaversd listens on in the lab.
pub const WEAVERS_PORT: u16 = 6783;
/// The nftables table the lab uses in the underlay namespace.
const NFT_TABLE: &str = "wvlab";

mod api;
mod cli;
mod mesh;
mod stats;
mod underlay;

pub use mesh::{HostView, MeshSnapshot, POLL_TIMEOUT, POLL_WORKERS};
pub use stats::{proc_cpu_seconds, proc_rss_bytes, PortBytes};

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Options for a lab; see [`Lab::builder`].
#[derive(Clone, Debug)]
pub struct LabBuilder {
    hosts: usize,
    drop_multicast: bool,
    drop_fragments: bool,
    ipv6: bool,
    static_neighbours: bool,
}

impl LabBuilder {
    /// Whether the underlay bridge drops multicast frames (default: yes, as
    /// a cloud does). Can be changed later with
    /// [`Lab::set_underlay_multicast_drop`].
    pub fn drop_multicast(mut self, on: bool) -> Self {
        self.drop_multicast = on;
        self
    }

    /// Whether the underlay drops IPv4 fragments (default: yes, as many
    /// clouds and middleboxes do: weavers must never need them). Can be
    /// changed later with [`Lab::set_underlay_fragment_drop`].
    pub fn drop_fragments(mut self, on: bool) -> Self {
        self.drop_fragments = on;
        self
    }

    /// Whether IPv6 is enabled in the host namespaces (default: yes). With
    /// it off, the overlay carries no IPv6 chatter (DAD, MLD, RS), which
    /// makes frame counters quiet.
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }

    /// Whether each host gets permanent neighbour entries (`ip neigh ...
    /// nud permanent`) for every other host's underlay address (default:
    /// no, hosts use ARP). Needed past about 30 hosts, where the machine's
    /// one neighbour table would overflow (see the module docs); it also
    /// keeps ARP off the underlay, so its byte counters show only what the
    /// daemons send.
    pub fn static_neighbours(mut self, on: bool) -> Self {
        self.static_neighbours = on;
        self
    }

    /// Builds the namespaces. On error, whatever was made is removed.
    pub fn build(self) -> Result<Lab> {
        if self.hosts == 0 || self.hosts > 250 {
            bail!("a lab has 1 to 250 hosts, not {}", self.hosts);
        }
        let n = LAB_COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let prefix = format!("wv{pid}x{n}_");
        let dir = std::env::temp_dir().join(format!("weavers-lab-{pid}-{n}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let password = format!("lab-{}", random_hex(16));
        let password_file = dir.join("password");
        fs::write(&password_file, format!("{password}\n"))?;
        restrict(&password_file);
        let mut lab = Lab {
            underlay: format!("{prefix}u"),
            prefix,
            hosts: Vec::new(),
            dir,
            password,
            password_file,
            made: Vec::new(),
            bins_checked: false,
        };
        // On error, `lab` is dropped here, which removes what was made.
        lab.setup(&self)?;
        Ok(lab)
    }
}

/// A daemon's start options; see [`Lab::start_daemon`].
#[derive(Clone, Debug, Default)]
pub struct DaemonOpts {
    /// Lab hosts to peer with at start (`--peer 10.99.0.X`).
    pub peers: Vec<usize>,
    /// Further `--peer` values, as given.
    pub peer_addrs: Vec<String>,
    /// A password of its own instead of the lab's (in its own file).
    pub password: Option<String>,
    /// Pass the password as `WEAVERS_PASSWORD` instead of `--password-file`.
    pub password_env: bool,
    /// `--name`; default `hI`.
    pub name: Option<String>,
    /// `--listen`; default `0.0.0.0:6783`.
    pub listen: Option<String>,
    /// Extra arguments at the end.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

impl DaemonOpts {
    pub fn new() -> Self {
        Self::default()
    }
    /// Peer with lab host `i` at start.
    pub fn peer(mut self, i: usize) -> Self {
        self.peers.push(i);
        self
    }
    /// Peer with lab hosts `ids` at start.
    pub fn peers(mut self, ids: &[usize]) -> Self {
        self.peers.extend_from_slice(ids);
        self
    }
    /// Use this password instead of the lab's.
    pub fn password(mut self, pw: &str) -> Self {
        self.password = Some(pw.to_owned());
        self
    }
    /// Add an argument.
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_owned());
        self
    }
    /// Add an environment variable.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }
}

/// How a daemon ended after [`Lab::stop_daemon`].
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    /// It had to be killed with SIGKILL after the timeout.
    pub killed: bool,
    /// Time from SIGTERM to exit.
    pub took: Duration,
}

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
    /// A lab with `n` hosts and default options.
    pub fn new(n: usize) -> Result<Lab> {
        Self::builder(n).build()
    }

    /// A builder for a lab with `n` hosts.
    pub fn builder(n: usize) -> LabBuilder {
        LabBuilder { hosts: n, drop_multicast: true, drop_fragments: true, ipv6: true, static_neighbours: false }
    }

    fn setup(&mut self, opts: &LabBuilder) -> Result<()> {
        let u = self.underlay.clone();
        netns::add(&u).with_context(|| format!("create namespace {u}"))?;
        self.made.push(u.clone());
        netns::ip(&["-n", &u, "link", "add", "br0", "type", "bridge"])?;
        netns::ip(&["-n", &u, "link", "set", "br0", "up"])?;
        netns::nft_script(
            &u,
            &format!(
                "table bridge {NFT_TABLE} {{
                   set blocked_pairs {{ type ipv4_addr . ipv4_addr; }}
                   set blocked_udp {{ type inet_service; }}
                   chain mcast {{ type filter hook forward priority -10; policy accept; }}
                   chain nofrag {{ type filter hook forward priority -5; policy accept; }}
                   chain filter {{ type filter hook forward priority 0; policy accept;
                     ip saddr . ip daddr @blocked_pairs drop
                     udp dport @blocked_udp drop
                     udp sport @blocked_udp drop
                   }}
                 }}"
            ),
        )?;
        self.set_underlay_multicast_drop(opts.drop_multicast)?;
        self.set_underlay_fragment_drop(opts.drop_fragments)?;
        let ids: Vec<usize> = (1..=opts.hosts).collect();
        let made = std::sync::Mutex::new(Vec::new());
        let results = crate::par::map(&ids, crate::par::WORKERS, |&i| setup_host(&self.prefix, &u, i, opts, &made));
        // Everything made is recorded before any error is passed on, so that
        // dropping the lab removes it.
        let mut made = made.into_inner().unwrap_or_else(|p| p.into_inner());
        made.sort_by_key(|(i, _)| *i);
        self.made.extend(made.into_iter().map(|(_, ns)| ns));
        for (k, r) in results.into_iter().enumerate() {
            let ns = r?;
            self.hosts.push(HostSlot { ns, ip: host_ip(k + 1), daemon: None, opts: None, starts: 0 });
        }
        if opts.static_neighbours {
            let hosts: Vec<(usize, String)> =
                self.hosts.iter().enumerate().map(|(k, h)| (k + 1, h.ns.clone())).collect();
            let done = crate::par::map(&hosts, crate::par::WORKERS, |(i, ns)| {
                let mut lines = String::new();
                for j in (1..=opts.hosts).filter(|j| j != i) {
                    lines.push_str(&format!(
                        "neigh replace {} lladdr {} dev eth0 nud permanent\n",
                        host_ip(j),
                        host_mac(j)
                    ));
                }
                netns::ip_batch(Some(ns), &lines).with_context(|| format!("neighbour entries of h{i}"))
            });
            done.into_iter().collect::<Result<Vec<()>>>()?;
        }
        Ok(())
    }

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

    // ----- daemons -----

    fn check_bins(&mut self) {
        if !self.bins_checked {
            bins::weaversd();
            bins::weavers();
            self.bins_checked = true;
        }
    }

    /// The state dir of host `i`'s daemon (`<lab dir>/hI`).
    pub fn state_dir(&self, i: usize) -> PathBuf {
        self.slot(i);
        self.dir.join(format!("h{i}"))
    }

    /// The control socket of host `i`'s daemon.
    pub fn socket(&self, i: usize) -> PathBuf {
        self.state_dir(i).join("weavers.sock")
    }

    /// The log file of host `i`'s daemon (all its runs, appended).
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.slot(i);
        self.dir.join(format!("h{i}.log"))
    }

    /// The whole log of host `i`'s daemon.
    pub fn log(&self, i: usize) -> String {
        fs::read(self.log_path(i)).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// The last `n` lines of host `i`'s daemon log.
    pub fn log_tail(&self, i: usize, n: usize) -> String {
        let log = self.log(i);
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Starts weaversd in host `i`'s namespace with `opts` and waits (20 s
    /// at most) until its control socket accepts connections. Panics with
    /// the log if it exits or never listens.
    ///
    /// The daemon gets `PR_SET_PDEATHSIG` (SIGKILL) so that it cannot outlive
    /// a killed test process; the kernel ties that to the *thread* that
    /// started it, so start daemons from the test's own thread.
    pub fn start_daemon(&mut self, i: usize, opts: DaemonOpts) {
        assert!(self.slot(i).daemon.is_none(), "h{i} already runs a daemon; stop it first");
        self.slot_mut(i).opts = Some(opts);
        self.spawn_daemon(i);
        self.wait_listening(&[i], Duration::from_secs(20));
    }

    /// Starts many daemons, `wave` at a time: each wave is spawned at once,
    /// then waited for (60 s at most) until every control socket of the
    /// wave accepts connections, before the next wave. Panics as
    /// [`Lab::start_daemon`] does. Returns the moment the last daemon was
    /// spawned. Call it from the test's own thread (see
    /// [`Lab::start_daemon`]).
    pub fn start_daemons(&mut self, starts: Vec<(usize, DaemonOpts)>, wave: usize) -> Instant {
        let mut last = Instant::now();
        for chunk in starts.chunks(wave.max(1)) {
            for (i, opts) in chunk {
                assert!(self.slot(*i).daemon.is_none(), "h{i} already runs a daemon; stop it first");
                self.slot_mut(*i).opts = Some(opts.clone());
                self.spawn_daemon(*i);
                last = Instant::now();
            }
            let ids: Vec<usize> = chunk.iter().map(|(i, _)| *i).collect();
            self.wait_listening(&ids, Duration::from_secs(60));
        }
        last
    }

    /// Starts host `i`'s daemon again with the options of its last start,
    /// on the same state dir.
    pub fn restart(&mut self, i: usize) {
        assert!(self.slot(i).daemon.is_none(), "h{i} still runs a daemon; stop or kill it first");
        assert!(self.slot(i).opts.is_some(), "h{i} was never started");
        self.spawn_daemon(i);
        self.wait_listening(&[i], Duration::from_secs(20));
    }

    fn spawn_daemon(&mut self, i: usize) {
        self.check_bins();
        let opts = self.slot(i).opts.clone().expect("daemon options");
        let state = self.state_dir(i);
        fs::create_dir_all(&state).expect("create state dir");
        let sock = self.socket(i);
        let mut args: Vec<String> = vec![
            "--state-dir".into(),
            state.display().to_string(),
            "--socket".into(),
            sock.display().to_string(),
            "--listen".into(),
            opts.listen.clone().unwrap_or_else(|| format!("0.0.0.0:{WEAVERS_PORT}")),
            "--name".into(),
            opts.name.clone().unwrap_or_else(|| format!("h{i}")),
        ];
        let password = opts.password.clone().unwrap_or_else(|| self.password.clone());
        if !opts.password_env {
            let file = if opts.password.is_some() {
                let f = self.dir.join(format!("h{i}.password"));
                fs::write(&f, format!("{password}\n")).expect("write password file");
                restrict(&f);
                f
            } else {
                self.password_file.clone()
            };
            args.push("--password-file".into());
            args.push(file.display().to_string());
        }
        for &p in &opts.peers {
            args.push("--peer".into());
            args.push(self.ip(p).to_string());
        }
        for p in &opts.peer_addrs {
            args.push("--peer".into());
            args.push(p.clone());
        }
        args.extend(opts.args.iter().cloned());

        let log_path = self.log_path(i);
        let mut log = OpenOptions::new().create(true).append(true).open(&log_path).expect("open daemon log");
        let slot = self.slot_mut(i);
        slot.starts += 1;
        let _ = writeln!(
            log,
            "===== lab: start #{} of weaversd in {}: {} {}",
            slot.starts,
            slot.ns,
            bins::weaversd().display(),
            args.join(" ")
        );
        let ns = slot.ns.clone();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns])
            .arg(bins::weaversd())
            .args(&args)
            .env("RUST_LOG", "debug")
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        remove_weavers_env(&mut cmd);
        if opts.password_env {
            cmd.env("WEAVERS_PASSWORD", &password);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        // If the test process dies without running Drop, take the daemon
        // with it. (`ip netns exec` execs the daemon in the same process.)
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn `ip netns exec ... weaversd`");
        slot.daemon = Some(child);
    }

    /// Waits until the control socket of every daemon of `hosts` accepts
    /// connections; panics with the log of one that exits or never listens
    /// within `timeout`.
    fn wait_listening(&mut self, hosts: &[usize], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut pending: Vec<usize> = hosts.to_vec();
        loop {
            pending.retain(|&i| std::os::unix::net::UnixStream::connect(self.socket(i)).is_err());
            if pending.is_empty() {
                return;
            }
            for &i in &pending {
                let slot = self.slot_mut(i);
                if let Some(status) = slot.daemon.as_mut().expect("a spawned daemon").try_wait().expect("try_wait") {
                    slot.daemon = None;
                    panic!("weaversd on h{i} exited at start ({status}); log:\n{}", self.log_tail(i, 60));
                }
            }
            if Instant::now() > deadline {
                let i = pending[0];
                panic!(
                    "weaversd on h{i} does not listen on {} after {timeout:?}; log:\n{}",
                    self.socket(i).display(),
                    self.log_tail(i, 60)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The PID of host `i`'s daemon, if one was started and not stopped.
    pub fn daemon_pid(&self, i: usize) -> Option<u32> {
        self.slot(i).daemon.as_ref().map(Child::id)
    }

    /// Whether host `i`'s daemon is running. If it exited, it is reaped and
    /// forgotten (its exit status is printed).
    pub fn daemon_running(&mut self, i: usize) -> bool {
        let slot = self.slot_mut(i);
        match slot.daemon.as_mut() {
            None => false,
            Some(c) => match c.try_wait().expect("try_wait") {
                None => true,
                Some(st) => {
                    eprintln!("weaversd on h{i} exited by itself: {st}");
                    slot.daemon = None;
                    false
                }
            },
        }
    }

    /// Sends SIGTERM to host `i`'s daemon and waits up to `timeout` for it to
    /// exit; past that, SIGKILL. Panics if no daemon runs there.
    pub fn stop_daemon(&mut self, i: usize, timeout: Duration) -> Stopped {
        let child = self.slot_mut(i).daemon.take().unwrap_or_else(|| panic!("no daemon runs on h{i}"));
        terminate(child, timeout)
    }

    /// SIGKILLs host `i`'s daemon and reaps it.
    pub fn kill9(&mut self, i: usize) {
        let mut child = self.slot_mut(i).daemon.take().unwrap_or_else(|| panic!("no daemon runs on h{i}"));
        signal(&child, libc::SIGKILL);
        let _ = child.wait();
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

/// The underlay address of host `i`.
fn host_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 0, i as u8)
}

/// The MAC address of host `i`'s `eth0` (locally administered).
fn host_mac(i: usize) -> String {
    format!("02:99:00:00:{:02x}:{:02x}", i >> 8, i & 0xff)
}

/// Makes host `i`'s namespace and its veth to the underlay bridge; records
/// the namespace in `made` as soon as it exists. Returns its name.
fn setup_host(
    prefix: &str,
    underlay: &str,
    i: usize,
    opts: &LabBuilder,
    made: &std::sync::Mutex<Vec<(usize, String)>>,
) -> Result<String> {
    let ns = format!("{prefix}h{i}");
    netns::add(&ns).with_context(|| format!("create namespace {ns}"))?;
    made.lock().unwrap_or_else(|p| p.into_inner()).push((i, ns.clone()));
    if !opts.ipv6 {
        netns::sysctl(&ns, "net.ipv6.conf.all.disable_ipv6", "1")?;
        netns::sysctl(&ns, "net.ipv6.conf.default.disable_ipv6", "1")?;
    }
    // AEX's engine, recorder and view join 100 groups on one socket
    // (the default limit is 20 per socket).
    netns::sysctl(&ns, "net.ipv4.igmp_max_memberships", "1024")?;
    let port = format!("v{i}");
    let mac = host_mac(i);
    netns::ip(&[
        "-n", underlay, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "address", &mac, "netns", &ns,
    ])?;
    netns::ip(&["-n", underlay, "link", "set", &port, "master", "br0", "up"])?;
    netns::ip_batch(Some(&ns), &format!("addr add {}/24 dev eth0\nlink set eth0 up\n", host_ip(i)))?;
    Ok(ns)
}

/// Interface names out of `ip -o link` lines (`3: name@peer: <...`).
fn link_names(out: &str) -> Vec<String> {
    out.lines().filter_map(|l| l.split(": ").nth(1)).map(|n| n.split('@').next().unwrap_or(n).to_owned()).collect()
}

/// Keeps `WEAVERS_*` settings of the test's own environment away from the
/// daemons and the command line: each lab host is configured explicitly.
fn remove_weavers_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WEAVERS_") {
            cmd.env_remove(k);
        }
    }
}

fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the PID of a child we have not reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

/// SIGTERM, wait up to `timeout`, then SIGKILL; always reaps.
fn terminate(mut child: Child, timeout: Duration) -> Stopped {
    let start = Instant::now();
    if let Ok(Some(status)) = child.try_wait() {
        return Stopped { status, killed: false, took: Duration::ZERO };
    }
    signal(&child, libc::SIGTERM);
    while start.elapsed() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            return Stopped { status, killed: false, took: start.elapsed() };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, libc::SIGKILL);
    // Never panic here: this runs in Drop, maybe while a test panics.
    let status = child.wait().unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL));
    Stopped { status, killed: true, took: start.elapsed() }
}

/// SIGTERM to every child at once, wait up to `timeout` for all, then
/// SIGKILL to those left; reaps them all.
fn terminate_all(mut children: Vec<Child>, timeout: Duration) {
    for c in &children {
        signal(c, libc::SIGTERM);
    }
    let start = Instant::now();
    while !children.is_empty() && start.elapsed() < timeout {
        children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        std::thread::sleep(Duration::from_millis(20));
    }
    for mut c in children {
        signal(&c, libc::SIGKILL);
        let _ = c.wait();
    }
}

/// Runs a command with piped output and a time limit (killed past it).
pub fn output_with_timeout(cmd: Command, timeout: Duration) -> Result<Output> {
    output_with_input(cmd, None, timeout)
}

/// As [`output_with_timeout`], writing `input` (when given) to its stdin.
pub fn output_with_input(mut cmd: Command, input: Option<&[u8]>, timeout: Duration) -> Result<Output> {
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("spawn {cmd:?}"))?;
    let writer = input.map(|bytes| {
        let mut stdin = child.stdin.take().expect("piped stdin");
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        })
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if start.elapsed() > timeout {
            signal(&child, libc::SIGKILL);
            let _ = child.wait();
            bail!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Ok(Output { status, stdout: t_out.join().unwrap_or_default(), stderr: t_err.join().unwrap_or_default() })
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
