//! Receive-side coalescing: consecutive TCP segments of one flow that
//! arrive from a peer are put back into one super-frame before they are
//! written into the TAP (what the kernel's GRO does for a NIC).
//!
//! A sender cuts super-frames into segments for a lossy path
//! ([`crate::segment`]); written into the TAP one by one, each would cost
//! the receiving host a TAP write and a pass through its stack, which is
//! the wall here (about 100k frames a second). Joined again they cost one
//! for up to 64 KiB, as a whole super-frame does, while a lost datagram
//! still costs only its own segment: the segments before the gap leave as
//! one super-frame and those after it start the next.
//!
//! Segments are joined only when nothing but their length, sequence
//! number, IPv4 identification and checksums differs: the same Ethernet,
//! IP and TCP headers (ACK number, window, options such as timestamps),
//! the ACK flag alone (PSH or FIN on the last one joined ends the
//! super-frame), the next sequence number, and every segment but the last
//! of the first one's size. Anything else, a gap included, delivers what
//! was held first, so the order of frames is kept. At most one super-frame
//! is held; the node delivers it at its next flush (after each batch of
//! datagrams) at the latest. The joined super-frame goes out with a
//! virtio-net header for TCP segmentation (the size of the first segment)
//! and a partial checksum, as a local TCP sender's would.
//!
//! Sans-IO: the caller gives the frames and takes the result; one buffer
//! of 64 KiB, allocated once.

use crate::segment::{fold, layout, sum, Layout};
use crate::vnet::{F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, VNET_HDR_LEN};

/// Most segments joined into one super-frame.
pub const MAX_JOINED: usize = 64;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
/// Largest IP length of a super-frame (the IPv4 total length field).
const MAX_IP_LEN: usize = 65_535;

/// The super-frame being put together.
#[derive(Debug)]
pub struct Coalescer {
    /// The first segment's headers, then the payloads joined so far.
    buf: Vec<u8>,
    /// Where the headers are; `None` when nothing is held.
    held: Option<Layout>,
    /// Payload size of the first segment: the super-frame's segment size.
    size: usize,
    next_seq: u32,
    segments: usize,
    /// No more may join (a short or PSH/FIN segment was the last).
    closed: bool,
    /// Super-frames made of two segments or more, and their segments.
    pub joined: u64,
    pub joined_segments: u64,
}

impl Default for Coalescer {
    fn default() -> Self {
        Coalescer {
            buf: Vec::with_capacity(MAX_IP_LEN + 64),
            held: None,
            size: 0,
            next_seq: 0,
            segments: 0,
            closed: false,
            joined: 0,
            joined_segments: 0,
        }
    }
}

/// The TCP payload of a frame with layout `l`, its sequence number and flags.
fn tcp_parts(frame: &[u8], l: &Layout) -> (u32, u8) {
    let t = &frame[l.l4..];
    (u32::from_be_bytes([t[4], t[5], t[6], t[7]]), t[13])
}

impl Coalescer {
    /// Whether a frame is held.
    pub fn is_holding(&self) -> bool {
        self.held.is_some()
    }

    /// Takes `frame` (a plain Ethernet frame from a peer) into the held
    /// super-frame if it continues it; else, when nothing is held and it is
    /// a TCP data segment that others may join, holds it. False: the
    /// caller delivers `frame` itself, after [`Coalescer::flush`] (so the
    /// order stays).
    pub fn offer(&mut self, frame: &[u8]) -> bool {
        match self.held {
            Some(h) => self.append(h, frame),
            None => self.start(frame),
        }
    }

    fn start(&mut self, frame: &[u8]) -> bool {
        // Cheap refusals first: not TCP/IP, no data, other flags.
        let Ok(l) = layout(frame) else { return false };
        let (seq, flags) = tcp_parts(frame, &l);
        let n = l.end - l.data;
        if n == 0 || flags != ACK {
            return false;
        }
        self.buf.clear();
        self.buf.extend_from_slice(&frame[..l.end]);
        self.held = Some(l);
        self.size = n;
        self.next_seq = seq.wrapping_add(n as u32);
        self.segments = 1;
        self.closed = false;
        true
    }

    fn append(&mut self, h: Layout, frame: &[u8]) -> bool {
        if self.closed || frame.len() < h.data {
            return false;
        }
        let Ok(l) = layout(frame) else { return false };
        if (l.l3, l.l4, l.data, l.v6) != (h.l3, h.l4, h.data, h.v6) {
            return false;
        }
        let (seq, flags) = tcp_parts(frame, &l);
        let n = l.end - l.data;
        let ip_len = self.buf.len() + n - h.l3;
        if seq != self.next_seq
            || n == 0
            || n > self.size
            || flags & !(PSH | FIN) != ACK
            || ip_len > MAX_IP_LEN
            || !same_headers(&self.buf, frame, &h)
        {
            return false;
        }
        self.buf.extend_from_slice(&frame[l.data..l.end]);
        self.next_seq = seq.wrapping_add(n as u32);
        self.segments += 1;
        self.buf[h.l4 + 13] |= flags & (PSH | FIN);
        self.closed = n < self.size || flags != ACK || self.segments >= MAX_JOINED;
        true
    }

    /// Hands the held frame to `deliver`, if any: a super-frame with its
    /// virtio-net header when two segments or more were joined, else the
    /// one segment as it came.
    pub fn flush(&mut self, deliver: impl FnOnce(Option<&[u8; VNET_HDR_LEN]>, &[u8])) {
        let Some(Layout { l3, l4, data, v6, .. }) = self.held.take() else { return };
        if self.segments < 2 {
            return deliver(None, &self.buf);
        }
        self.joined += 1;
        self.joined_segments += self.segments as u64;
        let buf = &mut self.buf[..];
        let len = buf.len();
        let put16 = |b: &mut [u8], at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_be_bytes());
        let tcp_len = (len - l4) as u64;
        let pseudo = if v6 {
            put16(buf, l3 + 4, (len - l3 - 40) as u16);
            sum(&buf[l3 + 8..l3 + 40], tcp_len + 6)
        } else {
            put16(buf, l3 + 2, (len - l3) as u16);
            put16(buf, l3 + 10, 0);
            let c = !fold(sum(&buf[l3..l4], 0));
            put16(buf, l3 + 10, c);
            sum(&buf[l3 + 12..l3 + 20], tcp_len + 6)
        };
        // A partial checksum: the pseudo-header's sum, not complemented; the
        // kernel adds the rest (or checks nothing, as for a local sender's).
        put16(buf, l4 + 16, fold(pseudo));
        let mut hdr = [0u8; VNET_HDR_LEN];
        hdr[0] = F_NEEDS_CSUM;
        hdr[1] = if v6 { GSO_TCPV6 } else { GSO_TCPV4 };
        hdr[2..4].copy_from_slice(&(data as u16).to_ne_bytes());
        hdr[4..6].copy_from_slice(&(self.size as u16).to_ne_bytes());
        hdr[6..8].copy_from_slice(&(l4 as u16).to_ne_bytes());
        hdr[8..10].copy_from_slice(&16u16.to_ne_bytes());
        deliver(Some(&hdr), buf);
    }
}

/// Whether `frame`'s headers equal the held ones but for what each segment
/// has of its own: IP lengths, IPv4 identification and checksum, TCP
/// sequence number, flags and checksum (the flags are checked apart).
fn same_headers(held: &[u8], frame: &[u8], h: &Layout) -> bool {
    let same = |a: usize, b: usize| held[a..b] == frame[a..b];
    let ip = if h.v6 {
        same(h.l3, h.l3 + 4) && same(h.l3 + 6, h.l4)
    } else {
        same(h.l3, h.l3 + 2) && same(h.l3 + 6, h.l3 + 10) && same(h.l3 + 12, h.l4)
    };
    same(0, h.l3)
        && ip
        && same(h.l4, h.l4 + 4)
        && same(h.l4 + 8, h.l4 + 13)
        && same(h.l4 + 14, h.l4 + 16)
        && same(h.l4 + 18, h.data)
}

#[cfg(test)]
mod tests;
