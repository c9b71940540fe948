//! The daemons of a lab: start options, starting, restarting, stopping and killing weaversd in a host.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::process::{remove_weavers_env, signal, terminate};
use super::{restrict, Lab, WEAVERS_PORT};
use crate::bins;

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

impl Lab {
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
}
