//! Replays the committed inputs of the `cni` fuzz target (CNI configuration and environment):
//! the seeds (`fuzz/corpus/cni`) and every crash found and fixed
//! (`fuzz/regressions/cni`), through the function the target calls.

use std::path::{Path, PathBuf};

/// Runs `f` on every file of `fuzz/corpus/TARGET` and
/// `fuzz/regressions/TARGET`; the name of each is printed first, so a
/// failure names its input.
fn replay(target: &str, f: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
        files.sort();
        for p in files {
            eprintln!("replaying {}", p.display());
            f(&std::fs::read(&p).expect("readable"));
            n += 1;
        }
    }
    assert!(n > 0, "no committed inputs for {target}");
}

#[test]
fn cni() {
    replay("cni", weavers_cni::fuzzing::config_and_env);
}
