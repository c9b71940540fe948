//! Child processes: signals, termination within a timeout, output within a time limit.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::Stopped;

/// Keeps `WEAVERS_*` settings of the test's own environment away from the
/// daemons and the command line: each lab host is configured explicitly.
pub(super) fn remove_weavers_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WEAVERS_") {
            cmd.env_remove(k);
        }
    }
}

pub(super) fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the PID of a child we have not reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

/// SIGTERM, wait up to `timeout`, then SIGKILL; always reaps.
pub(super) fn terminate(mut child: Child, timeout: Duration) -> Stopped {
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
pub(super) fn terminate_all(mut children: Vec<Child>, timeout: Duration) {
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
