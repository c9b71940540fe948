//! One simulated customer: its connection (logged in by [`login_all`]),
//! its schedule, the orders it waits answers for. Driven by the load
//! generator's event loop (`mod.rs`); no task or timer of its own.

use super::gen::{intended_offset, OrderGen};
use super::results::Stats;
use crate::wire::oe::{self, OeMessage};
use crate::RequestKind;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// How long to wait for answers once sending stops.
pub const DRAIN: Duration = Duration::from_secs(2);
/// Sessions connected and logging in at once.
const LOGIN_BATCH: usize = 256;

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

/// One logged-in session.
pub struct Session {
    /// Its number (from 0): its phase in the schedule.
    pub i: usize,
    /// The socket (non-blocking once logged in).
    pub stream: mio::net::TcpStream,
    gen: OrderGen,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    outstanding: HashMap<u64, Instant>,
    /// Orders sent so far.
    pub k: u64,
    last_write: Instant,
    /// Registered for writability (a write did not finish).
    pub want_write: bool,
    /// The connection ended.
    pub gone: bool,
}

fn connect(addr: SocketAddr) -> Option<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut wait = Duration::from_millis(20);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
            Ok(s) => return Some(s),
            _ if Instant::now() >= deadline => return None,
            _ => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(500));
            }
        }
    }
}

/// Reads one frame from a blocking socket (its read timeout set).
fn read_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<OeMessage> {
    let mut tmp = [0u8; 256];
    loop {
        match oe::decode_frame(buf) {
            Ok(Some((m, used))) => {
                buf.drain(..used);
                return Some(m);
            }
            Ok(None) => {}
            Err(_) => return None,
        }
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

/// Connects and logs in every user (`(user, padded password, generator)`,
/// session `i` the i-th), a batch at a time (connect and send the logins,
/// then read the answers); returns the sessions that got in. Failures are
/// counted in `stats` and told on stderr.
pub fn login_all(plan: &Plan, users: Vec<([u8; 8], [u8; 16], OrderGen)>, stats: &Stats) -> Vec<Session> {
    let mut sessions = Vec::with_capacity(users.len());
    let mut users = users.into_iter().enumerate().peekable();
    while users.peek().is_some() {
        let mut batch = Vec::with_capacity(LOGIN_BATCH);
        for (i, (user, password, gen)) in users.by_ref().take(LOGIN_BATCH) {
            let mut out = Vec::with_capacity(64);
            oe::encode_frame(&OeMessage::Login { user, password }, &mut out);
            let stream = connect(plan.gateway).and_then(|mut s| {
                let _ = s.set_nodelay(true);
                s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
                s.write_all(&out).ok()?;
                Some(s)
            });
            match stream {
                Some(s) => batch.push((i, user, s, gen)),
                None => {
                    eprintln!("aex customers: {} could not connect", String::from_utf8_lossy(&user));
                    stats.login_failures.fetch_add(1, Relaxed);
                }
            }
        }
        for (i, user, mut s, gen) in batch {
            let mut rbuf = Vec::new();
            match read_frame(&mut s, &mut rbuf) {
                Some(OeMessage::LoginAccepted { .. }) if s.set_nonblocking(true).is_ok() => {
                    stats.logged_in.fetch_add(1, Relaxed);
                    let now = Instant::now();
                    sessions.push(Session {
                        i,
                        stream: mio::net::TcpStream::from_std(s),
                        gen,
                        rbuf,
                        wbuf: Vec::with_capacity(64),
                        outstanding: HashMap::new(),
                        k: 0,
                        last_write: now,
                        want_write: false,
                        gone: false,
                    });
                }
                other => {
                    eprintln!("aex customers: {} login failed: {other:?}", String::from_utf8_lossy(&user));
                    stats.login_failures.fetch_add(1, Relaxed);
                }
            }
        }
    }
    sessions
}

impl Session {
    /// When this session sends its next order.
    pub fn due(&self, plan: &Plan, start: Instant) -> Instant {
        start + intended_offset(self.i, plan.sessions, plan.rate, self.k)
    }

    /// Sends the next order (intended for `intended`) and writes it.
    pub fn send_order(&mut self, plan: &Plan, intended: Instant, stats: &Stats, now: Instant) {
        let client_id = plan.first_client_id + self.k;
        let order = self.gen.next(client_id);
        oe::encode_frame(&OeMessage::Enter(order), &mut self.wbuf);
        self.outstanding.insert(client_id, intended);
        stats.sent.fetch_add(1, Relaxed);
        self.k += 1;
        self.flush(stats, now);
    }

    /// A heartbeat when nothing went out for a second.
    pub fn heartbeat_if_quiet(&mut self, stats: &Stats, now: Instant) {
        if self.wbuf.is_empty() && now.duration_since(self.last_write) >= Duration::from_secs(1) {
            oe::encode_frame(&OeMessage::Heartbeat, &mut self.wbuf);
            self.flush(stats, now);
        }
    }

    /// Writes what is queued, as far as the socket takes it.
    pub fn flush(&mut self, stats: &Stats, now: Instant) {
        while !self.wbuf.is_empty() && !self.gone {
            match self.stream.write(&self.wbuf) {
                Ok(n) if n > 0 => {
                    self.wbuf.drain(..n);
                    self.last_write = now;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.want_write = true;
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                _ => self.lost(stats, false),
            }
        }
        self.want_write = false;
    }

    fn lost(&mut self, stats: &Stats, stopping: bool) {
        if !self.gone && !stopping {
            stats.disconnects.fetch_add(1, Relaxed);
        }
        self.gone = true;
    }

    /// Reads every answer the socket has and times the acknowledgements. A
    /// read shorter than `scratch` emptied the socket: it is not read again
    /// to hear `WouldBlock` (new bytes make a new edge-triggered event),
    /// unless `to_the_end` (the peer closed: only reading on finds out).
    pub fn on_readable(&mut self, stats: &Stats, scratch: &mut [u8], stopping: bool, to_the_end: bool) {
        while !self.gone {
            let n = match self.stream.read(scratch) {
                Ok(0) => return self.lost(stats, stopping),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return self.lost(stats, stopping),
            };
            self.rbuf.extend_from_slice(&scratch[..n]);
            let now = Instant::now();
            let drained = n < scratch.len() && !to_the_end;
            let mut used = 0;
            loop {
                match oe::decode_frame(&self.rbuf[used..]) {
                    Ok(Some((m, len))) => {
                        used += len;
                        self.on_message(m, stats, now);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        self.rbuf.clear();
                        return self.lost(stats, stopping);
                    }
                }
            }
            self.rbuf.drain(..used);
            if drained {
                return;
            }
        }
    }

    fn on_message(&mut self, m: OeMessage, stats: &Stats, now: Instant) {
        match m {
            OeMessage::Accepted { ack, .. } => {
                if let Some(t) = self.outstanding.remove(&ack.order.client_id) {
                    stats.record(now.saturating_duration_since(t));
                    stats.acked.fetch_add(1, Relaxed);
                }
            }
            OeMessage::Rejected { client_id, request: RequestKind::Enter, .. } => {
                if let Some(t) = self.outstanding.remove(&client_id) {
                    stats.record(now.saturating_duration_since(t));
                    stats.rejects.fetch_add(1, Relaxed);
                }
            }
            OeMessage::Executed(_) => {
                stats.executions.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }

    /// Whether every order sent has its answer (or the connection is gone).
    pub fn settled(&self) -> bool {
        self.gone || self.outstanding.is_empty()
    }
}
