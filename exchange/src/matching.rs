//! The matching engine: a set of symbols' books behind one input sequence.
//!
//! [`Engine::apply`] takes the next [`SequencedInput`] and returns what it
//! produced. It is deterministic: no clock (time comes in the input), no
//! randomness, and no hash-map iteration reaching the outputs, so the same
//! input stream yields the same outputs and the same [`Engine::digest`] on a
//! primary, a standby and a replay of the journal.
//!
//! Rules:
//! - Inputs must come in sequence (`seq` = last + 1, from 1) and never from
//!   a lower epoch than one already seen; otherwise [`ApplyError`] and
//!   nothing changes.
//! - An order is validated (idempotency, symbol, price, quantity), then
//!   acknowledged with a new order id, then matched in price-time priority
//!   at the resting orders' prices. Limit Day/GTC remainders rest; the
//!   remainder of an IOC or market order is cancelled; a FOK order that
//!   cannot fill completely is acknowledged and killed without trading.
//! - A client order id is taken when its order is accepted (a rejected
//!   order does not take it): the same order sent again is answered with
//!   the original acknowledgement and nothing else, a different order under
//!   it is refused (see [`crate::dedup`] for how long ids are remembered).
//! - There is no self-trade prevention: a session's orders may match each other.
//! - Cancel and reduce name the order by (session, client order id); only
//!   resting orders can be cancelled or reduced.

use crate::book::{Book, RestingOrder};
use crate::dedup::{Dedup, DEFAULT_CAPACITY};
use crate::events::*;
use crate::types::*;
use blake2::{Blake2s256, Digest as _};
use std::collections::{BTreeMap, HashMap};
use thiserror::Error;

/// Limits and sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// The largest quantity one order may have.
    pub max_qty: Qty,
    /// How many acknowledgements the idempotency window remembers (see
    /// [`crate::dedup`]).
    pub dedup_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { max_qty: 1_000_000, dedup_capacity: DEFAULT_CAPACITY }
    }
}

/// Why an input was not applied (the engine is unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ApplyError {
    /// The input is not the next in sequence.
    #[error("sequence {got} is not the next one ({expected} expected)")]
    Sequence {
        /// The sequence number the engine expects.
        expected: Seq,
        /// The one it got.
        got: Seq,
    },
    /// The input comes from an epoch older than one already applied (a
    /// fenced primary).
    #[error("input from epoch {got}, older than the engine's {current}")]
    StaleEpoch {
        /// The highest epoch applied so far.
        current: Epoch,
        /// The input's.
        got: Epoch,
    },
}

/// A matching engine for a set of symbols.
#[derive(Clone, Debug)]
pub struct Engine {
    config: EngineConfig,
    books: BTreeMap<SymbolIndex, Book>,
    last_seq: Seq,
    epoch: Epoch,
    next_order_id: OrderId,
    next_match_id: MatchId,
    /// Resting orders by owner: (session, client order id) -> (symbol, order id).
    live: HashMap<(SessionId, ClientOrderId), (SymbolIndex, OrderId)>,
    dedup: Dedup,
}

impl Engine {
    /// An engine trading `symbols`, with empty books, expecting sequence 1.
    pub fn new(symbols: impl IntoIterator<Item = SymbolIndex>, config: EngineConfig) -> Engine {
        Engine {
            config,
            books: symbols.into_iter().map(|s| (s, Book::new())).collect(),
            last_seq: 0,
            epoch: 0,
            next_order_id: 1,
            next_match_id: 1,
            live: HashMap::new(),
            dedup: Dedup::new(config.dedup_capacity),
        }
    }

    /// The sequence number of the last input applied (0 before any).
    pub fn last_seq(&self) -> Seq {
        self.last_seq
    }

    /// The sequence number the next input must carry.
    pub fn next_seq(&self) -> Seq {
        self.last_seq + 1
    }

    /// The highest epoch applied so far.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// One symbol's book.
    pub fn book(&self, symbol: SymbolIndex) -> Option<&Book> {
        self.books.get(&symbol)
    }

    /// The number of resting orders across all books.
    pub fn resting_orders(&self) -> usize {
        self.live.len()
    }

    /// Applies the next input and returns what it produced.
    pub fn apply(&mut self, input: SequencedInput) -> Result<Outputs, ApplyError> {
        let mut out = Outputs::default();
        self.apply_into(&input, &mut out)?;
        Ok(out)
    }

    /// Like [`Engine::apply`], writing into `out` (cleared first) so a caller
    /// can reuse its buffers.
    pub fn apply_into(&mut self, input: &SequencedInput, out: &mut Outputs) -> Result<(), ApplyError> {
        if input.seq != self.next_seq() {
            return Err(ApplyError::Sequence { expected: self.next_seq(), got: input.seq });
        }
        if input.epoch < self.epoch {
            return Err(ApplyError::StaleEpoch { current: self.epoch, got: input.epoch });
        }
        self.last_seq = input.seq;
        self.epoch = input.epoch;
        out.clear();
        out.seq = input.seq;
        out.epoch = input.epoch;
        out.time = input.time;
        match input.input {
            Input::Enter(order) => self.enter(input.seq, order, out),
            Input::Cancel { session, client_id, symbol } => self.cancel(session, client_id, symbol, out),
            Input::Reduce { session, client_id, symbol, qty } => self.reduce(session, client_id, symbol, qty, out),
            Input::EndOfDay => self.end_of_day(out),
        }
        Ok(())
    }

    fn enter(&mut self, seq: Seq, o: NewOrder, out: &mut Outputs) {
        let reject = |out: &mut Outputs, reason| {
            out.responses.push(Response::Rejected(Reject {
                session: o.session,
                client_id: o.client_id,
                symbol: o.symbol,
                request: RequestKind::Enter,
                reason,
            }))
        };
        if let Some(ack) = self.dedup.get(o.session, o.client_id) {
            if ack.order == o {
                out.responses.push(Response::Accepted(*ack));
            } else {
                reject(out, RejectReason::DuplicateClientOrderId);
            }
            return;
        }
        if self.live.contains_key(&(o.session, o.client_id)) {
            return reject(out, RejectReason::DuplicateClientOrderId);
        }
        let Some(book) = self.books.get_mut(&o.symbol) else {
            return reject(out, RejectReason::UnknownSymbol);
        };
        let price_ok = match o.kind {
            OrderType::Limit => (1..=MAX_PRICE).contains(&o.price),
            OrderType::Market => o.price == 0,
        };
        if !price_ok {
            return reject(out, RejectReason::BadPrice);
        }
        if o.qty == 0 || o.qty > self.config.max_qty {
            return reject(out, RejectReason::BadQuantity);
        }

        let order_id = self.next_order_id;
        self.next_order_id += 1;
        let ack = Ack { seq, order_id, order: o };
        self.dedup.insert(ack);
        out.responses.push(Response::Accepted(ack));

        let limit = match o.kind {
            OrderType::Limit => Some(o.price),
            OrderType::Market => None,
        };
        let cancelled = |qty, reason| {
            Response::Cancelled(Cancelled {
                session: o.session,
                client_id: o.client_id,
                order_id,
                symbol: o.symbol,
                qty,
                leaves: 0,
                reason,
            })
        };
        if o.tif == TimeInForce::Fok && !book.can_fill(o.side, limit, o.qty) {
            out.responses.push(cancelled(o.qty, CancelReason::FokKill));
            return;
        }

        let mut taker_leaves = o.qty;
        let next_match_id = &mut self.next_match_id;
        let live = &mut self.live;
        let left = book.take(o.side, limit, o.qty, |maker, qty| {
            taker_leaves -= qty;
            let match_id = *next_match_id;
            *next_match_id += 1;
            out.responses.push(Response::Executed(Execution {
                match_id,
                symbol: o.symbol,
                price: maker.price,
                qty,
                aggressor: o.side,
                maker: Party {
                    session: maker.session,
                    client_id: maker.client_id,
                    order_id: maker.id,
                    leaves: maker.leaves,
                },
                taker: Party { session: o.session, client_id: o.client_id, order_id, leaves: taker_leaves },
            }));
            out.market_data.push(MdEvent::OrderExecuted { symbol: o.symbol, order_id: maker.id, qty, match_id });
            out.market_data.push(MdEvent::Trade {
                symbol: o.symbol,
                price: maker.price,
                qty,
                aggressor: o.side,
                match_id,
            });
            if maker.leaves == 0 {
                live.remove(&(maker.session, maker.client_id));
            }
        });
        if left == 0 {
            return;
        }
        if o.kind == OrderType::Limit && o.tif.rests() {
            book.insert(RestingOrder {
                id: order_id,
                session: o.session,
                client_id: o.client_id,
                side: o.side,
                price: o.price,
                leaves: left,
                tif: o.tif,
            });
            self.live.insert((o.session, o.client_id), (o.symbol, order_id));
            out.market_data.push(MdEvent::AddOrder {
                symbol: o.symbol,
                order_id,
                side: o.side,
                price: o.price,
                qty: left,
            });
        } else {
            let reason = match (o.kind, o.tif) {
                (OrderType::Market, _) => CancelReason::MarketRemainder,
                (_, TimeInForce::Fok) => CancelReason::FokKill,
                _ => CancelReason::IocRemainder,
            };
            out.responses.push(cancelled(left, reason));
        }
    }

    /// Finds a resting order for cancel or reduce, or says why not.
    fn find(
        &self,
        session: SessionId,
        client_id: ClientOrderId,
        symbol: SymbolIndex,
    ) -> Result<RestingOrder, RejectReason> {
        if !self.books.contains_key(&symbol) {
            return Err(RejectReason::UnknownSymbol);
        }
        match self.live.get(&(session, client_id)) {
            Some(&(s, id)) if s == symbol => self.books[&s].order(id).copied().ok_or(RejectReason::UnknownOrder),
            _ => Err(RejectReason::UnknownOrder),
        }
    }

    fn cancel(&mut self, session: SessionId, client_id: ClientOrderId, symbol: SymbolIndex, out: &mut Outputs) {
        let order = match self.find(session, client_id, symbol) {
            Ok(o) => o,
            Err(reason) => return reject_request(out, session, client_id, symbol, RequestKind::Cancel, reason),
        };
        self.remove(symbol, order, CancelReason::User, out);
    }

    fn reduce(
        &mut self,
        session: SessionId,
        client_id: ClientOrderId,
        symbol: SymbolIndex,
        qty: Qty,
        out: &mut Outputs,
    ) {
        let order = match self.find(session, client_id, symbol) {
            Ok(o) if qty == 0 || qty >= o.leaves => Err(RejectReason::BadQuantity),
            other => other,
        };
        let order = match order {
            Ok(o) => o,
            Err(reason) => return reject_request(out, session, client_id, symbol, RequestKind::Reduce, reason),
        };
        if let Some(book) = self.books.get_mut(&symbol) {
            book.reduce(order.id, qty);
        }
        let cut = order.leaves - qty;
        out.responses.push(Response::Cancelled(Cancelled {
            session,
            client_id,
            order_id: order.id,
            symbol,
            qty: cut,
            leaves: qty,
            reason: CancelReason::Reduced,
        }));
        out.market_data.push(MdEvent::OrderCancelled { symbol, order_id: order.id, qty: cut });
    }

    /// Takes a resting order off its book with a cancel and a delete.
    fn remove(&mut self, symbol: SymbolIndex, order: RestingOrder, reason: CancelReason, out: &mut Outputs) {
        if let Some(book) = self.books.get_mut(&symbol) {
            book.remove(order.id);
        }
        self.live.remove(&(order.session, order.client_id));
        out.responses.push(Response::Cancelled(Cancelled {
            session: order.session,
            client_id: order.client_id,
            order_id: order.id,
            symbol,
            qty: order.leaves,
            leaves: 0,
            reason,
        }));
        out.market_data.push(MdEvent::OrderDeleted { symbol, order_id: order.id });
    }

    fn end_of_day(&mut self, out: &mut Outputs) {
        let mut expiring = Vec::new();
        for (&symbol, book) in &self.books {
            book.for_each_canonical(|o| {
                if o.tif == TimeInForce::Day {
                    expiring.push((symbol, *o));
                }
            });
        }
        for (symbol, order) in expiring {
            self.remove(symbol, order, CancelReason::Expired, out);
        }
    }

    /// A digest of the engine's state: the last sequence number, the next
    /// order and match ids, and every book (symbols in index order, bids
    /// then asks best first, orders in time priority, every field). Equal
    /// digests at the same sequence mean equal books. The idempotency
    /// window and the epoch are not included. Costs a pass over all
    /// resting orders.
    pub fn digest(&self) -> Digest {
        let mut h = Blake2s256::new();
        h.update(b"aex engine digest v1");
        h.update(self.last_seq.to_be_bytes());
        h.update(self.next_order_id.to_be_bytes());
        h.update(self.next_match_id.to_be_bytes());
        for (&symbol, book) in &self.books {
            h.update(symbol.to_be_bytes());
            h.update((book.len() as u64).to_be_bytes());
            book.for_each_canonical(|o| {
                h.update(o.id.to_be_bytes());
                h.update(o.session.to_be_bytes());
                h.update(o.client_id.to_be_bytes());
                h.update([o.side.to_byte(), o.tif.to_byte()]);
                h.update(o.price.to_be_bytes());
                h.update(o.leaves.to_be_bytes());
            });
        }
        Digest(h.finalize().into())
    }
}

fn reject_request(
    out: &mut Outputs,
    session: SessionId,
    client_id: ClientOrderId,
    symbol: SymbolIndex,
    request: RequestKind,
    reason: RejectReason,
) {
    out.responses.push(Response::Rejected(Reject { session, client_id, symbol, request, reason }));
}
