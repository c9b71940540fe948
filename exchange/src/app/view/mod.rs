//! `aex view`: subscribes to market data like `aex record` (from message 1,
//! re-requesting history so the books are whole as long as the engine still
//! keeps it: 100,000 messages per symbol; beyond that the gap is given up
//! after 2 s and the book is partial, its misfits counted), keeps the books,
//! and serves:
//!
//! - `GET /`: one self-contained HTML page (inline CSS and JS) that shows
//!   every symbol's best levels and last trades, live;
//! - `GET /events`: server-sent events, JSON: first a `snapshot` of every
//!   symbol, then every 200 ms an `update` with the symbols whose book
//!   changed, and `totals` (messages and trades, in all and per second);
//! - `GET /api/books`: the snapshot as JSON.
//!
//! Each client of `/events` has a bounded queue; a client that falls behind
//! is dropped rather than buffered for.

mod server;
pub mod state;

use super::mdfeed::{Feed, FeedArgs};
use crate::stream::Start;
use crate::symbols::SymbolTable;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;

/// Flags of `aex view`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The HTTP address to serve on (ADDR:PORT)
    #[arg(long)]
    pub listen: SocketAddr,
    /// Price levels shown per side
    #[arg(long, default_value_t = 5)]
    pub depth: usize,
    /// Where the market data comes from.
    #[command(flatten)]
    pub feed: FeedArgs,
}

/// Runs the view until SIGINT or SIGTERM.
pub fn run(args: Args, table: &SymbolTable) -> anyhow::Result<()> {
    // One thread: the feed and a few page viewers do not need two, and
    // with two the feed task woke tasks on the other worker per packet.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let feed = Feed::open(&args.feed, table, Start::AtOne)?;
        let state = state::ViewState::new(table, feed.symbols().collect::<Vec<_>>(), args.depth.clamp(1, 50));
        let shared = Arc::new(server::Shared::new(state));
        eprintln!("aex view: {} symbols, serving http://{}/", feed.symbols().count(), args.listen);
        let feeder = tokio::spawn(feed_books(feed, shared.clone()));
        tokio::spawn(server::broadcast(shared.clone()));
        let app = server::router(shared);
        tokio::select! {
            r = axum::serve(listener, app) => r.context("serving HTTP")?,
            r = feeder => r.context("the feed task")??,
            r = super::mdfeed::shutdown_signal() => r?,
        }
        Ok(())
    })
}

/// Applies what the feed delivers to the books, until the feed fails.
async fn feed_books(mut feed: Feed, shared: Arc<server::Shared>) -> anyhow::Result<()> {
    let mut delivered = Vec::new();
    loop {
        feed.step(&mut delivered).await?;
        if delivered.is_empty() {
            continue;
        }
        let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        for d in delivered.drain(..) {
            st.apply(d.symbol, &d.message);
        }
    }
}
