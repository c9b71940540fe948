//! Re-requests are answered once: a responder takes a re-request only if
//! its time is within [`WINDOW_NS`] of its own clock and later than the
//! last it took from the same requester (address) for the same stream.
//! With the requester's address in the tag ([`super::seal`]), a captured
//! re-request can neither send data elsewhere nor be played again.

use super::keys::StreamKey;
use super::seal::{within_window, AuthError, Kind, WINDOW_NS};
use crate::wire::mold::{ReRequest, Session};
use std::collections::HashMap;
use std::net::SocketAddr;

/// The most (requester, stream) pairs remembered. Only authenticated
/// requesters add one; pairs silent for longer than the window are
/// forgotten when the table is full (their old re-requests are stale by
/// then anyway), and a re-request that would need a new pair in a table
/// still full of live ones is refused as stale.
pub const MAX_REQUESTERS: usize = 65_536;

/// The last time taken per requester and stream.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    last: HashMap<(SocketAddr, Session), u64>,
}

impl ReplayGuard {
    /// An empty guard.
    pub fn new() -> ReplayGuard {
        ReplayGuard::default()
    }

    /// Takes a verified re-request from `from` for `session`, sealed at
    /// `time`, if it is fresh (and remembers it); [`AuthError::Stale`] if not.
    pub fn admit(&mut self, from: SocketAddr, session: Session, time: u64, now: u64) -> Result<(), AuthError> {
        if !within_window(time, now) {
            return Err(AuthError::Stale);
        }
        let key = (from, session);
        match self.last.get_mut(&key) {
            Some(t) if time <= *t => Err(AuthError::Stale),
            Some(t) => {
                *t = time;
                Ok(())
            }
            None => {
                if self.last.len() >= MAX_REQUESTERS {
                    let horizon = now.saturating_sub(WINDOW_NS);
                    self.last.retain(|_, t| *t >= horizon);
                    if self.last.len() >= MAX_REQUESTERS {
                        return Err(AuthError::Stale);
                    }
                }
                self.last.insert(key, time);
                Ok(())
            }
        }
    }

    /// Pairs remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

/// Opens a re-request datagram from `from` under its stream's `key` and
/// admits it through `guard`: the re-request, or why not.
pub fn open_rerequest(
    key: &StreamKey,
    guard: &mut ReplayGuard,
    from: SocketAddr,
    d: &[u8],
    now: u64,
) -> Result<ReRequest, AuthError> {
    let o = key.open(from, d)?;
    if o.kind != Kind::ReRequest {
        return Err(AuthError::Malformed);
    }
    let req = ReRequest::decode(o.body).map_err(|_| AuthError::Malformed)?;
    guard.admit(from, req.session, o.time, now)?;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::{RootKey, StreamKind};
    use crate::auth::seal::seal_rerequest;

    const NOW: u64 = 1_700_000_000_000_000_000;

    #[test]
    fn a_rerequest_is_taken_once_and_only_from_its_requester() {
        let s = Session::new("g001.001").unwrap();
        let key = StreamKey::derive(&RootKey::from_bytes([5; 32]), StreamKind::Orders, &s);
        let engine: SocketAddr = "10.40.0.1:5000".parse().unwrap();
        let attacker: SocketAddr = "10.40.0.3:5000".parse().unwrap();
        let req = ReRequest { session: s, seq: 1, count: 1000 };
        let d = seal_rerequest(&key, &req, engine, NOW);
        let mut g = ReplayGuard::new();
        assert_eq!(open_rerequest(&key, &mut g, engine, &d, NOW + 1), Ok(req));
        // Played again (same address, same time): stale.
        assert_eq!(open_rerequest(&key, &mut g, engine, &d, NOW + 2), Err(AuthError::Stale));
        // From another address (the reply would go there): forged.
        assert_eq!(open_rerequest(&key, &mut g, attacker, &d, NOW + 2), Err(AuthError::Forged));
        // A later one from the engine is fine; an older one is not.
        let later = seal_rerequest(&key, &req, engine, NOW + 10);
        assert_eq!(open_rerequest(&key, &mut g, engine, &later, NOW + 11), Ok(req));
        let older = seal_rerequest(&key, &req, engine, NOW + 5);
        assert_eq!(open_rerequest(&key, &mut g, engine, &older, NOW + 12), Err(AuthError::Stale));
        // Out of the window, even the first from an address: stale.
        let mut g = ReplayGuard::new();
        assert_eq!(open_rerequest(&key, &mut g, engine, &d, NOW + WINDOW_NS + 1), Err(AuthError::Stale));
        assert!(g.is_empty(), "nothing remembered for a refused one");
    }

    #[test]
    fn the_table_is_capped_and_forgets_only_the_silent() {
        let s = Session::new("md.001").unwrap();
        let mut g = ReplayGuard::new();
        let addr = |i: usize| SocketAddr::from(([10, 40, (i >> 8) as u8, i as u8], 7000));
        for i in 0..MAX_REQUESTERS {
            g.admit(addr(i), s, NOW, NOW).unwrap();
        }
        let late = NOW + WINDOW_NS / 2;
        assert_eq!(
            g.admit(SocketAddr::from(([10, 41, 0, 1], 1)), s, late, late),
            Err(AuthError::Stale),
            "full of live pairs"
        );
        let much_later = NOW + 2 * WINDOW_NS;
        assert_eq!(g.admit(SocketAddr::from(([10, 41, 0, 1], 1)), s, much_later, much_later), Ok(()));
        assert_eq!(g.len(), 1, "the silent ones were forgotten");
    }
}
