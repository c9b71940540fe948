//! Sealed datagrams: every Mold packet and re-request on the overlay ends
//! with a trailer that authenticates it.
//!
//! ```text
//! datagram: body | time u64 | kind u8 | tag [16]
//!   body: a Mold packet (kind 'P') or a 20-byte re-request (kind 'Q')
//!   time: when it was sealed (ns since the Unix epoch, the sender's clock)
//!   tag:  HMAC-SHA256, first 16 bytes, under the stream's key of
//!         source [18] | body | time | kind
//!   source: the sender's address as the receiver sees it (IPv6 or
//!           IPv4-mapped, 16 bytes, then the port)
//! ```
//!
//! The stream's key comes from the session name at the start of the body
//! ([`peek`] reads it before anything is trusted, only to choose the key).
//! The source address is in the tag, so a datagram sent again from another
//! address (a replay towards a victim, a re-request asking for data to be
//! sent elsewhere) does not verify; the time bounds how long a captured
//! datagram stays valid at all ([`WINDOW_NS`]). A copy replayed from the
//! right address within the window changes nothing: packets are numbered
//! (receivers take each message once, in order, and fence by epoch) and
//! re-requests must come with ever later times ([`super::fresh`]).

use super::keys::StreamKey;
use crate::wire::mold::{Session, HEADER_LEN, REREQUEST_LEN};
use std::net::{IpAddr, SocketAddr};
use thiserror::Error;

/// Bytes of a tag.
pub const TAG_LEN: usize = 16;
/// Bytes the trailer adds to a body.
pub const TRAILER_LEN: usize = 8 + 1 + TAG_LEN;
/// How far a datagram's time may be from the receiver's clock (either
/// way): the hosts' clocks must agree to within this (NTP does far better).
pub const WINDOW_NS: u64 = 30_000_000_000;

/// What a sealed datagram carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A Mold packet: data, heartbeat or end of session (`P`).
    Packet,
    /// A re-request (`Q`).
    ReRequest,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Packet => b'P',
            Kind::ReRequest => b'Q',
        }
    }

    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            b'P' => Some(Kind::Packet),
            b'Q' => Some(Kind::ReRequest),
            _ => None,
        }
    }
}

/// Why a datagram was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum AuthError {
    /// Not a sealed datagram at all (too short, unknown kind, a re-request
    /// of the wrong length).
    #[error("not a sealed datagram")]
    Malformed,
    /// No key for its stream, or the tag does not verify (forged, altered,
    /// or sent from another address than it was sealed for).
    #[error("the tag does not verify")]
    Forged,
    /// Sealed too long ago (or too far ahead) to be believed, or older than
    /// one already taken from the same requester: a replay.
    #[error("stale or replayed")]
    Stale,
}

/// A datagram whose tag verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// What it carries.
    pub kind: Kind,
    /// When the sender sealed it (ns since the Unix epoch).
    pub time: u64,
    /// The Mold packet or re-request.
    pub body: &'a [u8],
}

/// Nanoseconds since the Unix epoch, now.
pub fn unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Whether a time sealed at `time` may be believed at `now`.
pub fn within_window(time: u64, now: u64) -> bool {
    time.abs_diff(now) <= WINDOW_NS
}

/// The kind and session of a datagram, unauthenticated: only for choosing
/// the key to verify it with.
pub fn peek(d: &[u8]) -> Option<(Kind, Session)> {
    let body_len = d.len().checked_sub(TRAILER_LEN)?;
    let kind = Kind::from_byte(d[body_len + 8])?;
    let ok_len = match kind {
        Kind::Packet => body_len >= HEADER_LEN,
        Kind::ReRequest => body_len == REREQUEST_LEN,
    };
    if !ok_len {
        return None;
    }
    let mut s = [0u8; 10];
    s.copy_from_slice(&d[..10]);
    Some((kind, Session(s)))
}

fn address_bytes(a: SocketAddr) -> [u8; 18] {
    let ip = match a.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut b = [0u8; 18];
    b[..16].copy_from_slice(&ip.octets());
    b[16..].copy_from_slice(&a.port().to_be_bytes());
    b
}

impl StreamKey {
    /// Seals the body in `buf` as sent from `source` at `time`: appends the
    /// trailer (no allocation when `buf` has [`TRAILER_LEN`] bytes to spare).
    pub fn seal_at(&self, kind: Kind, source: SocketAddr, time: u64, buf: &mut Vec<u8>) {
        let mut tk = [0u8; 9];
        tk[..8].copy_from_slice(&time.to_be_bytes());
        tk[8] = kind.byte();
        let tag = self.key.tag(&[&address_bytes(source), buf, &tk]);
        buf.extend_from_slice(&tk);
        buf.extend_from_slice(&tag);
    }

    /// [`StreamKey::seal_at`] now.
    pub fn seal(&self, kind: Kind, source: SocketAddr, buf: &mut Vec<u8>) {
        self.seal_at(kind, source, unix_ns(), buf)
    }

    /// Verifies a datagram received from `source` (the tag, compared in
    /// constant time); the time is returned, not judged (see
    /// [`StreamKey::open_fresh`]).
    pub fn open<'a>(&self, source: SocketAddr, d: &'a [u8]) -> Result<Opened<'a>, AuthError> {
        let (kind, _) = peek(d).ok_or(AuthError::Malformed)?;
        let body_len = d.len() - TRAILER_LEN;
        let (body, trailer) = d.split_at(body_len);
        let (tk, tag) = trailer.split_at(9);
        if !self.key.verify(&[&address_bytes(source), body, tk], tag) {
            return Err(AuthError::Forged);
        }
        let time = u64::from_be_bytes(tk[..8].try_into().expect("8 bytes"));
        Ok(Opened { kind, time, body })
    }

    /// [`StreamKey::open`], then the time checked against `now` ([`WINDOW_NS`]).
    pub fn open_fresh<'a>(&self, source: SocketAddr, d: &'a [u8], now: u64) -> Result<Opened<'a>, AuthError> {
        let o = self.open(source, d)?;
        if !within_window(o.time, now) {
            return Err(AuthError::Stale);
        }
        Ok(o)
    }
}

/// A re-request sealed under its stream's key, as sent from `source` at `time`.
pub fn seal_rerequest(key: &StreamKey, req: &crate::wire::mold::ReRequest, source: SocketAddr, time: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(REREQUEST_LEN + TRAILER_LEN);
    b.extend_from_slice(&req.encode());
    key.seal_at(Kind::ReRequest, source, time, &mut b);
    b
}

/// A requester's clock for re-requests: the time now, but always later
/// than the last one it gave (responders refuse a time not after the last
/// they took from the same requester and stream).
#[derive(Clone, Debug, Default)]
pub struct RequestClock {
    last: u64,
}

impl RequestClock {
    /// The time for the next re-request.
    pub fn stamp(&mut self) -> u64 {
        self.last = unix_ns().max(self.last + 1);
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::{RootKey, StreamKind};
    use crate::wire::mold::{heartbeat, PacketBuilder, ReRequest};

    fn key(b: u8) -> StreamKey {
        StreamKey::derive(&RootKey::from_bytes([b; 32]), StreamKind::MarketData, &Session::new("md.001").unwrap())
    }

    const NOW: u64 = 1_700_000_000_000_000_000;

    #[test]
    fn a_sealed_packet_opens_only_with_its_key_from_its_source() {
        let src: SocketAddr = "10.40.0.1:5000".parse().unwrap();
        let mut b = PacketBuilder::new(Session::new("md.001").unwrap(), 7, 1300);
        assert!(b.push(b"hello"));
        let mut d = b.finish();
        let body = d.clone();
        let cap = d.capacity();
        key(1).seal_at(Kind::Packet, src, NOW, &mut d);
        assert_eq!(d.capacity(), cap, "sealing fits the builder's spare room");
        assert_eq!(d.len(), body.len() + TRAILER_LEN);
        assert_eq!(peek(&d), Some((Kind::Packet, Session::new("md.001").unwrap())));
        let o = key(1).open_fresh(src, &d, NOW + WINDOW_NS).unwrap();
        assert_eq!((o.kind, o.time, o.body), (Kind::Packet, NOW, &body[..]));
        // Another key, another source, any flipped bit: forged.
        assert_eq!(key(2).open(src, &d), Err(AuthError::Forged));
        assert_eq!(key(1).open("10.40.0.9:5000".parse().unwrap(), &d), Err(AuthError::Forged));
        assert_eq!(key(1).open("10.40.0.1:5001".parse().unwrap(), &d), Err(AuthError::Forged));
        for i in 0..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 0x01;
            assert!(key(1).open(src, &bad).is_err(), "byte {i}");
        }
        // Too old or too far ahead: stale, though authentic.
        assert_eq!(key(1).open_fresh(src, &d, NOW + WINDOW_NS + 1), Err(AuthError::Stale));
        assert_eq!(key(1).open_fresh(src, &d, NOW - WINDOW_NS - 1), Err(AuthError::Stale));
        // The unsealed packet, or a cut one: not a sealed datagram or forged.
        assert!(key(1).open(src, &body).is_err());
        assert!(key(1).open(src, &d[..d.len() - 1]).is_err());
        assert!(peek(&[0u8; 10]).is_none());
    }

    #[test]
    fn a_packet_is_never_taken_for_a_rerequest_nor_the_reverse() {
        let src: SocketAddr = "10.40.0.3:6000".parse().unwrap();
        let s = Session::new("md.001").unwrap();
        let req = ReRequest { session: s, seq: 5, count: 3 };
        let d = seal_rerequest(&key(1), &req, src, NOW);
        assert_eq!(d.len(), REREQUEST_LEN + TRAILER_LEN);
        let o = key(1).open(src, &d).unwrap();
        assert_eq!((o.kind, ReRequest::decode(o.body).unwrap()), (Kind::ReRequest, req));
        // The same bytes relabelled as a packet (the kind is in the tag).
        let mut relabelled = d.clone();
        relabelled[REREQUEST_LEN + 8] = b'P';
        assert_eq!(key(1).open(src, &relabelled), Err(AuthError::Forged));
        // A heartbeat of 20 bytes sealed as a packet stays a packet.
        let mut hb = heartbeat(s, 5);
        key(1).seal_at(Kind::Packet, src, NOW, &mut hb);
        assert_eq!(peek(&hb).map(|p| p.0), Some(Kind::Packet));
        // A re-request of another length is malformed.
        let mut long = req.encode().to_vec();
        long.push(0);
        key(1).seal_at(Kind::ReRequest, src, NOW, &mut long);
        assert_eq!(key(1).open(src, &long), Err(AuthError::Malformed));
    }

    #[test]
    fn request_clock_always_moves_forward() {
        let mut c = RequestClock::default();
        let a = c.stamp();
        let b = c.stamp();
        assert!(b > a && within_window(a, unix_ns()));
    }
}
