//! `aex audit`'s checks on random order streams: a faithful journal, market
//! data record and acks pass; a tampered market-data message, a hole in
//! the record, a message beyond the replay, a lost acknowledged order, an
//! epoch going back and a bad acks line each fail.

mod common;

use aex::app::audit::check::{audit, AckFile, Findings};
use aex::app::record::format::{self, Entry, Recording};
use aex::wire::itch::{self, ItchMessage};
use aex::*;
use common::strategies::input;
use proptest::prelude::*;
use std::collections::BTreeMap;

const SYMBOLS: [SymbolIndex; 2] = [1, 2];

fn journal() -> impl Strategy<Value = Vec<SequencedInput>> {
    proptest::collection::vec(input(), 1..250).prop_map(|inputs| {
        inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| SequencedInput {
                seq: i as u64 + 1,
                epoch: 1 + (i / 80) as u32,
                time: 1_000_000 + 13 * i as u64,
                input,
            })
            .collect()
    })
}

/// What a faithful engine, recorder and gateway would have written.
struct World {
    records: Vec<SequencedInput>,
    recording: Recording,
    acks: String,
}

fn world(records: Vec<SequencedInput>) -> World {
    let mut engine = Engine::new(SYMBOLS, EngineConfig::default());
    let mut numbers: BTreeMap<SymbolIndex, u64> = BTreeMap::new();
    let mut entries = Vec::new();
    let mut acks = String::new();
    for rec in &records {
        let out = engine.apply(*rec).unwrap();
        for &event in &out.market_data {
            let n = numbers.entry(event.symbol()).or_default();
            *n += 1;
            let mut bytes = Vec::new();
            itch::encode(&ItchMessage { epoch: out.epoch, time: out.time, event }, &mut bytes);
            entries.push(Entry { symbol: event.symbol(), seq: *n, bytes });
        }
        for r in &out.responses {
            if let Response::Accepted(a) = r {
                if a.seq == out.seq {
                    acks.push_str(&format!(
                        "{} {} {} {} {}\n",
                        a.order.session, a.order.client_id, a.order_id, a.seq, out.epoch
                    ));
                }
            }
        }
    }
    World { records, recording: Recording { entries, torn_tail: false }, acks }
}

fn run(w: &World) -> Findings {
    audit(&SYMBOLS, &w.records, false, Some(&w.recording), &[AckFile::parse("acks", &w.acks)])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_faithful_world_passes(records in journal()) {
        let w = world(records);
        let rep = run(&w);
        prop_assert!(rep.ok, "{rep}");
        prop_assert_eq!(rep.inputs as usize, w.records.len());
        prop_assert_eq!(rep.md_messages_checked as usize, w.recording.entries.len());
        prop_assert_eq!(rep.acks_checked as usize, w.acks.lines().count());
        prop_assert_eq!((rep.md_gaps, rep.rpo_orders, rep.duplicate_executions), (0, 0, 0));
        prop_assert!(rep.epochs.windows(2).all(|e| e[0] < e[1]));
        // A record cut short (the recorder stopped early) still passes.
        let mut short = w.recording.clone();
        short.entries.truncate(short.entries.len() / 2);
        let rep = audit(&SYMBOLS, &w.records, false, Some(&short), &[]);
        prop_assert!(rep.ok, "{rep}");
    }

    #[test]
    fn a_tampered_message_fails(records in journal(), at in any::<prop::sample::Index>(), byte in any::<prop::sample::Index>()) {
        let mut w = world(records);
        prop_assume!(!w.recording.entries.is_empty());
        let n = w.recording.entries.len();
        let e = &mut w.recording.entries[at.index(n)];
        let i = byte.index(e.bytes.len());
        e.bytes[i] ^= 0x5a;
        let rep = run(&w);
        prop_assert!(!rep.ok);
        prop_assert!(rep.errors.iter().any(|e| e.contains("differs from the replay")), "{rep}");
    }

    #[test]
    fn a_hole_in_the_record_is_a_gap(records in journal(), at in any::<prop::sample::Index>()) {
        let mut w = world(records);
        // Remove a message that is not its symbol's last (so the hole shows).
        let n = w.recording.entries.len();
        let candidates: Vec<usize> = (0..n)
            .filter(|&i| w.recording.entries[i + 1..].iter().any(|e| e.symbol == w.recording.entries[i].symbol))
            .collect();
        prop_assume!(!candidates.is_empty());
        w.recording.entries.remove(candidates[at.index(candidates.len())]);
        let rep = run(&w);
        prop_assert!(!rep.ok);
        prop_assert_eq!(rep.md_gaps, 1, "{}", rep);
    }

    #[test]
    fn a_lost_acknowledged_order_counts(records in journal()) {
        let w = world(records);
        // The journal loses its last quarter; acks of orders accepted there are lost.
        let keep = w.records.len() * 3 / 4;
        let lost = w.acks.lines().filter(|l| l.split(' ').nth(3).unwrap().parse::<usize>().unwrap() > keep).count();
        let rep = audit(&SYMBOLS, &w.records[..keep], false, None, &[AckFile::parse("acks", &w.acks)]);
        prop_assert_eq!(rep.rpo_orders as usize, lost, "{}", rep);
        prop_assert_eq!(rep.ok, lost == 0);
    }
}

#[test]
fn epochs_going_back_messages_beyond_and_bad_lines_fail() {
    let order = |client_id, side, price| {
        Input::Enter(NewOrder {
            session: 1,
            client_id,
            symbol: 1,
            side,
            price,
            qty: 10,
            kind: OrderType::Limit,
            tif: TimeInForce::Day,
        })
    };
    let recs: Vec<SequencedInput> = [order(1, Side::Buy, 100), order(2, Side::Sell, 100), order(3, Side::Sell, 101)]
        .into_iter()
        .enumerate()
        .map(|(i, input)| SequencedInput { seq: i as u64 + 1, epoch: 2, time: i as u64, input })
        .collect();
    let w = world(recs.clone());
    assert!(run(&w).ok, "{}", run(&w));
    let rep = run(&w);
    assert_eq!((rep.trades, rep.orders_accepted, rep.epochs.clone()), (1, 3, vec![2]));

    // An epoch going back stops the replay.
    let mut back = recs.clone();
    back[2].epoch = 1;
    let rep = audit(&SYMBOLS, &back, false, None, &[]);
    assert!(!rep.ok && rep.errors[0].contains("epoch 1 after epoch 2"), "{rep}");

    // A recorded message the replay never produced.
    let mut beyond = world(recs.clone());
    let mut bytes = Vec::new();
    itch::encode(
        &ItchMessage { epoch: 2, time: 9, event: MdEvent::OrderDeleted { symbol: 1, order_id: 3 } },
        &mut bytes,
    );
    beyond.recording.entries.push(Entry { symbol: 1, seq: 5, bytes });
    let rep = run(&beyond);
    assert!(!rep.ok && rep.errors.iter().any(|e| e.contains("beyond the replay")), "{rep}");

    // A malformed acks line, and an ack naming another order id.
    let rep = audit(&SYMBOLS, &recs, false, None, &[AckFile::parse("a", "1 1 1 1 2\nnot a line\n1 2 7 2 2\n")]);
    assert!(!rep.ok);
    assert_eq!((rep.acks_checked, rep.rpo_orders, rep.error_count), (2, 0, 2), "{rep}");

    // The report as JSON carries the contract's fields.
    let v = serde_json::to_value(run(&w)).unwrap();
    for k in [
        "ok",
        "inputs",
        "epochs",
        "trades",
        "orders_accepted",
        "md_messages_checked",
        "md_gaps",
        "acks_checked",
        "rpo_orders",
        "duplicate_executions",
        "errors",
        "torn_tail",
    ] {
        assert!(v.get(k).is_some(), "{k} missing from {v}");
    }
    // A record file round trip.
    let mut file = format::header().to_vec();
    for e in &w.recording.entries {
        format::encode_entry(e.symbol, e.seq, &e.bytes, &mut file);
    }
    assert_eq!(format::parse(&file).unwrap(), w.recording);
}
