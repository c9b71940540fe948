//! One simulated customer: connect, log in, send orders on schedule, time
//! the answers.

use super::gen::{intended_offset, OrderGen};
use super::results::Stats;
use crate::wire::oe::{self, OeMessage};
use crate::RequestKind;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long to wait for answers once sending stops.
pub const DRAIN: Duration = Duration::from_secs(2);

/// What every session shares.
#[derive(Debug)]
pub struct Plan {
    /// The gateway.
    pub gateway: SocketAddr,
    /// Orders a second per session.
    pub rate: f64,
    /// Number of sessions.
    pub sessions: usize,
    /// The first client order id of every session (ids then increase by 1).
    pub first_client_id: u64,
}

/// What the run tells sessions: None until the schedule starts, then its
/// start; `stop` becomes true when sending ends.
#[derive(Clone, Debug)]
pub struct Control {
    /// The common start of the schedule.
    pub start: watch::Receiver<Option<Instant>>,
    /// True once sending must stop.
    pub stop: watch::Receiver<bool>,
}

struct Frames {
    buf: Vec<u8>,
}

impl Frames {
    /// The next frame; None at end of stream or on garbage.
    async fn next(&mut self, rd: &mut OwnedReadHalf) -> Option<OeMessage> {
        loop {
            match oe::decode_frame(&self.buf) {
                Ok(Some((m, used))) => {
                    self.buf.drain(..used);
                    return Some(m);
                }
                Ok(None) => {}
                Err(_) => return None,
            }
            match rd.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }
}

async fn connect(addr: SocketAddr) -> Option<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut wait = Duration::from_millis(20);
    loop {
        match tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Some(s),
            _ if Instant::now() >= deadline => return None,
            _ => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(500));
            }
        }
    }
}

/// Runs session number `i` (from 0) as user `user` (with its
/// broker/dealer's padded `password`) until told to stop and its answers
/// are in (or [`DRAIN`] passed).
pub async fn run(
    i: usize,
    user: [u8; 8],
    password: [u8; 16],
    mut gen: OrderGen,
    plan: Arc<Plan>,
    stats: Arc<Stats>,
    mut ctl: Control,
) {
    let Some(stream) = connect(plan.gateway).await else {
        stats.login_failures.fetch_add(1, Relaxed);
        return;
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut frames = Frames { buf: Vec::with_capacity(4096) };
    let mut out = Vec::with_capacity(64);
    oe::encode_frame(&OeMessage::Login { user, password }, &mut out);
    let login = async {
        wr.write_all(&out).await.ok()?;
        frames.next(&mut rd).await
    };
    match tokio::time::timeout(Duration::from_secs(15), login).await {
        Ok(Some(OeMessage::LoginAccepted { .. })) => {
            stats.logged_in.fetch_add(1, Relaxed);
        }
        other => {
            eprintln!("aex customers: {} login failed: {other:?}", String::from_utf8_lossy(&user));
            stats.login_failures.fetch_add(1, Relaxed);
            return;
        }
    }
    // Wait for the common start (every session logged in, or 20 s passed:
    // shorter than the gateway's idle timeout, so no heartbeat is needed).
    let start = loop {
        if let Some(s) = *ctl.start.borrow_and_update() {
            break s;
        }
        if ctl.start.changed().await.is_err() {
            return;
        }
    };
    let mut outstanding: HashMap<u64, Instant> = HashMap::new();
    let mut k: u64 = 0;
    let mut next = start + intended_offset(i, plan.sessions, plan.rate, 0);
    let mut stopping: Option<Instant> = None;
    let mut last_write = Instant::now();
    let mut hb = tokio::time::interval(Duration::from_millis(250));
    loop {
        if stopping.is_some() && outstanding.is_empty() {
            break;
        }
        let drain_until = stopping.unwrap_or_else(Instant::now);
        tokio::select! {
            _ = tokio::time::sleep_until(next), if stopping.is_none() => {
                let client_id = plan.first_client_id + k;
                let order = gen.next(client_id);
                out.clear();
                oe::encode_frame(&OeMessage::Enter(order), &mut out);
                if wr.write_all(&out).await.is_err() {
                    stats.disconnects.fetch_add(1, Relaxed);
                    break;
                }
                last_write = Instant::now();
                outstanding.insert(client_id, next);
                stats.sent.fetch_add(1, Relaxed);
                k += 1;
                next = start + intended_offset(i, plan.sessions, plan.rate, k);
            }
            m = frames.next(&mut rd) => {
                let now = Instant::now();
                match m {
                    None => {
                        if stopping.is_none() {
                            stats.disconnects.fetch_add(1, Relaxed);
                        }
                        break;
                    }
                    Some(OeMessage::Accepted { ack, .. }) => {
                        if let Some(t) = outstanding.remove(&ack.order.client_id) {
                            stats.record(now.saturating_duration_since(t));
                            stats.acked.fetch_add(1, Relaxed);
                        }
                    }
                    Some(OeMessage::Rejected { client_id, request: RequestKind::Enter, .. }) => {
                        if let Some(t) = outstanding.remove(&client_id) {
                            stats.record(now.saturating_duration_since(t));
                            stats.rejects.fetch_add(1, Relaxed);
                        }
                    }
                    Some(OeMessage::Executed(_)) => {
                        stats.executions.fetch_add(1, Relaxed);
                    }
                    Some(_) => {}
                }
            }
            r = ctl.stop.changed(), if stopping.is_none() => {
                if r.is_err() || *ctl.stop.borrow() {
                    stopping = Some(Instant::now() + DRAIN);
                }
            }
            _ = tokio::time::sleep_until(drain_until), if stopping.is_some() => break,
            _ = hb.tick() => {
                if last_write.elapsed() >= Duration::from_secs(1) {
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
}
