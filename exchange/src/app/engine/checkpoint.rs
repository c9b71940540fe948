//! State digests at deterministic sequence points: every `--checkpoint-every`
//! inputs the engine appends `seq epoch digest_hex` to `--checkpoints FILE`,
//! so `aex audit --checkpoints` can show that a primary, its standby and the
//! journal's replay hold the same state at the same sequence number.

use crate::matching::Engine;
use crate::types::{Digest, Epoch, Seq};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Writes checkpoints (appending to the file: a restart continues it).
pub struct Checkpoints {
    every: u64,
    out: BufWriter<File>,
}

impl Checkpoints {
    /// Appends to `path` every `every` inputs (`every` 0 is taken as 1).
    pub fn open(path: &Path, every: u64) -> io::Result<Checkpoints> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Checkpoints { every: every.max(1), out: BufWriter::new(f) })
    }

    /// After applying `seq`: a checkpoint line if `seq` is a checkpoint.
    pub fn after(&mut self, engine: &Engine, seq: Seq, epoch: Epoch) -> io::Result<()> {
        if !seq.is_multiple_of(self.every) {
            return Ok(());
        }
        writeln!(self.out, "{}", line(seq, epoch, &engine.digest()))?;
        self.out.flush()
    }
}

/// One checkpoint line (without its newline).
pub fn line(seq: Seq, epoch: Epoch, digest: &Digest) -> String {
    format!("{seq} {epoch} {digest}")
}

/// A parsed checkpoint line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// After this input.
    pub seq: Seq,
    /// The epoch of the engine that wrote it.
    pub epoch: Epoch,
    /// The digest, in hex.
    pub digest: String,
}

/// Parses a checkpoints file; bad lines are returned as errors.
pub fn parse(text: &str) -> (Vec<Checkpoint>, Vec<String>) {
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let parsed = match f.as_slice() {
            [s, e, d] if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) => s
                .parse()
                .ok()
                .zip(e.parse().ok())
                .map(|(seq, epoch)| Checkpoint { seq, epoch, digest: d.to_ascii_lowercase() }),
            _ => None,
        };
        match parsed {
            Some(c) => good.push(c),
            None => bad.push(format!("line {}: {l:?}: `seq epoch digest_hex` expected", i + 1)),
        }
    }
    (good, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_bad_lines_are_reported() {
        let d = Digest([0xab; 32]);
        let text = format!("{}\n\nnonsense\n10 1 zz\n", line(20, 2, &d));
        let (good, bad) = parse(&text);
        assert_eq!(good, vec![Checkpoint { seq: 20, epoch: 2, digest: "ab".repeat(32) }]);
        assert_eq!(bad.len(), 2);
    }
}
