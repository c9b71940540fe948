//! Noise handshakes and the transport sessions they produce.
//!
//! Two patterns, both with the network PSK mixed in so that a host without
//! the password fails at its first message (in practice it fails earlier,
//! at the mac1 every handshake message carries, see [`crate::hsmac`]: the
//! Noise state below is never made for it):
//! - `XXpsk0` when the initiator does not know the responder's key (a new
//!   `--peer` address). The PSK tag on message 1 lets the responder reject
//!   strangers before any Diffie-Hellman work.
//! - `IKpsk1` once the key is known (gossip, or an earlier session): one
//!   round trip.
//!
//! The AEAD is AES-256-GCM through ring: on these machines (AES-NI) seal+open
//! costs half of ChaCha20-Poly1305's at 64 bytes and 40% at 1400 bytes
//! (`cargo bench -p weavers-proto --bench session -- cipher`). Nonces are
//! explicit counters, never reused within a session, as GCM requires.
//!
//! A session seals with an explicit 64-bit counter as the nonce, so packets
//! can arrive out of order; the receiver checks a [`ReplayWindow`] before
//! decrypting and records the counter only after the tag verified.

use crate::keys::{NetworkKey, PublicKey, StaticKeypair, KEY_LEN};
use crate::replay::ReplayWindow;
use crate::wire::{self, Pattern, DATA_HEADER_LEN, TAG_LEN};
use std::time::Instant;

/// Noise parameters of the XX handshake.
pub const XX_PARAMS: &str = "Noise_XXpsk0_25519_AESGCM_BLAKE2s";
/// Noise parameters of the IK handshake.
pub const IK_PARAMS: &str = "Noise_IKpsk1_25519_AESGCM_BLAKE2s";
/// Bound into every handshake: peers of another protocol version fail.
const PROLOGUE: &[u8] = b"weavers/1";
/// Counters at or above this are never used: the session must be replaced.
pub const COUNTER_LIMIT: u64 = 1 << 60;

/// Why a handshake step failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("noise: {0}")]
    Noise(#[from] snow::Error),
    #[error("handshake message out of order")]
    Order,
}

/// Why a data packet was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("counter replayed or too old")]
    Replay,
    #[error("authentication tag did not verify")]
    Decrypt,
    #[error("session used up its counters")]
    Exhausted,
    #[error("output buffer too small")]
    Buffer,
}

/// One side of a handshake in progress.
pub struct Handshake {
    state: snow::HandshakeState,
    pub pattern: Pattern,
    /// When this handshake started (for timeouts).
    pub started: Instant,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake").field("pattern", &self.pattern).finish_non_exhaustive()
    }
}

fn builder<'a>(
    pattern: Pattern,
    local: &'a StaticKeypair,
    psk: &'a NetworkKey,
) -> Result<snow::Builder<'a>, snow::Error> {
    let (params, psk_at) = match pattern {
        Pattern::Xx => (XX_PARAMS, 0),
        Pattern::Ik => (IK_PARAMS, 1),
    };
    snow::Builder::new(params.parse().expect("valid noise parameters"))
        .local_private_key(&local.private)?
        .prologue(PROLOGUE)?
        .psk(psk_at, &psk.0)
}

impl Handshake {
    /// Starts a handshake as initiator. IK needs the responder's key.
    pub fn initiator(
        pattern: Pattern,
        local: &StaticKeypair,
        psk: &NetworkKey,
        remote: Option<&PublicKey>,
        now: Instant,
    ) -> Result<Self, HandshakeError> {
        let mut b = builder(pattern, local, psk)?;
        if pattern == Pattern::Ik {
            b = b.remote_public_key(&remote.ok_or(HandshakeError::Order)?.0)?;
        }
        Ok(Handshake { state: b.build_initiator()?, pattern, started: now })
    }

    /// Starts a handshake as responder.
    pub fn responder(
        pattern: Pattern,
        local: &StaticKeypair,
        psk: &NetworkKey,
        now: Instant,
    ) -> Result<Self, HandshakeError> {
        Ok(Handshake { state: builder(pattern, local, psk)?.build_responder()?, pattern, started: now })
    }

    /// Writes the next handshake message carrying `payload` into `out`.
    pub fn write(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, HandshakeError> {
        if !self.state.is_my_turn() {
            return Err(HandshakeError::Order);
        }
        Ok(self.state.write_message(payload, out)?)
    }

    /// Reads the peer's next handshake message; its payload goes to `payload`.
    pub fn read(&mut self, msg: &[u8], payload: &mut [u8]) -> Result<usize, HandshakeError> {
        if self.state.is_my_turn() {
            return Err(HandshakeError::Order);
        }
        Ok(self.state.read_message(msg, payload)?)
    }

    /// The peer's static key, once the handshake has revealed it.
    pub fn remote_static(&self) -> Option<PublicKey> {
        let rs = self.state.get_remote_static()?;
        let mut k = [0u8; KEY_LEN];
        k.copy_from_slice(rs.get(..KEY_LEN)?);
        Some(PublicKey(k))
    }

    pub fn is_finished(&self) -> bool {
        self.state.is_handshake_finished()
    }

    /// Turns a finished handshake into a transport session.
    pub fn into_session(self, local_index: u32, remote_index: u32, now: Instant) -> Result<Session, HandshakeError> {
        if !self.state.is_handshake_finished() {
            return Err(HandshakeError::Order);
        }
        let initiator = self.state.is_initiator();
        Ok(Session {
            local_index,
            remote_index,
            transport: self.state.into_stateless_transport_mode()?,
            send_counter: 0,
            replay: ReplayWindow::new(),
            established: now,
            initiator,
            confirmed: false,
        })
    }
}

/// An established transport session with one peer.
pub struct Session {
    /// Index the peer puts in DATA packets to reach this session.
    pub local_index: u32,
    /// Index this host puts in DATA packets to the peer.
    pub remote_index: u32,
    transport: snow::StatelessTransportState,
    send_counter: u64,
    replay: ReplayWindow,
    /// When the handshake completed.
    pub established: Instant,
    /// Whether this host initiated the handshake.
    pub initiator: bool,
    /// Whether authenticated data arrived on it (proof the peer holds it).
    pub confirmed: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .field("initiator", &self.initiator)
            .field("confirmed", &self.confirmed)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Seals `plaintext` into a complete DATA datagram in `out`, returning
    /// its length.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, SessionError> {
        if self.send_counter >= COUNTER_LIMIT {
            return Err(SessionError::Exhausted);
        }
        if out.len() < DATA_HEADER_LEN + plaintext.len() + TAG_LEN {
            return Err(SessionError::Buffer);
        }
        let counter = self.send_counter;
        self.send_counter += 1;
        wire::write_data_header(out, self.remote_index, counter);
        let n = self
            .transport
            .write_message(counter, plaintext, &mut out[DATA_HEADER_LEN..])
            .map_err(|_| SessionError::Buffer)?;
        Ok(DATA_HEADER_LEN + n)
    }

    /// Opens a DATA packet's ciphertext into `out`, enforcing the replay
    /// window. The window moves only after the tag verified.
    pub fn open(&mut self, counter: u64, ciphertext: &[u8], out: &mut [u8]) -> Result<usize, SessionError> {
        if counter >= COUNTER_LIMIT || !self.replay.check(counter) {
            return Err(SessionError::Replay);
        }
        if out.len() + TAG_LEN < ciphertext.len() {
            return Err(SessionError::Buffer);
        }
        let n = self.transport.read_message(counter, ciphertext, out).map_err(|_| SessionError::Decrypt)?;
        if !self.replay.accept(counter) {
            return Err(SessionError::Replay);
        }
        self.confirmed = true;
        Ok(n)
    }

    /// Whether DATA packet `counter` could still be opened: not received
    /// yet and not too old.
    pub fn is_new(&self, counter: u64) -> bool {
        counter < COUNTER_LIMIT && self.replay.check(counter)
    }

    /// Records `counter` as received without a packet: its plaintext was
    /// rebuilt from an authenticated parity (`crate::fec`). False (nothing
    /// changes) when it was received already or is too old.
    pub fn claim(&mut self, counter: u64) -> bool {
        counter < COUNTER_LIMIT && self.replay.accept(counter)
    }

    /// Counters sent so far.
    pub fn sent(&self) -> u64 {
        self.send_counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(
        pattern: Pattern,
        a: &StaticKeypair,
        b: &StaticKeypair,
        psk_a: &NetworkKey,
        psk_b: &NetworkKey,
    ) -> Result<(Session, Session), HandshakeError> {
        let now = Instant::now();
        let mut i = Handshake::initiator(pattern, a, psk_a, Some(&b.public), now)?;
        let mut r = Handshake::responder(pattern, b, psk_b, now)?;
        let (mut m, mut p) = ([0u8; 1024], [0u8; 1024]);
        loop {
            let n = i.write(b"hi", &mut m)?;
            r.read(&m[..n], &mut p)?;
            if i.is_finished() && r.is_finished() {
                break;
            }
            let n = r.write(b"yo", &mut m)?;
            i.read(&m[..n], &mut p)?;
            if i.is_finished() && r.is_finished() {
                break;
            }
        }
        assert_eq!(i.remote_static(), Some(b.public));
        assert_eq!(r.remote_static(), Some(a.public));
        Ok((i.into_session(1, 2, now)?, r.into_session(2, 1, now)?))
    }

    #[test]
    fn both_patterns_authenticate_and_carry_data() {
        let (a, b) = (StaticKeypair::generate(), StaticKeypair::generate());
        let psk = NetworkKey([7; 32]);
        for pattern in [Pattern::Xx, Pattern::Ik] {
            let (mut s, mut r) = complete(pattern, &a, &b, &psk, &psk).unwrap();
            let mut pkt = [0u8; 256];
            let mut out = [0u8; 256];
            let n = s.seal(b"frame", &mut pkt).unwrap();
            let wire::Packet::Data { counter, ciphertext, .. } = wire::Packet::parse(&pkt[..n]).unwrap() else {
                panic!()
            };
            let m = r.open(counter, ciphertext, &mut out).unwrap();
            assert_eq!(&out[..m], b"frame");
            assert_eq!(r.open(counter, ciphertext, &mut out), Err(SessionError::Replay));
            // And back.
            let n = r.seal(b"back", &mut pkt).unwrap();
            let wire::Packet::Data { counter, ciphertext, .. } = wire::Packet::parse(&pkt[..n]).unwrap() else {
                panic!()
            };
            assert_eq!(s.open(counter, ciphertext, &mut out), Ok(4));
        }
    }

    #[test]
    fn wrong_password_fails_and_tampering_is_rejected() {
        let (a, b) = (StaticKeypair::generate(), StaticKeypair::generate());
        for pattern in [Pattern::Xx, Pattern::Ik] {
            assert!(complete(pattern, &a, &b, &NetworkKey([1; 32]), &NetworkKey([2; 32])).is_err());
        }
        let psk = NetworkKey([7; 32]);
        let (mut s, mut r) = complete(Pattern::Ik, &a, &b, &psk, &psk).unwrap();
        let mut pkt = [0u8; 256];
        let mut out = [0u8; 256];
        let n = s.seal(b"frame", &mut pkt).unwrap();
        pkt[n - 1] ^= 1;
        let wire::Packet::Data { counter, ciphertext, .. } = wire::Packet::parse(&pkt[..n]).unwrap() else { panic!() };
        assert_eq!(r.open(counter, ciphertext, &mut out), Err(SessionError::Decrypt));
        assert!(!r.confirmed);
        // A forged packet did not consume the counter: the genuine one still opens.
        pkt[n - 1] ^= 1;
        let wire::Packet::Data { counter, ciphertext, .. } = wire::Packet::parse(&pkt[..n]).unwrap() else { panic!() };
        assert_eq!(r.open(counter, ciphertext, &mut out), Ok(5));
    }
}
