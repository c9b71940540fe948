//! Software segmentation of TCP super-frames, and the TCP peek the
//! lossy-path detection uses.
//!
//! With TAP offloads a local TCP sender hands the daemon "super-frames" of
//! up to 64 KiB (see [`crate::vnet`]). weavers normally carries one whole,
//! in ~45 pieces that the receiver reassembles, so one lost piece loses
//! all of it: with a packet loss p a super-frame survives with (1-p)^45,
//! 64% at 1%, 10% at 5%, and TCP collapses (issue 14). On a path that
//! loses, the sender instead cuts the super-frame here into the TCP
//! segments the receiving kernel would have cut it into (`gso_size` bytes
//! of payload each), each a complete plain Ethernet frame that travels like
//! any other (bundled per peer), so a lost datagram costs only its own
//! segment.
//!
//! Each segment gets the super-frame's Ethernet (and at most one VLAN
//! tag), IP and TCP headers with: IPv4 total length, identification + i
//! and header checksum; IPv6 payload length; TCP sequence number + i *
//! gso_size; FIN and PSH only on the last segment, CWR only on the first
//! (as the kernel's own GSO does; the ECN bit of `gso_type` only says CWR
//! may be set); and a complete TCP checksum over the pseudo-header, header
//! and payload (the super-frame's checksum field holds only a partial sum
//! and is not used).
//!
//! Sans-IO: [`Segments`] borrows the super-frame and writes one segment at
//! a time into a buffer the caller owns; nothing is allocated. Input is
//! treated as hostile (a local member may write any frame with any virtio
//! header through a packet socket): anything odd is an error, never a
//! panic, and the caller sends the super-frame the usual way instead.

use crate::vnet::{VnetHdr, GSO_ECN, GSO_TCPV4, GSO_TCPV6};

/// Ethernet header length without a VLAN tag.
const ETH_LEN: usize = 14;
/// IPv6 fixed header length.
const IPV6_LEN: usize = 40;
/// IP protocol number of TCP.
const TCP: u8 = 6;
/// TCP flag bits (byte 13 of the header).
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

/// Most segments one super-frame may be cut into. A real TCP sender's
/// 64 KiB with an MSS of 536 (the smallest common one) makes 123.
pub const MAX_SEGMENTS: usize = 256;

/// Why a super-frame cannot be segmented here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// The virtio header does not ask for TCP segmentation (v4 or v6).
    #[error("not TCP segmentation")]
    NotTcpGso,
    /// A segment size of zero.
    #[error("gso_size 0")]
    ZeroSize,
    /// Not IPv4/IPv6 carrying TCP as the header says (another protocol,
    /// a version mismatch, an IPv4 fragment, IPv6 extension headers).
    #[error("not a TCP/IP frame matching its header")]
    NotTcp,
    /// A header or length field reaches past the frame.
    #[error("headers or lengths past the frame")]
    Truncated,
    /// No TCP payload to cut.
    #[error("no payload")]
    NoPayload,
    /// A segment would exceed the largest frame the caller allows, or
    /// there would be more than [`MAX_SEGMENTS`].
    #[error("segments too large or too many")]
    TooLarge,
}

/// Where the headers of a TCP/IP Ethernet frame are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Start of the IP header (14, or 18 behind one VLAN tag).
    pub(crate) l3: usize,
    /// Start of the TCP header.
    pub(crate) l4: usize,
    /// End of the TCP header: where the payload starts.
    pub(crate) data: usize,
    /// End of the IP packet (Ethernet padding after it is not payload).
    pub(crate) end: usize,
    pub(crate) v6: bool,
}

/// Finds the headers of a TCP/IP frame, IPv4 (not a fragment) or IPv6
/// (no extension headers), behind at most one VLAN tag. Every offset is
/// checked against the frame.
pub(crate) fn layout(frame: &[u8]) -> Result<Layout, SegmentError> {
    let ether = |at: usize| frame.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let (l3, ty) = match ether(12) {
        Some(0x8100) => (ETH_LEN + 4, ether(16)),
        ty => (ETH_LEN, ty),
    };
    let (v6, l4, end) = match ty {
        Some(0x0800) => {
            let h = frame.get(l3..l3 + 20).ok_or(SegmentError::Truncated)?;
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let frag = u16::from_be_bytes([h[6], h[7]]) & 0x3fff;
            if h[0] >> 4 != 4 || ihl < 20 || h[9] != TCP || frag != 0 {
                return Err(SegmentError::NotTcp);
            }
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            if total < ihl {
                return Err(SegmentError::Truncated);
            }
            (false, l3 + ihl, l3 + total)
        }
        Some(0x86dd) => {
            let h = frame.get(l3..l3 + IPV6_LEN).ok_or(SegmentError::Truncated)?;
            if h[0] >> 4 != 6 || h[6] != TCP {
                return Err(SegmentError::NotTcp);
            }
            let payload = usize::from(u16::from_be_bytes([h[4], h[5]]));
            (true, l3 + IPV6_LEN, l3 + IPV6_LEN + payload)
        }
        Some(_) => return Err(SegmentError::NotTcp),
        None => return Err(SegmentError::Truncated),
    };
    if end > frame.len() || l4 + 20 > end {
        return Err(SegmentError::Truncated);
    }
    let data = l4 + usize::from(frame[l4 + 12] >> 4) * 4;
    if data < l4 + 20 || data > end {
        return Err(SegmentError::Truncated);
    }
    Ok(Layout { l3, l4, data, end, v6 })
}

/// A TCP/IP frame's addresses, ports, sequence number and payload length:
/// what the sender's retransmission detection looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpData {
    /// Source and destination addresses (IPv4 in the first 4 bytes).
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub v6: bool,
    pub seq: u32,
    /// Payload bytes (without Ethernet padding).
    pub len: u32,
    /// The SYN flag: a new connection, whose sequence space starts afresh.
    pub syn: bool,
}

/// Looks at a frame as TCP/IP (see [`layout`]); `None` for anything else.
/// Cheap for what is not TCP: one or two comparisons.
pub fn tcp_data(frame: &[u8]) -> Option<TcpData> {
    // Most non-TCP frames stop here, before any other work.
    let proto_at = match frame.get(12..14)? {
        [0x08, 0x00] => ETH_LEN + 9,
        [0x86, 0xdd] => ETH_LEN + 6,
        [0x81, 0x00] => ETH_LEN + 4 + if frame.get(16..18)? == [0x86, 0xdd] { 6 } else { 9 },
        _ => return None,
    };
    if *frame.get(proto_at)? != TCP {
        return None;
    }
    let l = layout(frame).ok()?;
    let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
    if l.v6 {
        src.copy_from_slice(&frame[l.l3 + 8..l.l3 + 24]);
        dst.copy_from_slice(&frame[l.l3 + 24..l.l3 + 40]);
    } else {
        src[..4].copy_from_slice(&frame[l.l3 + 12..l.l3 + 16]);
        dst[..4].copy_from_slice(&frame[l.l3 + 16..l.l3 + 20]);
    }
    let t = &frame[l.l4..];
    Some(TcpData {
        src,
        dst,
        src_port: u16::from_be_bytes([t[0], t[1]]),
        dst_port: u16::from_be_bytes([t[2], t[3]]),
        v6: l.v6,
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        len: (l.end - l.data) as u32,
        syn: t[13] & SYN != 0,
    })
}

/// The segments of one TCP super-frame, written one at a time into the
/// caller's buffer ([`Segments::next_into`]).
#[derive(Debug)]
pub struct Segments<'a> {
    frame: &'a [u8],
    l: Layout,
    size: usize,
    count: usize,
    next: usize,
    seq: u32,
    ip_id: u16,
    flags: u8,
}

impl<'a> Segments<'a> {
    /// Checks the super-frame `frame` (from its Ethernet header on) with its
    /// virtio header `hdr`, for segments of at most `max_len` bytes each
    /// (Ethernet header included).
    pub fn new(hdr: &VnetHdr, frame: &'a [u8], max_len: usize) -> Result<Self, SegmentError> {
        let v6 = match hdr.gso_type & !GSO_ECN {
            GSO_TCPV4 => false,
            GSO_TCPV6 => true,
            _ => return Err(SegmentError::NotTcpGso),
        };
        let size = usize::from(hdr.gso_size);
        if size == 0 {
            return Err(SegmentError::ZeroSize);
        }
        let l = layout(frame)?;
        if l.v6 != v6 {
            return Err(SegmentError::NotTcp);
        }
        let payload = l.end - l.data;
        if payload == 0 {
            return Err(SegmentError::NoPayload);
        }
        let count = payload.div_ceil(size);
        if l.data + size.min(payload) > max_len || count > MAX_SEGMENTS {
            return Err(SegmentError::TooLarge);
        }
        let t = &frame[l.l4..];
        Ok(Segments {
            frame,
            l,
            size,
            count,
            next: 0,
            seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
            ip_id: if v6 { 0 } else { u16::from_be_bytes([frame[l.l3 + 4], frame[l.l3 + 5]]) },
            flags: t[13],
        })
    }

    /// How many segments the super-frame makes.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Writes the next segment into `out` and returns its length; `None`
    /// when every segment was written, or when `out` is too short for the
    /// next (the caller's buffer holds `max_len` bytes).
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<usize> {
        let i = self.next;
        if i >= self.count {
            return None;
        }
        let Layout { l3, l4, data, end, v6 } = self.l;
        let start = data + i * self.size;
        let n = self.size.min(end - start);
        let len = data + n;
        let out = out.get_mut(..len)?;
        self.next += 1;
        out[..data].copy_from_slice(&self.frame[..data]);
        out[data..].copy_from_slice(&self.frame[start..start + n]);
        let put16 = |out: &mut [u8], at: usize, v: u16| out[at..at + 2].copy_from_slice(&v.to_be_bytes());
        if v6 {
            put16(out, l3 + 4, (len - l3 - IPV6_LEN) as u16);
        } else {
            put16(out, l3 + 2, (len - l3) as u16);
            put16(out, l3 + 4, self.ip_id.wrapping_add(i as u16));
            put16(out, l3 + 10, 0);
            let c = !fold(sum(&out[l3..l4], 0));
            put16(out, l3 + 10, c);
        }
        let seq = self.seq.wrapping_add((i * self.size) as u32);
        out[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = self.flags & !(FIN | PSH | CWR);
        if i == 0 {
            flags |= self.flags & CWR;
        }
        if i + 1 == self.count {
            flags |= self.flags & (FIN | PSH);
        }
        out[l4 + 13] = flags;
        put16(out, l4 + 16, 0);
        let tcp_len = (len - l4) as u64;
        let pseudo = if v6 {
            sum(&out[l3 + 8..l3 + 40], tcp_len + u64::from(TCP))
        } else {
            sum(&out[l3 + 12..l3 + 20], tcp_len + u64::from(TCP))
        };
        let c = !fold(sum(&out[l4..len], pseudo));
        put16(out, l4 + 16, c);
        Some(len)
    }
}

/// Adds the 16-bit big-endian words of `data` (a last odd byte padded with
/// zero) to `acc`, unfolded.
pub(crate) fn sum(data: &[u8], mut acc: u64) -> u64 {
    // 32-bit words: the ones' complement sum folds to the same 16 bits.
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds an unfolded sum to 16 bits (ones' complement).
pub(crate) fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

#[cfg(test)]
pub(crate) mod tests;
