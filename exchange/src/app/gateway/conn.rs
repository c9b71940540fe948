//! One customer's TCP connection: login, then frames in (requests to the
//! core) and messages out (from the core), heartbeats both ways.
//!
//! Anything malformed closes the connection. A customer silent for
//! [`IDLE_TIMEOUT`] is disconnected.

use super::login::check_login;
use crate::types::SessionId;
use crate::wire::oe::{self, OeMessage};
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
    /// A connection sent something malformed (and was closed).
    Malformed,
    /// A login was refused.
    LoginRefused,
}

/// What every connection needs to know.
#[derive(Debug)]
pub struct ConnCtx {
    /// The gateway's id.
    pub gw: u8,
    /// The password, padded as the login carries it.
    pub password: [u8; 16],
}

enum Read {
    Frame(OeMessage),
    Eof,
    Malformed,
}

/// Serves one connection until it ends.
pub async fn serve(stream: TcpStream, conn: u64, ctx: Arc<ConnCtx>, events: mpsc::UnboundedSender<Event>) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut reader = FrameReader { buf: Vec::with_capacity(4096) };
    let first = tokio::time::timeout(LOGIN_TIMEOUT, reader.next(&mut rd)).await;
    let session = match first {
        Ok(Read::Frame(OeMessage::Login { user, password })) => {
            match check_login(ctx.gw, &ctx.password, &user, &password) {
                Ok(s) => s,
                Err(r) => {
                    let mut out = Vec::new();
                    oe::encode_frame(&OeMessage::LoginRejected(r), &mut out);
                    let _ = wr.write_all(&out).await;
                    let _ = events.send(Event::LoginRefused);
                    return;
                }
            }
        }
        Ok(Read::Eof) | Err(_) => return,
        Ok(_) => {
            let _ = events.send(Event::Malformed);
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel(OUT_QUEUE);
    if events.send(Event::Login { session, conn, tx }).is_err() {
        return;
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
                        if events.send(Event::Request { session, conn, msg }).is_err() {
                            break;
                        }
                    }
                    Read::Frame(_) | Read::Malformed => {
                        let _ = events.send(Event::Malformed);
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
    let _ = events.send(Event::Gone { session, conn });
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
