//! The idempotency window for client order ids.
//!
//! Every accepted order's acknowledgement is kept under (session, client
//! order id), so an order sent again (a gateway resending after a failover,
//! a customer retrying after a lost connection) is answered with the
//! original acknowledgement instead of becoming a second order. The window
//! holds the most recent `capacity` acceptances and forgets the oldest
//! first (FIFO, so what is forgotten depends only on the input stream, and
//! a replay forgets the same). At the default of 1,048,576 that is about
//! 100 s of the demo's 10,000 orders/s and about 10 s at 100,000 orders/s,
//! far beyond a failover's resend; it costs about 100 bytes an entry.
//! Orders still resting are also known to the engine's live-order map, so an
//! id reused while its order rests is refused however old it is.

use crate::events::Ack;
use crate::types::{ClientOrderId, SessionId};
use std::collections::{HashMap, VecDeque};

/// The default number of acknowledgements remembered.
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// A bounded map from (session, client order id) to the acknowledgement.
#[derive(Clone, Debug)]
pub struct Dedup {
    map: HashMap<(SessionId, ClientOrderId), Ack>,
    order: VecDeque<(SessionId, ClientOrderId)>,
    capacity: usize,
}

impl Dedup {
    /// A window of `capacity` entries (at least 1). Its memory is reserved
    /// up front, so the map never grows while trading (growing a map of a
    /// million entries stalls an input for tens of milliseconds); pages not
    /// yet written cost address space, not memory.
    pub fn new(capacity: usize) -> Dedup {
        let capacity = capacity.max(1);
        Dedup { map: HashMap::with_capacity(capacity), order: VecDeque::with_capacity(capacity), capacity }
    }

    /// The acknowledgement of an earlier acceptance, if remembered.
    pub fn get(&self, session: SessionId, client_id: ClientOrderId) -> Option<&Ack> {
        self.map.get(&(session, client_id))
    }

    /// Remembers an acceptance, forgetting the oldest beyond capacity. The
    /// key must not be present.
    pub fn insert(&mut self, ack: Ack) {
        let key = (ack.order.session, ack.order.client_id);
        debug_assert!(!self.map.contains_key(&key));
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        self.map.insert(key, ack);
        self.order.push_back(key);
    }

    /// Entries remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::NewOrder;
    use crate::types::*;

    fn ack(session: SessionId, client_id: ClientOrderId) -> Ack {
        let order = NewOrder {
            session,
            client_id,
            symbol: 1,
            side: Side::Buy,
            price: 1,
            qty: 1,
            kind: OrderType::Limit,
            tif: TimeInForce::Day,
        };
        Ack { seq: client_id, order_id: client_id, order }
    }

    #[test]
    fn forgets_oldest_first() {
        let mut d = Dedup::new(2);
        d.insert(ack(1, 1));
        d.insert(ack(2, 1));
        assert_eq!(d.get(1, 1).map(|a| a.order_id), Some(1));
        d.insert(ack(1, 3));
        assert_eq!(d.len(), 2);
        assert!(d.get(1, 1).is_none());
        assert!(d.get(2, 1).is_some() && d.get(1, 3).is_some());
        assert!(Dedup::new(0).is_empty());
    }
}
