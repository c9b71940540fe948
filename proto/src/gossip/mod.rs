//! Gossip: every host's signed record of itself, spread to every host.
//!
//! - [`record`]: what a host says about itself ([`PeerRecord`]) and its
//!   signed form ([`SignedRecord`]): signed by the host's identity key,
//!   checked on every hop, versions bounded.
//! - [`table`]: the records of every host, merged by version, with
//!   tombstones for forgotten hosts and per-bucket digests of
//!   `(key, version)` kept up to date incrementally.
//! - [`sync`]: the protocol between two peers: changes pushed by their
//!   origin, anti-entropy by digests (a summary hash, then bucket hashes,
//!   then the entries of the buckets that differ, then only the records one
//!   side lacks), sans I/O.

pub mod record;
pub mod sync;
pub mod table;

pub use record::{PeerRecord, SignedRecord, MAX_NAME_LEN};
