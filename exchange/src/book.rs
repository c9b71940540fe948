//! One symbol's limit order book with price-time priority.
//!
//! Price levels live in a `BTreeMap` per side (ordered, so iteration is
//! canonical); the orders of a level form a FIFO as an intrusive doubly
//! linked list through a slab of slots that is reused, so resting, matching
//! and cancelling allocate nothing per order once the slab has grown. An
//! order id finds its slot through a hash map used only for look-ups (its
//! iteration order never reaches any output).
//!
//! The book only keeps orders and matches; validation, ids and outputs are
//! the engine's.

use crate::types::*;
use std::collections::{btree_map, BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

const NIL: u32 = u32::MAX;

/// A resting order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestingOrder {
    /// The exchange order id.
    pub id: OrderId,
    /// The owner's session.
    pub session: SessionId,
    /// The owner's client order id.
    pub client_id: ClientOrderId,
    /// Buy or sell.
    pub side: Side,
    /// The limit price.
    pub price: Price,
    /// Shares still open.
    pub leaves: Qty,
    /// Day or GTC.
    pub tif: TimeInForce,
}

/// One price level, as seen from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelView {
    /// The price.
    pub price: Price,
    /// Total shares resting at it.
    pub qty: u64,
    /// Number of orders resting at it.
    pub count: u32,
}

#[derive(Clone, Copy, Debug)]
struct Level {
    head: u32,
    tail: u32,
    qty: u64,
    count: u32,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    order: RestingOrder,
    prev: u32,
    next: u32,
}

/// Hashes exchange order ids (assigned by the engine in sequence, so not
/// attacker-chosen): one multiply.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A limit order book for one symbol.
#[derive(Clone, Debug, Default)]
pub struct Book {
    bids: BTreeMap<Price, Level>,
    asks: BTreeMap<Price, Level>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: HashMap<OrderId, u32, BuildHasherDefault<IdHasher>>,
}

/// Whether a taker on `side` with `limit` (None: market) may trade at `price`.
fn acceptable(side: Side, limit: Option<Price>, price: Price) -> bool {
    match (side, limit) {
        (_, None) => true,
        (Side::Buy, Some(l)) => price <= l,
        (Side::Sell, Some(l)) => price >= l,
    }
}

impl Book {
    /// An empty book.
    pub fn new() -> Book {
        Book::default()
    }

    /// Number of resting orders.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether nothing rests.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The best bid level.
    pub fn best_bid(&self) -> Option<LevelView> {
        self.bids.iter().next_back().map(|(&p, l)| view(p, l))
    }

    /// The best ask level.
    pub fn best_ask(&self) -> Option<LevelView> {
        self.asks.iter().next().map(|(&p, l)| view(p, l))
    }

    /// Whether the best bid is at or above the best ask (never true after a
    /// completed engine input).
    pub fn is_crossed(&self) -> bool {
        matches!((self.best_bid(), self.best_ask()), (Some(b), Some(a)) if b.price >= a.price)
    }

    /// The levels of one side, best first.
    pub fn levels(&self, side: Side) -> impl Iterator<Item = LevelView> + '_ {
        self.best_first(side).map(|(&p, l)| view(p, l))
    }

    /// One side's levels, best first, without allocating.
    fn best_first(&self, side: Side) -> BestFirst<'_> {
        match side {
            Side::Buy => BestFirst::Bids(self.bids.iter().rev()),
            Side::Sell => BestFirst::Asks(self.asks.iter()),
        }
    }

    /// The orders resting at one price, in time priority.
    pub fn orders_at(&self, side: Side, price: Price) -> impl Iterator<Item = &RestingOrder> + '_ {
        let head = self.side(side).get(&price).map_or(NIL, |l| l.head);
        self.chain(head)
    }

    /// Every resting order of one side in priority order (best price first,
    /// then time).
    pub fn orders(&self, side: Side) -> impl Iterator<Item = &RestingOrder> + '_ {
        self.best_first(side).flat_map(move |(_, l)| self.chain(l.head))
    }

    /// A resting order by id.
    pub fn order(&self, id: OrderId) -> Option<&RestingOrder> {
        self.index.get(&id).map(|&s| &self.slots[s as usize].order)
    }

    fn chain(&self, mut at: u32) -> impl Iterator<Item = &RestingOrder> + '_ {
        std::iter::from_fn(move || {
            if at == NIL {
                return None;
            }
            let slot = &self.slots[at as usize];
            at = slot.next;
            Some(&slot.order)
        })
    }

    fn side(&self, side: Side) -> &BTreeMap<Price, Level> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    /// Whether a taker on `side` could fill `qty` shares now within `limit`
    /// (None: any price). The FOK check; allocates nothing.
    pub(crate) fn can_fill(&self, side: Side, limit: Option<Price>, qty: Qty) -> bool {
        let want = u64::from(qty);
        let mut have = 0u64;
        for l in self.levels(side.opposite()) {
            if !acceptable(side, limit, l.price) {
                break;
            }
            have += l.qty;
            if have >= want {
                return true;
            }
        }
        false
    }

    /// Matches a taker on `side` for up to `qty` shares within `limit` (None:
    /// any price) against the other side in price-time priority, calling
    /// `on_fill(maker after the fill, price, shares)` for each fill in order.
    /// Fully filled makers leave the book. Returns the shares left unfilled.
    pub(crate) fn take(
        &mut self,
        side: Side,
        limit: Option<Price>,
        mut qty: Qty,
        mut on_fill: impl FnMut(&RestingOrder, Qty),
    ) -> Qty {
        let Book { bids, asks, slots, free, index } = self;
        while qty > 0 {
            let entry = match side {
                Side::Buy => asks.first_entry(),
                Side::Sell => bids.last_entry(),
            };
            let Some(mut entry) = entry else { break };
            if !acceptable(side, limit, *entry.key()) {
                break;
            }
            let level = entry.get_mut();
            while qty > 0 && level.head != NIL {
                let at = level.head;
                let slot = &mut slots[at as usize];
                let fill = qty.min(slot.order.leaves);
                slot.order.leaves -= fill;
                level.qty -= u64::from(fill);
                qty -= fill;
                on_fill(&slot.order, fill);
                if slot.order.leaves == 0 {
                    let next = slot.next;
                    index.remove(&slot.order.id);
                    free.push(at);
                    level.head = next;
                    level.count -= 1;
                    if next == NIL {
                        level.tail = NIL;
                    } else {
                        slots[next as usize].prev = NIL;
                    }
                }
            }
            if level.head == NIL {
                entry.remove();
            }
        }
        qty
    }

    /// Rests an order at the back of its price level. The engine guarantees
    /// it does not cross and its id is new.
    pub(crate) fn insert(&mut self, order: RestingOrder) {
        let slot = Slot { order, prev: NIL, next: NIL };
        let at = match self.free.pop() {
            Some(at) => {
                self.slots[at as usize] = slot;
                at
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        let book_side = match order.side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = book_side.entry(order.price).or_insert(Level { head: NIL, tail: NIL, qty: 0, count: 0 });
        if level.tail == NIL {
            level.head = at;
        } else {
            self.slots[level.tail as usize].next = at;
            self.slots[at as usize].prev = level.tail;
        }
        level.tail = at;
        level.qty += u64::from(order.leaves);
        level.count += 1;
        self.index.insert(order.id, at);
    }

    /// Removes a resting order, returning it.
    pub(crate) fn remove(&mut self, id: OrderId) -> Option<RestingOrder> {
        let at = self.index.remove(&id)?;
        let Slot { order, prev, next } = self.slots[at as usize];
        let book_side = match order.side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let Some(level) = book_side.get_mut(&order.price) else {
            debug_assert!(false, "an indexed order has a level");
            return Some(order);
        };
        if prev == NIL {
            level.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            level.tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
        level.qty -= u64::from(order.leaves);
        level.count -= 1;
        if level.count == 0 {
            book_side.remove(&order.price);
        }
        self.free.push(at);
        Some(order)
    }

    /// Lowers a resting order's open shares to `leaves` (0 < leaves < now),
    /// keeping its place in the queue. Returns the order after the change.
    pub(crate) fn reduce(&mut self, id: OrderId, leaves: Qty) -> Option<RestingOrder> {
        let &at = self.index.get(&id)?;
        let order = &mut self.slots[at as usize].order;
        debug_assert!(leaves > 0 && leaves < order.leaves);
        let book_side = match order.side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = book_side.get_mut(&order.price)?;
        level.qty -= u64::from(order.leaves - leaves);
        order.leaves = leaves;
        Some(*order)
    }

    /// Feeds the book's canonical content to `f`: bids best first, then asks
    /// best first, each order in time priority.
    pub(crate) fn for_each_canonical(&self, mut f: impl FnMut(&RestingOrder)) {
        for side in [Side::Buy, Side::Sell] {
            for o in self.orders(side) {
                f(o);
            }
        }
    }
}

/// A side's levels in priority order.
enum BestFirst<'a> {
    Bids(std::iter::Rev<btree_map::Iter<'a, Price, Level>>),
    Asks(btree_map::Iter<'a, Price, Level>),
}

impl<'a> Iterator for BestFirst<'a> {
    type Item = (&'a Price, &'a Level);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            BestFirst::Bids(i) => i.next(),
            BestFirst::Asks(i) => i.next(),
        }
    }
}

fn view(price: Price, l: &Level) -> LevelView {
    LevelView { price, qty: l.qty, count: l.count }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: OrderId, side: Side, price: Price, leaves: Qty) -> RestingOrder {
        RestingOrder { id, session: 1, client_id: id, side, price, leaves, tif: TimeInForce::Day }
    }

    fn ids(b: &Book, side: Side, price: Price) -> Vec<OrderId> {
        b.orders_at(side, price).map(|o| o.id).collect()
    }

    #[test]
    fn levels_and_queues() {
        let mut b = Book::new();
        b.insert(order(1, Side::Buy, 100, 10));
        b.insert(order(2, Side::Buy, 101, 5));
        b.insert(order(3, Side::Buy, 100, 7));
        b.insert(order(4, Side::Sell, 103, 1));
        b.insert(order(5, Side::Sell, 102, 2));
        assert_eq!(b.len(), 5);
        assert_eq!(b.best_bid(), Some(LevelView { price: 101, qty: 5, count: 1 }));
        assert_eq!(b.best_ask(), Some(LevelView { price: 102, qty: 2, count: 1 }));
        let bids: Vec<_> = b.levels(Side::Buy).map(|l| (l.price, l.qty, l.count)).collect();
        assert_eq!(bids, vec![(101, 5, 1), (100, 17, 2)]);
        assert_eq!(ids(&b, Side::Buy, 100), vec![1, 3]);
        let all: Vec<_> = b.orders(Side::Sell).map(|o| o.id).collect();
        assert_eq!(all, vec![5, 4]);
        assert!(!b.is_crossed());
    }

    #[test]
    fn remove_from_head_middle_tail() {
        let mut b = Book::new();
        for id in 1..=4 {
            b.insert(order(id, Side::Sell, 50, id as Qty));
        }
        assert_eq!(b.remove(2).map(|o| o.id), Some(2));
        assert_eq!(ids(&b, Side::Sell, 50), vec![1, 3, 4]);
        b.remove(1);
        assert_eq!(ids(&b, Side::Sell, 50), vec![3, 4]);
        b.remove(4);
        assert_eq!(ids(&b, Side::Sell, 50), vec![3]);
        assert_eq!(b.best_ask(), Some(LevelView { price: 50, qty: 3, count: 1 }));
        b.remove(3);
        assert!(b.best_ask().is_none() && b.is_empty());
        assert!(b.remove(3).is_none());
        // Slots are reused.
        b.insert(order(9, Side::Sell, 51, 1));
        b.insert(order(10, Side::Sell, 51, 1));
        assert_eq!(b.slots.len(), 4);
        assert_eq!(ids(&b, Side::Sell, 51), vec![9, 10]);
    }

    #[test]
    fn reduce_keeps_place() {
        let mut b = Book::new();
        b.insert(order(1, Side::Buy, 10, 100));
        b.insert(order(2, Side::Buy, 10, 100));
        assert_eq!(b.reduce(1, 40).map(|o| o.leaves), Some(40));
        assert_eq!(ids(&b, Side::Buy, 10), vec![1, 2]);
        assert_eq!(b.best_bid().map(|l| l.qty), Some(140));
    }

    #[test]
    fn take_walks_price_then_time() {
        let mut b = Book::new();
        b.insert(order(1, Side::Sell, 101, 5));
        b.insert(order(2, Side::Sell, 100, 5));
        b.insert(order(3, Side::Sell, 100, 5));
        b.insert(order(4, Side::Sell, 102, 5));
        assert!(b.can_fill(Side::Buy, Some(101), 15));
        assert!(!b.can_fill(Side::Buy, Some(101), 16));
        assert!(b.can_fill(Side::Buy, None, 20));
        let mut fills = vec![];
        let left = b.take(Side::Buy, Some(101), 12, |m, q| fills.push((m.id, m.price, q, m.leaves)));
        assert_eq!(left, 0);
        assert_eq!(fills, vec![(2, 100, 5, 0), (3, 100, 5, 0), (1, 101, 2, 3)]);
        assert_eq!(b.best_ask(), Some(LevelView { price: 101, qty: 3, count: 1 }));
        let left = b.take(Side::Buy, Some(101), 10, |_, _| {});
        assert_eq!(left, 7);
        assert_eq!(b.best_ask().map(|l| l.price), Some(102));
        let left = b.take(Side::Sell, None, 10, |_, _| {});
        assert_eq!(left, 10, "no bids");
        assert_eq!(b.len(), 1);
    }
}
