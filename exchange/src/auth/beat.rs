//! The primary's heartbeat to its DR site: a UDP datagram every
//! [`BEAT_EVERY`], beside the replication channel.
//!
//! The standby takes over when the primary falls silent; if the primary's
//! only voice were the replication stream (TCP over the overlay), a TCP
//! retransmission lost twice in a row on a lossy path would silence a
//! healthy primary for over a second and set off a failover. A heartbeat
//! datagram is lost alone: ten in a row at 5% loss is about 1e-13.
//!
//! Each beat is tagged under a key derived from the `dr` root key and
//! carries the primary's epoch and clock. The standby takes a
//! beat only if its time is within [`super::seal::WINDOW_NS`] of its own clock and later
//! than the last it took, so a captured beat played again cannot keep a
//! dead primary alive.

use super::keys::RootKey;
use super::seal::{within_window, AuthError};
use super::tag::TagKey;
use std::time::Duration;

/// How often the primary beats.
pub const BEAT_EVERY: Duration = Duration::from_millis(100);
/// Bytes of a beat: magic, epoch, time, tag.
pub const BEAT_LEN: usize = 4 + 4 + 8 + 16;
const MAGIC: &[u8; 4] = b"AEXB";

/// The key beats are tagged with, from the `dr` root key.
#[derive(Clone)]
pub struct BeatKey(TagKey);

impl BeatKey {
    /// Derives the beat key from the deployment's `dr` key.
    pub fn new(dr: &RootKey) -> BeatKey {
        BeatKey(TagKey::new(&dr.derive(&[b"aex dr heartbeat"])))
    }

    /// A beat from a primary at `epoch`, sealed at `time_ns`.
    pub fn seal(&self, epoch: u32, time_ns: u64) -> [u8; BEAT_LEN] {
        let mut b = [0u8; BEAT_LEN];
        b[..4].copy_from_slice(MAGIC);
        b[4..8].copy_from_slice(&epoch.to_be_bytes());
        b[8..16].copy_from_slice(&time_ns.to_be_bytes());
        let tag = self.0.tag(&[&b[..16]]);
        b[16..].copy_from_slice(&tag);
        b
    }

    /// Opens a received beat: its epoch and time, if the tag verifies
    /// ([`AuthError::Forged`] if not).
    pub fn open(&self, datagram: &[u8]) -> Result<(u32, u64), AuthError> {
        if datagram.len() != BEAT_LEN || &datagram[..4] != MAGIC {
            return Err(AuthError::Forged);
        }
        if !self.0.verify(&[&datagram[..16]], &datagram[16..]) {
            return Err(AuthError::Forged);
        }
        let epoch = u32::from_be_bytes(datagram[4..8].try_into().expect("4 bytes"));
        let time = u64::from_be_bytes(datagram[8..16].try_into().expect("8 bytes"));
        Ok((epoch, time))
    }
}

/// The standby's side: which beats it takes.
#[derive(Debug, Default)]
pub struct BeatGuard {
    last: u64,
    /// Beats that did not verify.
    pub forged: u64,
    /// Beats that verified but were old, played again, or from a fenced epoch.
    pub stale: u64,
}

impl BeatGuard {
    /// Takes a verified beat (epoch, time) if it is fresh at `now_ns` and
    /// its epoch is at least `fence` (an older primary was fenced out);
    /// counts it otherwise.
    pub fn admit(&mut self, (epoch, time): (u32, u64), fence: u32, now_ns: u64) -> bool {
        if epoch < fence || time <= self.last || !within_window(time, now_ns) {
            self.stale += 1;
            return false;
        }
        self.last = time;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::seal::WINDOW_NS;

    const NOW: u64 = 1_800_000_000_000_000_000;

    #[test]
    fn a_beat_opens_only_with_the_key() {
        let k = BeatKey::new(&RootKey::from_bytes([7; 32]));
        let b = k.seal(3, NOW);
        assert_eq!(k.open(&b), Ok((3, NOW)));
        let other = BeatKey::new(&RootKey::from_bytes([8; 32]));
        assert_eq!(other.open(&b), Err(AuthError::Forged));
        for i in 0..BEAT_LEN {
            let mut bad = b;
            bad[i] ^= 0x40;
            assert_eq!(k.open(&bad), Err(AuthError::Forged), "byte {i} altered");
        }
        assert_eq!(k.open(&b[..BEAT_LEN - 1]), Err(AuthError::Forged));
        assert_eq!(k.open(&[]), Err(AuthError::Forged));
    }

    #[test]
    fn a_beat_played_again_or_stale_or_fenced_is_refused() {
        let mut g = BeatGuard::default();
        assert!(g.admit((2, NOW), 2, NOW));
        assert!(!g.admit((2, NOW), 2, NOW), "the same beat again");
        assert!(!g.admit((2, NOW - 1), 2, NOW), "an older one");
        assert!(g.admit((2, NOW + 1_000), 2, NOW));
        assert!(!g.admit((1, NOW + 2_000), 2, NOW), "from a fenced epoch");
        assert!(!g.admit((2, NOW + WINDOW_NS + 5_000), 2, NOW), "from too far ahead");
        assert_eq!(g.stale, 4);
    }
}
