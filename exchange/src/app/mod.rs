//! The processes of `aex`, one module each, per `ARCHITECTURE.md`. Each has
//! an `Args` (its flags) and a `run` that the binary calls.

pub mod audit;
pub mod customers;
pub mod engine;
pub mod gateway;
pub mod journal;
pub mod mdfeed;
pub mod overlay;
pub mod record;
pub mod replicate;
pub mod view;
