//! What an application sees while the mesh suffers a fault: a steady
//! multicast stream and a steady TCP stream, each arrival timestamped, so a
//! test can say how long the application heard nothing, what it lost, and
//! how soon after a fault ended the traffic came back.
//!
//! - [`McastStream`]: numbered datagrams ([`crate::mcast::Numbered`]) sent
//!   to a group at a fixed rate from one host until stopped; its receivers
//!   are [`crate::mcast::GroupReceiver`]s, read back as a [`Timeline`].
//! - [`TcpStream`]: one TCP connection between two hosts' overlay
//!   addresses, written at a fixed rate (or as fast as it goes), every byte
//!   checked on arrival; its reads are a [`Timeline`] of bytes.
//!
//! Everything runs on threads inside the lab's namespaces, and stops when
//! told (or when dropped).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use socket2::{Domain, Protocol, Socket, Type};

use crate::mcast::{Arrivals, Numbered};
use crate::netns;

/// When things arrived: `(amount so far, when)`, in order. For a multicast
/// receiver the amount is the datagram's sequence number; for TCP the bytes
/// received so far.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub points: Vec<(u64, Instant)>,
}

impl Timeline {
    /// The datagrams of `stream` in `got`, by arrival.
    pub fn of_datagrams(stream: &Numbered, got: &Arrivals) -> Timeline {
        Timeline { points: got.iter().filter_map(|(_, p, t)| Some((stream.seq_of(p)?, *t))).collect() }
    }

    /// The first arrival at or after `t`: how long after `t` it came.
    pub fn first_after(&self, t: Instant) -> Option<Duration> {
        self.points.iter().find(|(_, at)| *at >= t).map(|(_, at)| at.duration_since(t))
    }

    /// The longest time without an arrival between `from` and `to` (the
    /// edges count: silence from `from` to the first arrival, and from the
    /// last one to `to`).
    pub fn longest_silence(&self, from: Instant, to: Instant) -> Duration {
        let mut last = from;
        let mut longest = Duration::ZERO;
        for (_, at) in self.points.iter().filter(|(_, at)| *at >= from && *at <= to) {
            longest = longest.max(at.duration_since(last));
            last = *at;
        }
        longest.max(to.saturating_duration_since(last))
    }

    /// How much arrived between `from` and `to` (arrivals counted, or for
    /// TCP bytes: the difference of the running totals).
    pub fn count_between(&self, from: Instant, to: Instant) -> usize {
        self.points.iter().filter(|(_, at)| *at >= from && *at <= to).count()
    }

    /// Bytes received between `from` and `to` (TCP timelines).
    pub fn bytes_between(&self, from: Instant, to: Instant) -> u64 {
        let before = self.points.iter().rev().find(|(_, at)| *at < from).map_or(0, |(n, _)| *n);
        let upto = self.points.iter().rev().find(|(_, at)| *at <= to).map_or(0, |(n, _)| *n);
        upto.saturating_sub(before)
    }
}

/// A multicast sender of numbered datagrams at a fixed rate, on its own
/// thread in a lab host, until [`McastStream::stop`].
pub struct McastStream {
    stream: Numbered,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Vec<Instant>>>>,
}

/// What a [`McastStream`] sent: the stream (to read receivers with) and
/// when each sequence number left.
pub struct Sent {
    pub stream: Numbered,
    pub at: Vec<Instant>,
}

impl Sent {
    /// Sequence numbers sent between `from` and `to`.
    pub fn seqs_between(&self, from: Instant, to: Instant) -> std::ops::Range<u64> {
        let a = self.at.iter().position(|t| *t >= from).unwrap_or(self.at.len());
        let b = self.at.iter().rposition(|t| *t <= to).map_or(a, |i| i + 1).max(a);
        a as u64..b as u64
    }

    /// Of the sequence numbers in `seqs`, those missing from `got`.
    pub fn missing(&self, got: &Timeline, seqs: std::ops::Range<u64>) -> u64 {
        let mut seen = vec![false; (seqs.end - seqs.start) as usize];
        for (s, _) in &got.points {
            if seqs.contains(s) {
                seen[(s - seqs.start) as usize] = true;
            }
        }
        seen.iter().filter(|s| !**s).count() as u64
    }
}

impl McastStream {
    /// Sends `size`-byte datagrams to `group` from namespace `ns` out of the
    /// interface with address `iface`, `rate` a second, until stopped.
    pub fn start(ns: &str, iface: Ipv4Addr, group: SocketAddrV4, rate: u32, size: usize) -> McastStream {
        let stream = Numbered::new(size);
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (stream, stop) = (stream.clone(), stop.clone());
            netns::spawn_in(ns, move || -> Result<Vec<Instant>> {
                let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
                s.set_multicast_ttl_v4(8)?;
                s.set_multicast_loop_v4(false)?;
                s.set_multicast_if_v4(&iface).with_context(|| format!("IP_MULTICAST_IF {iface}"))?;
                let s: UdpSocket = s.into();
                let interval = Duration::from_secs(1) / rate.max(1);
                let start = Instant::now();
                let mut at = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let seq = at.len() as u64;
                    let due = start + interval * seq as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    // A send that fails (no route while the bridge is being
                    // rebuilt) is a loss like any other: the number is used.
                    let _ = s.send_to(&stream.payload(seq), group);
                    at.push(Instant::now());
                }
                Ok(at)
            })
        };
        McastStream { stream, stop, handle: Some(handle) }
    }

    /// The stream (to read receivers with before it stops).
    pub fn stream(&self) -> &Numbered {
        &self.stream
    }

    /// Stops sending; what was sent when.
    pub fn stop(mut self) -> Sent {
        self.stop.store(true, Ordering::SeqCst);
        let at = match self.handle.take().expect("running").join() {
            Ok(Ok(at)) => at,
            Ok(Err(e)) => panic!("multicast sender failed: {e:#}"),
            Err(p) => std::panic::resume_unwind(p),
        };
        Sent { stream: self.stream.clone(), at }
    }
}

impl Drop for McastStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// One TCP connection from one lab host to another, written steadily and
/// read on the other side, each byte checked (`byte k` of the stream is
/// `k % 251`).
pub struct TcpStream {
    stop: Arc<AtomicBool>,
    client: Option<JoinHandle<Result<u64>>>,
    server: Option<JoinHandle<Result<Timeline>>>,
}

/// Bytes per write.
const CHUNK: usize = 4096;

fn pattern(offset: u64, buf: &mut [u8]) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = ((offset + k as u64) % 251) as u8;
    }
}

impl TcpStream {
    /// Connects from namespace `from_ns` to `dst`, served in `to_ns`, and
    /// writes `rate` bytes a second (None: as fast as it goes) until
    /// stopped. Returns once the connection is up (30 s at most).
    pub fn start(from_ns: &str, to_ns: &str, dst: SocketAddrV4, rate: Option<u64>) -> Result<TcpStream> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let server = {
            let stop = stop.clone();
            netns::spawn_in(to_ns, move || -> Result<Timeline> {
                let l = TcpListener::bind(dst).with_context(|| format!("bind {dst}"))?;
                let _ = ready_tx.send(());
                l.set_nonblocking(true)?;
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut s = loop {
                    match l.accept() {
                        Ok((s, _)) => break s,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(e) => bail!("no connection on {dst}: {e}"),
                    }
                };
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(Duration::from_millis(100)))?;
                let mut tl = Timeline::default();
                let (mut total, mut buf, mut want) = (0u64, vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
                let mut stopped_at: Option<Instant> = None;
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => return Ok(tl),
                        Ok(n) => {
                            pattern(total, &mut want[..n]);
                            if buf[..n] != want[..n] {
                                bail!("TCP stream corrupted at byte {total}");
                            }
                            total += n as u64;
                            tl.points.push((total, Instant::now()));
                        }
                        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                        Err(e) => bail!("TCP read after {total} bytes: {e}"),
                    }
                    // The client shuts its side down when stopped; give up
                    // waiting for that 20 s later.
                    if stop.load(Ordering::SeqCst) {
                        let t = *stopped_at.get_or_insert_with(Instant::now);
                        if t.elapsed() > Duration::from_secs(20) {
                            bail!("no end of the TCP stream 20 s after it was stopped ({total} bytes)");
                        }
                    }
                }
            })
        };
        ready_rx.recv_timeout(Duration::from_secs(10)).context("TCP listener did not start")?;
        let (up_tx, up_rx) = std::sync::mpsc::channel::<()>();
        let client = {
            let stop = stop.clone();
            netns::spawn_in(from_ns, move || -> Result<u64> {
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut s = loop {
                    match std::net::TcpStream::connect_timeout(&SocketAddr::V4(dst), Duration::from_secs(2)) {
                        Ok(s) => break s,
                        Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                        Err(e) => bail!("connect to {dst}: {e}"),
                    }
                };
                let _ = up_tx.send(());
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(Duration::from_millis(100)))?;
                let (start, mut sent, mut buf) = (Instant::now(), 0u64, vec![0u8; CHUNK]);
                let mut filled = 0..0;
                while !stop.load(Ordering::SeqCst) {
                    if filled.is_empty() {
                        if let Some(r) = rate {
                            let due = start + Duration::from_secs_f64(sent as f64 / r as f64);
                            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait.min(Duration::from_millis(100)));
                                continue;
                            }
                        }
                        pattern(sent, &mut buf);
                        filled = 0..CHUNK;
                    }
                    match s.write(&buf[filled.clone()]) {
                        Ok(n) => {
                            filled.start += n;
                            sent += n as u64;
                        }
                        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                        Err(e) => bail!("TCP write after {sent} bytes: {e}"),
                    }
                }
                // Whatever is in flight arrives, then the end.
                s.set_write_timeout(Some(Duration::from_secs(20)))?;
                // (the rest of a chunk a timed-out write left half written).
                let rest = filled.len() as u64;
                s.write_all(&buf[filled])?;
                s.shutdown(Shutdown::Write)?;
                Ok(sent + rest)
            })
        };
        if up_rx.recv_timeout(Duration::from_secs(35)).is_err() {
            stop.store(true, Ordering::SeqCst);
            let err = match client.join() {
                Ok(Err(e)) => e,
                _ => anyhow::anyhow!("the TCP client did not connect"),
            };
            let _ = server.join();
            return Err(err);
        }
        Ok(TcpStream { stop, client: Some(client), server: Some(server) })
    }

    /// Stops writing, waits for every byte to arrive: the reads' timeline
    /// and the bytes sent.
    pub fn stop(mut self) -> Result<(Timeline, u64)> {
        self.stop.store(true, Ordering::SeqCst);
        let sent = match self.client.take().expect("running").join() {
            Ok(r) => r.context("TCP client")?,
            Err(p) => std::panic::resume_unwind(p),
        };
        let tl = match self.server.take().expect("running").join() {
            Ok(r) => r.context("TCP server")?,
            Err(p) => std::panic::resume_unwind(p),
        };
        let got = tl.points.last().map_or(0, |(n, _)| *n);
        if got != sent {
            bail!("TCP: {sent} bytes sent, {got} received");
        }
        Ok((tl, sent))
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.client.take() {
            let _ = h.join();
        }
        if let Some(h) = self.server.take() {
            let _ = h.join();
        }
    }
}

/// Seconds with a millisecond fraction, for the figures printed.
pub fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timelines_measure_silences_and_returns() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let tl = Timeline { points: vec![(1, ms(100)), (2, ms(200)), (3, ms(1200)), (4, ms(1300))] };
        assert_eq!(tl.longest_silence(t0, ms(1300)), Duration::from_millis(1000));
        assert_eq!(tl.longest_silence(t0, ms(3300)), Duration::from_millis(2000), "the end counts");
        assert_eq!(tl.first_after(ms(500)), Some(Duration::from_millis(700)));
        assert_eq!(tl.first_after(ms(1301)), None);
        assert_eq!(tl.count_between(ms(150), ms(1250)), 2);
        assert_eq!(tl.bytes_between(ms(150), ms(1250)), 2, "3 - 1");
        let sent = Sent { stream: Numbered::new(16), at: vec![ms(0), ms(100), ms(200), ms(300)] };
        assert_eq!(sent.seqs_between(ms(50), ms(250)), 1..3);
        assert_eq!(sent.missing(&tl, 0..4), 1, "0 never arrived");
    }
}
