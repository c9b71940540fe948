//! The small binaries stay small: the command line (`weavers`) and the CNI
//! plugin (`weavers-cni`) talk to the daemon through weavers-api and must
//! not compile the overlay's logic (weavers-proto) nor what it pulls in:
//! Noise (snow, and ring under it), packet parsing (etherparse), the DNS
//! wire format (hickory-proto).
//!
//! Asks `cargo tree` (the workspace's Cargo.lock, no network, about a
//! second); needs no root.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Crates neither small binary may depend on (normal dependencies).
const FORBIDDEN: [&str; 5] = ["weavers-proto", "snow", "ring", "etherparse", "hickory-proto"];

/// The names of every crate `package` depends on (itself included), as
/// `cargo tree -e normal` lists them for this platform.
fn normal_dependencies(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let out = Command::new(&cargo)
        .arg("tree")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--offline", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .output()
        .unwrap_or_else(|e| panic!("running {cargo} tree: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cargo tree -p {package} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    // Lines are `NAME vVERSION (PATH)`, maybe with ` (*)` for repeats.
    let names: BTreeSet<String> =
        stdout.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect();
    assert!(names.contains(package), "cargo tree -p {package} did not list {package} itself:\n{stdout}");
    names
}

fn assert_small(package: &str, must_have: &[&str]) {
    let deps = normal_dependencies(package);
    let found: Vec<&str> = FORBIDDEN.iter().copied().filter(|f| deps.contains(*f)).collect();
    assert!(found.is_empty(), "{package} depends on {found:?}; `cargo tree -p {package} -i CRATE` says through what");
    for want in must_have {
        assert!(deps.contains(*want), "{package} no longer depends on {want}? {deps:?}");
    }
}

#[test]
fn the_command_line_compiles_no_overlay_logic() {
    assert_small("weavers", &["weavers-api", "hyper"]);
}

#[test]
fn the_cni_plugin_compiles_no_overlay_logic() {
    assert_small("weavers-cni", &["weavers-api", "weavers-netlink", "hyper"]);
}

#[test]
fn the_check_sees_the_daemons_dependencies() {
    // The same question about the daemon finds what it really uses: the
    // test above cannot pass because the listing came back empty or odd.
    let deps = normal_dependencies("weaversd");
    for want in FORBIDDEN {
        assert!(deps.contains(want), "weaversd without {want}? {deps:?}");
    }
}
