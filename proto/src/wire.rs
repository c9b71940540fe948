//! The underlay wire format: every UDP datagram weavers sends.
//!
//! ```text
//! all:        version u8 (=1) | type u8 | ...
//! HS_INIT 1:  sender_index u32 | pattern u8 (0 = XX, 1 = IK) | hint u32 | noise message
//!             | mac1 [16] | mac2 [16]
//! HS_RESP 2:  sender_index u32 | receiver_index u32 | noise message | mac1 [16]
//! HS_FINAL 3: sender_index u32 | receiver_index u32 | noise message (XX only)
//! DATA 4:     receiver_index u32 | counter u64 | AEAD(plaintext) (16-byte tag)
//! COOKIE 5:   receiver_index u32 | nonce [24] | XChaCha20-Poly1305(cookie [16]) (16-byte tag)
//! ```
//!
//! The handshake MACs ([`crate::hsmac`]) are WireGuard's, keyed with the
//! network key:
//!
//! - `mac1` is a keyed BLAKE2s-128 over every byte before it, keyed by what
//!   the sender knows before it starts: the network key, and the
//!   receiver's static key when the sender knows it (an IK initiation, and
//!   any IK response); XX messages are keyed by the network key alone. The
//!   receiver checks it before anything else, so a datagram from a host
//!   without the password costs one BLAKE2s and nothing more.
//! - `mac2` (initiations only) is a keyed BLAKE2s-128 over every byte
//!   before it (mac1 included), keyed by the last cookie the responder
//!   gave this source ([`crate::cookie`]); 16 zero bytes when there is
//!   none. A valid mac2 proves the initiator receives at its source
//!   address: an overloaded responder serves only those.
//! - `hint` (initiations) is the responder's local index of the session
//!   the initiator is replacing (0 when none): an IK rekey from a known
//!   peer's endpoint is charged to that peer's own budget
//!   ([`crate::ratelimit`]). It is the index the DATA packets already
//!   carry in the clear, so it tells an observer nothing new.
//! - A COOKIE reply answers an initiation when the responder is under load
//!   instead of the handshake: `receiver_index` is the initiation's
//!   sender index, the key is derived like mac1's (network key and, for
//!   IK, the responder's static key) and the associated data is the
//!   initiation's mac1, so only the host that sent that initiation can
//!   open it. It is shorter than any initiation: no amplification.
//!
//! Hosts before the MACs (same version byte) fail every handshake with
//! hosts that have them: every host of a network runs the same release.
//!
//! The plaintext of a DATA packet starts with a [`Kind`] byte:
//!
//! ```text
//! Frame 1:    (len u16 | Ethernet frame)+       frames queued together
//! Gossip 2:   postcard gossip::sync::Message (signed records, digests)
//! Ping 3 / Pong 4: token u64
//! Relay 5:    ttl u8 | dst id u64 | src id u64 | epoch u64 | counter u64
//!             | AEAD(inner payload: Frame or Fragment) (16-byte tag)
//! Fragment 6: message id u32 | total u32 | offset u32 | kind u8 | bytes
//! Ipam 7:     postcard IpamMessage (space request or donation)
//! Suspect 8:  key [32]: the sender's monitoring finds this host down
//! ```
//!
//! A Fragment is one piece of a message too big for one datagram; `kind`
//! says what the whole message is, `total` its length and `offset` where
//! the piece's bytes go. Pieces are cut so that every datagram, relayed or
//! not, fits the underlay MTU: the underlay never IP-fragments.
//!
//! ```text
//! kind Frame 1:   an offloaded super-frame: 10-byte virtio-net header | frame
//!                 (may be relayed)
//! kind Gossip 2, Ping 3, Pong 4, Ipam 7, Suspect 8: that control message's body, as it
//!                 would follow the kind byte in one datagram (direct peers
//!                 only: refused when relayed)
//! ```
//!
//! A Relay payload's inner payload is sealed by its source for its
//! destination (AES-256-GCM under a key only those two hosts can derive,
//! `counter` the nonce, every header field but `ttl` authenticated): the
//! relays in between read the header and pass the rest on unopened
//! ([`crate::e2e`]).
//!
//! Every control message longer than a datagram's budget travels this way;
//! at most 65,559 bytes (a 64 KiB super-frame with its headers) each.
//!
//! The payload codecs (bundle, relay header, fragment header) are in the
//! `payload` submodule, re-exported here.
//!
//! Integers are big-endian. Only handshake messages expose anything unencrypted, and
//! those are Noise messages (ephemeral keys and ciphertext), indices and MACs.

mod payload;

pub use payload::{
    bundled_frames, push_bundled, write_bundled, BundledFrames, FragmentHeader, RelayHeader, BUNDLE_PREFIX_LEN,
    MAX_BUNDLED_FRAME,
};

/// The version this code speaks.
pub const VERSION: u8 = 1;
/// Bytes before the ciphertext of a DATA packet.
pub const DATA_HEADER_LEN: usize = 14;
/// AEAD tag length.
pub const TAG_LEN: usize = 16;
/// Bytes a DATA packet adds around a frame: header, tag and the kind byte.
pub const DATA_OVERHEAD: usize = DATA_HEADER_LEN + TAG_LEN + 1;
/// Bytes a relay header adds inside the plaintext: ttl, destination,
/// source, epoch, counter.
pub const RELAY_HEADER_LEN: usize = 1 + 8 + 8 + 8 + 8;
/// What a relayed frame adds to a DATA packet beyond [`DATA_OVERHEAD`]
/// (whose kind byte is the relay's): the relay header, the end-to-end tag,
/// the inner kind and the frame's length.
pub const RELAY_OVERHEAD: usize = RELAY_HEADER_LEN + TAG_LEN + 1 + 2;
/// Bytes of a fragment header: message id, total length, offset, kind.
pub const FRAGMENT_HEADER_LEN: usize = 13;
/// The overlay MTU (largest IP packet inside an overlay frame) that keeps
/// every datagram, relayed ones included, within `underlay_mtu` so the
/// underlay never fragments.
pub fn overlay_mtu(underlay_mtu: usize, ipv6_underlay: bool) -> usize {
    let ip_udp = if ipv6_underlay { 40 } else { 20 } + 8;
    underlay_mtu.saturating_sub(ip_udp + DATA_OVERHEAD + RELAY_OVERHEAD + ETH_HEADER_LEN)
}

/// Length of an Ethernet header (no VLAN tag).
pub const ETH_HEADER_LEN: usize = 14;

/// Largest datagram accepted or produced.
pub const MAX_DATAGRAM: usize = 65_507;

/// Datagram type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PacketType {
    HandshakeInit = 1,
    HandshakeResponse = 2,
    HandshakeFinal = 3,
    Data = 4,
    CookieReply = 5,
}

/// Length of mac1 and mac2.
pub const MAC_LEN: usize = 16;
/// Bytes of an initiation before its Noise message: version, type, sender
/// index, pattern, hint.
pub const INIT_HEADER_LEN: usize = 11;
/// Bytes of a response or final message before its Noise message.
pub const REPLY_HEADER_LEN: usize = 10;
/// Bytes an initiation carries after its Noise message: mac1 and mac2.
pub const INIT_MACS_LEN: usize = 2 * MAC_LEN;
/// Length of a cookie reply's nonce (XChaCha20-Poly1305).
pub const COOKIE_NONCE_LEN: usize = 24;
/// Length of a cookie reply's sealed cookie: the cookie and its tag.
pub const SEALED_COOKIE_LEN: usize = MAC_LEN + TAG_LEN;
/// Length of a cookie reply.
pub const COOKIE_REPLY_LEN: usize = 2 + 4 + COOKIE_NONCE_LEN + SEALED_COOKIE_LEN;

/// Which Noise pattern a handshake uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Pattern {
    /// The responder's key is not known (a new `--peer` address).
    Xx = 0,
    /// The responder's key is known (learned earlier or by gossip).
    Ik = 1,
}

/// What a DATA packet's plaintext carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Ethernet frames for the overlay, each preceded by its length (u16).
    Frame = 1,
    /// Gossip: peer records.
    Gossip = 2,
    /// Keepalive request carrying an opaque 8-byte token.
    Ping = 3,
    /// Keepalive answer echoing the token.
    Pong = 4,
    /// A payload for another peer, to forward along the route.
    Relay = 5,
    /// A piece of an offloaded super-frame too big for one datagram.
    Fragment = 6,
    /// An IPAM message (space request or donation), postcard.
    Ipam = 7,
    /// A host the sender's monitoring found down (its 32-byte key).
    Suspect = 8,
    /// A revocation signed by the network's authority (its binary form),
    /// passed from host to host.
    Revocation = 9,
    /// A digest of the revocations the sender keeps (a flag byte, 1 when it
    /// answers one, and 8 bytes): a peer keeping others sends them.
    RevocationDigest = 10,
    /// Parity of the sender's last few DATA datagrams on this session, to
    /// a peer whose path loses packets (`crate::fec`).
    Parity = 11,
}

impl Kind {
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Frame,
            2 => Kind::Gossip,
            3 => Kind::Ping,
            4 => Kind::Pong,
            5 => Kind::Relay,
            6 => Kind::Fragment,
            7 => Kind::Ipam,
            8 => Kind::Suspect,
            9 => Kind::Revocation,
            10 => Kind::RevocationDigest,
            11 => Kind::Parity,
            _ => return None,
        })
    }
}

/// Why a datagram could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("datagram too short")]
    Truncated,
    #[error("unknown protocol version {0}")]
    Version(u8),
    #[error("unknown packet type {0}")]
    Type(u8),
    #[error("unknown handshake pattern {0}")]
    Pattern(u8),
    #[error("cookie reply of the wrong length")]
    CookieLength,
}

/// The MACs that end a handshake message, with the bytes each covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Macs<'a> {
    /// Everything before mac1: what mac1 covers.
    pub mac1_covered: &'a [u8],
    pub mac1: &'a [u8; MAC_LEN],
    /// Initiations: everything before mac2 (mac1 included), and mac2.
    pub mac2: Option<(&'a [u8], &'a [u8; MAC_LEN])>,
}

fn mac_at(b: &[u8], at: usize) -> &[u8; MAC_LEN] {
    b[at..at + MAC_LEN].try_into().expect("length checked")
}

/// A parsed datagram, borrowing its bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    HandshakeInit { sender: u32, pattern: Pattern, hint: u32, noise: &'a [u8], macs: Macs<'a> },
    HandshakeResponse { sender: u32, receiver: u32, noise: &'a [u8], macs: Macs<'a> },
    HandshakeFinal { sender: u32, receiver: u32, noise: &'a [u8] },
    Data { receiver: u32, counter: u64, ciphertext: &'a [u8] },
    CookieReply { receiver: u32, nonce: &'a [u8; COOKIE_NONCE_LEN], sealed: &'a [u8; SEALED_COOKIE_LEN] },
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("length checked"))
}

impl<'a> Packet<'a> {
    /// Parses a datagram. Never panics, whatever the bytes.
    pub fn parse(b: &'a [u8]) -> Result<Packet<'a>, WireError> {
        if b.len() < 2 {
            return Err(WireError::Truncated);
        }
        if b[0] != VERSION {
            return Err(WireError::Version(b[0]));
        }
        let need = |n: usize| if b.len() < n { Err(WireError::Truncated) } else { Ok(()) };
        match b[1] {
            1 => {
                need(INIT_HEADER_LEN + INIT_MACS_LEN)?;
                let pattern = match b[6] {
                    0 => Pattern::Xx,
                    1 => Pattern::Ik,
                    p => return Err(WireError::Pattern(p)),
                };
                let (m1, m2) = (b.len() - INIT_MACS_LEN, b.len() - MAC_LEN);
                Ok(Packet::HandshakeInit {
                    sender: u32_at(b, 2),
                    pattern,
                    hint: u32_at(b, 7),
                    noise: &b[INIT_HEADER_LEN..m1],
                    macs: Macs { mac1_covered: &b[..m1], mac1: mac_at(b, m1), mac2: Some((&b[..m2], mac_at(b, m2))) },
                })
            }
            2 => {
                need(REPLY_HEADER_LEN + MAC_LEN)?;
                let m1 = b.len() - MAC_LEN;
                Ok(Packet::HandshakeResponse {
                    sender: u32_at(b, 2),
                    receiver: u32_at(b, 6),
                    noise: &b[REPLY_HEADER_LEN..m1],
                    macs: Macs { mac1_covered: &b[..m1], mac1: mac_at(b, m1), mac2: None },
                })
            }
            3 => {
                need(REPLY_HEADER_LEN)?;
                Ok(Packet::HandshakeFinal {
                    sender: u32_at(b, 2),
                    receiver: u32_at(b, 6),
                    noise: &b[REPLY_HEADER_LEN..],
                })
            }
            4 => {
                need(DATA_HEADER_LEN + TAG_LEN)?;
                Ok(Packet::Data {
                    receiver: u32_at(b, 2),
                    counter: u64::from_be_bytes(b[6..14].try_into().expect("length checked")),
                    ciphertext: &b[DATA_HEADER_LEN..],
                })
            }
            5 => {
                if b.len() != COOKIE_REPLY_LEN {
                    return Err(WireError::CookieLength);
                }
                Ok(Packet::CookieReply {
                    receiver: u32_at(b, 2),
                    nonce: b[6..6 + COOKIE_NONCE_LEN].try_into().expect("length checked"),
                    sealed: b[6 + COOKIE_NONCE_LEN..].try_into().expect("length checked"),
                })
            }
            t => Err(WireError::Type(t)),
        }
    }
}

/// Writes a handshake header into `out`, returning its length.
pub fn write_handshake_header(out: &mut [u8], ty: PacketType, sender: u32, second: HandshakeSecond) -> usize {
    out[0] = VERSION;
    out[1] = ty as u8;
    out[2..6].copy_from_slice(&sender.to_be_bytes());
    match second {
        HandshakeSecond::Init { pattern, hint } => {
            out[6] = pattern as u8;
            out[7..11].copy_from_slice(&hint.to_be_bytes());
            INIT_HEADER_LEN
        }
        HandshakeSecond::Receiver(r) => {
            out[6..10].copy_from_slice(&r.to_be_bytes());
            REPLY_HEADER_LEN
        }
    }
}

/// The fields after the sender index in a handshake header.
#[derive(Clone, Copy, Debug)]
pub enum HandshakeSecond {
    /// An initiation's pattern and hint (the responder's index of the
    /// session being replaced, 0 when none).
    Init { pattern: Pattern, hint: u32 },
    /// A response's or final message's receiver index.
    Receiver(u32),
}

/// Writes a cookie reply into `out[..COOKIE_REPLY_LEN]`.
pub fn write_cookie_reply(
    out: &mut [u8],
    receiver: u32,
    nonce: &[u8; COOKIE_NONCE_LEN],
    sealed: &[u8; SEALED_COOKIE_LEN],
) -> usize {
    out[0] = VERSION;
    out[1] = PacketType::CookieReply as u8;
    out[2..6].copy_from_slice(&receiver.to_be_bytes());
    out[6..6 + COOKIE_NONCE_LEN].copy_from_slice(nonce);
    out[6 + COOKIE_NONCE_LEN..COOKIE_REPLY_LEN].copy_from_slice(sealed);
    COOKIE_REPLY_LEN
}

/// Writes a DATA header into `out[..DATA_HEADER_LEN]`.
pub fn write_data_header(out: &mut [u8], receiver: u32, counter: u64) {
    out[0] = VERSION;
    out[1] = PacketType::Data as u8;
    out[2..6].copy_from_slice(&receiver.to_be_bytes());
    out[6..14].copy_from_slice(&counter.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips() {
        let mut b = [0u8; 64];
        let n = write_handshake_header(
            &mut b,
            PacketType::HandshakeInit,
            7,
            HandshakeSecond::Init { pattern: Pattern::Ik, hint: 0x0102_0304 },
        );
        b[n..n + 3].copy_from_slice(&[9, 9, 9]);
        b[n + 3..n + 3 + MAC_LEN].fill(0xaa);
        b[n + 3 + MAC_LEN..n + 3 + 2 * MAC_LEN].fill(0xbb);
        let end = n + 3 + INIT_MACS_LEN;
        assert_eq!(
            Packet::parse(&b[..end]),
            Ok(Packet::HandshakeInit {
                sender: 7,
                pattern: Pattern::Ik,
                hint: 0x0102_0304,
                noise: &[9, 9, 9],
                macs: Macs {
                    mac1_covered: &b[..n + 3],
                    mac1: &[0xaa; MAC_LEN],
                    mac2: Some((&b[..end - MAC_LEN], &[0xbb; MAC_LEN])),
                },
            })
        );
        assert_eq!(Packet::parse(&b[..INIT_HEADER_LEN + INIT_MACS_LEN - 1]), Err(WireError::Truncated));
        let n = write_handshake_header(&mut b, PacketType::HandshakeResponse, 7, HandshakeSecond::Receiver(9));
        b[n..n + MAC_LEN].fill(0xcc);
        assert_eq!(
            Packet::parse(&b[..n + MAC_LEN]),
            Ok(Packet::HandshakeResponse {
                sender: 7,
                receiver: 9,
                noise: &[],
                macs: Macs { mac1_covered: &b[..n], mac1: &[0xcc; MAC_LEN], mac2: None },
            })
        );
        assert_eq!(Packet::parse(&b[..n + MAC_LEN - 1]), Err(WireError::Truncated));
        let n = write_handshake_header(&mut b, PacketType::HandshakeFinal, 7, HandshakeSecond::Receiver(9));
        assert_eq!(Packet::parse(&b[..n]), Ok(Packet::HandshakeFinal { sender: 7, receiver: 9, noise: &[] }));
        write_data_header(&mut b, 5, u64::MAX - 1);
        match Packet::parse(&b[..DATA_HEADER_LEN + TAG_LEN]).unwrap() {
            Packet::Data { receiver, counter, ciphertext } => {
                assert_eq!((receiver, counter, ciphertext.len()), (5, u64::MAX - 1, TAG_LEN));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(Packet::parse(&b[..DATA_HEADER_LEN]), Err(WireError::Truncated));
        let n = write_cookie_reply(&mut b, 11, &[1; COOKIE_NONCE_LEN], &[2; SEALED_COOKIE_LEN]);
        assert_eq!(n, 62);
        assert_eq!(
            Packet::parse(&b[..n]),
            Ok(Packet::CookieReply { receiver: 11, nonce: &[1; COOKIE_NONCE_LEN], sealed: &[2; SEALED_COOKIE_LEN] })
        );
        assert_eq!(Packet::parse(&b[..n - 1]), Err(WireError::CookieLength));
        assert_eq!(Packet::parse(&b[..n + 1]), Err(WireError::CookieLength));
        assert_eq!(Packet::parse(&[2, 4]), Err(WireError::Version(2)));
        assert_eq!(Packet::parse(&[1, 9]), Err(WireError::Type(9)));
    }

    #[test]
    fn overlay_mtu_fits_a_relayed_frame_in_the_underlay() {
        let m = overlay_mtu(1500, false);
        assert_eq!(m, 1375);
        assert_eq!(20 + 8 + DATA_OVERHEAD + RELAY_OVERHEAD + ETH_HEADER_LEN + m, 1500);
        assert_eq!(overlay_mtu(1500, true), 1355);
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Packet::parse(&bytes);
            let _ = RelayHeader::parse(&bytes);
        }
    }
}
