//! Receive-side coalescing: consecutive TCP segments of one flow that
//! arrive from a peer are put back into one super-frame before they are
//! written into the TAP (what the kernel's GRO does for a NIC).
//!
//! A sender cuts super-frames into segments for a lossy path
//! ([`crate::segment`]); written into the TAP one by one, each would cost
//! the receiving host a TAP write and a pass through its stack, which is
//! the wall here (about 100k frames a second). Joined again they cost one
//! for up to 64 KiB, as a whole super-frame does, while a lost datagram
//! still costs only its own segment.
//!
//! Segments are joined only when nothing but their length, sequence
//! number, IPv4 identification and checksums differs: the same Ethernet,
//! IP and TCP headers (ACK number, window, options such as timestamps),
//! the ACK flag alone (PSH or FIN on the last one joined ends the
//! super-frame), adjacent sequence numbers, and every segment but the last
//! of the first one's size.
//!
//! A gap does not end what is held: the segments after it start another
//! run of the same flow (up to [`MAX_RUNS`]), and a segment that arrives
//! later and fits before a run, or between two, joins them. That is what a
//! datagram rebuilt from parity (`crate::fec`) is: it arrives after the
//! parity, behind the segments that followed it, and delivered there it
//! would reach TCP out of order, which the sender reads as a loss (a
//! retransmission and a smaller window for a segment that was not lost).
//! Held runs leave in sequence order, at the node's next flush (after each
//! batch of datagrams) at the latest, or before any frame that joins none
//! of them (another flow, a frame that is not TCP data), so the order of
//! everything else is kept. A joined super-frame goes out with a
//! virtio-net header for TCP segmentation (the size of the first segment)
//! and a partial checksum, as a local TCP sender's would; a run of one
//! segment goes out as it came.
//!
//! Sans-IO: the caller gives the frames and takes the result; a buffer of
//! 64 KiB per run, allocated the first time that many runs are held and
//! kept.

use crate::segment::{fold, layout, sum, Layout};
use crate::vnet::{F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, VNET_HDR_LEN};

/// Most segments joined into one super-frame.
pub const MAX_JOINED: usize = 64;
/// Most runs of one flow held apart by gaps.
pub const MAX_RUNS: usize = 8;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
/// Largest IP length of a super-frame (the IPv4 total length field).
const MAX_IP_LEN: usize = 65_535;

/// Consecutive segments held to be joined: the first segment's headers,
/// then the payloads.
#[derive(Debug)]
struct Run {
    buf: Vec<u8>,
    /// Payload size of the first segment: the super-frame's segment size.
    size: usize,
    first_seq: u32,
    next_seq: u32,
    segments: usize,
    /// No more may join at the end (a short or PSH/FIN segment was the
    /// last, or [`MAX_JOINED`]).
    closed: bool,
}

/// The runs being put together.
#[derive(Debug, Default)]
pub struct Coalescer {
    /// Held runs, all of one flow (the first one's headers), in the order
    /// they started.
    runs: Vec<Run>,
    /// Where the held flow's headers are; `None` when nothing is held.
    held: Option<Layout>,
    /// Buffers of runs delivered, for the next ones.
    spare: Vec<Vec<u8>>,
    /// Super-frames made of two segments or more, and their segments.
    pub joined: u64,
    pub joined_segments: u64,
    /// Segments that came after the run they precede and joined it (in
    /// front, or in the gap between two runs).
    pub filled: u64,
}

/// The TCP payload of a frame with layout `l`, its sequence number and flags.
fn tcp_parts(frame: &[u8], l: &Layout) -> (u32, u8) {
    let t = &frame[l.l4..];
    (u32::from_be_bytes([t[4], t[5], t[6], t[7]]), t[13])
}

/// `a` relative to `b` in sequence space (wrapping).
fn after(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

impl Coalescer {
    /// Whether a frame is held.
    pub fn is_holding(&self) -> bool {
        self.held.is_some()
    }

    /// Takes `frame` (a plain Ethernet frame from a peer) into what is held
    /// when it is a TCP data segment of the held flow (or, when nothing is
    /// held, of any flow). False: the caller delivers `frame` itself, after
    /// [`Coalescer::flush`] (so the order stays).
    pub fn offer(&mut self, frame: &[u8]) -> bool {
        // Cheap refusals first: not TCP/IP, no data, other flags.
        let Ok(l) = layout(frame) else { return false };
        let (seq, flags) = tcp_parts(frame, &l);
        let n = l.end - l.data;
        if n == 0 || flags & !(PSH | FIN) != ACK {
            return false;
        }
        let Some(h) = self.held else {
            if flags != ACK {
                return false;
            }
            self.held = Some(l);
            self.start(frame, &l, seq);
            return true;
        };
        if (l.l3, l.l4, l.data, l.v6) != (h.l3, h.l4, h.data, h.v6) || !same_headers(&self.runs[0].buf, frame, &h) {
            return false;
        }
        let payload = &frame[l.data..l.end];
        if let Some(i) = self.runs.iter().position(|r| r.takes_at_end(seq, n, h.l3)) {
            self.runs[i].append(payload, seq, flags, h.l4);
            if let Some(j) = self.runs.iter().position(|q| q.first_seq == self.runs[i].next_seq) {
                self.filled += u64::from(self.merge(i, j, &h));
            }
            return true;
        }
        // A run before the gap would have taken it above (then joined the
        // run after the gap, if any); else it may go in front of one.
        if flags == ACK {
            if let Some(j) = self.runs.iter().position(|r| r.takes_in_front(seq, n, h.l3)) {
                self.runs[j].prepend(frame, &l, seq);
                self.filled += 1;
                return true;
            }
        }
        if self.runs.len() >= MAX_RUNS {
            return false;
        }
        // After a gap (or a segment that joins nothing for its size): a run
        // of its own, which a late segment may join to the others.
        self.start(frame, &l, seq);
        self.runs.last_mut().expect("the run just started").closed = flags != ACK;
        true
    }

    /// Holds `frame` as a new run.
    fn start(&mut self, frame: &[u8], l: &Layout, seq: u32) {
        let mut buf = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(MAX_IP_LEN + 64));
        buf.clear();
        buf.extend_from_slice(&frame[..l.end]);
        let n = l.end - l.data;
        self.runs.push(Run {
            buf,
            size: n,
            first_seq: seq,
            next_seq: seq.wrapping_add(n as u32),
            segments: 1,
            closed: false,
        });
    }

    /// Joins run `j` to the end of run `i` (which ends where `j` starts)
    /// when the result is a valid super-frame; else leaves both. Whether
    /// they were joined.
    fn merge(&mut self, i: usize, j: usize, h: &Layout) -> bool {
        if i == j {
            return false;
        }
        let (a, b) = (&self.runs[i], &self.runs[j]);
        // Every segment but the last of the first one's size: `b` of `a`'s
        // size, or one segment no longer.
        let sizes = b.size == a.size || (b.segments == 1 && b.size < a.size);
        let fits = !a.closed
            && sizes
            && a.segments + b.segments <= MAX_JOINED
            && a.buf.len() + b.buf.len() - h.data - h.l3 <= MAX_IP_LEN;
        if !fits {
            return false;
        }
        let b = self.runs.remove(j);
        let i = if j < i { i - 1 } else { i };
        let a = &mut self.runs[i];
        a.buf.extend_from_slice(&b.buf[h.data..]);
        a.buf[h.l4 + 13] |= b.buf[h.l4 + 13] & (PSH | FIN);
        a.next_seq = b.next_seq;
        a.segments += b.segments;
        a.closed = b.closed || b.size < a.size || a.segments >= MAX_JOINED;
        self.spare.push(b.buf);
        true
    }

    /// Hands what is held to `deliver`, in sequence order: each run as a
    /// super-frame with its virtio-net header when two segments or more
    /// were joined, else the one segment as it came.
    pub fn flush(&mut self, mut deliver: impl FnMut(Option<&[u8; VNET_HDR_LEN]>, &[u8])) {
        let Some(Layout { l3, l4, data, v6, .. }) = self.held.take() else { return };
        // Held runs lie within a window, so their offsets from any one of
        // them order them.
        let base = self.runs[0].first_seq;
        self.runs.sort_by_key(|r| after(r.first_seq, base));
        for mut run in self.runs.drain(..) {
            if run.segments < 2 {
                deliver(None, &run.buf);
                self.spare.push(run.buf);
                continue;
            }
            self.joined += 1;
            self.joined_segments += run.segments as u64;
            let buf = &mut run.buf[..];
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
            hdr[4..6].copy_from_slice(&(run.size as u16).to_ne_bytes());
            hdr[6..8].copy_from_slice(&(l4 as u16).to_ne_bytes());
            hdr[8..10].copy_from_slice(&16u16.to_ne_bytes());
            deliver(Some(&hdr), buf);
            self.spare.push(run.buf);
        }
    }
}

impl Run {
    /// Whether a segment of `n` bytes at `seq` may join at the end.
    fn takes_at_end(&self, seq: u32, n: usize, l3: usize) -> bool {
        !self.closed && seq == self.next_seq && n <= self.size && self.buf.len() + n - l3 <= MAX_IP_LEN
    }

    /// Whether a segment of `n` bytes at `seq` (flags ACK alone) may join
    /// in front: it ends where this run starts and is of its size (or
    /// longer, when the run is one segment: it is that run's last).
    fn takes_in_front(&self, seq: u32, n: usize, l3: usize) -> bool {
        seq.wrapping_add(n as u32) == self.first_seq
            && (n == self.size || (self.segments == 1 && n > self.size))
            && self.segments < MAX_JOINED
            && self.buf.len() + n - l3 <= MAX_IP_LEN
    }

    fn append(&mut self, payload: &[u8], seq: u32, flags: u8, l4: usize) {
        let n = payload.len();
        self.buf.extend_from_slice(payload);
        self.next_seq = seq.wrapping_add(n as u32);
        self.segments += 1;
        self.buf[l4 + 13] |= flags & (PSH | FIN);
        self.closed = n < self.size || flags != ACK || self.segments >= MAX_JOINED;
    }

    /// Puts `frame` (layout `l`, sequence `seq`) in front: its payload
    /// first, and its per-segment header fields (sequence number, IPv4
    /// identification) become the super-frame's.
    fn prepend(&mut self, frame: &[u8], l: &Layout, seq: u32) {
        let (old, n) = (self.buf.len(), l.end - l.data);
        self.buf.resize(old + n, 0);
        self.buf.copy_within(l.data..old, l.data + n);
        self.buf[l.data..l.data + n].copy_from_slice(&frame[l.data..l.end]);
        if n > self.size {
            // In front of one shorter segment: that one is the last.
            self.closed = true;
            self.size = n;
        }
        if !l.v6 {
            self.buf[l.l3 + 4..l.l3 + 6].copy_from_slice(&frame[l.l3 + 4..l.l3 + 6]);
        }
        self.buf[l.l4 + 4..l.l4 + 8].copy_from_slice(&seq.to_be_bytes());
        self.first_seq = seq;
        self.segments += 1;
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
