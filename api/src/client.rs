//! The one client of the daemon's control socket: HTTP/1.1 over a unix
//! socket (hyper 1), one connection per call, JSON bodies, a deadline on
//! every call, and errors that say in one line what went wrong.
//!
//! The typed methods ([`Client::status`], [`Client::allocate`]...) bind
//! each route to its request and answer types; [`Client::get_raw`] and
//! [`Client::send_raw`] give the answer's bytes as they came (the command
//! line prints them for `--json`), and [`Client::get`] decodes into any
//! type (e.g. only the fields a caller needs).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
pub use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST};
pub use hyper::Method;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UnixStream;

use crate::routes;
use crate::types::{
    AllocateRequest, Allocation, ApiError, DnsAddRequest, DnsEntryInfo, DnsLookup, DnsRecordInfo, DnsRemoveRequest,
    DnsRemoved, DnsStats, ExposeRequest, ExposeResponse, GcRequest, GroupInfo, IpamStatus, PeerAddrs, PeerInfo,
    ReleaseRequest, Released, RmPeerRequest, Status,
};

/// How long one call may take unless [`Client::with_timeout`] says
/// otherwise (the daemon itself gives up on a request after 30 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(45);
/// Largest answer read from the daemon.
pub const MAX_ANSWER: usize = 64 * 1024 * 1024;
/// Most bytes of an unreadable answer quoted in an error.
const QUOTED: usize = 200;

/// Why a call failed. `Display` is one line for users; the variants say
/// whether trying again later may help ([`ClientError::is_unavailable`]).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// There is no socket file (the daemon is not running, or the path is
    /// wrong).
    #[error("weaversd is not running (no socket at {})", socket.display())]
    NoSocket {
        /// The socket's path.
        socket: PathBuf,
    },
    /// The socket file exists but nothing accepts connections on it (left
    /// by a daemon that stopped).
    #[error("weaversd is not running (nothing answers on {})", socket.display())]
    NotListening {
        /// The socket's path.
        socket: PathBuf,
    },
    /// The socket (or its directory) is root's only.
    #[error("permission denied on {}: the control socket is for root only", socket.display())]
    PermissionDenied {
        /// The socket's path.
        socket: PathBuf,
    },
    /// Any other failure to connect.
    #[error("cannot connect to weaversd on {}: {error}", socket.display())]
    Connect {
        /// The socket's path.
        socket: PathBuf,
        /// What `connect(2)` said.
        error: io::Error,
    },
    /// No complete answer within the client's timeout.
    #[error("weaversd on {} did not answer {method} {path} within {timeout:?}", socket.display())]
    Timeout {
        /// The socket's path.
        socket: PathBuf,
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The HTTP exchange failed half-way (the daemon closed the
    /// connection, or sent something that is not HTTP).
    #[error("talking to weaversd on {}: {error}", socket.display())]
    Http {
        /// The socket's path.
        socket: PathBuf,
        /// What hyper said.
        error: String,
    },
    /// The daemon answered with an error status. `Display` is the daemon's
    /// message alone (it is written for users).
    #[error("{message}")]
    Api {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
        /// The answer's status.
        status: StatusCode,
        /// The [`ApiError`] message, or a description of an answer that
        /// was not one.
        message: String,
    },
    /// A success answer that is not the JSON expected.
    #[error("unexpected answer from weaversd: {0}")]
    BadAnswer(String),
    /// The request body could not be made into JSON.
    #[error("cannot encode the request: {0}")]
    Encode(String),
}

impl ClientError {
    /// Whether trying again later may help: the daemon is not running or
    /// not reachable, did not answer in time, or said it cannot answer now
    /// (HTTP 503 or 504).
    pub fn is_unavailable(&self) -> bool {
        match self {
            ClientError::NoSocket { .. }
            | ClientError::NotListening { .. }
            | ClientError::PermissionDenied { .. }
            | ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::Http { .. } => true,
            ClientError::Api { status, .. } => {
                matches!(*status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT)
            }
            ClientError::BadAnswer(_) | ClientError::Encode(_) => false,
        }
    }

    /// Whether the daemon does not know the route or the method (HTTP 404
    /// or 405): an older daemon. Meaningful for routes that never answer
    /// 404 themselves (a DNS lookup of an unknown name does).
    pub fn is_unknown_route(&self) -> bool {
        matches!(self, ClientError::Api { status: StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED, .. })
    }
}

/// A client of one daemon's control socket. Cheap to clone; every call
/// opens its own connection.
#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
}

impl Client {
    /// A client of the daemon listening on `socket`, with
    /// [`DEFAULT_TIMEOUT`]. Nothing is opened until a call.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Client { socket: socket.into(), timeout: DEFAULT_TIMEOUT }
    }

    /// The same client with another deadline for each call.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Client { timeout, ..self }
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.get(routes::STATUS).await
    }

    /// `GET /v1/peers`.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, ClientError> {
        self.get(routes::PEERS).await
    }

    /// `POST /v1/peers`: connect to these addresses now and remember them.
    pub async fn add_peers(&self, req: &PeerAddrs) -> Result<PeerAddrs, ClientError> {
        self.send(Method::POST, routes::PEERS, req).await
    }

    /// `DELETE /v1/peers`.
    pub async fn remove_peers(&self, req: &PeerAddrs) -> Result<PeerAddrs, ClientError> {
        self.send(Method::DELETE, routes::PEERS, req).await
    }

    /// `POST /v1/expose`.
    pub async fn expose(&self, req: &ExposeRequest) -> Result<ExposeResponse, ClientError> {
        self.send(Method::POST, routes::EXPOSE, req).await
    }

    /// `GET /v1/groups`.
    pub async fn groups(&self) -> Result<Vec<GroupInfo>, ClientError> {
        self.get(routes::GROUPS).await
    }

    /// `GET /v1/ipam`.
    pub async fn ipam(&self) -> Result<IpamStatus, ClientError> {
        self.get(routes::IPAM).await
    }

    /// `POST /v1/ipam/allocate` (idempotent per owner).
    pub async fn allocate(&self, req: &AllocateRequest) -> Result<Allocation, ClientError> {
        self.send(Method::POST, routes::IPAM_ALLOCATE, req).await
    }

    /// `POST /v1/ipam/release` (idempotent).
    pub async fn release(&self, req: &ReleaseRequest) -> Result<Released, ClientError> {
        self.send(Method::POST, routes::IPAM_RELEASE, req).await
    }

    /// `POST /v1/ipam/gc`.
    pub async fn ipam_gc(&self, req: &GcRequest) -> Result<Released, ClientError> {
        self.send(Method::POST, routes::IPAM_GC, req).await
    }

    /// `POST /v1/ipam/rmpeer`.
    pub async fn ipam_rmpeer(&self, req: &RmPeerRequest) -> Result<IpamStatus, ClientError> {
        self.send(Method::POST, routes::IPAM_RMPEER, req).await
    }

    /// `GET /v1/dns`.
    pub async fn dns_list(&self) -> Result<Vec<DnsRecordInfo>, ClientError> {
        self.get(routes::DNS).await
    }

    /// `POST /v1/dns`.
    pub async fn dns_add(&self, req: &DnsAddRequest) -> Result<DnsEntryInfo, ClientError> {
        self.send(Method::POST, routes::DNS, req).await
    }

    /// `DELETE /v1/dns` (removing nothing is not an error).
    pub async fn dns_remove(&self, req: &DnsRemoveRequest) -> Result<DnsRemoved, ClientError> {
        self.send(Method::DELETE, routes::DNS, req).await
    }

    /// `GET /v1/dns/lookup?name=NAME`; an unknown name is an
    /// [`ClientError::Api`] with status 404.
    pub async fn dns_lookup(&self, name: &str) -> Result<DnsLookup, ClientError> {
        self.get(&routes::dns_lookup(name)).await
    }

    /// `GET /v1/dns/stats`.
    pub async fn dns_stats(&self) -> Result<DnsStats, ClientError> {
        self.get(routes::DNS_STATS).await
    }

    /// `GET path`, the answer decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.call(Method::GET, path, None).await?;
        decode_answer(&Method::GET, path, &body)
    }

    /// `method path` with `body` as JSON, the answer decoded as `T`.
    pub async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let answer = self.send_raw(method.clone(), path, body).await?;
        decode_answer(&method, path, &answer)
    }

    /// `GET path`: the answer's body as it came.
    pub async fn get_raw(&self, path: &str) -> Result<Bytes, ClientError> {
        self.call(Method::GET, path, None).await
    }

    /// `method path` with `body` as JSON: the answer's body as it came.
    pub async fn send_raw<B: Serialize>(&self, method: Method, path: &str, body: &B) -> Result<Bytes, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Encode(e.to_string()))?;
        self.call(method, path, Some(body)).await
    }

    /// One request on a fresh connection, within the timeout. A 2xx answer
    /// gives its body; any other gives [`ClientError::Api`].
    async fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Bytes, ClientError> {
        match tokio::time::timeout(self.timeout, self.exchange(method.clone(), path, body)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                socket: self.socket.clone(),
                method,
                path: path.to_owned(),
                timeout: self.timeout,
            }),
        }
    }

    async fn exchange(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Bytes, ClientError> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| self.connect_error(e))?;
        let http_err = |e: hyper::Error| ClientError::Http { socket: self.socket.clone(), error: e.to_string() };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http_err)?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });

        let mut req = Request::builder().method(method.clone()).uri(path).header(HOST, "localhost");
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Encode(format!("{method} {path}: {e}")))?;
        let resp = sender.send_request(req).await.map_err(http_err)?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| ClientError::Http { socket: self.socket.clone(), error: format!("reading the answer: {e}") })?
            .to_bytes();
        conn.abort();

        if status.is_success() {
            return Ok(bytes);
        }
        let message = match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(e) => e.error,
            Err(_) => format!(
                "unexpected answer from weaversd: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(QUOTED)]).trim()
            ),
        };
        Err(ClientError::Api { method, path: path.to_owned(), status, message })
    }

    fn connect_error(&self, error: io::Error) -> ClientError {
        let socket = self.socket.clone();
        match error.kind() {
            io::ErrorKind::NotFound => ClientError::NoSocket { socket },
            io::ErrorKind::ConnectionRefused => ClientError::NotListening { socket },
            io::ErrorKind::PermissionDenied => ClientError::PermissionDenied { socket },
            _ => ClientError::Connect { socket, error },
        }
    }
}

/// Parses a JSON answer (from [`Client::get_raw`] or
/// [`Client::send_raw`]) into its API type.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::BadAnswer(e.to_string()))
}

fn decode_answer<T: DeserializeOwned>(method: &Method, path: &str, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::BadAnswer(format!("{method} {path}: {e}")))
}
