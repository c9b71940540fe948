//! What the simulated customers send and when: random orders around each
//! symbol's reference price, on a fixed schedule whose phases are spread
//! over the sessions so the load is smooth.

use crate::symbols::SymbolTable;
use crate::types::*;
use crate::wire::oe::EnterOrder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// How far from the reference price limit prices go, as a fraction.
pub const PRICE_BAND: f64 = 0.03;

/// When session `i` of `n` sends its `k`-th order (from 0), as an offset from
/// the common start: every `1/rate` seconds, session `i` shifted by `i/n` of
/// that interval.
pub fn intended_offset(i: usize, n: usize, rate: f64, k: u64) -> Duration {
    let interval = 1.0 / rate;
    let phase = interval * (i as f64) / (n.max(1) as f64);
    Duration::from_secs_f64(phase + interval * k as f64)
}

/// The limit price band `[lo, hi]` around `ref_price` (at least 1).
pub fn price_band(ref_price: Price) -> (Price, Price) {
    let r = f64::from(ref_price);
    let lo = ((r * (1.0 - PRICE_BAND)).floor() as Price).max(1);
    let hi = ((r * (1.0 + PRICE_BAND)).ceil() as Price).clamp(lo, MAX_PRICE);
    (lo, hi)
}

/// A random order maker.
#[derive(Debug)]
pub struct OrderGen {
    rng: StdRng,
    symbols: Vec<(SymbolIndex, Price)>,
}

impl OrderGen {
    /// A generator over `table`'s symbols, seeded.
    pub fn new(table: &SymbolTable, seed: u64) -> OrderGen {
        OrderGen { rng: StdRng::seed_from_u64(seed), symbols: table.iter().map(|s| (s.index, s.ref_price)).collect() }
    }

    /// The next order, under `client_id`: 85% Day limit, 10% IOC limit, 5%
    /// market (IOC); mostly round lots of 100..=500, else 1..=500 shares.
    pub fn next(&mut self, client_id: ClientOrderId) -> EnterOrder {
        let (index, ref_price) = self.symbols[self.rng.gen_range(0..self.symbols.len())];
        let side = if self.rng.gen_bool(0.5) { Side::Buy } else { Side::Sell };
        let qty = if self.rng.gen_bool(0.7) { 100 * self.rng.gen_range(1..=5) } else { self.rng.gen_range(1..=500) };
        let (lo, hi) = price_band(ref_price);
        let roll: f64 = self.rng.gen();
        let (price, kind, tif) = if roll < 0.85 {
            (self.rng.gen_range(lo..=hi), OrderType::Limit, TimeInForce::Day)
        } else if roll < 0.95 {
            (self.rng.gen_range(lo..=hi), OrderType::Limit, TimeInForce::Ioc)
        } else {
            (0, OrderType::Market, TimeInForce::Ioc)
        };
        EnterOrder { client_id, symbol: SymbolRef::Index(index), side, price, qty, kind, tif }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_stay_in_the_band() {
        let t = SymbolTable::shipped();
        let mut g = OrderGen::new(&t, 7);
        let (mut market, mut ioc, mut buys) = (0, 0, 0);
        for id in 1..=20_000 {
            let o = g.next(id);
            assert_eq!(o.client_id, id);
            let SymbolRef::Index(i) = o.symbol else { panic!("by index") };
            let s = t.get(i).unwrap();
            assert!((1..=500).contains(&o.qty));
            match o.kind {
                OrderType::Market => {
                    assert_eq!(o.price, 0);
                    market += 1;
                }
                OrderType::Limit => {
                    let (lo, hi) = price_band(s.ref_price);
                    assert!((lo..=hi).contains(&o.price), "{} outside {lo}..={hi}", o.price);
                    let r = f64::from(s.ref_price);
                    assert!(f64::from(o.price) >= (r * 0.97).floor() && f64::from(o.price) <= (r * 1.03).ceil());
                    if o.tif == TimeInForce::Ioc {
                        ioc += 1;
                    }
                }
            }
            if o.side == Side::Buy {
                buys += 1;
            }
        }
        assert!((500..1500).contains(&market), "{market}");
        assert!((1500..2500).contains(&ioc), "{ioc}");
        assert!((9000..11000).contains(&buys), "{buys}");
        assert_eq!(price_band(1), (1, 2));
        assert_eq!(price_band(10_000), (9_700, 10_300));
    }

    #[test]
    fn schedule_is_spread_and_even() {
        let (n, rate) = (4, 10.0);
        let interval = Duration::from_millis(100);
        let firsts: Vec<Duration> = (0..n).map(|i| intended_offset(i, n, rate, 0)).collect();
        for (i, f) in firsts.iter().enumerate() {
            let want = Duration::from_millis(25 * i as u64);
            assert!(f.abs_diff(want) < Duration::from_micros(1), "{i}: {f:?}");
            assert!(*f < interval);
        }
        for i in 0..n {
            for k in 0..100 {
                let d = intended_offset(i, n, rate, k + 1) - intended_offset(i, n, rate, k);
                assert!(d.abs_diff(interval) < Duration::from_micros(1));
            }
        }
        assert_eq!(intended_offset(0, 0, 1.0, 3), Duration::from_secs(3));
    }
}
