//! Handshake MACs: mac1, which lets a host refuse a handshake message from
//! anyone without the network key for the price of one BLAKE2s, and mac2,
//! which proves the initiator receives at its source address (it holds a
//! cookie the responder sent there). WireGuard's design (its paper, section
//! 5.4.4), with the network key mixed into every key so that only members
//! can make a valid mac1 or open a cookie.
//!
//! Both are keyed BLAKE2s with a 16-byte output. mac1's key is a hash of a
//! label, the network key and, when the sender knows it, the receiver's
//! static key ([`Mac1Key`]); mac2's key is the cookie ([`Cookie`]). Where
//! they sit in a message is in [`crate::wire`].

use crate::keys::{NetworkKey, PublicKey, KEY_LEN};
use crate::wire::MAC_LEN;
use blake2::digest::consts::U16;
use blake2::digest::{KeyInit, Mac};
use blake2::{Blake2s256, Blake2sMac, Digest};

/// Domain separation of the mac1 keys.
const MAC1_LABEL: &[u8] = b"weavers mac1 v1\0";
/// Domain separation of the cookie reply keys.
const COOKIE_LABEL: &[u8] = b"weavers cookie v1\0";

/// Keyed BLAKE2s with a 16-byte output.
type Blake2sMac128 = Blake2sMac<U16>;

/// BLAKE2s-128 of `msg` keyed by `key` (at most 32 bytes).
pub fn mac(key: &[u8], msg: &[u8]) -> [u8; MAC_LEN] {
    let mut m = <Blake2sMac128 as KeyInit>::new_from_slice(key).expect("key of at most 32 bytes");
    m.update(msg);
    m.finalize().into_bytes().into()
}

/// Whether `tag` is the BLAKE2s-128 of `msg` under `key`, compared in
/// constant time.
pub fn verify(key: &[u8], msg: &[u8], tag: &[u8; MAC_LEN]) -> bool {
    let mut m = <Blake2sMac128 as KeyInit>::new_from_slice(key).expect("key of at most 32 bytes");
    m.update(msg);
    m.verify_slice(tag).is_ok()
}

/// A 32-byte key derived from a label, the network key and maybe a static key.
fn derive(label: &[u8], psk: &NetworkKey, receiver: Option<&PublicKey>) -> [u8; KEY_LEN] {
    let mut h = Blake2s256::new();
    h.update(label);
    h.update(psk.0);
    if let Some(k) = receiver {
        h.update(k.0);
    }
    h.finalize().into()
}

/// The key of a message's mac1: the network key and the receiver's static
/// key when the sender knows it (IK), the network key alone when it does
/// not (XX).
#[derive(Clone)]
pub struct Mac1Key([u8; KEY_LEN]);

impl Mac1Key {
    /// The mac1 key of messages to `receiver` (None: the receiver's key is
    /// not known to the sender).
    pub fn new(psk: &NetworkKey, receiver: Option<&PublicKey>) -> Self {
        Mac1Key(derive(MAC1_LABEL, psk, receiver))
    }

    /// mac1 of `msg` (the message up to mac1).
    pub fn mac(&self, msg: &[u8]) -> [u8; MAC_LEN] {
        mac(&self.0, msg)
    }

    /// Whether `tag` is mac1 of `msg`.
    pub fn verify(&self, msg: &[u8], tag: &[u8; MAC_LEN]) -> bool {
        verify(&self.0, msg, tag)
    }
}

impl std::fmt::Debug for Mac1Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mac1Key(..)")
    }
}

/// The key that seals a cookie reply to an initiation, derived as
/// [`Mac1Key`] is (another label): what the initiator knew of the
/// responder when it started.
#[derive(Clone)]
pub struct CookieKey(pub(crate) [u8; KEY_LEN]);

impl CookieKey {
    /// The key of cookie replies from `responder` (None: an XX responder,
    /// whose key the initiator does not know).
    pub fn new(psk: &NetworkKey, responder: Option<&PublicKey>) -> Self {
        CookieKey(derive(COOKIE_LABEL, psk, responder))
    }
}

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

/// A cookie: what a responder under load gives a source address, and the
/// key of the mac2 the initiator then puts on its initiations from there.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cookie(pub [u8; MAC_LEN]);

impl Cookie {
    /// mac2 of `msg` (the message up to mac2, mac1 included).
    pub fn mac2(&self, msg: &[u8]) -> [u8; MAC_LEN] {
        mac(&self.0, msg)
    }

    /// Whether `tag` is mac2 of `msg` under this cookie.
    pub fn verify(&self, msg: &[u8], tag: &[u8; MAC_LEN]) -> bool {
        verify(&self.0, msg, tag)
    }
}

impl std::fmt::Debug for Cookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cookie(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::StaticKeypair;

    #[test]
    fn mac1_verifies_only_under_its_key_and_message() {
        let psk = NetworkKey([0x70; 32]);
        let b = StaticKeypair::generate();
        let msg = b"an initiation up to its mac1";
        let ik = Mac1Key::new(&psk, Some(&b.public));
        let tag = ik.mac(msg);
        assert!(ik.verify(msg, &tag));
        // Another byte, another tag bit, another key: refused.
        assert!(!ik.verify(b"an initiation up to its mac2", &tag));
        let mut bad = tag;
        bad[15] ^= 1;
        assert!(!ik.verify(msg, &bad));
        assert!(!Mac1Key::new(&psk, None).verify(msg, &tag), "XX key is not the IK key");
        let other = StaticKeypair::generate();
        assert!(!Mac1Key::new(&psk, Some(&other.public)).verify(msg, &tag), "keyed by the receiver");
        assert!(!Mac1Key::new(&NetworkKey([0x6f; 32]), Some(&b.public)).verify(msg, &tag), "keyed by the network key");
        // Deterministic: the receiver derives the same key.
        assert_eq!(Mac1Key::new(&psk, Some(&b.public)).mac(msg), tag);
    }

    #[test]
    fn mac2_is_keyed_by_the_cookie() {
        let c = Cookie([7; MAC_LEN]);
        let tag = c.mac2(b"msg");
        assert!(c.verify(b"msg", &tag));
        assert!(!Cookie([8; MAC_LEN]).verify(b"msg", &tag));
        assert!(!c.verify(b"msh", &tag));
    }

    /// Keyed BLAKE2s-128 as RFC 7693 defines it (the key length is a
    /// parameter, and the key fills the first block): known answers from
    /// another implementation (Python's `hashlib.blake2s(b"abc",
    /// key=bytes(range(n)), digest_size=16)`).
    #[test]
    fn keyed_blake2s_matches_known_answers() {
        let key: Vec<u8> = (0u8..32).collect();
        let hex = |t: [u8; MAC_LEN]| t.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(mac(&key, b"abc")), "61ba5f165c194692e09d12520cc4c74a");
        assert_eq!(hex(mac(&key[..16], b"abc")), "75296c2d2c0f51210b383f386bc8b1ff");
    }
}
