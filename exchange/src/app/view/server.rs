//! The view's HTTP side: routes, the per-client event queues and the
//! broadcaster that fills them.

use super::state::ViewState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often changes are pushed.
const PUSH_EVERY: Duration = Duration::from_millis(200);
/// Events queued per client before it counts as too slow and is dropped.
const CLIENT_QUEUE: usize = 64;
/// The most `/events` clients at once.
const MAX_CLIENTS: usize = 256;

const PAGE: &str = include_str!("page.html");

/// What the tasks share.
pub struct Shared {
    /// The books.
    pub state: Mutex<ViewState>,
    clients: Mutex<Vec<mpsc::Sender<Arc<str>>>>,
    totals: Mutex<serde_json::Value>,
}

impl Shared {
    /// Around the state.
    pub fn new(state: ViewState) -> Shared {
        Shared { state: Mutex::new(state), clients: Mutex::new(Vec::new()), totals: Mutex::new(json!({})) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ViewState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot(&self, kind: &str) -> serde_json::Value {
        let symbols = self.state().snapshot();
        let totals = self.totals.lock().unwrap_or_else(|p| p.into_inner()).clone();
        json!({"type": kind, "symbols": symbols, "totals": totals})
    }
}

/// The routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().route("/", get(page)).route("/events", get(events)).route("/api/books", get(books)).with_state(shared)
}

async fn page() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE))
}

async fn books(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    axum::Json(shared.snapshot("snapshot"))
}

async fn events(State(shared): State<Arc<Shared>>) -> Response {
    let (tx, rx) = mpsc::channel::<Arc<str>>(CLIENT_QUEUE);
    {
        let mut clients = shared.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.retain(|c| !c.is_closed());
        if clients.len() >= MAX_CLIENTS {
            return (StatusCode::SERVICE_UNAVAILABLE, "too many event clients\n").into_response();
        }
        // The snapshot goes first, before any update can.
        let _ = tx.try_send(Arc::from(shared.snapshot("snapshot").to_string()));
        clients.push(tx);
    }
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let data = rx.recv().await?;
        Some((Ok::<_, Infallible>(Event::default().data(&*data)), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// Every [`PUSH_EVERY`]: the changed symbols (and the totals at least once
/// a second) to every client; a client whose queue is full is dropped.
pub async fn broadcast(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(PUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut last_msgs, mut last_trades, mut last_at) = (0u64, 0u64, Instant::now());
    let mut last_sent = Instant::now();
    loop {
        tick.tick().await;
        let (changed, msgs, trades) = {
            let mut st = shared.state();
            (st.take_changed(), st.messages, st.trades)
        };
        let secs = last_at.elapsed().as_secs_f64().max(1e-3);
        let totals = json!({
            "messages": msgs,
            "trades": trades,
            "messages_per_sec": ((msgs - last_msgs) as f64 / secs).round(),
            "trades_per_sec": ((trades - last_trades) as f64 / secs).round(),
        });
        (last_msgs, last_trades, last_at) = (msgs, trades, Instant::now());
        *shared.totals.lock().unwrap_or_else(|p| p.into_inner()) = totals.clone();
        if changed.is_empty() && last_sent.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last_sent = Instant::now();
        let msg: Arc<str> = Arc::from(json!({"type": "update", "symbols": changed, "totals": totals}).to_string());
        let mut clients = shared.clients.lock().unwrap_or_else(|p| p.into_inner());
        // Full (too slow) or closed: dropped; its stream then ends.
        clients.retain(|c| c.try_send(msg.clone()).is_ok());
    }
}
