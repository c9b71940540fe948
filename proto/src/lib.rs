//! weavers-proto: the logic of weavers with no sockets, no TAP and no clock
//! of its own. The daemon feeds it datagrams, frames and the current time;
//! it answers with datagrams to send and frames to deliver.

pub mod coalesce;
pub mod cookie;
pub mod dns;
pub mod e2e;
pub mod fec;
pub mod flows;
#[doc(hidden)]
pub mod fuzzing;
pub mod gossip;
pub mod groups;
pub mod hsmac;
pub mod ipam;
pub mod keys;
pub mod liveness;
pub mod mac;
pub mod node;
pub mod ratelimit;
pub mod replay;
pub mod routing;
pub mod segment;
pub mod session;
pub mod snoop;
pub mod stats;
pub mod vnet;
pub mod wire;
