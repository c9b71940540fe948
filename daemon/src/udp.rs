//! The mesh's UDP socket with segmentation offloads: a run of equal-sized
//! datagrams to one peer (the fragments of a super-frame, say) leaves in one
//! `sendmsg` with `UDP_SEGMENT`, and datagrams of one flow arrive coalesced
//! (`UDP_GRO`) and are split here. Where the kernel lacks either, it falls
//! back to one datagram per call.

use socket2::SockAddr;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

/// Most segments the kernel takes in one UDP_SEGMENT send.
const MAX_SEGMENTS: usize = 64;
/// Largest coalesced send.
const MAX_GSO_BYTES: usize = 65_000;

/// Asks the kernel to coalesce received datagrams of a flow (UDP_GRO).
pub fn enable_gro(fd: RawFd) -> bool {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt with an int option.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            libc::UDP_GRO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// Receives into `buf`: the bytes, the sender, and the segment size when
/// several datagrams were coalesced (each `seg` bytes, the last maybe less).
pub fn recv_gro(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<usize>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut cmsg = [0u64; 8];
    // SAFETY: sockaddr_storage is plain old data.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // SAFETY: msghdr is plain old data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg);
    // SAFETY: recvmsg(2) with the buffers described by msg.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let from =
        socket_addr(&addr).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "sender is not an IP address"))?;
    let mut seg = None;
    // SAFETY: walking the control messages the kernel wrote into `cmsg`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                if size > 0 && (size as usize) < n as usize {
                    seg = Some(size as usize);
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, from, seg))
}

/// The IP address and port in a `sockaddr_storage` the kernel filled.
fn socket_addr(a: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match a.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let v4 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::from((u32::from_be(v4.sin_addr.s_addr).to_be_bytes(), u16::from_be(v4.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let v6 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                v6.sin6_addr.s6_addr.into(),
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Collects outgoing datagrams and sends runs of equal-sized ones to the
/// same address with one `UDP_SEGMENT` sendmsg.
pub struct TxBatch {
    buf: Vec<u8>,
    dst: Option<SocketAddr>,
    seg: usize,
    count: usize,
    /// The last datagram was shorter than `seg`: nothing may follow it.
    closed: bool,
    gso: bool,
    /// Datagrams the kernel refused.
    pub failed: u64,
}

impl TxBatch {
    pub fn new(gso: bool) -> Self {
        TxBatch {
            buf: Vec::with_capacity(MAX_GSO_BYTES + 2048),
            dst: None,
            seg: 0,
            count: 0,
            closed: false,
            gso,
            failed: 0,
        }
    }

    /// Queues one datagram, sending what is queued first if it cannot join.
    pub fn push(&mut self, fd: &impl AsRawFd, to: SocketAddr, datagram: &[u8]) {
        let joins = self.gso
            && self.dst == Some(to)
            && !self.closed
            && datagram.len() <= self.seg
            && self.count < MAX_SEGMENTS
            && self.buf.len() + datagram.len() <= MAX_GSO_BYTES;
        if !joins {
            self.flush(fd);
            self.dst = Some(to);
            self.seg = datagram.len();
        }
        self.buf.extend_from_slice(datagram);
        self.count += 1;
        self.closed = datagram.len() < self.seg;
    }

    /// Sends what is queued.
    pub fn flush(&mut self, fd: &impl AsRawFd) {
        let Some(dst) = self.dst.take() else { return };
        let r = if self.count > 1 {
            send_gso(fd.as_raw_fd(), dst, &self.buf, self.seg)
        } else {
            send_one(fd.as_raw_fd(), dst, &self.buf)
        };
        match r {
            Ok(()) => {}
            // The kernel or the path refuses segmentation: fall back for good.
            Err(e)
                if self.count > 1 && matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIO | libc::EOPNOTSUPP)) =>
            {
                self.gso = false;
                tracing::info!("UDP segmentation offload unavailable ({e}); sending datagrams one by one");
                for chunk in self.buf.chunks(self.seg) {
                    if send_one(fd.as_raw_fd(), dst, chunk).is_err() {
                        self.failed += 1;
                    }
                }
            }
            // A full socket buffer and the like: these datagrams are lost.
            Err(_) => self.failed += self.count as u64,
        }
        self.buf.clear();
        self.count = 0;
        self.closed = false;
    }
}

fn send_one(fd: RawFd, dst: SocketAddr, data: &[u8]) -> io::Result<()> {
    let addr = SockAddr::from(dst);
    // SAFETY: sendto(2) from a buffer of the length given, to a valid address.
    let n = unsafe {
        libc::sendto(fd, data.as_ptr().cast(), data.len(), libc::MSG_DONTWAIT, addr.as_ptr().cast(), addr.len())
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn send_gso(fd: RawFd, dst: SocketAddr, data: &[u8], seg: usize) -> io::Result<()> {
    let addr = SockAddr::from(dst);
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    let mut cmsg = [0u64; 4];
    // SAFETY: msghdr is plain old data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = addr.as_ptr() as *mut libc::c_void;
    msg.msg_namelen = addr.len();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a size computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as usize;
    // SAFETY: the control buffer holds one cmsg with a u16 (checked by CMSG_SPACE above).
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = libc::UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, seg as u16);
    }
    // SAFETY: sendmsg(2) with the buffers described by msg.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesced_sends_arrive_as_the_same_datagrams() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let gro = enable_gro(rx.as_raw_fd());
        let mut batch = TxBatch::new(true);
        let sent: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; if i == 9 { 300 } else { 1000 }]).collect();
        for d in &sent {
            batch.push(&tx, to, d);
        }
        batch.push(&tx, to, &[42; 10]); // after a short one: a new run
        batch.flush(&tx);
        assert_eq!(batch.failed, 0);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65_536];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < 11 && std::time::Instant::now() < deadline {
            match recv_gro(rx.as_raw_fd(), &mut buf) {
                Ok((n, from, seg)) => {
                    assert_eq!(from, tx.local_addr().unwrap());
                    for d in buf[..n].chunks(seg.unwrap_or(n)) {
                        got.push(d.to_vec());
                    }
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        let mut want = sent.clone();
        want.push(vec![42; 10]);
        assert_eq!(got, want, "gro={gro}");
    }
}
