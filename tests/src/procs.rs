//! Processes the lab runs inside its hosts besides `weaversd` (AEX's
//! engine, gateways, customers, recorder, view), and a TCP relay from the
//! machine's loopback into a host (how the demo shows the view on
//! 127.0.0.1). Every process is started with a parent-death signal and is
//! stopped by its PID when its handle is dropped, before the lab removes
//! the namespaces.

use crate::{bins, netns, Lab};
use serde_json::Value;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A process running in a lab host; SIGKILLed when dropped if still running.
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Starts `program args` in host `i` of `lab`, output to `<lab dir>/<name>.log`.
    pub fn start(lab: &Lab, i: usize, name: &str, program: &Path, args: &[String]) -> io::Result<Proc> {
        let log = lab.dir().join(format!("{name}.log"));
        let mut f = OpenOptions::new().create(true).append(true).open(&log)?;
        writeln!(f, "===== lab: in {}: {} {}", lab.ns(i), program.display(), args.join(" "))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", lab.ns(i)])
            .arg(program)
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f);
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        Ok(Proc { name: name.to_string(), child: Some(child), log })
    }

    /// Starts `aex ARGS` in host `i`.
    pub fn aex(lab: &Lab, i: usize, name: &str, args: &[String]) -> io::Result<Proc> {
        Proc::start(lab, i, name, &bins::aex(), args)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Whether it still runs (reaps it if not).
    pub fn running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Its exit status if it has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        let st = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(st)
    }

    /// Waits up to `timeout` for it to exit on its own; its exit status, or
    /// None if it still runs (it is left running) or was already reaped.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_status() {
                return Some(st);
            }
            if self.child.is_none() || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal`, waits up to `timeout` for the exit, then SIGKILLs.
    /// Returns the exit status (None if it had already been reaped).
    pub fn stop_with(&mut self, signal: i32, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill on our own child's PID.
        unsafe { libc::kill(child.id() as i32, signal) };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGINT, then SIGKILL after `timeout`.
    pub fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.stop_with(libc::SIGINT, timeout)
    }

    /// SIGKILL now (a crash).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Reads a JSON file a process rewrites (None while absent or half written).
pub fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// A TCP relay: connections to `listen` (in the caller's namespace, e.g.
/// the machine's 127.0.0.1) are carried to `target` from inside namespace
/// `ns`. Stops accepting when dropped.
pub struct Forward {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl Forward {
    /// Listens on `listen` and relays each connection to `target` in `ns`.
    pub fn start(listen: SocketAddr, ns: &str, target: SocketAddr) -> io::Result<Forward> {
        let l = TcpListener::bind(listen)?;
        l.set_nonblocking(true)?;
        let addr = l.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, ns) = (stop.clone(), ns.to_string());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((client, _)) => {
                        let ns = ns.clone();
                        std::thread::spawn(move || {
                            // The upstream socket is made inside the namespace; it stays there.
                            let up = netns::run_in(&ns, || TcpStream::connect_timeout(&target, Duration::from_secs(3)));
                            if let Ok(up) = up {
                                relay(client, up);
                            }
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(50)),
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        Ok(Forward { stop, thread: Some(thread), addr })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn relay(a: TcpStream, b: TcpStream) {
    let _ = a.set_nonblocking(false);
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else { return };
    let t = std::thread::spawn(move || {
        let (mut r, mut w) = (a2, b2);
        let _ = io::copy(&mut r, &mut w);
        let _ = w.shutdown(std::net::Shutdown::Write);
    });
    let (mut r, mut w) = (b, a);
    let _ = io::copy(&mut r, &mut w);
    let _ = w.shutdown(std::net::Shutdown::Write);
    let _ = t.join();
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `aex [--symbols FILE] register` against host `i`'s daemon: every
/// symbol's two groups into the overlay DNS (then gossiped to every host).
pub fn register_aex(lab: &Lab, i: usize, symbols: Option<&Path>) -> anyhow::Result<()> {
    let mut cmd = Command::new(bins::aex());
    if let Some(f) = symbols {
        cmd.arg("--symbols").arg(f);
    }
    let out = cmd.arg("register").arg("--socket").arg(lab.socket(i)).arg("--weavers").arg(bins::weavers()).output()?;
    anyhow::ensure!(out.status.success(), "aex register: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

/// A deployment's AEX secrets, made by `aex keys` and `aex logins` in a
/// directory (every file mode 0600): one key file per role, the gateways'
/// logins and the broker/dealers' passwords. Processes are given the paths,
/// never the secrets.
#[derive(Clone, Debug)]
pub struct AexSecrets {
    dir: PathBuf,
}

impl AexSecrets {
    /// Makes keys for `gateways` (`1-2`) and passwords for `brokers`
    /// (`1-100`) in `dir` (created; the files must not exist yet).
    pub fn make(dir: &Path, gateways: &str, brokers: &str) -> anyhow::Result<AexSecrets> {
        let s = AexSecrets { dir: dir.to_path_buf() };
        let run = |args: &[&str]| -> anyhow::Result<()> {
            let out = Command::new(bins::aex()).args(args).output()?;
            anyhow::ensure!(out.status.success(), "aex {}: {}", args[0], String::from_utf8_lossy(&out.stderr).trim());
            Ok(())
        };
        run(&["keys", "--dir", &dir.display().to_string(), "--gateways", gateways])?;
        run(&["logins", "--brokers", brokers, "--logins", &s.logins(), "--passwords", &s.passwords()])?;
        Ok(s)
    }

    /// The secrets [`AexSecrets::make`] made in `dir` before.
    pub fn at(dir: &Path) -> AexSecrets {
        AexSecrets { dir: dir.to_path_buf() }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The engines' key file (md, every gw.N, dr).
    pub fn engine_keys(&self) -> String {
        self.path("engine.keys")
    }

    /// The market-data consumers' key file (md).
    pub fn md_keys(&self) -> String {
        self.path("md.keys")
    }

    /// The DR journal's key file (dr).
    pub fn dr_keys(&self) -> String {
        self.path("dr.keys")
    }

    /// Gateway `id`'s key file (gw.ID).
    pub fn gw_keys(&self, id: usize) -> String {
        self.path(&format!("gw{id}.keys"))
    }

    /// The gateways' logins (a salted hash per broker/dealer).
    pub fn logins(&self) -> String {
        self.path("gateway.logins")
    }

    /// The broker/dealers' passwords (for `aex customers --passwords`).
    pub fn passwords(&self) -> String {
        self.path("brokers.passwords")
    }
}
