//! Replication of the sequenced input from the primary engine to the DR
//! journal, over TCP on the overlay. The primary acknowledges nothing to a
//! customer before the DR site says the record is durable.
//!
//! ```text
//! frame:    length u32 (of what follows, at most MAX_FRAME) | type u8 | payload
//! 'H' hello    primary -> DR: epoch u32 | name length u8 | name | symbol count u16 | symbol u16 * count
//! 'W' welcome  DR -> primary: have u64 (DR holds records 1..=have) | epoch u32 (highest it knows)
//! 'R' records  primary -> DR: count u16 | (length u16 | wire::input record) * count
//! 'T' tick     primary -> DR: last sequenced u64 (heartbeat, several a second)
//! 'E' end      primary -> DR: a clean shutdown (no failover follows)
//! 'D' durable  DR -> primary: seq u64 (every record up to it is fsync'd at DR)
//! 'F' fenced   DR -> primary: epoch u32 (a newer primary exists: stop trading)
//! ```
//!
//! On the overlay every frame is sealed (`crate::auth::channel`: a tag
//! after the payload, the length counting it, nonces exchanged first).
//!
//! After `W`, the primary sends records from `have + 1` on (from its own
//! journal if it already has them). A DR that has more records than the
//! primary, or a primary whose epoch is below the DR's, is refused.

use super::buf::{Put, Reader};
use super::input::{decode_record, encode_record};
use super::DecodeError;
use crate::events::SequencedInput;
use crate::types::{Epoch, Seq, SymbolIndex};

/// The largest frame (after the length prefix).
pub const MAX_FRAME: usize = 1 << 20;

/// One replication message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplMessage {
    /// Primary: who it is.
    Hello {
        /// Its epoch.
        epoch: Epoch,
        /// The engine's logical name.
        name: String,
        /// Its symbols.
        symbols: Vec<SymbolIndex>,
    },
    /// DR: what it holds.
    Welcome {
        /// Records 1..=have are durable at DR.
        have: Seq,
        /// The highest epoch DR has seen.
        epoch: Epoch,
    },
    /// Primary: records, in sequence.
    Records(Vec<SequencedInput>),
    /// Primary: still alive; the last sequence number it stamped.
    Tick(Seq),
    /// Primary: stopping cleanly.
    End,
    /// DR: durable up to here.
    Durable(Seq),
    /// DR: a newer primary (this epoch) exists.
    Fenced(Epoch),
}

/// Appends one framed message.
pub fn encode(m: &ReplMessage, out: &mut Vec<u8>) {
    let start = out.len();
    out.put_u32(0);
    match m {
        ReplMessage::Hello { epoch, name, symbols } => {
            out.put_u8(b'H');
            out.put_u32(*epoch);
            let name = &name.as_bytes()[..name.len().min(255)];
            out.put_u8(name.len() as u8);
            out.put(name);
            let n = symbols.len().min(u16::MAX as usize);
            out.put_u16(n as u16);
            for s in &symbols[..n] {
                out.put_u16(*s);
            }
        }
        ReplMessage::Welcome { have, epoch } => {
            out.put_u8(b'W');
            out.put_u64(*have);
            out.put_u32(*epoch);
        }
        ReplMessage::Records(recs) => {
            out.put_u8(b'R');
            out.put_u16(recs.len() as u16);
            let mut one = Vec::with_capacity(64);
            for r in recs {
                one.clear();
                encode_record(r, &mut one);
                out.put_u16(one.len() as u16);
                out.put(&one);
            }
        }
        ReplMessage::Tick(seq) => {
            out.put_u8(b'T');
            out.put_u64(*seq);
        }
        ReplMessage::End => out.put_u8(b'E'),
        ReplMessage::Durable(seq) => {
            out.put_u8(b'D');
            out.put_u64(*seq);
        }
        ReplMessage::Fenced(epoch) => {
            out.put_u8(b'F');
            out.put_u32(*epoch);
        }
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// The most records one `R` frame carries (the sender splits beyond it).
pub const MAX_RECORDS_PER_FRAME: usize = 4096;

/// Decodes one frame from the front of `buf`: `Ok(None)` when more bytes
/// are needed, else the message and the bytes it took.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(ReplMessage, usize)>, DecodeError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(DecodeError::BadField { field: "frame length", value: len as u64 });
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let m = decode_body(&buf[4..4 + len])?;
    Ok(Some((m, 4 + len)))
}

/// Decodes a frame's body (type and payload, without the length).
pub fn decode_body(b: &[u8]) -> Result<ReplMessage, DecodeError> {
    let mut r = Reader::new(b);
    let m = match r.u8()? {
        b'H' => {
            let epoch = r.u32()?;
            let n = r.u8()? as usize;
            let name = (0..n).map(|_| r.u8()).collect::<Result<Vec<u8>, _>>()?;
            let name = String::from_utf8(name).map_err(|_| DecodeError::BadField { field: "name", value: 0 })?;
            let count = r.u16()? as usize;
            let symbols = (0..count).map(|_| r.u16()).collect::<Result<Vec<_>, _>>()?;
            ReplMessage::Hello { epoch, name, symbols }
        }
        b'W' => ReplMessage::Welcome { have: r.u64()?, epoch: r.u32()? },
        b'R' => {
            let count = r.u16()? as usize;
            if count > MAX_RECORDS_PER_FRAME {
                return Err(DecodeError::BadField { field: "record count", value: count as u64 });
            }
            let mut recs = Vec::with_capacity(count);
            for _ in 0..count {
                let len = r.u16()? as usize;
                let body = (0..len).map(|_| r.u8()).collect::<Result<Vec<u8>, _>>()?;
                recs.push(decode_record(&body)?);
            }
            ReplMessage::Records(recs)
        }
        b'T' => ReplMessage::Tick(r.u64()?),
        b'E' => ReplMessage::End,
        b'D' => ReplMessage::Durable(r.u64()?),
        b'F' => ReplMessage::Fenced(r.u32()?),
        t => return Err(DecodeError::BadField { field: "replication message type", value: t as u64 }),
    };
    r.finish()?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Input;

    #[test]
    fn round_trips_and_partial_frames() {
        let rec = |seq| SequencedInput { seq, epoch: 2, time: 7, input: Input::EndOfDay };
        let msgs = [
            ReplMessage::Hello { epoch: 3, name: "eng1".into(), symbols: vec![1, 2, 100] },
            ReplMessage::Welcome { have: 42, epoch: 3 },
            ReplMessage::Records(vec![rec(1), rec(2)]),
            ReplMessage::Tick(9),
            ReplMessage::End,
            ReplMessage::Durable(2),
            ReplMessage::Fenced(4),
        ];
        let mut buf = Vec::new();
        for m in &msgs {
            encode(m, &mut buf);
        }
        let mut at = 0;
        for m in &msgs {
            assert_eq!(decode_frame(&buf[at..at + 3]).unwrap(), None);
            let (got, n) = decode_frame(&buf[at..]).unwrap().unwrap();
            assert_eq!(&got, m);
            at += n;
        }
        assert_eq!(at, buf.len());
    }

    #[test]
    fn hostile_frames_are_errors() {
        assert!(decode_frame(&[0, 0, 0, 0]).is_err());
        assert!(decode_frame(&[0xff, 0, 0, 0, b'T']).is_err());
        assert!(decode_frame(&[0, 0, 0, 1, b'?']).is_err());
        assert!(decode_frame(&[0, 0, 0, 3, b'T', 0, 0]).is_err());
        assert!(decode_frame(&[0, 0, 0, 3, b'R', 0xff, 0xff]).is_err());
        // A record that does not decode.
        assert!(decode_frame(&[0, 0, 0, 6, b'R', 0, 1, 0, 1, 9]).is_err());
    }
}
