//! The journal: an append-only file of sequenced inputs, what an engine
//! makes durable before anything it produced leaves the process, what the
//! DR site keeps and what `aex audit` and `aex engine --recover` replay.
//!
//! ```text
//! header:  "AEXJ" | version u8 (1) | name length u16 | name | symbol count u16 | symbol u16 * count
//! record:  length u32 | crc32 u32 (of the record bytes) | wire::input record
//! ```
//!
//! A crash can leave a torn last record; a reader stops at the first
//! record that is short or fails its checksum and says so, and a writer
//! reopening the file cuts it off before appending.

use crate::events::SequencedInput;
use crate::types::SymbolIndex;
use crate::wire::input::{decode_record, encode_record};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use thiserror::Error;

const MAGIC: &[u8; 4] = b"AEXJ";
const VERSION: u8 = 1;
/// The largest record a journal accepts (far above any input).
const MAX_RECORD: u32 = 4096;

/// Why a journal could not be read or written.
#[derive(Debug, Error)]
pub enum JournalError {
    /// The file could not be read or written.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The header is not an AEX journal's.
    #[error("not an AEX journal (bad header)")]
    BadHeader,
    /// A record passed its checksum but does not decode.
    #[error("record {index} does not decode: {reason}")]
    BadRecord {
        /// Its position (from 0).
        index: usize,
        /// The decoder's complaint.
        reason: String,
    },
    /// Records are not contiguous.
    #[error("record {index} has sequence {got}, {expected} expected")]
    Sequence {
        /// Its position (from 0).
        index: usize,
        /// The sequence number it should have.
        expected: u64,
        /// The one it has.
        got: u64,
    },
    /// The journal belongs to another engine.
    #[error("journal of engine {found:?}, not {wanted:?}")]
    OtherEngine {
        /// Its engine.
        found: String,
        /// The one asked for.
        wanted: String,
    },
}

/// What a journal file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contents {
    /// The engine's name.
    pub name: String,
    /// The symbols it trades.
    pub symbols: Vec<SymbolIndex>,
    /// The records, in order (contiguous from 1).
    pub records: Vec<SequencedInput>,
    /// Whether a torn or corrupt tail was found after them (and ignored).
    pub torn_tail: bool,
    /// Bytes of the file up to the end of the last good record.
    pub good_len: u64,
}

fn header(name: &str, symbols: &[SymbolIndex]) -> Vec<u8> {
    let mut h = Vec::with_capacity(9 + name.len() + 2 * symbols.len());
    h.extend_from_slice(MAGIC);
    h.push(VERSION);
    h.extend_from_slice(&(name.len() as u16).to_be_bytes());
    h.extend_from_slice(name.as_bytes());
    h.extend_from_slice(&(symbols.len() as u16).to_be_bytes());
    for s in symbols {
        h.extend_from_slice(&s.to_be_bytes());
    }
    h
}

/// Parses a whole journal held in memory.
pub fn parse(bytes: &[u8]) -> Result<Contents, JournalError> {
    let take = |at: &mut usize, n: usize| -> Result<&[u8], JournalError> {
        let s = bytes.get(*at..*at + n).ok_or(JournalError::BadHeader)?;
        *at += n;
        Ok(s)
    };
    let mut at = 0;
    if take(&mut at, 4)? != MAGIC || take(&mut at, 1)?[0] != VERSION {
        return Err(JournalError::BadHeader);
    }
    let len = u16::from_be_bytes(take(&mut at, 2)?.try_into().unwrap()) as usize;
    let name = String::from_utf8(take(&mut at, len)?.to_vec()).map_err(|_| JournalError::BadHeader)?;
    let count = u16::from_be_bytes(take(&mut at, 2)?.try_into().unwrap()) as usize;
    let mut symbols = Vec::with_capacity(count);
    for _ in 0..count {
        symbols.push(u16::from_be_bytes(take(&mut at, 2)?.try_into().unwrap()));
    }
    let mut records = Vec::new();
    let mut torn_tail = false;
    loop {
        let rest = &bytes[at..];
        if rest.is_empty() {
            break;
        }
        if rest.len() < 8 {
            torn_tail = true;
            break;
        }
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap());
        let crc = u32::from_be_bytes(rest[4..8].try_into().unwrap());
        if len > MAX_RECORD || rest.len() < 8 + len as usize {
            torn_tail = true;
            break;
        }
        let body = &rest[8..8 + len as usize];
        if crc32fast::hash(body) != crc {
            torn_tail = true;
            break;
        }
        let index = records.len();
        let rec = decode_record(body).map_err(|e| JournalError::BadRecord { index, reason: e.to_string() })?;
        let expected = index as u64 + 1;
        if rec.seq != expected {
            return Err(JournalError::Sequence { index, expected, got: rec.seq });
        }
        records.push(rec);
        at += 8 + len as usize;
    }
    Ok(Contents { name, symbols, records, torn_tail, good_len: at as u64 })
}

/// Reads a journal file.
pub fn read(path: &Path) -> Result<Contents, JournalError> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    parse(&bytes)
}

/// Appends records to a journal file; [`Writer::sync`] makes them durable.
#[derive(Debug)]
pub struct Writer {
    file: File,
    buf: Vec<u8>,
    next_seq: u64,
    scratch: Vec<u8>,
}

impl Writer {
    /// Creates a new journal (fails if the file exists).
    pub fn create(path: &Path, name: &str, symbols: &[SymbolIndex]) -> Result<Writer, JournalError> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
        file.write_all(&header(name, symbols))?;
        file.sync_all()?;
        sync_dir(path)?;
        Ok(Writer { file, buf: Vec::new(), next_seq: 1, scratch: Vec::new() })
    }

    /// Opens an existing journal to append to it, cutting off a torn tail;
    /// returns it with its contents. `name` must match.
    pub fn open(path: &Path, name: &str) -> Result<(Writer, Contents), JournalError> {
        let contents = read(path)?;
        if contents.name != name {
            return Err(JournalError::OtherEngine { found: contents.name, wanted: name.to_string() });
        }
        let mut file = OpenOptions::new().write(true).open(path)?;
        if contents.torn_tail {
            file.set_len(contents.good_len)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::Start(contents.good_len))?;
        let next_seq = contents.records.len() as u64 + 1;
        Ok((Writer { file, buf: Vec::new(), next_seq, scratch: Vec::new() }, contents))
    }

    /// The sequence number the next record must have.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Buffers a record (written and made durable by [`Writer::sync`]).
    /// Records must come in sequence.
    pub fn append(&mut self, rec: &SequencedInput) -> Result<(), JournalError> {
        if rec.seq != self.next_seq {
            return Err(JournalError::Sequence {
                index: self.next_seq as usize - 1,
                expected: self.next_seq,
                got: rec.seq,
            });
        }
        self.scratch.clear();
        encode_record(rec, &mut self.scratch);
        self.buf.extend_from_slice(&(self.scratch.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(&crc32fast::hash(&self.scratch).to_be_bytes());
        self.buf.extend_from_slice(&self.scratch);
        self.next_seq += 1;
        Ok(())
    }

    /// Writes what is buffered and fsyncs; on return every appended record
    /// is durable. Returns the last durable sequence number.
    pub fn sync(&mut self) -> Result<u64, JournalError> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
            self.file.sync_data()?;
        }
        Ok(self.next_seq - 1)
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Input;

    fn rec(seq: u64) -> SequencedInput {
        SequencedInput { seq, epoch: 1, time: seq * 10, input: Input::EndOfDay }
    }

    #[test]
    fn write_read_reopen_and_torn_tail() {
        let dir = std::env::temp_dir().join(format!("aex-journal-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("j");
        let _ = std::fs::remove_file(&path);
        let mut w = Writer::create(&path, "eng1", &[1, 2, 3]).unwrap();
        for s in 1..=3 {
            w.append(&rec(s)).unwrap();
        }
        assert!(w.append(&rec(9)).is_err());
        assert_eq!(w.sync().unwrap(), 3);
        drop(w);
        let c = read(&path).unwrap();
        assert_eq!(
            (c.name.as_str(), c.symbols.as_slice(), c.records.len(), c.torn_tail),
            ("eng1", &[1, 2, 3][..], 3, false)
        );
        // A torn record at the end: readers ignore it, a writer cuts it off.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 30, 1, 2]).unwrap();
        drop(f);
        assert!(read(&path).unwrap().torn_tail);
        assert!(matches!(Writer::open(&path, "other"), Err(JournalError::OtherEngine { .. })));
        let (mut w, c) = Writer::open(&path, "eng1").unwrap();
        assert_eq!(c.records.len(), 3);
        w.append(&rec(4)).unwrap();
        w.sync().unwrap();
        let c = read(&path).unwrap();
        assert_eq!((c.records.len(), c.torn_tail), (4, false));
        // A flipped byte fails the checksum: the tail from there is ignored.
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        assert_eq!(parse(&bytes).unwrap().records.len(), 3);
        assert!(matches!(parse(b"nope"), Err(JournalError::BadHeader)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
