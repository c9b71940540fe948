//! A small driver for engine tests: stamps inputs with the next sequence
//! number and a fake clock.

// Each test binary (matching, matching_props, audit_props) uses a part of
// this module; every item is used by one of them.
#![allow(dead_code)]

pub mod strategies;

use aex::*;

/// Drives one engine.
pub struct Driver {
    pub engine: Engine,
    pub epoch: Epoch,
    pub time: Timestamp,
}

impl Driver {
    pub fn new(symbols: &[SymbolIndex]) -> Driver {
        Driver::with_config(symbols, EngineConfig::default())
    }

    pub fn with_config(symbols: &[SymbolIndex], config: EngineConfig) -> Driver {
        Driver { engine: Engine::new(symbols.iter().copied(), config), epoch: 1, time: 1_000 }
    }

    pub fn next(&mut self, input: Input) -> SequencedInput {
        self.time += 1_000;
        SequencedInput { seq: self.engine.next_seq(), epoch: self.epoch, time: self.time, input }
    }

    pub fn apply(&mut self, input: Input) -> Outputs {
        let rec = self.next(input);
        self.engine.apply(rec).expect("in sequence")
    }

    pub fn limit(
        &mut self,
        session: SessionId,
        client_id: ClientOrderId,
        side: Side,
        price: Price,
        qty: Qty,
    ) -> Outputs {
        self.order(session, client_id, 1, side, price, qty, OrderType::Limit, TimeInForce::Day)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn order(
        &mut self,
        session: SessionId,
        client_id: ClientOrderId,
        symbol: SymbolIndex,
        side: Side,
        price: Price,
        qty: Qty,
        kind: OrderType,
        tif: TimeInForce,
    ) -> Outputs {
        self.apply(Input::Enter(NewOrder { session, client_id, symbol, side, price, qty, kind, tif }))
    }

    pub fn market(&mut self, session: SessionId, client_id: ClientOrderId, side: Side, qty: Qty) -> Outputs {
        self.order(session, client_id, 1, side, 0, qty, OrderType::Market, TimeInForce::Ioc)
    }

    pub fn cancel(&mut self, session: SessionId, client_id: ClientOrderId) -> Outputs {
        self.apply(Input::Cancel { session, client_id, symbol: 1 })
    }

    pub fn reduce(&mut self, session: SessionId, client_id: ClientOrderId, qty: Qty) -> Outputs {
        self.apply(Input::Reduce { session, client_id, symbol: 1, qty })
    }

    pub fn book(&self) -> &aex::book::Book {
        self.engine.book(1).unwrap()
    }
}

/// The acknowledgement in some outputs.
pub fn ack(o: &Outputs) -> Ack {
    o.responses
        .iter()
        .find_map(|r| match r {
            Response::Accepted(a) => Some(*a),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no ack in {o:?}"))
}

/// The executions in some outputs.
pub fn executions(o: &Outputs) -> Vec<Execution> {
    o.responses
        .iter()
        .filter_map(|r| match r {
            Response::Executed(e) => Some(*e),
            _ => None,
        })
        .collect()
}

/// The cancels in some outputs.
pub fn cancels(o: &Outputs) -> Vec<Cancelled> {
    o.responses
        .iter()
        .filter_map(|r| match r {
            Response::Cancelled(c) => Some(*c),
            _ => None,
        })
        .collect()
}

/// The reject reason, if the outputs are a single reject.
pub fn rejected(o: &Outputs) -> Option<RejectReason> {
    match o.responses.as_slice() {
        [Response::Rejected(r)] if o.market_data.is_empty() => Some(r.reason),
        _ => None,
    }
}

/// The canonical bytes of some outputs.
pub fn bytes(o: &Outputs) -> Vec<u8> {
    let mut b = vec![];
    aex::wire::report::encode_outputs(o, &mut b);
    b
}
