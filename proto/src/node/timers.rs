//! The periodic work: handshakes (first, retries, rekeys), keepalives,
//! expiry, gossip, forgetting, MAC ageing.

use super::*;
use crate::gossip::Connection;
use crate::wire::Kind;

impl Node {
    /// Does whatever is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, io: &mut impl Io) {
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + self.cfg.timers.tick;
        // Liveness depends on time: recompute routes every tick (cheap).
        self.routes_dirty = true;
        self.expire_handshakes(now);
        self.expire_sessions(now);
        self.dial_bootstraps(now, io);
        self.maintain_peers(now, io);
        self.expire_members(now);
        self.expire_fragments(now);
        self.ipam_tick(now, io);
        self.querier_tick(now, io);
        self.gossip_tick(now, io);
        self.macs.sweep(now, |_| false);
        self.flush(io);
    }

    fn backoff(&mut self, attempts: u32) -> Duration {
        let base = Duration::from_secs(1) * 2u32.saturating_pow(attempts.min(16));
        let capped = base.min(self.cfg.timers.max_backoff);
        // Up to 25% jitter so peers that lost each other do not retry in lockstep.
        capped + capped.mul_f64(self.rng.gen::<f64>() * 0.25)
    }

    fn expire_handshakes(&mut self, now: Instant) {
        let timeout = self.cfg.timers.handshake_timeout;
        let stale: Vec<(u32, Target)> = self
            .outgoing
            .iter()
            .filter(|(_, o)| now.saturating_duration_since(o.hs.started) >= timeout)
            .map(|(i, o)| (*i, o.target))
            .collect();
        for (i, target) in stale {
            self.outgoing.remove(&i);
            match target {
                Target::Peer(k) => {
                    let Some(attempts) = self.peers.get_mut(&k).map(|p| {
                        p.in_flight = None;
                        p.attempts += 1;
                        p.attempts
                    }) else {
                        continue;
                    };
                    let wait = self.backoff(attempts - 1);
                    if let Some(p) = self.peers.get_mut(&k) {
                        p.next_attempt = now + wait;
                    }
                }
                Target::Bootstrap(a) => {
                    let Some(pos) = self.bootstraps.iter().position(|b| b.addr == a) else { continue };
                    self.bootstraps[pos].in_flight = None;
                    self.bootstraps[pos].attempts += 1;
                    let wait = self.backoff(self.bootstraps[pos].attempts - 1);
                    self.bootstraps[pos].next_attempt = now + wait;
                }
            }
        }
        self.incoming.retain(|_, i| now.saturating_duration_since(i.hs.started) < timeout * 2);
    }

    fn expire_sessions(&mut self, now: Instant) {
        let reject = self.cfg.timers.reject_after;
        let mut removed = Vec::new();
        for p in self.peers.values_mut() {
            for slot in [&mut p.current, &mut p.previous, &mut p.next] {
                if slot.as_ref().is_some_and(|s| now.saturating_duration_since(s.established) >= reject) {
                    removed.push(slot.take().expect("checked").local_index);
                }
            }
            if p.current.is_none() && p.previous.is_some() {
                p.current = p.previous.take();
            }
        }
        if !removed.is_empty() {
            self.routes_dirty = true;
            self.own_dirty = true;
        }
        for i in removed {
            self.index.remove(&i);
        }
    }

    /// XX handshakes to configured addresses whose peer is not connected.
    fn dial_bootstraps(&mut self, now: Instant, io: &mut impl Io) {
        for i in 0..self.bootstraps.len() {
            let b = &self.bootstraps[i];
            if b.in_flight.is_some() || now < b.next_attempt {
                continue;
            }
            if let Some(k) = b.key {
                // Known: the peer's own IK reconnection handles it, unless
                // that keeps failing (the host may have a new key).
                let p = self.peers.get(&k);
                if p.is_some_and(|p| p.is_connected(now, &self.cfg.timers) || p.in_flight.is_some() || p.attempts < 3) {
                    continue;
                }
            }
            let addr = b.addr;
            self.initiate(now, Target::Bootstrap(addr), addr, io);
        }
    }

    /// Keepalives, rekeys and reconnections for every known peer.
    fn maintain_peers(&mut self, now: Instant, io: &mut impl Io) {
        let t = self.cfg.timers.clone();
        let keys: Vec<PublicKey> = self.peers.keys().copied().collect();
        for k in keys {
            let p = &self.peers[&k];
            let connected = p.is_connected(now, &t);
            if connected && p.last_ping.is_none_or(|l| now.saturating_duration_since(l) >= t.keepalive) {
                self.send_ping(now, k, io);
            }
            let p = &self.peers[&k];
            let age = p.current.as_ref().map(|s| (now.saturating_duration_since(s.established), s.initiator));
            // The initiator rekeys first; the responder steps in a little later.
            let rekey = age
                .is_some_and(|(a, init)| a >= t.rekey_after + if init { Duration::ZERO } else { t.rekey_after / 12 });
            let wants = !connected || rekey;
            if !wants || p.in_flight.is_some() || now < p.next_attempt {
                continue;
            }
            // Only peers reachable directly are worth dialling: the last
            // endpoint, else a candidate from gossip, rotating on failures.
            let mut addrs: Vec<SocketAddr> = p.endpoint.into_iter().collect();
            addrs.extend(p.candidates.iter().filter(|c| Some(**c) != p.endpoint));
            if addrs.is_empty() {
                continue;
            }
            let to = addrs[p.attempts as usize % addrs.len()];
            self.initiate(now, Target::Peer(k), to, io);
        }
        if self
            .peers
            .values()
            .any(|p| !p.is_connected(now, &t) && p.current.is_some() && self.hops.get(&p.key) == Some(&p.key))
        {
            // A direct route through a dead session: route around it.
            self.routes_dirty = true;
        }
    }

    /// Refreshes the own record; pushes changes; full exchange now and then;
    /// forgets hosts gone for long.
    fn gossip_tick(&mut self, now: Instant, io: &mut impl Io) {
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
            let msgs = crate::gossip::encode_messages(records);
            for k in &connected {
                for m in &msgs {
                    self.send_control(now, *k, Kind::Gossip, m, io);
                }
            }
        }
        let peers = &self.peers;
        let forgotten =
            self.gossip.forget_stale(now, t.forget_after, |k| peers.get(k).is_some_and(|p| p.is_connected(now, &t)));
        for k in forgotten {
            self.ipam_forget(k);
            let configured = self.bootstraps.iter().any(|b| b.key == Some(k));
            if !configured {
                self.drop_peer(&k);
            }
        }
    }

    /// Rewrites the own record if connections changed or it is due a refresh.
    pub(super) fn refresh_own(&mut self, now: Instant) {
        self.names_tick(now);
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

    /// Recomputes next hops if anything they depend on changed.
    pub(super) fn refresh_routes(&mut self, now: Instant) {
        if !self.routes_dirty {
            return;
        }
        self.routes_dirty = false;
        let t = &self.cfg.timers;
        let direct: Vec<PublicKey> = self.peers.values().filter(|p| p.is_connected(now, t)).map(|p| p.key).collect();
        let links: Vec<(PublicKey, Vec<PublicKey>)> =
            self.gossip.records().map(|r| (r.key, r.connections.iter().map(|c| c.key).collect())).collect();
        self.hops =
            crate::routing::next_hops(self.public_key(), &direct, links.iter().map(|(k, v)| (*k, v.as_slice())));
    }
}
