//! The codecs. Every integer is big-endian (network order); every decoder
//! checks lengths and values and returns a [`DecodeError`] for malformed
//! input, never panics, and never reads past what it was given.
//!
//! - [`oe`]: order entry between a customer and its gateway over TCP, in the
//!   spirit of SoupBinTCP/OUCH (u16 length-prefixed frames);
//! - [`mold`]: MoldUDP64-style packets for multicast, and the re-request;
//! - [`itch`]: ITCH-style market-data messages (with the fencing epoch);
//! - [`input`]: engine inputs as gateways send them and the journal keeps
//!   them (sequenced records);
//! - [`repl`]: replication of the sequenced input to the DR journal (TCP);
//! - [`report`]: engine responses for the gateways, and a whole
//!   [`crate::Outputs`] as bytes.

#[cfg(test)]
mod arb;
mod buf;
pub mod input;
pub mod itch;
pub mod mold;
pub mod oe;
pub mod repl;
pub mod report;

pub use buf::DecodeError;
