//! Capturing every frame in a namespace with an `AF_PACKET` raw socket
//! (no tcpdump needed), on a background thread that joined the namespace.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::netns;
use crate::packet;

/// Direction of a captured frame (`sll_pkttype`).
pub const PACKET_HOST: u8 = 0;
pub const PACKET_BROADCAST: u8 = 1;
pub const PACKET_MULTICAST: u8 = 2;
pub const PACKET_OTHERHOST: u8 = 3;
pub const PACKET_OUTGOING: u8 = 4;

/// One captured frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Interface index inside the captured namespace.
    pub ifindex: i32,
    /// `PACKET_*` type of the frame.
    pub pkttype: u8,
    /// The whole Ethernet frame.
    pub data: Vec<u8>,
}

impl Frame {
    /// The UDP datagram carried by this frame, if any.
    pub fn udp(&self) -> Option<packet::UdpDatagram<'_>> {
        packet::udp_of_frame(&self.data)
    }
    /// The IPv4 packet carried by this frame, if any.
    pub fn ipv4(&self) -> Option<&[u8]> {
        packet::ipv4_of_frame(&self.data)
    }
}

/// A running capture of all frames on all interfaces of one namespace.
/// Stop it with [`Capture::finish`]; dropping it stops it too.
pub struct Capture {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<io::Result<Vec<Frame>>>>,
}

impl Capture {
    /// Starts capturing in namespace `ns`; returns once the socket is open,
    /// so whatever is sent after this call is seen.
    pub fn start(ns: &str) -> io::Result<Capture> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        let stop2 = stop.clone();
        let handle = netns::spawn_in(ns, move || -> io::Result<Vec<Frame>> {
            let fd = match open_packet_socket() {
                Ok(fd) => {
                    let _ = ready_tx.send(Ok(()));
                    fd
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            };
            let mut frames = Vec::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                // Read until a timeout after the stop flag is set, so frames
                // queued before the stop are not lost.
                let stopping = stop2.load(Ordering::SeqCst);
                let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut alen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                // SAFETY: buf and addr are valid for the given lengths.
                let n = unsafe {
                    libc::recvfrom(
                        fd,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        (&mut addr as *mut libc::sockaddr_ll).cast(),
                        &mut alen,
                    )
                };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                            if stopping {
                                break;
                            }
                            continue;
                        }
                        io::ErrorKind::Interrupted => continue,
                        _ => {
                            unsafe { libc::close(fd) };
                            return Err(e);
                        }
                    }
                }
                frames.push(Frame {
                    ifindex: addr.sll_ifindex,
                    pkttype: addr.sll_pkttype,
                    data: buf[..n as usize].to_vec(),
                });
            }
            unsafe { libc::close(fd) };
            Ok(frames)
        });
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(Capture { stop, handle: Some(handle) }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => Err(io::Error::other("capture thread did not start")),
        }
    }

    /// Stops the capture and returns every frame seen.
    pub fn finish(mut self) -> Vec<Frame> {
        self.stop.store(true, Ordering::SeqCst);
        let h = self.handle.take().expect("capture handle");
        match h.join() {
            Ok(Ok(frames)) => frames,
            Ok(Err(e)) => panic!("capture failed: {e}"),
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn open_packet_socket() -> io::Result<libc::c_int> {
    let proto = (libc::ETH_P_ALL as u16).to_be() as libc::c_int;
    // SAFETY: plain socket calls with valid arguments.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let rcvbuf: libc::c_int = 16 << 20;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&rcvbuf as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
        if libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        ) != 0
        {
            let e = io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        Ok(fd)
    }
}
