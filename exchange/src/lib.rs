//! AEX, the reference exchange that rides weavers: its deterministic core.
//!
//! Everything here but [`net`] (sockets) and [`journal`] (its file) is pure
//! logic with no I/O, and nothing has a clock of its own (time comes in
//! with each input), so a disaster-recovery standby and an audit can replay
//! it and get the same bytes:
//!
//! - [`types`]: sides, order types, time in force, tickers, the integer types;
//! - [`events`]: engine inputs and outputs;
//! - [`book`]: one symbol's limit order book (price-time priority);
//! - [`matching`]: the matching engine, a set of books behind one input
//!   sequence, with state digests;
//! - [`dedup`]: the idempotency window for client order ids;
//! - [`mdbook`]: a book rebuilt from market data, as consumers keep it;
//! - [`symbols`]: the symbols file (groups and DNS names per symbol);
//! - [`wire`]: the codecs (order entry, MoldUDP64, ITCH, engine input and
//!   responses);
//! - [`journal`]: the append-only file of sequenced inputs;
//! - [`stream`]: reliable MoldUDP64 streams (numbering, history, gaps) as
//!   state machines;
//! - [`auth`]: the keys, tags and freshness checks that authenticate every
//!   stream and the replication channel.
//!
//! The processes (with I/O) are in [`app`], sharing [`net`]; how they fit
//! together is in `ARCHITECTURE.md`.

#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod book;
pub mod dedup;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod journal;
pub mod matching;
pub mod mdbook;
pub mod net;
pub mod stream;
pub mod symbols;
pub mod types;
pub mod wire;

pub use events::*;
pub use matching::{ApplyError, Engine, EngineConfig};
pub use types::*;
