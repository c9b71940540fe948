//! One customer's TCP connection: login, then frames in (requests to the
//! core) and messages out (from the core), heartbeats both ways.
//!
//! Anything malformed closes the connection. A customer silent for
//! [`IDLE_TIMEOUT`] is disconnected. The queue to the core is bounded
//! ([`EVENT_QUEUE`]): when it is full a login is refused
//! (`LoginRejected(Unavailable)`) and a request is rejected at once
//! (`GatewayBusy`), never queued without bound.

use super::limits::Ticket;
use super::login::Logins;
use crate::events::{RejectReason, RequestKind};
use crate::types::SessionId;
use crate::wire::oe::{self, LoginReject, OeMessage};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a connection may stay silent (no frame at all) before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new connection has to log in.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// A heartbeat goes out after this long without other traffic.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Messages queued for a customer that does not read fast enough; past
/// that the gateway disconnects it (its orders are still answered to the
/// engine's satisfaction: the acks log and resends do not depend on it).
pub const OUT_QUEUE: usize = 65_536;
/// Events queued from all connections to the core, at most.
pub const EVENT_QUEUE: usize = 65_536;

/// What a connection tells the core.
#[derive(Debug)]
pub enum Event {
    /// A customer logged in; the core answers through `tx` (LoginAccepted
    /// first). Dropping `tx` closes the connection once what is queued is written.
    Login {
        /// Its session.
        session: SessionId,
        /// The connection's number.
        conn: u64,
        /// Messages for the customer.
        tx: mpsc::Sender<OeMessage>,
    },
    /// An order, cancel or reduce.
    Request {
        /// Its session.
        session: SessionId,
        /// The connection's number.
        conn: u64,
        /// The message (Enter, Cancel or Reduce).
        msg: OeMessage,
    },
    /// The connection ended.
    Gone {
        /// Its session.
        session: SessionId,
        /// The connection's number.
        conn: u64,
    },
}

/// What the connections count themselves (the core adds them to its status).
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Connections that sent something malformed (and were closed).
    pub malformed: AtomicU64,
    /// Logins refused (unknown user, wrong password).
    pub logins_refused: AtomicU64,
    /// Logins refused unchecked: their source failed too often lately.
    pub logins_throttled: AtomicU64,
    /// Connections closed at once by the connection limits.
    pub connections_refused: AtomicU64,
    /// Logins and requests refused because the queue to the core was full.
    pub busy_rejects: AtomicU64,
}

/// What every connection needs to know.
#[derive(Debug)]
pub struct ConnCtx {
    /// The gateway's id.
    pub gw: u8,
    /// Who may log in.
    pub logins: Logins,
    /// The counters.
    pub stats: Arc<ConnStats>,
}

enum Read {
    Frame(OeMessage),
    Eof,
    Malformed,
}

async fn refuse_login(wr: &mut tokio::net::tcp::OwnedWriteHalf, why: LoginReject, counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
    let mut out = Vec::new();
    oe::encode_frame(&OeMessage::LoginRejected(why), &mut out);
    let _ = wr.write_all(&out).await;
}

/// The reject of a request the core could not take (its queue was full).
fn busy(msg: &OeMessage) -> Option<OeMessage> {
    let (client_id, request) = match *msg {
        OeMessage::Enter(o) => (o.client_id, RequestKind::Enter),
        OeMessage::Cancel { client_id } => (client_id, RequestKind::Cancel),
        OeMessage::Reduce { client_id, .. } => (client_id, RequestKind::Reduce),
        _ => return None,
    };
    let time = crate::auth::unix_ns();
    Some(OeMessage::Rejected { client_id, request, reason: RejectReason::GatewayBusy, time })
}

/// Serves one admitted connection (`ticket`: its place under the limits)
/// until it ends.
pub async fn serve(stream: TcpStream, conn: u64, ticket: Ticket, ctx: Arc<ConnCtx>, events: mpsc::Sender<Event>) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut reader = FrameReader { buf: Vec::with_capacity(4096) };
    let first = tokio::time::timeout(LOGIN_TIMEOUT, reader.next(&mut rd)).await;
    let stats = &ctx.stats;
    let session = match first {
        Ok(Read::Frame(OeMessage::Login { user, password })) => {
            if !ticket.may_log_in() {
                return refuse_login(&mut wr, LoginReject::Unavailable, &stats.logins_throttled).await;
            }
            match ctx.logins.check(ctx.gw, &user, &password) {
                Ok(s) => s,
                Err(r) => {
                    ticket.login_failed();
                    return refuse_login(&mut wr, r, &stats.logins_refused).await;
                }
            }
        }
        Ok(Read::Eof) | Err(_) => return,
        Ok(_) => {
            stats.malformed.fetch_add(1, Relaxed);
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel(OUT_QUEUE);
    match events.try_send(Event::Login { session, conn, tx }) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            return refuse_login(&mut wr, LoginReject::Unavailable, &stats.busy_rejects).await;
        }
        Err(mpsc::error::TrySendError::Closed(_)) => return,
    }
    let mut last_read = Instant::now();
    let mut last_write = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut out = Vec::with_capacity(4096);
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { break };
                out.clear();
                oe::encode_frame(&m, &mut out);
                while let Ok(m) = rx.try_recv() {
                    oe::encode_frame(&m, &mut out);
                    if out.len() > 64 * 1024 {
                        break;
                    }
                }
                if wr.write_all(&out).await.is_err() {
                    break;
                }
                last_write = Instant::now();
            }
            r = reader.next(&mut rd) => {
                last_read = Instant::now();
                match r {
                    Read::Frame(OeMessage::Heartbeat) => {}
                    Read::Frame(msg @ (OeMessage::Enter(_) | OeMessage::Cancel { .. } | OeMessage::Reduce { .. })) => {
                        match events.try_send(Event::Request { session, conn, msg }) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(Event::Request { msg, .. })) => {
                                stats.busy_rejects.fetch_add(1, Relaxed);
                                out.clear();
                                if let Some(r) = busy(&msg) {
                                    oe::encode_frame(&r, &mut out);
                                }
                                if wr.write_all(&out).await.is_err() {
                                    break;
                                }
                                last_write = Instant::now();
                            }
                            Err(_) => break,
                        }
                    }
                    Read::Frame(_) | Read::Malformed => {
                        stats.malformed.fetch_add(1, Relaxed);
                        break;
                    }
                    Read::Eof => break,
                }
            }
            _ = tick.tick() => {
                if last_read.elapsed() > IDLE_TIMEOUT {
                    break;
                }
                if last_write.elapsed() >= HEARTBEAT {
                    out.clear();
                    oe::encode_frame(&OeMessage::Heartbeat, &mut out);
                    if wr.write_all(&out).await.is_err() {
                        break;
                    }
                    last_write = Instant::now();
                }
            }
        }
    }
    // Waits for room: the core must hear of every end.
    let _ = events.send(Event::Gone { session, conn }).await;
    drop(ticket);
}

/// Frames off a socket, cancel-safe: bytes read are kept in `buf` even when
/// the future is dropped mid-read.
struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    async fn next(&mut self, sock: &mut tokio::net::tcp::OwnedReadHalf) -> Read {
        loop {
            match oe::decode_frame(&self.buf) {
                Ok(Some((m, used))) => {
                    self.buf.drain(..used);
                    return Read::Frame(m);
                }
                Ok(None) => {}
                Err(_) => return Read::Malformed,
            }
            // `read_buf` is cancel safe: either it read into buf or nothing happened.
            match sock.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return Read::Eof,
                Ok(_) => {}
            }
        }
    }
}
