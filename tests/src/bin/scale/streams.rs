//! Traffic the scale bench runs inside lab hosts: a paced UDP stream of
//! numbered datagrams (multicast or unicast) that remembers when each one
//! left, a receiver that remembers when each one arrived, and the time
//! from joining a group to its first datagram.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use weavers_tests::netns;

/// Bytes in each datagram: an 8-byte marker, the sequence number, zeros.
const SIZE: usize = 64;

/// A random marker for one stream's datagrams.
pub fn marker() -> [u8; 8] {
    weavers_tests::random_bytes(8).try_into().expect("8 bytes")
}

fn payload(marker: &[u8; 8], seq: u64) -> [u8; SIZE] {
    let mut p = [0u8; SIZE];
    p[..8].copy_from_slice(marker);
    p[8..16].copy_from_slice(&seq.to_be_bytes());
    p
}

fn seq_of(marker: &[u8; 8], p: &[u8]) -> Option<u64> {
    (p.len() == SIZE && p[..8] == marker[..]).then(|| u64::from_be_bytes(p[8..16].try_into().unwrap()))
}

/// A paced stream of numbered datagrams sent from a thread in a lab host
/// until it is stopped (or dropped).
pub struct Stream {
    stop: Arc<AtomicBool>,
    /// When datagram `seq` was handed to the kernel, at index `seq`.
    sent: Arc<Mutex<Vec<Instant>>>,
    errors: Arc<AtomicU64>,
    handle: Option<JoinHandle<Result<()>>>,
}

impl Stream {
    /// Sends `pps` datagrams a second from namespace `ns` to `dst`; for a
    /// multicast `dst`, out of the interface with address `iface` (TTL 8,
    /// no loopback). Send errors (a route briefly missing) are counted,
    /// not fatal.
    pub fn start(ns: &str, iface: Option<Ipv4Addr>, dst: SocketAddrV4, pps: u32, marker: [u8; 8]) -> Result<Stream> {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = mpsc::channel::<std::result::Result<(), String>>();
        let (stop2, sent2, errors2) = (stop.clone(), sent.clone(), errors.clone());
        let handle = netns::spawn_in(ns, move || -> Result<()> {
            let open = || -> Result<UdpSocket> {
                let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
                if dst.ip().is_multicast() {
                    s.set_multicast_ttl_v4(8)?;
                    s.set_multicast_loop_v4(false)?;
                    if let Some(i) = iface {
                        s.set_multicast_if_v4(&i).with_context(|| format!("IP_MULTICAST_IF {i}"))?;
                    }
                }
                Ok(s.into())
            };
            let s = match open() {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("{e:#}")));
                    return Err(e);
                }
            };
            let period = Duration::from_secs_f64(1.0 / f64::from(pps.max(1)));
            let start = Instant::now();
            let mut seq: u64 = 0;
            while !stop2.load(Ordering::Relaxed) {
                // Every datagram due by now, then sleep to the next.
                while start + period.mul_f64(seq as f64) <= Instant::now() {
                    if s.send_to(&payload(&marker, seq), dst).is_err() {
                        errors2.fetch_add(1, Ordering::Relaxed);
                    }
                    sent2.lock().unwrap().push(Instant::now());
                    seq += 1;
                }
                let next = start + period.mul_f64(seq as f64);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            Ok(())
        });
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(Stream { stop, sent, errors, handle: Some(handle) }),
            Ok(Err(e)) => bail!("sender in {ns}: {e}"),
            Err(_) => bail!("sender in {ns} did not start"),
        }
    }

    /// When datagram `seq` was sent.
    pub fn sent_at(&self, seq: u64) -> Option<Instant> {
        self.sent.lock().unwrap().get(seq as usize).copied()
    }

    /// Datagrams sent so far.
    pub fn count(&self) -> u64 {
        self.sent.lock().unwrap().len() as u64
    }

    /// Stops sending; returns (datagrams sent, send errors).
    pub fn stop(mut self) -> Result<(u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().map_err(|_| anyhow!("sender thread panicked"))??;
        }
        Ok((self.count(), self.errors.load(Ordering::Relaxed)))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A receiver of one stream's datagrams on a thread in a lab host,
/// remembering (sequence number, arrival) of each.
pub struct Sink {
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<(u64, Instant)>>>,
    handle: Option<JoinHandle<()>>,
}

impl Sink {
    /// Binds `bind` in namespace `ns` and collects datagrams carrying `marker`.
    pub fn start(ns: &str, bind: SocketAddrV4, marker: [u8; 8]) -> Result<Sink> {
        let sock = netns::run_in(ns, || -> io::Result<UdpSocket> {
            let s = UdpSocket::bind(bind)?;
            s.set_read_timeout(Some(Duration::from_millis(50)))?;
            Ok(s)
        })
        .with_context(|| format!("bind {bind} in {ns}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (stop2, got2) = (stop.clone(), got.clone());
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                if let Ok((n, _)) = sock.recv_from(&mut buf) {
                    if let Some(seq) = seq_of(&marker, &buf[..n]) {
                        got2.lock().unwrap().push((seq, Instant::now()));
                    }
                }
            }
        });
        Ok(Sink { stop, got, handle: Some(handle) })
    }

    /// Datagrams received so far.
    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// Arrivals from the `from`-th on (in arrival order).
    pub fn since(&self, from: usize) -> Vec<(u64, Instant)> {
        let got = self.got.lock().unwrap();
        got.get(from..).map(<[_]>::to_vec).unwrap_or_default()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// In namespace `ns`: binds `port`, joins `group` on the interface with
/// address `iface`, and waits (at most `cap`) for the first datagram of
/// the stream marked `marker`. The time from just before the join
/// (`IP_ADD_MEMBERSHIP`) to that datagram.
pub fn time_join(
    ns: &str,
    group: Ipv4Addr,
    iface: Ipv4Addr,
    port: u16,
    marker: [u8; 8],
    cap: Duration,
) -> Result<Duration> {
    netns::run_in(ns, move || -> Result<Duration> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
        s.set_multicast_all_v4(false)?;
        let s: UdpSocket = s.into();
        s.set_read_timeout(Some(Duration::from_millis(20)))?;
        let mut buf = [0u8; 2048];
        let t0 = Instant::now();
        socket2::SockRef::from(&s).join_multicast_v4(&group, &iface).with_context(|| format!("join {group}"))?;
        while t0.elapsed() < cap {
            if let Ok(n) = s.recv(&mut buf) {
                if seq_of(&marker, &buf[..n]).is_some() {
                    return Ok(t0.elapsed());
                }
            }
        }
        bail!("no datagram of {group} within {cap:?} of the join")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_their_sequence_and_marker() {
        let m = [1, 2, 3, 4, 5, 6, 7, 8];
        let p = payload(&m, 4242);
        assert_eq!(seq_of(&m, &p), Some(4242));
        assert_eq!(seq_of(&[0; 8], &p), None);
        assert_eq!(seq_of(&m, &p[..20]), None);
    }
}
