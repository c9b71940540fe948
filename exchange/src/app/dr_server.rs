//! The DR site's side of replication ([`serve`]): what `aex journal` and
//! the hot standby run on their listener. A primary's connection is an
//! authenticated channel under the `dr` key ([`crate::auth::channel`]):
//! nothing it says is acted on before its frame verifies.
//!
//! A new connection is a candidate until its hello verifies and is
//! accepted; only then does it replace the primary's connection (a
//! restarted primary). So a stranger that connects, or sends frames
//! without the key, disturbs nothing: it is counted (`unauthenticated`)
//! and dropped, and after [`CANDIDATE_WAIT`] without a hello it is dropped
//! too. At most [`MAX_CANDIDATES`] wait at once (the oldest goes first).

use super::dr_journal::{DrJournal, Refusal};
use crate::auth::beat::{BeatGuard, BeatKey, BEAT_LEN};
use crate::auth::channel::{self, ChannelError, Opener, Role, Sealer, NONCE_LEN};
use crate::auth::RootKey;
use crate::wire::repl::ReplMessage;
use anyhow::{bail, Result};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a new connection has to say a hello that verifies.
pub const CANDIDATE_WAIT: Duration = Duration::from_secs(3);
/// New connections waiting for their hello, at most.
pub const MAX_CANDIDATES: usize = 8;

/// How [`serve`] behaves.
#[derive(Clone, Debug)]
pub struct ServeOpts {
    /// The primary is lost after this long without a frame or a heartbeat
    /// ([`crate::auth::beat`], UDP on the listener's port) once heard.
    pub failover_after: Duration,
    /// A JSON status file rewritten every second.
    pub status: Option<PathBuf>,
    /// Where every durable record goes once synced (a hot standby's
    /// applier; the journal must [`DrJournal::keep_durable`]).
    pub on_durable: Option<std::sync::mpsc::Sender<Vec<crate::events::SequencedInput>>>,
    /// The `dr` key the channel is authenticated with.
    pub key: RootKey,
}

/// Why [`serve`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// `stop` was set.
    Stopped,
    /// The primary fell silent for `failover_after`.
    PrimaryLost,
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    buf: Vec<u8>,
    greeted: bool,
    since: Instant,
    ours: [u8; NONCE_LEN],
    chan: Option<(Sealer, Opener)>,
}

/// What happened on a connection in one turn.
enum Turn {
    /// Still open (`true`: it was heard from).
    Open(bool),
    /// To be dropped.
    Closed,
}

#[derive(Default)]
struct Counts {
    refused: u64,
    connections: u64,
    unauthenticated: u64,
}

impl Conn {
    fn accept(stream: TcpStream, peer: SocketAddr) -> io::Result<Conn> {
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        let ours = channel::nonce();
        (&stream).write_all(&ours)?;
        let c = Conn { stream, peer, buf: Vec::new(), greeted: false, since: Instant::now(), ours, chan: None };
        Ok(c)
    }

    /// Reads what is there (waiting up to `wait`) and handles every whole
    /// frame that verifies.
    fn pump(
        &mut self,
        wait: Duration,
        rbuf: &mut [u8],
        dr: &mut DrJournal,
        key: &RootKey,
        armed: &mut bool,
        counts: &mut Counts,
    ) -> Turn {
        let _ = self.stream.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        let heard = match self.stream.read(rbuf) {
            Ok(0) => return Turn::Closed,
            Ok(n) => {
                self.buf.extend_from_slice(&rbuf[..n]);
                true
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => false,
            Err(_) => return Turn::Closed,
        };
        if self.chan.is_none() && self.buf.len() >= NONCE_LEN {
            let mut theirs = [0u8; NONCE_LEN];
            theirs.copy_from_slice(&self.buf[..NONCE_LEN]);
            self.buf.drain(..NONCE_LEN);
            self.chan = Some(channel::halves(key, Role::Server, &self.ours, &theirs));
        }
        let mut out = Vec::new();
        let mut at = 0;
        let mut turn = Turn::Open(heard);
        while let Some((sealer, opener)) = self.chan.as_mut() {
            match opener.decode(&self.buf[at..]) {
                Ok(None) => break,
                Ok(Some((m, n))) => {
                    at += n;
                    match handle(dr, self.peer, &mut self.greeted, m, sealer, &mut out, armed) {
                        Ok(true) => {}
                        Ok(false) => {
                            counts.refused += 1;
                            turn = Turn::Closed;
                            break;
                        }
                        Err(e) => {
                            eprintln!("aex journal: primary {}: {e:#}; closing", self.peer);
                            turn = Turn::Closed;
                            break;
                        }
                    }
                }
                Err(e) => {
                    if e == ChannelError::Forged {
                        counts.unauthenticated += 1;
                    }
                    eprintln!("aex journal: {}: a frame refused ({e}); closing", self.peer);
                    turn = Turn::Closed;
                    break;
                }
            }
        }
        self.buf.drain(..at);
        if !out.is_empty() && self.stream.write_all(&out).is_err() {
            return Turn::Closed;
        }
        turn
    }

    /// Sends DR's durable mark.
    fn durable(&mut self, seq: u64) -> bool {
        let Some((sealer, _)) = self.chan.as_mut() else { return false };
        let mut out = Vec::new();
        sealer.encode(&ReplMessage::Durable(seq), &mut out);
        self.stream.write_all(&out).is_ok()
    }
}

/// Takes a primary's records on `listener` into `dr` until `stop` is set or
/// the primary (once heard, and not ended cleanly) falls silent.
pub fn serve(listener: &TcpListener, dr: &mut DrJournal, opts: &ServeOpts, stop: &AtomicBool) -> Result<Served> {
    listener.set_nonblocking(true)?;
    let mut primary: Option<Conn> = None;
    let mut candidates: Vec<Conn> = Vec::new();
    // Armed once a primary has been heard; disarmed by its clean end.
    let mut armed = false;
    let mut last_heard = Instant::now();
    let mut last_status = Instant::now() - Duration::from_secs(2);
    let mut counts = Counts::default();
    let mut rbuf = vec![0u8; 256 * 1024];
    // The primary's heartbeats: a stalled replication stream (TCP on a
    // lossy path) does not make a live primary look dead.
    let beats = UdpSocket::bind(listener.local_addr()?)?;
    beats.set_nonblocking(true)?;
    let beat_key = BeatKey::new(&opts.key);
    let mut guard = BeatGuard::default();
    let mut beat = [0u8; BEAT_LEN + 1];
    while !stop.load(Ordering::SeqCst) {
        while let Ok((n, _)) = beats.recv_from(&mut beat) {
            match beat_key.open(&beat[..n]) {
                Ok(b) => {
                    if guard.admit(b, dr.fence(), crate::auth::unix_ns()) && armed {
                        last_heard = Instant::now();
                    }
                }
                Err(_) => guard.forged += 1,
            }
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                counts.connections += 1;
                if candidates.len() >= MAX_CANDIDATES {
                    candidates.remove(0);
                }
                match Conn::accept(stream, peer) {
                    Ok(c) => candidates.push(c),
                    Err(e) => eprintln!("aex journal: {peer}: {e}"),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => eprintln!("aex journal: accept: {e}"),
        }
        // Candidates: a short look each; the first whose hello is accepted
        // becomes the primary's connection.
        let mut i = 0;
        while i < candidates.len() {
            let c = &mut candidates[i];
            let turn = c.pump(Duration::ZERO, &mut rbuf, dr, &opts.key, &mut armed, &mut counts);
            let expired = !c.greeted && c.since.elapsed() >= CANDIDATE_WAIT;
            match turn {
                Turn::Open(_) if c.greeted => {
                    primary = Some(candidates.remove(i));
                    last_heard = Instant::now();
                }
                Turn::Closed => drop(candidates.remove(i)),
                Turn::Open(_) if expired => drop(candidates.remove(i)),
                Turn::Open(_) => i += 1,
            }
        }
        let mut drop_primary = false;
        if let Some(c) = primary.as_mut() {
            let wait = if candidates.is_empty() { Duration::from_millis(20) } else { Duration::from_millis(2) };
            match c.pump(wait, &mut rbuf, dr, &opts.key, &mut armed, &mut counts) {
                Turn::Open(heard) => {
                    if heard {
                        last_heard = Instant::now();
                    }
                }
                Turn::Closed => drop_primary = true,
            }
            if let Some(seq) = dr.sync()? {
                if !c.durable(seq) {
                    drop_primary = true;
                }
                if let Some(tx) = &opts.on_durable {
                    let _ = tx.send(dr.take_durable());
                }
            }
        } else if candidates.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
        if drop_primary {
            primary = None;
        }
        if armed && last_heard.elapsed() >= opts.failover_after {
            eprintln!(
                "aex journal: primary silent (no frame, no heartbeat) for {} ms; {} records durable, fence epoch {}",
                last_heard.elapsed().as_millis(),
                dr.have(),
                dr.fence()
            );
            write_status(opts, dr, false, &counts, 1);
            return Ok(Served::PrimaryLost);
        }
        if last_status.elapsed() >= Duration::from_secs(1) {
            last_status = Instant::now();
            write_status(opts, dr, primary.is_some(), &counts, 0);
        }
    }
    write_status(opts, dr, false, &counts, 0);
    Ok(Served::Stopped)
}

/// Handles one verified frame; Ok(false) when the primary was refused.
fn handle(
    dr: &mut DrJournal,
    peer: SocketAddr,
    greeted: &mut bool,
    m: ReplMessage,
    sealer: &mut Sealer,
    out: &mut Vec<u8>,
    armed: &mut bool,
) -> Result<bool> {
    match m {
        ReplMessage::Hello { epoch, name, symbols } => match dr.hello(epoch, &name, &symbols) {
            Ok((have, epoch)) => {
                eprintln!("aex journal: primary {peer} ({name}, epoch {epoch}) connected; DR holds {have}");
                *greeted = true;
                *armed = true;
                sealer.encode(&ReplMessage::Welcome { have, epoch }, out);
                Ok(true)
            }
            Err(Refusal::Fenced(fence)) => {
                eprintln!("aex journal: primary {peer} has epoch {epoch} below the fence {fence}: fenced");
                sealer.encode(&ReplMessage::Fenced(fence), out);
                Ok(false)
            }
            Err(Refusal::OtherEngine(n)) => bail!("engine {name:?} is not this journal's ({n})"),
            Err(Refusal::Io(e)) => bail!("creating the journal: {e}"),
        },
        _ if !*greeted => bail!("a frame before hello"),
        ReplMessage::Records(recs) => {
            dr.append(&recs)?;
            Ok(true)
        }
        ReplMessage::Tick(_) => Ok(true),
        ReplMessage::End => {
            eprintln!("aex journal: primary {peer} ended cleanly");
            *armed = false;
            Ok(true)
        }
        other => bail!("unexpected {other:?} from the primary"),
    }
}

fn write_status(opts: &ServeOpts, dr: &DrJournal, connected: bool, counts: &Counts, failovers: u64) {
    let Some(path) = &opts.status else { return };
    let v = serde_json::json!({
        "role": "journal",
        "have": dr.have(),
        "fence_epoch": dr.fence(),
        "primary_connected": connected,
        "connections": counts.connections,
        "refused": counts.refused,
        "unauthenticated": counts.unauthenticated,
        "failovers": failovers,
    });
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, v.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}
