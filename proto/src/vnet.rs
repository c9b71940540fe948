//! The virtio-net header a TAP opened with `IFF_VNET_HDR` puts before every
//! frame: how the kernel's offloads (checksum, TCP segmentation) left it.
//!
//! With offloads on, a local TCP sender hands the TAP one "super-frame" of
//! up to 64 KiB instead of ~45 MTU-sized frames, with the checksum left for
//! later. weavers carries such a frame whole (in fragments, see
//! `node::offload`) and writes it into the receiving TAP with the same
//! header, so both kernels do one pass for 64 KiB. A frame with only a
//! partial checksum is completed here ([`complete_checksum`]) and travels
//! as a plain frame.
//!
//! The header of a super-frame that came from a peer is the peer's word,
//! and the kernel acts on it: it is written into the TAP only when it asks
//! for what a local TCP sender produces ([`VnetHdr::from_peer`]): TCP
//! segmentation (IPv4 or IPv6, ECN or not) with a partial checksum at the
//! TCP checksum field inside the frame, a segment size above zero and
//! within the overlay MTU, and header lengths within the frame. Anything
//! else is completed and delivered plain when it fits the MTU, or dropped.

/// Length of `struct virtio_net_hdr` (no `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum from `csum_start` is partial.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// The ECN bit of `gso_type`.
pub const GSO_ECN: u8 = 0x80;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was checked (the kernel
/// sets it on frames it hands out).
pub const F_DATA_VALID: u8 = 2;
/// Where the checksum sits in a TCP header.
const TCP_CSUM_OFFSET: u16 = 16;
/// Ethernet header length (no VLAN tag).
const ETH_LEN: usize = 14;

/// What may be done with a super-frame a peer sent, by its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerOffload {
    /// Sane TCP segmentation: write it into the TAP with its header.
    Segment,
    /// Not acceptable as an offload: complete its checksum (when the header
    /// says it is partial) and deliver it as a plain frame if it fits the
    /// MTU, else drop it. Counted either way.
    Plain,
}

/// A parsed `virtio_net_hdr` (native byte order, as the TAP uses by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parses the first [`VNET_HDR_LEN`] bytes.
    pub fn parse(b: &[u8; VNET_HDR_LEN]) -> Self {
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        }
    }

    /// Whether the frame is a segmentation-offload super-frame.
    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE
    }

    /// Whether this header, which came from a peer with `frame` (from its
    /// Ethernet header on), may reach the local kernel: only TCP
    /// segmentation with sane sizes (see the module docs), for a TAP whose
    /// MTU is `mtu`.
    pub fn from_peer(&self, frame: &[u8], mtu: usize) -> PeerOffload {
        let ip_type: [u8; 2] = match self.gso_type & !GSO_ECN {
            GSO_TCPV4 => [0x08, 0x00],
            GSO_TCPV6 => [0x86, 0xdd],
            _ => return PeerOffload::Plain,
        };
        // The IP version the header claims is the frame's (behind at most one VLAN tag).
        let ether = |at: usize| frame.get(at..at + 2);
        let typed = ether(12) == Some(&ip_type[..])
            || (ether(12) == Some(&[0x81, 0x00][..]) && ether(16) == Some(&ip_type[..]));
        let (start, len) = (self.csum_start as usize, frame.len());
        let sane = typed
            && self.flags & !(F_NEEDS_CSUM | F_DATA_VALID) == 0
            && self.flags & F_NEEDS_CSUM != 0
            && self.gso_size > 0
            && self.gso_size as usize <= mtu
            && self.hdr_len as usize <= len
            && start >= ETH_LEN
            && self.csum_offset == TCP_CSUM_OFFSET
            && start + TCP_CSUM_OFFSET as usize + 2 <= len;
        if sane {
            PeerOffload::Segment
        } else {
            PeerOffload::Plain
        }
    }
}

/// Finishes a partial checksum (`VIRTIO_NET_HDR_F_NEEDS_CSUM`): the kernel
/// left the pseudo-header sum in the checksum field; fold the sum of the
/// bytes from `csum_start` into it. False if the offsets do not fit.
pub fn complete_checksum(frame: &mut [u8], csum_start: u16, csum_offset: u16) -> bool {
    let start = csum_start as usize;
    let at = start + csum_offset as usize;
    if start >= frame.len() || at + 2 > frame.len() {
        return false;
    }
    let mut sum: u64 = 0;
    let mut chunks = frame[start..].chunks_exact(2);
    for c in &mut chunks {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    frame[at..at + 2].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 checksum of `data` (for checking).
    fn sum(data: &[u8]) -> u16 {
        let mut s: u32 = data.chunks(2).map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0))).sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn partial_checksums_are_completed() {
        // A field pre-loaded with a "pseudo-header" sum, then completed: the
        // whole range must then sum to zero (checksum verifies).
        let mut f = vec![0u8; 14 + 20 + 8 + 11];
        for (i, b) in f.iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        let start = 34;
        f[start + 6..start + 8].copy_from_slice(&[0, 0]);
        assert!(complete_checksum(&mut f, start as u16, 6));
        assert_eq!(sum(&f[start..]), 0);
        assert!(!complete_checksum(&mut f, 60, 6), "offsets past the end are refused");
    }

    /// A TCP/IPv4 super-frame of `len` bytes with a kernel-like header.
    fn tcp4(len: usize) -> (VnetHdr, Vec<u8>) {
        let mut f = vec![0u8; len];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1300,
            csum_start: 34,
            csum_offset: 16,
        };
        (h, f)
    }

    #[test]
    fn only_sane_tcp_segmentation_from_a_peer_reaches_the_kernel() {
        let mtu = 1400;
        let (good, f) = tcp4(20_000);
        assert_eq!(good.from_peer(&f, mtu), PeerOffload::Segment);
        let ecn = VnetHdr { gso_type: GSO_TCPV4 | GSO_ECN, flags: F_NEEDS_CSUM | F_DATA_VALID, ..good };
        assert_eq!(ecn.from_peer(&f, mtu), PeerOffload::Segment);
        let mut f6 = f.clone();
        f6[12..14].copy_from_slice(&[0x86, 0xdd]);
        let v6 = VnetHdr { gso_type: GSO_TCPV6, csum_start: 54, ..good };
        assert_eq!(v6.from_peer(&f6, mtu), PeerOffload::Segment);
        let mut tagged = vec![0u8; 20_004];
        tagged[12..14].copy_from_slice(&[0x81, 0x00]);
        tagged[16..18].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(good.from_peer(&tagged, mtu), PeerOffload::Segment);
        for bad in [
            VnetHdr { gso_type: 3, ..good }, // UDP (UFO)
            VnetHdr { gso_type: 5, ..good }, // UDP_L4
            VnetHdr { gso_type: 0x7f, ..good },
            VnetHdr { gso_type: GSO_NONE, ..good },
            VnetHdr { gso_type: GSO_TCPV6, ..good }, // an IPv4 frame
            VnetHdr { gso_size: 0, ..good },
            VnetHdr { gso_size: 1401, ..good },
            VnetHdr { gso_size: u16::MAX, ..good },
            VnetHdr { hdr_len: 20_001, ..good },
            VnetHdr { flags: 0, ..good },
            VnetHdr { flags: 0xff, ..good },
            VnetHdr { csum_start: 10, ..good },
            VnetHdr { csum_offset: 6, ..good },
            VnetHdr { csum_start: 19_983, ..good },
            VnetHdr { csum_start: u16::MAX, csum_offset: u16::MAX, ..good },
        ] {
            assert_eq!(bad.from_peer(&f, mtu), PeerOffload::Plain, "{bad:?}");
        }
        assert_eq!(good.from_peer(&f[..12], mtu), PeerOffload::Plain, "a runt");
    }

    #[test]
    fn headers_parse() {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = F_NEEDS_CSUM;
        b[1] = 1;
        b[4..6].copy_from_slice(&1448u16.to_ne_bytes());
        let h = VnetHdr::parse(&b);
        assert!(h.is_gso());
        assert_eq!(h.gso_size, 1448);
        assert!(!VnetHdr::parse(&[0; VNET_HDR_LEN]).is_gso());
        let mut ecn_only = [0u8; VNET_HDR_LEN];
        ecn_only[1] = GSO_ECN;
        assert!(!VnetHdr::parse(&ecn_only).is_gso());
    }
}
