//! Overlay DNS on the node: the entries this host added (published in its
//! record), the tombstones it publishes for other hosts' entries, applying
//! others' tombstones to its own entries, and the merged view of every
//! host's entries for the DNS server. The logic is in [`crate::dns`].

use super::{Event, Node};
use crate::dns::{self, DnsEntry, DnsError, DnsTombstone, OwnNames, Published, Selector, Visible};
use crate::keys::PublicKey;
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
        if self.trust.is_some() {
            let normal = weavers_api::dns_name::normalize(name)?;
            if !self.may_register(&self.public_key(), &normal) {
                return Err(DnsError::NotPermitted(format!(
                    "this host's certificate does not allow the name {normal}.weavers.local (see its --names)"
                )));
            }
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

    /// Every host's entries (this one's too) that no tombstone hides. In
    /// network-authority mode only names a host's certificate allows count,
    /// its entries and its tombstones alike (a host cannot remove a name it
    /// could not register).
    pub fn dns_view(&self) -> Vec<Visible> {
        let me = self.public_key();
        let permitted = |origin: &PublicKey, tombs: &[DnsTombstone]| -> Option<Vec<DnsTombstone>> {
            self.trust.as_ref()?;
            Some(tombs.iter().filter(|t| self.may_register(origin, &t.name)).cloned().collect())
        };
        let all = std::iter::once((me, self.cfg.name.as_str(), &self.own.dns, &self.own.dns_tombstones))
            .chain(self.records().map(|r| (r.key, r.name.as_str(), &r.dns, &r.dns_tombstones)));
        let filtered: Vec<_> = all.map(|(k, n, e, t)| (k, n, e, t, permitted(&k, t))).collect();
        let records: Vec<Published<'_>> = filtered
            .iter()
            .map(|(k, n, e, t, f)| Published {
                origin: *k,
                origin_name: n,
                entries: e,
                tombstones: f.as_deref().unwrap_or(t),
            })
            .collect();
        let mut view = dns::visible(&records);
        if self.trust.is_some() {
            view.retain(|v| self.may_register(&v.origin, &v.name));
        }
        view
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
            // In network-authority mode, only tombstones of names their
            // publisher may register.
            let tombs: Vec<DnsTombstone> = records
                .flat_map(|r| r.dns_tombstones.iter().map(move |t| (r.key, t)))
                .filter(|(k, t)| t.origin == me && self.may_register(k, &t.name))
                .map(|(_, t)| t.clone())
                .collect();
            let gone = self.dns.own.apply_tombstones(&me, &tombs);
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
