//! The Debian package (`dist/deb/build.sh`): built from this build's
//! binaries, installed with dpkg into a scratch root (`dpkg --root`, its
//! maintainer scripts told so by DPKG_ROOT: no daemon is started and nothing
//! outside that root changes), its files and binaries checked, then removed
//! (the conffile stays) and purged (nothing stays). Needs root for dpkg.
//! Build first: `cargo build --workspace && CI=true cargo test -p weavers-tests --test deb`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use weavers_tests::{bins, is_ci, random_hex};

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dpkg --root ROOT ARGS` with maintainer scripts run outside a chroot
/// (DPKG_ROOT tells them where the installation is).
fn dpkg(root: &Path, args: &[&str]) -> Output {
    Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-script-chrootless", "--log=/dev/null"])
        .args(args)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("run dpkg")
}

/// Every path under `root` except dpkg's own database.
fn files_under(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if rel == "var/lib/dpkg" {
                continue;
            }
            if p.is_dir() && !p.is_symlink() {
                walk(root, &p, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn the_package_installs_runs_and_removes_cleanly() {
    if unsafe { libc::geteuid() } != 0 || Command::new("dpkg").arg("--version").output().is_err() {
        assert!(!is_ci(), "CI=true: the package test needs root and dpkg");
        eprintln!("SKIPPED: the package test needs root and dpkg");
        return;
    }
    let bin_dir = bins::weaversd().parent().unwrap().to_path_buf();
    bins::weavers();
    bins::weavers_cni();
    let scratch = Scratch(std::env::temp_dir().join(format!("weavers-deb-{}", random_hex(6))));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(repo.join("dist/deb/build.sh"))
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out")
        .arg(scratch.0.join("out"))
        .output()
        .unwrap();
    let deb = PathBuf::from(ok(out, "dist/deb/build.sh").trim());
    let version = env!("CARGO_PKG_VERSION");
    assert!(deb.file_name().unwrap().to_str().unwrap().starts_with(&format!("weavers_{version}_")), "{deb:?}");

    let info = ok(Command::new("dpkg-deb").arg("--info").arg(&deb).output().unwrap(), "dpkg-deb --info");
    for want in
        ["Package: weavers", &format!("Version: {version}"), "Depends: libc6, libgcc-s1", "conffiles", "postinst"]
    {
        assert!(info.contains(want), "dpkg-deb --info lacks {want:?}:\n{info}");
    }

    // A scratch root whose dpkg knows only libc6 and libgcc-s1 (as the
    // machine has them), so the dependencies are checked for real.
    let root = scratch.0.join("root");
    let admin = root.join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(admin.join(d)).unwrap();
    }
    let arch = ok(Command::new("dpkg").arg("--print-architecture").output().unwrap(), "dpkg --print-architecture");
    let mut status = String::new();
    for dep in ["libc6", "libgcc-s1"] {
        let entry = ok(Command::new("dpkg-query").args(["-s", dep]).output().unwrap(), "dpkg-query -s");
        status.push_str(entry.trim_end());
        status.push_str("\n\n");
        std::fs::write(admin.join(format!("info/{dep}:{}.list", arch.trim())), "").unwrap();
    }
    std::fs::write(admin.join("status"), status).unwrap();
    std::fs::write(admin.join("available"), "").unwrap();

    ok(dpkg(&root, &["-i", deb.to_str().unwrap()]), "dpkg -i");
    let status = ok(dpkg(&root, &["-s", "weavers"]), "dpkg -s");
    assert!(status.contains("Status: install ok installed"), "{status}");

    let installed = files_under(&root);
    for want in [
        "usr/bin/weaversd",
        "usr/bin/weavers",
        "usr/lib/cni/weavers-cni",
        "opt/cni/bin/weavers-cni",
        "lib/systemd/system/weaversd.service",
        "etc/weavers/weaversd.toml",
        "usr/share/weavers/cni/10-weavers.conflist",
        "usr/share/man/man1/weaversd.1.gz",
        "usr/share/man/man1/weavers-peer-ls.1.gz",
        "usr/share/bash-completion/completions/weavers",
        "usr/share/zsh/vendor-completions/_weaversd",
        "usr/share/fish/vendor_completions.d/weavers.fish",
        "usr/share/doc/weavers/copyright",
    ] {
        assert!(installed.iter().any(|f| f == want), "{want} not installed: {installed:#?}");
    }
    assert_eq!(mode(&root.join("etc/weavers")), 0o700);
    assert_eq!(mode(&root.join("etc/weavers/weaversd.toml")), 0o600);
    assert_eq!(
        std::fs::read_link(root.join("opt/cni/bin/weavers-cni")).unwrap(),
        Path::new("/usr/lib/cni/weavers-cni")
    );
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/weaversd.service")).unwrap();
    assert!(unit.contains("\nExecStart=/usr/bin/weaversd "), "{unit}");
    assert!(!installed.iter().any(|f| f.contains(".wants/")), "the package enabled the unit");

    // The installed binaries run (and are this build's).
    for (bin, want) in [("usr/bin/weaversd", "weaversd"), ("usr/bin/weavers", "weavers")] {
        let v = ok(Command::new(root.join(bin)).arg("--version").output().unwrap(), bin);
        assert_eq!(v.trim(), format!("{want} {version}"));
    }
    let cni = Command::new(root.join("usr/lib/cni/weavers-cni"))
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdin(std::fs::File::open(repo.join("dist/cni/10-weavers.conflist")).unwrap())
        .output()
        .unwrap();
    assert!(ok(cni, "weavers-cni VERSION").contains("\"supportedVersions\""));

    // Remove: everything but the conffile goes.
    ok(dpkg(&root, &["-r", "weavers"]), "dpkg -r");
    assert_eq!(files_under(&root), ["etc/weavers/weaversd.toml"]);
    // Purge: the conffile and the state the daemon made go too.
    std::fs::create_dir_all(root.join("var/lib/weavers")).unwrap();
    std::fs::write(root.join("var/lib/weavers/identity.key"), "x").unwrap();
    ok(dpkg(&root, &["--purge", "weavers"]), "dpkg --purge");
    let left = files_under(&root);
    assert!(left.is_empty(), "left after purge: {left:?}");
    assert!(!root.join("etc/weavers").exists() && !root.join("var/lib/weavers").exists());
}
