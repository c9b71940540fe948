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
mod tests {
    use super::*;

    #[test]
    fn peer_addresses() {
        for ok in [
            "host",
            "host.example.com",
            "host.example.com.",
            "host:6783",
            "192.0.2.1",
            "192.0.2.1:1",
            "[2001:db8::1]",
            "[2001:db8::1]:65535",
            "2001:db8::1",
            "under_score-1",
        ] {
            assert_eq!(validate_peer_addr(ok), Ok(()), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            " host",
            "host:",
            "host:0",
            "host:65536",
            "host:+1",
            ":6783",
            "-host",
            "a..b",
            "ho st",
            "host\n",
            "[2001:db8::1",
            "[2001:db8::1]6783",
            "[host]:1",
            "2001:db8::1:6783x",
            "a:b:c",
            "h\u{1b}[31m",
            "héllo",
            long.as_str(),
        ] {
            assert!(validate_peer_addr(bad).is_err(), "{bad:?} accepted");
        }
    }

    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use weavers_api::{
        DnsEntryInfo, DnsLookup, DnsRemoved, DnsStats, ExposeResponse, HandshakeCounts, PeerInfo, PeerState, Status,
        TrafficCounters,
    };

    /// A directory of its own under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("weavers-api-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn sample_status() -> Status {
        Status {
            name: "a".into(),
            public_key: "KEYA".into(),
            version: "0.1.0".into(),
            listen: "0.0.0.0:6783".into(),
            bridge: "weavers".into(),
            overlay_mtu: 1376,
            overlay_addr: None,
            peers: vec![PeerInfo {
                name: "b".into(),
                public_key: "KEYB".into(),
                endpoint: Some("192.0.2.2:6783".into()),
                state: PeerState::Connected,
                via: None,
                rtt_us: Some(420),
                session_age_s: Some(3),
                overlay_addr: None,
                traffic: TrafficCounters::default(),
            }],
            pending: vec![],
            drops: vec![],
            handshakes: HandshakeCounts::default(),
            tap_tx_dropped: 0,
            peers_down: 0,
            stalls: 0,
            local_health: 0,
            segmentation: Default::default(),
        }
    }

    /// A data-plane task that answers every command and logs what it got.
    fn fake_data_plane() -> (mpsc::Sender<Command>, Arc<Mutex<Vec<String>>>) {
        let (tx, mut rx) = mpsc::channel::<Command>(8);
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = log.clone();
        tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                let mut log = seen.lock().unwrap();
                // Commands added later get no answer (the API says 503).
                #[allow(unreachable_patterns)]
                match cmd {
                    Command::Status(r) => {
                        log.push("status".into());
                        let _ = r.send(sample_status());
                    }
                    Command::Peers(r) => {
                        log.push("peers".into());
                        let _ = r.send(sample_status().peers);
                    }
                    Command::AddPeers(p, r) => {
                        log.push(format!("add {}", p.join(",")));
                        let _ = r.send(if p.iter().any(|a| a == "refuse.example") {
                            Err("cannot resolve refuse.example".into())
                        } else {
                            Ok(PeerAddrs { peers: p })
                        });
                    }
                    Command::RemovePeers(p, r) => {
                        log.push(format!("rm {}", p.join(",")));
                        let _ = r.send(Ok(PeerAddrs { peers: p }));
                    }
                    Command::Expose(c, r) => {
                        log.push(format!("expose {c:?}"));
                        let _ = r.send(Ok(ExposeResponse {
                            address: c.unwrap_or_else(|| "10.32.0.1/12".into()),
                            multicast_route_added: true,
                        }));
                    }
                    Command::DnsAdd(a, r) => {
                        log.push(format!("dns add {} {} {:?}", a.name, a.addr, a.owner));
                        let _ = r.send(if a.name == "refused" {
                            Err("this host already publishes too many DNS entries".into())
                        } else {
                            Ok(dns_entry(&a.name, &a.addr.to_string(), a.owner))
                        });
                    }
                    Command::DnsRemove(sel, r) => {
                        log.push(format!("dns rm {:?} {:?} {:?}", sel.name, sel.addr, sel.owner));
                        let name = sel.name.unwrap_or_else(|| "x".into());
                        let _ = r.send(Ok(DnsRemoved { removed: vec![dns_entry(&name, "10.0.0.1", sel.owner)] }));
                    }
                    Command::DnsList(r) => {
                        log.push("dns ls".into());
                        let _ = r.send(vec![]);
                    }
                    Command::DnsLookup(name, r) => {
                        log.push(format!("dns lookup {name}"));
                        let _ = r.send((name == "web").then(|| DnsLookup {
                            name: "web.weavers.local".into(),
                            addrs: vec!["10.0.0.2".into(), "10.0.0.1".into()],
                        }));
                    }
                    Command::DnsStats(r) => {
                        log.push("dns stats".into());
                        let _ = r.send(DnsStats { formerr: 3, ..DnsStats::default() });
                    }
                    _ => {}
                }
            }
        });
        (tx, log)
    }

    fn dns_entry(name: &str, addr: &str, owner: Option<String>) -> DnsEntryInfo {
        DnsEntryInfo {
            name: format!("{name}.weavers.local"),
            addr: addr.into(),
            owner,
            origin: "a".into(),
            origin_key: "KEYA".into(),
        }
    }

    /// One raw HTTP/1.1 exchange; returns the status code and the body.
    async fn http(sock: &Path, method: &str, uri: &str, body: Option<&str>) -> (u16, String) {
        let mut s = tokio::net::UnixStream::connect(sock).await.unwrap();
        let mut req = format!("{method} {uri} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        if let Some(body) = body {
            req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
        } else {
            req.push_str("\r\n");
        }
        // The server may answer and close before reading a large body.
        let _ = s.write_all(req.as_bytes()).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let out = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (code, body.to_string())
    }

    fn error_of(body: &str) -> String {
        serde_json::from_str::<ApiError>(body).unwrap_or_else(|e| panic!("not an ApiError ({e}): {body}")).error
    }

    #[tokio::test]
    async fn routes_answer_and_bad_requests_change_nothing() {
        let dir = TempDir::new("routes");
        let sock = dir.0.join("run").join("weavers.sock");
        let listener = bind(&sock).unwrap();
        let (tx, log) = fake_data_plane();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, tx, async {
            let _ = stop_rx.await;
        }));

        let (code, body) = http(&sock, "GET", "/v1/status", None).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(serde_json::from_str::<Status>(&body).unwrap(), sample_status());

        let (code, body) = http(&sock, "GET", "/v1/peers", None).await;
        assert_eq!(code, 200);
        let peers: Vec<PeerInfo> = serde_json::from_str(&body).unwrap();
        assert_eq!(peers[0].state, PeerState::Connected);

        let (code, body) =
            http(&sock, "POST", "/v1/peers", Some(r#"{"peers":["b.example:6783","[2001:db8::2]"]}"#)).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(serde_json::from_str::<PeerAddrs>(&body).unwrap().peers, ["b.example:6783", "[2001:db8::2]"]);

        let (code, body) = http(&sock, "DELETE", "/v1/peers", Some(r#"{"peers":["b.example"]}"#)).await;
        assert_eq!(code, 200, "{body}");

        let (code, body) = http(&sock, "POST", "/v1/expose", Some("{}")).await;
        assert_eq!(code, 200, "{body}");
        let exposed: ExposeResponse = serde_json::from_str(&body).unwrap();
        assert_eq!(exposed.address, "10.32.0.1/12");
        let (code, _) = http(&sock, "POST", "/v1/expose", Some(r#"{"cidr":"10.32.0.9/12"}"#)).await;
        assert_eq!(code, 200);

        // The daemon's refusal comes back as a 400 with its message.
        let (code, body) = http(&sock, "POST", "/v1/peers", Some(r#"{"peers":["refuse.example"]}"#)).await;
        assert_eq!(code, 400);
        assert_eq!(error_of(&body), "cannot resolve refuse.example");

        let before = log.lock().unwrap().len();
        let long = format!(r#"{{"peers":["{}"]}}"#, "a".repeat(300));
        let many = format!(r#"{{"peers":[{}]}}"#, vec!["\"h\""; MAX_PEERS_PER_REQUEST + 1].join(","));
        for (method, uri, body) in [
            ("POST", "/v1/peers", Some("")),
            ("POST", "/v1/peers", Some("{")),
            ("POST", "/v1/peers", Some("[]")),
            ("POST", "/v1/peers", Some(r#"{"peers":"h"}"#)),
            ("POST", "/v1/peers", Some(r#"{"peers":[]}"#)),
            ("POST", "/v1/peers", Some(r#"{"peers":["ok.example",""]}"#)),
            ("POST", "/v1/peers", Some(r#"{"peers":["ok.example","bad host"]}"#)),
            ("POST", "/v1/peers", Some(r#"{"peers":["h:99999"]}"#)),
            ("POST", "/v1/peers", Some(long.as_str())),
            ("POST", "/v1/peers", Some(many.as_str())),
            ("POST", "/v1/peers", Some("\u{0}\u{1}\u{2}")),
            ("DELETE", "/v1/peers", None),
            ("DELETE", "/v1/peers", Some(r#"{"peers":[null]}"#)),
            ("POST", "/v1/expose", Some(r#"{"cidr":"10.32.0.1"}"#)),
            ("POST", "/v1/expose", Some(r#"{"cidr":"10.32.0.1/40"}"#)),
            ("POST", "/v1/expose", Some(r#"{"cidr":12}"#)),
        ] {
            let (code, resp) = http(&sock, method, uri, body).await;
            assert_eq!(code, 400, "{method} {uri} {body:?} -> {resp}");
            assert!(!error_of(&resp).is_empty());
        }
        let (code, resp) = http(&sock, "GET", "/v2/nothing", None).await;
        assert_eq!(code, 404);
        assert!(error_of(&resp).contains("no such route"));
        let (code, resp) = http(&sock, "PUT", "/v1/status", None).await;
        assert_eq!(code, 405);
        error_of(&resp);
        let huge = format!(r#"{{"peers":["{}"]}}"#, "a".repeat(MAX_BODY));
        let (code, resp) = http(&sock, "POST", "/v1/peers", Some(&huge)).await;
        assert_eq!(code, 413, "{resp}");
        error_of(&resp);
        assert_eq!(log.lock().unwrap().len(), before, "a bad request reached the daemon");

        // Not HTTP at all: the server drops the connection and goes on.
        {
            let mut s = tokio::net::UnixStream::connect(&sock).await.unwrap();
            let _ = s.write_all(b"\x16\x03\x01garbage\r\n\r\n").await;
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out).await;
        }
        assert_eq!(http(&sock, "GET", "/v1/status", None).await.0, 200);

        stop_tx.send(()).unwrap();
        server.await.unwrap().unwrap();
        assert!(!sock.exists(), "socket left behind after shutdown");
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param("name=web", "name").as_deref(), Some("web"));
        assert_eq!(query_param("a=1&name=AAPL.orders%2Eaex", "name").as_deref(), Some("AAPL.orders.aex"));
        assert_eq!(query_param("name=a+b", "name").as_deref(), Some("a b"));
        assert_eq!(query_param("names=x", "name"), None);
        assert_eq!(query_param("name=%zz", "name"), None);
        assert_eq!(query_param("name=%4", "name"), None);
        assert_eq!(query_param("name=%ff", "name"), None, "not UTF-8");
        assert_eq!(query_param("name", "name").as_deref(), Some(""));
    }

    #[tokio::test]
    async fn dns_routes_check_everything_before_the_daemon_sees_it() {
        let dir = TempDir::new("dns");
        let sock = dir.0.join("weavers.sock");
        let listener = bind(&sock).unwrap();
        let (tx, log) = fake_data_plane();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, tx, async {
            let _ = stop_rx.await;
        }));

        let (code, body) =
            http(&sock, "POST", "/v1/dns", Some(r#"{"name":"AAPL.orders.aex.weavers.local.","addr":"239.1.0.1"}"#))
                .await;
        assert_eq!(code, 200, "{body}");
        let e: DnsEntryInfo = serde_json::from_str(&body).unwrap();
        assert_eq!(e.name, "aapl.orders.aex.weavers.local");
        let (code, _) =
            http(&sock, "POST", "/v1/dns", Some(r#"{"name":"web","addr":"fd00::1","owner":"ctr-1"}"#)).await;
        assert_eq!(code, 200);
        let (code, body) = http(&sock, "POST", "/v1/dns", Some(r#"{"name":"refused","addr":"10.0.0.1"}"#)).await;
        assert_eq!((code, error_of(&body).contains("too many")), (400, true));

        let (code, body) = http(&sock, "DELETE", "/v1/dns", Some(r#"{"owner":"ctr-1"}"#)).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(serde_json::from_str::<DnsRemoved>(&body).unwrap().removed.len(), 1);
        let (code, _) = http(&sock, "DELETE", "/v1/dns", Some(r#"{"name":"Web","addr":"10.0.0.1"}"#)).await;
        assert_eq!(code, 200);

        let (code, body) = http(&sock, "GET", "/v1/dns/lookup?name=WEB.weavers.local", None).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(serde_json::from_str::<DnsLookup>(&body).unwrap().addrs, ["10.0.0.2", "10.0.0.1"]);
        let (code, body) = http(&sock, "GET", "/v1/dns/lookup?name=nope", None).await;
        assert_eq!(code, 404);
        assert_eq!(error_of(&body), "no such name: nope.weavers.local");
        let (code, body) = http(&sock, "GET", "/v1/dns", None).await;
        assert_eq!((code, body.as_str()), (200, "[]"));
        let (code, body) = http(&sock, "GET", "/v1/dns/stats", None).await;
        assert_eq!(code, 200);
        assert_eq!(serde_json::from_str::<DnsStats>(&body).unwrap().formerr, 3);

        let before = log.lock().unwrap().len();
        let long = format!(r#"{{"name":"{}","addr":"10.0.0.1"}}"#, "a".repeat(300));
        for (method, uri, body) in [
            ("POST", "/v1/dns", Some("{}")),
            ("POST", "/v1/dns", Some(r#"{"name":"web"}"#)),
            ("POST", "/v1/dns", Some(r#"{"name":"web","addr":"10.0.0"}"#)),
            ("POST", "/v1/dns", Some(r#"{"name":"web","addr":"0.0.0.0"}"#)),
            ("POST", "/v1/dns", Some(r#"{"name":"a..b","addr":"10.0.0.1"}"#)),
            ("POST", "/v1/dns", Some(r#"{"name":"weavers.local","addr":"10.0.0.1"}"#)),
            ("POST", "/v1/dns", Some(r#"{"name":"a[2J","addr":"10.0.0.1"}"#)),
            ("POST", "/v1/dns", Some(r#"{"name":"web","addr":"10.0.0.1","owner":"two words"}"#)),
            ("POST", "/v1/dns", Some(r#"{"name":"web","addr":"10.0.0.1","owner":""}"#)),
            ("POST", "/v1/dns", Some(long.as_str())),
            ("DELETE", "/v1/dns", Some("{}")),
            ("DELETE", "/v1/dns", Some(r#"{"addr":"10.0.0.1"}"#)),
            ("DELETE", "/v1/dns", Some(r#"{"name":"web","addr":"nope"}"#)),
            ("DELETE", "/v1/dns", Some(r#"{"name":"-web"}"#)),
            ("GET", "/v1/dns/lookup", None),
            ("GET", "/v1/dns/lookup?name=", None),
            ("GET", "/v1/dns/lookup?name=a%20b", None),
            ("GET", "/v1/dns/lookup?name=%zz", None),
        ] {
            let (code, resp) = http(&sock, method, uri, body).await;
            assert_eq!(code, 400, "{method} {uri} {body:?} -> {resp}");
            assert!(!error_of(&resp).is_empty());
        }
        assert_eq!(log.lock().unwrap().len(), before, "a bad request reached the daemon");
        assert_eq!(http(&sock, "PUT", "/v1/dns", None).await.0, 405);

        stop_tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn data_plane_gone_is_503() {
        let dir = TempDir::new("gone");
        let sock = dir.0.join("weavers.sock");
        let listener = bind(&sock).unwrap();
        let (tx, rx) = mpsc::channel::<Command>(1);
        drop(rx);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, tx, async {
            let _ = stop_rx.await;
        }));
        let (code, body) = http(&sock, "GET", "/v1/status", None).await;
        assert_eq!(code, 503);
        assert!(error_of(&body).contains("data plane"));
        stop_tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn socket_file_modes_and_stale_sockets() {
        let dir = TempDir::new("bind");
        let run = dir.0.join("run");
        let sock = run.join("weavers.sock");

        let listener = bind(&sock).unwrap();
        let dir_mode = std::fs::metadata(&run).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        let meta = std::fs::symlink_metadata(&sock).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);

        // Somebody answers: a second daemon must not take the socket over.
        let err = bind(&sock).unwrap_err().to_string();
        assert!(err.contains("another daemon"), "{err}");
        assert!(sock.exists());

        // A crash leaves the file with nobody behind it: it is replaced.
        drop(listener);
        assert!(sock.exists());
        let listener = bind(&sock).unwrap();
        drop(listener);

        // Never remove something that is not a socket.
        std::fs::remove_file(&sock).unwrap();
        std::fs::write(&sock, b"precious").unwrap();
        let err = bind(&sock).unwrap_err().to_string();
        assert!(err.contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&sock).unwrap(), b"precious");
    }
}
