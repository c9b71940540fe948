//! Overlay DNS on the node: the entries this host added (published in its
//! record), the tombstones it publishes for other hosts' entries, applying
//! others' tombstones to its own entries, and the merged view of every
//! host's entries for the DNS server. The logic is in [`crate::dns`].

use super::{Event, Node};
use crate::dns::{self, DnsEntry, DnsError, OwnNames, Published, Selector, Visible};
use std::net::IpAddr;
use std::time::Instant;

/// The node's DNS state.
#[derive(Debug, Default)]
pub(super) struct DnsState {
    own: OwnNames,
    /// The gossip table's DNS change count when others' tombstones were last applied.
    seen: Option<u64>,
}

impl Node {
    /// Takes this host's entries kept from an earlier run (before it
    /// starts talking). Returns how many were skipped as invalid or too many.
    pub fn dns_restore(&mut self, entries: Vec<DnsEntry>) -> usize {
        let skipped = self.dns.own.restore(entries);
        self.publish_dns();
        skipped
    }

    /// Adds `name -> addr` to this host's entries (or refreshes it), to be
    /// published with the record's next version.
    pub fn dns_add(
        &mut self,
        name: &str,
        addr: IpAddr,
        owner: Option<&str>,
        now: Instant,
    ) -> Result<Visible, DnsError> {
        if addr.is_unspecified() {
            return Err(DnsError::Name(format!("{addr} is not an address a name can have")));
        }
        let stamp = self.stamp(now);
        let e = self.dns.own.add(name, addr, owner, stamp)?;
        self.emit(Event::OwnDnsChanged);
        self.publish_dns();
        Ok(Visible {
            name: e.name,
            addr: e.addr,
            owner: e.owner,
            origin: self.public_key(),
            origin_name: self.cfg.name.clone(),
            since: e.since,
        })
    }

    /// Removes the entries `sel` matches, this host's own and (by
    /// tombstones) other hosts'. Returns what was removed.
    pub fn dns_remove(&mut self, sel: &Selector, now: Instant) -> Result<Vec<Visible>, DnsError> {
        let me = self.public_key();
        let view = self.dns_view();
        let removed = self.dns.own.remove(&me, sel, &view, now)?;
        if !removed.is_empty() {
            if removed.iter().any(|v| v.origin == me) {
                self.emit(Event::OwnDnsChanged);
            }
            self.publish_dns();
        }
        Ok(removed)
    }

    /// Every host's entries (this one's too) that no tombstone hides.
    pub fn dns_view(&self) -> Vec<Visible> {
        let own = Published {
            origin: self.public_key(),
            origin_name: &self.cfg.name,
            entries: &self.own.dns,
            tombstones: &self.own.dns_tombstones,
        };
        let records: Vec<Published<'_>> = std::iter::once(own)
            .chain(self.records().map(|r| Published {
                origin: r.key,
                origin_name: &r.name,
                entries: &r.dns,
                tombstones: &r.dns_tombstones,
            }))
            .collect();
        dns::visible(&records)
    }

    /// This host's own entries, to be kept across restarts.
    pub fn dns_own_entries(&self) -> &[DnsEntry] {
        self.dns.own.entries()
    }

    /// Periodic work (from `refresh_own`): drops own entries that others'
    /// tombstones removed, and forgets own tombstones that are done.
    pub(super) fn dns_tick(&mut self, now: Instant) {
        let mut changed = false;
        let seen = self.gossip.table().dns_changes();
        if self.dns.seen != Some(seen) {
            self.dns.seen = Some(seen);
            let me = self.public_key();
            let records = self.gossip.table().entries().map(|e| &e.record).filter(|r| r.key != me);
            let gone = self.dns.own.apply_tombstones(&me, records.flat_map(|r| &r.dns_tombstones));
            if !gone.is_empty() {
                self.emit(Event::OwnDnsChanged);
                changed = true;
            }
        }
        let table = self.gossip.table();
        changed |= self.dns.own.expire(now, |t| table.get(&t.origin).is_some_and(|e| dns::shows(&e.record.dns, t)));
        if changed {
            self.publish_dns();
        }
    }

    /// Puts the own entries and tombstones into the own record.
    fn publish_dns(&mut self) {
        self.own.dns = self.dns.own.entries().to_vec();
        self.own.dns_tombstones = self.dns.own.tombstones();
        self.emit(Event::DnsChanged);
    }
}
