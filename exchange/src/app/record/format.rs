//! The record file `aex record` writes and `aex audit` reads:
//!
//! ```text
//! header: "AEXR" | version u8 (1)
//! entry:  symbol u16 | seq u64 | len u16 | ITCH message (len bytes)
//! ```
//!
//! Entries are appended in stream order per symbol (symbols interleave). A
//! recorder killed mid-write leaves a torn last entry; readers ignore it and
//! say so.

use crate::types::SymbolIndex;
use thiserror::Error;

const MAGIC: &[u8; 4] = b"AEXR";
const VERSION: u8 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 5;
/// Bytes of an entry before the message.
pub const ENTRY_HEADER_LEN: usize = 12;

/// Why a record file could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    /// The header is not a record file's.
    #[error("not an AEX market-data record (bad header)")]
    BadHeader,
}

/// One recorded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The stream's symbol.
    pub symbol: SymbolIndex,
    /// The message's sequence number in the stream.
    pub seq: u64,
    /// The ITCH bytes.
    pub bytes: Vec<u8>,
}

/// A whole record file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recording {
    /// The entries in file order.
    pub entries: Vec<Entry>,
    /// Whether a torn entry was found at the end (and ignored).
    pub torn_tail: bool,
}

/// The file header.
pub fn header() -> [u8; HEADER_LEN] {
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION]
}

/// Appends one entry. Messages longer than u16 cannot come off a Mold packet.
pub fn encode_entry(symbol: SymbolIndex, seq: u64, bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&symbol.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&(bytes.len().min(u16::MAX as usize) as u16).to_be_bytes());
    out.extend_from_slice(&bytes[..bytes.len().min(u16::MAX as usize)]);
}

/// Parses a whole record file held in memory.
pub fn parse(bytes: &[u8]) -> Result<Recording, RecordError> {
    if bytes.len() < HEADER_LEN || bytes[..HEADER_LEN] != header() {
        return Err(RecordError::BadHeader);
    }
    let mut rest = &bytes[HEADER_LEN..];
    let mut rec = Recording::default();
    while !rest.is_empty() {
        if rest.len() < ENTRY_HEADER_LEN {
            rec.torn_tail = true;
            break;
        }
        let symbol = u16::from_be_bytes([rest[0], rest[1]]);
        let seq = u64::from_be_bytes(rest[2..10].try_into().unwrap_or_default());
        let len = u16::from_be_bytes([rest[10], rest[11]]) as usize;
        let Some(msg) = rest.get(ENTRY_HEADER_LEN..ENTRY_HEADER_LEN + len) else {
            rec.torn_tail = true;
            break;
        };
        rec.entries.push(Entry { symbol, seq, bytes: msg.to_vec() });
        rest = &rest[ENTRY_HEADER_LEN + len..];
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_tail() {
        let mut b = header().to_vec();
        encode_entry(3, 1, b"abc", &mut b);
        encode_entry(4, 7, b"", &mut b);
        let r = parse(&b).unwrap();
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.entries[0], Entry { symbol: 3, seq: 1, bytes: b"abc".to_vec() });
        assert!(!r.torn_tail);
        for cut in HEADER_LEN..b.len() {
            let r = parse(&b[..cut]).unwrap();
            assert!(r.torn_tail || cut == HEADER_LEN || cut == HEADER_LEN + 15, "cut {cut}");
        }
        assert_eq!(parse(b"AEXJ\x01"), Err(RecordError::BadHeader));
        assert_eq!(parse(b""), Err(RecordError::BadHeader));
    }
}
