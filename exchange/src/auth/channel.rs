//! The authenticated replication channel (engine to DR journal, hot
//! standby or fencing responder; TCP on the overlay, `wire::repl` frames).
//!
//! ```text
//! on connect: each side sends a fresh 16-byte nonce at once (client's: Nc, server's: Ns)
//! then frames: length u32 (of what follows) | type u8 | payload | tag [16]
//!   tag = HMAC-SHA256, first 16 bytes, under the direction's key of  counter u64 | length | type | payload
//!   keys: keyed BLAKE2s-256 under the `dr` root of  label | "c2s" or "s2c" | Nc | Ns
//!   counter: 0, 1, 2, ... per direction
//! ```
//!
//! Nothing a frame says is acted on before its tag verifies. A peer
//! without the `dr` key can make no frame that verifies, so it can neither
//! say hello (raising the DR site's fence), nor send records, nor fence a
//! primary; both nonces are in both keys, so frames recorded on another
//! connection never verify, and the counter refuses frames replayed,
//! dropped or reordered within one.

use super::keys::RootKey;
use super::seal::TAG_LEN;
use super::tag::TagKey;
use crate::wire::repl::{self, ReplMessage, MAX_FRAME};
use crate::wire::DecodeError;
use thiserror::Error;

/// Bytes of a nonce.
pub const NONCE_LEN: usize = 16;
/// Domain separation of the channel keys.
const LABEL: &[u8] = b"aex repl channel v1\0";

/// Which end of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The engine, which connects.
    Client,
    /// The DR site (journal, standby, fencing responder), which listens.
    Server,
}

/// Why a frame was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChannelError {
    /// Its tag does not verify: the peer lacks the key, or the frame was
    /// altered, replayed or reordered.
    #[error("a frame that does not verify (no `dr` key, altered or replayed)")]
    Forged,
    /// It verified but does not decode.
    #[error("{0}")]
    Decode(#[from] DecodeError),
}

/// A fresh nonce (the operating system's generator).
pub fn nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut n);
    n
}

/// The sending half: seals frames.
#[derive(Clone)]
pub struct Sealer {
    key: TagKey,
    counter: u64,
}

/// The receiving half: opens frames.
#[derive(Clone)]
pub struct Opener {
    key: TagKey,
    counter: u64,
}

/// The two halves of a connection for `role`, from the `dr` root key, our
/// nonce and the peer's.
pub fn halves(root: &RootKey, role: Role, ours: &[u8; NONCE_LEN], theirs: &[u8; NONCE_LEN]) -> (Sealer, Opener) {
    let (nc, ns) = match role {
        Role::Client => (ours, theirs),
        Role::Server => (theirs, ours),
    };
    let key = |dir: &[u8]| TagKey::new(&root.derive(&[LABEL, dir, nc, ns]));
    let (c2s, s2c) = (key(b"c2s"), key(b"s2c"));
    let (send, recv) = match role {
        Role::Client => (c2s, s2c),
        Role::Server => (s2c, c2s),
    };
    (Sealer { key: send, counter: 0 }, Opener { key: recv, counter: 0 })
}

impl Sealer {
    /// Appends `m` as a sealed frame.
    pub fn encode(&mut self, m: &ReplMessage, out: &mut Vec<u8>) {
        let start = out.len();
        repl::encode(m, out);
        let len = u32::from_be_bytes(out[start..start + 4].try_into().expect("4 bytes")) + TAG_LEN as u32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        let tag = self.key.tag(&[&self.counter.to_be_bytes(), &out[start..]]);
        out.extend_from_slice(&tag);
        self.counter += 1;
    }
}

impl Opener {
    /// Opens one sealed frame from the front of `buf`: `Ok(None)` when more
    /// bytes are needed, else the message and the bytes it took.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(ReplMessage, usize)>, ChannelError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        if len <= TAG_LEN || len > MAX_FRAME + TAG_LEN {
            return Err(DecodeError::BadField { field: "frame length", value: len as u64 }.into());
        }
        if buf.len() < 4 + len {
            return Ok(None);
        }
        let (framed, tag) = buf[..4 + len].split_at(4 + len - TAG_LEN);
        if !self.key.verify(&[&self.counter.to_be_bytes(), framed], tag) {
            return Err(ChannelError::Forged);
        }
        self.counter += 1;
        Ok(Some((repl::decode_body(&framed[4..])?, 4 + len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(client_root: &RootKey, server_root: &RootKey) -> ((Sealer, Opener), (Sealer, Opener)) {
        let (nc, ns) = (nonce(), nonce());
        (halves(client_root, Role::Client, &nc, &ns), halves(server_root, Role::Server, &ns, &nc))
    }

    #[test]
    fn frames_flow_both_ways_and_only_once() {
        let root = RootKey::from_bytes([9; 32]);
        let ((mut cs, mut co), (mut ss, mut so)) = pair(&root, &root);
        let hello = ReplMessage::Hello { epoch: 2, name: "eng1".into(), symbols: vec![1, 2] };
        let mut wire = Vec::new();
        cs.encode(&hello, &mut wire);
        cs.encode(&ReplMessage::Tick(5), &mut wire);
        let mut so2 = so.clone();
        assert_eq!(so.clone().decode(&wire[..wire.len() - 1]).unwrap().map(|m| m.0), Some(hello.clone()));
        let (m, n) = so.decode(&wire).unwrap().unwrap();
        assert_eq!(m, hello);
        assert_eq!(so.decode(&wire[n..n + 3]), Ok(None), "more bytes needed");
        assert_eq!(so.decode(&wire[n..]).unwrap().unwrap().0, ReplMessage::Tick(5));
        // Replayed: the counter has moved on.
        assert_eq!(so.decode(&wire), Err(ChannelError::Forged));
        // Reordered: the tick first.
        assert_eq!(so2.decode(&wire[n..]), Err(ChannelError::Forged));
        let mut back = Vec::new();
        ss.encode(&ReplMessage::Fenced(3), &mut back);
        assert_eq!(co.decode(&back).unwrap().unwrap().0, ReplMessage::Fenced(3));
        // A frame of one direction does not verify in the other.
        let (mut cs, _) = halves(&root, Role::Client, &[1; 16], &[2; 16]);
        let (_, mut co) = halves(&root, Role::Client, &[1; 16], &[2; 16]);
        let mut w = Vec::new();
        cs.encode(&ReplMessage::Durable(1), &mut w);
        assert_eq!(co.decode(&w), Err(ChannelError::Forged));
    }

    #[test]
    fn without_the_key_or_with_other_nonces_nothing_verifies() {
        let (good, bad) = (RootKey::from_bytes([1; 32]), RootKey::from_bytes([2; 32]));
        let ((mut cs, _), (_, mut so)) = pair(&bad, &good);
        let mut w = Vec::new();
        cs.encode(&ReplMessage::Hello { epoch: 99, name: "eng1".into(), symbols: vec![] }, &mut w);
        assert_eq!(so.decode(&w), Err(ChannelError::Forged));
        // A frame recorded on another connection (other nonces).
        let ((mut cs, _), _) = pair(&good, &good);
        let ((_, _), (_, mut so)) = pair(&good, &good);
        let mut w = Vec::new();
        cs.encode(&ReplMessage::Fenced(9), &mut w);
        assert_eq!(so.decode(&w), Err(ChannelError::Forged));
        // Unsealed frames (the old format) and absurd lengths.
        let mut plain = Vec::new();
        repl::encode(&ReplMessage::Tick(1), &mut plain);
        assert!(so.decode(&plain).is_err());
        assert!(so.decode(&[0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(so.decode(&[0, 0, 0, 16]).is_err());
    }
}
