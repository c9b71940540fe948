//! ITCH-style market-data messages, carried in MoldUDP64 packets on each
//! symbol's market-data group.
//!
//! Every message starts with the same 15-byte header, and the fencing epoch
//! is in it: a message keeps its epoch when it is re-requested, recorded or
//! relayed on its own, and a consumer drops any message whose epoch is lower
//! than the highest it has seen (a fenced primary that came back).
//!
//! ```text
//! header (15): type u8 | epoch u32 | locate u16 (symbol index; 0 = all) | timestamp u64 (ns since the Unix epoch)
//! 'A' add order        (32): header | order_id u64 | side u8 ('B'/'S') | qty u32 | price u32
//! 'E' order executed   (35): header | order_id u64 | executed qty u32 | match_id u64
//! 'X' order cancel     (27): header | order_id u64 | cancelled qty u32
//! 'D' order delete     (23): header | order_id u64
//! 'P' trade            (32): header | aggressor side u8 | qty u32 | price u32 | match_id u64
//! 'S' system event     (16): header | code u8 ('O' start of messages, 'Q' start of market,
//!                                             'M' end of market, 'C' end of messages, 'H' heartbeat)
//! 'Z' checkpoint       (55): header (locate 0) | seq u64 | state digest [32]
//! ```
//!
//! As in ITCH, an `E` that takes an order's last shares removes it from the
//! book (no `D` follows); `D` is for cancelled and expired orders.

use super::buf::{Put, Reader};
use super::DecodeError;
use crate::events::{MdEvent, SystemCode};
use crate::types::*;

/// The longest message.
pub const MAX_LEN: usize = 55;

/// One market-data message: an event with its epoch and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ItchMessage {
    /// The epoch of the primary that produced it.
    pub epoch: Epoch,
    /// When (the input's sequencing time, or the publisher's for system
    /// events and checkpoints).
    pub time: Timestamp,
    /// What happened.
    pub event: MdEvent,
}

/// Appends a message.
pub fn encode(m: &ItchMessage, out: &mut Vec<u8>) {
    let ty = match m.event {
        MdEvent::AddOrder { .. } => b'A',
        MdEvent::OrderExecuted { .. } => b'E',
        MdEvent::OrderCancelled { .. } => b'X',
        MdEvent::OrderDeleted { .. } => b'D',
        MdEvent::Trade { .. } => b'P',
        MdEvent::System { .. } => b'S',
        MdEvent::Checkpoint { .. } => b'Z',
    };
    out.put_u8(ty);
    out.put_u32(m.epoch);
    out.put_u16(m.event.symbol());
    out.put_u64(m.time);
    match m.event {
        MdEvent::AddOrder { order_id, side, price, qty, .. } => {
            out.put_u64(order_id);
            out.put_u8(side.to_byte());
            out.put_u32(qty);
            out.put_u32(price);
        }
        MdEvent::OrderExecuted { order_id, qty, match_id, .. } => {
            out.put_u64(order_id);
            out.put_u32(qty);
            out.put_u64(match_id);
        }
        MdEvent::OrderCancelled { order_id, qty, .. } => {
            out.put_u64(order_id);
            out.put_u32(qty);
        }
        MdEvent::OrderDeleted { order_id, .. } => out.put_u64(order_id),
        MdEvent::Trade { price, qty, aggressor, match_id, .. } => {
            out.put_u8(aggressor.to_byte());
            out.put_u32(qty);
            out.put_u32(price);
            out.put_u64(match_id);
        }
        MdEvent::System { code, .. } => out.put_u8(code.to_byte()),
        MdEvent::Checkpoint { seq, digest } => {
            out.put_u64(seq);
            out.put(&digest.0);
        }
    }
}

/// Decodes exactly one message (the whole slice).
pub fn decode(buf: &[u8]) -> Result<ItchMessage, DecodeError> {
    let mut r = Reader::new(buf);
    let ty = r.u8()?;
    let epoch = r.u32()?;
    let symbol = r.u16()?;
    let time = r.u64()?;
    let event = match ty {
        b'A' => MdEvent::AddOrder {
            symbol,
            order_id: r.u64()?,
            side: r.code("side", Side::from_byte)?,
            qty: r.u32()?,
            price: r.u32()?,
        },
        b'E' => MdEvent::OrderExecuted { symbol, order_id: r.u64()?, qty: r.u32()?, match_id: r.u64()? },
        b'X' => MdEvent::OrderCancelled { symbol, order_id: r.u64()?, qty: r.u32()? },
        b'D' => MdEvent::OrderDeleted { symbol, order_id: r.u64()? },
        b'P' => MdEvent::Trade {
            symbol,
            aggressor: r.code("side", Side::from_byte)?,
            qty: r.u32()?,
            price: r.u32()?,
            match_id: r.u64()?,
        },
        b'S' => MdEvent::System { symbol, code: r.code("system event code", SystemCode::from_byte)? },
        b'Z' => {
            if symbol != 0 {
                return Err(DecodeError::BadField { field: "checkpoint locate", value: u64::from(symbol) });
            }
            MdEvent::Checkpoint { seq: r.u64()?, digest: Digest(r.array()?) }
        }
        t => return Err(DecodeError::UnknownType(t)),
    };
    r.finish()?;
    Ok(ItchMessage { epoch, time, event })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::arb;
    use proptest::prelude::*;

    #[test]
    fn lengths() {
        let digest = Digest([7; 32]);
        let cases = [
            (MdEvent::AddOrder { symbol: 1, order_id: 2, side: Side::Buy, price: 3, qty: 4 }, 32),
            (MdEvent::OrderExecuted { symbol: 1, order_id: 2, qty: 3, match_id: 4 }, 35),
            (MdEvent::OrderCancelled { symbol: 1, order_id: 2, qty: 3 }, 27),
            (MdEvent::OrderDeleted { symbol: 1, order_id: 2 }, 23),
            (MdEvent::Trade { symbol: 1, price: 2, qty: 3, aggressor: Side::Sell, match_id: 4 }, 32),
            (MdEvent::System { symbol: 0, code: SystemCode::Heartbeat }, 16),
            (MdEvent::Checkpoint { seq: 9, digest }, MAX_LEN),
        ];
        for (event, len) in cases {
            let m = ItchMessage { epoch: 3, time: 4, event };
            let mut b = vec![];
            encode(&m, &mut b);
            assert_eq!(b.len(), len, "{event:?}");
            assert_eq!(&b[1..7], &[0, 0, 0, 3, 0, event.symbol() as u8]);
            assert_eq!(decode(&b), Ok(m));
        }
        let mut b = vec![];
        encode(&ItchMessage { epoch: 1, time: 1, event: MdEvent::Checkpoint { seq: 1, digest } }, &mut b);
        b[6] = 1;
        assert_eq!(decode(&b), Err(DecodeError::BadField { field: "checkpoint locate", value: 1 }));
    }

    proptest! {
        #[test]
        fn round_trip(m in arb::itch()) {
            let mut b = vec![];
            encode(&m, &mut b);
            prop_assert!(b.len() <= MAX_LEN);
            prop_assert_eq!(decode(&b), Ok(m));
            for cut in 0..b.len() {
                prop_assert!(decode(&b[..cut]).is_err());
            }
            b.push(0);
            prop_assert_eq!(decode(&b), Err(DecodeError::Trailing(1)));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = decode(&bytes);
        }
    }
}
