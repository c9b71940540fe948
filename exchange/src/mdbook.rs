//! A book rebuilt from market data, as a consumer (the view, the recorder's
//! audit) keeps it: the levels of every symbol from `AddOrder`,
//! `OrderExecuted`, `OrderCancelled` and `OrderDeleted`, checked as it goes
//! (an event that does not fit the book is an error and changes nothing).
//! Orders are keyed by (symbol, order id), so feeds of several engines can
//! share one `MdBook`.

use crate::book::LevelView;
use crate::events::MdEvent;
use crate::types::*;
use std::collections::{BTreeMap, HashMap};
use thiserror::Error;

/// An event that does not fit the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum MdBookError {
    /// An add for an order already on the book.
    #[error("symbol {symbol}: order {order_id} added twice")]
    DuplicateOrder {
        /// The symbol.
        symbol: SymbolIndex,
        /// The order.
        order_id: OrderId,
    },
    /// An event for an order not on the book.
    #[error("symbol {symbol}: order {order_id} is not on the book")]
    UnknownOrder {
        /// The symbol.
        symbol: SymbolIndex,
        /// The order.
        order_id: OrderId,
    },
    /// More shares executed or cancelled than the order had, or a zero
    /// quantity.
    #[error("symbol {symbol}: order {order_id} has {have} shares, the event takes {take}")]
    BadQuantity {
        /// The symbol.
        symbol: SymbolIndex,
        /// The order.
        order_id: OrderId,
        /// Shares it had.
        have: Qty,
        /// Shares the event takes.
        take: Qty,
    },
}

#[derive(Clone, Copy, Debug)]
struct MdOrder {
    side: Side,
    price: Price,
    qty: Qty,
}

#[derive(Clone, Debug, Default)]
struct Sides {
    bids: BTreeMap<Price, (u64, u32)>,
    asks: BTreeMap<Price, (u64, u32)>,
}

impl Sides {
    fn side(&mut self, side: Side) -> &mut BTreeMap<Price, (u64, u32)> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }
}

/// Books of any number of symbols, rebuilt from market data.
#[derive(Clone, Debug, Default)]
pub struct MdBook {
    books: BTreeMap<SymbolIndex, Sides>,
    orders: HashMap<(SymbolIndex, OrderId), MdOrder>,
}

impl MdBook {
    /// No books yet.
    pub fn new() -> MdBook {
        MdBook::default()
    }

    /// Applies one event. Trades, system events and checkpoints do not
    /// change books and are accepted as they are.
    pub fn apply(&mut self, e: &MdEvent) -> Result<(), MdBookError> {
        match *e {
            MdEvent::AddOrder { symbol, order_id, side, price, qty } => {
                if qty == 0 {
                    return Err(MdBookError::BadQuantity { symbol, order_id, have: 0, take: 0 });
                }
                if self.orders.contains_key(&(symbol, order_id)) {
                    return Err(MdBookError::DuplicateOrder { symbol, order_id });
                }
                self.orders.insert((symbol, order_id), MdOrder { side, price, qty });
                let level = self.books.entry(symbol).or_default().side(side).entry(price).or_default();
                level.0 += u64::from(qty);
                level.1 += 1;
            }
            MdEvent::OrderExecuted { symbol, order_id, qty, .. }
            | MdEvent::OrderCancelled { symbol, order_id, qty } => {
                self.take(symbol, order_id, Some(qty))?;
            }
            MdEvent::OrderDeleted { symbol, order_id } => self.take(symbol, order_id, None)?,
            MdEvent::Trade { .. } | MdEvent::System { .. } | MdEvent::Checkpoint { .. } => {}
        }
        Ok(())
    }

    /// Removes `qty` shares (None: all) from an order.
    fn take(&mut self, symbol: SymbolIndex, order_id: OrderId, qty: Option<Qty>) -> Result<(), MdBookError> {
        let Some(o) = self.orders.get_mut(&(symbol, order_id)) else {
            return Err(MdBookError::UnknownOrder { symbol, order_id });
        };
        let take = qty.unwrap_or(o.qty);
        if take == 0 || take > o.qty {
            return Err(MdBookError::BadQuantity { symbol, order_id, have: o.qty, take });
        }
        o.qty -= take;
        let (side, price, gone) = (o.side, o.price, o.qty == 0);
        if gone {
            self.orders.remove(&(symbol, order_id));
        }
        let Some(book) = self.books.get_mut(&symbol) else { return Ok(()) };
        let levels = book.side(side);
        if let Some(level) = levels.get_mut(&price) {
            level.0 -= u64::from(take);
            if gone {
                level.1 -= 1;
            }
            if level.1 == 0 {
                levels.remove(&price);
            }
        }
        Ok(())
    }

    /// A symbol's levels on one side, best first.
    pub fn levels(&self, symbol: SymbolIndex, side: Side) -> Vec<LevelView> {
        let Some(b) = self.books.get(&symbol) else { return Vec::new() };
        let v = |(&price, &(qty, count)): (&Price, &(u64, u32))| LevelView { price, qty, count };
        match side {
            Side::Buy => b.bids.iter().rev().map(v).collect(),
            Side::Sell => b.asks.iter().map(v).collect(),
        }
    }

    /// A symbol's best bid.
    pub fn best_bid(&self, symbol: SymbolIndex) -> Option<LevelView> {
        let b = self.books.get(&symbol)?;
        b.bids.iter().next_back().map(|(&price, &(qty, count))| LevelView { price, qty, count })
    }

    /// A symbol's best ask.
    pub fn best_ask(&self, symbol: SymbolIndex) -> Option<LevelView> {
        let b = self.books.get(&symbol)?;
        b.asks.iter().next().map(|(&price, &(qty, count))| LevelView { price, qty, count })
    }

    /// Whether a symbol's best bid is at or above its best ask.
    pub fn is_crossed(&self, symbol: SymbolIndex) -> bool {
        matches!((self.best_bid(symbol), self.best_ask(symbol)), (Some(b), Some(a)) if b.price >= a.price)
    }

    /// The number of orders on all books.
    pub fn len(&self) -> usize {
        self.orders.len()
    }

    /// Whether no order is on any book.
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_events_and_refuses_misfits() {
        let mut b = MdBook::new();
        let add = |order_id, side, price, qty| MdEvent::AddOrder { symbol: 1, order_id, side, price, qty };
        b.apply(&add(1, Side::Buy, 100, 10)).unwrap();
        b.apply(&add(2, Side::Buy, 100, 5)).unwrap();
        b.apply(&add(3, Side::Sell, 105, 7)).unwrap();
        assert_eq!(b.best_bid(1), Some(LevelView { price: 100, qty: 15, count: 2 }));
        assert_eq!(b.apply(&add(1, Side::Buy, 1, 1)), Err(MdBookError::DuplicateOrder { symbol: 1, order_id: 1 }));
        b.apply(&MdEvent::OrderExecuted { symbol: 1, order_id: 1, qty: 10, match_id: 1 }).unwrap();
        assert_eq!(b.best_bid(1), Some(LevelView { price: 100, qty: 5, count: 1 }));
        assert_eq!(b.len(), 2, "order 1 left the book");
        b.apply(&MdEvent::OrderCancelled { symbol: 1, order_id: 2, qty: 2 }).unwrap();
        assert_eq!(b.best_bid(1), Some(LevelView { price: 100, qty: 3, count: 1 }));
        let over = MdEvent::OrderCancelled { symbol: 1, order_id: 2, qty: 4 };
        assert_eq!(b.apply(&over), Err(MdBookError::BadQuantity { symbol: 1, order_id: 2, have: 3, take: 4 }));
        b.apply(&MdEvent::OrderDeleted { symbol: 1, order_id: 2 }).unwrap();
        assert_eq!(b.best_bid(1), None);
        let gone = MdEvent::OrderDeleted { symbol: 1, order_id: 2 };
        assert_eq!(b.apply(&gone), Err(MdBookError::UnknownOrder { symbol: 1, order_id: 2 }));
        assert_eq!(b.levels(1, Side::Sell), vec![LevelView { price: 105, qty: 7, count: 1 }]);
        assert!(!b.is_crossed(1));
        b.apply(&add(4, Side::Buy, 105, 1)).unwrap();
        assert!(b.is_crossed(1));
        assert_eq!(b.len(), 2);
    }
}
