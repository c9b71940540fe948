//! The daemon's control API, as the plugin uses it: the calls of
//! [`weavers_api::Client`] with the plugin's arguments and deadline, and
//! only the part of the status the plugin needs.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use weavers_api::{
    routes, AllocateRequest, Allocation, Client, ClientError, DnsAddRequest, DnsEntryInfo, DnsRecordInfo,
    DnsRemoveRequest, DnsRemoved, GcRequest, IpamStatus, ReleaseRequest, Released,
};

/// How long one call may take. The daemon answers within 30 s or says it
/// could not; a runtime usually waits minutes for a plugin.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(35);

/// The parts of `GET /v1/status` ([`weavers_api::Status`]) the plugin
/// uses; the rest is ignored, so that a daemon whose status grew or
/// shrank elsewhere still serves the plugin.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DaemonStatus {
    /// The daemon's bridge.
    pub bridge: String,
    /// This host's public key (as DNS entries name their origin).
    pub public_key: String,
}

/// The host's daemon.
#[derive(Clone, Debug)]
pub struct Daemon {
    client: Client,
}

impl Daemon {
    /// The daemon listening on `socket`; calls time out after [`CALL_TIMEOUT`].
    pub fn new(socket: impl AsRef<Path>) -> Self {
        Daemon { client: Client::new(socket.as_ref()).with_timeout(CALL_TIMEOUT) }
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<DaemonStatus, ClientError> {
        self.client.get(routes::STATUS).await
    }

    /// `GET /v1/ipam`.
    pub async fn ipam(&self) -> Result<IpamStatus, ClientError> {
        self.client.ipam().await
    }

    /// `POST /v1/ipam/allocate` (idempotent per owner).
    pub async fn allocate(&self, owner: &str) -> Result<Allocation, ClientError> {
        self.client.allocate(&AllocateRequest { owner: owner.to_owned() }).await
    }

    /// `POST /v1/ipam/release` (idempotent).
    pub async fn release(&self, owner: &str) -> Result<Released, ClientError> {
        self.client.release(&ReleaseRequest { owner: owner.to_owned() }).await
    }

    /// `POST /v1/ipam/gc`.
    pub async fn ipam_gc(&self, keep: Vec<String>) -> Result<Released, ClientError> {
        self.client.ipam_gc(&GcRequest { keep }).await
    }

    /// `POST /v1/dns`.
    pub async fn dns_add(&self, name: &str, addr: &str, owner: &str) -> Result<DnsEntryInfo, ClientError> {
        let req = DnsAddRequest { name: name.to_owned(), addr: addr.to_owned(), owner: Some(owner.to_owned()) };
        self.client.dns_add(&req).await
    }

    /// `DELETE /v1/dns` by owner (removing nothing is fine).
    pub async fn dns_remove_owner(&self, owner: &str) -> Result<DnsRemoved, ClientError> {
        self.client.dns_remove(&DnsRemoveRequest { owner: Some(owner.to_owned()), ..Default::default() }).await
    }

    /// `GET /v1/dns`.
    pub async fn dns_list(&self) -> Result<Vec<DnsRecordInfo>, ClientError> {
        self.client.dns_list().await
    }
}

/// A failed call in words for the CNI error's details: the daemon's
/// refusals say which request they refuse.
pub fn describe(e: &ClientError) -> String {
    match e {
        ClientError::Api { method, path, message, .. } => format!("weaversd answered {method} {path}: {message}"),
        other => other.to_string(),
    }
}
