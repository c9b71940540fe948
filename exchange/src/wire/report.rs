//! Engine responses on the wire, for the gateways (who turn them into
//! [`super::oe`] messages for their customers), and a whole [`Outputs`] as
//! bytes (what "byte-identical output" is measured on).
//!
//! A report is a 21-byte header and a response:
//!
//! ```text
//! header (21): type u8 | epoch u32 | seq u64 (the input that produced it) | time u64
//! 'A' accepted  (62): header | ack seq u64 | order_id u64 | session u32 | client_id u64 | symbol u16
//!                     | side u8 | price u32 | qty u32 | kind u8 | tif u8
//! 'J' rejected  (37): header | session u32 | client_id u64 | symbol u16 | request u8 | reason u8
//! 'E' executed  (88): header | match_id u64 | symbol u16 | price u32 | qty u32 | aggressor u8
//!                     | maker: session u32 | client_id u64 | order_id u64 | leaves u32
//!                     | taker: session u32 | client_id u64 | order_id u64 | leaves u32
//! 'C' cancelled (52): header | session u32 | client_id u64 | order_id u64 | symbol u16 | qty u32
//!                     | leaves u32 | reason u8
//! ```
//!
//! Codes are those of [`super::oe`]. An [`Outputs`] is
//!
//! ```text
//! seq u64 | epoch u32 | time u64 | responses u32 | md events u32
//! | (len u16 | report) * responses | (len u16 | ITCH message) * md events
//! ```

use super::buf::{Put, Reader};
use super::{itch, DecodeError};
use crate::events::*;
use crate::types::*;

/// The longest report.
pub const MAX_LEN: usize = 88;

/// One response with the stamps of the input that produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Report {
    /// The engine's epoch.
    pub epoch: Epoch,
    /// The input's sequence number.
    pub seq: Seq,
    /// The input's time.
    pub time: Timestamp,
    /// The response.
    pub response: Response,
}

/// Appends a report.
pub fn encode(rep: &Report, out: &mut Vec<u8>) {
    let ty = match rep.response {
        Response::Accepted(_) => b'A',
        Response::Rejected(_) => b'J',
        Response::Executed(_) => b'E',
        Response::Cancelled(_) => b'C',
    };
    out.put_u8(ty);
    out.put_u32(rep.epoch);
    out.put_u64(rep.seq);
    out.put_u64(rep.time);
    match rep.response {
        Response::Accepted(a) => {
            let o = a.order;
            out.put_u64(a.seq);
            out.put_u64(a.order_id);
            out.put_u32(o.session);
            out.put_u64(o.client_id);
            out.put_u16(o.symbol);
            out.put_u8(o.side.to_byte());
            out.put_u32(o.price);
            out.put_u32(o.qty);
            out.put_u8(o.kind.to_byte());
            out.put_u8(o.tif.to_byte());
        }
        Response::Rejected(r) => {
            out.put_u32(r.session);
            out.put_u64(r.client_id);
            out.put_u16(r.symbol);
            out.put_u8(r.request.to_byte());
            out.put_u8(r.reason.to_byte());
        }
        Response::Executed(e) => {
            out.put_u64(e.match_id);
            out.put_u16(e.symbol);
            out.put_u32(e.price);
            out.put_u32(e.qty);
            out.put_u8(e.aggressor.to_byte());
            for p in [e.maker, e.taker] {
                out.put_u32(p.session);
                out.put_u64(p.client_id);
                out.put_u64(p.order_id);
                out.put_u32(p.leaves);
            }
        }
        Response::Cancelled(c) => {
            out.put_u32(c.session);
            out.put_u64(c.client_id);
            out.put_u64(c.order_id);
            out.put_u16(c.symbol);
            out.put_u32(c.qty);
            out.put_u32(c.leaves);
            out.put_u8(c.reason.to_byte());
        }
    }
}

fn party(r: &mut Reader<'_>) -> Result<Party, DecodeError> {
    Ok(Party { session: r.u32()?, client_id: r.u64()?, order_id: r.u64()?, leaves: r.u32()? })
}

/// Decodes exactly one report (the whole slice).
pub fn decode(buf: &[u8]) -> Result<Report, DecodeError> {
    let mut r = Reader::new(buf);
    let ty = r.u8()?;
    let (epoch, seq, time) = (r.u32()?, r.u64()?, r.u64()?);
    let response = match ty {
        b'A' => {
            let ack_seq = r.u64()?;
            let order_id = r.u64()?;
            let order = NewOrder {
                session: r.u32()?,
                client_id: r.u64()?,
                symbol: r.u16()?,
                side: r.code("side", Side::from_byte)?,
                price: r.u32()?,
                qty: r.u32()?,
                kind: r.code("order type", OrderType::from_byte)?,
                tif: r.code("time in force", TimeInForce::from_byte)?,
            };
            Response::Accepted(Ack { seq: ack_seq, order_id, order })
        }
        b'J' => Response::Rejected(Reject {
            session: r.u32()?,
            client_id: r.u64()?,
            symbol: r.u16()?,
            request: r.code("request", RequestKind::from_byte)?,
            reason: r.code("reject reason", RejectReason::from_byte)?,
        }),
        b'E' => Response::Executed(Execution {
            match_id: r.u64()?,
            symbol: r.u16()?,
            price: r.u32()?,
            qty: r.u32()?,
            aggressor: r.code("side", Side::from_byte)?,
            maker: party(&mut r)?,
            taker: party(&mut r)?,
        }),
        b'C' => Response::Cancelled(Cancelled {
            session: r.u32()?,
            client_id: r.u64()?,
            order_id: r.u64()?,
            symbol: r.u16()?,
            qty: r.u32()?,
            leaves: r.u32()?,
            reason: r.code("cancel reason", CancelReason::from_byte)?,
        }),
        t => return Err(DecodeError::UnknownType(t)),
    };
    r.finish()?;
    Ok(Report { epoch, seq, time, response })
}

/// Appends a whole [`Outputs`]: the canonical bytes of what one input produced.
pub fn encode_outputs(o: &Outputs, out: &mut Vec<u8>) {
    out.put_u64(o.seq);
    out.put_u32(o.epoch);
    out.put_u64(o.time);
    out.put_u32(o.responses.len() as u32);
    out.put_u32(o.market_data.len() as u32);
    for &response in &o.responses {
        let at = out.len();
        out.put_u16(0);
        encode(&Report { epoch: o.epoch, seq: o.seq, time: o.time, response }, out);
        let len = (out.len() - at - 2) as u16;
        out[at..at + 2].copy_from_slice(&len.to_be_bytes());
    }
    for &event in &o.market_data {
        let at = out.len();
        out.put_u16(0);
        itch::encode(&itch::ItchMessage { epoch: o.epoch, time: o.time, event }, out);
        let len = (out.len() - at - 2) as u16;
        out[at..at + 2].copy_from_slice(&len.to_be_bytes());
    }
}

/// Decodes exactly one [`Outputs`] (the whole slice); every item must carry
/// the outputs' own stamps.
pub fn decode_outputs(buf: &[u8]) -> Result<Outputs, DecodeError> {
    let mut r = Reader::new(buf);
    let (seq, epoch, time) = (r.u64()?, r.u32()?, r.u64()?);
    let (n_resp, n_md) = (r.u32()? as usize, r.u32()? as usize);
    // Each item takes at least 2 bytes: counts beyond that are lies, refused
    // before anything is allocated for them.
    if n_resp.saturating_add(n_md).saturating_mul(2) > r.remaining() {
        return Err(DecodeError::BadLength(n_resp.saturating_add(n_md)));
    }
    let mut o =
        Outputs { seq, epoch, time, responses: Vec::with_capacity(n_resp), market_data: Vec::with_capacity(n_md) };
    let stamp = |e: Epoch, t: Timestamp, s: Option<Seq>| {
        if e != epoch || t != time || s.is_some_and(|s| s != seq) {
            return Err(DecodeError::BadField { field: "item stamp", value: u64::from(e) });
        }
        Ok(())
    };
    for _ in 0..n_resp {
        let len = usize::from(r.u16()?);
        let rep = decode(r.bytes(len)?)?;
        stamp(rep.epoch, rep.time, Some(rep.seq))?;
        o.responses.push(rep.response);
    }
    for _ in 0..n_md {
        let len = usize::from(r.u16()?);
        let m = itch::decode(r.bytes(len)?)?;
        stamp(m.epoch, m.time, None)?;
        o.market_data.push(m.event);
    }
    r.finish()?;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::arb;
    use proptest::prelude::*;

    #[test]
    fn lengths() {
        let p = Party { session: 1, client_id: 2, order_id: 3, leaves: 4 };
        let order = NewOrder {
            session: 1,
            client_id: 2,
            symbol: 3,
            side: Side::Buy,
            price: 4,
            qty: 5,
            kind: OrderType::Limit,
            tif: TimeInForce::Gtc,
        };
        let cases = [
            (Response::Accepted(Ack { seq: 1, order_id: 2, order }), 62),
            (
                Response::Rejected(Reject {
                    session: 1,
                    client_id: 2,
                    symbol: 3,
                    request: RequestKind::Cancel,
                    reason: RejectReason::UnknownOrder,
                }),
                37,
            ),
            (
                Response::Executed(Execution {
                    match_id: 1,
                    symbol: 2,
                    price: 3,
                    qty: 4,
                    aggressor: Side::Sell,
                    maker: p,
                    taker: p,
                }),
                88,
            ),
            (
                Response::Cancelled(Cancelled {
                    session: 1,
                    client_id: 2,
                    order_id: 3,
                    symbol: 4,
                    qty: 5,
                    leaves: 0,
                    reason: CancelReason::FokKill,
                }),
                52,
            ),
        ];
        for (response, len) in cases {
            let rep = Report { epoch: 1, seq: 2, time: 3, response };
            let mut b = vec![];
            encode(&rep, &mut b);
            assert_eq!(b.len(), len, "{response:?}");
            assert_eq!(decode(&b), Ok(rep));
        }
    }

    #[test]
    fn outputs_refuse_lying_counts() {
        let mut b = vec![];
        encode_outputs(&Outputs { seq: 1, epoch: 1, time: 1, ..Default::default() }, &mut b);
        assert_eq!(decode_outputs(&b).map(|o| o.seq), Ok(1));
        b[20..24].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode_outputs(&b), Err(DecodeError::BadLength(_))));
    }

    proptest! {
        #[test]
        fn round_trip(rep in arb::report()) {
            let mut b = vec![];
            encode(&rep, &mut b);
            prop_assert!(b.len() <= MAX_LEN);
            prop_assert_eq!(decode(&b), Ok(rep));
            for cut in 0..b.len() {
                prop_assert!(decode(&b[..cut]).is_err());
            }
        }

        #[test]
        fn outputs_round_trip(o in arb::outputs()) {
            let mut b = vec![];
            encode_outputs(&o, &mut b);
            prop_assert_eq!(decode_outputs(&b), Ok(o));
            for cut in 0..b.len() {
                prop_assert!(decode_outputs(&b[..cut]).is_err());
            }
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
            let _ = decode_outputs(&bytes);
        }
    }
}
