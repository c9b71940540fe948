//! What the view knows: the books rebuilt from market data, the last
//! trades and counters per symbol, and the JSON the page and the API get.

use crate::events::MdEvent;
use crate::mdbook::MdBook;
use crate::symbols::SymbolTable;
use crate::types::*;
use crate::wire::itch::ItchMessage;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How many trades per symbol are kept.
pub const LAST_TRADES: usize = 10;

#[derive(Clone, Debug, Default)]
struct SymbolState {
    ticker: String,
    trades: VecDeque<(Price, Qty, Side, Timestamp)>,
    trade_count: u64,
    /// Messages applied to this symbol.
    updates: u64,
    /// Events that did not fit the book (a partial book).
    misfits: u64,
}

/// The books and counters of every subscribed symbol.
#[derive(Debug)]
pub struct ViewState {
    book: MdBook,
    symbols: BTreeMap<SymbolIndex, SymbolState>,
    changed: BTreeSet<SymbolIndex>,
    depth: usize,
    /// Messages applied in all.
    pub messages: u64,
    /// Trades seen in all.
    pub trades: u64,
}

impl ViewState {
    /// Empty books for `symbols`, showing `depth` levels.
    pub fn new(table: &SymbolTable, symbols: impl IntoIterator<Item = SymbolIndex>, depth: usize) -> ViewState {
        let symbols = symbols
            .into_iter()
            .map(|s| {
                let ticker = table.get(s).map_or_else(|| s.to_string(), |x| x.ticker.as_str().to_string());
                (s, SymbolState { ticker, ..SymbolState::default() })
            })
            .collect();
        ViewState { book: MdBook::new(), symbols, changed: BTreeSet::new(), depth, messages: 0, trades: 0 }
    }

    /// Applies one message of `symbol`'s stream.
    pub fn apply(&mut self, symbol: SymbolIndex, m: &ItchMessage) {
        let Some(st) = self.symbols.get_mut(&symbol) else { return };
        self.messages += 1;
        st.updates += 1;
        if let MdEvent::Trade { price, qty, aggressor, .. } = m.event {
            st.trade_count += 1;
            self.trades += 1;
            if st.trades.len() == LAST_TRADES {
                st.trades.pop_back();
            }
            st.trades.push_front((price, qty, aggressor, m.time));
        }
        if self.book.apply(&m.event).is_err() {
            st.misfits += 1;
        }
        self.changed.insert(symbol);
    }

    /// The symbols changed since the last call, as JSON objects.
    pub fn take_changed(&mut self) -> Vec<Value> {
        let changed = std::mem::take(&mut self.changed);
        changed.into_iter().map(|s| self.symbol_json(s)).collect()
    }

    /// Every symbol as JSON objects.
    pub fn snapshot(&self) -> Vec<Value> {
        self.symbols.keys().map(|&s| self.symbol_json(s)).collect()
    }

    fn symbol_json(&self, s: SymbolIndex) -> Value {
        let st = &self.symbols[&s];
        let levels = |side| -> Vec<[u64; 2]> {
            self.book.levels(s, side).iter().take(self.depth).map(|l| [u64::from(l.price), l.qty]).collect()
        };
        let trades: Vec<Value> = st
            .trades
            .iter()
            .map(|&(price, qty, side, time)| json!({"price": price, "qty": qty, "side": side_str(side), "time": time}))
            .collect();
        json!({
            "symbol": s,
            "ticker": st.ticker,
            "bids": levels(Side::Buy),
            "asks": levels(Side::Sell),
            "trades": trades,
            "trade_count": st.trade_count,
            "updates": st.updates,
            "misfits": st.misfits,
        })
    }
}

fn side_str(s: Side) -> &'static str {
    match s {
        Side::Buy => "B",
        Side::Sell => "S",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn books_trades_and_changes() {
        let t = SymbolTable::shipped();
        let mut v = ViewState::new(&t, [1, 2], 5);
        let m = |event| ItchMessage { epoch: 1, time: 5, event };
        v.apply(1, &m(MdEvent::AddOrder { symbol: 1, order_id: 1, side: Side::Buy, price: 100, qty: 10 }));
        v.apply(1, &m(MdEvent::OrderExecuted { symbol: 1, order_id: 1, qty: 4, match_id: 1 }));
        v.apply(1, &m(MdEvent::Trade { symbol: 1, price: 100, qty: 4, aggressor: Side::Sell, match_id: 1 }));
        // An event for an order never seen: counted, nothing breaks.
        v.apply(1, &m(MdEvent::OrderDeleted { symbol: 1, order_id: 99 }));
        let ch = v.take_changed();
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0]["bids"], json!([[100, 6]]));
        assert_eq!(ch[0]["trades"][0]["qty"], 4);
        assert_eq!(ch[0]["misfits"], 1);
        assert_eq!(ch[0]["ticker"], "ACRN");
        assert!(v.take_changed().is_empty());
        assert_eq!(v.snapshot().len(), 2);
    }
}
