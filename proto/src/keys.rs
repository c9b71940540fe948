//! Identity keys and the network secret.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use blake2::{Blake2s256, Digest};
use rand::RngCore as _;
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

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// A host's identity: an Ed25519 signing key, and the X25519 key pair its
/// Noise handshakes use, derived from it.
///
/// The Ed25519 seed is the one secret a host keeps (in its state dir). The
/// X25519 private key is the seed's clamped scalar and the X25519 public key
/// is the Ed25519 public key's Montgomery form, so anyone holding a
/// host's [`PublicKey`] can check that a [`SignerKey`] belongs to it
/// ([`SignerKey::verify`]): a signed record needs no certificate to prove
/// whose it is. The private halves never leave the host.
#[derive(Clone)]
pub struct StaticKeypair {
    /// The X25519 private key (for Noise).
    pub private: [u8; KEY_LEN],
    /// The X25519 public key: the host's identity in the mesh.
    pub public: PublicKey,
    signing: ed25519_dalek::SigningKey,
}

impl StaticKeypair {
    /// The identity whose Ed25519 seed is `seed`.
    pub fn from_seed(seed: [u8; KEY_LEN]) -> Self {
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public = PublicKey(signing.verifying_key().to_montgomery().to_bytes());
        StaticKeypair { private: signing.to_scalar_bytes(), public, signing }
    }

    /// A fresh random identity (from the operating system's RNG).
    pub fn generate() -> Self {
        let mut seed = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        Self::from_seed(seed)
    }

    /// The Ed25519 seed: what the state dir keeps.
    pub fn seed(&self) -> [u8; KEY_LEN] {
        self.signing.to_bytes()
    }

    /// The key others check this host's signatures with.
    pub fn signer(&self) -> SignerKey {
        SignerKey(self.signing.verifying_key().to_bytes())
    }

    /// Signs `msg` (Ed25519, deterministic).
    pub fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        use ed25519_dalek::Signer as _;
        self.signing.sign(msg).to_bytes()
    }
}

/// A host's Ed25519 public key, as carried beside what it signs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SignerKey(pub [u8; KEY_LEN]);

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signing key is not a valid Ed25519 point, or is not the one
    /// belonging to the claimed identity.
    #[error("signing key does not belong to the claimed host")]
    WrongKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
}

impl SignerKey {
    /// Checks that this key belongs to `host` (its Montgomery form is the
    /// host's X25519 key) and that `sig` is its signature of `msg`. Strict
    /// verification: no malleable or small-order forms.
    pub fn verify(&self, host: &PublicKey, msg: &[u8], sig: &[u8; SIGNATURE_LEN]) -> Result<(), SignatureError> {
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&self.0).map_err(|_| SignatureError::WrongKey)?;
        if vk.is_weak() || vk.to_montgomery().to_bytes() != host.0 {
            return Err(SignatureError::WrongKey);
        }
        vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig)).map_err(|_| SignatureError::BadSignature)
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignerKey({})", &B64.encode(self.0)[..8])
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
    fn identity_from_seed_is_stable_and_base64_round_trips() {
        let a = StaticKeypair::generate();
        let b = StaticKeypair::from_seed(a.seed());
        assert_eq!(a.public, b.public);
        assert_eq!(a.private, b.private);
        assert_eq!(PublicKey::from_base64(&a.public.to_base64()), Some(a.public));
        assert_eq!(PublicKey::from_base64("not base64!"), None);
        assert_eq!(PublicKey::from_base64("AAAA"), None);
    }

    /// The X25519 key Noise uses is the one derived from the signing key:
    /// a Diffie-Hellman with the derived private key gives the same shared
    /// secret as one with the Montgomery form of the Ed25519 public key.
    #[test]
    fn noise_key_is_bound_to_the_signing_key() {
        use snow::resolvers::{CryptoResolver, DefaultResolver};
        let a = StaticKeypair::generate();
        let mut dh = DefaultResolver.resolve_dh(&snow::params::DHChoice::Curve25519).unwrap();
        dh.set(&a.private);
        assert_eq!(dh.pubkey(), &a.public.0[..], "snow derives the same public key");
        let sig = a.sign(b"record");
        assert_eq!(a.signer().verify(&a.public, b"record", &sig), Ok(()));
        assert_eq!(a.signer().verify(&a.public, b"recorD", &sig), Err(SignatureError::BadSignature));
        let other = StaticKeypair::generate();
        assert_eq!(other.signer().verify(&a.public, b"record", &other.sign(b"record")), Err(SignatureError::WrongKey));
        assert_eq!(SignerKey([0; 32]).verify(&a.public, b"record", &sig), Err(SignatureError::WrongKey));
        let mut bad = sig;
        bad[63] ^= 0x80;
        assert!(a.signer().verify(&a.public, b"record", &bad).is_err());
    }

    #[test]
    fn password_whitespace_is_ignored_and_passwords_differ() {
        assert!(NetworkKey::from_password(b"secret\n") == NetworkKey::from_password(b"secret"));
        assert!(NetworkKey::from_password(b"secret") != NetworkKey::from_password(b"secret2"));
    }
}
