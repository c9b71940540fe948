//! The processes of `aex`, per `ARCHITECTURE.md`, and what they share.
//!
//! Processes, one module each, with an `Args` (its flags) and a `run` that
//! the binary calls: [`engine`] (`aex engine`), [`gateway`], [`customers`],
//! [`record`], [`view`], [`audit`], and [`dr_journal`] (`aex journal`, the
//! DR site's journal).
//!
//! Shared: [`mdfeed`] (the market-data consumer of record and view),
//! [`overlay`] (the flags and look-ups every process has for the overlay),
//! [`replicate`] (the primary engine's side of replication).

pub mod acks_file;
pub mod audit;
pub mod customers;
pub mod dr_journal;
pub mod dr_server;
pub mod engine;
pub mod gateway;
pub mod mdfeed;
pub mod overlay;
pub mod record;
pub mod replicate;
pub mod signals;
pub mod timing;
pub mod view;
