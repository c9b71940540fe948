//! Order entry between a customer and its broker/dealer's gateway over TCP,
//! in the spirit of SoupBinTCP (framing, login, heartbeats) and OUCH (the
//! order messages), folded into one layer.
//!
//! Every frame is a u16 length (of what follows it: type byte and payload)
//! and then the message. A receiver reads frames off the stream with
//! [`decode_frame`]; an unknown type, a wrong length for the type or a bad
//! field is an error (the gateway drops the connection). Strings are ASCII
//! padded on the right with spaces.
//!
//! Customer to gateway:
//!
//! ```text
//! 'L' login          (25): type | user [8] | password [16]
//! 'O' enter order    (29): type | client_id u64 | symbol [9] | side u8 ('B'/'S') | price u32 (ticks; 0 for market)
//!                          | qty u32 | kind u8 ('L' limit, 'M' market) | tif u8 ('0' day, '1' GTC, '3' IOC, '4' FOK)
//!                          symbol: 'I' | index u16 | 6 zero bytes,  or  'T' | ticker [8]
//! 'X' cancel          (9): type | client_id u64
//! 'U' reduce         (13): type | client_id u64 | new remaining qty u32
//! 'H' heartbeat       (1): type (both directions, after 1 s without other traffic)
//! ```
//!
//! Gateway to customer:
//!
//! ```text
//! 'a' login accepted  (5): type | session u32
//! 'j' login rejected  (2): type | reason u8 ('A' not authorised, 'S' no session available)
//! 'A' accepted       (46): type | client_id u64 | order_id u64 | symbol u16 | side u8 | price u32 | qty u32
//!                          | kind u8 | tif u8 | seq u64 (of the accepting input) | time u64
//! 'J' rejected       (19): type | client_id u64 | request u8 ('O', 'X', 'U') | reason u8 | time u64
//!                          reasons: 1 unknown symbol, 2 bad price, 3 bad quantity,
//!                          4 duplicate client order id, 5 unknown order
//! 'E' executed       (46): type | client_id u64 | order_id u64 | match_id u64 | price u32 | qty u32
//!                          | leaves u32 | liquidity u8 ('A' added: maker, 'R' removed: taker) | time u64
//! 'C' cancelled      (34): type | client_id u64 | order_id u64 | qty u32 (cancelled) | leaves u32
//!                          | reason u8 | time u64
//!                          reasons: 1 user, 2 reduced, 3 IOC remainder, 4 market remainder,
//!                          5 FOK kill, 6 expired
//! ```
//!
//! Times are nanoseconds since the Unix epoch, the sequencer's stamp.

use super::buf::{Put, Reader};
use super::DecodeError;
use crate::events::*;
use crate::types::*;

/// The largest frame length (after the prefix) any message has.
pub const MAX_FRAME_LEN: usize = 46;

/// Why a login was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoginReject {
    /// Unknown user or wrong password (`A`).
    NotAuthorized,
    /// No session available (`S`).
    Unavailable,
}

impl LoginReject {
    fn to_byte(self) -> u8 {
        match self {
            LoginReject::NotAuthorized => b'A',
            LoginReject::Unavailable => b'S',
        }
    }

    fn from_byte(b: u8) -> Option<LoginReject> {
        match b {
            b'A' => Some(LoginReject::NotAuthorized),
            b'S' => Some(LoginReject::Unavailable),
            _ => None,
        }
    }
}

/// Whether an execution added liquidity (the maker) or removed it (the taker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Liquidity {
    /// The resting order (`A`).
    Added,
    /// The incoming order (`R`).
    Removed,
}

impl Liquidity {
    fn to_byte(self) -> u8 {
        match self {
            Liquidity::Added => b'A',
            Liquidity::Removed => b'R',
        }
    }

    fn from_byte(b: u8) -> Option<Liquidity> {
        match b {
            b'A' => Some(Liquidity::Added),
            b'R' => Some(Liquidity::Removed),
            _ => None,
        }
    }
}

/// An order as a customer enters it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnterOrder {
    /// The customer's id for it.
    pub client_id: ClientOrderId,
    /// The symbol, by index or ticker.
    pub symbol: SymbolRef,
    /// Buy or sell.
    pub side: Side,
    /// Limit price (0 for market).
    pub price: Price,
    /// Shares.
    pub qty: Qty,
    /// Limit or market.
    pub kind: OrderType,
    /// Time in force.
    pub tif: TimeInForce,
}

impl EnterOrder {
    /// The engine's input for it, once the gateway knows the session and has
    /// resolved the symbol.
    pub fn to_new_order(&self, session: SessionId, symbol: SymbolIndex) -> NewOrder {
        NewOrder {
            session,
            client_id: self.client_id,
            symbol,
            side: self.side,
            price: self.price,
            qty: self.qty,
            kind: self.kind,
            tif: self.tif,
        }
    }
}

/// An execution as one party sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Executed {
    /// The party's client order id.
    pub client_id: ClientOrderId,
    /// The party's exchange order id.
    pub order_id: OrderId,
    /// The match.
    pub match_id: MatchId,
    /// The price.
    pub price: Price,
    /// Shares.
    pub qty: Qty,
    /// What remains of the party's order.
    pub leaves: Qty,
    /// Maker or taker.
    pub liquidity: Liquidity,
    /// When.
    pub time: Timestamp,
}

/// One order-entry message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OeMessage {
    /// Customer: log in.
    Login {
        /// User name, ASCII, space padded.
        user: [u8; 8],
        /// Password, space padded.
        password: [u8; 16],
    },
    /// Customer: a new order.
    Enter(EnterOrder),
    /// Customer: cancel an order.
    Cancel {
        /// The order's client order id.
        client_id: ClientOrderId,
    },
    /// Customer: reduce an order's remaining quantity.
    Reduce {
        /// The order's client order id.
        client_id: ClientOrderId,
        /// The new remaining quantity.
        qty: Qty,
    },
    /// Either side: still here.
    Heartbeat,
    /// Gateway: logged in.
    LoginAccepted {
        /// The session id the engine will know this customer by.
        session: SessionId,
    },
    /// Gateway: login refused.
    LoginRejected(LoginReject),
    /// Gateway: an order was accepted.
    Accepted {
        /// The acknowledgement (its order's session is not sent: 0 when decoded).
        ack: Ack,
        /// When.
        time: Timestamp,
    },
    /// Gateway: a request was refused.
    Rejected {
        /// The client order id it named.
        client_id: ClientOrderId,
        /// What was refused.
        request: RequestKind,
        /// Why.
        reason: RejectReason,
        /// When.
        time: Timestamp,
    },
    /// Gateway: an execution.
    Executed(Executed),
    /// Gateway: shares cancelled.
    Cancelled {
        /// The client order id.
        client_id: ClientOrderId,
        /// The exchange order id.
        order_id: OrderId,
        /// Shares cancelled.
        qty: Qty,
        /// Shares still resting.
        leaves: Qty,
        /// Why.
        reason: CancelReason,
        /// When.
        time: Timestamp,
    },
}

/// The messages an engine response makes for the sessions it concerns,
/// with the session each goes to (an execution concerns two: the maker's
/// and the taker's, possibly the same).
pub fn for_sessions(resp: &Response, time: Timestamp) -> impl Iterator<Item = (SessionId, OeMessage)> {
    let (first, second) = match *resp {
        Response::Accepted(ack) => {
            let mut ack = ack;
            let session = ack.order.session;
            ack.order.session = 0;
            ((session, OeMessage::Accepted { ack, time }), None)
        }
        Response::Rejected(r) => (
            (r.session, OeMessage::Rejected { client_id: r.client_id, request: r.request, reason: r.reason, time }),
            None,
        ),
        Response::Cancelled(c) => (
            (
                c.session,
                OeMessage::Cancelled {
                    client_id: c.client_id,
                    order_id: c.order_id,
                    qty: c.qty,
                    leaves: c.leaves,
                    reason: c.reason,
                    time,
                },
            ),
            None,
        ),
        Response::Executed(e) => {
            let party = |p: Party, liquidity| {
                (
                    p.session,
                    OeMessage::Executed(Executed {
                        client_id: p.client_id,
                        order_id: p.order_id,
                        match_id: e.match_id,
                        price: e.price,
                        qty: e.qty,
                        leaves: p.leaves,
                        liquidity,
                        time,
                    }),
                )
            };
            (party(e.maker, Liquidity::Added), Some(party(e.taker, Liquidity::Removed)))
        }
    };
    std::iter::once(first).chain(second)
}

/// Appends one frame (length prefix and message).
pub fn encode_frame(m: &OeMessage, out: &mut Vec<u8>) {
    let start = out.len();
    out.put_u16(0);
    encode_message(m, out);
    let len = (out.len() - start - 2) as u16;
    out[start..start + 2].copy_from_slice(&len.to_be_bytes());
}

fn encode_message(m: &OeMessage, out: &mut Vec<u8>) {
    match *m {
        OeMessage::Login { user, password } => {
            out.put_u8(b'L');
            out.put(&user);
            out.put(&password);
        }
        OeMessage::Enter(o) => {
            out.put_u8(b'O');
            out.put_u64(o.client_id);
            match o.symbol {
                SymbolRef::Index(i) => {
                    out.put_u8(b'I');
                    out.put_u16(i);
                    out.put(&[0; 6]);
                }
                SymbolRef::Ticker(t) => {
                    out.put_u8(b'T');
                    out.put(&t.to_wire());
                }
            }
            out.put_u8(o.side.to_byte());
            out.put_u32(o.price);
            out.put_u32(o.qty);
            out.put_u8(o.kind.to_byte());
            out.put_u8(o.tif.to_byte());
        }
        OeMessage::Cancel { client_id } => {
            out.put_u8(b'X');
            out.put_u64(client_id);
        }
        OeMessage::Reduce { client_id, qty } => {
            out.put_u8(b'U');
            out.put_u64(client_id);
            out.put_u32(qty);
        }
        OeMessage::Heartbeat => out.put_u8(b'H'),
        OeMessage::LoginAccepted { session } => {
            out.put_u8(b'a');
            out.put_u32(session);
        }
        OeMessage::LoginRejected(r) => {
            out.put_u8(b'j');
            out.put_u8(r.to_byte());
        }
        OeMessage::Accepted { ack, time } => {
            let o = ack.order;
            out.put_u8(b'A');
            out.put_u64(o.client_id);
            out.put_u64(ack.order_id);
            out.put_u16(o.symbol);
            out.put_u8(o.side.to_byte());
            out.put_u32(o.price);
            out.put_u32(o.qty);
            out.put_u8(o.kind.to_byte());
            out.put_u8(o.tif.to_byte());
            out.put_u64(ack.seq);
            out.put_u64(time);
        }
        OeMessage::Rejected { client_id, request, reason, time } => {
            out.put_u8(b'J');
            out.put_u64(client_id);
            out.put_u8(request.to_byte());
            out.put_u8(reason.to_byte());
            out.put_u64(time);
        }
        OeMessage::Executed(e) => {
            out.put_u8(b'E');
            out.put_u64(e.client_id);
            out.put_u64(e.order_id);
            out.put_u64(e.match_id);
            out.put_u32(e.price);
            out.put_u32(e.qty);
            out.put_u32(e.leaves);
            out.put_u8(e.liquidity.to_byte());
            out.put_u64(e.time);
        }
        OeMessage::Cancelled { client_id, order_id, qty, leaves, reason, time } => {
            out.put_u8(b'C');
            out.put_u64(client_id);
            out.put_u64(order_id);
            out.put_u32(qty);
            out.put_u32(leaves);
            out.put_u8(reason.to_byte());
            out.put_u64(time);
        }
    }
}

/// Reads one frame off the front of `buf`: `Ok(None)` if more bytes are
/// needed, else the message and the bytes it took.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(OeMessage, usize)>, DecodeError> {
    let Some((len, rest)) = buf.split_first_chunk::<2>() else { return Ok(None) };
    let len = usize::from(u16::from_be_bytes(*len));
    if len == 0 || len > MAX_FRAME_LEN {
        return Err(DecodeError::BadLength(len));
    }
    let Some(body) = rest.get(..len) else { return Ok(None) };
    Ok(Some((decode_message(body)?, 2 + len)))
}

/// Decodes one message (without the length prefix; the whole slice).
pub fn decode_message(buf: &[u8]) -> Result<OeMessage, DecodeError> {
    let mut r = Reader::new(buf);
    let m = match r.u8()? {
        b'L' => OeMessage::Login { user: r.array()?, password: r.array()? },
        b'O' => {
            let client_id = r.u64()?;
            let symbol = match r.u8()? {
                b'I' => {
                    let i = r.u16()?;
                    if r.array::<6>()? != [0; 6] {
                        return Err(DecodeError::BadField { field: "symbol padding", value: u64::from(i) });
                    }
                    SymbolRef::Index(i)
                }
                b'T' => {
                    let t = r.array::<8>()?;
                    let t = Ticker::from_wire(t)
                        .map_err(|_| DecodeError::BadField { field: "ticker", value: u64::from_be_bytes(t) })?;
                    SymbolRef::Ticker(t)
                }
                b => return Err(DecodeError::BadField { field: "symbol kind", value: u64::from(b) }),
            };
            OeMessage::Enter(EnterOrder {
                client_id,
                symbol,
                side: r.code("side", Side::from_byte)?,
                price: r.u32()?,
                qty: r.u32()?,
                kind: r.code("order type", OrderType::from_byte)?,
                tif: r.code("time in force", TimeInForce::from_byte)?,
            })
        }
        b'X' => OeMessage::Cancel { client_id: r.u64()? },
        b'U' => OeMessage::Reduce { client_id: r.u64()?, qty: r.u32()? },
        b'H' => OeMessage::Heartbeat,
        b'a' => OeMessage::LoginAccepted { session: r.u32()? },
        b'j' => OeMessage::LoginRejected(r.code("login reject reason", LoginReject::from_byte)?),
        b'A' => {
            let client_id = r.u64()?;
            let order_id = r.u64()?;
            let order = NewOrder {
                session: 0,
                client_id,
                symbol: r.u16()?,
                side: r.code("side", Side::from_byte)?,
                price: r.u32()?,
                qty: r.u32()?,
                kind: r.code("order type", OrderType::from_byte)?,
                tif: r.code("time in force", TimeInForce::from_byte)?,
            };
            let seq = r.u64()?;
            OeMessage::Accepted { ack: Ack { seq, order_id, order }, time: r.u64()? }
        }
        b'J' => OeMessage::Rejected {
            client_id: r.u64()?,
            request: r.code("request", RequestKind::from_byte)?,
            reason: r.code("reject reason", RejectReason::from_byte)?,
            time: r.u64()?,
        },
        b'E' => OeMessage::Executed(Executed {
            client_id: r.u64()?,
            order_id: r.u64()?,
            match_id: r.u64()?,
            price: r.u32()?,
            qty: r.u32()?,
            leaves: r.u32()?,
            liquidity: r.code("liquidity", Liquidity::from_byte)?,
            time: r.u64()?,
        }),
        b'C' => OeMessage::Cancelled {
            client_id: r.u64()?,
            order_id: r.u64()?,
            qty: r.u32()?,
            leaves: r.u32()?,
            reason: r.code("cancel reason", CancelReason::from_byte)?,
            time: r.u64()?,
        },
        t => return Err(DecodeError::UnknownType(t)),
    };
    r.finish()?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::arb;
    use proptest::prelude::*;

    fn frame(m: &OeMessage) -> Vec<u8> {
        let mut b = vec![];
        encode_frame(m, &mut b);
        b
    }

    #[test]
    fn layout() {
        let enter = EnterOrder {
            client_id: 1,
            symbol: SymbolRef::Ticker(Ticker::parse("ACRN").unwrap()),
            side: Side::Buy,
            price: 100,
            qty: 10,
            kind: OrderType::Limit,
            tif: TimeInForce::Day,
        };
        let b = frame(&OeMessage::Enter(enter));
        assert_eq!(&b[..3], &[0, 29, b'O']);
        assert_eq!(&b[11..20], b"TACRN    ");
        assert_eq!(frame(&OeMessage::Heartbeat), vec![0, 1, b'H']);
        let lens = [
            (OeMessage::Login { user: *b"alice   ", password: [b' '; 16] }, 25),
            (OeMessage::Cancel { client_id: 1 }, 9),
            (OeMessage::Reduce { client_id: 1, qty: 2 }, 13),
            (OeMessage::LoginAccepted { session: 3 }, 5),
            (OeMessage::LoginRejected(LoginReject::Unavailable), 2),
        ];
        for (m, len) in lens {
            assert_eq!(frame(&m).len(), 2 + len, "{m:?}");
        }
    }

    #[test]
    fn stream_reading() {
        let mut stream = frame(&OeMessage::Cancel { client_id: 7 });
        stream.extend(frame(&OeMessage::Heartbeat));
        let (m, n) = decode_frame(&stream).unwrap().unwrap();
        assert_eq!((m, n), (OeMessage::Cancel { client_id: 7 }, 11));
        assert_eq!(decode_frame(&stream[n..]).unwrap(), Some((OeMessage::Heartbeat, 3)));
        for cut in 0..n {
            assert_eq!(decode_frame(&stream[..cut]), Ok(None), "{cut}");
        }
        assert_eq!(decode_frame(&[0, 0]), Err(DecodeError::BadLength(0)));
        assert_eq!(decode_frame(&[0xff, 0xff]), Err(DecodeError::BadLength(65535)));
        assert_eq!(decode_frame(&[0, 1, b'?']), Err(DecodeError::UnknownType(b'?')));
        assert_eq!(decode_frame(&[0, 2, b'H', 0]), Err(DecodeError::Trailing(1)));
        let mut bad_index = frame(&OeMessage::Enter(EnterOrder {
            client_id: 1,
            symbol: SymbolRef::Index(5),
            side: Side::Sell,
            price: 0,
            qty: 1,
            kind: OrderType::Market,
            tif: TimeInForce::Ioc,
        }));
        bad_index[15] = 1;
        assert!(matches!(decode_frame(&bad_index), Err(DecodeError::BadField { field: "symbol padding", .. })));
    }

    #[test]
    fn responses_reach_their_sessions() {
        let e = Execution {
            match_id: 9,
            symbol: 1,
            price: 100,
            qty: 5,
            aggressor: Side::Buy,
            maker: Party { session: 1, client_id: 11, order_id: 1, leaves: 0 },
            taker: Party { session: 2, client_id: 22, order_id: 2, leaves: 3 },
        };
        let got: Vec<_> = for_sessions(&Response::Executed(e), 77).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, 1);
        assert!(matches!(got[0].1, OeMessage::Executed(Executed { client_id: 11, liquidity: Liquidity::Added, .. })));
        assert!(matches!(got[1].1, OeMessage::Executed(Executed { client_id: 22, leaves: 3, time: 77, .. })));
    }

    proptest! {
        #[test]
        fn round_trip(m in arb::oe()) {
            let b = frame(&m);
            prop_assert!(b.len() <= 2 + MAX_FRAME_LEN);
            prop_assert_eq!(decode_frame(&b), Ok(Some((m, b.len()))));
            for cut in 0..b.len() {
                prop_assert_eq!(decode_frame(&b[..cut]), Ok(None));
            }
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(Some((_, n))) = decode_frame(&bytes) {
                prop_assert!(n <= bytes.len());
            }
            let _ = decode_message(&bytes);
        }
    }
}
