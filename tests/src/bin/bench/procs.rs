//! Processes the bench starts inside lab namespaces, owned by PID: each is
//! signalled by its own PID only (never by name), gets `PR_SET_PDEATHSIG`
//! so that it cannot outlive the bench, and is stopped when its [`Proc`] is
//! dropped. Also the CPU counters the bench reads.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::stopped;

/// A process started by the bench in a namespace; its stdout and stderr go
/// to files. Dropping it stops it (SIGTERM, then SIGKILL after 3 s).
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub out: PathBuf,
    pub err: PathBuf,
}

/// Starts `program args...` in namespace `ns` (`ip netns exec`, which execs
/// the program in the same process, so the PID is the program's), output
/// to `<dir>/<tag>.out|.err`.
pub fn spawn(ns: &str, dir: &Path, tag: &str, program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Proc> {
    let out = dir.join(format!("{tag}.out"));
    let err = dir.join(format!("{tag}.err"));
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program])
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out)?)
        .stderr(fs::File::create(&err)?);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: prctl is async-signal-safe. The bench starts every process
    // from its main thread, to which the kernel ties PDEATHSIG.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| format!("spawn {program} in {ns}"))?;
    Ok(Proc { name: format!("{program} ({tag})"), child: Some(child), out, err })
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Exited already? (reaps it)
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits for it to exit by itself within `timeout` (then kills it and
    /// fails). Returns early with an error if the bench is interrupted.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.exited() {
                return Ok(st);
            }
            if stopped() {
                self.stop();
                bail!("interrupted");
            }
            if start.elapsed() > timeout {
                self.stop();
                bail!("{} did not finish within {timeout:?}; stderr: {}", self.name, self.stderr().trim());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM (or the given signal), wait up to 3 s, then SIGKILL; reaps.
    pub fn stop_with(&mut self, sig: libc::c_int) {
        let Some(mut c) = self.child.take() else { return };
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(c.id() as libc::pid_t, sig);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGKILL);
        }
        let _ = c.wait();
    }

    pub fn stop(&mut self) {
        self.stop_with(libc::SIGTERM);
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `program args...` in `ns` to completion (limit `timeout`); returns
/// stdout, or an error with stderr if it fails.
pub fn run_in(ns: &str, program: &str, args: &[&str], timeout: Duration) -> Result<String> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]).args(args);
    let out = weavers_tests::lab::output_with_timeout(cmd, timeout)?;
    if !out.status.success() {
        bail!(
            "`{program} {}` in {ns} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a program in the bench's own namespace (no network use: key
/// generation and the like) with `input` on stdin; returns stdout.
pub fn run_local(program: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {program}"))?;
    {
        let mut stdin = child.stdin.take().unwrap();
        if let Some(i) = input {
            stdin.write_all(i.as_bytes())?;
        }
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("`{program} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// utime + stime of a process (all its threads), in clock ticks.
pub fn proc_ticks(pid: u32) -> u64 {
    let Ok(s) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0 };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = s.rfind(')').map(|i| &s[i + 2..]) else { return 0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let get = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(14) + get(15)
}

/// Summed ticks of several processes.
pub fn procs_ticks(pids: &[u32]) -> u64 {
    pids.iter().map(|&p| proc_ticks(p)).sum()
}

/// Busy ticks of the whole machine (all CPUs: everything but idle and
/// iowait), from /proc/stat.
pub fn machine_busy_ticks() -> u64 {
    let Ok(s) = fs::read_to_string("/proc/stat") else { return 0 };
    let Some(line) = s.lines().find(|l| l.starts_with("cpu ")) else { return 0 };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal guest guest_nice
    let g = |i: usize| v.get(i).copied().unwrap_or(0);
    g(0) + g(1) + g(2) + g(5) + g(6) + g(7)
}

/// Seconds per clock tick.
pub fn tick_secs() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1.0 / if hz > 0 { hz as f64 } else { 100.0 }
}

/// CPU counters at one moment: the overlay processes and the machine.
#[derive(Clone, Copy)]
pub struct CpuMark {
    procs: u64,
    machine: u64,
    at: Instant,
}

impl CpuMark {
    pub fn now(pids: &[u32]) -> CpuMark {
        CpuMark { procs: procs_ticks(pids), machine: machine_busy_ticks(), at: Instant::now() }
    }

    /// (overlay process CPU seconds, machine busy CPU seconds, wall seconds)
    /// since `self`.
    pub fn since(&self, pids: &[u32]) -> (f64, f64, f64) {
        let now = CpuMark::now(pids);
        let t = tick_secs();
        (
            now.procs.saturating_sub(self.procs) as f64 * t,
            now.machine.saturating_sub(self.machine) as f64 * t,
            now.at.duration_since(self.at).as_secs_f64(),
        )
    }
}
