//! Random engine inputs for property tests (proptest strategies).

use aex::*;
use proptest::prelude::*;

pub fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

pub fn tif() -> impl Strategy<Value = TimeInForce> {
    prop_oneof![
        4 => Just(TimeInForce::Day),
        2 => Just(TimeInForce::Gtc),
        2 => Just(TimeInForce::Ioc),
        1 => Just(TimeInForce::Fok)
    ]
}

/// Symbol 3 is not traded (rejects); prices cluster so orders cross often;
/// client ids come from a small range so duplicates, cancels and reduces
/// find their orders.
pub fn input() -> impl Strategy<Value = Input> {
    let symbol = prop_oneof![10 => 1u16..=2, 1 => Just(3u16)];
    let kind_price = prop_oneof![
        16 => (Just(OrderType::Limit), 90u32..=110),
        3 => (Just(OrderType::Market), Just(0u32)),
        1 => (prop_oneof![Just(OrderType::Limit), Just(OrderType::Market)], 0u32..=2),
    ];
    let qty = prop_oneof![20 => 1u32..=60, 1 => Just(0u32), 1 => Just(2_000_000u32)];
    let enter = (1u32..=3, 1u64..=20, symbol.clone(), side(), kind_price, qty, tif()).prop_map(
        |(session, client_id, symbol, side, (kind, price), qty, tif)| {
            Input::Enter(NewOrder { session, client_id, symbol, side, price, qty, kind, tif })
        },
    );
    let cancel = (1u32..=3, 1u64..=20, symbol.clone()).prop_map(|(session, client_id, symbol)| Input::Cancel {
        session,
        client_id,
        symbol,
    });
    let reduce = (1u32..=3, 1u64..=20, symbol, 0u32..=40).prop_map(|(session, client_id, symbol, qty)| Input::Reduce {
        session,
        client_id,
        symbol,
        qty,
    });
    prop_oneof![60 => enter, 20 => cancel, 10 => reduce, 1 => Just(Input::EndOfDay)]
}
