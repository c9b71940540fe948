//! The audit's checks, pure (no files): a journal's records replayed
//! through a fresh engine, a market-data record compared with the replay,
//! and gateways' acknowledgement lines looked up in the journal.

use super::super::record::format::{Entry, Recording};
use crate::events::{Input, MdEvent, Outputs, Response, SequencedInput};
use crate::matching::{Engine, EngineConfig};
use crate::mdbook::MdBook;
use crate::types::*;
use crate::wire::itch::{self, ItchMessage};
use std::collections::{BTreeMap, HashMap};

pub use super::findings::Findings;
pub use crate::app::acks_file::AckFile;

/// What the audit knows of one order.
#[derive(Clone, Copy, Debug)]
struct OrderTrack {
    symbol: SymbolIndex,
    side: Side,
    /// None for market orders.
    limit: Option<Price>,
    qty: Qty,
    executed: u64,
    cancelled: u64,
}

/// The record's messages of one symbol, for comparison in replay order.
struct SymbolRecord<'a> {
    entries: Vec<&'a Entry>,
    cursor: usize,
    /// Messages of the replay so far.
    replayed: u64,
}

/// Runs every check. `symbols` and `records` are the journal's (records
/// contiguous from 1, as [`crate::journal::read`] guarantees; checked again
/// here), `torn_tail` its flag.
pub fn audit(
    symbols: &[SymbolIndex],
    records: &[SequencedInput],
    torn_tail: bool,
    record: Option<&Recording>,
    acks: &[AckFile],
) -> Findings {
    let mut rep = Findings { torn_tail, ..Findings::default() };
    let mut engine = Engine::new(symbols.iter().copied(), EngineConfig::default());
    let mut orders: HashMap<OrderId, OrderTrack> = HashMap::new();
    let mut matches_seen: HashMap<MatchId, Seq> = HashMap::new();
    // (session, client id) -> accepting inputs (order id, seq).
    let mut accepted: HashMap<(SessionId, ClientOrderId), Vec<(OrderId, Seq)>> = HashMap::new();
    let mut recorded = record.map(|r| index_record(r, symbols, &mut rep));
    let mut out = Outputs::default();
    let mut buf = Vec::with_capacity(itch::MAX_LEN);

    for (i, rec) in records.iter().enumerate() {
        if rec.seq != i as u64 + 1 {
            rep.error(format!("journal record {i} has sequence {}, {} expected; replay stopped", rec.seq, i + 1));
            break;
        }
        if rep.epochs.last().is_none_or(|&e| e != rec.epoch) {
            if let Some(&last) = rep.epochs.last() {
                if rec.epoch < last {
                    rep.error(format!("seq {}: epoch {} after epoch {last}; replay stopped", rec.seq, rec.epoch));
                    break;
                }
            }
            rep.epochs.push(rec.epoch);
        }
        if let Err(e) = engine.apply_into(rec, &mut out) {
            rep.error(format!("seq {}: {e}; replay stopped", rec.seq));
            break;
        }
        rep.inputs += 1;
        check_outputs(&out, &mut orders, &mut matches_seen, &mut accepted, &mut rep);
        // No book crossed: the input's symbol, or all of them at end of day.
        let crossed: Vec<SymbolIndex> = match rec.input {
            Input::Enter(o) => vec![o.symbol],
            Input::Cancel { symbol, .. } | Input::Reduce { symbol, .. } => vec![symbol],
            Input::EndOfDay => symbols.to_vec(),
        }
        .into_iter()
        .filter(|&s| engine.book(s).is_some_and(|b| b.is_crossed()))
        .collect();
        for s in crossed {
            rep.error(format!("seq {}: book of symbol {s} crossed", rec.seq));
        }
        if let Some(recorded) = recorded.as_mut() {
            for &event in &out.market_data {
                let Some(sr) = recorded.get_mut(&event.symbol()) else { continue };
                sr.replayed += 1;
                let n = sr.replayed;
                let Some(entry) = sr.entries.get(sr.cursor).filter(|e| e.seq == n) else { continue };
                sr.cursor += 1;
                buf.clear();
                itch::encode(&ItchMessage { epoch: out.epoch, time: out.time, event }, &mut buf);
                rep.md_messages_checked += 1;
                if entry.bytes != buf {
                    rep.error(format!(
                        "market data of symbol {} message {n} differs from the replay (input seq {})",
                        event.symbol(),
                        rec.seq
                    ));
                }
            }
        }
    }

    // Every order's shares: accepted = executed + cancelled + resting.
    let mut ids: Vec<_> = orders.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        let o = orders[&id];
        let resting = engine.book(o.symbol).and_then(|b| b.order(id)).map_or(0, |r| u64::from(r.leaves));
        if o.executed + o.cancelled + resting != u64::from(o.qty) {
            rep.error(format!(
                "order {id}: {} accepted but {} executed + {} cancelled + {resting} resting",
                o.qty, o.executed, o.cancelled
            ));
        }
    }

    if let Some(recorded) = recorded {
        for (symbol, sr) in recorded {
            let beyond = sr.entries.len() - sr.cursor;
            if beyond > 0 {
                rep.error(format!(
                    "record of symbol {symbol}: {beyond} messages beyond the replay's {} (first {})",
                    sr.replayed, sr.entries[sr.cursor].seq
                ));
            }
        }
        if let Some(r) = record {
            rebuild_record_book(r, symbols, &mut rep);
        }
    }

    for f in acks {
        for e in &f.bad_lines {
            rep.error(e.clone());
        }
        for l in &f.lines {
            rep.acks_checked += 1;
            match accepted.get(&(l.session, l.client_id)) {
                Some(v) if v.iter().filter(|&&(id, seq)| id == l.order_id && seq == l.seq).count() == 1 => {
                    // The ack came from an engine of epoch l.epoch: if the
                    // journal's record at that seq is of a later epoch, the
                    // acknowledging engine's record was never durable here.
                    let rec_epoch = records.get((l.seq as usize).wrapping_sub(1)).map(|r| r.epoch);
                    if rec_epoch.is_some_and(|e| e > l.epoch) {
                        rep.rpo_orders += 1;
                        rep.error(format!(
                            "{}: acknowledged order lost: session {} client id {} acknowledged in epoch {} at seq {}, \
                             which the journal holds from epoch {}",
                            f.name,
                            l.session,
                            l.client_id,
                            l.epoch,
                            l.seq,
                            rec_epoch.unwrap_or(0)
                        ));
                    }
                    if v.len() > 1 {
                        rep.error(format!(
                            "{}: session {} client id {} accepted {} times",
                            f.name,
                            l.session,
                            l.client_id,
                            v.len()
                        ));
                    }
                }
                Some(v) => rep.error(format!(
                    "{}: session {} client id {} acknowledged as order {} at seq {}, the journal accepted it as {v:?}",
                    f.name, l.session, l.client_id, l.order_id, l.seq
                )),
                None => {
                    rep.rpo_orders += 1;
                    rep.error(format!(
                        "{}: acknowledged order lost: session {} client id {} (order {} seq {}) not accepted in the journal",
                        f.name, l.session, l.client_id, l.order_id, l.seq
                    ));
                }
            }
        }
    }
    rep.ok = rep.error_count == 0;
    rep
}

fn check_outputs(
    out: &Outputs,
    orders: &mut HashMap<OrderId, OrderTrack>,
    matches_seen: &mut HashMap<MatchId, Seq>,
    accepted: &mut HashMap<(SessionId, ClientOrderId), Vec<(OrderId, Seq)>>,
    rep: &mut Findings,
) {
    for r in &out.responses {
        match *r {
            // A repeat is answered with the original ack (a lower seq).
            Response::Accepted(ack) if ack.seq == out.seq => {
                rep.orders_accepted += 1;
                let o = ack.order;
                let limit = (o.kind == OrderType::Limit).then_some(o.price);
                let track = OrderTrack { symbol: o.symbol, side: o.side, limit, qty: o.qty, executed: 0, cancelled: 0 };
                if orders.insert(ack.order_id, track).is_some() {
                    rep.error(format!("seq {}: order id {} accepted twice", out.seq, ack.order_id));
                }
                accepted.entry((o.session, o.client_id)).or_default().push((ack.order_id, out.seq));
            }
            Response::Accepted(_) | Response::Rejected(_) => {}
            Response::Executed(x) => {
                rep.trades += 1;
                if let Some(first) = matches_seen.insert(x.match_id, out.seq) {
                    rep.duplicate_executions += 1;
                    rep.error(format!("seq {}: match {} executed again (first at seq {first})", out.seq, x.match_id));
                }
                for (party, side) in [(x.maker, x.aggressor.opposite()), (x.taker, x.aggressor)] {
                    let Some(o) = orders.get_mut(&party.order_id) else {
                        rep.error(format!(
                            "seq {}: match {} names unknown order {}",
                            out.seq, x.match_id, party.order_id
                        ));
                        continue;
                    };
                    o.executed += u64::from(x.qty);
                    let within = match (o.limit, side) {
                        (None, _) => true,
                        (Some(l), Side::Buy) => x.price <= l,
                        (Some(l), Side::Sell) => x.price >= l,
                    };
                    if !within || o.side != side || o.symbol != x.symbol {
                        rep.error(format!(
                            "seq {}: match {} at {} outside order {}'s limit {:?} ({:?})",
                            out.seq, x.match_id, x.price, party.order_id, o.limit, o.side
                        ));
                    }
                    conserve(out.seq, party.order_id, o, party.leaves, rep);
                }
            }
            Response::Cancelled(c) => match orders.get_mut(&c.order_id) {
                Some(o) => {
                    o.cancelled += u64::from(c.qty);
                    conserve(out.seq, c.order_id, o, c.leaves, rep);
                }
                None => rep.error(format!("seq {}: cancel of unknown order {}", out.seq, c.order_id)),
            },
        }
    }
}

/// An order never loses more shares than it had, and `leaves` says what is left.
fn conserve(seq: Seq, id: OrderId, o: &OrderTrack, leaves: Qty, rep: &mut Findings) {
    let used = o.executed + o.cancelled;
    if used > u64::from(o.qty) {
        rep.error(format!("seq {seq}: order {id} of {} shares has {used} executed or cancelled", o.qty));
    } else if u64::from(o.qty) - used != u64::from(leaves) {
        rep.error(format!("seq {seq}: order {id} leaves {leaves}, {} by the audit's count", u64::from(o.qty) - used));
    }
}

/// Groups the record by symbol; checks numbering (from 1, increasing) and
/// counts holes.
fn index_record<'a>(
    r: &'a Recording,
    symbols: &[SymbolIndex],
    rep: &mut Findings,
) -> BTreeMap<SymbolIndex, SymbolRecord<'a>> {
    rep.record_torn_tail = r.torn_tail;
    let mut by: BTreeMap<SymbolIndex, SymbolRecord<'a>> =
        symbols.iter().map(|&s| (s, SymbolRecord { entries: Vec::new(), cursor: 0, replayed: 0 })).collect();
    for e in &r.entries {
        let Some(sr) = by.get_mut(&e.symbol) else {
            rep.md_other_symbols += 1;
            continue;
        };
        let last = sr.entries.last().map_or(0, |l| l.seq);
        if e.seq <= last {
            rep.error(format!("record of symbol {}: message {} after {last}", e.symbol, e.seq));
            continue;
        }
        if e.seq > last + 1 {
            let missing = e.seq - last - 1;
            rep.md_gaps += missing;
            rep.error(format!(
                "record of symbol {}: messages {}..={} missing (unrecovered gap)",
                e.symbol,
                last + 1,
                e.seq - 1
            ));
        }
        sr.entries.push(e);
    }
    by
}

/// An [`MdBook`] rebuilt from the record never crosses, and every message
/// fits it. A symbol with a hole is not followed past it (its book is
/// unknown from there).
fn rebuild_record_book(r: &Recording, symbols: &[SymbolIndex], rep: &mut Findings) {
    let mut book = MdBook::new();
    let mut last: HashMap<SymbolIndex, u64> = HashMap::new();
    let mut broken: HashMap<SymbolIndex, bool> = HashMap::new();
    for e in &r.entries {
        if !symbols.contains(&e.symbol) {
            continue;
        }
        let prev = last.insert(e.symbol, e.seq).unwrap_or(0);
        if e.seq != prev + 1 {
            broken.insert(e.symbol, true);
        }
        if broken.get(&e.symbol).copied().unwrap_or(false) {
            continue;
        }
        let m = match itch::decode(&e.bytes) {
            Ok(m) => m,
            Err(err) => {
                rep.error(format!("record of symbol {} message {}: {err}", e.symbol, e.seq));
                broken.insert(e.symbol, true);
                continue;
            }
        };
        if let MdEvent::System { .. } | MdEvent::Checkpoint { .. } = m.event {
            continue;
        }
        if let Err(err) = book.apply(&m.event) {
            rep.error(format!("record of symbol {} message {}: {err}", e.symbol, e.seq));
            broken.insert(e.symbol, true);
            continue;
        }
        if book.is_crossed(e.symbol) {
            rep.error(format!("record of symbol {} message {}: the rebuilt book is crossed", e.symbol, e.seq));
        }
    }
}
