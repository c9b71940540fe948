//! Prometheus metrics at `GET /metrics` on `--metrics-addr` (TCP, off by
//! default).
//!
//! Each scrape asks the data-plane task for a [`Status`] snapshot and renders
//! it with `prometheus-client`: a fresh [`Registry`] per scrape holding one
//! collector over the snapshot, so there is no second copy of the counters to
//! keep in step. The output is the OpenMetrics text format (what
//! `prometheus-client` writes; Prometheus reads it by its content type):
//!
//! ```text
//! weavers_peers{state="connected"} 2            # gauge, all four states
//! weavers_pending_peers 1                       # gauge
//! weavers_peer_frames_total{peer="b",public_key="..",direction="tx"} 10
//! weavers_peer_bytes_total{peer="b",public_key="..",direction="rx"} 980
//! weavers_peer_rtt_seconds{peer="b",public_key=".."} 0.00042
//! weavers_drops_total{reason="replay"} 3
//! weavers_drops_total{reason="mac_evicted"} 0   # every DropReason, at 0 too; the tables fed
//!                                               # from outside count here when at their limit:
//!                                               # mac_evicted, group_limit, gossip_table_full,
//!                                               # ipam_limit, peer_evicted (and bad_offload)
//! weavers_handshakes_total{result="initiated|completed|failed|rate_limited|mac1_refused|cookies_sent|cookies_refused|certs_refused"} 4
//! ```
//!
//! Label values come from the network (peer names are gossiped), so they are
//! escaped here: `prometheus-client` 0.23 writes label values verbatim.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{extract::State, Router};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelValue, EncodeMetric, LabelValueEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use weavers_api::{GroupInfo, PeerState, Status};

use crate::control::Command;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// How long a scrape waits for the data-plane task.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(5);

/// Serve `/metrics` over HTTP on `addr` until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    tx: mpsc::Sender<Command>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding metrics address {addr}"))?;
    serve_on(listener, tx, shutdown).await
}

/// As [`serve`], on a listener already bound (tests bind port 0).
pub async fn serve_on(
    listener: TcpListener,
    tx: mpsc::Sender<Command>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics at http://{addr}/metrics");
    }
    crate::api::run_until(listener, router(tx), shutdown).await.context("metrics server")
}

pub(crate) fn router(tx: mpsc::Sender<Command>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found; metrics are at /metrics\n") })
        .with_state(tx)
}

async fn scrape(State(tx): State<mpsc::Sender<Command>>) -> Response {
    let snapshot = async {
        let (reply_tx, reply_rx) = oneshot::channel();
        tx.send(Command::Status(reply_tx)).await.ok()?;
        let status = reply_rx.await.ok()?;
        let (reply_tx, reply_rx) = oneshot::channel();
        tx.send(Command::Groups(reply_tx)).await.ok()?;
        Some((status, reply_rx.await.ok()?))
    };
    match tokio::time::timeout(SNAPSHOT_TIMEOUT, snapshot).await {
        Ok(Some((status, groups))) => {
            ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&status, &groups)).into_response()
        }
        _ => (StatusCode::SERVICE_UNAVAILABLE, "the daemon's data plane did not answer\n").into_response(),
    }
}

/// Render a snapshot as OpenMetrics text (ends with `# EOF`).
pub fn render(status: &Status, groups: &[GroupInfo]) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(status.clone(), groups.to_vec())));
    let mut out = String::new();
    // Writing to a String cannot fail, and our collector returns only the
    // writer's errors.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!("encoding metrics: {e}");
    }
    out
}

/// One scrape's worth of state.
#[derive(Debug)]
struct Snapshot(Status, Vec<GroupInfo>);

const STATES: [PeerState; 4] =
    [PeerState::Connected, PeerState::Relayed, PeerState::Connecting, PeerState::Unreachable];

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let groups = &self.1;

        let mut m = enc.encode_descriptor("weavers_peers", "Known peers by state.", None, MetricType::Gauge)?;
        for state in STATES {
            let n = s.peers.iter().filter(|p| p.state == state).count();
            let labels = [("state", Esc(state.as_str()))];
            ConstGauge::new(n as i64).encode(m.encode_family(&labels)?)?;
        }

        let m = enc.encode_descriptor(
            "weavers_pending_peers",
            "Configured peer addresses not yet matched to a peer.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(s.pending.len() as i64).encode(m)?;

        let mut m = enc.encode_descriptor(
            "weavers_peer_frames",
            "Overlay frames sent to (tx) and received from (rx) each peer.",
            None,
            MetricType::Counter,
        )?;
        for p in &s.peers {
            for (dir, v) in [("tx", p.traffic.tx_frames), ("rx", p.traffic.rx_frames)] {
                let labels = [("peer", Esc(&p.name)), ("public_key", Esc(&p.public_key)), ("direction", Esc(dir))];
                ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
            }
        }

        let mut m = enc.encode_descriptor(
            "weavers_peer_bytes",
            "Overlay frame bytes sent to (tx) and received from (rx) each peer.",
            None,
            MetricType::Counter,
        )?;
        for p in &s.peers {
            for (dir, v) in [("tx", p.traffic.tx_bytes), ("rx", p.traffic.rx_bytes)] {
                let labels = [("peer", Esc(&p.name)), ("public_key", Esc(&p.public_key)), ("direction", Esc(dir))];
                ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
            }
        }

        let mut m = enc.encode_descriptor(
            "weavers_peer_rtt_seconds",
            "Round-trip time of the last keepalive to each peer with a direct session.",
            None,
            MetricType::Gauge,
        )?;
        for p in &s.peers {
            if let Some(rtt_us) = p.rtt_us {
                let labels = [("peer", Esc(&p.name)), ("public_key", Esc(&p.public_key))];
                ConstGauge::new(rtt_us as f64 / 1e6).encode(m.encode_family(&labels)?)?;
            }
        }

        let mut m = enc.encode_descriptor("weavers_drops", "Packets dropped, by reason.", None, MetricType::Counter)?;
        for d in &s.drops {
            let labels = [("reason", Esc(&d.reason))];
            ConstCounter::new(d.count).encode(m.encode_family(&labels)?)?;
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
            let labels = [("result", Esc(result))];
            ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
        }

        let m = enc.encode_descriptor(
            "weavers_tap_tx_dropped",
            "Frames the kernel dropped at the TAP queue before the daemon read them (overload).",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(s.tap_tx_dropped).encode(m)?;

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
                let labels = [("group", Esc(&g.group)), ("peer", Esc(&p.name)), ("public_key", Esc(&p.public_key))];
                ConstCounter::new(p.frames).encode(m.encode_family(&labels)?)?;
            }
        }

        let m = enc.encode_descriptor(
            "weavers_group_members",
            "Local members (reporters) per group.",
            None,
            MetricType::Gauge,
        )?;
        let mut m = m;
        for g in groups {
            let labels = [("group", Esc(&g.group))];
            ConstGauge::new(g.local_members.len() as i64).encode(m.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// A label value escaped as the text formats require (`\\`, `\"`, `\n`).
#[derive(Debug)]
struct Esc<'a>(&'a str);

impl EncodeLabelValue for Esc<'_> {
    fn encode(&self, enc: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        for c in self.0.chars() {
            match c {
                '\\' => enc.write_str("\\\\")?,
                '"' => enc.write_str("\\\"")?,
                '\n' => enc.write_str("\\n")?,
                c => enc.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weavers_api::{DropCount, HandshakeCounts, PeerInfo, TrafficCounters};

    fn peer(name: &str, key: &str, state: PeerState, rtt_us: Option<u64>) -> PeerInfo {
        PeerInfo {
            name: name.into(),
            public_key: key.into(),
            endpoint: Some("192.0.2.2:6783".into()),
            state,
            via: None,
            rtt_us,
            session_age_s: Some(5),
            overlay_addr: None,
            traffic: TrafficCounters { tx_frames: 10, tx_bytes: 1000, rx_frames: 7, rx_bytes: 980 },
        }
    }

    fn status() -> Status {
        Status {
            name: "a".into(),
            public_key: "KEYA".into(),
            version: "0.1.0".into(),
            listen: "0.0.0.0:6783".into(),
            bridge: "weavers".into(),
            overlay_mtu: 1376,
            overlay_addr: None,
            peers: vec![
                peer("b", "KEYB", PeerState::Connected, Some(420)),
                peer("c\"x\\y\nz", "KEYC", PeerState::Unreachable, None),
            ],
            pending: vec![],
            drops: vec![DropCount { reason: "replay".into(), count: 3 }],
            handshakes: HandshakeCounts {
                initiated: 4,
                completed: 3,
                failed: 1,
                rate_limited: 0,
                mac1_refused: 7,
                cookies_sent: 2,
                cookies_refused: 1,
                certs_refused: 5,
            },
            tap_tx_dropped: 0,
        }
    }

    #[test]
    fn renders_every_family() {
        let text = render(&status(), &[]);
        let lines: Vec<&str> = text.lines().collect();
        for want in [
            "# TYPE weavers_peers gauge",
            "weavers_peers{state=\"connected\"} 1",
            "weavers_peers{state=\"relayed\"} 0",
            "weavers_peers{state=\"connecting\"} 0",
            "weavers_peers{state=\"unreachable\"} 1",
            "weavers_pending_peers 0",
            "# TYPE weavers_peer_frames counter",
            "weavers_peer_frames_total{peer=\"b\",public_key=\"KEYB\",direction=\"tx\"} 10",
            "weavers_peer_frames_total{peer=\"b\",public_key=\"KEYB\",direction=\"rx\"} 7",
            "weavers_peer_bytes_total{peer=\"b\",public_key=\"KEYB\",direction=\"tx\"} 1000",
            "weavers_peer_bytes_total{peer=\"b\",public_key=\"KEYB\",direction=\"rx\"} 980",
            "weavers_peer_rtt_seconds{peer=\"b\",public_key=\"KEYB\"} 0.00042",
            "weavers_drops_total{reason=\"replay\"} 3",
            "weavers_handshakes_total{result=\"initiated\"} 4",
            "weavers_handshakes_total{result=\"completed\"} 3",
            "weavers_handshakes_total{result=\"failed\"} 1",
            "weavers_handshakes_total{result=\"rate_limited\"} 0",
            "weavers_handshakes_total{result=\"mac1_refused\"} 7",
            "weavers_handshakes_total{result=\"cookies_sent\"} 2",
            "weavers_handshakes_total{result=\"cookies_refused\"} 1",
            "weavers_handshakes_total{result=\"certs_refused\"} 5",
            "# EOF",
        ] {
            assert!(lines.contains(&want), "missing {want:?} in:\n{text}");
        }
        // No RTT for a peer without one.
        assert!(!text.contains("weavers_peer_rtt_seconds{peer=\"c"));
    }

    #[test]
    fn hostile_label_values_are_escaped() {
        let text = render(&status(), &[]);
        assert!(
            text.contains(
                "weavers_peer_frames_total{peer=\"c\\\"x\\\\y\\nz\",public_key=\"KEYC\",direction=\"tx\"} 10"
            ),
            "{text}"
        );
        // Every sample stays on one line: name, labels, value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("weavers_"), "stray line {line:?}");
            assert_eq!(line.rsplit(' ').next().map(|v| v.parse::<f64>().is_ok()), Some(true));
        }
    }

    #[test]
    fn empty_status_still_has_state_gauges() {
        let mut s = status();
        s.peers.clear();
        s.drops.clear();
        let text = render(&s, &[]);
        for state in ["connected", "relayed", "connecting", "unreachable"] {
            assert!(text.contains(&format!("weavers_peers{{state=\"{state}\"}} 0")));
        }
        assert!(!text.contains("weavers_peer_frames_total{"));
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let (tx, mut rx) = mpsc::channel::<Command>(4);
        tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                match cmd {
                    Command::Status(r) => {
                        let _ = r.send(status());
                    }
                    Command::Groups(r) => {
                        let mut g = GroupInfo {
                            group: "239.1.1.1".into(),
                            link_local: false,
                            filter: None,
                            local_members: vec![],
                            subscribed_peers: vec![],
                            counters: Default::default(),
                        };
                        g.counters.local_frames = 7;
                        let _ = r.send(vec![g]);
                    }
                    _ => {}
                }
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_on(listener, tx, async {
            let _ = stop_rx.await;
        }));

        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let out = get("/metrics").await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.to_ascii_lowercase().contains("content-type: application/openmetrics-text"));
        assert!(out.contains("\r\n\r\n# HELP weavers_peers "), "{out}");
        assert!(out.ends_with("# EOF\n"));
        assert!(out.contains("weavers_group_frames_total{group=\"239.1.1.1\",kind=\"local\"} 7"), "{out}");
        assert!(get("/").await.starts_with("HTTP/1.1 404"));

        stop_tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
