//! Requests from the control API (and metrics) to the data-plane task, each
//! with a channel for the answer. The data-plane task owns all state; the
//! API only talks to it through these.

use std::net::IpAddr;
use tokio::sync::oneshot;
use weavers_api::{
    Allocation, DnsEntryInfo, DnsLookup, DnsRecordInfo, DnsRemoved, DnsStats, ExposeResponse, GroupInfo, IpamStatus,
    PeerAddrs, PeerInfo, PingResult, Released, RevocationInfo, Status,
};
use weavers_proto::dns::Selector;

/// A request to the data-plane task. `Err` strings are shown to the user.
#[derive(Debug)]
pub enum Command {
    Status(oneshot::Sender<Status>),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Groups(oneshot::Sender<Vec<GroupInfo>>),
    AddPeers(Vec<String>, oneshot::Sender<Result<PeerAddrs, String>>),
    RemovePeers(Vec<String>, oneshot::Sender<Result<PeerAddrs, String>>),
    Expose(Option<String>, oneshot::Sender<Result<ExposeResponse, String>>),
    /// A checked DNS entry: normalised name, address, owner.
    DnsAdd(DnsAdd, oneshot::Sender<Result<DnsEntryInfo, String>>),
    DnsRemove(Selector, oneshot::Sender<Result<DnsRemoved, String>>),
    DnsList(oneshot::Sender<Vec<DnsRecordInfo>>),
    /// A normalised name; `None` back when no such name exists.
    DnsLookup(String, oneshot::Sender<Option<DnsLookup>>),
    DnsStats(oneshot::Sender<DnsStats>),
    IpamStatus(oneshot::Sender<IpamStatus>),
    /// An address for an owner; waits (bounded) for space.
    Allocate(String, oneshot::Sender<Result<Allocation, AllocateError>>),
    Release(String, oneshot::Sender<Result<Released, String>>),
    /// Owners to keep; everything else is freed.
    Gc(Vec<String>, oneshot::Sender<Result<Released, String>>),
    RmPeer(String, oneshot::Sender<Result<IpamStatus, String>>),
    /// A revocation's text form (network-authority mode).
    AddRevocation(String, oneshot::Sender<Result<RevocationInfo, String>>),
    Revocations(oneshot::Sender<Vec<RevocationInfo>>),
    /// `weavers ping`: a peer's name or key.
    Ping(String, oneshot::Sender<Result<PingResult, PingError>>),
    /// Read `--cert` again now (SIGHUP).
    ReloadCert,
}

/// Why a ping got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingError {
    /// No such peer, or no path to it.
    Unknown(String),
    /// No pong within the wait (2 s).
    NoAnswer(String),
}

/// Why an allocation was not made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocateError {
    /// The range is not shared out yet, or no space arrived in time: try again later.
    Unavailable(String),
    /// Refused for good (conflicts, a bad owner, a disk error...).
    Refused(String),
}

/// `POST /v1/dns` after the API checked it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsAdd {
    /// Normalised (see [`weavers_api::dns_name::normalize`]).
    pub name: String,
    pub addr: IpAddr,
    pub owner: Option<String>,
}
