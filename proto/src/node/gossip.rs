//! Gossip on the node: this host's own record (rewritten when what it
//! announces changes, and refreshed now and then), pushing changed records
//! to connected peers, the periodic full exchange, merging the records that
//! arrive, and forgetting hosts gone for long. The table and the record
//! format are in [`crate::gossip`].

use super::{Event, Io, Node};
use crate::gossip::{self, Connection, Merge, PeerRecord};
use crate::keys::PublicKey;
use crate::stats::DropReason;
use crate::wire::Kind;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

impl Node {
    /// Announces (or withdraws) this host's overlay address in gossip.
    pub fn set_overlay_addr(&mut self, addr: Option<(IpAddr, u8)>) {
        if self.own.overlay_addr != addr {
            self.own.overlay_addr = addr;
            self.own_dirty = true;
        }
    }

    /// Overlay addresses other hosts announced.
    pub fn announced_overlay_addrs(&self) -> Vec<(IpAddr, u8)> {
        self.gossip.records().filter_map(|r| r.overlay_addr).collect()
    }

    /// Rewrites the own record if connections changed or it is due a refresh.
    pub(super) fn refresh_own(&mut self, now: Instant) {
        self.dns_tick(now);
        let t = &self.cfg.timers;
        let mut connections: Vec<Connection> = self
            .peers
            .values()
            .filter(|p| p.is_connected(now, t))
            .filter_map(|p| Some(Connection { key: p.key, endpoint: p.endpoint? }))
            .collect();
        connections.sort_by_key(|c| c.key);
        let groups = self.local_groups.filters();
        let ipam = self.ipam_record();
        let due = now.saturating_duration_since(self.own_refreshed) >= t.refresh_interval;
        if connections != self.own.connections
            || groups != self.own.groups
            || ipam != self.own.ipam
            || due
            || self.own_dirty
        {
            self.own.ipam = ipam;
            if connections != self.own.connections {
                self.routes_dirty = true;
            }
            self.own.connections = connections;
            self.own.groups = groups;
            self.own.version = self.stamp(now);
            self.own_refreshed = now;
            self.own_dirty = false;
        }
    }

    /// Sends every record this node knows (its own included) to `to`.
    pub(super) fn send_full_gossip(&mut self, now: Instant, to: PublicKey, io: &mut impl Io) {
        self.refresh_own(now);
        let msgs = gossip::encode_messages(std::iter::once(&self.own).chain(self.gossip.records()));
        for m in msgs {
            self.send_control(now, to, Kind::Gossip, &m, io);
        }
    }

    /// Refreshes the own record; pushes changes; full exchange now and then;
    /// forgets hosts gone for long.
    pub(super) fn gossip_tick(&mut self, now: Instant, io: &mut impl Io) {
        let t = self.cfg.timers.clone();
        self.refresh_own(now);
        // Versions stamped anywhere (also while greeting a new peer) are
        // pushed to everyone once.
        if self.own.version != self.own_pushed {
            self.own_pushed = self.own.version;
            let me = self.public_key();
            if !self.gossip_pending.contains(&me) {
                self.gossip_pending.push(me);
            }
        }
        let connected: Vec<PublicKey> =
            self.peers.values().filter(|p| p.is_connected(now, &t)).map(|p| p.key).collect();
        if now.saturating_duration_since(self.last_full_gossip) >= t.gossip_interval {
            self.last_full_gossip = now;
            self.gossip_pending.clear();
            for k in &connected {
                self.send_full_gossip(now, *k, io);
            }
        } else if !self.gossip_pending.is_empty() {
            let me = self.public_key();
            let pending = std::mem::take(&mut self.gossip_pending);
            let records: Vec<&PeerRecord> =
                pending.iter().filter_map(|k| if *k == me { Some(&self.own) } else { self.gossip.get(k) }).collect();
            let msgs = gossip::encode_messages(records);
            for k in &connected {
                for m in &msgs {
                    self.send_control(now, *k, Kind::Gossip, m, io);
                }
            }
        }
        let peers = &self.peers;
        let dns_before = self.gossip.dns_changes();
        let forgotten =
            self.gossip.forget_stale(now, t.forget_after, |k| peers.get(k).is_some_and(|p| p.is_connected(now, &t)));
        self.note_dns_changes(dns_before);
        for k in forgotten {
            self.ipam_forget(k);
            let configured = self.bootstraps.iter().any(|b| b.key == Some(k));
            if !configured {
                self.drop_peer(&k);
            }
        }
    }

    /// A gossip message from a direct peer: merges the records newer than
    /// what this node holds.
    pub(super) fn on_gossip(&mut self, now: Instant, body: &[u8]) {
        let Some(records) = gossip::decode_message(body) else {
            return self.drops.count(DropReason::BadGossip);
        };
        let me = self.public_key();
        let dns_before = self.gossip.dns_changes();
        for r in records {
            if r.key == me {
                // Someone holds a newer record of ours than we do (we lost
                // state): move past it.
                if r.version > self.own.version {
                    self.last_stamp = self.last_stamp.max(r.version);
                    self.own_dirty = true;
                }
                continue;
            }
            let key = r.key;
            let name = r.name.clone();
            let endpoints_of_others: Vec<(PublicKey, SocketAddr)> =
                r.connections.iter().map(|c| (c.key, c.endpoint)).collect();
            let ipam = r.ipam.clone();
            match self.gossip.merge(r, now) {
                Merge::Stale => continue,
                Merge::New | Merge::Updated => {
                    self.ipam_merge(key, ipam.as_ref());
                    self.routes_dirty = true;
                    self.remote_groups_dirty = true;
                    if !self.gossip_pending.contains(&key) {
                        self.gossip_pending.push(key);
                    }
                    let p = self.peer_entry(key, now);
                    if !name.is_empty() {
                        p.name = name;
                    }
                    // The record says where its author reaches others: those
                    // are candidate endpoints for them.
                    for (k, ep) in endpoints_of_others {
                        if k == me {
                            continue;
                        }
                        let q = self.peer_entry(k, now);
                        if !q.candidates.contains(&ep) && q.candidates.len() < 8 {
                            q.candidates.push(ep);
                        }
                    }
                }
            }
        }
        self.note_dns_changes(dns_before);
    }

    /// Queues [`Event::DnsChanged`] if the DNS entries other hosts publish
    /// changed since the table's DNS change count was `before`.
    fn note_dns_changes(&mut self, before: u64) {
        if self.gossip.dns_changes() != before {
            self.emit(Event::DnsChanged);
        }
    }
}
