//! The metric families of one scrape:
//!
//! ```text
//! weavers_build_info{version}                               gauge, 1
//! weavers_peers{state}                                      gauge, all four states
//! weavers_pending_peers                                     gauge
//! weavers_peer_info{peer,key,public_key}                    gauge, 1 per peer
//! weavers_peer_frames_total{peer,key,direction=tx|rx}       counter
//! weavers_peer_bytes_total{peer,key,direction}              counter
//! weavers_peer_rtt_seconds{peer,key}                        gauge
//! weavers_peer_session_age_seconds{peer,key}                gauge (since the last handshake)
//! weavers_drops_total{reason}                               counter, every DropReason (0 too);
//!                                                           the tables fed from outside count
//!                                                           here at their limits: mac_evicted,
//!                                                           group_limit, gossip_table_full,
//!                                                           ipam_limit, peer_evicted
//! weavers_handshakes_total{result}                          counter
//! weavers_tap_tx_dropped_total                              counter
//! weavers_peers_down_total                                  counter
//! weavers_stalls_total                                      counter (own periodic work 200 ms late)
//! weavers_local_health                                      gauge, 0 (sound) to 8
//! weavers_superframes_segmented_total                       counter (TCP super-frames cut for lossy peers)
//! weavers_segments_sent_total                               counter
//! weavers_tcp_retransmissions_seen_total                    counter
//! weavers_parity_sent_total                                 counter (parity to lossy peers)
//! weavers_parity_received_total                             counter
//! weavers_datagrams_repaired_total                          counter (rebuilt from parity)
//! weavers_parity_repairs_failed_total                       counter
//! weavers_peers_lossy                                       gauge
//! weavers_tcp_flows_evicted_total                           counter
//! weavers_group_frames_total{group,kind}                    counter
//! weavers_group_bytes_total{group,kind}                     counter
//! weavers_group_peer_frames_total{group,peer,key}           counter
//! weavers_group_members{group}                              gauge
//! weavers_dns_up                                            gauge, 1 while serving
//! weavers_dns_entries                                       gauge
//! weavers_dns_queries_total{transport=udp|tcp}              counter
//! weavers_dns_responses_total{result}                       counter
//! weavers_dns_dropped_total, _forwarded_total, _forward_failed_total, _tcp_rejected_total
//! weavers_ipam_seeded                                       gauge, 0|1
//! weavers_ipam_allocations                                  gauge (this host's)
//! weavers_ipam_free_addresses                               gauge (in this host's space)
//! weavers_ipam_problems                                     gauge
//! ```

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use weavers_api::{PeerInfo, PeerState};

use super::{key_label, Esc, Scrape};

/// The collector over one scrape.
#[derive(Debug)]
pub(super) struct Families(pub Scrape);

const STATES: [PeerState; 4] =
    [PeerState::Connected, PeerState::Relayed, PeerState::Connecting, PeerState::Unreachable];

/// A family with no labels and one value.
fn single(enc: &mut DescriptorEncoder, name: &str, help: &str, ty: MetricType, v: u64) -> std::fmt::Result {
    let m = enc.encode_descriptor(name, help, None, ty)?;
    match ty {
        MetricType::Counter => ConstCounter::new(v).encode(m),
        _ => ConstGauge::new(v as i64).encode(m),
    }
}

impl Collector for Families {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.build_and_peers(&mut enc)?;
        self.drops_and_handshakes(&mut enc)?;
        self.groups(&mut enc)?;
        self.dns(&mut enc)?;
        self.ipam(&mut enc)
    }
}

impl Families {
    fn build_and_peers(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0.status;
        let mut m =
            enc.encode_descriptor("weavers_build_info", "The daemon's version (always 1).", None, MetricType::Gauge)?;
        ConstGauge::new(1).encode(m.encode_family(&[("version", Esc(&s.version))])?)?;

        let mut m = enc.encode_descriptor("weavers_peers", "Known peers by state.", None, MetricType::Gauge)?;
        for state in STATES {
            let n = s.peers.iter().filter(|p| p.state == state).count();
            ConstGauge::new(n as i64).encode(m.encode_family(&[("state", Esc(state.as_str()))])?)?;
        }

        single(
            enc,
            "weavers_pending_peers",
            "Configured peer addresses not yet matched to a peer.",
            MetricType::Gauge,
            s.pending.len() as u64,
        )?;

        let mut m = enc.encode_descriptor(
            "weavers_peer_info",
            "Each known peer (always 1): its name and short key, the labels of the per-peer series, with its whole \
             public key.",
            None,
            MetricType::Gauge,
        )?;
        for p in &s.peers {
            let labels =
                [("peer", Esc(&p.name)), ("key", Esc(key_label(&p.public_key))), ("public_key", Esc(&p.public_key))];
            ConstGauge::new(1).encode(m.encode_family(&labels)?)?;
        }

        for (name, help, bytes) in [
            ("weavers_peer_frames", "Overlay frames sent to (tx) and received from (rx) each peer.", false),
            ("weavers_peer_bytes", "Overlay frame bytes sent to (tx) and received from (rx) each peer.", true),
        ] {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for p in &s.peers {
                let t = p.traffic;
                let (tx, rx) = if bytes { (t.tx_bytes, t.rx_bytes) } else { (t.tx_frames, t.rx_frames) };
                for (dir, v) in [("tx", tx), ("rx", rx)] {
                    let labels =
                        [("peer", Esc(&p.name)), ("key", Esc(key_label(&p.public_key))), ("direction", Esc(dir))];
                    ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
                }
            }
        }

        type Value = fn(&PeerInfo) -> Option<f64>;
        let gauges: [(&str, &str, Value); 2] = [
            (
                "weavers_peer_rtt_seconds",
                "Round-trip time of the last keepalive to each peer with a direct session.",
                |p| p.rtt_us.map(|us| us as f64 / 1e6),
            ),
            (
                "weavers_peer_session_age_seconds",
                "Seconds since the handshake of the current session with each directly connected peer.",
                |p| p.session_age_s.map(|s| s as f64),
            ),
        ];
        for (name, help, value) in gauges {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for p in &s.peers {
                if let Some(v) = value(p) {
                    let labels = [("peer", Esc(&p.name)), ("key", Esc(key_label(&p.public_key)))];
                    ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }

    fn drops_and_handshakes(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0.status;
        let mut m = enc.encode_descriptor("weavers_drops", "Packets dropped, by reason.", None, MetricType::Counter)?;
        for d in &s.drops {
            ConstCounter::new(d.count).encode(m.encode_family(&[("reason", Esc(&d.reason))])?)?;
        }

        let h = s.handshakes;
        let mut m = enc.encode_descriptor(
            "weavers_handshakes",
            "Noise handshakes: started here, completed (either role), failed, refused by the rate limiter, \
             refused for a bad mac1 (no network key: no work done), initiations answered with a cookie (under \
             load), cookie replies refused, peers refused for their certificate (network-authority mode).",
            None,
            MetricType::Counter,
        )?;
        for (result, v) in [
            ("initiated", h.initiated),
            ("completed", h.completed),
            ("failed", h.failed),
            ("rate_limited", h.rate_limited),
            ("mac1_refused", h.mac1_refused),
            ("cookies_sent", h.cookies_sent),
            ("cookies_refused", h.cookies_refused),
            ("certs_refused", h.certs_refused),
        ] {
            ConstCounter::new(v).encode(m.encode_family(&[("result", Esc(result))])?)?;
        }

        single(
            enc,
            "weavers_tap_tx_dropped",
            "Frames the kernel dropped at the TAP queue before the daemon read them (overload).",
            MetricType::Counter,
            s.tap_tx_dropped,
        )?;
        single(
            enc,
            "weavers_peers_down",
            "Times a connected peer was declared down by liveness probing (deaths, broken paths, false failures).",
            MetricType::Counter,
            s.peers_down,
        )?;
        single(
            enc,
            "weavers_stalls",
            "Times this daemon's periodic work ran 200 ms or more late (starved of CPU, or busy).",
            MetricType::Counter,
            s.stalls,
        )?;
        single(
            enc,
            "weavers_local_health",
            "How unsure this host is of its own probing: 0 when sound, up to 8; probe timeouts are that many times longer, plus one.",
            MetricType::Gauge,
            u64::from(s.local_health),
        )?;
        let g = s.segmentation;
        for (name, help, ty, v) in [
            (
                "weavers_superframes_segmented",
                "TCP super-frames cut into plain segments because their peer's path is lossy.",
                MetricType::Counter,
                g.superframes_segmented,
            ),
            ("weavers_segments_sent", "Segments cut from those super-frames.", MetricType::Counter, g.segments_sent),
            (
                "weavers_tcp_retransmissions_seen",
                "TCP data frames sent to peers that resent data already sent (each marks the peer lossy for 10 s).",
                MetricType::Counter,
                g.retransmissions_seen,
            ),
            ("weavers_peers_lossy", "Peers whose path counts as lossy now.", MetricType::Gauge, g.peers_lossy),
            (
                "weavers_parity_sent",
                "Parity datagrams sent to lossy peers (one per group of up to 8 datagrams).",
                MetricType::Counter,
                g.parity_sent,
            ),
            (
                "weavers_parity_received",
                "Parity datagrams received from peers.",
                MetricType::Counter,
                g.parity_received,
            ),
            (
                "weavers_datagrams_repaired",
                "Datagrams lost on the underlay and rebuilt from parity.",
                MetricType::Counter,
                g.datagrams_repaired,
            ),
            (
                "weavers_parity_repairs_failed",
                "Parity that found more of its group missing than it can rebuild.",
                MetricType::Counter,
                g.repairs_failed,
            ),
            (
                "weavers_tcp_flows_evicted",
                "TCP flows forgotten to make room in the table watched for retransmissions (1,024 flows).",
                MetricType::Counter,
                g.flows_evicted,
            ),
        ] {
            single(enc, name, help, ty, v)?;
        }
        Ok(())
    }

    fn groups(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let groups = &self.0.groups;
        for (name, help, bytes) in [
            ("weavers_group_frames", "Multicast frames per group: from local senders (local), copies sent to peers (sent), delivered from peers (delivered), dropped for want of listeners (dropped).", false),
            ("weavers_group_bytes", "Multicast bytes per group, as weavers_group_frames.", true),
        ] {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for g in groups {
                let c = &g.counters;
                let values = if bytes {
                    [("local", c.local_bytes), ("sent", c.sent_bytes), ("delivered", c.delivered_bytes)].to_vec()
                } else {
                    [("local", c.local_frames), ("sent", c.sent_frames), ("delivered", c.delivered_frames), ("dropped", c.dropped_frames)].to_vec()
                };
                for (kind, v) in values {
                    let labels = [("group", Esc(&g.group)), ("kind", Esc(kind))];
                    ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
                }
            }
        }

        let mut m = enc.encode_descriptor(
            "weavers_group_peer_frames",
            "Multicast frames of each group sent to each peer.",
            None,
            MetricType::Counter,
        )?;
        for g in groups {
            for p in &g.counters.sent_per_peer {
                let labels = [("group", Esc(&g.group)), ("peer", Esc(&p.name)), ("key", Esc(key_label(&p.public_key)))];
                ConstCounter::new(p.frames).encode(m.encode_family(&labels)?)?;
            }
        }

        let mut m = enc.encode_descriptor(
            "weavers_group_members",
            "Local members (reporters) per group.",
            None,
            MetricType::Gauge,
        )?;
        for g in groups {
            ConstGauge::new(g.local_members.len() as i64).encode(m.encode_family(&[("group", Esc(&g.group))])?)?;
        }
        Ok(())
    }

    fn dns(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let d = &self.0.dns;
        use MetricType::{Counter, Gauge};
        single(
            enc,
            "weavers_dns_up",
            "1 while the DNS server serves on the bridge's overlay address (after `weavers expose`), else 0.",
            Gauge,
            d.listening.is_some() as u64,
        )?;
        single(enc, "weavers_dns_entries", "Entries in the merged DNS table (every host's).", Gauge, d.entries)?;
        let mut m =
            enc.encode_descriptor("weavers_dns_queries", "DNS queries received, by transport.", None, Counter)?;
        for (transport, v) in [("udp", d.udp_queries), ("tcp", d.tcp_queries)] {
            ConstCounter::new(v).encode(m.encode_family(&[("transport", Esc(transport))])?)?;
        }
        let mut m = enc.encode_descriptor(
            "weavers_dns_responses",
            "DNS replies by result: answer (addresses or the SOA), nodata (the name exists without that type), \
             nxdomain, refused (outside weavers.local without an upstream, or not IN), formerr, notimp.",
            None,
            Counter,
        )?;
        for (result, v) in [
            ("answer", d.answers),
            ("nodata", d.nodata),
            ("nxdomain", d.nxdomain),
            ("refused", d.refused),
            ("formerr", d.formerr),
            ("notimp", d.notimp),
        ] {
            ConstCounter::new(v).encode(m.encode_family(&[("result", Esc(result))])?)?;
        }
        for (name, help, v) in [
            ("weavers_dns_dropped", "DNS messages dropped unanswered (not a query, or too short or long).", d.dropped),
            ("weavers_dns_forwarded", "Queries for names outside weavers.local passed to --dns-upstream.", d.forwarded),
            ("weavers_dns_forward_failed", "Forwarded queries the upstream did not answer in time.", d.forward_failed),
            ("weavers_dns_tcp_rejected", "DNS TCP connections closed at once: too many open.", d.tcp_rejected),
        ] {
            single(enc, name, help, Counter, v)?;
        }
        Ok(())
    }

    fn ipam(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let i = &self.0.ipam;
        use MetricType::Gauge;
        single(
            enc,
            "weavers_ipam_seeded",
            "1 once the address range is shared out among the peers.",
            Gauge,
            i.seeded as u64,
        )?;
        single(
            enc,
            "weavers_ipam_allocations",
            "Addresses this host has given out (its own and its containers').",
            Gauge,
            i.allocations.len() as u64,
        )?;
        single(
            enc,
            "weavers_ipam_free_addresses",
            "Free addresses in this host's share of the range.",
            Gauge,
            i.free as u64,
        )?;
        single(
            enc,
            "weavers_ipam_problems",
            "IPAM problems (conflicting seeds, spans in conflict): see `weavers ipam ls`.",
            Gauge,
            i.problems.len() as u64,
        )
    }
}
