//! The engine's stream keys, from its key file: market data (`md`, one key
//! per symbol's stream), and per gateway it has a `gw.N` key for, that
//! gateway's orders streams (derived when first needed, for traded symbols
//! only) and the engine's reports to it. Orders from a gateway whose key
//! the engine lacks never verify, so it never sends that gateway reports.

use super::publisher::GatewayId;
use crate::auth::{KeyError, Keyring, RootKey, StreamKey, StreamKind};
use crate::types::SymbolIndex;
use crate::wire::mold::Session;
use std::collections::{BTreeMap, HashMap};

/// The keys of one engine's streams.
#[derive(Clone, Debug)]
pub struct EngineKeys {
    report_session: Session,
    md: BTreeMap<SymbolIndex, StreamKey>,
    md_by_session: HashMap<Session, SymbolIndex>,
    gateways: BTreeMap<GatewayId, RootKey>,
    reports: BTreeMap<GatewayId, StreamKey>,
    orders: HashMap<Session, StreamKey>,
}

impl EngineKeys {
    /// The keys of engine `name` trading `symbols`: needs `md`; every `gw.N`
    /// in the ring is a gateway it takes orders from.
    pub fn new(ring: &Keyring, name: &str, symbols: &[SymbolIndex]) -> Result<EngineKeys, KeyError> {
        let md_root = ring.md()?;
        let report_session = Session::new(&format!("r.{name}"))
            .ok_or_else(|| KeyError::Missing(format!("a report session for {name}")))?;
        let md: BTreeMap<SymbolIndex, StreamKey> = symbols
            .iter()
            .map(|&s| (s, StreamKey::derive(md_root, StreamKind::MarketData, &super::publisher::md_session(s))))
            .collect();
        let md_by_session = symbols.iter().map(|&s| (super::publisher::md_session(s), s)).collect();
        let gateways: BTreeMap<GatewayId, RootKey> =
            ring.gateway_ids().filter_map(|g| ring.gateway(g).map(|k| (g, k.clone()))).collect();
        let reports = gateways
            .iter()
            .map(|(&g, root)| (g, StreamKey::derive(root, StreamKind::Reports, &report_session)))
            .collect();
        Ok(EngineKeys { report_session, md, md_by_session, gateways, reports, orders: HashMap::new() })
    }

    /// The engine's report session (`r.NAME`).
    pub fn report_session(&self) -> Session {
        self.report_session
    }

    /// The key of a symbol's market-data stream.
    pub fn md(&self, symbol: SymbolIndex) -> Option<&StreamKey> {
        self.md.get(&symbol)
    }

    /// The key of a market-data stream by its session (`md.SSS`).
    pub fn md_by_session(&self, session: &Session) -> Option<&StreamKey> {
        self.md_by_session.get(session).and_then(|s| self.md.get(s))
    }

    /// The key of the reports to gateway `g`, if the engine has its key.
    pub fn reports(&self, g: GatewayId) -> Option<&StreamKey> {
        self.reports.get(&g)
    }

    /// The key of gateway `g`'s orders stream `session`, derived the first
    /// time (the caller checks the symbol is traded, which bounds them).
    pub fn orders(&mut self, session: Session, g: GatewayId) -> Option<&StreamKey> {
        if !self.orders.contains_key(&session) {
            let root = self.gateways.get(&g)?;
            self.orders.insert(session, StreamKey::derive(root, StreamKind::Orders, &session));
        }
        self.orders.get(&session)
    }

    /// The key of an orders stream already derived.
    pub fn orders_known(&self, session: &Session) -> Option<&StreamKey> {
        self.orders.get(session)
    }

    /// The gateways the engine holds keys for.
    pub fn gateway_ids(&self) -> impl Iterator<Item = GatewayId> + '_ {
        self.gateways.keys().copied()
    }
}
