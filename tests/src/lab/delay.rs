//! A delay line on the underlay, for long round trips without netem.
//!
//! The kernel here has neither netem nor fq (whose timed departures a BPF
//! program could set), so a long path is made in user space: host `i`'s
//! port `v{i}` leaves the bridge, a new veth pair `d{i}a`/`d{i}b` takes its
//! place (`d{i}b` on the bridge), and two threads in the underlay namespace
//! carry every frame between `v{i}` and `d{i}a`, each `one_way` after it
//! arrived. A round trip between host `i` and any other gains twice
//! `one_way`; the underlay's rules (loss, blocks) still apply on the
//! bridge. The pump handles some 100k frames a second each way, which is
//! far above what TCP reaches on a lossy path tens of milliseconds long
//! (the use it is for), and far below a line-rate bench.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::Lab;
use crate::netns;

/// Frames held in one direction at most; beyond, frames are dropped and
/// counted (at 100k frames/s that is 2 s of delay).
const MAX_HELD: usize = 200_000;

/// A running delay line (see the module doc). [`DelayLine::stop`] (or
/// dropping it) stops the pump and puts `v{i}` back on the bridge.
pub struct DelayLine {
    underlay: String,
    host: usize,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    /// Frames carried, and frames dropped because too many were held.
    pub carried: Arc<AtomicU64>,
    pub overflowed: Arc<AtomicU64>,
}

impl Lab {
    /// Delays every frame to and from host `i` on the underlay by
    /// `one_way` (see [`DelayLine`]).
    pub fn delay_host(&self, i: usize, one_way: Duration) -> Result<DelayLine> {
        let (u, v, a, b) = (&self.underlay, format!("v{i}"), format!("d{i}a"), format!("d{i}b"));
        netns::ip_batch(
            Some(u),
            &format!(
                "link set {v} nomaster\nlink add {a} type veth peer name {b}\nlink set {b} master br0 up\nlink set {a} up\n"
            ),
        )
        .with_context(|| format!("rewire host {i}'s underlay port through a delay line"))?;
        let mut line = DelayLine {
            underlay: u.clone(),
            host: i,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            carried: Arc::default(),
            overflowed: Arc::default(),
        };
        for (from, to) in [(v.clone(), a.clone()), (a, v)] {
            let (stop, carried, overflowed) = (line.stop.clone(), line.carried.clone(), line.overflowed.clone());
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            line.threads.push(netns::spawn_in(u, move || {
                let sockets = (|| Ok::<_, io::Error>((PacketSocket::open(&from)?, PacketSocket::open(&to)?)))();
                let (rx, tx) = match sockets {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return Err(e);
                    }
                };
                pump(&rx, &tx, one_way, &stop, &carried, &overflowed)
            }));
            ready_rx
                .recv()
                .context("the delay line's thread ended")?
                .map_err(anyhow::Error::msg)
                .context("open the delay line's packet sockets")?;
        }
        Ok(line)
    }
}

impl DelayLine {
    /// Stops the pump and puts the host's port back on the bridge,
    /// collecting what went wrong instead of stopping at it.
    pub fn stop(mut self) -> Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        let mut errors = Vec::new();
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(format!("pump: {e}")),
                Err(_) => errors.push("pump panicked".into()),
            }
        }
        let (i, u) = (self.host, &self.underlay);
        if let Err(e) = netns::ip_batch(Some(u), &format!("link del d{i}a\nlink set v{i} master br0 up\n")) {
            errors.push(format!("rewire host {i} back onto the bridge: {e:#}"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(errors.join("; ")))
        }
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            let _ = self.teardown();
        }
    }
}

/// Carries frames from `rx` to `tx`, each `delay` after it arrived, until
/// `stop`.
fn pump(
    rx: &PacketSocket,
    tx: &PacketSocket,
    delay: Duration,
    stop: &AtomicBool,
    carried: &AtomicU64,
    overflowed: &AtomicU64,
) -> io::Result<()> {
    let mut held: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    // Buffers of frames sent, for the next ones (no allocation per frame).
    let mut free: Vec<Vec<u8>> = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while held.front().is_some_and(|(t, _)| *t <= now) {
            let (_, f) = held.pop_front().expect("a front");
            // A full transmit queue drops the frame, as a wire would.
            let _ = tx.send(&f);
            carried.fetch_add(1, Ordering::Relaxed);
            free.push(f);
        }
        let wait = held.front().map_or(Duration::from_millis(10), |(t, _)| t.saturating_duration_since(now));
        if !rx.wait_readable(wait.min(Duration::from_millis(10)))? {
            continue;
        }
        let arrived = Instant::now();
        for _ in 0..64 {
            let Some(n) = rx.recv(&mut buf)? else { break };
            if held.len() >= MAX_HELD {
                overflowed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let mut f = free.pop().unwrap_or_default();
            f.clear();
            f.extend_from_slice(&buf[..n]);
            held.push_back((arrived + delay, f));
        }
    }
    Ok(())
}

/// An `AF_PACKET` socket bound to one interface, blind to what is sent
/// there, reading and writing frames behind a virtio-net header.
struct PacketSocket(std::os::fd::OwnedFd);

impl PacketSocket {
    fn open(ifname: &str) -> io::Result<Self> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket call; the fd is owned right away.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(proto)) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh socket we own.
        let s = PacketSocket(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        let name = std::ffi::CString::new(ifname).map_err(|_| io::Error::other("interface name"))?;
        // SAFETY: a valid C string.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = index as i32;
        // SAFETY: valid pointers and lengths for the call.
        if unsafe {
            libc::bind(
                s.0.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        for (level, opt, value) in [
            // A window of TCP arrives in one burst and waits in the pump,
            // not in the socket.
            (libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 32 << 20),
            (libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 32 << 20),
            // The frames sent on this interface (the other direction's)
            // are not read back.
            (libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1),
            // Each frame comes with a virtio-net header and goes out with
            // it, so a checksum left to the NIC (veths pass UDP and TCP with
            // checksums not yet computed) stays so; sent bare, the frame
            // would arrive with a wrong checksum.
            (libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1),
        ] {
            s.set_int(level, opt, value)?;
        }
        Ok(s)
    }

    /// Sets an integer socket option.
    fn set_int(&self, level: libc::c_int, opt: libc::c_int, value: libc::c_int) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid pointer to an int and its length.
        let r = unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                level,
                opt,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until a frame can be read, at most `timeout`.
    fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        let mut p = libc::pollfd { fd: self.0.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ts = libc::timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: i64::from(timeout.subsec_nanos()) };
        // SAFETY: one valid pollfd, a valid timespec, no signal mask.
        let r = unsafe { libc::ppoll(&mut p, 1, &ts, std::ptr::null()) };
        match r {
            r if r > 0 => Ok(true),
            0 => Ok(false),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Reads one frame without waiting; `None` when there is none.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        use std::os::fd::AsRawFd;
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        }
    }

    /// Sends one frame on the bound interface.
    fn send(&self, frame: &[u8]) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: frame is valid for its length.
        let n = unsafe { libc::send(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len(), libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
