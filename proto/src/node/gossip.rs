//! Gossip on the node: this host's own record (rebuilt from what it
//! announces, signed and published when that changes), the records of
//! every other host as [`crate::gossip::sync`] delivers them, and what
//! follows from them: names and candidate endpoints for the peer table,
//! IPAM, multicast subscriptions, routes, DNS. The protocol (push by the
//! origin, anti-entropy by digests) and the signed record format are in
//! [`crate::gossip`].

use super::{Event, Io, Node};
use crate::gossip::record::{PeerRecord, SignedRecord, MAX_ENDPOINTS, MAX_UNREACHABLE};
use crate::gossip::sync::Event as GossipEvent;
use crate::keys::PublicKey;
use crate::stats::DropReason;
use crate::wire::Kind;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// Least time between two versions of the own record that differ only in
/// reachability or endpoints.
const LAZY_PUBLISH: std::time::Duration = std::time::Duration::from_millis(500);

/// Least time between two versions that differ only in hosts that became
/// reachable again.
const SLOW_PUBLISH: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a peer with a session must be down before the own record lists
/// it as unreachable (traffic to it moves to a relay at once regardless).
const UNREACHABLE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// Most distinct observed addresses of this host remembered.
const MAX_OBSERVED: usize = 16;

/// The group filters local members want, as last taken from
/// [`crate::groups::LocalGroups`] (the own record carries them fitted).
#[derive(Debug, Default)]
pub(super) struct OwnGroups {
    /// The members' generation they were taken at.
    generation: u64,
    /// None until first taken.
    wanted: Option<Vec<crate::groups::GroupFilter>>,
}

/// Underlay addresses peers said they see this host at, and by how many
/// different peers: the most reported become the record's endpoints.
#[derive(Debug, Default)]
pub(super) struct Observed {
    seen: Vec<(SocketAddr, Vec<PublicKey>)>,
}

impl Observed {
    /// `by` sees this host at `addr`.
    pub(super) fn report(&mut self, addr: SocketAddr, by: PublicKey) {
        if let Some((_, who)) = self.seen.iter_mut().find(|(a, _)| *a == addr) {
            if !who.contains(&by) && who.len() < 8 {
                who.push(by);
            }
            return;
        }
        if self.seen.len() >= MAX_OBSERVED {
            // Forget the least reported address.
            if let Some(i) = (0..self.seen.len()).min_by_key(|i| self.seen[*i].1.len()) {
                self.seen.swap_remove(i);
            }
        }
        self.seen.push((addr, vec![by]));
    }

    /// The addresses to publish: those reported by at least two peers (one
    /// peer alone cannot make every host dial an address of its choice),
    /// or by the only peer there is; most reported first.
    fn endpoints(&self) -> Vec<SocketAddr> {
        let reporters: usize = self.seen.iter().flat_map(|(_, w)| w).collect::<std::collections::HashSet<_>>().len();
        let need = if reporters <= 1 { 1 } else { 2 };
        let mut v: Vec<&(SocketAddr, Vec<PublicKey>)> = self.seen.iter().filter(|(_, w)| w.len() >= need).collect();
        v.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        v.into_iter().take(MAX_ENDPOINTS).map(|(a, _)| *a).collect()
    }
}

impl Node {
    /// Announces (or withdraws) this host's overlay address in gossip.
    pub fn set_overlay_addr(&mut self, addr: Option<(IpAddr, u8)>) {
        if self.own.overlay_addr != addr {
            self.own.overlay_addr = addr;
        }
    }

    /// Overlay addresses other hosts announced.
    pub fn announced_overlay_addrs(&self) -> Vec<(IpAddr, u8)> {
        self.records().filter_map(|r| r.overlay_addr).collect()
    }

    /// Every other host's record.
    pub(super) fn records(&self) -> impl Iterator<Item = &PeerRecord> {
        let me = self.public_key();
        self.gossip.table().entries().map(|e| &e.record).filter(move |r| r.key != me)
    }

    /// Another host's record.
    pub(super) fn record(&self, key: &PublicKey) -> Option<&PeerRecord> {
        if *key == self.public_key() {
            return None;
        }
        self.gossip.table().get(key).map(|e| &e.record)
    }

    /// This host's record as published (signed) last.
    pub(super) fn published(&self) -> &PeerRecord {
        self.gossip.own()
    }

    /// Rebuilds the own record from what this host announces (every tick:
    /// cheap, and nothing has to remember to ask for it); when anything
    /// differs from the published one (or a refresh is due, or a newer
    /// version of ours was seen), stamps a new version, signs it and pushes
    /// it to every peer. A record whose content did not change is never
    /// republished: a forming mesh changes sessions by the thousand.
    pub(super) fn refresh_own(&mut self, now: Instant, io: &mut impl Io) {
        self.dns_tick(now);
        // Peers never connected, and peers down for UNREACHABLE_AFTER: a
        // verdict that a recheck undoes at once (a lossy or loaded path)
        // does not cost a new version, which every host would verify.
        let mut unreachable: Vec<u64> = self
            .peers
            .values()
            .filter(|p| p.current.is_none() || p.live.down_for(now).is_some_and(|d| d >= UNREACHABLE_AFTER))
            .filter(|p| self.gossip.table().get(&p.key).is_some())
            .map(|p| p.key.short_id().0)
            .collect();
        unreachable.sort_unstable();
        let more = unreachable.len() > MAX_UNREACHABLE;
        unreachable.truncate(MAX_UNREACHABLE);
        self.own.unreachable = unreachable;
        self.own.unreachable_more = more;
        self.own.endpoints = self.observed.endpoints();
        self.take_group_limits();
        self.own.ipam = self.ipam_record();
        if let Some(c) = self.own_cert().filter(|c| self.own.cert.as_deref() != Some(c.encoded())) {
            self.own.cert = Some(c.encoded().to_vec());
        }
        let since = now.saturating_duration_since(self.own_refreshed);
        let published = self.published();
        // What others act on at once (groups, names, addresses) goes out at
        // once; what only matters for relays and dialling (reachability,
        // endpoints: these change with every session while a mesh forms)
        // at most once per LAZY_PUBLISH, so a forming mesh does not send a
        // record per session.
        let urgent = self.force_publish
            || self.own.groups != published.groups
            || self.own.dns != published.dns
            || self.own.dns_tombstones != published.dns_tombstones
            || self.own.overlay_addr != published.overlay_addr
            || self.own.ipam != published.ipam
            || self.own.cert != published.cert
            || self.own.name != published.name;
        // A host newly unreachable must stop being chosen as a relay
        // soon; one reachable again can wait (a stale entry only makes this
        // host look like a worse relay than it is). While a mesh forms,
        // the list only shrinks, so forming costs no republishing.
        let (mine, theirs) = (&self.own, published);
        let grew = if theirs.unreachable_more {
            false
        } else {
            mine.unreachable_more || mine.unreachable.iter().any(|k| !theirs.unreachable.contains(k))
        };
        let lazy = grew || mine.endpoints != theirs.endpoints;
        let slow = mine.unreachable != theirs.unreachable || mine.unreachable_more != theirs.unreachable_more;
        let due = since >= self.cfg.timers.refresh_interval;
        if !(urgent || due || (lazy && since >= LAZY_PUBLISH) || (slow && since >= SLOW_PUBLISH)) {
            return;
        }
        self.own.version = self.stamp(now);
        self.own_refreshed = now;
        self.force_publish = false;
        self.fit_own_groups();
        let signed = SignedRecord::sign(&self.own, &self.cfg.keypair);
        self.gossip.publish(signed, self.own.clone(), now);
        self.drain_gossip(now, io);
    }

    /// Takes the local members' filters into the own record when they
    /// changed (what members asked for, before [`Node::fit_own_groups`]),
    /// and counts what their limits refused or widened.
    fn take_group_limits(&mut self) {
        let limited = self.local_groups.take_limited();
        self.drops.add(DropReason::GroupLimit, limited);
        let generation = self.local_groups.generation();
        if self.own_groups.generation != generation || self.own_groups.wanted.is_none() {
            let (filters, widened) = self.local_groups.filters_counted();
            self.drops.add(DropReason::GroupLimit, widened as u64);
            self.own_groups = OwnGroups { generation, wanted: Some(filters.clone()) };
            self.own.groups = filters;
        }
    }

    /// Before the own record is signed: its groups are what members want,
    /// fitted so that peers accept the record (see
    /// [`PeerRecord::fit_groups`]); what that changes is counted once per
    /// change, not at every publication.
    fn fit_own_groups(&mut self) {
        if let Some(wanted) = &self.own_groups.wanted {
            self.own.groups.clone_from(wanted);
        }
        let changed = self.own.fit_groups();
        if changed > 0 && self.own.groups != self.published().groups {
            self.drops.add(DropReason::GroupLimit, changed as u64);
        }
    }

    /// The periodic gossip work: the own record, an anti-entropy round
    /// when due.
    pub(super) fn gossip_tick(&mut self, now: Instant, io: &mut impl Io) {
        self.refresh_own(now, io);
        self.gossip.handle_timeout(now);
        self.drain_gossip(now, io);
    }

    /// Forgets hosts gone for long (housekeeping: a scan of the table);
    /// [`Node::drain_gossip`] applies it.
    pub(super) fn forget_stale(&mut self, now: Instant) {
        let forget_after = self.cfg.timers.forget_after;
        let peers = &self.peers;
        let hops = &self.hops;
        // Kept while this host reaches it, directly or through a relay.
        self.gossip.forget_stale(now, forget_after, |k| {
            peers.get(k).is_some_and(|p| p.is_connected()) || hops.contains_key(k)
        });
    }

    /// A gossip message from the direct peer `from`.
    pub(super) fn on_gossip(&mut self, now: Instant, from: PublicKey, body: &[u8], io: &mut impl Io) {
        let now_ms = self.clock_ms(now);
        let before = self.gossip.stats();
        self.gossip.handle(from, body, now, now_ms);
        let after = self.gossip.stats();
        let refused = (after.malformed + after.bad_record + after.bad_signature + after.from_the_future)
            - (before.malformed + before.bad_record + before.bad_signature + before.from_the_future);
        self.drops.add(DropReason::BadGossip, refused);
        self.drops.add(DropReason::GossipTableFull, after.table_full - before.table_full);
        self.drain_gossip(now, io);
    }

    /// Tells the gossip layer a session with `key` is up (again).
    pub(super) fn gossip_peer_up(&mut self, now: Instant, key: PublicKey, io: &mut impl Io) {
        self.gossip.peer_up(key, now);
        self.drain_gossip(now, io);
    }

    /// Sends what the gossip layer queued and applies what it learned.
    pub(super) fn drain_gossip(&mut self, now: Instant, io: &mut impl Io) {
        let dns_before = self.dns_changes_seen;
        while let Some(ev) = self.gossip.poll_event() {
            match ev {
                GossipEvent::Merged { key, .. } => self.on_record(now, key),
                GossipEvent::Forgotten(key) => {
                    self.ipam_forget(key);
                    self.routes_dirty = true;
                    self.remote_groups_dirty = true;
                    let configured = self.bootstraps.iter().any(|b| b.key == Some(key));
                    if !configured {
                        self.drop_peer(&key);
                    }
                }
                GossipEvent::OwnSeenNewer(v) => {
                    // A record of ours from before a restart that lost state:
                    // move past it.
                    self.last_stamp = self.last_stamp.max(v);
                    self.force_publish = true;
                }
            }
        }
        while let Some((to, msg)) = self.gossip.poll_transmit() {
            self.send_control(now, to, Kind::Gossip, &msg, io);
        }
        self.dns_changes_seen = self.gossip.table().dns_changes();
        if self.dns_changes_seen != dns_before {
            self.emit(Event::DnsChanged);
        }
    }

    /// Another host's record arrived (new or newer).
    fn on_record(&mut self, now: Instant, key: PublicKey) {
        if self.is_barred(&key) {
            // Revoked: its record may circulate, but it is not a peer.
            return;
        }
        let Some(r) = self.record(&key) else { return };
        let name = r.name.clone();
        let endpoints = r.endpoints.clone();
        let ipam = r.ipam.clone();
        // Only in network-authority mode, and only when it is not the one
        // already known (checking it costs a signature verification).
        let known = self.peers.get(&key).and_then(|p| p.cert.as_ref()).map(|c| c.encoded());
        let cert = r.cert.as_ref().filter(|c| self.trust.is_some() && known != Some(c.as_slice())).cloned();
        let cannot_reach_me = !r.reaches(&self.public_key()) && !r.unreachable_more;
        self.ipam_merge(key, ipam.as_ref());
        self.routes_dirty = true;
        self.remote_groups_dirty = true;
        let p = self.peer_entry(key, now);
        p.set_name(&name);
        // Where its peers see it: candidates to dial it at.
        for ep in endpoints {
            if Some(ep) != p.endpoint && !p.candidates.contains(&ep) {
                if p.candidates.len() >= MAX_ENDPOINTS * 2 {
                    p.candidates.remove(0);
                }
                p.candidates.push(ep);
            }
        }
        if let Some(c) = cert {
            self.adopt_record_cert(now, key, &c);
        }
        let Some(p) = self.peers.get_mut(&key) else { return };
        // It says it cannot reach us: check whether we reach it.
        if cannot_reach_me && p.is_connected() && p.live.verify(now) {
            self.pending_pings.push(key);
        }
    }
}
