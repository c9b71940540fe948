//! weavers-tests: the network-namespace lab and weavers' integration tests.
//!
//! A [`Lab`] is a set of uniquely named network namespaces: an underlay with
//! a bridge that drops multicast (as a cloud does), and hosts wired to it,
//! each able to run `weaversd`. Everything is removed when the lab is
//! dropped, even on panic. See [`lab`] for the module docs.
//!
//! Tests get a lab through [`lab_or_skip`], which fails when `CI=true` and
//! namespaces cannot be made, and skips (with a message) on a machine where
//! the test does not run as root.
//!
//! The daemon and command line are found in `WEAVERS_BIN_DIR` or the cargo
//! target directory of the test executable: run `cargo build --workspace`
//! before `cargo test`.

pub mod capture;
pub mod cni;
pub mod faults;
pub mod lab;
pub mod mcast;
pub mod netns;
pub mod packet;
pub mod par;
pub mod probe;
pub mod procs;

use std::io::Read;
use std::time::{Duration, Instant};

pub use capture::{Capture, Frame};
pub use lab::{DaemonOpts, DelayLine, Host, Lab, LabBuilder, Stopped, WEAVERS_PORT};

/// Polls `f` every 100 ms until it returns true (true) or `timeout` passes
/// (false). For loose, bounded waits: never assert tight timings.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether this is a CI run (`CI=true`), where a lab that cannot be built
/// fails the test instead of skipping it.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A lab with `n` hosts, or None (with a printed message) when the test
/// should be skipped; see [`lab_with`].
pub fn lab_or_skip(n: usize) -> Option<Lab> {
    lab_with(Lab::builder(n))
}

/// Builds a lab. If it cannot be built: with `CI=true` this panics; as a
/// non-root user it prints why and returns None (the test then returns
/// early, a skip); as root it panics, since the lab should work there.
pub fn lab_with(b: LabBuilder) -> Option<Lab> {
    match b.build() {
        Ok(lab) => Some(lab),
        Err(e) if is_ci() => panic!("CI=true and the namespace lab cannot be built: {e:#}"),
        Err(e) if unsafe { libc::geteuid() } != 0 => {
            eprintln!(
                "SKIPPED: the namespace lab needs root (ip netns, nftables): {e:#}\n\
                 (with CI=true this is a failure)"
            );
            None
        }
        Err(e) => panic!(
            "the namespace lab cannot be built: {e:#}\n\
             (needs iproute2 and nftables; `sudo ./test.sh --deps-only` installs them)"
        ),
    }
}

/// `n` random bytes from the kernel.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).expect("read /dev/urandom");
    b
}

/// `n` random bytes as lowercase hex (2n characters).
pub fn random_hex(n: usize) -> String {
    random_bytes(n).iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the weavers binaries are found.
pub mod bins {
    use std::path::{Path, PathBuf};

    /// `WEAVERS_BIN_DIR`, else the cargo target profile directory of the
    /// running test executable (`target/debug/deps/x` -> `target/debug`).
    pub fn dir() -> PathBuf {
        if let Some(d) = std::env::var_os("WEAVERS_BIN_DIR") {
            return PathBuf::from(d);
        }
        let exe = std::env::current_exe().expect("current_exe");
        let mut d = exe.parent().expect("exe dir").to_path_buf();
        if d.file_name().is_some_and(|n| n == "deps") {
            d.pop();
        }
        d
    }

    fn find(name: &str) -> PathBuf {
        let p = dir().join(name);
        if !p.is_file() {
            panic!(
                "{name} not found at {}: run `cargo build --workspace` first \
                 (or set WEAVERS_BIN_DIR to the directory holding weaversd and weavers)",
                p.display()
            );
        }
        warn_if_stale(&p);
        p
    }

    /// `cargo test` does not rebuild other packages' binaries: say so when a
    /// binary is older than a source file it was built from (as listed in
    /// cargo's dep-info file `<bin>.d` beside it). A warning only.
    fn warn_if_stale(bin: &Path) {
        static WARNED: std::sync::Once = std::sync::Once::new();
        let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else { return };
        let Ok(depinfo) = std::fs::read_to_string(bin.with_extension("d")) else { return };
        let Some((_, deps)) = depinfo.lines().next().and_then(|l| l.split_once(": ")) else { return };
        let stale = deps
            .split_whitespace()
            .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
            .any(|t| t > built);
        if stale {
            // Straight to fd 2: the test harness captures eprintln!.
            WARNED.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "WARNING: {} is older than its sources: run `cargo build --workspace` \
                     before `cargo test` to test the current code",
                    bin.display()
                );
            });
        }
    }

    /// The daemon binary.
    pub fn weaversd() -> PathBuf {
        find("weaversd")
    }

    /// The command-line binary.
    pub fn weavers() -> PathBuf {
        find("weavers")
    }

    /// The CNI plugin binary.
    pub fn weavers_cni() -> PathBuf {
        find("weavers-cni")
    }

    /// The exchange's command.
    pub fn aex() -> PathBuf {
        find("aex")
    }
}
