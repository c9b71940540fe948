//! Identity keys and the network secret.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
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

/// Argon2id memory cost of [`NetworkKey::derive`], in KiB (64 MiB).
pub const ARGON2_MEMORY_KIB: u32 = 64 * 1024;
/// Argon2id passes over that memory.
pub const ARGON2_PASSES: u32 = 3;
/// Argon2id lanes (one: the daemon derives the key on one thread).
pub const ARGON2_LANES: u32 = 1;
/// The network name used when none is given (`--network`).
pub const DEFAULT_NETWORK: &str = "weavers";
/// Longest network name, in bytes.
pub const MAX_NETWORK_LEN: usize = 64;
/// Put before the network name to make the Argon2 salt, so no other use
/// of Argon2 with the same password ever yields this key.
const SALT_PREFIX: &[u8] = b"weavers network key v2\0";

/// Why a network key could not be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkKeyError {
    /// The password is empty (or only whitespace).
    #[error("the network password is empty")]
    EmptyPassword,
    /// The network name is not 1 to [`MAX_NETWORK_LEN`] letters, digits,
    /// `-`, `_` or `.`.
    #[error("network name {0:?}: use 1 to 64 letters, digits, '-', '_' or '.'")]
    BadNetworkName(String),
    /// Argon2 refused its inputs (a password longer than 4 GiB).
    #[error("Argon2: {0}")]
    Argon2(argon2::Error),
}

/// The network's pre-shared key, derived from its password and name.
///
/// Every member mixes it into every handshake, so a host without the
/// password cannot complete one. An XX initiation's payload is sealed
/// under a key mixed from the PSK, so whoever captures one can test
/// password guesses offline: the derivation is made slow on purpose
/// (Argon2id, [`NetworkKey::derive`]) and salted by the network name, so
/// each guess costs about 180 ms and 64 MiB of memory, and no table
/// computed for one network serves another.
#[derive(Clone, PartialEq, Eq)]
pub struct NetworkKey(pub [u8; 32]);

impl NetworkKey {
    /// Derives the PSK from the password (surrounding ASCII whitespace
    /// ignored, so a file written by `echo` works) and the network's name.
    ///
    /// Argon2id, version 0x13, m = 64 MiB ([`ARGON2_MEMORY_KIB`]), t = 3
    /// ([`ARGON2_PASSES`]), p = 1 ([`ARGON2_LANES`]), 32-byte output; the
    /// salt is `"weavers network key v2\0"` followed by the network name.
    /// Measured on the development machine (2 shared AMD EPYC cores,
    /// release build, `cargo bench -p weavers-proto --bench session --
    /// network_key`): 184 ms per derivation (criterion, 175-192 ms), so one
    /// password guess costs an attacker on such a core that much, well over
    /// the 50 ms aimed at. In the debug test build (Argon2 at opt-level 3)
    /// about 155 ms of CPU. Call it once, at start.
    pub fn derive(password: &[u8], network: &str) -> Result<Self, NetworkKeyError> {
        let password = password.trim_ascii();
        if password.is_empty() {
            return Err(NetworkKeyError::EmptyPassword);
        }
        if !is_valid_network_name(network) {
            return Err(NetworkKeyError::BadNetworkName(network.to_string()));
        }
        let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, Some(KEY_LEN))
            .map_err(NetworkKeyError::Argon2)?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut salt = SALT_PREFIX.to_vec();
        salt.extend_from_slice(network.as_bytes());
        let mut key = [0u8; KEY_LEN];
        argon.hash_password_into(password, &salt, &mut key).map_err(NetworkKeyError::Argon2)?;
        Ok(NetworkKey(key))
    }
}

impl NetworkKey {
    /// The network key of network-authority mode: BLAKE2s over the
    /// authority's public key and, when the network also has a password,
    /// the password's key. It keys mac1 and the handshakes' PSK, so a
    /// stranger without the authority's certificate (and the password,
    /// when one is set) gets no handshake work done; the certificates then
    /// decide who is a peer.
    pub fn with_authority(authority: &[u8; KEY_LEN], password: Option<&NetworkKey>) -> NetworkKey {
        use blake2::{Blake2s256, Digest};
        let mut h = Blake2s256::new();
        h.update(b"weavers network key from an authority v1");
        h.update(authority);
        match password {
            Some(p) => {
                h.update([1]);
                h.update(p.0);
            }
            None => h.update([0]),
        }
        NetworkKey(h.finalize().into())
    }
}

/// Whether `name` can name a network: 1 to [`MAX_NETWORK_LEN`] bytes of
/// ASCII letters, digits, `-`, `_` and `.`.
pub fn is_valid_network_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NETWORK_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
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

    /// The derivation is Argon2id with the documented parameters and salt:
    /// the key matches one computed by the reference C implementation
    /// (argon2-cffi's `hash_secret_raw(b"secret", b"weavers network key
    /// v2\0weavers", time_cost=3, memory_cost=65536, parallelism=1,
    /// hash_len=32, type=ID, version=19)`), so a change of parameters,
    /// which would split existing networks, cannot pass unnoticed. The
    /// password's surrounding whitespace does not count; the password and
    /// the network name each change the key.
    #[test]
    fn network_key_is_salted_argon2id_of_the_trimmed_password() {
        let k = NetworkKey::derive(b"secret\n", "weavers").unwrap();
        let reference = [
            0xa0, 0xdb, 0xd0, 0xb8, 0x58, 0x94, 0x1e, 0xd4, 0x35, 0x45, 0x2d, 0xeb, 0x84, 0xcc, 0x42, 0xcf, 0x5d, 0xb3,
            0x67, 0x8f, 0x88, 0xa3, 0x08, 0xf8, 0xe1, 0x9e, 0xca, 0xeb, 0x27, 0xd6, 0x75, 0xad,
        ];
        assert!(k == NetworkKey(reference));
        assert!(k == NetworkKey::derive(b"  secret", DEFAULT_NETWORK).unwrap());
        assert!(k != NetworkKey::derive(b"secret2", "weavers").unwrap(), "another password");
        assert!(k != NetworkKey::derive(b"secret", "weavers2").unwrap(), "another network");
        assert_eq!(NetworkKey::derive(b" \n", "weavers"), Err(NetworkKeyError::EmptyPassword));
        for bad in ["", "two words", "caf\u{e9}", &"n".repeat(65)] {
            assert_eq!(
                NetworkKey::derive(b"secret", bad),
                Err(NetworkKeyError::BadNetworkName(bad.to_string())),
                "{bad:?}"
            );
        }
        assert!(is_valid_network_name(&"n".repeat(64)) && is_valid_network_name("prod-eu.1_a"));
    }
}
