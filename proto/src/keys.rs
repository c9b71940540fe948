//! Identity keys and the network secret.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use blake2::{Blake2s256, Digest};
use std::fmt;

/// Length of an X25519 key.
pub const KEY_LEN: usize = 32;

/// A host's static public key: its identity in the mesh.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// The first 8 bytes, used to name peers compactly in relay headers.
    pub fn short_id(&self) -> ShortId {
        let mut id = [0u8; 8];
        id.copy_from_slice(&self.0[..8]);
        ShortId(u64::from_be_bytes(id))
    }

    /// Base64 (standard alphabet, padded), as shown to users.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// Parses the base64 form.
    pub fn from_base64(s: &str) -> Option<Self> {
        let v = B64.decode(s.trim()).ok()?;
        Some(PublicKey(v.try_into().ok()?))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &self.to_base64()[..8])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// The first 8 bytes of a public key, big-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShortId(pub u64);

/// A host's static key pair. The private half never leaves the host.
#[derive(Clone)]
pub struct StaticKeypair {
    pub private: [u8; KEY_LEN],
    pub public: PublicKey,
}

impl StaticKeypair {
    /// Derives the public half from a private key.
    pub fn from_private(private: [u8; KEY_LEN]) -> Result<Self, snow::Error> {
        // snow has no direct "public from private", so run the DH with the
        // base point through the resolver's X25519.
        use snow::resolvers::{CryptoResolver, DefaultResolver};
        let mut dh = DefaultResolver
            .resolve_dh(&snow::params::DHChoice::Curve25519)
            .ok_or(snow::Error::Init(snow::error::InitStage::GetDhImpl))?;
        dh.set(&private);
        let mut public = [0u8; KEY_LEN];
        public.copy_from_slice(dh.pubkey());
        Ok(StaticKeypair { private, public: PublicKey(public) })
    }

    /// A fresh random key pair (from the operating system's RNG).
    pub fn generate() -> Result<Self, snow::Error> {
        let kp = snow::Builder::new(crate::session::XX_PARAMS.parse().expect("valid pattern")).generate_keypair()?;
        let mut private = [0u8; KEY_LEN];
        private.copy_from_slice(&kp.private);
        Self::from_private(private)
    }
}

impl fmt::Debug for StaticKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeypair").field("public", &self.public).finish_non_exhaustive()
    }
}

/// The network's pre-shared key, derived from its password.
///
/// Every member mixes it into every handshake, so a host without the
/// password cannot complete one. The password is hashed with a fixed
/// domain-separation key; Noise's own DH keeps captured handshakes from
/// being attacked offline, so a slow hash buys nothing here.
#[derive(Clone, PartialEq, Eq)]
pub struct NetworkKey(pub [u8; 32]);

impl NetworkKey {
    /// Derives the PSK from the password (surrounding whitespace ignored).
    pub fn from_password(password: &[u8]) -> Self {
        let trimmed = password.trim_ascii();
        let mut h = Blake2s256::new();
        h.update(b"weavers network key v1\0");
        h.update(trimmed);
        NetworkKey(h.finalize().into())
    }
}

impl fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NetworkKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_from_private_is_stable_and_base64_round_trips() {
        let a = StaticKeypair::generate().unwrap();
        let b = StaticKeypair::from_private(a.private).unwrap();
        assert_eq!(a.public, b.public);
        assert_eq!(PublicKey::from_base64(&a.public.to_base64()), Some(a.public));
        assert_eq!(PublicKey::from_base64("not base64!"), None);
        assert_eq!(PublicKey::from_base64("AAAA"), None);
    }

    #[test]
    fn password_whitespace_is_ignored_and_passwords_differ() {
        assert!(NetworkKey::from_password(b"secret\n") == NetworkKey::from_password(b"secret"));
        assert!(NetworkKey::from_password(b"secret") != NetworkKey::from_password(b"secret2"));
    }
}
