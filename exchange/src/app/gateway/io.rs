//! The gateway's event loop: one thread, one `epoll` (mio) for the
//! listener, the unicast UDP socket and every customer connection.
//!
//! A loop turn reads whatever is ready (customer frames go straight into
//! the core, datagrams too), then writes once: the orders packets the turn
//! produced (one per stream with news) and, per customer with messages,
//! one `write` of all of them. Timers are the loop's own: the core's tick
//! every 10 ms, a sweep of the connections (heartbeats, timeouts) every
//! 250 ms, status and state files every second.

use super::conn::{ConnCtx, Event, State};
use super::core::Core;
use super::limits::{Admission, Ticket};
use super::{write_state, write_status, Args};
use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
const UDP: Token = Token(1);
/// Connection numbers (and tokens) start here.
const FIRST_CONN: u64 = 2;
/// How often the core's timers run.
const TICK: Duration = Duration::from_millis(10);
/// How often every connection is looked at (heartbeats, timeouts).
const SWEEP: Duration = Duration::from_millis(250);
/// Datagrams read per loop turn, at most (the rest next turn).
const UDP_BUDGET: usize = 4096;

/// Sends one datagram, waiting a little when the send buffer is full.
fn send(udp: &UdpSocket, d: &[u8], to: SocketAddr) {
    for _ in 0..50 {
        match udp.send_to(d, to) {
            Ok(_) => return,
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_micros(100)),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("aex gateway: sending to {to}: {e}");
                return;
            }
        }
    }
    eprintln!("aex gateway: sending to {to}: the socket stayed full");
}

struct Conns {
    map: HashMap<u64, super::conn::Conn>,
    /// Connections with more to read than their budget last turn.
    again: Vec<u64>,
    /// Connections with messages queued this turn.
    dirty: Vec<u64>,
}

impl Conns {
    /// Closes connection `id`: the core hears of its end.
    fn close(&mut self, poll: &Poll, core: &mut Core, id: u64) {
        if let Some(mut c) = self.map.remove(&id) {
            let _ = poll.registry().deregister(&mut c.stream);
            if let Some(session) = c.session {
                core.on_event(Event::Gone { session, conn: id });
            }
        }
    }

    fn after(&mut self, poll: &Poll, core: &mut Core, id: u64, st: State) {
        match st {
            State::Open => {}
            State::MoreToRead => self.again.push(id),
            State::Close => self.close(poll, core, id),
        }
    }

    /// Hands the core's messages to their connections and writes every
    /// connection that has some (one write each).
    fn write_out(&mut self, poll: &Poll, core: &mut Core, now: Instant) {
        let mut slow = Vec::new();
        for (id, m) in core.replies.drain(..) {
            let Some(c) = self.map.get_mut(&id) else {
                core.counters.undeliverable += 1;
                continue;
            };
            if !c.dirty {
                self.dirty.push(id);
            }
            if !c.queue(&m) {
                slow.push(id);
            }
        }
        for id in slow {
            if self.map.contains_key(&id) {
                core.counters.slow_disconnects += 1;
                core.counters.undeliverable += 1;
                self.close(poll, core, id);
            }
        }
        for id in std::mem::take(&mut core.replaced) {
            self.close(poll, core, id);
        }
        for id in std::mem::take(&mut self.dirty) {
            self.flush(poll, core, id, now);
        }
    }

    fn flush(&mut self, poll: &Poll, core: &mut Core, id: u64, now: Instant) {
        let Some(c) = self.map.get_mut(&id) else { return };
        let had = c.want_write;
        let st = c.flush(now);
        if st == State::Open && c.want_write != had {
            let interest = if c.want_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            if poll.registry().reregister(&mut c.stream, Token(id as usize), interest).is_err() {
                return self.close(poll, core, id);
            }
        }
        self.after(poll, core, id, st);
    }
}

/// Runs the loop until SIGINT or SIGTERM.
pub fn serve(args: &Args, ctx: ConnCtx, udp: std::net::UdpSocket, mut core: Core) -> anyhow::Result<()> {
    use anyhow::Context;
    crate::app::signals::catch();
    let mut poll = Poll::new()?;
    let mut udp = UdpSocket::from_std(udp);
    let mut listener = TcpListener::bind(args.listen).with_context(|| format!("listening on {}", args.listen))?;
    eprintln!("aex gateway {}: customers on {}, orders from {}", args.id, listener.local_addr()?, udp.local_addr()?);
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    poll.registry().register(&mut udp, UDP, Interest::READABLE)?;
    let admission = Arc::new(Mutex::new(Admission::new(super::limits::Limits {
        max_connections: args.max_connections,
        max_per_source: args.max_connections_per_source,
        max_failures: args.max_login_failures,
        failure_window: Duration::from_secs(60),
    })));
    let mut conns = Conns { map: HashMap::new(), again: Vec::new(), dirty: Vec::new() };
    let mut next_conn = FIRST_CONN;
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 65_536];
    let (mut accept_again, mut udp_again) = (false, false);
    // Out of descriptors: when to try accepting again.
    let mut accept_retry: Option<Instant> = None;
    let start = Instant::now();
    let (mut next_tick, mut next_sweep) = (start + TICK, start + SWEEP);
    let (mut last_hb, mut last_acks, mut last_status) = (start, start, start);
    while !crate::app::signals::stopped() {
        let busy = !conns.again.is_empty() || udp_again;
        let timeout = if busy { Duration::ZERO } else { next_tick.saturating_duration_since(Instant::now()) };
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("waiting for events"),
        }
        let now = Instant::now();
        // (connection, read to the end: it closed or failed)
        let mut readable: Vec<(u64, bool)> = conns.again.drain(..).map(|id| (id, false)).collect();
        for ev in events.iter() {
            match ev.token() {
                LISTENER => accept_again = true,
                UDP => udp_again = true,
                Token(t) => {
                    let id = t as u64;
                    if ev.is_writable() {
                        conns.flush(&poll, &mut core, id, now);
                    }
                    let closed = ev.is_read_closed() || ev.is_error();
                    if ev.is_readable() || closed {
                        readable.push((id, closed));
                    }
                }
            }
        }
        if accept_retry.is_some_and(|t| now >= t) {
            accept_retry = None;
            accept_again = true;
        }
        if accept_again {
            accept_again = false;
            if !accept(&poll, &mut listener, &admission, &ctx, &mut conns, &mut next_conn, now) {
                accept_retry = Some(now + Duration::from_millis(100));
            }
        }
        if udp_again {
            udp_again = false;
            for n in 0.. {
                if n == UDP_BUDGET {
                    udp_again = true;
                    break;
                }
                match udp.recv_from(&mut scratch) {
                    Ok((len, from)) => core.on_datagram(&scratch[..len], from),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        for (id, to_the_end) in readable {
            let Some(c) = conns.map.get_mut(&id) else { continue };
            let was_dirty = c.dirty;
            let st = c.on_readable(&ctx, &mut core, &mut scratch, now, to_the_end);
            if c.dirty && !was_dirty {
                conns.dirty.push(id);
            }
            conns.after(&poll, &mut core, id, st);
        }
        if now >= next_tick {
            next_tick = now + TICK;
            core.on_tick();
            if now.duration_since(last_hb) >= Duration::from_secs(1) {
                last_hb = now;
                core.heartbeats();
            }
            if now.duration_since(last_acks) >= Duration::from_millis(100) {
                last_acks = now;
                core.flush_acks();
            }
            if now.duration_since(last_status) >= Duration::from_secs(1) {
                last_status = now;
                write_status(args.status.as_deref(), &core);
                write_state(args.state.as_deref(), &core);
            }
        }
        if now >= next_sweep {
            next_sweep = now + SWEEP;
            let mut closing = Vec::new();
            for (&id, c) in &mut conns.map {
                let was_dirty = c.dirty;
                match c.sweep(now) {
                    State::Close => closing.push(id),
                    _ if c.dirty && !was_dirty => conns.dirty.push(id),
                    _ => {}
                }
            }
            for id in closing {
                conns.close(&poll, &mut core, id);
            }
        }
        core.flush();
        for (d, to) in core.out.drain(..) {
            send(&udp, &d, to);
        }
        conns.write_out(&poll, &mut core, now);
    }
    core.flush_acks();
    write_status(args.status.as_deref(), &core);
    write_state(args.state.as_deref(), &core);
    eprintln!("aex gateway {}: stopped; {}", args.id, serde_json::to_string(&core.status())?);
    Ok(())
}

/// Accepts what the listener has; false when accepting failed (out of
/// descriptors and the like: try again a little later, do not spin).
fn accept(
    poll: &Poll,
    listener: &mut TcpListener,
    admission: &Arc<Mutex<Admission>>,
    ctx: &ConnCtx,
    conns: &mut Conns,
    next_conn: &mut u64,
    now: Instant,
) -> bool {
    loop {
        match listener.accept() {
            Ok((mut s, peer)) => match Ticket::take(admission, peer.ip()) {
                Ok(ticket) => {
                    let id = *next_conn;
                    *next_conn += 1;
                    if poll.registry().register(&mut s, Token(id as usize), Interest::READABLE).is_ok() {
                        conns.map.insert(id, super::conn::Conn::new(id, s, ticket, now));
                    }
                }
                // Closed at once (dropping the stream): counted.
                Err(_) => {
                    ctx.stats.connections_refused.fetch_add(1, Ordering::Relaxed);
                }
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("aex gateway: accept: {e}");
                return false;
            }
        }
    }
}
