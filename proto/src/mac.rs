//! MAC learning: which peer owns which Ethernet address, with ageing.

use crate::keys::PublicKey;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A MAC address.
pub type Mac = [u8; 6];

/// Whether a MAC is a group (multicast or broadcast) address.
pub fn is_group(mac: &Mac) -> bool {
    mac[0] & 1 == 1
}

/// Remote MACs learned from frames that arrived from peers.
#[derive(Debug, Default)]
pub struct MacTable {
    entries: HashMap<Mac, (PublicKey, Instant)>,
    ageing: Duration,
}

impl MacTable {
    pub fn new(ageing: Duration) -> Self {
        MacTable { entries: HashMap::new(), ageing }
    }

    /// Records that `mac` was seen behind `peer`.
    pub fn learn(&mut self, mac: Mac, peer: PublicKey, now: Instant) {
        if !is_group(&mac) {
            self.entries.insert(mac, (peer, now));
        }
    }

    /// A MAC seen as a local source: it is not remote (any more).
    pub fn forget(&mut self, mac: &Mac) {
        self.entries.remove(mac);
    }

    /// The peer owning `mac`, unless the entry has aged out.
    pub fn lookup(&self, mac: &Mac, now: Instant) -> Option<PublicKey> {
        self.entries.get(mac).filter(|(_, seen)| now.saturating_duration_since(*seen) < self.ageing).map(|(k, _)| *k)
    }

    /// Drops aged entries and those of `gone` peers.
    pub fn sweep(&mut self, now: Instant, gone: impl Fn(&PublicKey) -> bool) {
        let ageing = self.ageing;
        self.entries.retain(|_, (k, seen)| now.saturating_duration_since(*seen) < ageing && !gone(k));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_ages_and_ignores_group_addresses() {
        let t0 = Instant::now();
        let mut t = MacTable::new(Duration::from_secs(300));
        let p = PublicKey([1; 32]);
        t.learn([2, 0, 0, 0, 0, 1], p, t0);
        t.learn([1, 0, 0x5e, 0, 0, 1], p, t0);
        assert_eq!(t.lookup(&[2, 0, 0, 0, 0, 1], t0 + Duration::from_secs(299)), Some(p));
        assert_eq!(t.lookup(&[2, 0, 0, 0, 0, 1], t0 + Duration::from_secs(300)), None);
        assert_eq!(t.len(), 1);
        t.sweep(t0 + Duration::from_secs(301), |_| false);
        assert!(t.is_empty());
    }
}
