//! Who may speak on AEX's streams: keys, tags and freshness.
//!
//! Every datagram the exchange's processes send each other on the overlay
//! (orders, reports, market data, heartbeats, re-requests) ends with a tag
//! under a key of its own stream ([`seal`]), bound to the sender's address
//! and time; replication and fencing run over an authenticated channel
//! ([`channel`]). The keys come from the deployment ([`keys`]: `aex keys`
//! writes one file per role). What a receiver refuses it counts:
//!
//! - forged: no key for the stream, or a tag that does not verify (made
//!   without the key, altered, or sent from another address than the one
//!   it was sealed for);
//! - stale: sealed more than [`seal::WINDOW_NS`] from the receiver's clock,
//!   or a re-request not later than the last from the same requester
//!   ([`fresh`]).
//!
//! The tag is HMAC-SHA256 truncated to 128 bits: one tag per datagram, the
//! key's states prepared once per stream, no allocation; keys are derived
//! with keyed BLAKE2s. Within the window an authentic
//! packet played again changes nothing (messages are numbered and fenced by
//! epoch), and market data's key is shared by every consumer (a consumer
//! that holds it could forge market data for the others: the consumers are
//! trusted with it, as password mode trusts every holder of the network
//! password).

pub mod beat;
pub mod channel;
pub mod fresh;
pub mod keys;
pub mod seal;
mod tag;

pub use fresh::{open_rerequest, ReplayGuard};
pub use keys::{KeyError, Keyring, RootKey, StreamKey, StreamKind};
pub use seal::{peek, seal_rerequest, unix_ns, AuthError, Kind, Opened, RequestClock, TRAILER_LEN};

/// Bytes of every root key.
pub const KEY_LEN: usize = 32;
