//! The daemon's control API, as the plugin uses it: HTTP/1.1 over the unix
//! socket (hyper 1, one connection per call), JSON bodies, the types of
//! [`weavers_api`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::net::UnixStream;
use weavers_api::{
    AllocateRequest, Allocation, ApiError, DnsAddRequest, DnsEntryInfo, DnsRecordInfo, DnsRemoveRequest, DnsRemoved,
    GcRequest, IpamStatus, ReleaseRequest, Released,
};

/// How long one call may take. The daemon answers within 30 s or says it
/// could not; a runtime usually waits minutes for a plugin.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(35);
/// Largest answer read.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug)]
pub enum Error {
    /// Nothing answers on the socket, it timed out, or the daemon said it
    /// is not able to answer now (HTTP 503): worth trying again later.
    Unavailable(String),
    /// The daemon does not know the route (an older daemon).
    NoRoute(String),
    /// The daemon answered with an error: its message.
    Refused(String),
    /// An answer we cannot read.
    BadAnswer(String),
}

impl Error {
    /// Whether trying again later may help.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unavailable(m) | Error::NoRoute(m) | Error::Refused(m) => f.write_str(m),
            Error::BadAnswer(m) => write!(f, "unexpected answer from weaversd: {m}"),
        }
    }
}

/// The parts of `GET /v1/status` ([`weavers_api::Status`]) the
/// plugin uses; the rest is ignored.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DaemonStatus {
    /// The daemon's bridge.
    pub bridge: String,
    /// This host's public key (as DNS entries name their origin).
    pub public_key: String,
}

/// A client of one daemon.
#[derive(Clone, Debug)]
pub struct Daemon {
    socket: PathBuf,
}

impl Daemon {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Daemon { socket: socket.into() }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<DaemonStatus, Error> {
        self.call(Method::GET, "/v1/status", None::<&()>).await
    }

    /// `GET /v1/ipam`.
    pub async fn ipam(&self) -> Result<IpamStatus, Error> {
        self.call(Method::GET, "/v1/ipam", None::<&()>).await
    }

    /// `POST /v1/ipam/allocate` (idempotent per owner).
    pub async fn allocate(&self, owner: &str) -> Result<Allocation, Error> {
        self.call(Method::POST, "/v1/ipam/allocate", Some(&AllocateRequest { owner: owner.to_owned() })).await
    }

    /// `POST /v1/ipam/release` (idempotent).
    pub async fn release(&self, owner: &str) -> Result<Released, Error> {
        self.call(Method::POST, "/v1/ipam/release", Some(&ReleaseRequest { owner: owner.to_owned() })).await
    }

    /// `POST /v1/ipam/gc`.
    pub async fn ipam_gc(&self, keep: Vec<String>) -> Result<Released, Error> {
        self.call(Method::POST, "/v1/ipam/gc", Some(&GcRequest { keep })).await
    }

    /// `POST /v1/dns`.
    pub async fn dns_add(&self, name: &str, addr: &str, owner: &str) -> Result<DnsEntryInfo, Error> {
        let req = DnsAddRequest { name: name.to_owned(), addr: addr.to_owned(), owner: Some(owner.to_owned()) };
        self.call(Method::POST, "/v1/dns", Some(&req)).await
    }

    /// `DELETE /v1/dns` by owner (removing nothing is fine).
    pub async fn dns_remove_owner(&self, owner: &str) -> Result<DnsRemoved, Error> {
        let req = DnsRemoveRequest { owner: Some(owner.to_owned()), ..Default::default() };
        self.call(Method::DELETE, "/v1/dns", Some(&req)).await
    }

    /// `GET /v1/dns`.
    pub async fn dns_list(&self) -> Result<Vec<DnsRecordInfo>, Error> {
        self.call(Method::GET, "/v1/dns", None::<&()>).await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let body = body.map(serde_json::to_vec).transpose().map_err(|e| Error::BadAnswer(e.to_string()))?;
        let bytes = match tokio::time::timeout(CALL_TIMEOUT, self.exchange(method.clone(), path, body)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::Unavailable(format!(
                    "weaversd on {} did not answer {method} {path} within {} s",
                    self.socket.display(),
                    CALL_TIMEOUT.as_secs()
                )))
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::BadAnswer(format!("{method} {path}: {e}")))
    }

    async fn exchange(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Bytes, Error> {
        let sock = self.socket.display();
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| self.connect_error(e))?;
        let http_err = |e: hyper::Error| Error::Unavailable(format!("talking to weaversd on {sock}: {e}"));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http_err)?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder().method(method.clone()).uri(path).header(HOST, "localhost");
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req =
            req.body(Full::new(Bytes::from(body.unwrap_or_default()))).map_err(|e| Error::BadAnswer(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(http_err)?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| Error::Unavailable(format!("reading weaversd's answer on {sock}: {e}")))?
            .to_bytes();
        conn.abort();
        if status.is_success() {
            return Ok(bytes);
        }
        let message = match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(e) => e.error,
            Err(_) => format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).trim()),
        };
        let message = format!("weaversd answered {method} {path}: {message}");
        Err(match status {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => Error::Unavailable(message),
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Error::NoRoute(message),
            _ => Error::Refused(message),
        })
    }

    fn connect_error(&self, e: io::Error) -> Error {
        let sock = self.socket.display();
        match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                Error::Unavailable(format!("no weaversd answers on {sock} (is it running? is \"socket\" right?)"))
            }
            io::ErrorKind::PermissionDenied => {
                Error::Unavailable(format!("permission denied on {sock}: the plugin must run as root"))
            }
            _ => Error::Unavailable(format!("cannot connect to weaversd on {sock}: {e}")),
        }
    }
}
