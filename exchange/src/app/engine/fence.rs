//! The fencing responder: a promoted standby, or an engine recovered from
//! the DR journal (`--fence-listen`), keeps the replication address
//! answered. Any primary saying hello with an epoch below ours gets
//! `Fenced(our epoch)`, so an old primary that comes back after a
//! partition never gets an acknowledgement and never trades.

use crate::types::Epoch;
use crate::wire::repl::{self, ReplMessage};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// What to answer a hello of `their` epoch when ours is `ours`: `Fenced`
/// when theirs is older; nothing (the connection is closed) otherwise, since
/// this process is no DR journal for a newer primary.
pub fn answer(their: Epoch, ours: Epoch) -> Option<ReplMessage> {
    (their < ours).then_some(ReplMessage::Fenced(ours))
}

/// Serves `listener` on a thread of its own for the rest of the process.
pub fn spawn(listener: TcpListener, epoch: Epoch) -> std::io::Result<()> {
    listener.set_nonblocking(false)?;
    let addr = listener.local_addr()?;
    eprintln!("aex engine: fencing responder on {addr} (epoch {epoch})");
    std::thread::Builder::new().name("fence".into()).spawn(move || {
        for conn in listener.incoming() {
            match conn {
                Ok(s) => one(s, epoch),
                Err(e) => {
                    eprintln!("aex engine: fencing responder: accept: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    })?;
    Ok(())
}

/// Reads one hello (within a second), answers it, closes.
fn one(mut s: TcpStream, epoch: Epoch) {
    let peer = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let (mut buf, mut rbuf) = (Vec::new(), [0u8; 1024]);
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        match repl::decode_frame(&buf) {
            Ok(Some((ReplMessage::Hello { epoch: theirs, name, .. }, _))) => {
                match answer(theirs, epoch) {
                    Some(m) => {
                        eprintln!("aex engine: {peer} ({name}, epoch {theirs}) said hello: fenced (epoch {epoch})");
                        let mut out = Vec::new();
                        repl::encode(&m, &mut out);
                        let _ = s.write_all(&out);
                    }
                    None => eprintln!("aex engine: {peer} ({name}) has epoch {theirs}, not below ours: closed"),
                }
                return;
            }
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => {}
        }
        if buf.len() > repl::MAX_FRAME {
            return;
        }
        match s.read(&mut rbuf) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&rbuf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::replicate::{Identity, Replicator};

    #[test]
    fn answers() {
        assert_eq!(answer(1, 2), Some(ReplMessage::Fenced(2)));
        assert_eq!(answer(2, 2), None);
        assert_eq!(answer(3, 2), None);
    }

    /// An old primary replicating to the responder is fenced and never
    /// gets a durable mark.
    #[test]
    fn an_old_primary_is_fenced() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        spawn(listener, 3).unwrap();
        let dir = std::env::temp_dir().join(format!("aex-fence-{}", std::process::id()));
        let id = Identity { name: "eng1".into(), epoch: 2, symbols: vec![1], journal: dir.join("none") };
        let r = Replicator::start(addr, id, 0, std::sync::Arc::new(|| {}));
        let t = Instant::now();
        while r.progress().fenced().is_none() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(r.progress().fenced(), Some(3));
        assert_eq!(r.progress().durable(), 0);
    }
}
