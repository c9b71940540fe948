//! The processes of `aex`, one module each, per `ARCHITECTURE.md`. Each has
//! an `Args` (its flags) and a `run` that the binary calls.

pub mod journal;
pub mod replicate;
