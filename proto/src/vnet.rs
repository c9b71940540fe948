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

/// Length of `struct virtio_net_hdr` (no `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum from `csum_start` is partial.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// The ECN bit of `gso_type`.
pub const GSO_ECN: u8 = 0x80;

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
