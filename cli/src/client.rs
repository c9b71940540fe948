//! HTTP/1.1 over the daemon's unix socket (hyper 1, one connection per
//! call).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UnixStream;
use weavers_api::ApiError;

/// How long one call may take in all (the daemon itself gives up on a
/// request after 30 s).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(45);
/// Largest answer read from the daemon.
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// Why a call failed. `Display` is the one line shown to the user.
#[derive(Debug)]
pub enum Error {
    /// Nothing listens on the socket (missing file, or connection refused).
    NoDaemon(PathBuf),
    /// The socket (or its directory) is root-only.
    PermissionDenied(PathBuf),
    /// Any other failure to connect.
    Connect(PathBuf, io::Error),
    /// The daemon took longer than [`CALL_TIMEOUT`].
    Timeout(PathBuf),
    /// The HTTP exchange failed half-way.
    Http(PathBuf, String),
    /// The daemon answered with an error: its message.
    Api(String),
    /// The daemon answered something we cannot read.
    BadAnswer(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoDaemon(p) => write!(f, "no daemon answering on {} (is weaversd running?)", p.display()),
            Error::PermissionDenied(p) => {
                write!(f, "permission denied on {}: the control socket is for root only (try sudo)", p.display())
            }
            Error::Connect(p, e) => write!(f, "cannot connect to {}: {e}", p.display()),
            Error::Timeout(p) => {
                write!(f, "the daemon on {} did not answer within {} s", p.display(), CALL_TIMEOUT.as_secs())
            }
            Error::Http(p, e) => write!(f, "talking to the daemon on {}: {e}", p.display()),
            Error::Api(msg) => f.write_str(msg),
            Error::BadAnswer(msg) => write!(f, "unexpected answer from the daemon: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

/// A client of one daemon's control socket.
#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Client { socket: socket.into() }
    }

    /// `GET path`: the answer's raw JSON body.
    pub async fn get(&self, path: &str) -> Result<Bytes, Error> {
        self.call(Method::GET, path, None).await
    }

    /// `method path` with `body` as JSON: the answer's raw JSON body.
    pub async fn send<B: Serialize>(&self, method: Method, path: &str, body: &B) -> Result<Bytes, Error> {
        let body = serde_json::to_vec(body).map_err(|e| Error::BadAnswer(e.to_string()))?;
        self.call(method, path, Some(body)).await
    }

    /// One request on a fresh connection. A 2xx answer gives its body; any
    /// other gives [`Error::Api`] with the daemon's message.
    pub async fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Bytes, Error> {
        match tokio::time::timeout(CALL_TIMEOUT, self.exchange(method, path, body)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(self.socket.clone())),
        }
    }

    async fn exchange(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Bytes, Error> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| self.connect_error(e))?;
        let http_err = |e: hyper::Error| Error::Http(self.socket.clone(), e.to_string());
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http_err)?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });

        let mut req = Request::builder().method(method).uri(path).header(HOST, "localhost");
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::Http(self.socket.clone(), e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(http_err)?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| Error::Http(self.socket.clone(), e.to_string()))?
            .to_bytes();
        conn.abort();

        if status.is_success() {
            return Ok(bytes);
        }
        match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(e) => Err(Error::Api(e.error)),
            Err(_) => Err(Error::BadAnswer(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).trim()
            ))),
        }
    }

    fn connect_error(&self, e: io::Error) -> Error {
        let path = self.socket.clone();
        match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => Error::NoDaemon(path),
            io::ErrorKind::PermissionDenied => Error::PermissionDenied(path),
            _ => Error::Connect(path, e),
        }
    }
}

/// Parse a JSON answer into its API type.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::BadAnswer(e.to_string()))
}
