//! The threads of the process and the channels between them.

use super::checkpoint::Checkpoints;
use super::durability::{self, Durability};
use super::ingress::{Action, Ingress};
use super::matcher::{now_ns, Matcher};
use super::publisher::{GatewayId, Publisher};
use super::stats::{self, Stats};
use crate::app::replicate::Progress;
use crate::events::{Input, Outputs, SequencedInput};
use crate::types::{Epoch, Seq};
use crate::wire::mold::ReRequest;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// What the publisher thread is told.
#[derive(Debug)]
pub enum PubEvent {
    /// A group commit: its inputs' outputs, in sequence, and the records
    /// durable now (one message, so the publisher wakes once per commit,
    /// not once per input for outputs it could not release yet).
    Committed(Vec<Outputs>, Seq),
    /// A gateway's address.
    Gateway(GatewayId, SocketAddr),
    /// A re-request from this address.
    ReRequest(SocketAddr, ReRequest),
    /// The replication's progress changed (DR's durable mark, fencing).
    DrProgress,
}

/// Synchronous replication as the publisher sees it: outputs are released
/// only up to DR's durable mark too, and a fence stops everything.
pub struct DrGate {
    /// The replication thread's progress.
    pub progress: Arc<Progress>,
    /// Called once when DR fences this primary (with the newer epoch).
    pub on_fenced: Box<dyn Fn(Epoch) + Send>,
}

/// Records the first fatal error and asks every thread to stop.
pub fn fail(stop: &AtomicBool, fatal: &Mutex<Option<String>>, msg: String) {
    let mut f = fatal.lock().unwrap_or_else(|p| p.into_inner());
    f.get_or_insert(msg);
    stop.store(true, Ordering::Relaxed);
}

/// A batch of sequenced inputs with their outputs, for the durability
/// stage (one channel message per ingress turn, not per input).
pub type Sequenced = Vec<(SequencedInput, Outputs)>;

/// Sequencing, on the ingress thread: the matcher, the checkpoints writer
/// and the channel to the durability stage. Inputs are stamped and applied
/// in the turn that read them, and the turn's records go on in one message,
/// so an order costs no thread hop between reading and matching.
pub struct Sequencer {
    /// The engine, stamping.
    pub matcher: Matcher,
    /// The checkpoints writer (`--checkpoints`).
    pub checkpoints: Option<Checkpoints>,
    /// To the durability stage.
    pub tx_rec: mpsc::Sender<Sequenced>,
}

impl Sequencer {
    /// Sequences `inputs` (in order) and hands them on; `Err` on a fatal
    /// error (the matcher refused an input, or the durability stage is
    /// gone).
    fn run(&mut self, inputs: impl Iterator<Item = Input>, stats: &Stats) -> Result<(), String> {
        let mut batch = Vec::new();
        for input in inputs {
            let (rec, out) = self.matcher.sequence(input, now_ns()).map_err(|e| format!("matcher: {e}"))?;
            stats::add(&stats.inputs, 1);
            stats::set(&stats.last_seq, rec.seq);
            if let Some(c) = self.checkpoints.as_mut() {
                if let Err(e) = c.after(self.matcher.engine(), rec.seq, rec.epoch) {
                    eprintln!("aex engine: writing a checkpoint: {e}; no more checkpoints");
                    self.checkpoints = None;
                }
            }
            batch.push((rec, out));
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.tx_rec.send(batch).map_err(|_| "the durability stage stopped".to_string())
    }
}

/// The durability thread's body: group commits, then the group's outputs
/// to the publisher.
pub fn durability_loop(
    d: &mut dyn Durability,
    rx: mpsc::Receiver<Sequenced>,
    tx_pub: mpsc::Sender<PubEvent>,
    stats: &Stats,
    stop: &AtomicBool,
    fatal: &Mutex<Option<String>>,
) {
    while let Ok(first) = rx.recv() {
        let started = Instant::now();
        let mut outputs = Vec::with_capacity(first.len());
        let records = std::iter::once(first).chain(rx.try_iter()).flatten().map(|(rec, out)| {
            outputs.push(out);
            rec
        });
        let committed = durability::group_commit(d, records);
        stats.commit_times.record(started.elapsed());
        match committed {
            Ok(seq) => {
                let now = now_ns();
                for o in &outputs {
                    stats.committed_times.record(Duration::from_nanos(now.saturating_sub(o.time)));
                }
                stats::set(&stats.durable_seq, seq);
                let _ = tx_pub.send(PubEvent::Committed(outputs, seq));
            }
            Err(e) => return fail(stop, fatal, format!("journal: {e}")),
        }
    }
}

/// Sends one datagram from a non-blocking socket, waiting a little when
/// the send buffer is full; counts what could not go.
fn send(sock: &UdpSocket, to: SocketAddr, bytes: &[u8], stats: &Stats) {
    for _ in 0..50 {
        match sock.send_to(bytes, to) {
            Ok(_) => return,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_micros(100)),
            Err(_) => break,
        }
    }
    stats::add(&stats.send_errors, 1);
}

/// The publisher thread's body. With `gate` (synchronous replication),
/// outputs are released up to the lower of the local and DR durable marks;
/// when DR fences this primary, nothing more leaves: the thread returns at
/// once, without the last heartbeats.
pub fn publisher_loop(
    mut p: Publisher,
    rx: mpsc::Receiver<PubEvent>,
    sock: UdpSocket,
    stats: &Stats,
    gate: Option<DrGate>,
) {
    let mut out = Vec::new();
    // At once: after a recovery or a promotion, consumers learn where the
    // streams stand and re-request what they missed.
    let mut next_heartbeat = Instant::now();
    let mut local = p.durable();
    let release = |local: Seq| match &gate {
        None => local,
        Some(g) => local.min(g.progress.durable()),
    };
    // With market-data batching: when the waiting market data must go.
    let mut md_due: Option<Instant> = None;
    loop {
        let wake = md_due.map_or(next_heartbeat, |d| d.min(next_heartbeat));
        let timeout = wake.saturating_duration_since(Instant::now());
        match rx.recv_timeout(timeout) {
            Ok(PubEvent::Committed(outputs, seq)) => {
                let now = now_ns();
                for o in outputs {
                    stats.durable_times.record(Duration::from_nanos(now.saturating_sub(o.time)));
                    p.on_outputs(o);
                }
                local = local.max(seq);
                p.on_durable(release(local), &mut out);
            }
            Ok(PubEvent::DrProgress) => {}
            Ok(PubEvent::Gateway(g, addr)) => p.on_gateway(g, addr, &mut out),
            Ok(PubEvent::ReRequest(from, req)) => p.on_rerequest(from, &req, mono_ns(), &mut out),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if let Some(g) = &gate {
            if let Some(fenced) = g.progress.fenced() {
                (g.on_fenced)(fenced);
                return;
            }
            p.on_durable(release(local), &mut out);
        }
        if !p.md_batch().is_zero() {
            match md_due {
                Some(d) if Instant::now() >= d => {
                    p.flush_md(&mut out);
                    md_due = None;
                }
                None if p.md_unsent() => md_due = Some(Instant::now() + p.md_batch()),
                _ => {}
            }
        }
        // Checked after every event too, so a steady flow cannot starve heartbeats.
        if Instant::now() >= next_heartbeat {
            // A heartbeat announces every message: none may still wait.
            p.flush_md(&mut out);
            md_due = None;
            p.heartbeats(&mut out);
            next_heartbeat = Instant::now() + Duration::from_secs(1);
        }
        for (to, bytes) in out.drain(..) {
            send(&sock, to, &bytes, stats);
        }
    }
    // Everything durable has been released and sent; say so once more.
    p.flush_md(&mut out);
    p.heartbeats(&mut out);
    for (to, bytes) in out.drain(..) {
        send(&sock, to, &bytes, stats);
    }
}

/// Nanoseconds on a monotonic clock (for timers: gaps, rate limits).
fn mono_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The ingress thread's runtime, its sockets (the orders groups' and the
/// unicast one) and the SIGINT and SIGTERM handlers, made on the calling
/// thread before the others start, so that from then on a signal stops the
/// process cleanly.
pub struct IngressIo {
    rt: tokio::runtime::Runtime,
    group: tokio::net::UdpSocket,
    uni: tokio::net::UdpSocket,
    sigint: Signal,
    sigterm: Signal,
}

impl IngressIo {
    /// A current-thread runtime with the (non-blocking) sockets registered
    /// and the signal handlers installed.
    pub fn new(group: UdpSocket, uni: UdpSocket) -> std::io::Result<IngressIo> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let entered = rt.enter();
        let group = tokio::net::UdpSocket::from_std(group)?;
        let uni = tokio::net::UdpSocket::from_std(uni)?;
        let sigint = signal(SignalKind::interrupt())?;
        let sigterm = signal(SignalKind::terminate())?;
        drop(entered);
        Ok(IngressIo { rt, group, uni, sigint, sigterm })
    }
}

/// Datagrams the ingress reads from a socket per wake-up, at most (beyond
/// the first).
const RECV_BUDGET: usize = 256;

/// The ingress thread's body.
pub fn ingress_loop(
    io: IngressIo,
    mut ingress: Ingress,
    mut sequencer: Sequencer,
    stats: &Stats,
    tx_pub: mpsc::Sender<PubEvent>,
    stop: &AtomicBool,
    fatal: &Mutex<Option<String>>,
) {
    let IngressIo { rt, group, uni, mut sigint, mut sigterm } = io;
    let result: std::io::Result<()> = rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut gbuf, mut ubuf) = (vec![0u8; 65_536], vec![0u8; 65_536]);
        let mut actions = Vec::new();
        loop {
            tokio::select! {
                // Each wake-up takes what the socket holds (up to a
                // budget), not one datagram: a select turn costs more than
                // a datagram does.
                r = group.recv_from(&mut gbuf) => {
                    if let Ok((n, src)) = r {
                        let now = mono_ns();
                        ingress.on_datagram(src, &gbuf[..n], now, &mut actions);
                        for _ in 0..RECV_BUDGET {
                            let Ok((n, src)) = group.try_recv_from(&mut gbuf) else { break };
                            ingress.on_datagram(src, &gbuf[..n], now, &mut actions);
                        }
                    }
                }
                r = uni.recv_from(&mut ubuf) => {
                    if let Ok((n, src)) = r {
                        let now = mono_ns();
                        ingress.on_datagram(src, &ubuf[..n], now, &mut actions);
                        for _ in 0..RECV_BUDGET {
                            let Ok((n, src)) = uni.try_recv_from(&mut ubuf) else { break };
                            ingress.on_datagram(src, &ubuf[..n], now, &mut actions);
                        }
                    }
                }
                _ = tick.tick() => {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    ingress.tick(mono_ns(), &mut actions);
                }
                _ = sigint.recv() => return Ok(()),
                _ = sigterm.recv() => return Ok(()),
            }
            // Gateways' addresses first (the publisher sends a gateway's
            // reports once it knows where), then this turn's inputs, in
            // order, sequenced and on their way to the journal.
            for a in &actions {
                match a {
                    Action::Deliver(_) => {}
                    Action::Gateway(g, addr) => {
                        let _ = tx_pub.send(PubEvent::Gateway(*g, *addr));
                    }
                    Action::Serve(from, req) => {
                        let _ = tx_pub.send(PubEvent::ReRequest(*from, *req));
                    }
                    Action::Ask(to, sealed) => {
                        let _ = uni.try_send_to(sealed, *to);
                    }
                }
            }
            let inputs = actions.iter().filter_map(|a| match a {
                Action::Deliver(input) => Some(*input),
                _ => None,
            });
            let sequenced = sequencer.run(inputs, stats);
            actions.clear();
            if let Err(e) = sequenced {
                fail(stop, fatal, e);
                return Ok(());
            }
        }
    });
    if let Err(e) = result {
        fail(stop, fatal, format!("ingress: {e}"));
    }
}
