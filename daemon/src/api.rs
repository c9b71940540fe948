//! The control API: HTTP/1.1 over a root-only unix socket, JSON bodies.
//!
//! Routes (types in [`weavers_api`]):
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /v1/status` | | `200` [`Status`](weavers_api::Status) |
//! | `GET /v1/peers` | | `200` `[PeerInfo]` |
//! | `POST /v1/peers` | [`PeerAddrs`] | `200` [`PeerAddrs`] (what was added) |
//! | `DELETE /v1/peers` | [`PeerAddrs`] | `200` [`PeerAddrs`] (what was removed) |
//! | `POST /v1/expose` | [`ExposeRequest`] | `200` [`ExposeResponse`](weavers_api::ExposeResponse) |
//! | `GET /v1/groups` | | `200` `[GroupInfo]` |
//! | `GET /v1/dns` | | `200` `[DnsRecordInfo]` (every name, its addresses and origin) |
//! | `POST /v1/dns` | [`DnsAddRequest`] | `200` [`DnsEntryInfo`](weavers_api::DnsEntryInfo) |
//! | `DELETE /v1/dns` | [`DnsRemoveRequest`] | `200` [`DnsRemoved`](weavers_api::DnsRemoved) (maybe none) |
//! | `GET /v1/dns/lookup?name=NAME` | | `200` [`DnsLookup`](weavers_api::DnsLookup), `404` for no such name |
//! | `GET /v1/dns/stats` | | `200` [`DnsStats`](weavers_api::DnsStats) |
//! | `POST /v1/ping` | [`PingRequest`] | `200` [`PingResult`](weavers_api::PingResult), `404` no such peer or no path, `504` no answer in 2 s |
//! | `GET /v1/revocations` | | `200` `[RevocationInfo]` |
//! | `POST /v1/revocations` | [`RevocationRequest`] | `200` [`RevocationInfo`](weavers_api::RevocationInfo), `400` when refused |
//!
//! Every error answer carries an [`ApiError`] body:
//! - `400`: the body is not valid JSON of the right shape, an address is
//!   malformed, or the daemon refused the request (its message says why);
//! - `404` unknown route, `405` known route with another method,
//!   `413` body larger than [`MAX_BODY`];
//! - `503`: the data-plane task is gone or did not answer within
//!   [`REPLY_TIMEOUT`].
//!
//! A request is checked completely before any [`Command`] is sent, so a bad
//! request changes nothing. The handlers never panic on input.
//!
//! The socket is never TCP. [`bind`] creates it with mode 0600 (the mode is
//! set on the socket before `bind(2)`, so there is no moment at which the
//! file is more open), and [`serve`] removes it when it stops.

use std::future::{Future, IntoFuture};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use weavers_api::check::{self, parse_dns_addr, query_param, truncate_utf8, validate_owner};
#[cfg(test)]
use weavers_api::check::{validate_peer_addr, MAX_PEERS_PER_REQUEST};
use weavers_api::{
    dns_name, routes, AllocateRequest, ApiError, Cidr, DnsAddRequest, DnsRemoveRequest, ExposeRequest, GcRequest,
    PeerAddrs, PingRequest, ReleaseRequest, RevocationRequest, RmPeerRequest,
};
use weavers_proto::dns::Selector;

use crate::control::{AllocateError, Command, DnsAdd};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// How long a handler waits for the data-plane task (peer names may need DNS).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections may still run once shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Bind the control socket at `path`.
///
/// Creates the parent directory (mode 0700) when it is missing, removes a
/// stale socket left by a crash, and refuses when another daemon answers on
/// `path` or when `path` is something other than a socket. The socket file
/// gets mode 0600. Must be called inside a tokio runtime.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if path.as_os_str().is_empty() {
        bail!("control socket path is empty");
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .with_context(|| format!("creating directory {}", parent.display()))?;
        }
    }
    remove_stale(path)?;

    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
        .context("creating the control socket")?;
    // On Linux the file that bind(2) creates takes the socket inode's mode:
    // set it first so the file is never reachable by anyone but root.
    // SAFETY: fchmod on a file descriptor we own; no memory is involved.
    if unsafe { libc::fchmod(socket.as_raw_fd(), 0o600) } != 0 {
        return Err(io::Error::last_os_error()).context("fchmod on the control socket");
    }
    let addr = socket2::SockAddr::unix(path).with_context(|| format!("control socket path {}", path.display()))?;
    socket.bind(&addr).with_context(|| format!("binding control socket {}", path.display()))?;
    // And again on the file, in case a kernel ignored the first.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", path.display()))?;
    socket.listen(128).with_context(|| format!("listening on {}", path.display()))?;
    socket.set_nonblocking(true)?;
    let std_listener: std::os::unix::net::UnixListener = socket.into();
    UnixListener::from_std(std_listener).context("registering the control socket with tokio")
}

/// Remove whatever a crashed daemon left at `path`, but only a socket that
/// nobody answers on.
fn remove_stale(path: &Path) -> anyhow::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
    };
    if !meta.file_type().is_socket() {
        bail!("{} exists and is not a socket; refusing to replace it", path.display());
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => bail!("another daemon is answering on {}; stop it first or pick another --socket", path.display()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("probing existing socket {}", path.display())),
    }
    tracing::info!(path = %path.display(), "removing stale control socket");
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing stale socket {}", path.display())),
    }
}

/// Serve the control API on `listener` (from [`bind`]) until `shutdown`
/// completes, then remove the socket file.
///
/// Each request becomes one [`Command`] on `tx`.
pub async fn serve(
    listener: UnixListener,
    tx: mpsc::Sender<Command>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let path: Option<PathBuf> = listener.local_addr().ok().and_then(|a| a.as_pathname().map(Path::to_path_buf));
    // Remember which file is ours, so that we never remove another's.
    let ino = path.as_deref().and_then(|p| std::fs::symlink_metadata(p).ok()).map(|m| (m.dev(), m.ino()));

    let result = run_until(listener, router(tx), shutdown).await;

    if let (Some(path), Some(ino)) = (path, ino) {
        if let Ok(m) = std::fs::symlink_metadata(&path) {
            if (m.dev(), m.ino()) == ino {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), "removing control socket: {e}");
                }
            }
        }
    }
    result.context("control API server")
}

/// Run `app` on `listener` until `shutdown`, then give open connections a
/// short grace period. Shared with the metrics server.
pub(crate) async fn run_until<L>(
    listener: L,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let (fired_tx, fired_rx) = oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = fired_tx.send(());
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(signal);
    let grace = async move {
        match fired_rx.await {
            Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        r = server.into_future() => r,
        () = grace => {
            tracing::debug!("closing connections still open after shutdown");
            Ok(())
        }
    }
}

/// The routes, with their state. Public to the crate for tests.
pub(crate) fn router(tx: mpsc::Sender<Command>) -> Router {
    Router::new()
        .route(routes::STATUS, get(get_status))
        .route(routes::PEERS, get(get_peers).post(add_peers).delete(remove_peers))
        .route(routes::EXPOSE, post(expose))
        .route(routes::GROUPS, get(get_groups))
        .route(routes::IPAM, get(get_ipam))
        .route(routes::IPAM_ALLOCATE, post(ipam_allocate))
        .route(routes::IPAM_RELEASE, post(ipam_release))
        .route(routes::IPAM_GC, post(ipam_gc))
        .route(routes::IPAM_RMPEER, post(ipam_rmpeer))
        .route(routes::DNS, get(get_dns).post(add_dns).delete(remove_dns))
        .route(routes::DNS_LOOKUP, get(lookup_dns))
        .route(routes::DNS_STATS, get(dns_stats))
        .route(routes::REVOCATIONS, get(get_revocations).post(add_revocation))
        .route(routes::PING, post(ping))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(tx)
}

type Tx = State<mpsc::Sender<Command>>;

async fn get_status(State(tx): Tx) -> Result<Response, Failure> {
    let status = ask(&tx, Command::Status).await?;
    Ok(Json(status).into_response())
}

async fn get_peers(State(tx): Tx) -> Result<Response, Failure> {
    let peers = ask(&tx, Command::Peers).await?;
    Ok(Json(peers).into_response())
}

async fn get_groups(State(tx): Tx) -> Result<Response, Failure> {
    let groups = ask(&tx, Command::Groups).await?;
    Ok(Json(groups).into_response())
}

async fn get_ipam(State(tx): Tx) -> Result<Response, Failure> {
    let status = ask(&tx, Command::IpamStatus).await?;
    Ok(Json(status).into_response())
}

async fn ipam_allocate(State(tx): Tx, body: Result<Bytes, BytesRejection>) -> Result<Response, Failure> {
    let req: AllocateRequest = parse_body(body)?;
    validate_owner(&req.owner).map_err(Failure::bad_request)?;
    let answer = ask(&tx, |r| Command::Allocate(req.owner, r)).await?;
    let allocation = answer.map_err(|e| match e {
        // Temporary: the plugin turns 503 into CNI's "try again later".
        AllocateError::Unavailable(m) => Failure { status: StatusCode::SERVICE_UNAVAILABLE, message: m },
        AllocateError::Refused(m) => Failure::refused(m),
    })?;
    Ok(Json(allocation).into_response())
}

async fn ipam_release(State(tx): Tx, body: Result<Bytes, BytesRejection>) -> Result<Response, Failure> {
    let req: ReleaseRequest = parse_body(body)?;
    validate_owner(&req.owner).map_err(Failure::bad_request)?;
    let answer = ask(&tx, |r| Command::Release(req.owner, r)).await?;
    Ok(Json(answer.map_err(Failure::refused)?).into_response())
}

async fn ipam_gc(State(tx): Tx, body: Result<Bytes, BytesRejection>) -> Result<Response, Failure> {
    let req: GcRequest = parse_body(body)?;
    if req.keep.len() > 65_536 {
        return Err(Failure::bad_request("too many owners to keep".into()));
    }
    for o in &req.keep {
        validate_owner(o).map_err(Failure::bad_request)?;
    }
    let answer = ask(&tx, |r| Command::Gc(req.keep, r)).await?;
    Ok(Json(answer.map_err(Failure::refused)?).into_response())
}

async fn ipam_rmpeer(State(tx): Tx, body: Result<Bytes, BytesRejection>) -> Result<Response, Failure> {
    let req: RmPeerRequest = parse_body(body)?;
    if req.peer.is_empty() || req.peer.len() > 255 {
        return Err(Failure::bad_request("peer must be a name or a public key".into()));
    }
    let answer = ask(&tx, |r| Command::RmPeer(req.peer, r)).await?;
    Ok(Json(answer.map_err(Failure::refused)?).into_response())
}

async fn add_peers(State(tx): Tx, body: Result<Bytes, BytesRejection>) -> Result<Response, Failure> {
    let req: PeerAddrs = parse_body(body)?;
    let peers = validate_peer_list(req.peers)?;
    let added = ask(&tx, |r| Command::AddPeers(peers, r)).await?;
    Ok(Json(added.map_err(Failure::refused)?).into_response())
}

async fn remove_peers(State(tx): Tx, body: Result<Bytes, BytesRejection>) -> Result<Response, Failure> {
    let req: PeerAddrs = parse_body(body)?;
    let peers = validate_peer_list(req.peers)?;
    let removed = ask(&tx, |r| Command::RemovePeers(peers, r)).await?;
    Ok(Json(removed.map_err(Failure::refused)?).into_response())
}

async fn expose(State(tx): Tx, body: Result<Bytes, BytesRejection>) -> Result<Response, Failure> {
    let req: ExposeRequest = parse_body(body)?;
    if let Some(cidr) = &req.cidr {
        Cidr::parse(cidr).map_err(|e| Failure::bad_request(e.to_string()))?;
    }
    let answer = ask(&tx, |r| Command::Expose(req.cidr, r)).await?;
    Ok(Json(answer.map_err(Failure::refused)?).into_response())
}

async fn ping(State(tx): Tx, body: Result<Bytes, BytesRejection>) -> Result<Response, Failure> {
    use crate::control::PingError;
    let req: PingRequest = parse_body(body)?;
    match ask(&tx, |r| Command::Ping(req.peer, r)).await? {
        Ok(answer) => Ok(Json(answer).into_response()),
        Err(PingError::Unknown(m)) => Err(Failure { status: StatusCode::NOT_FOUND, message: m }),
        Err(PingError::NoAnswer(m)) => Err(Failure { status: StatusCode::GATEWAY_TIMEOUT, message: m }),
    }
}

async fn get_revocations(State(tx): Tx) -> Result<Response, Failure> {
    let rows = ask(&tx, Command::Revocations).await?;
    Ok(Json(rows).into_response())
}

async fn add_revocation(State(tx): Tx, body: Result<Bytes, BytesRejection>) -> Result<Response, Failure> {
    let req: RevocationRequest = parse_body(body)?;
    let answer = ask(&tx, |r| Command::AddRevocation(req.revocation, r)).await?;
    Ok(Json(answer.map_err(Failure::refused)?).into_response())
}

async fn get_dns(State(tx): Tx) -> Result<Response, Failure> {
    let rows = ask(&tx, Command::DnsList).await?;
    Ok(Json(rows).into_response())
}

async fn add_dns(State(tx): Tx, body: Result<Bytes, BytesRejection>) -> Result<Response, Failure> {
    let req: DnsAddRequest = parse_body(body)?;
    let add = validate_dns_add(&req).map_err(Failure::bad_request)?;
    let entry = ask(&tx, |r| Command::DnsAdd(add, r)).await?;
    Ok(Json(entry.map_err(Failure::refused)?).into_response())
}

async fn remove_dns(State(tx): Tx, body: Result<Bytes, BytesRejection>) -> Result<Response, Failure> {
    let req: DnsRemoveRequest = parse_body(body)?;
    let sel = validate_dns_remove(&req).map_err(Failure::bad_request)?;
    let removed = ask(&tx, |r| Command::DnsRemove(sel, r)).await?;
    Ok(Json(removed.map_err(Failure::refused)?).into_response())
}

async fn lookup_dns(State(tx): Tx, uri: Uri) -> Result<Response, Failure> {
    let raw = uri
        .query()
        .and_then(|q| query_param(q, "name"))
        .ok_or_else(|| Failure::bad_request("give the name to look up: /v1/dns/lookup?name=NAME".into()))?;
    let name = dns_name::normalize(&raw).map_err(|e| Failure::bad_request(e.to_string()))?;
    match ask(&tx, |r| Command::DnsLookup(name.clone(), r)).await? {
        Some(found) => Ok(Json(found).into_response()),
        None => {
            Err(Failure { status: StatusCode::NOT_FOUND, message: format!("no such name: {}", dns_name::fqdn(&name)) })
        }
    }
}

async fn dns_stats(State(tx): Tx) -> Result<Response, Failure> {
    let stats = ask(&tx, Command::DnsStats).await?;
    Ok(Json(stats).into_response())
}

async fn not_found(method: Method, uri: Uri) -> Failure {
    let mut path = uri.path().to_string();
    truncate_utf8(&mut path, 100);
    Failure {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "no such route: {method} {path} (routes: GET /v1/status, GET|POST|DELETE /v1/peers, POST /v1/expose, \
             GET /v1/groups, GET|POST|DELETE /v1/dns, GET /v1/dns/lookup?name=NAME, GET /v1/dns/stats)"
        ),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> Failure {
    let mut path = uri.path().to_string();
    truncate_utf8(&mut path, 100);
    Failure { status: StatusCode::METHOD_NOT_ALLOWED, message: format!("method {method} not allowed on {path}") }
}

/// Send a command built around a fresh answer channel and wait for the
/// answer, at most [`REPLY_TIMEOUT`].
async fn ask<T>(tx: &mpsc::Sender<Command>, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Failure> {
    let (reply_tx, reply_rx) = oneshot::channel();
    let exchange = async {
        tx.send(make(reply_tx)).await.map_err(|_| Failure::gone())?;
        reply_rx.await.map_err(|_| Failure::gone())
    };
    match tokio::time::timeout(REPLY_TIMEOUT, exchange).await {
        Ok(r) => r,
        Err(_) => Err(Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("the daemon did not answer within {} s", REPLY_TIMEOUT.as_secs()),
        }),
    }
}

fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Failure> {
    let bytes = body.map_err(|rejection| Failure {
        status: rejection.status(),
        message: if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            format!("request body larger than {MAX_BODY} bytes")
        } else {
            format!("cannot read request body: {}", rejection.body_text())
        },
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Failure::bad_request(format!("invalid JSON body: {e}")))
}

/// Check a whole list before anything is sent to the daemon.
fn validate_peer_list(peers: Vec<String>) -> Result<Vec<String>, Failure> {
    check::validate_peer_list(&peers).map_err(Failure::bad_request)?;
    Ok(peers)
}

/// Checks `POST /v1/dns` completely: the name (normalised), the address
/// and the owner tag.
pub fn validate_dns_add(req: &DnsAddRequest) -> Result<DnsAdd, String> {
    let name = dns_name::normalize(&req.name).map_err(|e| e.to_string())?;
    let addr = parse_dns_addr(&req.addr)?;
    if let Some(o) = &req.owner {
        dns_name::check_owner(o).map_err(|e| e.to_string())?;
    }
    Ok(DnsAdd { name, addr, owner: req.owner.clone() })
}

/// Checks `DELETE /v1/dns`: a name (maybe with an address) or an owner.
pub fn validate_dns_remove(req: &DnsRemoveRequest) -> Result<Selector, String> {
    let addr = req.addr.as_deref().map(parse_dns_addr).transpose()?;
    if addr.is_some() && req.name.is_none() {
        return Err("an address is removed together with its name: give the name too".into());
    }
    Selector::new(req.name.as_deref(), addr, req.owner.as_deref()).map_err(|e| e.to_string())
}

/// An error answer: a status and an [`ApiError`] body.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    fn bad_request(message: String) -> Self {
        Failure { status: StatusCode::BAD_REQUEST, message }
    }

    /// The daemon looked at the request and said no.
    fn refused(message: String) -> Self {
        Self::bad_request(message)
    }

    fn gone() -> Self {
        Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the daemon is shutting down or its data plane stopped".into(),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.status, Json(ApiError { error: self.message })).into_response()
    }
}

#[cfg(test)]
#[path = "api/tests.rs"]
mod tests;
