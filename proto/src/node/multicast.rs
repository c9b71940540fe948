//! Multicast: membership snooped from the TAP, this host's querier, and the
//! replication decision (each group frame only to the peers whose announced
//! filter admits its group and source).

use super::{Io, Node};
use crate::groups::{FilterMode, GroupFilter, RemoteIndex};
use crate::keys::PublicKey;
use crate::mac::Mac;
use crate::snoop::{self, FrameClass, Membership, SnoopError};
use crate::stats::DropReason;
use crate::vnet::VNET_HDR_LEN;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};
use weavers_api::{FilterInfo, GroupCounters, GroupInfo, LocalMemberInfo, PeerSent, SubscribedPeer};

/// Groups with counters at most (a local sender spraying groups cannot grow
/// the table without bound).
const MAX_COUNTED_GROUPS: usize = 4096;

/// Per-group counters.
#[derive(Debug, Default)]
pub(super) struct Counters {
    local_frames: u64,
    local_bytes: u64,
    delivered_frames: u64,
    delivered_bytes: u64,
    dropped_frames: u64,
    refused_frames: u64,
    refused_copies: u64,
    sent: HashMap<PublicKey, (u64, u64)>,
}

/// Max response time of the startup queries.
const STARTUP_RESPONSE: Duration = Duration::from_secs(1);

/// This host's IGMP/MLD querier: general queries into the TAP so members
/// keep reporting, unless another querier is on the bridge.
#[derive(Debug)]
pub(super) struct Querier {
    mac: Mac,
    ip6: Ipv6Addr,
    next_query: Instant,
    /// Startup queries still to send at a quarter of the interval.
    startup_left: u32,
    /// Another querier was heard: stay quiet until then.
    other_until: Option<Instant>,
    pub(super) sent: u64,
}

impl Querier {
    pub(super) fn new(key: &PublicKey, now: Instant) -> Self {
        // A locally administered unicast MAC derived from the host's key.
        let mac = [0x02 | (key.0[0] & 0xfc), key.0[1], key.0[2], key.0[3], key.0[4], key.0[5]];
        Querier {
            mac,
            ip6: snoop::link_local_from_mac(mac),
            next_query: now,
            startup_left: 2,
            other_until: None,
            sent: 0,
        }
    }
}

fn filter_info(mode: FilterMode, sources: &[IpAddr]) -> FilterInfo {
    FilterInfo {
        mode: match mode {
            FilterMode::Include => "include",
            FilterMode::Exclude => "exclude",
        }
        .into(),
        sources: sources.iter().map(|s| s.to_string()).collect(),
    }
}

impl Node {
    /// Sends general queries when due.
    pub(super) fn querier_tick(&mut self, now: Instant, io: &mut impl Io) {
        let t = &self.cfg.timers;
        let q = &mut self.querier;
        if now < q.next_query {
            return;
        }
        if q.other_until.is_some_and(|u| now < u) {
            q.next_query = now + t.query_interval;
            return;
        }
        q.other_until = None;
        // The startup queries (this daemon just started, maybe restarted
        // under members that are still joined) ask for answers within a
        // second, so that the groups are known again at once, not after up
        // to the whole response interval.
        let respond_within = if q.startup_left > 0 {
            t.query_response_interval().min(STARTUP_RESPONSE)
        } else {
            t.query_response_interval()
        };
        let max_resp_ms = respond_within.as_millis() as u32;
        let robustness = t.robustness.min(7) as u8;
        let qi = t.query_interval.as_secs() as u32;
        io.deliver(&snoop::igmpv3_general_query(q.mac, max_resp_ms, robustness, qi));
        io.deliver(&snoop::mldv2_general_query(q.mac, q.ip6, max_resp_ms, robustness, qi));
        q.sent += 1;
        q.next_query = if q.startup_left > 0 {
            q.startup_left -= 1;
            now + t.query_interval / 4
        } else {
            now + t.query_interval
        };
    }

    /// Expires silent members.
    pub(super) fn expire_members(&mut self, now: Instant) {
        if self.local_groups.expire(now) {}
    }

    /// An IGMP/MLD message from a local member: it feeds the group table
    /// and goes no further.
    pub(super) fn on_membership(&mut self, now: Instant, src_mac: Mac, msg: Result<Membership, SnoopError>) {
        let msg = match msg {
            Ok(m) => m,
            Err(_) => return self.drops.count(DropReason::BadMembership),
        };
        if let Membership::Query { .. } = msg {
            let t = &self.cfg.timers;
            self.querier.other_until = Some(now + t.query_interval * t.robustness + t.query_response_interval() / 2);
            return;
        }
        let ttl = self.cfg.timers.membership_interval();
        if self.local_groups.apply(src_mac, &msg, now, ttl) {
            // Push the change at the next tick rather than waiting for a refresh.
            self.next_tick = self.next_tick.min(now);
        }
    }

    /// Rebuilds the index of other hosts' group filters if gossip changed it.
    fn refresh_remote_groups(&mut self) {
        if self.remote_groups_dirty {
            self.remote_groups_dirty = false;
            self.remote_groups = RemoteIndex::build(self.records().map(|r| (r.key, r.groups.as_slice())));
        }
    }

    fn counters(&mut self, group: IpAddr) -> Option<&mut Counters> {
        if !self.group_counters.contains_key(&group) && self.group_counters.len() >= MAX_COUNTED_GROUPS {
            return None;
        }
        Some(self.group_counters.entry(group).or_default())
    }

    /// Sends a local group frame to the peers that want it: every reachable
    /// peer for link-local groups, else those whose filter admits
    /// (`group`, `source`).
    pub(super) fn replicate(
        &mut self,
        now: Instant,
        group: IpAddr,
        source: IpAddr,
        frame: &[u8],
        offload: Option<&[u8; VNET_HDR_LEN]>,
        io: &mut impl Io,
    ) {
        self.refresh_remote_groups();
        if !self.may_publish_own(group) {
            // This host's certificate does not allow it: its peers would
            // refuse the copies anyway.
            if let Some(c) = self.counters(group) {
                c.local_frames += 1;
                c.refused_frames += 1;
            }
            return self.drops.count(DropReason::NotPermitted);
        }
        let mut targets = std::mem::take(&mut self.targets);
        targets.clear();
        if snoop::is_link_local_group(&group) {
            targets.extend(self.hops.keys().copied());
        } else {
            targets.extend(self.remote_groups.wanting(&group, &source));
            if self.trust.is_some() {
                let before = targets.len();
                targets.retain(|k| self.may_subscribe(k, group));
                let refused = (before - targets.len()) as u64;
                if refused > 0 {
                    if let Some(c) = self.counters(group) {
                        c.refused_copies += refused;
                    }
                }
            }
        }
        let len = frame.len() as u64;
        if let Some(c) = self.counters(group) {
            c.local_frames += 1;
            c.local_bytes += len;
            if targets.is_empty() {
                c.dropped_frames += 1;
            }
        }
        if targets.is_empty() {
            self.drops.count(DropReason::NoListeners);
        }
        for k in &targets {
            if self.send_frame(now, *k, frame, offload, io) {
                if let Some(c) = self.group_counters.get_mut(&group) {
                    let e = c.sent.entry(*k).or_default();
                    e.0 += 1;
                    e.1 += len;
                }
            }
        }
        self.targets = targets;
    }

    /// Counts a group frame that arrived from the host `src`; false if it
    /// must not be delivered (IGMP/MLD stay on their host; a group `src`'s
    /// certificate does not let it publish to).
    pub(super) fn account_delivery(&mut self, src: &PublicKey, frame: &[u8]) -> bool {
        match snoop::classify(frame) {
            FrameClass::Control(_) => {
                self.drops.count(DropReason::BadMembership);
                false
            }
            FrameClass::Multicast { group, .. } if !self.may_publish(src, group) => {
                if let Some(c) = self.counters(group) {
                    c.refused_frames += 1;
                }
                self.drops.count(DropReason::NotPermitted);
                false
            }
            FrameClass::Multicast { group, .. } => {
                if let Some(c) = self.counters(group) {
                    c.delivered_frames += 1;
                    c.delivered_bytes += frame.len() as u64;
                }
                true
            }
            FrameClass::Other => true,
        }
    }

    /// Rows for `weavers groups`: every group with a local member, a remote
    /// subscriber or traffic, sorted.
    pub fn group_infos(&mut self, now: Instant) -> Vec<GroupInfo> {
        self.refresh_remote_groups();
        let mut groups: Vec<IpAddr> = self
            .local_groups
            .groups()
            .chain(self.remote_groups.groups())
            .chain(self.group_counters.keys())
            .copied()
            .collect();
        groups.sort();
        groups.dedup();
        let filters: Vec<GroupFilter> = self.local_groups.filters();
        let name_of = |k: &PublicKey| self.peers.get(k).map(|p| p.name.clone()).unwrap_or_default();
        groups
            .into_iter()
            .map(|g| {
                let c = self.group_counters.get(&g);
                let mut sent_per_peer: Vec<PeerSent> = c
                    .into_iter()
                    .flat_map(|c| c.sent.iter())
                    .map(|(k, (f, b))| PeerSent { name: name_of(k), public_key: k.to_base64(), frames: *f, bytes: *b })
                    .collect();
                sent_per_peer.sort_by(|a, b| a.name.cmp(&b.name));
                GroupInfo {
                    group: g.to_string(),
                    link_local: snoop::is_link_local_group(&g),
                    filter: filters.iter().find(|f| f.group == g).map(|f| filter_info(f.mode, &f.sources)),
                    local_members: self
                        .local_groups
                        .members(&g, now)
                        .into_iter()
                        .map(|m| LocalMemberInfo {
                            address: m.reporter.1.to_string(),
                            mac: m.reporter.0.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"),
                            filter: filter_info(m.mode, &m.sources),
                            expires_in_s: m.expires_in.as_secs(),
                        })
                        .collect(),
                    subscribed_peers: self
                        .remote_groups
                        .subscribers(&g)
                        .iter()
                        .map(|(k, f)| SubscribedPeer {
                            name: name_of(k),
                            public_key: k.to_base64(),
                            filter: filter_info(f.mode, &f.sources),
                        })
                        .collect(),
                    counters: GroupCounters {
                        local_frames: c.map_or(0, |c| c.local_frames),
                        local_bytes: c.map_or(0, |c| c.local_bytes),
                        sent_frames: sent_per_peer.iter().map(|p| p.frames).sum(),
                        sent_bytes: sent_per_peer.iter().map(|p| p.bytes).sum(),
                        delivered_frames: c.map_or(0, |c| c.delivered_frames),
                        delivered_bytes: c.map_or(0, |c| c.delivered_bytes),
                        dropped_frames: c.map_or(0, |c| c.dropped_frames),
                        refused_frames: c.map_or(0, |c| c.refused_frames),
                        refused_copies: c.map_or(0, |c| c.refused_copies),
                        sent_per_peer,
                    },
                }
            })
            .collect()
    }

    /// General queries this host's querier has sent.
    pub fn queries_sent(&self) -> u64 {
        self.querier.sent
    }
}
