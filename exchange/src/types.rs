//! The exchange's vocabulary: sides, order types, time in force, tickers and
//! the integer types every other module speaks.

use std::fmt;
use thiserror::Error;

/// A price in ticks (the symbol's minimum increment); a valid limit price is
/// `1..=`[`MAX_PRICE`]. Market orders carry 0.
pub type Price = u32;
/// A quantity in shares.
pub type Qty = u32;
/// The exchange's order id: engine-wide, assigned in sequence from 1.
pub type OrderId = u64;
/// The id of one match (one execution between a maker and a taker),
/// engine-wide, assigned in sequence from 1.
pub type MatchId = u64;
/// A customer session, unique across the exchange: `gateway << 24 |
/// broker/dealer << 12 | customer` (see `ARCHITECTURE.md`), so gateways
/// never collide and a session keeps its id across reconnects. Matching
/// treats it as opaque; the publisher routes reports by its gateway.
pub type SessionId = u32;
/// The customer's own order id, unique per session (idempotency key).
pub type ClientOrderId = u64;
/// A symbol's index ("stock locate" in ITCH): `1..=65535`; 0 means "none"
/// (system-wide market-data messages).
pub type SymbolIndex = u16;
/// An input sequence number: contiguous, from 1.
pub type Seq = u64;
/// A fencing epoch: a new primary takes a higher one; consumers and
/// engines ignore lower ones.
pub type Epoch = u32;
/// Nanoseconds since the Unix epoch, as stamped by the sequencer (the
/// engine has no clock of its own).
pub type Timestamp = u64;

/// The highest valid limit price in ticks.
pub const MAX_PRICE: Price = 999_999_999;

/// Buy or sell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// A bid.
    Buy,
    /// An offer.
    Sell,
}

impl Side {
    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// The wire byte: `B` or `S`.
    pub fn to_byte(self) -> u8 {
        match self {
            Side::Buy => b'B',
            Side::Sell => b'S',
        }
    }

    /// Parses the wire byte.
    pub fn from_byte(b: u8) -> Option<Side> {
        match b {
            b'B' => Some(Side::Buy),
            b'S' => Some(Side::Sell),
            _ => None,
        }
    }
}

/// Whether an order has a limit price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderType {
    /// Trades at its price or better; may rest (see [`TimeInForce`]).
    Limit,
    /// Trades at any price; never rests: the unfilled remainder is cancelled.
    Market,
}

impl OrderType {
    /// The wire byte: `L` or `M`.
    pub fn to_byte(self) -> u8 {
        match self {
            OrderType::Limit => b'L',
            OrderType::Market => b'M',
        }
    }

    /// Parses the wire byte.
    pub fn from_byte(b: u8) -> Option<OrderType> {
        match b {
            b'L' => Some(OrderType::Limit),
            b'M' => Some(OrderType::Market),
            _ => None,
        }
    }
}

/// How long an order lives. Wire bytes follow FIX tag 59.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeInForce {
    /// Rests until cancelled or until the end-of-day input expires it (`0`).
    Day,
    /// Rests until cancelled; survives end of day (`1`).
    Gtc,
    /// Immediate or cancel: fills what it can now, the rest is cancelled (`3`).
    Ioc,
    /// Fill or kill: fills completely now or not at all (`4`).
    Fok,
}

impl TimeInForce {
    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            TimeInForce::Day => b'0',
            TimeInForce::Gtc => b'1',
            TimeInForce::Ioc => b'3',
            TimeInForce::Fok => b'4',
        }
    }

    /// Parses the wire byte.
    pub fn from_byte(b: u8) -> Option<TimeInForce> {
        match b {
            b'0' => Some(TimeInForce::Day),
            b'1' => Some(TimeInForce::Gtc),
            b'3' => Some(TimeInForce::Ioc),
            b'4' => Some(TimeInForce::Fok),
            _ => None,
        }
    }

    /// Whether an order with this time in force may rest on the book.
    pub fn rests(self) -> bool {
        matches!(self, TimeInForce::Day | TimeInForce::Gtc)
    }
}

/// Why a ticker is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TickerError {
    /// Empty or longer than 8 characters.
    #[error("a ticker has 1 to 8 characters, {0:?} has {1}")]
    Length(String, usize),
    /// A character other than A-Z and 0-9, or a leading digit.
    #[error("a ticker is an uppercase letter followed by uppercase letters or digits: {0:?}")]
    Chars(String),
}

/// A ticker: 1 to 8 characters, an uppercase ASCII letter then uppercase
/// letters or digits (so its lowercase form is a DNS label). Stored as on
/// the wire: 8 bytes, padded on the right with spaces.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticker([u8; 8]);

impl Ticker {
    /// Parses a ticker as written in text.
    pub fn parse(s: &str) -> Result<Ticker, TickerError> {
        if s.is_empty() || s.len() > 8 {
            return Err(TickerError::Length(s.chars().take(20).collect(), s.chars().count()));
        }
        let b = s.as_bytes();
        if !b[0].is_ascii_uppercase() || !b.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
            return Err(TickerError::Chars(s.chars().take(20).collect()));
        }
        let mut out = [b' '; 8];
        out[..b.len()].copy_from_slice(b);
        Ok(Ticker(out))
    }

    /// Parses the 8 wire bytes (space padded).
    pub fn from_wire(bytes: [u8; 8]) -> Result<Ticker, TickerError> {
        let end = bytes.iter().position(|&c| c == b' ').unwrap_or(8);
        let shown = || String::from_utf8_lossy(&bytes).into_owned();
        if bytes[end..].iter().any(|&c| c != b' ') {
            return Err(TickerError::Chars(shown()));
        }
        let s = std::str::from_utf8(&bytes[..end]).map_err(|_| TickerError::Chars(shown()))?;
        Ticker::parse(s)
    }

    /// The 8 wire bytes.
    pub fn to_wire(self) -> [u8; 8] {
        self.0
    }

    /// The ticker without padding.
    pub fn as_str(&self) -> &str {
        let end = self.0.iter().position(|&c| c == b' ').unwrap_or(8);
        // Only ASCII ever gets in (parse checks), so this cannot fail.
        std::str::from_utf8(&self.0[..end]).unwrap_or("")
    }
}

impl fmt::Display for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ticker({})", self.as_str())
    }
}

/// How a customer names a symbol: by index or by ticker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SymbolRef {
    /// The symbol's index.
    Index(SymbolIndex),
    /// The symbol's ticker.
    Ticker(Ticker),
}

/// A state digest (BLAKE2s-256) of an engine's books.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticker_parse() {
        let t = Ticker::parse("ABC1").unwrap();
        assert_eq!(t.as_str(), "ABC1");
        assert_eq!(&t.to_wire(), b"ABC1    ");
        assert_eq!(Ticker::from_wire(t.to_wire()), Ok(t));
        assert_eq!(Ticker::parse("ABCDEFGH").unwrap().to_wire(), *b"ABCDEFGH");
        for bad in ["", "ABCDEFGHI", "abc", "1AB", "A-B", "A B", "É"] {
            assert!(Ticker::parse(bad).is_err(), "{bad:?}");
        }
        for bad in [*b"        ", *b"AB CD   ", *b"ab      ", [0xff; 8]] {
            assert!(Ticker::from_wire(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bytes_round_trip() {
        for s in [Side::Buy, Side::Sell] {
            assert_eq!(Side::from_byte(s.to_byte()), Some(s));
            assert_eq!(s.opposite().opposite(), s);
        }
        for t in [OrderType::Limit, OrderType::Market] {
            assert_eq!(OrderType::from_byte(t.to_byte()), Some(t));
        }
        for t in [TimeInForce::Day, TimeInForce::Gtc, TimeInForce::Ioc, TimeInForce::Fok] {
            assert_eq!(TimeInForce::from_byte(t.to_byte()), Some(t));
        }
        assert_eq!(Side::from_byte(0), None);
        assert_eq!(OrderType::from_byte(0), None);
        assert_eq!(TimeInForce::from_byte(b'2'), None);
    }
}
