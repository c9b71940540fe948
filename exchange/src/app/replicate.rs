//! The primary engine's side of synchronous replication: a thread that
//! keeps a TCP connection to the DR journal (`aex journal`, or a hot
//! standby), sends every sequenced record, and reports how far DR has made
//! them durable. The engine releases an input's outputs only once both its
//! own journal and DR hold it; until DR answers, nothing is acknowledged.
//!
//! On a reconnect DR says what it holds; records it lacks are sent again
//! (from memory, or from the local journal file for older ones). A DR that
//! answers `Fenced` means a newer primary exists: the engine must stop.
//!
//! The connection is the authenticated channel of [`crate::auth::channel`]
//! under the `dr` key: an answer that does not verify (a DR site without
//! the key, or anyone else at its address) is counted and the connection
//! dropped; it can neither fence this primary nor release its outputs.

use crate::auth::beat::{BeatKey, BEAT_EVERY};
use crate::auth::channel::{self, ChannelError, Opener, Role, Sealer, NONCE_LEN};
use crate::auth::RootKey;
use crate::events::SequencedInput;
use crate::journal;
use crate::types::{Epoch, Seq, SymbolIndex};
use crate::wire::repl::{ReplMessage, MAX_RECORDS_PER_FRAME};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the primary says it is alive when idle.
pub const TICK: Duration = Duration::from_millis(100);

/// What the primary tells DR about itself.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The engine's logical name.
    pub name: String,
    /// Its epoch.
    pub epoch: Epoch,
    /// Its symbols.
    pub symbols: Vec<SymbolIndex>,
    /// Its local journal (for records DR lacks that are no longer in memory).
    pub journal: PathBuf,
    /// The `dr` key the channel is authenticated with.
    pub key: RootKey,
}

/// Shared progress, read by the engine.
#[derive(Debug, Default)]
pub struct Progress {
    /// Records 1..=durable are durable at DR.
    pub durable: AtomicU64,
    /// Non-zero: DR fenced this primary with that epoch.
    pub fenced: AtomicU32,
    /// Whether a DR connection is up and greeted.
    pub connected: AtomicBool,
    /// Connections made.
    pub connects: AtomicU64,
    /// Answers from DR that did not verify (connection dropped each time).
    pub unauthenticated: AtomicU64,
}

impl Progress {
    /// The DR-durable sequence number.
    pub fn durable(&self) -> Seq {
        self.durable.load(Ordering::Acquire)
    }

    /// The epoch that fenced this primary, if DR refused it.
    pub fn fenced(&self) -> Option<Epoch> {
        match self.fenced.load(Ordering::Acquire) {
            0 => None,
            e => Some(e),
        }
    }
}

/// Called by the replication threads whenever [`Progress`] changes (DR's
/// durable mark moved, the connection came or went, DR fenced us), so the
/// engine's release stage wakes at once instead of polling.
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// Beats to the DR site every [`BEAT_EVERY`] (UDP, [`crate::auth::beat`])
/// until the replicator stops or is fenced: the standby's proof that this
/// primary lives while the replication stream itself may be stalled.
fn spawn_beats(dr: SocketAddr, epoch: Epoch, key: &RootKey, stop: Arc<AtomicBool>, progress: Arc<Progress>) {
    let key = BeatKey::new(key);
    let sock = match UdpSocket::bind(if dr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }) {
        Ok(s) => s,
        Err(e) => return eprintln!("aex engine: no heartbeat socket ({e}); the DR site relies on the stream alone"),
    };
    let spawned = std::thread::Builder::new().name("dr-beat".into()).spawn(move || {
        while !stop.load(Ordering::SeqCst) && progress.fenced.load(Ordering::Acquire) == 0 {
            let _ = sock.send_to(&key.seal(epoch, crate::auth::unix_ns()), dr);
            std::thread::sleep(BEAT_EVERY);
        }
    });
    if let Err(e) = spawned {
        eprintln!("aex engine: no heartbeat thread ({e}); the DR site relies on the stream alone");
    }
}

/// The replication thread's handle.
pub struct Replicator {
    tx: Option<Sender<Vec<SequencedInput>>>,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    /// Stop without the clean-end message.
    silent: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Replicator {
    /// Starts replicating to `dr`; `last_seq` is the last record already in
    /// the local journal (DR is caught up from it on connect). `notify` is
    /// called on every change of progress. Dropping the handle stops
    /// cleanly: DR is told this is no failure.
    pub fn start(dr: SocketAddr, id: Identity, last_seq: Seq, notify: Notify) -> Replicator {
        let (tx, rx) = mpsc::channel();
        let progress = Arc::new(Progress::default());
        let stop = Arc::new(AtomicBool::new(false));
        let silent = Arc::new(AtomicBool::new(false));
        spawn_beats(dr, id.epoch, &id.key, stop.clone(), progress.clone());
        let (p, s, q) = (progress.clone(), stop.clone(), silent.clone());
        let thread = std::thread::Builder::new()
            .name("replicate".into())
            .spawn(move || {
                let unacked = VecDeque::new();
                Worker { dr, id, rx, progress: p, stop: s, silent: q, unacked, last_seq, notify }.run()
            })
            .expect("spawn the replication thread");
        Replicator { tx: Some(tx), progress, stop, silent, thread: Some(thread) }
    }

    /// Sends records (in sequence, after those already sent).
    pub fn send(&self, recs: Vec<SequencedInput>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(recs);
        }
    }

    /// The shared progress.
    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    /// Stops without the clean-end message, as a crash would: DR fails over.
    pub fn abandon(mut self) {
        self.silent.store(true, Ordering::SeqCst);
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker {
    dr: SocketAddr,
    id: Identity,
    rx: Receiver<Vec<SequencedInput>>,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    silent: Arc<AtomicBool>,
    /// Records sent or to send, not yet durable at DR.
    unacked: VecDeque<SequencedInput>,
    /// The last record known (local journal or handed to us).
    last_seq: Seq,
    notify: Notify,
}

enum End {
    Stopped,
    Fenced,
    Lost,
}

impl Worker {
    fn run(mut self) {
        while !self.stop.load(Ordering::SeqCst) {
            match TcpStream::connect_timeout(&self.dr, Duration::from_millis(500)) {
                Ok(s) => {
                    self.progress.connects.fetch_add(1, Ordering::Relaxed);
                    let end = self.session(s);
                    self.progress.connected.store(false, Ordering::Release);
                    (self.notify)();
                    match end {
                        Ok(End::Stopped) | Ok(End::Fenced) => return,
                        Ok(End::Lost) => {}
                        Err(e) => {
                            eprintln!("aex engine: replication to {}: {e}; reconnecting", self.dr);
                            // Not in a tight loop (a refusal repeats), records still taken meanwhile.
                            self.drain(Duration::from_millis(200));
                        }
                    }
                }
                Err(_) => {
                    // Keep taking records meanwhile: nothing is lost, all wait for DR.
                    self.drain(Duration::from_millis(200));
                }
            }
        }
    }

    /// Moves records from the channel to `unacked`, waiting up to `wait`
    /// for the first.
    fn drain(&mut self, wait: Duration) {
        match self.rx.recv_timeout(wait) {
            Ok(recs) => self.take(recs),
            Err(RecvTimeoutError::Timeout) => return,
            Err(RecvTimeoutError::Disconnected) => {
                self.stop.store(true, Ordering::SeqCst);
                return;
            }
        }
        while let Ok(recs) = self.rx.try_recv() {
            self.take(recs);
        }
    }

    fn take(&mut self, recs: Vec<SequencedInput>) {
        for r in recs {
            self.last_seq = self.last_seq.max(r.seq);
            self.unacked.push_back(r);
        }
    }

    fn session(&mut self, mut s: TcpStream) -> io::Result<End> {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        // Nonces first, both ways: they key the channel.
        let ours = channel::nonce();
        s.write_all(&ours)?;
        let mut theirs = [0u8; NONCE_LEN];
        match s.read_exact(&mut theirs) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(End::Lost),
            Err(e) => return Err(e),
        }
        let (mut sealer, mut opener) = channel::halves(&self.id.key, Role::Client, &ours, &theirs);
        let mut out = Vec::new();
        sealer.encode(
            &ReplMessage::Hello { epoch: self.id.epoch, name: self.id.name.clone(), symbols: self.id.symbols.clone() },
            &mut out,
        );
        s.write_all(&out)?;
        // The welcome, synchronously.
        let mut inbuf = Vec::new();
        let mut rbuf = [0u8; 4096];
        let first = loop {
            match opener.decode(&inbuf) {
                Ok(Some((m, n))) => {
                    inbuf.drain(..n);
                    break m;
                }
                Ok(None) => match s.read(&mut rbuf)? {
                    0 => return Ok(End::Lost),
                    n => inbuf.extend_from_slice(&rbuf[..n]),
                },
                Err(e) => {
                    if e == ChannelError::Forged {
                        self.progress.unauthenticated.fetch_add(1, Ordering::Relaxed);
                    }
                    return Err(io::Error::new(io::ErrorKind::InvalidData, format!("DR's answer: {e}")));
                }
            }
        };
        let have = match first {
            ReplMessage::Welcome { have, epoch } => {
                if epoch > self.id.epoch {
                    self.progress.fenced.store(epoch, Ordering::Release);
                    (self.notify)();
                    return Ok(End::Fenced);
                }
                have
            }
            ReplMessage::Fenced(epoch) => {
                eprintln!("aex engine: DR fenced this primary (epoch {epoch} exists)");
                self.progress.fenced.store(epoch.max(1), Ordering::Release);
                (self.notify)();
                return Ok(End::Fenced);
            }
            other => return Err(io::Error::other(format!("expected a welcome from DR, got {other:?}"))),
        };
        self.drain(Duration::ZERO);
        if have > self.last_seq {
            return Err(io::Error::other(format!(
                "DR holds {have} records, more than this primary's {}: recover from DR",
                self.last_seq
            )));
        }
        self.acked(have);
        self.backfill(have)?;
        self.progress.connected.store(true, Ordering::Release);
        (self.notify)();

        // DR's answers on their own thread, so records never wait for a read.
        s.set_read_timeout(None)?;
        let dead = Arc::new(AtomicBool::new(false));
        let reader = {
            let (mut r, progress, dead) = (s.try_clone()?, self.progress.clone(), dead.clone());
            let notify = self.notify.clone();
            std::thread::Builder::new().name("replicate-rx".into()).spawn(move || {
                read_answers(&mut r, inbuf, opener, &progress, &*notify);
                dead.store(true, Ordering::SeqCst);
            })?
        };
        let end = self.send_loop(&mut s, &mut sealer, have, &dead);
        let _ = s.shutdown(std::net::Shutdown::Both);
        let _ = reader.join();
        if self.progress.fenced.load(Ordering::Acquire) != 0 {
            return Ok(End::Fenced);
        }
        end
    }

    fn send_loop(&mut self, s: &mut TcpStream, sealer: &mut Sealer, have: Seq, dead: &AtomicBool) -> io::Result<End> {
        let mut out = Vec::new();
        let mut sent = have;
        let mut last_sent = Instant::now();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                // A crash (tests) leaves without a word.
                if !self.silent.load(Ordering::SeqCst) {
                    out.clear();
                    sealer.encode(&ReplMessage::End, &mut out);
                    let _ = s.write_all(&out);
                }
                return Ok(End::Stopped);
            }
            if dead.load(Ordering::SeqCst) {
                return Ok(End::Lost);
            }
            self.acked(self.progress.durable.load(Ordering::Acquire));
            self.drain(TICK);
            out.clear();
            let mut batch = Vec::new();
            for r in self.unacked.iter().filter(|r| r.seq > sent) {
                batch.push(*r);
                if batch.len() == MAX_RECORDS_PER_FRAME {
                    sealer.encode(&ReplMessage::Records(std::mem::take(&mut batch)), &mut out);
                }
            }
            if !batch.is_empty() {
                sealer.encode(&ReplMessage::Records(batch), &mut out);
            }
            sent = sent.max(self.unacked.back().map_or(sent, |r| r.seq));
            if out.is_empty() && last_sent.elapsed() >= TICK {
                sealer.encode(&ReplMessage::Tick(self.last_seq), &mut out);
            }
            if !out.is_empty() {
                s.write_all(&out)?;
                last_sent = Instant::now();
            }
        }
    }

    fn acked(&mut self, seq: Seq) {
        while self.unacked.front().is_some_and(|r| r.seq <= seq) {
            self.unacked.pop_front();
        }
        self.progress.durable.fetch_max(seq, Ordering::AcqRel);
    }

    /// Puts the records DR lacks and memory no longer has back in front,
    /// from the local journal.
    fn backfill(&mut self, have: Seq) -> io::Result<()> {
        let first_in_memory = self.unacked.front().map_or(self.last_seq + 1, |r| r.seq);
        if have + 1 >= first_in_memory {
            return Ok(());
        }
        let c = journal::read(&self.id.journal).map_err(|e| io::Error::other(e.to_string()))?;
        let older: Vec<SequencedInput> =
            c.records.iter().filter(|r| r.seq > have && r.seq < first_in_memory).copied().collect();
        if older.len() as u64 != first_in_memory - have - 1 {
            return Err(io::Error::other(format!(
                "the local journal lacks records {}..{} that DR needs",
                have + 1,
                first_in_memory - 1
            )));
        }
        for r in older.into_iter().rev() {
            self.unacked.push_front(r);
        }
        Ok(())
    }
}

/// Reads DR's answers until the connection ends: durable marks and
/// fencing, each believed only once it verifies.
fn read_answers(r: &mut TcpStream, mut inbuf: Vec<u8>, mut opener: Opener, progress: &Progress, notify: &dyn Fn()) {
    let mut rbuf = [0u8; 4096];
    loop {
        let mut at = 0;
        loop {
            match opener.decode(&inbuf[at..]) {
                Ok(Some((m, n))) => {
                    at += n;
                    match m {
                        ReplMessage::Durable(seq) => {
                            progress.durable.fetch_max(seq, Ordering::AcqRel);
                            notify();
                        }
                        ReplMessage::Fenced(epoch) => {
                            eprintln!("aex engine: DR fenced this primary (epoch {epoch} exists)");
                            progress.fenced.store(epoch.max(1), Ordering::Release);
                            notify();
                            return;
                        }
                        other => {
                            eprintln!("aex engine: unexpected {other:?} from DR; closing");
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    if e == ChannelError::Forged {
                        progress.unauthenticated.fetch_add(1, Ordering::Relaxed);
                    }
                    eprintln!("aex engine: a frame from DR refused ({e}); closing");
                    return;
                }
            }
        }
        inbuf.drain(..at);
        match r.read(&mut rbuf) {
            Ok(0) | Err(_) => return,
            Ok(n) => inbuf.extend_from_slice(&rbuf[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::dr_journal::{serve, DrJournal, ServeOpts, Served};
    use crate::events::Input;
    use std::net::{TcpListener, UdpSocket};

    fn rec(seq: u64, epoch: u32) -> SequencedInput {
        SequencedInput { seq, epoch, time: seq, input: Input::EndOfDay }
    }

    fn wait(mut f: impl FnMut() -> bool) -> bool {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// A primary whose replication stream falls silent (as TCP does on a
    /// lossy path) but that still beats is not lost; forged or replayed
    /// beats do not keep it alive; once the beats stop, it is lost.
    #[test]
    fn heartbeats_keep_a_live_primary_whose_stream_stalls() {
        use crate::auth::beat::BeatKey;
        let dir = std::env::temp_dir().join(format!("aex-beat-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (local, remote) = (dir.join("local.journal"), dir.join("dr.journal"));
        journal::Writer::create(&local, "eng1", &[1]).unwrap().sync().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let key = RootKey::from_bytes([4; 32]);
        let opts =
            ServeOpts { failover_after: Duration::from_millis(300), status: None, on_durable: None, key: key.clone() };
        let lost = Arc::new(AtomicBool::new(false));
        let server = {
            let (stop, lost, opts) = (stop.clone(), lost.clone(), opts.clone());
            std::thread::spawn(move || {
                let mut dr = DrJournal::open(&remote).unwrap();
                let r = serve(&listener, &mut dr, &opts, &stop).unwrap();
                lost.store(r == Served::PrimaryLost, Ordering::SeqCst);
                r
            })
        };
        let id = Identity { name: "eng1".into(), epoch: 1, symbols: vec![1], journal: local, key: key.clone() };
        let r = Replicator::start(addr, id, 0, Arc::new(|| {}));
        assert!(wait(|| r.progress().connected.load(Ordering::Acquire)), "the primary connects");
        // The stream goes silent; the primary's beats go on (sent here).
        r.abandon();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let beats = BeatKey::new(&key);
        let forger = BeatKey::new(&RootKey::from_bytes([5; 32]));
        let captured = beats.seal(1, crate::auth::unix_ns());
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            sock.send_to(&beats.seal(1, crate::auth::unix_ns()), addr).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!lost.load(Ordering::SeqCst), "2 s of a silent stream, but beats: not lost");
        // Forged beats and a captured one played again: lost all the same.
        let t = Instant::now();
        while !lost.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(5) {
            sock.send_to(&forger.seal(1, crate::auth::unix_ns()), addr).unwrap();
            sock.send_to(&captured, addr).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(server.join().unwrap(), Served::PrimaryLost);
        assert!(t.elapsed() < Duration::from_secs(2), "lost {:?} after the last true beat", t.elapsed());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Over loopback: records become durable at DR, a restarted DR is caught
    /// up from the local journal, a silent primary is declared lost, and a
    /// newer epoch fences the old primary.
    #[test]
    fn replicate_to_a_dr_journal() {
        let dir = std::env::temp_dir().join(format!("aex-repl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (local, remote) = (dir.join("local.journal"), dir.join("dr.journal"));
        let mut w = journal::Writer::create(&local, "eng1", &[1]).unwrap();
        for s in 1..=3 {
            w.append(&rec(s, 1)).unwrap();
        }
        w.sync().unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let key = RootKey::from_bytes([4; 32]);
        let opts =
            ServeOpts { failover_after: Duration::from_millis(300), status: None, on_durable: None, key: key.clone() };
        let server = {
            let (stop, remote, opts) = (stop.clone(), remote.clone(), opts.clone());
            std::thread::spawn(move || {
                let mut dr = DrJournal::open(&remote).unwrap();
                let r = serve(&listener, &mut dr, &opts, &stop).unwrap();
                dr.close().unwrap();
                r
            })
        };
        let id = Identity { name: "eng1".into(), epoch: 1, symbols: vec![1], journal: local.clone(), key };
        let r = Replicator::start(addr, id.clone(), 3, Arc::new(|| {}));
        assert!(
            wait(|| r.progress().durable() == 3),
            "DR catches up from the local journal: {}",
            r.progress().durable()
        );
        // A stranger without the dr key, claiming a newer epoch, connects:
        // refused, the fence not raised, the primary's connection kept.
        let stranger = Identity { epoch: 9, key: RootKey::from_bytes([5; 32]), ..id.clone() };
        let s = Replicator::start(addr, stranger, 3, Arc::new(|| {}));
        assert!(wait(|| s.progress().unauthenticated.load(Ordering::Relaxed) > 0
            || s.progress().connects.load(Ordering::Relaxed) > 1));
        assert_eq!((s.progress().fenced(), s.progress().durable()), (None, 0));
        drop(s);
        r.send(vec![rec(4, 1), rec(5, 1)]);
        assert!(wait(|| r.progress().durable() == 5), "new records durable at DR: {}", r.progress().durable());
        assert_eq!(r.progress().connects.load(Ordering::Relaxed), 1, "never disconnected by the stranger");
        // A crash (no clean end): DR declares the primary lost.
        r.abandon();
        assert_eq!(server.join().unwrap(), Served::PrimaryLost);
        let c = journal::read(&remote).unwrap();
        assert_eq!(c.records.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);

        // DR moves to epoch 2 (as a promoted standby would); the old primary is fenced.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut dr = DrJournal::open(&remote).unwrap();
        dr.hello(2, "eng1", &[1]).unwrap();
        let stop2 = stop.clone();
        let server = std::thread::spawn(move || serve(&listener, &mut dr, &opts, &stop2).unwrap());
        let old = Replicator::start(addr, id, 5, Arc::new(|| {}));
        assert!(wait(|| old.progress().fenced() == Some(2)), "the old primary is fenced");
        stop.store(true, Ordering::SeqCst);
        assert_eq!(server.join().unwrap(), Served::Stopped);
        drop(old);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
