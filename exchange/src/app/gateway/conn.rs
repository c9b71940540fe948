//! One customer's TCP connection, driven by the gateway's event loop
//! ([`super::io`]): login, then frames in (handed to the core at once) and
//! messages out (encoded into the connection's buffer and written once per
//! loop turn), heartbeats both ways.
//!
//! No task, channel or timer per connection: at 10,000 sessions those cost
//! more than the orders did (a wake-up per message each way and four timer
//! ticks a second per connection). The loop sweeps every connection for
//! heartbeats and timeouts four times a second instead.
//!
//! Anything malformed closes the connection. A customer silent for
//! [`IDLE_TIMEOUT`] is disconnected, one that does not log in within
//! [`LOGIN_TIMEOUT`] too, and one that does not read its messages (more
//! than [`OUT_LIMIT`] bytes waiting) is disconnected as slow.

use super::core::Core;
use super::limits::Ticket;
use super::login::Logins;
use crate::types::SessionId;
use crate::wire::oe::{self, LoginReject, OeMessage};
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a connection may stay silent (no frame at all) before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new connection has to log in.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// A heartbeat goes out after this long without other traffic.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Bytes waiting for a customer that does not read fast enough; past that
/// the gateway disconnects it (its orders are still answered to the
/// engine's satisfaction: the acks log and resends do not depend on it).
pub const OUT_LIMIT: usize = 4 << 20;
/// Bytes read from one connection per loop turn, at most (one busy
/// customer must not hold up the others); the rest is read next turn.
pub const READ_BUDGET: usize = 64 << 10;

/// What a connection tells the core.
#[derive(Debug)]
pub enum Event {
    /// A customer logged in; the core answers (LoginAccepted first) in
    /// [`Core::replies`].
    Login {
        /// Its session.
        session: SessionId,
        /// The connection's number.
        conn: u64,
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

/// What became of a connection after something happened on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Still open.
    Open,
    /// Still open, with more to read than this turn's budget.
    MoreToRead,
    /// To be closed now.
    Close,
}

/// One customer connection.
pub struct Conn {
    /// Its number (also its token in the poll).
    pub id: u64,
    /// The socket.
    pub stream: mio::net::TcpStream,
    /// Its place under the connection limits (given back when dropped).
    ticket: Ticket,
    /// Its session, once logged in.
    pub session: Option<SessionId>,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    /// How much of `wbuf` is written.
    wpos: usize,
    opened: Instant,
    last_read: Instant,
    last_write: Instant,
    /// Registered for writability too (a write did not finish).
    pub want_write: bool,
    /// Close once what is queued is written (a refused login).
    closing: bool,
    /// Queued to be written this turn.
    pub dirty: bool,
}

impl Conn {
    /// A connection just accepted.
    pub fn new(id: u64, stream: mio::net::TcpStream, ticket: Ticket, now: Instant) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn {
            id,
            stream,
            ticket,
            session: None,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            opened: now,
            last_read: now,
            last_write: now,
            want_write: false,
            closing: false,
            dirty: false,
        }
    }

    /// Queues a message for the customer; false when the customer is too
    /// far behind (the connection must be closed as slow).
    pub fn queue(&mut self, m: &OeMessage) -> bool {
        if self.wbuf.len() - self.wpos > OUT_LIMIT {
            return false;
        }
        oe::encode_frame(m, &mut self.wbuf);
        self.dirty = true;
        true
    }

    /// Writes what is queued; `Close` when the socket failed or a closing
    /// connection has said its last word. Leaves `want_write` set when the
    /// socket is full.
    pub fn flush(&mut self, now: Instant) -> State {
        self.dirty = false;
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return State::Close,
                Ok(n) => {
                    self.wpos += n;
                    self.last_write = now;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.want_write = true;
                    return State::Open;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return State::Close,
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        self.want_write = false;
        if self.closing {
            State::Close
        } else {
            State::Open
        }
    }

    /// Reads what the socket has (up to [`READ_BUDGET`]) and acts on every
    /// whole frame: a login is checked here, requests go to `core`.
    ///
    /// A read shorter than `scratch` emptied the socket, so it is not
    /// read again to hear `WouldBlock` (new bytes make a new edge-triggered
    /// event), unless `to_the_end`: the peer closed or the socket failed,
    /// and only reading on finds that out.
    pub fn on_readable(
        &mut self,
        ctx: &ConnCtx,
        core: &mut Core,
        scratch: &mut [u8],
        now: Instant,
        to_the_end: bool,
    ) -> State {
        if self.closing {
            return State::Open;
        }
        let mut budget = READ_BUDGET;
        loop {
            let n = match self.stream.read(scratch) {
                Ok(0) => return State::Close,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return State::Open,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return State::Close,
            };
            self.last_read = now;
            self.rbuf.extend_from_slice(&scratch[..n]);
            let mut used = 0;
            let mut state = State::Open;
            loop {
                match oe::decode_frame(&self.rbuf[used..]) {
                    Ok(Some((m, len))) => {
                        used += len;
                        if self.on_frame(m, ctx, core) == State::Close {
                            state = State::Close;
                            break;
                        }
                        if self.closing {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        ctx.stats.malformed.fetch_add(1, Relaxed);
                        state = State::Close;
                        break;
                    }
                }
            }
            self.rbuf.drain(..used);
            if state == State::Close || self.closing {
                return state;
            }
            if n < scratch.len() && !to_the_end {
                return State::Open;
            }
            budget = budget.saturating_sub(n);
            if budget == 0 {
                return State::MoreToRead;
            }
        }
    }

    fn on_frame(&mut self, m: OeMessage, ctx: &ConnCtx, core: &mut Core) -> State {
        let stats = &ctx.stats;
        let Some(session) = self.session else {
            let OeMessage::Login { user, password } = m else {
                stats.malformed.fetch_add(1, Relaxed);
                return State::Close;
            };
            if !self.ticket.may_log_in() {
                self.refuse(LoginReject::Unavailable, &stats.logins_throttled);
                return State::Open;
            }
            match ctx.logins.check(ctx.gw, &user, &password) {
                Ok(session) => {
                    self.session = Some(session);
                    core.on_event(Event::Login { session, conn: self.id });
                }
                Err(r) => {
                    self.ticket.login_failed();
                    self.refuse(r, &stats.logins_refused);
                }
            }
            return State::Open;
        };
        match m {
            OeMessage::Heartbeat => State::Open,
            msg @ (OeMessage::Enter(_) | OeMessage::Cancel { .. } | OeMessage::Reduce { .. }) => {
                core.on_event(Event::Request { session, conn: self.id, msg });
                State::Open
            }
            _ => {
                stats.malformed.fetch_add(1, Relaxed);
                State::Close
            }
        }
    }

    fn refuse(&mut self, why: LoginReject, counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
        self.queue(&OeMessage::LoginRejected(why));
        self.closing = true;
    }

    /// The periodic look (a few times a second): `Close` when the customer
    /// has been silent too long, has not logged in in time, or cannot be
    /// told goodbye; a heartbeat queued when nothing went out for a while.
    pub fn sweep(&mut self, now: Instant) -> State {
        if self.session.is_none() || self.closing {
            let limit = if self.closing { Duration::from_secs(1) } else { LOGIN_TIMEOUT };
            let since = if self.closing { self.last_read } else { self.opened };
            return if now.duration_since(since) > limit { State::Close } else { State::Open };
        }
        if now.duration_since(self.last_read) > IDLE_TIMEOUT {
            return State::Close;
        }
        if self.wbuf.is_empty() && now.duration_since(self.last_write) >= HEARTBEAT {
            self.queue(&OeMessage::Heartbeat);
            // Counted as written now: one heartbeat per quiet second, even if it waits.
            self.last_write = now;
        }
        State::Open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::gateway::limits::{Admission, Limits};
    use crate::app::gateway::{pad_password, user_name};
    use crate::auth::RootKey;
    use crate::symbols::SymbolTable;
    use std::net::{TcpListener, TcpStream};
    use std::sync::Mutex;

    /// A connection on loopback: the gateway's end as a [`Conn`], the customer's as a blocking stream.
    fn pair(adm: &Arc<Mutex<Admission>>) -> (Conn, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let customer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, peer) = l.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        let ticket = Ticket::take(adm, peer.ip()).unwrap();
        (Conn::new(7, mio::net::TcpStream::from_std(s), ticket, Instant::now()), customer)
    }

    fn setup() -> (ConnCtx, Core, Arc<Mutex<Admission>>, String) {
        let (logins, pws) = Logins::generate([1]);
        let ctx = ConnCtx { gw: 1, logins, stats: Arc::default() };
        let t = SymbolTable::shipped();
        let core = Core::new(
            1,
            &t,
            &[],
            Duration::from_secs(1),
            None,
            RootKey::from_bytes([1; 32]),
            "10.0.0.1:1".parse().unwrap(),
        );
        let limits = Limits {
            max_connections: 10,
            max_per_source: 10,
            max_failures: 2,
            failure_window: Duration::from_secs(60),
        };
        (ctx, core, Arc::new(Mutex::new(Admission::new(limits))), pws[0].1.clone())
    }

    fn send(s: &mut TcpStream, m: &OeMessage) {
        let mut b = Vec::new();
        oe::encode_frame(m, &mut b);
        s.write_all(&b).unwrap();
    }

    /// Reads until `c` has taken every byte the customer sent (or a state other than Open).
    fn read_all(c: &mut Conn, ctx: &ConnCtx, core: &mut Core) -> State {
        let mut scratch = vec![0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let st = c.on_readable(ctx, core, &mut scratch, Instant::now(), true);
            if st != State::Open || c.session.is_some() || c.closing || Instant::now() > deadline {
                return st;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn login(pw: &str) -> OeMessage {
        OeMessage::Login { user: user_name(1, 1), password: pad_password(pw).unwrap() }
    }

    #[test]
    fn a_login_reaches_the_core_and_a_wrong_one_is_answered_then_closed() {
        let (ctx, mut core, adm, pw) = setup();
        let (mut c, mut customer) = pair(&adm);
        send(&mut customer, &login(&pw));
        assert_eq!(read_all(&mut c, &ctx, &mut core), State::Open);
        let session = c.session.expect("logged in");
        assert!(matches!(core.replies[..], [(7, OeMessage::LoginAccepted { session: s })] if s == session));

        let (mut c, mut customer) = pair(&adm);
        send(&mut customer, &login("not the password"));
        assert_eq!(read_all(&mut c, &ctx, &mut core), State::Open);
        assert!(c.session.is_none() && c.closing);
        assert_eq!(c.flush(Instant::now()), State::Close, "said its last word");
        customer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 64];
        let n = customer.read(&mut b).unwrap();
        assert!(matches!(oe::decode_frame(&b[..n]), Ok(Some((OeMessage::LoginRejected(_), _)))));
        assert_eq!(ctx.stats.logins_refused.load(Relaxed), 1);
    }

    #[test]
    fn garbage_closes_and_silence_times_out() {
        let (ctx, mut core, adm, pw) = setup();
        let (mut c, mut customer) = pair(&adm);
        send(&mut customer, &OeMessage::Heartbeat);
        assert_eq!(read_all(&mut c, &ctx, &mut core), State::Close, "anything but a login first");
        assert_eq!(ctx.stats.malformed.load(Relaxed), 1);

        let (mut c, _customer) = pair(&adm);
        let now = Instant::now();
        assert_eq!(c.sweep(now), State::Open);
        assert_eq!(c.sweep(now + LOGIN_TIMEOUT + Duration::from_secs(1)), State::Close, "no login in time");

        let (mut c, mut customer) = pair(&adm);
        send(&mut customer, &login(&pw));
        read_all(&mut c, &ctx, &mut core);
        let now = Instant::now();
        assert_eq!(c.sweep(now + HEARTBEAT), State::Open);
        assert!(c.dirty, "a heartbeat queued after a quiet second");
        assert_eq!(c.sweep(now + IDLE_TIMEOUT + Duration::from_secs(1)), State::Close, "silent too long");
    }

    #[test]
    fn a_customer_that_does_not_read_is_cut_off() {
        let (ctx, mut core, adm, pw) = setup();
        let (mut c, mut customer) = pair(&adm);
        send(&mut customer, &login(&pw));
        read_all(&mut c, &ctx, &mut core);
        let m = OeMessage::Heartbeat;
        let mut queued = 0usize;
        // The socket buffers fill, then the queue: bounded, then refused.
        while c.queue(&m) {
            queued += 1;
            assert!(queued < 10 * OUT_LIMIT, "never refused");
            if queued.is_multiple_of(1024) {
                assert_eq!(c.flush(Instant::now()), State::Open);
            }
        }
        assert!(c.want_write, "the socket is full");
        assert!(c.wbuf.len() - c.wpos > OUT_LIMIT);
    }
}
