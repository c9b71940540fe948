//! Small traffic probes written with std::net and socket2, run on threads
//! that joined a lab namespace: TCP transfer with a digest, UDP echo,
//! multicast sender and receiver, raw IPv4 injection (for replay and
//! spoofing), plain UDP sends.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use socket2::{Domain, Protocol, Socket, Type};

use crate::netns;

/// A 64-bit FNV-1a hash: enough to tell that a transfer arrived intact.
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Sends `data` over TCP from namespace `from_ns` to `dst`, where a
/// listener bound to `dst` is started in `to_ns`; checks that the receiver
/// got exactly those bytes and that its digest (length and hash, sent back
/// over the same connection) came back. Everything is bounded by `timeout`.
pub fn tcp_transfer(from_ns: &str, to_ns: &str, dst: SocketAddrV4, data: &[u8], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let server = netns::spawn_in(to_ns, move || -> Result<Vec<u8>> {
        let l = TcpListener::bind(dst).with_context(|| format!("bind {dst}"))?;
        let _ = ready_tx.send(());
        l.set_nonblocking(true)?;
        let (mut s, _) = loop {
            match l.accept() {
                Ok(c) => break c,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        bail!("no TCP connection on {dst} before the deadline");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e.into()),
            }
        };
        s.set_nonblocking(false)?;
        s.set_read_timeout(Some(remaining(deadline)))?;
        let mut got = Vec::new();
        s.read_to_end(&mut got).context("server read")?;
        let mut answer = Vec::with_capacity(16);
        answer.extend_from_slice(&(got.len() as u64).to_be_bytes());
        answer.extend_from_slice(&fnv1a(&got).to_be_bytes());
        s.write_all(&answer)?;
        s.shutdown(Shutdown::Write)?;
        Ok(got)
    });
    if ready_rx.recv_timeout(remaining(deadline)).is_err() {
        return match server.join() {
            Ok(Err(e)) => Err(e.context(format!("TCP listener in {to_ns}"))),
            _ => Err(anyhow!("TCP listener in {to_ns} did not start")),
        };
    }
    let sent = data.to_vec();
    let client = netns::run_in(from_ns, {
        let sent = sent.clone();
        move || -> Result<[u8; 16]> {
            let mut s = loop {
                match TcpStream::connect_timeout(&SocketAddr::V4(dst), remaining(deadline)) {
                    Ok(s) => break s,
                    Err(_) if Instant::now() + Duration::from_millis(200) < deadline => {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    Err(e) => bail!("connect to {dst}: {e}"),
                }
            };
            s.set_write_timeout(Some(remaining(deadline)))?;
            s.set_read_timeout(Some(remaining(deadline)))?;
            s.write_all(&sent).context("client write")?;
            s.shutdown(Shutdown::Write)?;
            let mut answer = [0u8; 16];
            s.read_exact(&mut answer).context("client read of the digest")?;
            Ok(answer)
        }
    });
    let got = server.join().map_err(|_| anyhow!("TCP server thread panicked"))?;
    let answer = client?;
    let got = got?;
    if got.len() != sent.len() || got != sent {
        bail!(
            "receiver got {} bytes (hash {:x}), sent {} bytes (hash {:x})",
            got.len(),
            fnv1a(&got),
            sent.len(),
            fnv1a(&sent)
        );
    }
    if data_len_hash(&answer) != (sent.len() as u64, fnv1a(&sent)) {
        bail!("the digest that came back is wrong: {:?}", data_len_hash(&answer));
    }
    Ok(())
}

/// Sends `payload` by UDP from namespace `from_ns` to `dst`, where an echo
/// server runs in `to_ns`, and waits for the same bytes to come back;
/// retries every 500 ms until `timeout`. Returns how many sends it took.
pub fn udp_echo(from_ns: &str, to_ns: &str, dst: SocketAddrV4, payload: &[u8], timeout: Duration) -> Result<u32> {
    let deadline = Instant::now() + timeout;
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let server = {
        let stop = stop.clone();
        netns::spawn_in(to_ns, move || -> Result<u64> {
            let s = UdpSocket::bind(dst).with_context(|| format!("bind UDP {dst}"))?;
            let _ = ready_tx.send(());
            s.set_read_timeout(Some(Duration::from_millis(100)))?;
            let mut buf = vec![0u8; 65536];
            let mut echoed = 0;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                match s.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        s.send_to(&buf[..n], from)?;
                        echoed += 1;
                    }
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(echoed)
        })
    };
    if ready_rx.recv_timeout(remaining(deadline)).is_err() {
        return match server.join() {
            Ok(Err(e)) => Err(e.context(format!("UDP echo server in {to_ns}"))),
            _ => Err(anyhow!("UDP echo server in {to_ns} did not start")),
        };
    }
    let payload = payload.to_vec();
    let result = netns::run_in(from_ns, move || -> Result<u32> {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut buf = vec![0u8; 65536];
        let mut tries = 0;
        while Instant::now() < deadline {
            tries += 1;
            if let Err(e) = s.send_to(&payload, dst) {
                // e.g. EHOSTUNREACH while ARP fails: retry until the deadline.
                let _ = e;
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            let until = Instant::now() + Duration::from_millis(500);
            while Instant::now() < until {
                match s.recv_from(&mut buf) {
                    Ok((n, from)) if from == SocketAddr::V4(dst) && buf[..n] == payload[..] => return Ok(tries),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        bail!("no UDP echo from {dst} after {tries} sends")
    });
    stop.store(true, Ordering::SeqCst);
    let _ = server.join();
    result
}

/// Datagrams received: (source, payload).
pub type Datagrams = Vec<(SocketAddr, Vec<u8>)>;

/// A UDP receiver on a background thread (unicast or multicast), collecting
/// datagrams until [`Receiver::finish`] (or drop).
pub struct Receiver {
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Datagrams>>,
    handle: Option<JoinHandle<Result<()>>>,
}

impl Receiver {
    /// How many datagrams arrived so far.
    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// Waits until at least `n` datagrams arrived; false at the deadline.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        crate::wait_until(timeout, || self.count() >= n)
    }

    /// Stops receiving and returns what arrived (source, payload).
    pub fn finish(mut self) -> Datagrams {
        self.stop.store(true, Ordering::SeqCst);
        match self.handle.take().expect("receiver handle").join() {
            Ok(Ok(())) => std::mem::take(&mut *self.got.lock().unwrap()),
            Ok(Err(e)) => panic!("UDP receiver failed: {e:#}"),
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Starts a UDP receiver in namespace `ns` bound to `0.0.0.0:port`; when
/// `group` is given it joins that IPv4 multicast group on the interface
/// that has address `iface` (or the kernel's choice when `iface` is None).
/// Returns once the socket is bound (and joined).
pub fn udp_listen(ns: &str, port: u16, group: Option<Ipv4Addr>, iface: Option<Ipv4Addr>) -> Result<Receiver> {
    let stop = Arc::new(AtomicBool::new(false));
    let got = Arc::new(Mutex::new(Vec::new()));
    let (ready_tx, ready_rx) = mpsc::channel::<std::result::Result<(), String>>();
    let (stop2, got2) = (stop.clone(), got.clone());
    let handle = netns::spawn_in(ns, move || -> Result<()> {
        let open = || -> Result<UdpSocket> {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            s.set_reuse_address(true)?;
            s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
            if let Some(g) = group {
                s.join_multicast_v4(&g, &iface.unwrap_or(Ipv4Addr::UNSPECIFIED))
                    .with_context(|| format!("join {g} on {iface:?}"))?;
            }
            let s: UdpSocket = s.into();
            s.set_read_timeout(Some(Duration::from_millis(100)))?;
            Ok(s)
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
        let mut buf = vec![0u8; 65536];
        loop {
            let stopping = stop2.load(Ordering::SeqCst);
            match s.recv_from(&mut buf) {
                Ok((n, from)) => got2.lock().unwrap().push((from, buf[..n].to_vec())),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if stopping {
                        break;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    });
    match ready_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok(Receiver { stop, got, handle: Some(handle) }),
        Ok(Err(e)) => {
            let _ = handle.join();
            bail!("UDP receiver in {ns}: {e}")
        }
        Err(_) => bail!("UDP receiver in {ns} did not start"),
    }
}

/// Sends each payload by UDP from namespace `ns` to `dst` (unicast,
/// broadcast or multicast). For multicast, `iface` picks the outgoing
/// interface by its address; `ttl` is the multicast TTL. `bind` sets the
/// source address/port (None: any). Pauses `gap` between datagrams.
pub fn udp_send(
    ns: &str,
    bind: Option<SocketAddrV4>,
    dst: SocketAddrV4,
    iface: Option<Ipv4Addr>,
    payloads: &[Vec<u8>],
    gap: Duration,
) -> Result<()> {
    let payloads = payloads.to_vec();
    netns::run_in(ns, move || -> Result<()> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_broadcast(true)?;
        if let Some(b) = bind {
            s.bind(&SocketAddr::V4(b).into())?;
        }
        if dst.ip().is_multicast() {
            s.set_multicast_ttl_v4(8)?;
            s.set_multicast_loop_v4(false)?;
            if let Some(i) = iface {
                s.set_multicast_if_v4(&i)?;
            }
        }
        let s: UdpSocket = s.into();
        for p in &payloads {
            s.send_to(p, dst).with_context(|| format!("send {} bytes to {dst}", p.len()))?;
            if !gap.is_zero() {
                std::thread::sleep(gap);
            }
        }
        Ok(())
    })
}

/// Injects whole IPv4 packets (header included, any source address) from
/// namespace `ns` through a raw socket. The kernel routes each by its
/// destination address and fills in the IP checksum and identification.
pub fn send_raw_ipv4(ns: &str, packets: &[Vec<u8>], gap: Duration) -> Result<()> {
    let packets = packets.to_vec();
    netns::run_in(ns, move || -> Result<()> {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))?;
        for p in &packets {
            let h = crate::packet::parse_ipv4(p).ok_or_else(|| anyhow!("not an IPv4 packet"))?;
            let dst = SocketAddr::from((h.dst, 0));
            s.send_to(p, &dst.into()).with_context(|| format!("raw send of {} bytes to {}", p.len(), h.dst))?;
            if !gap.is_zero() {
                std::thread::sleep(gap);
            }
        }
        Ok(())
    })
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(10))
}

fn data_len_hash(answer: &[u8; 16]) -> (u64, u64) {
    (u64::from_be_bytes(answer[..8].try_into().unwrap()), u64::from_be_bytes(answer[8..].try_into().unwrap()))
}
