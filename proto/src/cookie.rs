//! Cookies: how a responder under load makes initiators prove their
//! address before it spends a Diffie-Hellman on them (WireGuard's cookie
//! reply, its paper's section 5.4.7).
//!
//! The responder: a cookie is BLAKE2s-128 of the source address (IP and
//! port) keyed by a random secret that changes every
//! [`COOKIE_ROTATION`] ([`CookieMinter`]). Under load it answers a
//! mac1-valid initiation with a cookie reply instead of the handshake: the
//! cookie sealed with XChaCha20-Poly1305 under a key derived from the
//! network key (and the responder's static key for IK, see
//! [`CookieKey`]), a random 24-byte nonce, and the initiation's mac1 as
//! associated data ([`seal`]). Only a member that sent that initiation
//! can open it, and a reply cannot be moved to another initiation.
//!
//! The initiator ([`open`], [`CookieJar`], [`PendingInit`]): it opens the
//! reply, keeps the cookie for the responder's address (a little less than
//! a rotation), sends the same initiation again at once with mac2 (once
//! per initiation), and puts mac2 on every initiation to that address
//! while the cookie lasts. An initiation whose mac2 verifies came from
//! a host that receives at its source address: the responder serves it
//! from that source's own budget, however much junk arrives meanwhile.
//!
//! A random secret (from the node's generator) makes cookies unpredictable,
//! and rotating it bounds how long one stays valid: after a rotation an old
//! cookie's mac2 fails, and a responder still under load sends a new one.

use crate::hsmac::{self, Cookie, CookieKey};
use crate::wire::{COOKIE_NONCE_LEN, INIT_MACS_LEN, MAC_LEN, SEALED_COOKIE_LEN};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How long a cookie secret lives.
pub const COOKIE_ROTATION: Duration = Duration::from_secs(120);
/// How long an initiator uses a cookie it received: a little less than a
/// rotation, so that it rarely sends one the responder no longer takes.
pub const COOKIE_USABLE: Duration = Duration::from_secs(115);
/// Responders' addresses whose cookies an initiator keeps at most.
const MAX_JAR: usize = 4096;

/// The responder's rotating secret, and the cookies it makes.
#[derive(Default)]
pub struct CookieMinter {
    secret: [u8; 32],
    /// When the secret was made; None before the first cookie.
    born: Option<Instant>,
}

impl std::fmt::Debug for CookieMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieMinter").field("born", &self.born).finish_non_exhaustive()
    }
}

/// The bytes of a source address a cookie covers: the IP (IPv4 mapped into
/// IPv6, so each address has one form) and the port.
fn address_bytes(src: SocketAddr) -> [u8; 18] {
    let ip = match src.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut b = [0u8; 18];
    b[..16].copy_from_slice(&ip.octets());
    b[16..].copy_from_slice(&src.port().to_be_bytes());
    b
}

impl CookieMinter {
    /// Whether the secret is current at `now`.
    fn fresh(&self, now: Instant) -> bool {
        self.born.is_some_and(|b| now.saturating_duration_since(b) < COOKIE_ROTATION)
    }

    /// The cookie of `src` at `now`, making a new secret first if the last
    /// one is too old.
    pub fn cookie(&mut self, now: Instant, src: SocketAddr, rng: &mut impl RngCore) -> Cookie {
        if !self.fresh(now) {
            rng.fill_bytes(&mut self.secret);
            self.born = Some(now);
        }
        Cookie(hsmac::mac(&self.secret, &address_bytes(src)))
    }

    /// Whether `mac2` over `msg` was made with the cookie of `src` under the
    /// current secret (false once it has expired, until the next cookie).
    pub fn verify_mac2(&self, now: Instant, src: SocketAddr, msg: &[u8], mac2: &[u8; MAC_LEN]) -> bool {
        if !self.fresh(now) || mac2 == &[0; MAC_LEN] {
            return false;
        }
        Cookie(hsmac::mac(&self.secret, &address_bytes(src))).verify(msg, mac2)
    }
}

/// Seals `cookie` for the initiation whose mac1 is `mac1`.
pub fn seal(
    key: &CookieKey,
    nonce: &[u8; COOKIE_NONCE_LEN],
    mac1: &[u8; MAC_LEN],
    cookie: &Cookie,
) -> [u8; SEALED_COOKIE_LEN] {
    let aead = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key.0));
    let mut out = [0u8; SEALED_COOKIE_LEN];
    out[..MAC_LEN].copy_from_slice(&cookie.0);
    let tag = aead
        .encrypt_in_place_detached(XNonce::from_slice(nonce), mac1, &mut out[..MAC_LEN])
        .expect("a 16-byte message always seals");
    out[MAC_LEN..].copy_from_slice(&tag);
    out
}

/// Opens a cookie reply to the initiation whose mac1 is `mac1`; None if it
/// was not sealed with `key` for that initiation.
pub fn open(
    key: &CookieKey,
    nonce: &[u8; COOKIE_NONCE_LEN],
    mac1: &[u8; MAC_LEN],
    sealed: &[u8; SEALED_COOKIE_LEN],
) -> Option<Cookie> {
    let aead = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key.0));
    let mut c = [0u8; MAC_LEN];
    c.copy_from_slice(&sealed[..MAC_LEN]);
    let tag = Tag::from_slice(&sealed[MAC_LEN..]);
    aead.decrypt_in_place_detached(XNonce::from_slice(nonce), mac1, &mut c, tag).ok()?;
    Some(Cookie(c))
}

/// The cookies an initiator holds, by responder address.
#[derive(Debug, Default)]
pub struct CookieJar {
    cookies: HashMap<SocketAddr, (Cookie, Instant)>,
}

impl CookieJar {
    /// Keeps `cookie` for initiations to `to` from `now` on.
    pub fn insert(&mut self, to: SocketAddr, cookie: Cookie, now: Instant) {
        if self.cookies.len() >= MAX_JAR && !self.cookies.contains_key(&to) {
            self.cookies.retain(|_, (_, at)| now.saturating_duration_since(*at) < COOKIE_USABLE);
            if self.cookies.len() >= MAX_JAR {
                return;
            }
        }
        self.cookies.insert(to, (cookie, now));
    }

    /// The cookie for `to`, if one is still usable at `now`.
    pub fn get(&self, to: SocketAddr, now: Instant) -> Option<Cookie> {
        let (c, at) = self.cookies.get(&to)?;
        (now.saturating_duration_since(*at) < COOKIE_USABLE).then_some(*c)
    }

    /// Cookies held.
    pub fn len(&self) -> usize {
        self.cookies.len()
    }

    /// Whether no cookie is held.
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }
}

/// An initiation as it was sent, kept with the handshake in flight so it
/// can be sent again with mac2 when a cookie reply comes back.
#[derive(Debug)]
pub struct PendingInit {
    /// Where it went.
    pub to: SocketAddr,
    /// The whole datagram (mac1 and mac2 included).
    msg: Vec<u8>,
    /// Whether it was already sent again with a cookie.
    retried: bool,
}

impl PendingInit {
    /// Keeps `msg` (a whole initiation) sent to `to`.
    pub fn new(to: SocketAddr, msg: &[u8]) -> Self {
        assert!(msg.len() >= INIT_MACS_LEN, "an initiation ends with its MACs");
        PendingInit { to, msg: msg.to_vec(), retried: false }
    }

    /// The initiation's mac1: the associated data of its cookie reply.
    pub fn mac1(&self) -> &[u8; MAC_LEN] {
        let at = self.msg.len() - INIT_MACS_LEN;
        self.msg[at..at + MAC_LEN].try_into().expect("length checked in new")
    }

    /// The initiation again with mac2 made with `cookie`, the first time
    /// only (a second cookie for the same initiation is kept for the next
    /// one, not answered: a member cannot make this host send in a loop).
    pub fn retry_with(&mut self, cookie: &Cookie) -> Option<&[u8]> {
        if self.retried {
            return None;
        }
        self.retried = true;
        let at = self.msg.len() - MAC_LEN;
        let mac2 = cookie.mac2(&self.msg[..at]);
        self.msg[at..].copy_from_slice(&mac2);
        Some(&self.msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{NetworkKey, StaticKeypair};
    use crate::wire::{Macs, Packet};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// An initiation-shaped datagram with a valid mac1 under `key`.
    fn init(key: &hsmac::Mac1Key) -> Vec<u8> {
        let mut m = vec![1, 1, 0, 0, 0, 7, 1, 0, 0, 0, 0];
        m.extend_from_slice(&[0x55; 96]);
        let mac1 = key.mac(&m);
        m.extend_from_slice(&mac1);
        m.extend_from_slice(&[0; MAC_LEN]);
        m
    }

    fn macs(m: &[u8]) -> Macs<'_> {
        let Ok(Packet::HandshakeInit { macs, .. }) = Packet::parse(m) else { panic!("an initiation") };
        macs
    }

    #[test]
    fn cookie_round_trip_proves_the_address() {
        let mut rng = StdRng::seed_from_u64(1);
        let psk = NetworkKey([0x70; 32]);
        let responder = StaticKeypair::generate();
        let t0 = Instant::now();
        let src = addr("10.0.0.9:6783");
        let mut minter = CookieMinter::default();
        let mut sent = PendingInit::new(addr("10.0.0.1:6783"), &init(&hsmac::Mac1Key::new(&psk, None)));

        // The responder seals the cookie of the initiation's source...
        let key = CookieKey::new(&psk, Some(&responder.public));
        let cookie = minter.cookie(t0, src, &mut rng);
        let nonce = [3u8; COOKIE_NONCE_LEN];
        let sealed = seal(&key, &nonce, sent.mac1(), &cookie);
        // ...the initiator opens it and sends the initiation again with mac2...
        let got = open(&key, &nonce, sent.mac1(), &sealed).expect("opens");
        assert_eq!(got, cookie);
        let again = sent.retry_with(&got).expect("first cookie").to_vec();
        assert!(sent.retry_with(&got).is_none(), "once per initiation");
        // ...and the responder takes its mac2 from that source only.
        let (covered, mac2) = macs(&again).mac2.unwrap();
        assert!(minter.verify_mac2(t0 + Duration::from_secs(1), src, covered, mac2));
        assert!(!minter.verify_mac2(t0, addr("10.0.0.10:6783"), covered, mac2), "another address");
        assert!(!minter.verify_mac2(t0, addr("10.0.0.9:6784"), covered, mac2), "another port");
        let plain = init(&hsmac::Mac1Key::new(&psk, None));
        let (first_covered, zeros) = macs(&plain).mac2.unwrap();
        assert!(!minter.verify_mac2(t0, src, first_covered, zeros), "no cookie, no mac2");
    }

    #[test]
    fn a_cookie_reply_opens_only_for_its_initiation_and_key() {
        let mut rng = StdRng::seed_from_u64(2);
        let psk = NetworkKey([0x70; 32]);
        let responder = StaticKeypair::generate();
        let key = CookieKey::new(&psk, Some(&responder.public));
        let cookie = CookieMinter::default().cookie(Instant::now(), addr("10.0.0.9:1"), &mut rng);
        let (nonce, mac1) = ([1u8; COOKIE_NONCE_LEN], [2u8; MAC_LEN]);
        let sealed = seal(&key, &nonce, &mac1, &cookie);
        assert!(open(&key, &nonce, &mac1, &sealed).is_some());
        assert!(open(&key, &nonce, &[3; MAC_LEN], &sealed).is_none(), "another initiation's mac1");
        assert!(open(&key, &[9; COOKIE_NONCE_LEN], &mac1, &sealed).is_none(), "another nonce");
        assert!(open(&CookieKey::new(&psk, None), &nonce, &mac1, &sealed).is_none(), "XX key");
        let stranger = CookieKey::new(&NetworkKey([0x67; 32]), Some(&responder.public));
        assert!(open(&stranger, &nonce, &mac1, &sealed).is_none(), "without the network key");
        for i in 0..SEALED_COOKIE_LEN {
            let mut t = sealed;
            t[i] ^= 0x10;
            assert!(open(&key, &nonce, &mac1, &t).is_none(), "tampered byte {i}");
        }
    }

    #[test]
    fn cookies_expire_with_the_secret_and_in_the_jar() {
        let mut rng = StdRng::seed_from_u64(3);
        let t0 = Instant::now();
        let src = addr("[fd00::9]:6783");
        let mut minter = CookieMinter::default();
        let c = minter.cookie(t0, src, &mut rng);
        let msg = b"initiation up to mac2";
        let mac2 = c.mac2(msg);
        assert!(minter.verify_mac2(t0 + Duration::from_secs(119), src, msg, &mac2));
        // Two minutes on, the secret is stale: the old cookie no longer counts...
        let t1 = t0 + COOKIE_ROTATION;
        assert!(!minter.verify_mac2(t1, src, msg, &mac2));
        // ...and the next cookie comes from a new secret.
        let c2 = minter.cookie(t1, src, &mut rng);
        assert_ne!(c2, c);
        assert!(!minter.verify_mac2(t1, src, msg, &mac2));
        assert!(minter.verify_mac2(t1, src, msg, &c2.mac2(msg)));
        assert_eq!(minter.cookie(t1 + Duration::from_secs(60), src, &mut rng), c2, "stable within a rotation");

        // The initiator stops using a cookie before the responder would refuse it.
        let mut jar = CookieJar::default();
        jar.insert(src, c2, t1);
        assert_eq!(jar.get(src, t1 + Duration::from_secs(114)), Some(c2));
        assert_eq!(jar.get(addr("[fd00::9]:6784"), t1), None);
        assert_eq!(jar.get(src, t1 + COOKIE_USABLE), None);
    }

    #[test]
    fn the_jar_stays_bounded() {
        let t0 = Instant::now();
        let mut jar = CookieJar::default();
        for i in 0..(MAX_JAR + 10) {
            jar.insert(SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 1)), Cookie([1; MAC_LEN]), t0);
        }
        assert_eq!(jar.len(), MAX_JAR);
        // Once the old ones are stale, new ones take their place.
        jar.insert(addr("10.2.0.1:1"), Cookie([2; MAC_LEN]), t0 + COOKIE_USABLE);
        assert_eq!(jar.len(), 1);
    }
}
