//! Prometheus metrics at `GET /metrics` on `--metrics-addr` (TCP, off by
//! default).
//!
//! Each scrape asks the data-plane task for a snapshot ([`Scrape`]: status,
//! groups, DNS and IPAM) and renders it with `prometheus-client`: a fresh
//! [`Registry`] per scrape holding one collector over the snapshot, so there
//! is no second copy of the counters to keep in step. The output is the
//! OpenMetrics text format (what `prometheus-client` writes; Prometheus
//! reads it by its content type). The families are listed in [`families`];
//! `dist/grafana/weavers.json` is a dashboard over them.
//!
//! Per-peer series carry `peer` (the peer's name) and `key` (the first 12
//! characters of its public key); `weavers_peer_info` maps them to the
//! whole key:
//!
//! ```text
//! weavers_build_info{version="0.1.0"} 1
//! weavers_peer_info{peer="b",key="AbCdEfGhIjKl",public_key="AbCdEfGhIjKl...="} 1
//! weavers_peer_bytes_total{peer="b",key="AbCdEfGhIjKl",direction="rx"} 980
//! ```
//!
//! Label values come from the network (peer names are gossiped), so they are
//! escaped here: `prometheus-client` 0.23 writes label values verbatim.

mod families;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{extract::State, Router};
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use weavers_api::{DnsStats, GroupInfo, IpamStatus, Status};

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

/// One scrape's worth of state, asked of the data-plane task.
#[derive(Clone, Debug)]
pub struct Scrape {
    /// `weavers status`.
    pub status: Status,
    /// `weavers groups`.
    pub groups: Vec<GroupInfo>,
    /// `weavers dns stats`.
    pub dns: DnsStats,
    /// `weavers ipam ls`.
    pub ipam: IpamStatus,
}

async fn scrape(State(tx): State<mpsc::Sender<Command>>) -> Response {
    let snapshot = async {
        let (reply_tx, reply_rx) = oneshot::channel();
        tx.send(Command::Status(reply_tx)).await.ok()?;
        let status = reply_rx.await.ok()?;
        let (reply_tx, reply_rx) = oneshot::channel();
        tx.send(Command::Groups(reply_tx)).await.ok()?;
        let groups = reply_rx.await.ok()?;
        let (reply_tx, reply_rx) = oneshot::channel();
        tx.send(Command::DnsStats(reply_tx)).await.ok()?;
        let dns = reply_rx.await.ok()?;
        let (reply_tx, reply_rx) = oneshot::channel();
        tx.send(Command::IpamStatus(reply_tx)).await.ok()?;
        let ipam = reply_rx.await.ok()?;
        Some(Scrape { status, groups, dns, ipam })
    };
    match tokio::time::timeout(SNAPSHOT_TIMEOUT, snapshot).await {
        Ok(Some(s)) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&s)).into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "the daemon's data plane did not answer\n").into_response(),
    }
}

/// Render a snapshot as OpenMetrics text (ends with `# EOF`).
pub fn render(scrape: &Scrape) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(families::Families(scrape.clone())));
    let mut out = String::new();
    // Writing to a String cannot fail, and our collector returns only the
    // writer's errors.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!("encoding metrics: {e}");
    }
    out
}

/// The `key` label of a peer: the first [`KEY_LABEL_LEN`] characters of its
/// base64 public key (72 bits: unique among a network's hosts).
pub fn key_label(public_key: &str) -> &str {
    public_key.get(..KEY_LABEL_LEN).unwrap_or(public_key)
}

/// Length of the `key` label.
pub const KEY_LABEL_LEN: usize = 12;

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
