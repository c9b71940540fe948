//! Who a customer is: the user name `bBBBcCCC` and the gateway's password
//! make the engine session id `gw_id << 24 | BBB << 12 | CCC`.

use crate::types::SessionId;
use crate::wire::oe::LoginReject;

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

/// Checks a login against the gateway's password: the session id, or why not.
pub fn check_login(gw: u8, expected: &[u8; 16], user: &[u8; 8], password: &[u8; 16]) -> Result<SessionId, LoginReject> {
    // Not constant time on purpose: the password is a lab-grade shared secret.
    if password != expected {
        return Err(LoginReject::NotAuthorized);
    }
    let (b, c) = parse_user(user).ok_or(LoginReject::NotAuthorized)?;
    Ok(session_id(gw, b, c))
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
        let pw = pad_password("secret").unwrap();
        assert_eq!(&pw, b"secret          ");
        assert!(pad_password("seventeen chars!!").is_none());
        assert_eq!(check_login(3, &pw, b"b002c005", &pw), Ok(session_id(3, 2, 5)));
        assert_eq!(check_login(3, &pw, b"b002c005", b"wrong           "), Err(LoginReject::NotAuthorized));
        assert_eq!(check_login(3, &pw, b"nobody  ", &pw), Err(LoginReject::NotAuthorized));
    }
}
