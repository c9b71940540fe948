//! The fencing responder: a promoted standby, or an engine recovered from
//! the DR journal (`--fence-listen`), keeps the replication address
//! answered. Any primary saying hello with an epoch below ours gets
//! `Fenced(our epoch)`, so an old primary that comes back after a
//! partition never gets an acknowledgement and never trades. The exchange
//! is the authenticated channel under the `dr` key: a hello that does not
//! verify is not answered, and the primary believes no fence that does not.

use crate::auth::channel::{self, Role, NONCE_LEN};
use crate::auth::RootKey;
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
pub fn spawn(listener: TcpListener, epoch: Epoch, key: RootKey) -> std::io::Result<()> {
    listener.set_nonblocking(false)?;
    let addr = listener.local_addr()?;
    eprintln!("aex engine: fencing responder on {addr} (epoch {epoch})");
    std::thread::Builder::new().name("fence".into()).spawn(move || {
        for conn in listener.incoming() {
            match conn {
                Ok(s) => one(s, epoch, &key),
                Err(e) => {
                    eprintln!("aex engine: fencing responder: accept: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    })?;
    Ok(())
}

/// Reads one hello (within a second), answers it if it verifies, closes.
fn one(mut s: TcpStream, epoch: Epoch, key: &RootKey) {
    let peer = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    let ours = channel::nonce();
    if s.write_all(&ours).is_err() {
        return;
    }
    let (mut buf, mut rbuf) = (Vec::new(), [0u8; 1024]);
    let mut chan = None;
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if chan.is_none() && buf.len() >= NONCE_LEN {
            let mut theirs = [0u8; NONCE_LEN];
            theirs.copy_from_slice(&buf[..NONCE_LEN]);
            buf.drain(..NONCE_LEN);
            chan = Some(channel::halves(key, Role::Server, &ours, &theirs));
        }
        if let Some((sealer, opener)) = chan.as_mut() {
            match opener.decode(&buf) {
                Ok(Some((ReplMessage::Hello { epoch: theirs, name, .. }, _))) => {
                    match answer(theirs, epoch) {
                        Some(m) => {
                            eprintln!("aex engine: {peer} ({name}, epoch {theirs}) said hello: fenced (epoch {epoch})");
                            let mut out = Vec::new();
                            sealer.encode(&m, &mut out);
                            let _ = s.write_all(&out);
                        }
                        None => eprintln!("aex engine: {peer} ({name}) has epoch {theirs}, not below ours: closed"),
                    }
                    return;
                }
                Ok(Some(_)) => return,
                Err(e) => {
                    eprintln!("aex engine: fencing responder: {peer}: {e}; closed");
                    return;
                }
                Ok(None) => {}
            }
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

    fn id(key: u8) -> Identity {
        let dir = std::env::temp_dir().join(format!("aex-fence-{}", std::process::id()));
        Identity {
            name: "eng1".into(),
            epoch: 2,
            symbols: vec![1],
            journal: dir.join("none"),
            key: RootKey::from_bytes([key; 32]),
        }
    }

    /// An old primary replicating to the responder is fenced and never
    /// gets a durable mark.
    #[test]
    fn an_old_primary_is_fenced() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        spawn(listener, 3, RootKey::from_bytes([1; 32])).unwrap();
        let r = Replicator::start(addr, id(1), 0, std::sync::Arc::new(|| {}));
        let t = Instant::now();
        while r.progress().fenced().is_none() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(r.progress().fenced(), Some(3));
        assert_eq!(r.progress().durable(), 0);
    }

    /// Anyone at DR's address without the `dr` key cannot fence a primary:
    /// a `Fenced` it sends does not verify and is counted; and a responder
    /// with another key does not answer the primary's hello at all.
    #[test]
    fn a_forged_fence_stops_nobody() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let forger = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut s, _) = listener.accept().unwrap();
                let ours = channel::nonce();
                s.write_all(&ours).unwrap();
                let mut theirs = [0u8; NONCE_LEN];
                s.read_exact(&mut theirs).unwrap();
                let (mut sealer, _) = channel::halves(&RootKey::from_bytes([2; 32]), Role::Server, &ours, &theirs);
                let mut out = Vec::new();
                sealer.encode(&ReplMessage::Fenced(9), &mut out);
                let _ = s.write_all(&out);
            }
        });
        let r = Replicator::start(addr, id(1), 0, std::sync::Arc::new(|| {}));
        forger.join().unwrap();
        let t = Instant::now();
        while r.progress().unauthenticated.load(std::sync::atomic::Ordering::Relaxed) < 2
            && t.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(r.progress().unauthenticated.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert_eq!(r.progress().fenced(), None, "not fenced by a forgery");
        drop(r);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        spawn(listener, 9, RootKey::from_bytes([2; 32])).unwrap();
        let r = Replicator::start(addr, id(1), 0, std::sync::Arc::new(|| {}));
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(r.progress().fenced(), None);
    }
}
