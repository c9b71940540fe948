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

/// The `/events` clients: a bounded queue each.
#[derive(Debug, Default)]
pub struct Clients {
    list: Mutex<Vec<mpsc::Sender<Arc<str>>>>,
    dropped: std::sync::atomic::AtomicU64,
}

impl Clients {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::Sender<Arc<str>>>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new client whose queue starts with `first`; None when there are
    /// [`MAX_CLIENTS`] already.
    pub fn subscribe(&self, first: Arc<str>) -> Option<mpsc::Receiver<Arc<str>>> {
        let mut list = self.list();
        list.retain(|c| !c.is_closed());
        if list.len() >= MAX_CLIENTS {
            return None;
        }
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let _ = tx.try_send(first);
        list.push(tx);
        Some(rx)
    }

    /// Queues `msg` for every client; a client whose queue is full (too
    /// slow) or gone is dropped (its stream ends after what is queued).
    pub fn push(&self, msg: Arc<str>) {
        let mut list = self.list();
        let before = list.len();
        list.retain(|c| match c.try_send(msg.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => false,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        let slow = before - list.len();
        self.dropped.fetch_add(slow as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Clients now, and clients dropped (too slow or gone) so far.
    pub fn counts(&self) -> (usize, u64) {
        (self.list().len(), self.dropped.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// What the tasks share.
pub struct Shared {
    /// The books.
    pub state: Mutex<ViewState>,
    clients: Clients,
    totals: Mutex<serde_json::Value>,
}

impl Shared {
    /// Around the state.
    pub fn new(state: ViewState) -> Shared {
        Shared { state: Mutex::new(state), clients: Clients::default(), totals: Mutex::new(json!({})) }
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
    // The snapshot goes first, before any update can.
    let Some(rx) = shared.clients.subscribe(Arc::from(shared.snapshot("snapshot").to_string())) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many event clients\n").into_response();
    };
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
        let (clients, clients_dropped) = shared.clients.counts();
        let totals = json!({
            "clients": clients,
            "clients_dropped": clients_dropped,
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
        shared.clients.push(Arc::from(json!({"type": "update", "symbols": changed, "totals": totals}).to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_client_is_dropped_not_buffered_for() {
        let c = Clients::default();
        let mut slow = c.subscribe(Arc::from("snapshot")).unwrap();
        let mut fast = c.subscribe(Arc::from("snapshot")).unwrap();
        for i in 0..CLIENT_QUEUE * 2 {
            c.push(Arc::from(i.to_string()));
            while fast.try_recv().is_ok() {}
        }
        assert_eq!(c.counts(), (1, 1));
        // The slow one gets what was queued, then its stream ends.
        let mut got = 0;
        while slow.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, CLIENT_QUEUE);
        assert!(matches!(slow.try_recv(), Err(mpsc::error::TryRecvError::Disconnected)));
        drop(fast);
        c.push(Arc::from("x"));
        assert_eq!(c.counts(), (0, 2));
        let held: Vec<_> = (0..MAX_CLIENTS).map(|_| c.subscribe(Arc::from("s")).unwrap()).collect();
        assert!(c.subscribe(Arc::from("s")).is_none(), "at most MAX_CLIENTS");
        drop(held);
        assert!(c.subscribe(Arc::from("s")).is_some(), "gone clients make room");
    }
}
