//! Requests from the control API (and metrics) to the data-plane task, each
//! with a channel for the answer. The data-plane task owns all state; the
//! API only talks to it through these.

use tokio::sync::oneshot;
use weavers_proto::api::{ExposeResponse, GroupInfo, PeerAddrs, PeerInfo, Status};

/// A request to the data-plane task. `Err` strings are shown to the user.
#[derive(Debug)]
pub enum Command {
    Status(oneshot::Sender<Status>),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Groups(oneshot::Sender<Vec<GroupInfo>>),
    AddPeers(Vec<String>, oneshot::Sender<Result<PeerAddrs, String>>),
    RemovePeers(Vec<String>, oneshot::Sender<Result<PeerAddrs, String>>),
    Expose(Option<String>, oneshot::Sender<Result<ExposeResponse, String>>),
}
