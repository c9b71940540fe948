//! Replays the committed inputs of the `exchange` fuzz target (AEX's wire formats):
//! the seeds (`fuzz/corpus/exchange`) and every crash found and fixed
//! (`fuzz/regressions/exchange`), through the function the target calls.

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
fn exchange() {
    replay("exchange", aex::fuzzing::wire);
}

/// Writes seeds built with the encoders. `cargo test -p aex --test
/// fuzz_regressions -- --ignored write_seeds`.
#[test]
#[ignore]
fn write_seeds() {
    use aex::wire::mold::{self, PacketBuilder, ReRequest, Session};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/exchange");
    std::fs::create_dir_all(&dir).unwrap();
    let s = Session::new("GW01").unwrap();
    let mut p = PacketBuilder::new(s, 41, 1400);
    assert!(p.push(b"first") && p.push(&[0; 30]));
    std::fs::write(dir.join("mold"), p.finish()).unwrap();
    std::fs::write(dir.join("heartbeat"), mold::heartbeat(s, 7)).unwrap();
    std::fs::write(dir.join("rerequest"), ReRequest { session: s, seq: 9, count: 3 }.encode()).unwrap();
}
