//! The DR site's journal, and `aex journal`, the process that is nothing
//! but that (the pilot light). It takes the primary engine's
//! sequenced records over TCP (`wire::repl`), makes them durable (fsync)
//! before saying so, and refuses a primary from an older epoch (fencing).
//! When the primary's heartbeat stops, it can replace itself with a
//! command (`--on-failover`): the pilot-light DR, where that command is
//! `aex engine --journal SAME_FILE ...`, which replays the journal and
//! takes over at the next sequence number. A hot standby (`aex engine
//! --standby-listen`) keeps the same [`DrJournal`] through [`serve`] and
//! applies what it makes durable. The connection is authenticated under
//! the `dr` key (`--keys`; [`super::dr_server`]).

pub use super::dr_server::{serve, ServeOpts, Served};
use crate::auth::Keyring;
use crate::journal::{self, Writer};
use crate::symbols::SymbolTable;
use crate::types::{Epoch, Seq};
use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Flags of `aex journal`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the primary connects (the DR host's overlay address and a port)
    #[arg(long)]
    listen: SocketAddr,
    /// The journal file (created at the first primary's hello if absent)
    #[arg(long)]
    journal: PathBuf,
    /// Declare the primary lost after this long without a frame from it
    #[arg(long, default_value_t = 1000)]
    failover_after_ms: u64,
    /// Shell command that replaces this process when the primary is lost
    /// (pilot light), e.g. `exec aex engine --name eng1 --journal FILE
    /// --fence-listen SAME_ADDR --epoch {next_epoch} ...`; `{next_epoch}` is
    /// replaced with the fence epoch + 1 (the fence may be above the
    /// journal's last record's epoch: a primary that said hello and died
    /// before sequencing anything)
    #[arg(long)]
    on_failover: Option<String>,
    /// A JSON status file rewritten every second
    #[arg(long)]
    status: Option<PathBuf>,
    /// The key file with the `dr` key (`aex keys`); mode 0600. The engine
    /// that `--on-failover` starts needs its own `--keys` (the engine's)
    #[arg(long)]
    keys: PathBuf,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Why a primary was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its epoch is below the fence: tell it so.
    Fenced(Epoch),
    /// It is another engine than the journal's.
    OtherEngine(String),
    /// The journal file could not be created.
    Io(String),
}

/// The DR journal's state, apart from sockets: what the hot standby embeds too.
#[derive(Debug)]
pub struct DrJournal {
    path: PathBuf,
    writer: Option<Writer>,
    name: Option<String>,
    /// Records 1..=have are durable.
    have: Seq,
    /// The highest epoch seen (records or hellos).
    fence: Epoch,
    unsynced: bool,
    /// The symbols a primary must trade (a hot standby's own).
    expect_symbols: Option<Vec<u16>>,
    /// Records appended since the last sync, kept when [`DrJournal::keep_durable`].
    fresh: Option<Vec<crate::events::SequencedInput>>,
}

impl DrJournal {
    /// Opens `path` if it exists (cutting a torn tail), else waits for the
    /// first hello to create it.
    pub fn open(path: &Path) -> Result<DrJournal> {
        let mut dr = DrJournal {
            path: path.to_path_buf(),
            writer: None,
            name: None,
            have: 0,
            fence: 0,
            unsynced: false,
            expect_symbols: None,
            fresh: None,
        };
        if path.exists() {
            let c = journal::read(path).with_context(|| format!("reading {}", path.display()))?;
            let (w, c) = Writer::open(path, &c.name).with_context(|| format!("opening {}", path.display()))?;
            dr.have = c.records.len() as Seq;
            dr.fence = c.records.iter().map(|r| r.epoch).max().unwrap_or(0);
            dr.name = Some(c.name);
            dr.writer = Some(w);
        }
        Ok(dr)
    }

    /// Keeps the records each sync makes durable, for
    /// [`DrJournal::take_durable`] (a hot standby applies them).
    pub fn keep_durable(&mut self) {
        self.fresh.get_or_insert_with(Vec::new);
    }

    /// The records made durable since the last call (with [`DrJournal::keep_durable`]).
    pub fn take_durable(&mut self) -> Vec<crate::events::SequencedInput> {
        if self.unsynced {
            return Vec::new();
        }
        self.fresh.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Refuses primaries that trade other symbols than these.
    pub fn expect_symbols(&mut self, symbols: &[u16]) {
        self.expect_symbols = Some(symbols.to_vec());
    }

    /// Syncs and gives up the writer (a promoted standby appends to it).
    pub fn into_writer(mut self) -> Result<Option<Writer>> {
        self.sync()?;
        Ok(self.writer.take())
    }

    /// Records held (durable).
    pub fn have(&self) -> Seq {
        self.have
    }

    /// The fence epoch.
    pub fn fence(&self) -> Epoch {
        self.fence
    }

    /// A primary says hello: accepted (with what DR has) or refused.
    pub fn hello(&mut self, epoch: Epoch, name: &str, symbols: &[u16]) -> Result<(Seq, Epoch), Refusal> {
        if let Some(n) = &self.name {
            if n != name {
                return Err(Refusal::OtherEngine(n.clone()));
            }
        }
        if self.expect_symbols.as_ref().is_some_and(|e| e != symbols) {
            return Err(Refusal::OtherEngine(format!("{name} with other symbols than ours")));
        }
        if epoch < self.fence {
            return Err(Refusal::Fenced(self.fence));
        }
        if self.writer.is_none() {
            let w = Writer::create(&self.path, name, symbols).map_err(|e| Refusal::Io(e.to_string()))?;
            self.writer = Some(w);
            self.name = Some(name.to_string());
        }
        self.fence = epoch;
        Ok((self.have, self.fence))
    }

    /// Appends records (already held ones are skipped); an out-of-sequence
    /// or older-epoch record is an error and nothing after it is taken.
    pub fn append(&mut self, recs: &[crate::events::SequencedInput]) -> Result<()> {
        let Some(w) = self.writer.as_mut() else { bail!("records before hello") };
        for r in recs {
            if r.seq < w.next_seq() {
                continue;
            }
            if r.epoch < self.fence {
                bail!("record {} from epoch {} below the fence {}", r.seq, r.epoch, self.fence);
            }
            w.append(r).with_context(|| format!("record {}", r.seq))?;
            if let Some(f) = self.fresh.as_mut() {
                f.push(*r);
            }
            self.unsynced = true;
        }
        Ok(())
    }

    /// Makes appended records durable; returns the durable sequence number
    /// if it moved.
    pub fn sync(&mut self) -> Result<Option<Seq>> {
        let Some(w) = self.writer.as_mut() else { return Ok(None) };
        if !self.unsynced {
            return Ok(None);
        }
        self.have = w.sync()?;
        self.unsynced = false;
        Ok(Some(self.have))
    }

    /// Closes the file (before another process takes it over).
    pub fn close(&mut self) -> Result<()> {
        self.sync()?;
        self.writer = None;
        Ok(())
    }
}

/// Runs `aex journal`.
pub fn run(args: Args, _table: &SymbolTable) -> Result<()> {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let key = Keyring::load(&args.keys).context("--keys")?.dr().context("--keys")?.clone();
    let mut dr = DrJournal::open(&args.journal)?;
    let listener = TcpListener::bind(args.listen).with_context(|| format!("listening on {}", args.listen))?;
    eprintln!(
        "aex journal: listening on {} for the primary; {} holds {} records (fence epoch {})",
        args.listen,
        args.journal.display(),
        dr.have(),
        dr.fence()
    );
    let opts = ServeOpts {
        failover_after: Duration::from_millis(args.failover_after_ms),
        status: args.status.clone(),
        on_durable: None,
        key,
    };
    loop {
        match serve(&listener, &mut dr, &opts, &STOP)? {
            Served::Stopped => {
                dr.close()?;
                return Ok(());
            }
            Served::PrimaryLost => match &args.on_failover {
                None => eprintln!("aex journal: no --on-failover: staying a journal, waiting for a primary"),
                Some(cmd) => {
                    let next = dr.fence().saturating_add(1).max(1);
                    let cmd = cmd.replace("{next_epoch}", &next.to_string());
                    dr.close()?;
                    eprintln!("aex journal: failing over: exec sh -c {cmd:?}");
                    use std::os::unix::process::CommandExt;
                    let err = std::process::Command::new("sh").arg("-c").arg(cmd).exec();
                    bail!("exec of the failover command failed: {err}")
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Input, SequencedInput};

    fn rec(seq: u64, epoch: u32) -> SequencedInput {
        SequencedInput { seq, epoch, time: seq, input: Input::EndOfDay }
    }

    #[test]
    fn fencing_duplicates_and_reopen() {
        let dir = std::env::temp_dir().join(format!("aex-dr-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("dr.journal");
        let _ = std::fs::remove_file(&path);
        let mut dr = DrJournal::open(&path).unwrap();
        assert!(dr.append(&[rec(1, 1)]).is_err(), "records before hello");
        assert_eq!(dr.hello(1, "eng1", &[1, 2]), Ok((0, 1)));
        dr.append(&[rec(1, 1), rec(2, 1)]).unwrap();
        assert_eq!(dr.sync().unwrap(), Some(2));
        assert_eq!(dr.sync().unwrap(), None);
        // A reconnect resends what DR has: skipped. A gap is an error.
        dr.append(&[rec(2, 1), rec(3, 1)]).unwrap();
        assert!(dr.append(&[rec(5, 1)]).is_err());
        dr.sync().unwrap();
        // A newer primary raises the fence; the old one is refused.
        assert_eq!(dr.hello(2, "eng1", &[1, 2]), Ok((3, 2)));
        assert_eq!(dr.hello(1, "eng1", &[1, 2]), Err(Refusal::Fenced(2)));
        assert!(matches!(dr.hello(2, "eng9", &[1]), Err(Refusal::OtherEngine(_))));
        dr.append(&[rec(4, 2)]).unwrap();
        assert!(dr.append(&[rec(5, 1)]).is_err(), "a record below the fence");
        dr.close().unwrap();
        let dr = DrJournal::open(&path).unwrap();
        assert_eq!((dr.have(), dr.fence()), (4, 2));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
