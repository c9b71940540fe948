//! weavers-proto: the logic of weavers with no sockets, no TAP and no clock
//! of its own. The daemon feeds it datagrams, frames and the current time;
//! it answers with datagrams to send and frames to deliver.

pub mod api;
