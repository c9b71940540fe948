//! The symbols file: which symbols AEX lists, and for each its multicast
//! groups and DNS names.
//!
//! One symbol a line, fields separated by blanks, `#` starts a comment:
//!
//! ```text
//! INDEX TICKER ORDERS_GROUP MD_GROUP REF_PRICE
//! 1     ACRN   239.192.1.1  239.192.2.1  1830   # Acorn Robotics
//! ```
//!
//! - `INDEX`: `1..=65535`, unique; the symbol's number on the wire.
//! - `TICKER`: see [`Ticker`]; unique.
//! - `ORDERS_GROUP`: the IPv4 multicast group gateways send the symbol's
//!   orders to; published in the overlay DNS as `ticker.orders.aex`.
//! - `MD_GROUP`: the IPv4 multicast group of its market data; published as
//!   `ticker.md.aex`. No address may serve as both an orders group and a
//!   market-data group (orders must never reach market-data consumers);
//!   symbols may share groups of one kind.
//! - `REF_PRICE`: a reference price in ticks, `1..=`[`MAX_PRICE`], that the
//!   load generator trades around.
//!
//! The overlay serves a name `N` as `N.weavers.local`, so processes resolve
//! [`Symbol::orders_fqdn`] and [`Symbol::md_fqdn`]. The file AEX ships,
//! `exchange/symbols.txt`, lists 100 made-up companies: [`SymbolTable::shipped`].

use crate::types::*;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use thiserror::Error;

/// The DNS suffix of order groups.
pub const ORDERS_SUFFIX: &str = "orders.aex";
/// The DNS suffix of market-data groups.
pub const MD_SUFFIX: &str = "md.aex";
/// The overlay's DNS domain.
pub const OVERLAY_DOMAIN: &str = "weavers.local";
/// The shipped symbols file's text.
pub const SHIPPED: &str = include_str!("../symbols.txt");

/// One listed symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Its number on the wire.
    pub index: SymbolIndex,
    /// Its ticker.
    pub ticker: Ticker,
    /// Where its orders go.
    pub orders_group: Ipv4Addr,
    /// Where its market data goes.
    pub md_group: Ipv4Addr,
    /// Reference price in ticks.
    pub ref_price: Price,
}

impl Symbol {
    /// The overlay DNS name of its orders group: `ticker.orders.aex`.
    pub fn orders_name(&self) -> String {
        format!("{}.{ORDERS_SUFFIX}", self.ticker.as_str().to_ascii_lowercase())
    }

    /// The overlay DNS name of its market-data group: `ticker.md.aex`.
    pub fn md_name(&self) -> String {
        format!("{}.{MD_SUFFIX}", self.ticker.as_str().to_ascii_lowercase())
    }

    /// The full name to resolve for its orders group.
    pub fn orders_fqdn(&self) -> String {
        format!("{}.{OVERLAY_DOMAIN}", self.orders_name())
    }

    /// The full name to resolve for its market-data group.
    pub fn md_fqdn(&self) -> String {
        format!("{}.{OVERLAY_DOMAIN}", self.md_name())
    }
}

/// What is wrong with a symbols file (lines count from 1).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SymbolsError {
    /// Not five fields.
    #[error("line {line}: expected 5 fields (INDEX TICKER ORDERS_GROUP MD_GROUP REF_PRICE), found {found}")]
    Fields {
        /// The line.
        line: usize,
        /// How many there were.
        found: usize,
    },
    /// The index is not a number in `1..=65535`.
    #[error("line {line}: index {text:?} is not a number from 1 to 65535")]
    Index {
        /// The line.
        line: usize,
        /// The field.
        text: String,
    },
    /// The ticker is malformed.
    #[error("line {line}: {source}")]
    Ticker {
        /// The line.
        line: usize,
        /// What is wrong with it.
        source: TickerError,
    },
    /// A group is not an IPv4 multicast address.
    #[error("line {line}: {what} {text:?} is not an IPv4 multicast address (224.0.0.0/4)")]
    Group {
        /// The line.
        line: usize,
        /// Which field.
        what: &'static str,
        /// The field.
        text: String,
    },
    /// The reference price is not in range.
    #[error("line {line}: reference price {text:?} is not a number of ticks from 1 to {MAX_PRICE}")]
    Price {
        /// The line.
        line: usize,
        /// The field.
        text: String,
    },
    /// An index used twice.
    #[error("line {line}: index {index} already used on line {first}")]
    DuplicateIndex {
        /// The line.
        line: usize,
        /// The index.
        index: SymbolIndex,
        /// Where it was first used.
        first: usize,
    },
    /// A ticker listed twice.
    #[error("line {line}: ticker {ticker} already listed on line {first}")]
    DuplicateTicker {
        /// The line.
        line: usize,
        /// The ticker.
        ticker: Ticker,
        /// Where it was first listed.
        first: usize,
    },
    /// An address used both for orders and for market data.
    #[error("line {line}: {addr} is used both as an orders group and as a market-data group")]
    GroupConflict {
        /// The line.
        line: usize,
        /// The address.
        addr: Ipv4Addr,
    },
    /// No symbols at all.
    #[error("the symbols file lists no symbols")]
    Empty,
}

/// The listed symbols, by index and by ticker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SymbolTable {
    by_index: BTreeMap<SymbolIndex, Symbol>,
    by_ticker: BTreeMap<Ticker, SymbolIndex>,
}

impl SymbolTable {
    /// Parses a symbols file's text.
    pub fn parse(text: &str) -> Result<SymbolTable, SymbolsError> {
        let mut t = SymbolTable::default();
        let mut first_line: BTreeMap<SymbolIndex, usize> = BTreeMap::new();
        let mut groups: BTreeMap<Ipv4Addr, (bool, usize)> = BTreeMap::new(); // addr -> (is orders group, line)
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let content = raw.split('#').next().unwrap_or("");
            let fields: Vec<&str> = content.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            let &[index, ticker, orders, md, price] = fields.as_slice() else {
                return Err(SymbolsError::Fields { line, found: fields.len() });
            };
            let index = match index.parse::<SymbolIndex>() {
                Ok(i) if i > 0 => i,
                _ => return Err(SymbolsError::Index { line, text: clip(index) }),
            };
            let ticker = Ticker::parse(ticker).map_err(|source| SymbolsError::Ticker { line, source })?;
            let group = |what, text: &str| match text.parse::<Ipv4Addr>() {
                Ok(a) if a.is_multicast() => Ok(a),
                _ => Err(SymbolsError::Group { line, what, text: clip(text) }),
            };
            let orders_group = group("orders group", orders)?;
            let md_group = group("market-data group", md)?;
            let ref_price = match price.parse::<Price>() {
                Ok(p) if (1..=MAX_PRICE).contains(&p) => p,
                _ => return Err(SymbolsError::Price { line, text: clip(price) }),
            };
            if let Some(&first) = first_line.get(&index) {
                return Err(SymbolsError::DuplicateIndex { line, index, first });
            }
            if let Some(other) = t.by_ticker.get(&ticker) {
                return Err(SymbolsError::DuplicateTicker { line, ticker, first: first_line[other] });
            }
            for (addr, is_orders) in [(orders_group, true), (md_group, false)] {
                match groups.get(&addr) {
                    Some(&(kind, _)) if kind != is_orders => return Err(SymbolsError::GroupConflict { line, addr }),
                    _ => {
                        groups.entry(addr).or_insert((is_orders, line));
                    }
                }
            }
            first_line.insert(index, line);
            t.by_ticker.insert(ticker, index);
            t.by_index.insert(index, Symbol { index, ticker, orders_group, md_group, ref_price });
        }
        if t.by_index.is_empty() {
            return Err(SymbolsError::Empty);
        }
        Ok(t)
    }

    /// The 100 symbols AEX ships (`exchange/symbols.txt`).
    pub fn shipped() -> SymbolTable {
        SymbolTable::parse(SHIPPED).expect("the shipped symbols file parses (a test checks it)")
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.by_index.len()
    }

    /// Whether there are none (never, for a parsed table).
    pub fn is_empty(&self) -> bool {
        self.by_index.is_empty()
    }

    /// The symbols in index order.
    pub fn iter(&self) -> impl Iterator<Item = &Symbol> + '_ {
        self.by_index.values()
    }

    /// The indices in order.
    pub fn indices(&self) -> impl Iterator<Item = SymbolIndex> + '_ {
        self.by_index.keys().copied()
    }

    /// A symbol by index.
    pub fn get(&self, index: SymbolIndex) -> Option<&Symbol> {
        self.by_index.get(&index)
    }

    /// A symbol by ticker.
    pub fn by_ticker(&self, ticker: &Ticker) -> Option<&Symbol> {
        self.by_ticker.get(ticker).and_then(|i| self.by_index.get(i))
    }

    /// The symbol a customer named.
    pub fn resolve(&self, r: SymbolRef) -> Option<&Symbol> {
        match r {
            SymbolRef::Index(i) => self.get(i),
            SymbolRef::Ticker(t) => self.by_ticker(&t),
        }
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_file() {
        let t = SymbolTable::shipped();
        assert_eq!(t.len(), 100);
        assert_eq!(t.indices().collect::<Vec<_>>(), (1..=100).collect::<Vec<_>>());
        let s = t.get(1).unwrap();
        assert_eq!(s.ticker.as_str(), "ACRN");
        assert_eq!(s.orders_group, Ipv4Addr::new(239, 192, 1, 1));
        assert_eq!(s.md_group, Ipv4Addr::new(239, 192, 2, 1));
        assert_eq!(s.orders_name(), "acrn.orders.aex");
        assert_eq!(s.md_fqdn(), "acrn.md.aex.weavers.local");
        assert_eq!(t.get(100).unwrap().md_group, Ipv4Addr::new(239, 192, 2, 100));
        assert_eq!(t.by_ticker(&Ticker::parse("ACRN").unwrap()), Some(s));
        assert_eq!(t.resolve(SymbolRef::Ticker(s.ticker)), Some(s));
        assert_eq!(t.resolve(SymbolRef::Index(101)), None);
        assert_eq!(t.by_ticker(&Ticker::parse("NOPE").unwrap()), None);
        for s in t.iter() {
            assert!(s.ref_price >= 500);
        }
    }

    #[test]
    fn comments_blank_lines_and_sharing() {
        let t = SymbolTable::parse(
            "# header\n\n  7 AB 239.1.1.1 239.2.2.2 100 # trailing\n9 CD9 239.1.1.1 239.2.2.2 5\n\t\n",
        )
        .unwrap();
        assert_eq!(t.indices().collect::<Vec<_>>(), vec![7, 9]);
        assert_eq!(t.by_ticker(&Ticker::parse("CD9").unwrap()).unwrap().ref_price, 5);
    }

    #[test]
    fn errors_name_the_line() {
        let ok = "1 AA 239.1.1.1 239.2.2.1 100\n";
        let cases: &[(&str, SymbolsError)] = &[
            ("", SymbolsError::Empty),
            ("# only\n", SymbolsError::Empty),
            ("1 AA 239.1.1.1 239.2.2.1\n", SymbolsError::Fields { line: 1, found: 4 }),
            ("0 AA 239.1.1.1 239.2.2.1 1\n", SymbolsError::Index { line: 1, text: "0".into() }),
            ("65536 AA 239.1.1.1 239.2.2.1 1\n", SymbolsError::Index { line: 1, text: "65536".into() }),
            ("2 aa 239.1.1.1 239.2.2.1 1\n", SymbolsError::Ticker { line: 1, source: TickerError::Chars("aa".into()) }),
            (
                "2 BB 10.0.0.1 239.2.2.1 1\n",
                SymbolsError::Group { line: 1, what: "orders group", text: "10.0.0.1".into() },
            ),
            (
                "2 BB 239.1.1.1 nope 1\n",
                SymbolsError::Group { line: 1, what: "market-data group", text: "nope".into() },
            ),
            ("2 BB 239.1.1.1 239.2.2.1 0\n", SymbolsError::Price { line: 1, text: "0".into() }),
            ("2 BB 239.1.1.1 239.2.2.1 1000000000\n", SymbolsError::Price { line: 1, text: "1000000000".into() }),
        ];
        for (text, want) in cases {
            assert_eq!(SymbolTable::parse(text).as_ref(), Err(want), "{text:?}");
        }
        let dup = format!("{ok}\n1 BB 239.1.1.2 239.2.2.2 1\n");
        assert_eq!(SymbolTable::parse(&dup), Err(SymbolsError::DuplicateIndex { line: 3, index: 1, first: 1 }));
        let dup = format!("{ok}2 AA 239.1.1.2 239.2.2.2 1\n");
        let aa = Ticker::parse("AA").unwrap();
        assert_eq!(SymbolTable::parse(&dup), Err(SymbolsError::DuplicateTicker { line: 2, ticker: aa, first: 1 }));
        let conflict = format!("{ok}2 BB 239.2.2.1 239.2.2.9 1\n");
        let addr = Ipv4Addr::new(239, 2, 2, 1);
        assert_eq!(SymbolTable::parse(&conflict), Err(SymbolsError::GroupConflict { line: 2, addr }));
        let same_line = "1 AA 239.1.1.1 239.1.1.1 1\n";
        let addr = Ipv4Addr::new(239, 1, 1, 1);
        assert_eq!(SymbolTable::parse(same_line), Err(SymbolsError::GroupConflict { line: 1, addr }));
        let msg = SymbolTable::parse("1 AA 239.1.1.1\n").unwrap_err().to_string();
        assert!(msg.starts_with("line 1: expected 5 fields"), "{msg}");
    }
}
