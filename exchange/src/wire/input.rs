//! Engine inputs on the wire: what a gateway sends to a symbol's orders
//! group (inside MoldUDP64 packets), and the sequenced record the journal
//! keeps and the DR standby replays.
//!
//! An input starts with its type byte; every message has a fixed length:
//!
//! ```text
//! 'O' enter   (26): type | session u32 | client_id u64 | symbol u16 | side u8 ('B'/'S')
//!                   | price u32 | qty u32 | kind u8 ('L'/'M') | tif u8 ('0' day, '1' GTC, '3' IOC, '4' FOK)
//! 'X' cancel  (15): type | session u32 | client_id u64 | symbol u16
//! 'U' reduce  (19): type | session u32 | client_id u64 | symbol u16 | new remaining qty u32
//! 'Z' end of day (1): type
//! ```
//!
//! A sequenced record is a 20-byte header and the input:
//!
//! ```text
//! seq u64 | epoch u32 | time u64 (ns since the Unix epoch) | input
//! ```
//!
//! Framing records in a file (length, checksum) is the journal's business.

use super::buf::{Put, Reader};
use super::DecodeError;
use crate::events::{Input, NewOrder, SequencedInput};
use crate::types::*;

/// Bytes of a sequenced record before the input.
pub const RECORD_HEADER_LEN: usize = 20;
/// The longest encoded input.
pub const MAX_INPUT_LEN: usize = 26;

/// Appends an input.
pub fn encode_input(input: &Input, out: &mut Vec<u8>) {
    match *input {
        Input::Enter(o) => {
            out.put_u8(b'O');
            out.put_u32(o.session);
            out.put_u64(o.client_id);
            out.put_u16(o.symbol);
            out.put_u8(o.side.to_byte());
            out.put_u32(o.price);
            out.put_u32(o.qty);
            out.put_u8(o.kind.to_byte());
            out.put_u8(o.tif.to_byte());
        }
        Input::Cancel { session, client_id, symbol } => {
            out.put_u8(b'X');
            out.put_u32(session);
            out.put_u64(client_id);
            out.put_u16(symbol);
        }
        Input::Reduce { session, client_id, symbol, qty } => {
            out.put_u8(b'U');
            out.put_u32(session);
            out.put_u64(client_id);
            out.put_u16(symbol);
            out.put_u32(qty);
        }
        Input::EndOfDay => out.put_u8(b'Z'),
    }
}

/// Decodes exactly one input (the whole slice).
pub fn decode_input(buf: &[u8]) -> Result<Input, DecodeError> {
    let mut r = Reader::new(buf);
    let input = read_input(&mut r)?;
    r.finish()?;
    Ok(input)
}

fn read_input(r: &mut Reader<'_>) -> Result<Input, DecodeError> {
    Ok(match r.u8()? {
        b'O' => Input::Enter(NewOrder {
            session: r.u32()?,
            client_id: r.u64()?,
            symbol: r.u16()?,
            side: r.code("side", Side::from_byte)?,
            price: r.u32()?,
            qty: r.u32()?,
            kind: r.code("order type", OrderType::from_byte)?,
            tif: r.code("time in force", TimeInForce::from_byte)?,
        }),
        b'X' => Input::Cancel { session: r.u32()?, client_id: r.u64()?, symbol: r.u16()? },
        b'U' => Input::Reduce { session: r.u32()?, client_id: r.u64()?, symbol: r.u16()?, qty: r.u32()? },
        b'Z' => Input::EndOfDay,
        t => return Err(DecodeError::UnknownType(t)),
    })
}

/// Appends a sequenced record.
pub fn encode_record(rec: &SequencedInput, out: &mut Vec<u8>) {
    out.put_u64(rec.seq);
    out.put_u32(rec.epoch);
    out.put_u64(rec.time);
    encode_input(&rec.input, out);
}

/// Decodes exactly one sequenced record (the whole slice).
pub fn decode_record(buf: &[u8]) -> Result<SequencedInput, DecodeError> {
    let mut r = Reader::new(buf);
    let rec = SequencedInput { seq: r.u64()?, epoch: r.u32()?, time: r.u64()?, input: read_input(&mut r)? };
    r.finish()?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::arb;
    use proptest::prelude::*;

    #[test]
    fn layout() {
        let o = NewOrder {
            session: 0x0102_0304,
            client_id: 5,
            symbol: 7,
            side: Side::Sell,
            price: 1234,
            qty: 100,
            kind: OrderType::Limit,
            tif: TimeInForce::Ioc,
        };
        let mut b = vec![];
        encode_input(&Input::Enter(o), &mut b);
        assert_eq!(b.len(), MAX_INPUT_LEN);
        assert_eq!(&b[..5], &[b'O', 1, 2, 3, 4]);
        assert_eq!(&b[13..16], &[0, 7, b'S']);
        assert_eq!(&b[24..], b"L3");
        let mut b = vec![];
        encode_record(&SequencedInput { seq: 1, epoch: 2, time: 3, input: Input::EndOfDay }, &mut b);
        assert_eq!(b.len(), RECORD_HEADER_LEN + 1);
        assert_eq!(decode_record(&b[..RECORD_HEADER_LEN]), Err(DecodeError::Truncated { need: 21, have: 20 }));
        assert_eq!(decode_input(b"Q"), Err(DecodeError::UnknownType(b'Q')));
        assert_eq!(decode_input(b"ZZ"), Err(DecodeError::Trailing(1)));
        let mut bad = vec![];
        encode_input(&Input::Enter(o), &mut bad);
        bad[15] = b'x';
        assert_eq!(decode_input(&bad), Err(DecodeError::BadField { field: "side", value: u64::from(b'x') }));
    }

    proptest! {
        #[test]
        fn input_round_trip(input in arb::input()) {
            let mut b = vec![];
            encode_input(&input, &mut b);
            prop_assert!(b.len() <= MAX_INPUT_LEN);
            prop_assert_eq!(decode_input(&b), Ok(input));
            for cut in 0..b.len() {
                prop_assert!(decode_input(&b[..cut]).is_err());
            }
        }

        #[test]
        fn record_round_trip(rec in arb::record()) {
            let mut b = vec![];
            encode_record(&rec, &mut b);
            prop_assert_eq!(decode_record(&b), Ok(rec));
            for cut in 0..b.len() {
                prop_assert!(decode_record(&b[..cut]).is_err());
            }
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_input(&bytes);
            let _ = decode_record(&bytes);
        }
    }
}
