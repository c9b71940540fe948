//! weavers-api: what the daemon (`weaversd`), the command line (`weavers`)
//! and the CNI plugin (`weavers-cni`) share about the control API, without
//! the overlay's logic (no Noise, no packet parsing, no DNS wire format):
//!
//! - [`types`]: the JSON request and answer bodies, re-exported here
//!   (`weavers_api::Status`...);
//! - [`routes`]: the paths of the routes;
//! - [`check`]: the checks of what a request carries (owner ids, peer
//!   addresses, DNS addresses, query parameters);
//! - [`cidr`]: the one `ADDRESS/PREFIX` parser;
//! - [`dns_name`]: what a name in the overlay DNS and an owner tag are;
//! - [`client`] (feature `client`): the one HTTP/1.1 client of the daemon's
//!   unix socket, with timeouts and one-line errors.

#![warn(missing_docs)]

pub mod check;
pub mod cidr;
#[cfg(feature = "client")]
pub mod client;
pub mod dns_name;
/// Fuzz target bodies (needs serde_json, which comes with `client`).
#[cfg(feature = "client")]
#[doc(hidden)]
pub mod fuzzing;
pub mod routes;
pub mod types;

pub use cidr::{parse_addr_or_cidr, parse_cidr, Cidr, CidrError};
#[cfg(feature = "client")]
pub use client::{Client, ClientError};
pub use types::*;
