//! Matching engine scenarios: priority, fills, order types, cancel and reduce,
//! rejects, idempotency, sequencing and digests.

mod common;

use aex::book::LevelView;
use aex::*;
use common::*;

#[test]
fn price_time_priority_across_many_orders() {
    let mut d = Driver::new(&[1]);
    // 60 sells at 10 prices, entered in a scrambled price order; each price
    // gets several orders at different times.
    let mut want = Vec::new(); // (price, order id)
    for i in 0..60u64 {
        let price = 100 + ((i * 7) % 10) as Price;
        let a = ack(&d.limit(1 + (i % 3) as SessionId, i, Side::Sell, price, 10 + i as Qty));
        want.push((price, a.order_id));
    }
    want.sort();
    let total: Qty = (0..60).map(|i| 10 + i as Qty).sum();
    assert_eq!(d.book().best_ask().map(|l| (l.price, l.count)), Some((100, 6)));
    let out = d.market(9, 1, Side::Buy, total);
    let makers: Vec<_> = executions(&out).iter().map(|e| (e.price, e.maker.order_id)).collect();
    assert_eq!(makers, want, "best price first, then earliest first");
    assert!(d.book().is_empty());
    assert!(cancels(&out).is_empty(), "the market order filled completely");
    // Bids too: higher price first.
    for (i, price) in [(1, 50), (2, 52), (3, 51), (4, 52)] {
        d.limit(1, 100 + i, Side::Buy, price, 1);
    }
    let out = d.market(9, 2, Side::Sell, 4);
    let clients: Vec<_> = executions(&out).iter().map(|e| e.maker.client_id).collect();
    assert_eq!(clients, vec![102, 104, 103, 101]);
}

#[test]
fn partial_fills_keep_priority_and_rest_the_remainder() {
    let mut d = Driver::new(&[1]);
    let m1 = ack(&d.limit(1, 1, Side::Sell, 100, 100)).order_id;
    let m2 = ack(&d.limit(1, 2, Side::Sell, 100, 50)).order_id;
    let out = d.limit(2, 1, Side::Buy, 100, 30);
    let e = executions(&out);
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].maker.order_id, e[0].qty, e[0].maker.leaves, e[0].taker.leaves), (m1, 30, 70, 0));
    assert_eq!(d.book().orders_at(Side::Sell, 100).map(|o| (o.id, o.leaves)).collect::<Vec<_>>(), [(m1, 70), (m2, 50)]);
    let out = d.limit(2, 2, Side::Buy, 100, 130);
    let e = executions(&out);
    assert_eq!(e.iter().map(|e| (e.maker.order_id, e.qty)).collect::<Vec<_>>(), [(m1, 70), (m2, 50)]);
    assert_eq!(e[1].taker.leaves, 10);
    let taker = ack(&out).order_id;
    assert_eq!(d.book().best_bid(), Some(LevelView { price: 100, qty: 10, count: 1 }));
    assert_eq!(
        out.market_data.last(),
        Some(&MdEvent::AddOrder { symbol: 1, order_id: taker, side: Side::Buy, price: 100, qty: 10 })
    );
    // Market data: one executed and one trade per match, same match id.
    let md: Vec<_> = out.market_data.iter().filter(|m| !matches!(m, MdEvent::AddOrder { .. })).collect();
    assert_eq!(md.len(), 4);
    assert!(matches!(md[0], MdEvent::OrderExecuted { qty: 70, match_id, .. } if *match_id == e[0].match_id));
    assert!(matches!(md[1], MdEvent::Trade { qty: 70, aggressor: Side::Buy, price: 100, .. }));
}

#[test]
fn trades_happen_at_the_makers_price() {
    let mut d = Driver::new(&[1]);
    d.limit(1, 1, Side::Sell, 100, 5);
    d.limit(1, 2, Side::Sell, 101, 5);
    let out = d.limit(2, 1, Side::Buy, 105, 8);
    let prices: Vec<_> = executions(&out).iter().map(|e| (e.price, e.qty)).collect();
    assert_eq!(prices, [(100, 5), (101, 3)]);
    // A sell limit stops at its price.
    d.limit(3, 1, Side::Buy, 90, 5);
    d.limit(3, 2, Side::Buy, 95, 5);
    let out = d.limit(4, 1, Side::Sell, 93, 20);
    assert_eq!(executions(&out).iter().map(|e| e.price).collect::<Vec<_>>(), [95]);
    assert_eq!(d.book().best_ask().map(|l| (l.price, l.qty)), Some((93, 15)));
    assert!(!d.book().is_crossed());
}

#[test]
fn market_orders_never_rest() {
    let mut d = Driver::new(&[1]);
    let out = d.market(1, 1, Side::Buy, 10);
    let a = ack(&out);
    assert_eq!(a.order.kind, OrderType::Market);
    let c = cancels(&out);
    assert_eq!((c.len(), c[0].qty, c[0].leaves, c[0].reason), (1, 10, 0, CancelReason::MarketRemainder));
    assert!(d.book().is_empty() && out.market_data.is_empty());
    d.limit(2, 1, Side::Sell, 200, 4);
    // Day time in force makes no difference to a market order.
    let out = d.order(1, 2, 1, Side::Buy, 0, 10, OrderType::Market, TimeInForce::Day);
    assert_eq!(executions(&out)[0].qty, 4);
    assert_eq!(cancels(&out)[0].qty, 6);
    assert_eq!(cancels(&out)[0].reason, CancelReason::MarketRemainder);
    assert!(d.book().is_empty());
    // A market order with a price is refused.
    let out = d.order(1, 3, 1, Side::Buy, 5, 10, OrderType::Market, TimeInForce::Ioc);
    assert_eq!(rejected(&out), Some(RejectReason::BadPrice));
}

#[test]
fn ioc_fills_what_it_can_now() {
    let mut d = Driver::new(&[1]);
    d.limit(1, 1, Side::Buy, 100, 5);
    d.limit(1, 2, Side::Buy, 99, 5);
    let out = d.order(2, 1, 1, Side::Sell, 100, 8, OrderType::Limit, TimeInForce::Ioc);
    assert_eq!(executions(&out).iter().map(|e| e.qty).collect::<Vec<_>>(), [5]);
    let c = cancels(&out);
    assert_eq!((c[0].qty, c[0].reason), (3, CancelReason::IocRemainder));
    assert_eq!(d.book().best_ask(), None, "the remainder did not rest");
    let out = d.order(2, 2, 1, Side::Sell, 101, 8, OrderType::Limit, TimeInForce::Ioc);
    assert!(executions(&out).is_empty());
    assert_eq!(cancels(&out)[0].qty, 8);
    assert_eq!(d.book().len(), 1);
}

#[test]
fn fok_fills_completely_or_not_at_all() {
    let mut d = Driver::new(&[1]);
    d.limit(1, 1, Side::Sell, 100, 5);
    d.limit(1, 2, Side::Sell, 101, 5);
    d.limit(1, 3, Side::Sell, 102, 5);
    let before: Vec<_> = d.book().levels(Side::Sell).collect();
    // 11 within 101 is not there: killed, nothing traded.
    let out = d.order(2, 1, 1, Side::Buy, 101, 11, OrderType::Limit, TimeInForce::Fok);
    assert!(executions(&out).is_empty());
    let c = cancels(&out);
    assert_eq!((c[0].qty, c[0].reason, c[0].order_id), (11, CancelReason::FokKill, ack(&out).order_id));
    assert!(out.market_data.is_empty());
    assert_eq!(d.book().levels(Side::Sell).collect::<Vec<_>>(), before);
    // 10 within 101 is there: filled across two levels.
    let out = d.order(2, 2, 1, Side::Buy, 101, 10, OrderType::Limit, TimeInForce::Fok);
    assert_eq!(executions(&out).iter().map(|e| e.qty).sum::<Qty>(), 10);
    assert!(cancels(&out).is_empty());
    // A market FOK: any price, but all of it.
    let out = d.order(2, 3, 1, Side::Buy, 0, 6, OrderType::Market, TimeInForce::Fok);
    assert_eq!(cancels(&out)[0].reason, CancelReason::FokKill);
    let out = d.order(2, 4, 1, Side::Buy, 0, 5, OrderType::Market, TimeInForce::Fok);
    assert_eq!(executions(&out).len(), 1);
    assert!(d.book().is_empty());
}

#[test]
fn cancel() {
    let mut d = Driver::new(&[1, 2]);
    let id = ack(&d.limit(1, 7, Side::Buy, 100, 10)).order_id;
    d.market(2, 1, Side::Sell, 4);
    assert_eq!(rejected(&d.cancel(2, 7)), Some(RejectReason::UnknownOrder), "another session's order");
    assert_eq!(
        rejected(&d.apply(Input::Cancel { session: 1, client_id: 7, symbol: 2 })),
        Some(RejectReason::UnknownOrder),
        "wrong symbol"
    );
    assert_eq!(
        rejected(&d.apply(Input::Cancel { session: 1, client_id: 7, symbol: 3 })),
        Some(RejectReason::UnknownSymbol)
    );
    let out = d.cancel(1, 7);
    let c = cancels(&out);
    assert_eq!((c[0].order_id, c[0].qty, c[0].leaves, c[0].reason), (id, 6, 0, CancelReason::User));
    assert_eq!(out.market_data, [MdEvent::OrderDeleted { symbol: 1, order_id: id }]);
    assert!(d.book().is_empty());
    assert_eq!(rejected(&d.cancel(1, 7)), Some(RejectReason::UnknownOrder), "already gone");
    // A filled order cannot be cancelled either.
    d.limit(1, 8, Side::Buy, 100, 1);
    d.market(2, 2, Side::Sell, 1);
    assert_eq!(rejected(&d.cancel(1, 8)), Some(RejectReason::UnknownOrder));
    let r = match d.cancel(1, 99).responses[0] {
        Response::Rejected(r) => r,
        ref other => panic!("{other:?}"),
    };
    assert_eq!((r.session, r.client_id, r.symbol, r.request), (1, 99, 1, RequestKind::Cancel));
}

#[test]
fn reduce_keeps_time_priority_and_never_increases() {
    let mut d = Driver::new(&[1]);
    let first = ack(&d.limit(1, 1, Side::Sell, 100, 10)).order_id;
    let second = ack(&d.limit(1, 2, Side::Sell, 100, 10)).order_id;
    let out = d.reduce(1, 1, 4);
    let c = cancels(&out);
    assert_eq!((c[0].order_id, c[0].qty, c[0].leaves, c[0].reason), (first, 6, 4, CancelReason::Reduced));
    assert_eq!(out.market_data, [MdEvent::OrderCancelled { symbol: 1, order_id: first, qty: 6 }]);
    assert_eq!(d.book().best_ask(), Some(LevelView { price: 100, qty: 14, count: 2 }));
    for bad in [0, 4, 5, 1000] {
        assert_eq!(rejected(&d.reduce(1, 1, bad)), Some(RejectReason::BadQuantity), "{bad}");
    }
    assert_eq!(rejected(&d.reduce(1, 3, 1)), Some(RejectReason::UnknownOrder));
    let out = d.market(2, 1, Side::Buy, 5);
    let e = executions(&out);
    assert_eq!(e.iter().map(|e| (e.maker.order_id, e.qty)).collect::<Vec<_>>(), [(first, 4), (second, 1)]);
}

#[test]
fn invalid_orders_are_rejected_and_change_nothing() {
    let mut d = Driver::with_config(&[1], EngineConfig { max_qty: 1000, ..EngineConfig::default() });
    let digest = d.engine.digest();
    let cases = [
        (2, 100, 10, OrderType::Limit, RejectReason::UnknownSymbol),
        (1, 0, 10, OrderType::Limit, RejectReason::BadPrice),
        (1, MAX_PRICE + 1, 10, OrderType::Limit, RejectReason::BadPrice),
        (1, 100, 0, OrderType::Limit, RejectReason::BadQuantity),
        (1, 100, 1001, OrderType::Limit, RejectReason::BadQuantity),
        (1, 7, 10, OrderType::Market, RejectReason::BadPrice),
    ];
    for (i, (symbol, price, qty, kind, want)) in cases.into_iter().enumerate() {
        let out = d.order(1, i as u64, symbol, Side::Buy, price, qty, kind, TimeInForce::Day);
        assert_eq!(rejected(&out), Some(want), "case {i}");
    }
    assert!(d.book().is_empty());
    assert_ne!(d.engine.digest(), digest, "the sequence moved on");
    // A rejected client order id is still free to use.
    let out = d.limit(1, 1, Side::Buy, 100, 10);
    assert_eq!(ack(&out).order_id, 1);
    d.limit(1, 10, Side::Buy, MAX_PRICE, 1000);
}

#[test]
fn client_order_ids_are_idempotent() {
    let mut d = Driver::new(&[1]);
    let first = d.limit(1, 42, Side::Buy, 100, 10);
    let a = ack(&first);
    assert_eq!(a.seq, 1);
    // The same order again: the original acknowledgement, no second order.
    let again = d.limit(1, 42, Side::Buy, 100, 10);
    assert_eq!(again.responses, [Response::Accepted(a)]);
    assert!(again.market_data.is_empty());
    assert_eq!(d.book().len(), 1);
    // Same id, different order: refused.
    assert_eq!(rejected(&d.limit(1, 42, Side::Buy, 101, 10)), Some(RejectReason::DuplicateClientOrderId));
    // Same id in another session: a different order.
    assert_ne!(ack(&d.limit(2, 42, Side::Buy, 100, 10)).order_id, a.order_id);
    // Still answered with the original once the order has traded away.
    d.market(3, 1, Side::Sell, 20);
    assert!(d.book().is_empty());
    assert_eq!(d.limit(1, 42, Side::Buy, 100, 10).responses, [Response::Accepted(a)]);
    assert!(d.book().is_empty(), "not entered again");
    // A market order resent after it was cancelled is not traded again either.
    d.limit(4, 1, Side::Sell, 100, 1);
    let m = d.market(3, 2, Side::Buy, 5);
    assert_eq!(d.market(3, 2, Side::Buy, 5).responses, [Response::Accepted(ack(&m))]);
}

#[test]
fn the_idempotency_window_is_bounded() {
    let mut d = Driver::with_config(&[1], EngineConfig { dedup_capacity: 2, ..EngineConfig::default() });
    d.limit(1, 1, Side::Buy, 100, 1); // rests
    d.market(1, 2, Side::Sell, 1); // fills order 1, done
    d.limit(1, 3, Side::Buy, 90, 1); // rests; the window forgets client id 1
    d.limit(1, 4, Side::Buy, 90, 1); // the window forgets client id 2
                                     // Client id 2 is done and forgotten: it can name a new order.
    let out = d.market(1, 2, Side::Sell, 1);
    assert_eq!(ack(&out).seq, 5);
    // Client id 4 has left the window too, but its order still rests: refused.
    d.limit(1, 5, Side::Buy, 80, 1);
    assert_eq!(rejected(&d.limit(1, 4, Side::Buy, 90, 1)), Some(RejectReason::DuplicateClientOrderId));
}

#[test]
fn inputs_must_come_in_sequence_and_epoch() {
    let mut d = Driver::new(&[1]);
    let rec = |seq, epoch| SequencedInput { seq, epoch, time: 5, input: Input::EndOfDay };
    let fresh = d.engine.digest();
    assert_eq!(d.engine.apply(rec(2, 1)), Err(ApplyError::Sequence { expected: 1, got: 2 }));
    assert_eq!(d.engine.apply(rec(0, 1)), Err(ApplyError::Sequence { expected: 1, got: 0 }));
    assert_eq!(d.engine.digest(), fresh, "a refused input changes nothing");
    assert_eq!(d.engine.apply(rec(1, 3)).map(|o| (o.seq, o.epoch, o.time)), Ok((1, 3, 5)));
    assert_eq!(d.engine.apply(rec(1, 3)), Err(ApplyError::Sequence { expected: 2, got: 1 }));
    assert_eq!(d.engine.apply(rec(2, 2)), Err(ApplyError::StaleEpoch { current: 3, got: 2 }));
    assert_eq!(d.engine.last_seq(), 1);
    assert!(d.engine.apply(rec(2, 3)).is_ok());
    assert!(d.engine.apply(rec(3, 4)).is_ok(), "a new primary's higher epoch");
    assert_eq!((d.engine.next_seq(), d.engine.epoch()), (4, 4));
    let e = ApplyError::Sequence { expected: 4, got: 9 }.to_string();
    assert_eq!(e, "sequence 9 is not the next one (4 expected)");
}

#[test]
fn end_of_day_expires_day_orders_only() {
    let mut d = Driver::new(&[1, 2]);
    let day = ack(&d.limit(1, 1, Side::Buy, 100, 10)).order_id;
    let gtc = ack(&d.order(1, 2, 1, Side::Buy, 99, 10, OrderType::Limit, TimeInForce::Gtc)).order_id;
    let day2 = ack(&d.order(1, 3, 2, Side::Sell, 50, 7, OrderType::Limit, TimeInForce::Day)).order_id;
    let out = d.apply(Input::EndOfDay);
    let c = cancels(&out);
    assert_eq!(
        c.iter().map(|c| (c.order_id, c.qty, c.reason)).collect::<Vec<_>>(),
        [(day, 10, CancelReason::Expired), (day2, 7, CancelReason::Expired)]
    );
    assert_eq!(
        out.market_data,
        [MdEvent::OrderDeleted { symbol: 1, order_id: day }, MdEvent::OrderDeleted { symbol: 2, order_id: day2 }]
    );
    assert_eq!(d.book().orders(Side::Buy).map(|o| o.id).collect::<Vec<_>>(), [gtc]);
    assert_eq!(d.engine.resting_orders(), 1);
    assert_eq!(rejected(&d.cancel(1, 1)), Some(RejectReason::UnknownOrder));
}

#[test]
fn a_session_may_trade_with_itself() {
    let mut d = Driver::new(&[1]);
    d.limit(1, 1, Side::Sell, 100, 5);
    let e = executions(&d.limit(1, 2, Side::Buy, 100, 5));
    assert_eq!((e[0].maker.session, e[0].taker.session), (1, 1));
}

#[test]
fn digests_compare_books() {
    let mut a = Driver::new(&[1, 2]);
    let mut b = Driver::new(&[1, 2]);
    assert_eq!(a.engine.digest(), b.engine.digest());
    assert_ne!(a.engine.digest(), Driver::new(&[1]).engine.digest(), "symbols count");
    for d in [&mut a, &mut b] {
        d.limit(1, 1, Side::Buy, 100, 10);
        d.limit(1, 2, Side::Buy, 100, 10);
    }
    assert_eq!(a.engine.digest(), b.engine.digest());
    // Same books in a different time order: different digests.
    let mut c = Driver::new(&[1, 2]);
    c.limit(1, 2, Side::Buy, 100, 10);
    c.limit(1, 1, Side::Buy, 100, 10);
    assert_ne!(a.engine.digest(), c.engine.digest());
    // A reduce is visible.
    a.reduce(1, 1, 9);
    b.reduce(1, 1, 8);
    assert_ne!(a.engine.digest(), b.engine.digest());
    assert_eq!(a.engine.digest().to_string().len(), 64);
}

#[test]
fn outputs_carry_the_inputs_stamps() {
    let mut d = Driver::new(&[1]);
    d.epoch = 7;
    let out = d.limit(1, 1, Side::Buy, 100, 10);
    assert_eq!((out.seq, out.epoch, out.time), (1, 7, d.time));
    let mut buf = Outputs::default();
    let rec = d.next(Input::EndOfDay);
    d.engine.apply_into(&rec, &mut buf).unwrap();
    assert_eq!((buf.seq, buf.responses.len()), (2, 1));
    let rec = d.next(Input::EndOfDay);
    d.engine.apply_into(&rec, &mut buf).unwrap();
    assert_eq!((buf.seq, buf.responses.len()), (3, 0), "cleared before use");
}
