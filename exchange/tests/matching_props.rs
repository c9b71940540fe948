//! Property tests over random order streams: after every input the books
//! are not crossed, market data rebuilds exactly the engine's books, and
//! every order's shares are conserved; the same stream gives the same bytes
//! and digests on every engine, also when replayed from journal records.

mod common;

use aex::mdbook::MdBook;
use aex::wire::input::{decode_record, encode_record};
use aex::*;
use common::bytes;
use common::strategies::input;
use proptest::prelude::*;
use std::collections::BTreeMap;

const SYMBOLS: [SymbolIndex; 2] = [1, 2];

/// A stream where about one input in ten repeats an earlier one (a resend).
fn stream() -> impl Strategy<Value = Vec<Input>> {
    proptest::collection::vec((input(), 0u8..10, any::<prop::sample::Index>()), 1..300).prop_map(|items| {
        let mut out: Vec<Input> = Vec::with_capacity(items.len());
        for (input, dice, earlier) in items {
            let repeat = if dice == 0 && !out.is_empty() { Some(out[earlier.index(out.len())]) } else { None };
            out.push(repeat.unwrap_or(input));
        }
        out
    })
}

fn sequenced(inputs: &[Input]) -> Vec<SequencedInput> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, &input)| SequencedInput {
            seq: i as u64 + 1,
            epoch: 1 + (i / 100) as u32,
            time: 1_000_000 + 17 * i as u64,
            input,
        })
        .collect()
}

/// What the outputs said about one order so far.
#[derive(Debug)]
struct Account {
    ack: Ack,
    executed: u64,
    cancelled: u64,
}

impl Account {
    fn open(&self) -> u64 {
        u64::from(self.ack.order.qty) - self.executed - self.cancelled
    }
}

#[derive(Default)]
struct Checker {
    accounts: BTreeMap<OrderId, Account>,
    last_order_id: OrderId,
    last_match_id: MatchId,
    md: MdBook,
}

impl Checker {
    fn check(&mut self, engine: &Engine, out: &Outputs) -> Result<(), TestCaseError> {
        for r in &out.responses {
            match *r {
                Response::Accepted(ack) if ack.seq == out.seq => {
                    prop_assert_eq!(ack.order_id, self.last_order_id + 1, "order ids are contiguous");
                    self.last_order_id = ack.order_id;
                    self.accounts.insert(ack.order_id, Account { ack, executed: 0, cancelled: 0 });
                }
                Response::Accepted(ack) => {
                    prop_assert!(ack.seq < out.seq);
                    let first = &self.accounts[&ack.order_id];
                    prop_assert_eq!(first.ack, ack, "a repeat is the original acknowledgement");
                }
                Response::Executed(e) => {
                    prop_assert!(e.qty > 0);
                    prop_assert_eq!(e.match_id, self.last_match_id + 1, "match ids are contiguous");
                    self.last_match_id = e.match_id;
                    let taker = self.accounts[&e.taker.order_id].ack.order;
                    let maker = self.accounts[&e.maker.order_id].ack.order;
                    prop_assert_eq!(e.aggressor, taker.side);
                    prop_assert_eq!(maker.side, taker.side.opposite());
                    prop_assert_eq!(e.price, maker.price, "at the maker's price");
                    if taker.kind == OrderType::Limit {
                        match taker.side {
                            Side::Buy => prop_assert!(e.price <= taker.price),
                            Side::Sell => prop_assert!(e.price >= taker.price),
                        }
                    }
                    for p in [e.maker, e.taker] {
                        let a = self.accounts.get_mut(&p.order_id).unwrap();
                        a.executed += u64::from(e.qty);
                        prop_assert!(a.executed + a.cancelled <= u64::from(a.ack.order.qty), "overfilled");
                        prop_assert_eq!(u64::from(p.leaves), a.open());
                    }
                }
                Response::Cancelled(c) => {
                    prop_assert!(c.qty > 0);
                    let a = self.accounts.get_mut(&c.order_id).unwrap();
                    a.cancelled += u64::from(c.qty);
                    prop_assert!(a.executed + a.cancelled <= u64::from(a.ack.order.qty), "overcancelled");
                    prop_assert_eq!(u64::from(c.leaves), a.open());
                }
                Response::Rejected(_) => {}
            }
        }
        for e in &out.market_data {
            prop_assert_eq!(self.md.apply(e), Ok(()), "market data fits the book: {:?}", e);
        }
        for symbol in SYMBOLS {
            let book = engine.book(symbol).unwrap();
            prop_assert!(!book.is_crossed(), "crossed book");
            for side in [Side::Buy, Side::Sell] {
                prop_assert_eq!(book.levels(side).collect::<Vec<_>>(), self.md.levels(symbol, side));
            }
        }
        // Shares are conserved: entered = resting + executed + cancelled.
        for (&id, a) in &self.accounts {
            let resting = engine.book(a.ack.order.symbol).and_then(|b| b.order(id)).map_or(0, |o| o.leaves);
            prop_assert_eq!(u64::from(resting), a.open(), "order {}", id);
            if resting > 0 {
                prop_assert!(a.ack.order.kind == OrderType::Limit && a.ack.order.tif.rests());
            }
        }
        prop_assert_eq!(self.md.len(), engine.resting_orders());
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn invariants_hold_after_every_input(inputs in stream()) {
        let mut engine = Engine::new(SYMBOLS, EngineConfig::default());
        let mut checker = Checker::default();
        for rec in sequenced(&inputs) {
            let out = engine.apply(rec).unwrap();
            prop_assert_eq!(out.seq, rec.seq);
            checker.check(&engine, &out)?;
        }
    }

    #[test]
    fn invariants_hold_with_a_tiny_idempotency_window(inputs in stream()) {
        let mut engine = Engine::new(SYMBOLS, EngineConfig { dedup_capacity: 3, ..EngineConfig::default() });
        let mut checker = Checker::default();
        for rec in sequenced(&inputs) {
            let out = engine.apply(rec).unwrap();
            checker.check(&engine, &out)?;
        }
    }

    /// Two engines (with differently seeded hash maps), one fed directly and
    /// one from decoded journal records into a reused buffer, produce the
    /// same bytes and the same digests at every sequence.
    #[test]
    fn the_same_stream_gives_the_same_bytes(inputs in stream()) {
        let mut a = Engine::new(SYMBOLS, EngineConfig::default());
        let mut b = Engine::new(SYMBOLS, EngineConfig::default());
        let mut buf = Outputs::default();
        let (mut bytes_a, mut bytes_b) = (Vec::new(), Vec::new());
        for rec in sequenced(&inputs) {
            bytes_a.extend(bytes(&a.apply(rec).unwrap()));
            let mut journal = Vec::new();
            encode_record(&rec, &mut journal);
            let replayed = decode_record(&journal).unwrap();
            b.apply_into(&replayed, &mut buf).unwrap();
            bytes_b.extend(bytes(&buf));
            prop_assert_eq!(a.digest(), b.digest());
        }
        prop_assert_eq!(bytes_a, bytes_b);
    }

    /// A standby that starts from the journal after any prefix (a DR site
    /// replaying) ends in the same state as the primary.
    #[test]
    fn a_replay_catches_up(inputs in stream(), split in any::<prop::sample::Index>()) {
        let recs = sequenced(&inputs);
        let cut = split.index(recs.len());
        let mut primary = Engine::new(SYMBOLS, EngineConfig::default());
        for &rec in &recs {
            primary.apply(rec).unwrap();
        }
        let mut standby = Engine::new(SYMBOLS, EngineConfig::default());
        for &rec in &recs[..cut] {
            standby.apply(rec).unwrap();
        }
        prop_assert_ne!(standby.last_seq(), primary.last_seq());
        for &rec in &recs[cut..] {
            standby.apply(rec).unwrap();
        }
        prop_assert_eq!(standby.digest(), primary.digest());
    }
}

/// The generated streams reach every outcome the properties are about.
#[test]
fn streams_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let mut seen = BTreeMap::<String, usize>::new();
    for _ in 0..20 {
        let inputs = stream().new_tree(&mut runner).unwrap().current();
        let mut engine = Engine::new(SYMBOLS, EngineConfig::default());
        for rec in sequenced(&inputs) {
            let out = engine.apply(rec).unwrap();
            for r in &out.responses {
                let key = match r {
                    Response::Accepted(a) if a.seq < out.seq => "repeat ack".to_string(),
                    Response::Accepted(_) => "ack".to_string(),
                    Response::Rejected(r) => format!("{:?} {:?}", r.request, r.reason),
                    Response::Executed(_) => "execution".to_string(),
                    Response::Cancelled(c) => format!("{:?}", c.reason),
                };
                *seen.entry(key).or_default() += 1;
            }
        }
    }
    for want in [
        "ack",
        "repeat ack",
        "execution",
        "User",
        "Reduced",
        "IocRemainder",
        "MarketRemainder",
        "FokKill",
        "Expired",
        "Enter UnknownSymbol",
        "Enter BadPrice",
        "Enter BadQuantity",
        "Enter DuplicateClientOrderId",
        "Cancel UnknownOrder",
        "Reduce BadQuantity",
    ] {
        assert!(seen.get(want).copied().unwrap_or(0) > 0, "{want} never happened: {seen:?}");
    }
}
