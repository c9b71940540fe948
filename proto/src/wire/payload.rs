//! Codecs for what follows the kind byte inside a DATA packet's plaintext:
//! the frame bundle, the relay header and the fragment header (the layout
//! is in [`crate::wire`]). Small pure functions: parsing never panics,
//! whatever the bytes, and nothing here allocates except [`push_bundled`]
//! growing its vector.

use super::{WireError, FRAGMENT_HEADER_LEN, RELAY_HEADER_LEN};
use crate::keys::ShortId;

/// Bytes before each frame of a bundle: the frame's length (u16).
pub const BUNDLE_PREFIX_LEN: usize = 2;
/// Longest frame one bundle entry can carry.
pub const MAX_BUNDLED_FRAME: usize = u16::MAX as usize;

/// Appends one frame (its length, then its bytes) to a bundle. Returns
/// false, appending nothing, if the frame is longer than
/// [`MAX_BUNDLED_FRAME`].
pub fn push_bundled(bundle: &mut Vec<u8>, frame: &[u8]) -> bool {
    let Ok(len) = u16::try_from(frame.len()) else { return false };
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(frame);
    true
}

/// Writes one bundle entry (the frame's length, then its bytes) at the
/// start of `out`. Returns the bytes written, or None if the frame is
/// longer than [`MAX_BUNDLED_FRAME`] or `out` is too short.
pub fn write_bundled(out: &mut [u8], frame: &[u8]) -> Option<usize> {
    let len = u16::try_from(frame.len()).ok()?;
    let n = BUNDLE_PREFIX_LEN + frame.len();
    let out = out.get_mut(..n)?;
    out[..BUNDLE_PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
    out[BUNDLE_PREFIX_LEN..].copy_from_slice(frame);
    Some(n)
}

/// The frames of a bundle (the bytes after its kind byte), in order.
pub fn bundled_frames(body: &[u8]) -> BundledFrames<'_> {
    BundledFrames { rest: body }
}

/// Iterator over the frames of a bundle: each frame, then
/// `Err(WireError::Truncated)` once if an entry's length runs past the
/// end (the frames before it are good), then nothing.
#[derive(Clone, Debug)]
pub struct BundledFrames<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for BundledFrames<'a> {
    type Item = Result<&'a [u8], WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let entry = self.rest.split_first_chunk::<BUNDLE_PREFIX_LEN>().and_then(|(n, tail)| {
            let n = u16::from_be_bytes(*n) as usize;
            (n <= tail.len()).then(|| tail.split_at(n))
        });
        match entry {
            Some((frame, next)) => {
                self.rest = next;
                Some(Ok(frame))
            }
            None => {
                self.rest = &[];
                Some(Err(WireError::Truncated))
            }
        }
    }
}

/// The header of a relayed payload, inside the plaintext after
/// [`super::Kind::Relay`]. What follows it is the inner payload sealed end
/// to end by the source for the destination, then its 16-byte tag (see
/// [`crate::e2e`]): a relay reads this header and nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayHeader {
    /// Hops left: a relay passes it on with one less, and drops it at 1.
    /// The one field relays change, so the only one not authenticated.
    pub ttl: u8,
    /// The host it is for.
    pub dst: ShortId,
    /// The host that sent it.
    pub src: ShortId,
    /// The source's epoch: drawn at each start, it picks the key.
    pub epoch: u64,
    /// The nonce of the end-to-end seal: never repeats within an epoch.
    pub counter: u64,
}

impl RelayHeader {
    /// Parses the header at the start of `b`; returns it and what follows
    /// (the sealed inner payload), or None if `b` is too short.
    pub fn parse(b: &[u8]) -> Option<(RelayHeader, &[u8])> {
        let (b, rest) = b.split_first_chunk::<RELAY_HEADER_LEN>()?;
        let word = |at: usize| u64::from_be_bytes(b[at..at + 8].try_into().expect("in the array"));
        let hdr =
            RelayHeader { ttl: b[0], dst: ShortId(word(1)), src: ShortId(word(9)), epoch: word(17), counter: word(25) };
        Some((hdr, rest))
    }

    /// Writes the header into `out[..RELAY_HEADER_LEN]` (panics if `out`
    /// is shorter: the caller's buffer, not input).
    pub fn write(&self, out: &mut [u8]) {
        out[0] = self.ttl;
        out[1..RELAY_HEADER_LEN].copy_from_slice(&self.authenticated());
    }

    /// The fields the end-to-end seal authenticates (all but the ttl), as
    /// they are on the wire.
    pub fn authenticated(&self) -> [u8; RELAY_HEADER_LEN - 1] {
        let mut a = [0u8; RELAY_HEADER_LEN - 1];
        for (at, v) in [self.dst.0, self.src.0, self.epoch, self.counter].into_iter().enumerate() {
            a[at * 8..at * 8 + 8].copy_from_slice(&v.to_be_bytes());
        }
        a
    }
}

/// The header of one piece of a message sent in pieces, inside the
/// plaintext after [`super::Kind::Fragment`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentHeader {
    /// The message's id, unique per sender for a while.
    pub id: u32,
    /// The whole message's length.
    pub total: u32,
    /// Where this piece's bytes go in the message.
    pub offset: u32,
    /// The kind of the whole message, as its byte (checked by the receiver).
    pub kind: u8,
}

impl FragmentHeader {
    /// Parses the header at the start of `b`; returns it and the piece's
    /// bytes after it, or None if `b` is too short.
    pub fn parse(b: &[u8]) -> Option<(FragmentHeader, &[u8])> {
        if b.len() < FRAGMENT_HEADER_LEN {
            return None;
        }
        let word = |at: usize| u32::from_be_bytes(b[at..at + 4].try_into().expect("checked"));
        Some((FragmentHeader { id: word(0), total: word(4), offset: word(8), kind: b[12] }, &b[FRAGMENT_HEADER_LEN..]))
    }

    /// Writes the header into `out[..FRAGMENT_HEADER_LEN]` (panics if
    /// `out` is shorter: the caller's buffer, not input).
    pub fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.id.to_be_bytes());
        out[4..8].copy_from_slice(&self.total.to_be_bytes());
        out[8..12].copy_from_slice(&self.offset.to_be_bytes());
        out[12] = self.kind;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_bundle_reads_back_frame_by_frame() {
        let mut b = Vec::new();
        assert!(push_bundled(&mut b, b"first"));
        assert!(push_bundled(&mut b, b""));
        let mut slice = [0u8; 16];
        let n = write_bundled(&mut slice, b"third").unwrap();
        b.extend_from_slice(&slice[..n]);
        assert_eq!(b[..BUNDLE_PREFIX_LEN], [0, 5]);
        let frames: Vec<_> = bundled_frames(&b).collect();
        assert_eq!(frames, vec![Ok(&b"first"[..]), Ok(&b""[..]), Ok(&b"third"[..])]);
        assert_eq!(bundled_frames(&[]).count(), 0);
    }

    #[test]
    fn a_truncated_entry_ends_the_bundle_after_the_good_frames() {
        let mut b = Vec::new();
        push_bundled(&mut b, b"good");
        b.extend_from_slice(&[0, 9, 1, 2]);
        let frames: Vec<_> = bundled_frames(&b).collect();
        assert_eq!(frames, vec![Ok(&b"good"[..]), Err(WireError::Truncated)]);
        assert_eq!(bundled_frames(&[7]).collect::<Vec<_>>(), vec![Err(WireError::Truncated)]);
    }

    #[test]
    fn frames_too_long_or_buffers_too_short_are_refused() {
        let big = vec![0u8; MAX_BUNDLED_FRAME + 1];
        let mut b = Vec::new();
        assert!(!push_bundled(&mut b, &big));
        assert!(b.is_empty());
        let mut out = vec![0u8; big.len() + 2];
        assert_eq!(write_bundled(&mut out, &big), None);
        assert_eq!(write_bundled(&mut out[..6], b"12345"), None);
        assert_eq!(write_bundled(&mut out[..7], b"12345"), Some(7));
    }

    #[test]
    fn headers_round_trip() {
        let mut b = [0u8; 40];
        let r = RelayHeader { ttl: 3, dst: ShortId(u64::MAX), src: ShortId(7), epoch: 1 << 60, counter: 9 };
        r.write(&mut b);
        assert_eq!(b[0], 3);
        assert_eq!(b[1..RELAY_HEADER_LEN], r.authenticated());
        assert_eq!(b[RELAY_HEADER_LEN - 1], 9, "the counter last, big-endian");
        assert_eq!(RelayHeader::parse(&b[..RELAY_HEADER_LEN + 2]), Some((r, &[0u8, 0][..])));
        assert_eq!(RelayHeader::parse(&b[..RELAY_HEADER_LEN - 1]), None);
        let f = FragmentHeader { id: 1, total: 70_000, offset: 1300, kind: 6 };
        f.write(&mut b);
        assert_eq!(FragmentHeader::parse(&b[..FRAGMENT_HEADER_LEN]), Some((f, &[][..])));
        assert_eq!(FragmentHeader::parse(&b[..FRAGMENT_HEADER_LEN - 1]), None);
    }

    proptest! {
        #[test]
        fn bundles_round_trip(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)) {
            let mut b = Vec::new();
            for f in &frames {
                prop_assert!(push_bundled(&mut b, f));
            }
            let back: Vec<&[u8]> = bundled_frames(&b).map(|f| f.unwrap()).collect();
            prop_assert_eq!(back, frames.iter().map(Vec::as_slice).collect::<Vec<_>>());
        }

        #[test]
        fn fragment_headers_round_trip(id: u32, total: u32, offset: u32, kind: u8, tail in proptest::collection::vec(any::<u8>(), 0..20)) {
            let h = FragmentHeader { id, total, offset, kind };
            let mut b = vec![0u8; FRAGMENT_HEADER_LEN];
            h.write(&mut b);
            b.extend_from_slice(&tail);
            prop_assert_eq!(FragmentHeader::parse(&b), Some((h, tail.as_slice())));
        }

        #[test]
        fn relay_headers_round_trip(ttl: u8, dst: u64, src: u64, epoch: u64, counter: u64) {
            let h = RelayHeader { ttl, dst: ShortId(dst), src: ShortId(src), epoch, counter };
            let mut b = [0u8; RELAY_HEADER_LEN];
            h.write(&mut b);
            prop_assert_eq!(RelayHeader::parse(&b), Some((h, &[][..])));
        }

        #[test]
        fn hostile_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut seen = 0;
            for f in bundled_frames(&bytes) {
                seen += f.map_or(0, |f| BUNDLE_PREFIX_LEN + f.len());
            }
            prop_assert!(seen <= bytes.len());
            let _ = RelayHeader::parse(&bytes);
            let _ = FragmentHeader::parse(&bytes);
        }
    }
}
