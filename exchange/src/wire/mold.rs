//! MoldUDP64-style packets: how gateways send inputs to an orders group and
//! engines send market data to a market-data group, so that a receiver sees
//! gaps and asks for them again.
//!
//! ```text
//! packet:     session [10] | seq u64 (of the first message) | count u16 | (len u16 | message) * count
//! heartbeat:  count 0: no messages; seq is the next message's
//! end:        count 0xFFFF: the session has ended; no messages; seq is the next message's
//! re-request: session [10] | seq u64 (first wanted) | count u16 (how many)  -- 20 bytes
//! ```
//!
//! Messages of a session are numbered from 1; a packet carries messages
//! `seq .. seq + count`. The session is 10 ASCII characters, padded with
//! spaces (the sender's name: a gateway, an engine's feed).

use super::buf::{Put, Reader};
use super::DecodeError;
use std::fmt;

/// Bytes before the first message.
pub const HEADER_LEN: usize = 20;
/// The count that marks the end of a session.
pub const END_OF_SESSION: u16 = 0xffff;
/// Bytes of a re-request.
pub const REREQUEST_LEN: usize = 20;
/// Spare room every built packet has for the authentication trailer that
/// is appended when it is sealed (`crate::auth::seal`), so sealing never
/// reallocates.
pub const SEAL_ROOM: usize = 32;

/// A MoldUDP64 session name.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Session(pub [u8; 10]);

impl Session {
    /// A session from a name of 1 to 10 printable ASCII characters.
    pub fn new(name: &str) -> Option<Session> {
        let b = name.as_bytes();
        if b.is_empty() || b.len() > 10 || !b.iter().all(|c| c.is_ascii_graphic()) {
            return None;
        }
        let mut s = [b' '; 10];
        s[..b.len()].copy_from_slice(b);
        Some(Session(s))
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &c in &self.0 {
            let c = if c.is_ascii_graphic() || c == b' ' { c as char } else { '?' };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session({:?})", self.to_string())
    }
}

/// A decoded packet; its messages are borrowed from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The sender's session.
    pub session: Session,
    /// The sequence number of the first message (or of the next one, for a
    /// heartbeat or end of session).
    pub seq: u64,
    /// The message count as sent (0: heartbeat, 0xFFFF: end of session).
    pub count: u16,
    body: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Decodes a datagram, checking that exactly `count` messages fill it.
    pub fn decode(buf: &'a [u8]) -> Result<Packet<'a>, DecodeError> {
        let mut r = Reader::new(buf);
        let session = Session(r.array()?);
        let seq = r.u64()?;
        let count = r.u16()?;
        let body = &buf[HEADER_LEN..];
        let messages = if count == END_OF_SESSION { 0 } else { count };
        let mut found = 0u16;
        while r.remaining() > 0 {
            if found == messages {
                return Err(DecodeError::Trailing(r.remaining()));
            }
            let len = r.u16()? as usize;
            r.bytes(len)?;
            found += 1;
        }
        if found != messages {
            return Err(DecodeError::BadLength(usize::from(count)));
        }
        if seq.checked_add(u64::from(messages)).is_none() {
            return Err(DecodeError::BadField { field: "sequence", value: seq });
        }
        Ok(Packet { session, seq, count, body })
    }

    /// Whether this ends the session.
    pub fn is_end_of_session(&self) -> bool {
        self.count == END_OF_SESSION
    }

    /// The number of messages carried.
    pub fn message_count(&self) -> u16 {
        if self.is_end_of_session() {
            0
        } else {
            self.count
        }
    }

    /// The sequence number after the last message carried.
    pub fn next_seq(&self) -> u64 {
        self.seq + u64::from(self.message_count())
    }

    /// The messages with their sequence numbers, in order.
    pub fn messages(&self) -> impl Iterator<Item = (u64, &'a [u8])> + 'a {
        let mut rest = self.body;
        let mut seq = self.seq;
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<2>()?;
            let len = u16::from_be_bytes(*len) as usize;
            let msg = tail.get(..len)?;
            rest = &tail[len..];
            seq += 1;
            Some((seq - 1, msg))
        })
    }
}

/// Builds one packet, adding messages while they fit.
#[derive(Clone, Debug)]
pub struct PacketBuilder {
    buf: Vec<u8>,
    max_len: usize,
    count: u16,
}

impl PacketBuilder {
    /// A packet of at most `max_len` bytes (at least the header) whose first
    /// message will be `seq`.
    pub fn new(session: Session, seq: u64, max_len: usize) -> PacketBuilder {
        let mut buf = Vec::with_capacity(max_len.min(65_535) + SEAL_ROOM);
        buf.put(&session.0);
        buf.put_u64(seq);
        buf.put_u16(0);
        PacketBuilder { buf, max_len: max_len.max(HEADER_LEN), count: 0 }
    }

    /// Adds a message if it fits (size and count); says whether it did.
    pub fn push(&mut self, message: &[u8]) -> bool {
        let fits = message.len() <= usize::from(u16::MAX)
            && self.buf.len() + 2 + message.len() <= self.max_len
            && self.count < END_OF_SESSION - 1;
        if fits {
            self.buf.put_u16(message.len() as u16);
            self.buf.put(message);
            self.count += 1;
            self.buf[18..20].copy_from_slice(&self.count.to_be_bytes());
        }
        fits
    }

    /// Whether no message was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The packet's bytes, consuming the builder.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// A heartbeat: no messages; `next_seq` is the next message's number.
pub fn heartbeat(session: Session, next_seq: u64) -> Vec<u8> {
    PacketBuilder::new(session, next_seq, HEADER_LEN).finish()
}

/// The end-of-session packet.
pub fn end_of_session(session: Session, next_seq: u64) -> Vec<u8> {
    let mut b = heartbeat(session, next_seq);
    b[18..20].copy_from_slice(&END_OF_SESSION.to_be_bytes());
    b
}

/// A request to send messages `seq .. seq + count` of a session again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReRequest {
    /// The session.
    pub session: Session,
    /// The first message wanted.
    pub seq: u64,
    /// How many.
    pub count: u16,
}

impl ReRequest {
    /// The 20 bytes.
    pub fn encode(&self) -> [u8; REREQUEST_LEN] {
        let mut b = Vec::with_capacity(REREQUEST_LEN);
        b.put(&self.session.0);
        b.put_u64(self.seq);
        b.put_u16(self.count);
        let mut out = [0u8; REREQUEST_LEN];
        out.copy_from_slice(&b);
        out
    }

    /// Decodes exactly 20 bytes.
    pub fn decode(buf: &[u8]) -> Result<ReRequest, DecodeError> {
        let mut r = Reader::new(buf);
        let req = ReRequest { session: Session(r.array()?), seq: r.u64()?, count: r.u16()? };
        r.finish()?;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn session() -> Session {
        Session::new("GW01").unwrap()
    }

    #[test]
    fn build_and_read() {
        let mut b = PacketBuilder::new(session(), 41, 42);
        assert!(b.is_empty());
        assert!(b.push(b"hello"));
        assert!(b.push(b""));
        assert!(b.push(b"abcdefghijk"));
        assert!(!b.push(b"x"), "45 bytes would not fit in 42");
        let bytes = b.finish();
        assert_eq!(bytes.len(), 42);
        assert_eq!(&bytes[..10], b"GW01      ");
        let p = Packet::decode(&bytes).unwrap();
        assert_eq!((p.session, p.seq, p.count, p.next_seq()), (session(), 41, 3, 44));
        let msgs: Vec<_> = p.messages().collect();
        assert_eq!(msgs, vec![(41, &b"hello"[..]), (42, &b""[..]), (43, &b"abcdefghijk"[..])]);
    }

    #[test]
    fn heartbeat_end_and_rerequest() {
        let h = heartbeat(session(), 7);
        let p = Packet::decode(&h).unwrap();
        assert!(p.count == 0 && !p.is_end_of_session());
        assert_eq!((p.next_seq(), p.messages().count()), (7, 0));
        let e = end_of_session(session(), 7);
        let p = Packet::decode(&e).unwrap();
        assert!(p.is_end_of_session());
        assert_eq!(p.next_seq(), 7);
        let mut bad = e.clone();
        bad.extend_from_slice(&[0, 0]);
        assert_eq!(Packet::decode(&bad), Err(DecodeError::Trailing(2)));
        let r = ReRequest { session: session(), seq: 99, count: 3 };
        assert_eq!(ReRequest::decode(&r.encode()), Ok(r));
        assert!(ReRequest::decode(&r.encode()[..19]).is_err());
        assert_eq!(Session::new(""), None);
        assert_eq!(Session::new("ELEVENCHARS"), None);
        assert_eq!(Session::new("a b"), None);
        assert_eq!(session().to_string(), "GW01      ");
    }

    #[test]
    fn malformed() {
        let mut b = PacketBuilder::new(session(), 1, 100);
        b.push(b"abc");
        let good = b.finish();
        let mut more = good.clone();
        more[19] = 2; // says two messages, carries one
        assert_eq!(Packet::decode(&more), Err(DecodeError::BadLength(2)));
        let mut long = good.clone();
        long[21] = 9; // message length beyond the datagram
        assert!(matches!(Packet::decode(&long), Err(DecodeError::Truncated { .. })));
        let mut wrap = good.clone();
        wrap[10..18].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(Packet::decode(&wrap), Err(DecodeError::BadField { .. })));
        for cut in 0..good.len() {
            assert!(Packet::decode(&good[..cut]).is_err(), "{cut}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(seq in 0u64..u64::MAX / 2, msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 0..30)) {
            let mut b = PacketBuilder::new(session(), seq, 1400);
            for m in &msgs {
                prop_assert!(b.push(m));
            }
            let bytes = b.finish();
            let p = Packet::decode(&bytes).unwrap();
            prop_assert_eq!(p.count as usize, msgs.len());
            let got: Vec<(u64, Vec<u8>)> = p.messages().map(|(s, m)| (s, m.to_vec())).collect();
            let want: Vec<(u64, Vec<u8>)> = msgs.iter().enumerate().map(|(i, m)| (seq + i as u64, m.clone())).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(p) = Packet::decode(&bytes) {
                let n = p.messages().count();
                prop_assert_eq!(n, usize::from(p.message_count()));
            }
            let _ = ReRequest::decode(&bytes);
        }
    }
}
