//! Proptest strategies for every message the codecs carry (tests only).

use super::itch::ItchMessage;
use super::oe::{EnterOrder, Executed, Liquidity, LoginReject, OeMessage};
use super::report::Report;
use crate::events::*;
use crate::types::*;
use proptest::prelude::*;

pub(crate) fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

pub(crate) fn kind() -> impl Strategy<Value = OrderType> {
    prop_oneof![Just(OrderType::Limit), Just(OrderType::Market)]
}

pub(crate) fn tif() -> impl Strategy<Value = TimeInForce> {
    prop_oneof![Just(TimeInForce::Day), Just(TimeInForce::Gtc), Just(TimeInForce::Ioc), Just(TimeInForce::Fok)]
}

fn reject_reason() -> impl Strategy<Value = RejectReason> {
    (1u8..=6).prop_map(|b| RejectReason::from_byte(b).unwrap())
}

fn cancel_reason() -> impl Strategy<Value = CancelReason> {
    (1u8..=6).prop_map(|b| CancelReason::from_byte(b).unwrap())
}

fn request() -> impl Strategy<Value = RequestKind> {
    prop_oneof![Just(RequestKind::Enter), Just(RequestKind::Cancel), Just(RequestKind::Reduce)]
}

fn ticker() -> impl Strategy<Value = Ticker> {
    "[A-Z][A-Z0-9]{0,7}".prop_map(|s| Ticker::parse(&s).unwrap())
}

pub(crate) fn new_order() -> impl Strategy<Value = NewOrder> {
    (any::<u32>(), any::<u64>(), any::<u16>(), side(), any::<u32>(), any::<u32>(), kind(), tif()).prop_map(
        |(session, client_id, symbol, side, price, qty, kind, tif)| NewOrder {
            session,
            client_id,
            symbol,
            side,
            price,
            qty,
            kind,
            tif,
        },
    )
}

pub(crate) fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        new_order().prop_map(Input::Enter),
        (any::<u32>(), any::<u64>(), any::<u16>()).prop_map(|(session, client_id, symbol)| Input::Cancel {
            session,
            client_id,
            symbol
        }),
        (any::<u32>(), any::<u64>(), any::<u16>(), any::<u32>())
            .prop_map(|(session, client_id, symbol, qty)| Input::Reduce { session, client_id, symbol, qty }),
        Just(Input::EndOfDay),
    ]
}

pub(crate) fn record() -> impl Strategy<Value = SequencedInput> {
    (any::<u64>(), any::<u32>(), any::<u64>(), input()).prop_map(|(seq, epoch, time, input)| SequencedInput {
        seq,
        epoch,
        time,
        input,
    })
}

fn party() -> impl Strategy<Value = Party> {
    (any::<u32>(), any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(session, client_id, order_id, leaves)| Party {
        session,
        client_id,
        order_id,
        leaves,
    })
}

pub(crate) fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (any::<u64>(), any::<u64>(), new_order()).prop_map(|(seq, order_id, order)| Response::Accepted(Ack {
            seq,
            order_id,
            order
        })),
        (any::<u32>(), any::<u64>(), any::<u16>(), request(), reject_reason()).prop_map(
            |(session, client_id, symbol, request, reason)| Response::Rejected(Reject {
                session,
                client_id,
                symbol,
                request,
                reason
            })
        ),
        (any::<u64>(), any::<u16>(), any::<u32>(), any::<u32>(), side(), party(), party()).prop_map(
            |(match_id, symbol, price, qty, aggressor, maker, taker)| Response::Executed(Execution {
                match_id,
                symbol,
                price,
                qty,
                aggressor,
                maker,
                taker
            })
        ),
        (any::<u32>(), any::<u64>(), any::<u64>(), any::<u16>(), any::<u32>(), any::<u32>(), cancel_reason()).prop_map(
            |(session, client_id, order_id, symbol, qty, leaves, reason)| Response::Cancelled(Cancelled {
                session,
                client_id,
                order_id,
                symbol,
                qty,
                leaves,
                reason
            })
        ),
    ]
}

pub(crate) fn report() -> impl Strategy<Value = Report> {
    (any::<u32>(), any::<u64>(), any::<u64>(), response()).prop_map(|(epoch, seq, time, response)| Report {
        epoch,
        seq,
        time,
        response,
    })
}

fn system_code() -> impl Strategy<Value = SystemCode> {
    prop::sample::select(b"OQMCH".to_vec()).prop_map(|b| SystemCode::from_byte(b).unwrap())
}

pub(crate) fn md_event() -> impl Strategy<Value = MdEvent> {
    let s = any::<u16>;
    prop_oneof![
        (s(), any::<u64>(), side(), any::<u32>(), any::<u32>()).prop_map(|(symbol, order_id, side, price, qty)| {
            MdEvent::AddOrder { symbol, order_id, side, price, qty }
        }),
        (s(), any::<u64>(), any::<u32>(), any::<u64>()).prop_map(|(symbol, order_id, qty, match_id)| {
            MdEvent::OrderExecuted { symbol, order_id, qty, match_id }
        }),
        (s(), any::<u64>(), any::<u32>()).prop_map(|(symbol, order_id, qty)| MdEvent::OrderCancelled {
            symbol,
            order_id,
            qty
        }),
        (s(), any::<u64>()).prop_map(|(symbol, order_id)| MdEvent::OrderDeleted { symbol, order_id }),
        (s(), any::<u32>(), any::<u32>(), side(), any::<u64>()).prop_map(
            |(symbol, price, qty, aggressor, match_id)| { MdEvent::Trade { symbol, price, qty, aggressor, match_id } }
        ),
        (s(), system_code()).prop_map(|(symbol, code)| MdEvent::System { symbol, code }),
        (any::<u64>(), any::<[u8; 32]>()).prop_map(|(seq, d)| MdEvent::Checkpoint { seq, digest: Digest(d) }),
    ]
}

pub(crate) fn itch() -> impl Strategy<Value = ItchMessage> {
    (any::<u32>(), any::<u64>(), md_event()).prop_map(|(epoch, time, event)| ItchMessage { epoch, time, event })
}

pub(crate) fn outputs() -> impl Strategy<Value = Outputs> {
    (
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
        proptest::collection::vec(response(), 0..6),
        proptest::collection::vec(md_event(), 0..6),
    )
        .prop_map(|(seq, epoch, time, responses, market_data)| Outputs {
            seq,
            epoch,
            time,
            responses,
            market_data,
        })
}

pub(crate) fn oe() -> impl Strategy<Value = OeMessage> {
    let symbol = prop_oneof![any::<u16>().prop_map(SymbolRef::Index), ticker().prop_map(SymbolRef::Ticker)];
    let enter = (any::<u64>(), symbol, side(), any::<u32>(), any::<u32>(), kind(), tif()).prop_map(
        |(client_id, symbol, side, price, qty, kind, tif)| {
            OeMessage::Enter(EnterOrder { client_id, symbol, side, price, qty, kind, tif })
        },
    );
    let liquidity = prop_oneof![Just(Liquidity::Added), Just(Liquidity::Removed)];
    let executed = (any::<[u64; 3]>(), any::<[u32; 3]>(), liquidity, any::<u64>()).prop_map(
        |([client_id, order_id, match_id], [price, qty, leaves], liquidity, time)| {
            OeMessage::Executed(Executed { client_id, order_id, match_id, price, qty, leaves, liquidity, time })
        },
    );
    prop_oneof![
        (any::<[u8; 8]>(), any::<[u8; 16]>()).prop_map(|(user, password)| OeMessage::Login { user, password }),
        enter,
        any::<u64>().prop_map(|client_id| OeMessage::Cancel { client_id }),
        (any::<u64>(), any::<u32>()).prop_map(|(client_id, qty)| OeMessage::Reduce { client_id, qty }),
        Just(OeMessage::Heartbeat),
        any::<u32>().prop_map(|session| OeMessage::LoginAccepted { session }),
        prop_oneof![Just(LoginReject::NotAuthorized), Just(LoginReject::Unavailable)]
            .prop_map(OeMessage::LoginRejected),
        (any::<u64>(), any::<u64>(), new_order(), any::<u64>()).prop_map(|(seq, order_id, mut order, time)| {
            order.session = 0;
            OeMessage::Accepted { ack: Ack { seq, order_id, order }, time }
        }),
        (any::<u64>(), request(), reject_reason(), any::<u64>())
            .prop_map(|(client_id, request, reason, time)| OeMessage::Rejected { client_id, request, reason, time }),
        executed,
        (any::<[u64; 2]>(), any::<[u32; 2]>(), cancel_reason(), any::<u64>()).prop_map(
            |([client_id, order_id], [qty, leaves], reason, time)| OeMessage::Cancelled {
                client_id,
                order_id,
                qty,
                leaves,
                reason,
                time
            }
        ),
    ]
}
