//! Who a customer is. The user name `bBBBcCCC` names broker/dealer BBB and
//! its customer CCC; the engine session is `gw_id << 24 | BBB << 12 | CCC`.
//! The password is the broker/dealer's own: each has one, from the
//! gateway's logins file (`--logins`, mode 0600), so the credentials of one
//! broker/dealer open none of another's sessions.
//!
//! The logins file keeps no password, only a salted keyed hash per
//! broker/dealer (`bBBB SALT HASH`, hex; `aex logins` writes it and the
//! passwords file the broker/dealers get, `bBBB PASSWORD`). A login is
//! checked with one keyed BLAKE2s and a constant-time comparison, also for
//! an unknown broker/dealer (against a dummy entry), so neither the time
//! nor the answer tells a wrong password from an unknown user. The
//! passwords `aex logins` makes are random (16 characters, about 95 bits),
//! so a fast hash is enough; a person's password would need a slow one.

use crate::types::SessionId;
use crate::wire::oe::LoginReject;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2sMac256;
use rand::Rng;
use std::collections::BTreeMap;
use std::path::Path;

/// Domain separation of the login hashes.
const LABEL: &[u8] = b"aex login v1\0";
/// Characters of generated passwords.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/// The broker/dealer and customer numbers of a user name `bBBBcCCC`
/// (both 1..=999, three decimal digits each); None for anything else.
pub fn parse_user(user: &[u8; 8]) -> Option<(u16, u16)> {
    let digits = |d: &[u8]| -> Option<u16> {
        if !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = d.iter().fold(0u16, |n, &c| n * 10 + u16::from(c - b'0'));
        (n > 0).then_some(n)
    };
    if user[0] != b'b' || user[4] != b'c' {
        return None;
    }
    Some((digits(&user[1..4])?, digits(&user[5..8])?))
}

/// The user name of broker/dealer `broker` and customer `customer`.
pub fn user_name(broker: u16, customer: u16) -> [u8; 8] {
    let mut u = [0u8; 8];
    u.copy_from_slice(format!("b{:03}c{:03}", broker % 1000, customer % 1000).as_bytes());
    u
}

/// The engine session id of a customer of gateway `gw`.
pub fn session_id(gw: u8, broker: u16, customer: u16) -> SessionId {
    u32::from(gw) << 24 | u32::from(broker) << 12 | u32::from(customer)
}

/// A password as the login carries it: ASCII, space padded to 16 bytes
/// (None when longer than 16 bytes).
pub fn pad_password(pw: &str) -> Option<[u8; 16]> {
    let b = pw.as_bytes();
    if b.len() > 16 {
        return None;
    }
    let mut out = [b' '; 16];
    out[..b.len()].copy_from_slice(b);
    Some(out)
}

fn login_mac(broker: u16, salt: &[u8; 16]) -> Blake2sMac256 {
    let mut m = <Blake2sMac256 as KeyInit>::new_from_slice(salt).expect("a 16-byte key");
    m.update(LABEL);
    m.update(&broker.to_be_bytes());
    m
}

/// The stored hash of broker/dealer `broker`'s padded password.
pub fn hash_password(broker: u16, salt: &[u8; 16], password: &[u8; 16]) -> [u8; 32] {
    let mut m = login_mac(broker, salt);
    m.update(password);
    m.finalize().into_bytes().into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// `bBBB` as a broker/dealer number (1..=999).
fn parse_broker(s: &str) -> Option<u16> {
    let d = s.strip_prefix('b').filter(|d| d.len() == 3 && d.bytes().all(|c| c.is_ascii_digit()))?;
    d.parse().ok().filter(|&n| n > 0)
}

/// The gateway's logins: a salted hash per broker/dealer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Logins {
    entries: BTreeMap<u16, ([u8; 16], [u8; 32])>,
    /// Compared against for an unknown broker/dealer (never matches).
    dummy: ([u8; 16], [u8; 32]),
}

impl Logins {
    /// Parses a logins file's text (`bBBB SALT HASH` lines, `#` comments).
    pub fn parse(text: &str) -> Result<Logins, String> {
        let mut l = Logins { dummy: ([0x5a; 16], [0; 32]), ..Logins::default() };
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}", n + 1);
            let f: Vec<&str> = line.split_whitespace().collect();
            let [b, salt, hash] = f[..] else { return Err(bad("want `bBBB SALT HASH`")) };
            let broker = parse_broker(b).ok_or_else(|| bad("the broker/dealer is not bBBB (001..999)"))?;
            let salt = unhex::<16>(salt).ok_or_else(|| bad("the salt is not 32 hex digits"))?;
            let hash = unhex::<32>(hash).ok_or_else(|| bad("the hash is not 64 hex digits"))?;
            if l.entries.insert(broker, (salt, hash)).is_some() {
                return Err(bad("a broker/dealer listed twice"));
            }
        }
        Ok(l)
    }

    /// Reads a logins file, refusing one that group or others may read.
    pub fn load(path: &Path) -> anyhow::Result<Logins> {
        let text = crate::auth::keys::read_private(path)?;
        Logins::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// New random passwords for `brokers`: the logins (hashes) and the
    /// passwords, `(broker, password)`.
    pub fn generate(brokers: impl IntoIterator<Item = u16>) -> (Logins, Vec<(u16, String)>) {
        let mut rng = rand::rngs::OsRng;
        let mut l = Logins { dummy: ([0x5a; 16], [0; 32]), ..Logins::default() };
        let mut pws = Vec::new();
        for b in brokers {
            let pw: String = (0..16).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
            let salt: [u8; 16] = rng.gen();
            let padded = pad_password(&pw).expect("16 characters");
            l.entries.insert(b, (salt, hash_password(b, &salt, &padded)));
            pws.push((b, pw));
        }
        (l, pws)
    }

    /// The logins file's text.
    pub fn to_text(&self) -> String {
        let mut s = String::from("# AEX gateway logins (aex logins): bBBB SALT HASH. Keep this file mode 0600.\n");
        for (b, (salt, hash)) in &self.entries {
            s += &format!("b{b:03} {} {}\n", hex(salt), hex(hash));
        }
        s
    }

    /// How many broker/dealers may log in.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none may.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks a login to gateway `gw`: the session id, or why not. The
    /// password is checked against the user's own broker/dealer's entry
    /// (constant time; an unknown one against a dummy entry).
    pub fn check(&self, gw: u8, user: &[u8; 8], password: &[u8; 16]) -> Result<SessionId, LoginReject> {
        let parsed = parse_user(user);
        let broker = parsed.map_or(0, |(b, _)| b);
        let (salt, hash) = parsed.and_then(|(b, _)| self.entries.get(&b)).unwrap_or(&self.dummy);
        let mut m = login_mac(broker, salt);
        m.update(password);
        let matches = m.verify_slice(hash).is_ok();
        match parsed {
            Some((b, c)) if matches && self.entries.contains_key(&b) => Ok(session_id(gw, b, c)),
            _ => Err(LoginReject::NotAuthorized),
        }
    }
}

/// The passwords file a broker/dealer's load generator reads (`bBBB PASSWORD`).
pub fn passwords_text(pws: &[(u16, String)]) -> String {
    let mut s = String::from("# AEX broker/dealer passwords (aex logins): bBBB PASSWORD. Secret: mode 0600.\n");
    for (b, pw) in pws {
        s += &format!("b{b:03} {pw}\n");
    }
    s
}

/// Parses a passwords file: each broker/dealer's padded password.
pub fn parse_passwords(text: &str) -> Result<BTreeMap<u16, [u8; 16]>, String> {
    let mut m = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why}", n + 1);
        let f: Vec<&str> = line.split_whitespace().collect();
        let [b, pw] = f[..] else { return Err(bad("want `bBBB PASSWORD`")) };
        let broker = parse_broker(b).ok_or_else(|| bad("the broker/dealer is not bBBB (001..999)"))?;
        let pw = pad_password(pw).ok_or_else(|| bad("a password of more than 16 bytes"))?;
        if m.insert(broker, pw).is_some() {
            return Err(bad("a broker/dealer listed twice"));
        }
    }
    Ok(m)
}

/// Reads a passwords file (mode 0600 required).
pub fn load_passwords(path: &Path) -> anyhow::Result<BTreeMap<u16, [u8; 16]>> {
    let text = crate::auth::keys::read_private(path)?;
    parse_passwords(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_from_user() {
        assert_eq!(parse_user(b"b001c001"), Some((1, 1)));
        assert_eq!(parse_user(b"b123c999"), Some((123, 999)));
        for bad in [b"b000c001", b"b001c000", b"x001c001", b"b001d001", b"b0a1c001", b"b001c00 "] {
            assert_eq!(parse_user(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(session_id(1, 2, 3), 0x0100_2003);
        assert_eq!(session_id(255, 999, 999), 255 << 24 | 999 << 12 | 999);
        assert_eq!(&user_name(7, 42), b"b007c042");
        assert_eq!(&pad_password("secret").unwrap(), b"secret          ");
        assert!(pad_password("seventeen chars!!").is_none());
    }

    #[test]
    fn each_broker_logs_in_with_its_own_password_only() {
        let (logins, pws) = Logins::generate([1, 2]);
        let logins = Logins::parse(&logins.to_text()).unwrap();
        let pws = parse_passwords(&passwords_text(&pws)).unwrap();
        let (p1, p2) = (pws[&1], pws[&2]);
        assert_ne!(p1, p2);
        assert_eq!(logins.check(3, b"b001c005", &p1), Ok(session_id(3, 1, 5)));
        assert_eq!(logins.check(3, b"b002c005", &p2), Ok(session_id(3, 2, 5)));
        // Broker 2's password opens none of broker 1's sessions (no takeover).
        assert_eq!(logins.check(3, b"b001c005", &p2), Err(LoginReject::NotAuthorized));
        assert_eq!(logins.check(3, b"b001c005", b"wrong           "), Err(LoginReject::NotAuthorized));
        // An unknown broker/dealer or a bad user name, even with a known password.
        assert_eq!(logins.check(3, b"b003c001", &p1), Err(LoginReject::NotAuthorized));
        assert_eq!(logins.check(3, b"nobody  ", &p1), Err(LoginReject::NotAuthorized));
        // The file keeps no password.
        let text = logins.to_text();
        for pw in pws.values() {
            assert!(!text.contains(std::str::from_utf8(pw).unwrap().trim()));
        }
    }

    #[test]
    fn hostile_files_are_refused() {
        let salt = "00".repeat(16);
        let hash = "11".repeat(32);
        for bad in [
            "b001".to_string(),
            format!("b000 {salt} {hash}"),
            format!("c001 {salt} {hash}"),
            format!("b001 {salt} 11"),
            format!("b001 {salt} {hash} extra"),
            format!("b001 {salt} {hash}\nb001 {salt} {hash}"),
        ] {
            assert!(Logins::parse(&bad).is_err(), "{bad}");
        }
        assert!(parse_passwords("b001 abcdefghijklmnopq").is_err(), "17 bytes");
        assert!(parse_passwords("b001").is_err());
        assert!(parse_passwords("b001 a\nb001 b").is_err());
        assert_eq!(parse_passwords("# c\nb007 pw # t\n").unwrap()[&7], pad_password("pw").unwrap());
    }
}
