//! What goes into the engine ([`SequencedInput`]) and what comes out
//! ([`Outputs`]: responses for the gateways, market-data events for the
//! feed). Plain data; the codecs live in [`crate::wire`].

use crate::types::*;

/// A new order as the engine sees it (the gateway fills in the session).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NewOrder {
    /// The customer session that sent it.
    pub session: SessionId,
    /// The customer's id for it, unique per session.
    pub client_id: ClientOrderId,
    /// The symbol.
    pub symbol: SymbolIndex,
    /// Buy or sell.
    pub side: Side,
    /// Limit price in ticks; must be 0 for market orders.
    pub price: Price,
    /// Shares.
    pub qty: Qty,
    /// Limit or market.
    pub kind: OrderType,
    /// Day, GTC, IOC or FOK.
    pub tif: TimeInForce,
}

/// One input to the engine, before sequencing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// Enter a new order.
    Enter(NewOrder),
    /// Cancel the whole remainder of a resting order, named by the client
    /// order id it was entered with.
    Cancel {
        /// The session that owns the order.
        session: SessionId,
        /// The order's client order id.
        client_id: ClientOrderId,
        /// The order's symbol (the gateway routes by it; the engine checks it).
        symbol: SymbolIndex,
    },
    /// Reduce a resting order's remaining quantity to `qty` (strictly less
    /// than it is now and above 0); the order keeps its time priority.
    Reduce {
        /// The session that owns the order.
        session: SessionId,
        /// The order's client order id.
        client_id: ClientOrderId,
        /// The order's symbol.
        symbol: SymbolIndex,
        /// The new remaining quantity.
        qty: Qty,
    },
    /// End of the trading day: every resting Day order expires (GTC orders stay).
    EndOfDay,
}

/// An input with the sequencer's stamps: what the journal stores and the
/// engine applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SequencedInput {
    /// Contiguous from 1.
    pub seq: Seq,
    /// The epoch of the primary that sequenced it.
    pub epoch: Epoch,
    /// When it was sequenced (the engine's only notion of time).
    pub time: Timestamp,
    /// The input.
    pub input: Input,
}

/// An order was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ack {
    /// The sequence number of the input that accepted it. A duplicate
    /// client order id is answered with the original acknowledgement, so a
    /// `seq` lower than the current output's marks a repeat.
    pub seq: Seq,
    /// The exchange's order id.
    pub order_id: OrderId,
    /// The order as entered.
    pub order: NewOrder,
}

/// Why an input was refused. The list is short on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The engine does not trade that symbol (wire 1).
    UnknownSymbol,
    /// A limit price of 0 or above [`MAX_PRICE`], or a market order with a
    /// price (wire 2).
    BadPrice,
    /// A quantity of 0 or above the engine's maximum; a reduce that does not
    /// reduce (wire 3).
    BadQuantity,
    /// The client order id was used before in this session for a different
    /// order, or for an order still live beyond the idempotency window (wire 4).
    DuplicateClientOrderId,
    /// Cancel or reduce of an order that is not resting (never was, already
    /// filled or cancelled, or another symbol) (wire 5).
    UnknownOrder,
    /// The gateway cannot take the request now: its queue to the engines
    /// or its table of requests awaiting an answer is full (wire 6; a
    /// gateway's own answer, never an engine's).
    GatewayBusy,
}

impl RejectReason {
    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            RejectReason::UnknownSymbol => 1,
            RejectReason::BadPrice => 2,
            RejectReason::BadQuantity => 3,
            RejectReason::DuplicateClientOrderId => 4,
            RejectReason::UnknownOrder => 5,
            RejectReason::GatewayBusy => 6,
        }
    }

    /// Parses the wire byte.
    pub fn from_byte(b: u8) -> Option<RejectReason> {
        Some(match b {
            1 => RejectReason::UnknownSymbol,
            2 => RejectReason::BadPrice,
            3 => RejectReason::BadQuantity,
            4 => RejectReason::DuplicateClientOrderId,
            5 => RejectReason::UnknownOrder,
            6 => RejectReason::GatewayBusy,
            _ => return None,
        })
    }
}

/// Which kind of request a reject answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// An enter order (wire `O`).
    Enter,
    /// A cancel (wire `X`).
    Cancel,
    /// A reduce (wire `U`).
    Reduce,
}

impl RequestKind {
    /// The wire byte (the input's type byte).
    pub fn to_byte(self) -> u8 {
        match self {
            RequestKind::Enter => b'O',
            RequestKind::Cancel => b'X',
            RequestKind::Reduce => b'U',
        }
    }

    /// Parses the wire byte.
    pub fn from_byte(b: u8) -> Option<RequestKind> {
        Some(match b {
            b'O' => RequestKind::Enter,
            b'X' => RequestKind::Cancel,
            b'U' => RequestKind::Reduce,
            _ => return None,
        })
    }
}

/// An input was refused; nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reject {
    /// The session to tell.
    pub session: SessionId,
    /// The client order id the request named.
    pub client_id: ClientOrderId,
    /// The symbol the request named.
    pub symbol: SymbolIndex,
    /// What was refused.
    pub request: RequestKind,
    /// Why.
    pub reason: RejectReason,
}

/// One side of an execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Party {
    /// The owner's session.
    pub session: SessionId,
    /// The owner's client order id.
    pub client_id: ClientOrderId,
    /// The exchange order id.
    pub order_id: OrderId,
    /// What remains of the order after this execution.
    pub leaves: Qty,
}

/// A trade between a resting order (maker) and an incoming one (taker), at
/// the maker's price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Execution {
    /// Engine-wide, from 1.
    pub match_id: MatchId,
    /// The symbol.
    pub symbol: SymbolIndex,
    /// The price in ticks.
    pub price: Price,
    /// Shares.
    pub qty: Qty,
    /// The taker's side.
    pub aggressor: Side,
    /// The resting order.
    pub maker: Party,
    /// The incoming order.
    pub taker: Party,
}

/// Why (part of) an order was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// The owner cancelled it (wire 1).
    User,
    /// The owner reduced it; `leaves` says what still rests (wire 2).
    Reduced,
    /// The unfilled part of an IOC order (wire 3).
    IocRemainder,
    /// The unfilled part of a market order (wire 4).
    MarketRemainder,
    /// A FOK order that could not fill completely (wire 5).
    FokKill,
    /// A Day order at end of day (wire 6).
    Expired,
}

impl CancelReason {
    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            CancelReason::User => 1,
            CancelReason::Reduced => 2,
            CancelReason::IocRemainder => 3,
            CancelReason::MarketRemainder => 4,
            CancelReason::FokKill => 5,
            CancelReason::Expired => 6,
        }
    }

    /// Parses the wire byte.
    pub fn from_byte(b: u8) -> Option<CancelReason> {
        Some(match b {
            1 => CancelReason::User,
            2 => CancelReason::Reduced,
            3 => CancelReason::IocRemainder,
            4 => CancelReason::MarketRemainder,
            5 => CancelReason::FokKill,
            6 => CancelReason::Expired,
            _ => return None,
        })
    }
}

/// Shares of an order were cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cancelled {
    /// The owner's session.
    pub session: SessionId,
    /// The owner's client order id.
    pub client_id: ClientOrderId,
    /// The exchange order id.
    pub order_id: OrderId,
    /// The symbol.
    pub symbol: SymbolIndex,
    /// Shares cancelled by this event.
    pub qty: Qty,
    /// Shares still resting after it (0 unless reduced).
    pub leaves: Qty,
    /// Why.
    pub reason: CancelReason,
}

/// A message for the gateways (each names its session or sessions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Response {
    /// Accepted, with the exchange order id.
    Accepted(Ack),
    /// Refused.
    Rejected(Reject),
    /// A trade; concerns both parties' sessions.
    Executed(Execution),
    /// Shares cancelled.
    Cancelled(Cancelled),
}

/// System event codes (ITCH's, plus a heartbeat).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SystemCode {
    /// Start of messages (`O`).
    StartOfMessages,
    /// Start of market hours (`Q`).
    StartOfMarket,
    /// End of market hours (`M`).
    EndOfMarket,
    /// End of messages (`C`).
    EndOfMessages,
    /// The publisher is alive and has nothing to say (`H`).
    Heartbeat,
}

impl SystemCode {
    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            SystemCode::StartOfMessages => b'O',
            SystemCode::StartOfMarket => b'Q',
            SystemCode::EndOfMarket => b'M',
            SystemCode::EndOfMessages => b'C',
            SystemCode::Heartbeat => b'H',
        }
    }

    /// Parses the wire byte.
    pub fn from_byte(b: u8) -> Option<SystemCode> {
        Some(match b {
            b'O' => SystemCode::StartOfMessages,
            b'Q' => SystemCode::StartOfMarket,
            b'M' => SystemCode::EndOfMarket,
            b'C' => SystemCode::EndOfMessages,
            b'H' => SystemCode::Heartbeat,
            _ => return None,
        })
    }
}

/// A market-data event, ITCH style. The engine emits the first five; the
/// publisher adds system events and checkpoints.
///
/// A book follows from `AddOrder`, `OrderExecuted` (removes the order when
/// its shares reach 0, as in ITCH: no delete follows), `OrderCancelled`
/// (partial) and `OrderDeleted`. `Trade` is the tape: every match yields one
/// `OrderExecuted` for the maker and one `Trade`, with the same match id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MdEvent {
    /// An order now rests on the book.
    AddOrder {
        /// The symbol.
        symbol: SymbolIndex,
        /// The exchange order id.
        order_id: OrderId,
        /// Its side.
        side: Side,
        /// Its price.
        price: Price,
        /// Its resting shares.
        qty: Qty,
    },
    /// A resting order traded `qty` shares (at its own price).
    OrderExecuted {
        /// The symbol.
        symbol: SymbolIndex,
        /// The resting order.
        order_id: OrderId,
        /// Shares executed.
        qty: Qty,
        /// The match.
        match_id: MatchId,
    },
    /// A resting order lost `qty` shares but still rests.
    OrderCancelled {
        /// The symbol.
        symbol: SymbolIndex,
        /// The order.
        order_id: OrderId,
        /// Shares cancelled.
        qty: Qty,
    },
    /// A resting order left the book (cancelled or expired).
    OrderDeleted {
        /// The symbol.
        symbol: SymbolIndex,
        /// The order.
        order_id: OrderId,
    },
    /// A trade, for the tape.
    Trade {
        /// The symbol.
        symbol: SymbolIndex,
        /// The price.
        price: Price,
        /// Shares.
        qty: Qty,
        /// The taker's side.
        aggressor: Side,
        /// The match.
        match_id: MatchId,
    },
    /// A system event (symbol 0 unless it concerns one symbol).
    System {
        /// The symbol or 0.
        symbol: SymbolIndex,
        /// What happened.
        code: SystemCode,
    },
    /// The engine's state digest after input `seq` (for comparing a primary
    /// and a standby).
    Checkpoint {
        /// The last input applied.
        seq: Seq,
        /// [`crate::matching::Engine::digest`] at that point.
        digest: Digest,
    },
}

impl MdEvent {
    /// The symbol the event concerns (0 for a checkpoint).
    pub fn symbol(&self) -> SymbolIndex {
        match *self {
            MdEvent::AddOrder { symbol, .. }
            | MdEvent::OrderExecuted { symbol, .. }
            | MdEvent::OrderCancelled { symbol, .. }
            | MdEvent::OrderDeleted { symbol, .. }
            | MdEvent::Trade { symbol, .. }
            | MdEvent::System { symbol, .. } => symbol,
            MdEvent::Checkpoint { .. } => 0,
        }
    }
}

/// Everything one input produced, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outputs {
    /// The input's sequence number.
    pub seq: Seq,
    /// The input's epoch.
    pub epoch: Epoch,
    /// The input's time.
    pub time: Timestamp,
    /// For the gateways.
    pub responses: Vec<Response>,
    /// For the market-data feed.
    pub market_data: Vec<MdEvent>,
}

impl Outputs {
    /// Empties the lists, keeping their capacity.
    pub fn clear(&mut self) {
        self.responses.clear();
        self.market_data.clear();
    }
}
