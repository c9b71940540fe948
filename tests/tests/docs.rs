//! Man pages and shell completions: `dist/gen-docs.sh OUTDIR` on the built
//! binaries writes a page per command and subcommand and the bash, zsh and
//! fish completions of weaversd, weavers and aex, and they document the
//! commands and flags users look for. Needs no root.
//! Build first: `cargo build --workspace && cargo test -p weavers-tests --test docs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use weavers_tests::{bins, random_hex};

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A man page's text with roff's escaped hyphens made plain.
fn page(dir: &Path, name: &str) -> String {
    read(dir, &format!("man1/{name}.1")).replace("\\-", "-")
}

#[test]
fn gen_docs_writes_pages_and_completions_that_name_the_commands() {
    // Make sure the binaries exist (with a clear message when they do not).
    let bin_dir = bins::weaversd().parent().unwrap().to_path_buf();
    bins::weavers();
    bins::aex();
    let out = TempDir(std::env::temp_dir().join(format!("weavers-docs-{}", random_hex(6))));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/gen-docs.sh");
    let run = Command::new("bash").arg(&script).arg(&out.0).env("WEAVERS_BIN_DIR", &bin_dir).output().unwrap();
    assert!(run.status.success(), "gen-docs.sh failed: {}", String::from_utf8_lossy(&run.stderr));
    let dir = &out.0;

    let weaversd = page(dir, "weaversd");
    assert!(weaversd.contains(".TH weaversd 1"), "not a man page: {weaversd:.200}");
    for flag in [
        "--state-dir",
        "--socket",
        "--listen",
        "--password-file",
        "--peer",
        "--metrics-addr",
        "--log-format",
        "--log-level",
    ] {
        assert!(weaversd.contains(flag), "weaversd.1 lacks {flag}");
    }
    let weavers = page(dir, "weavers");
    for sub in ["status", "peer", "expose", "groups", "dns", "ipam"] {
        assert!(weavers.contains(&format!("weavers-{sub}(1)")), "weavers.1 does not point to weavers-{sub}(1)");
    }
    for sub in ["peer-add", "peer-rm", "peer-ls", "dns-add", "dns-lookup", "ipam-ls"] {
        let p = page(dir, &format!("weavers-{sub}"));
        assert!(p.contains("--socket") && p.contains("--json"), "weavers-{sub}.1 lacks the global flags");
    }
    let aex = page(dir, "aex");
    for sub in ["engine", "gateway", "customers", "record", "view", "audit", "journal"] {
        assert!(aex.contains(&format!("aex-{sub}(1)")), "aex.1 does not point to aex-{sub}(1)");
    }
    assert!(page(dir, "aex-engine").contains("--journal"));
    assert!(!weavers.contains("generate-docs"), "the generator's option is documented");

    for bin in ["weaversd", "weavers", "aex"] {
        let bash = read(dir, &format!("completions/bash/{bin}"));
        let zsh = read(dir, &format!("completions/zsh/_{bin}"));
        let fish = read(dir, &format!("completions/fish/{bin}.fish"));
        assert!(bash.contains(&format!("complete -F _{bin}")), "bash completion of {bin}: {bash:.200}");
        assert!(zsh.starts_with(&format!("#compdef {bin}")), "zsh completion of {bin}: {zsh:.200}");
        assert!(fish.contains(&format!("complete -c {bin}")), "fish completion of {bin}: {fish:.200}");
    }
    let bash = read(dir, "completions/bash/weavers");
    assert!(bash.contains("expose") && bash.contains("lookup"), "bash completion of weavers lacks subcommands");
    let fish = read(dir, "completions/fish/weaversd.fish");
    assert!(fish.contains("-l log-format") && fish.contains("json"), "fish completion lacks --log-format json");
}

#[test]
fn generate_docs_without_a_directory_is_a_usage_error() {
    let out = Command::new(bins::weavers()).arg("--generate-docs").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: weavers --generate-docs OUTDIR"));
}
