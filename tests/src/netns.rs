//! Network namespaces: creating and deleting them with `ip`, running
//! commands inside them, and running Rust closures inside them on a thread
//! that has joined the namespace with `setns(2)`.
//!
//! A thread's network namespace is its own (not the process's), so a probe
//! thread can enter a lab namespace while the test thread stays in the
//! namespace it started in. Sockets keep the namespace they were made in.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};

/// Runs `ip ARGS...` in the current namespace and returns its stdout, or an
/// error carrying its stderr.
pub fn ip<S: AsRef<OsStr>>(args: &[S]) -> Result<String> {
    run("ip", args)
}

/// Runs a program, waits for it, and returns stdout, or an error with stderr.
pub fn run<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        let shown: Vec<String> = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
        bail!(
            "`{program} {}` failed ({}): {}",
            shown.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs many `ip` commands in one process (`ip [-n NS] -batch -`), one a
/// line of `commands` (without the leading `ip`): far cheaper than one
/// process per command when a lab sets up hundreds of hosts.
pub fn ip_batch(ns: Option<&str>, commands: &str) -> Result<()> {
    use std::io::Write;
    let mut args = Vec::new();
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    args.extend(["-batch", "-"]);
    let mut child = Command::new("ip")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run `ip -batch`")?;
    child.stdin.take().expect("piped stdin").write_all(commands.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed ({}): {}\ncommands:\n{commands}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs an nftables script inside namespace `ns` (`ip netns exec NS nft -f -`).
pub fn nft_script(ns: &str, script: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, nft_path(), "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run `ip netns exec ... nft`")?;
    child.stdin.take().expect("piped stdin").write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft failed in {ns}: {}\nscript:\n{script}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Runs `nft ARGS...` inside namespace `ns`.
pub fn nft(ns: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["netns", "exec", ns, nft_path()];
    all.extend_from_slice(args);
    ip(&all)
}

/// `nft` is in /usr/sbin, which is not always on a test's PATH.
fn nft_path() -> &'static str {
    for p in ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"] {
        if std::path::Path::new(p).exists() {
            return p;
        }
    }
    "nft"
}

/// Names of all named network namespaces (`ip netns list`).
pub fn list() -> Result<Vec<String>> {
    let out = ip(&["netns", "list"])?;
    Ok(out.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect())
}

/// Creates a named namespace and brings its loopback up.
pub fn add(ns: &str) -> Result<()> {
    ip(&["netns", "add", ns])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Deletes a named namespace (its interfaces go with it once no process
/// holds it). Missing namespaces are not an error.
pub fn del(ns: &str) -> Result<()> {
    if !std::path::Path::new(&format!("/run/netns/{ns}")).exists() {
        return Ok(());
    }
    ip(&["netns", "del", ns]).map(|_| ())
}

/// Runs `ip netns exec NS PROGRAM ARGS...` and returns its output, whatever
/// the exit status.
pub fn exec_in<S: AsRef<OsStr>>(ns: &str, program: &str, args: &[S]) -> io::Result<Output> {
    Command::new("ip").args(["netns", "exec", ns, program]).args(args).stdin(Stdio::null()).output()
}

/// Moves the calling thread into namespace `ns`. Only call this on a thread
/// made for the purpose (see [`run_in`] and [`spawn_in`]).
pub fn enter(ns: &str) -> io::Result<()> {
    let f = File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: setns on a valid fd; it affects only the calling thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a new thread inside namespace `ns` and returns its result
/// (a panic in `f` is passed on).
pub fn run_in<F, R>(ns: &str, f: F) -> R
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            enter(ns).unwrap_or_else(|e| panic!("cannot enter namespace {ns}: {e}"));
            f()
        });
        match h.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// Starts `f` on a new thread inside namespace `ns`.
pub fn spawn_in<F, R>(ns: &str, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let ns = ns.to_owned();
    std::thread::Builder::new()
        .name(format!("netns-{ns}"))
        .spawn(move || {
            enter(&ns).unwrap_or_else(|e| panic!("cannot enter namespace {ns}: {e}"));
            f()
        })
        .expect("spawn thread")
}

/// Writes a sysctl inside namespace `ns` (`key` as in `net.ipv6.conf.all.disable_ipv6`).
pub fn sysctl(ns: &str, key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let value = value.to_owned();
    run_in(ns, move || std::fs::write(&path, value.as_bytes())).with_context(|| format!("sysctl {key} in {ns}"))
}
