//! weavers' network authority: who may join a mesh, and what each host may
//! do in it.
//!
//! An authority is an Ed25519 key pair. Its certificate ([`Authority`],
//! `ca.crt`) is self-signed and names the key; every host is given it with
//! `--ca`. A [`HostCert`] binds a host's name to its public key (the X25519
//! key `weaversd --print-public-key` prints, the key its Noise handshakes
//! prove) with the host's [`Permissions`] and a validity period; hosts
//! exchange certificates inside their handshakes and accept only peers
//! whose certificate the authority signed, that are inside their period and
//! not revoked. A [`Revocation`] is a signed statement that the
//! certificates issued to a name up to a moment are no longer valid; hosts
//! spread revocations to each other and keep them.
//!
//! Every signature covers a context string naming what is signed, so a
//! signature on one kind of object can never be taken for another. Binary
//! forms are postcard with a leading format version; text forms are
//! [`armor`] blocks. Decoders take hostile bytes: bounded lengths, no
//! panics, every field checked.

pub mod armor;
mod authority;
mod host;
pub mod policy;
mod revocation;

pub use authority::{Authority, AuthorityKey};
pub use host::{CertBody, HostCert};
pub use policy::{GroupRange, NamePattern, Permissions, PolicyError};
pub use revocation::{Revocation, RevocationBody};

/// Format version of every binary form.
pub const FORMAT_VERSION: u8 = 1;
/// Longest binary certificate or revocation accepted.
pub const MAX_ENCODED_LEN: usize = 4096;
/// Longest name in a certificate.
pub const MAX_NAME_LEN: usize = 64;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Why a certificate, key or revocation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The text form could not be read.
    #[error("{0}")]
    Armor(#[from] armor::ArmorError),
    /// The bytes are not a well-formed object of this kind.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// Longer than [`MAX_ENCODED_LEN`].
    #[error("{0} too long")]
    TooLong(&'static str),
    /// A format version this build does not know.
    #[error("unknown {0} format version {1}")]
    Version(&'static str, u8),
    /// Signed by another authority (or not signed by the one it names).
    #[error("not signed by this network's authority")]
    WrongAuthority,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Not valid yet at the time of the check.
    #[error("not valid before {0} (unix seconds)")]
    NotYetValid(u64),
    /// Expired at the time of the check.
    #[error("expired at {0} (unix seconds)")]
    Expired(u64),
    /// Revoked by the authority.
    #[error("revoked")]
    Revoked,
    /// The certificate is for another key than the one that presented it.
    #[error("certificate is for another key")]
    KeyMismatch,
    /// A name that is empty, too long or not printable.
    #[error("invalid name in {0}")]
    Name(&'static str),
}

/// Seconds since the Unix epoch by this machine's clock: the unit of
/// certificate periods and revocation times (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether `name` may stand in a certificate: 1 to [`MAX_NAME_LEN`]
/// visible ASCII characters.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.bytes().all(|b| b.is_ascii_graphic())
}

/// The bytes a signature of `kind` covers.
fn signed_message(kind: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + body.len());
    m.extend_from_slice(b"weavers-authority-v1 ");
    m.extend_from_slice(kind.as_bytes());
    m.push(0);
    m.extend_from_slice(body);
    m
}

/// Splits `body | signature`, bounded.
fn split_signed<'a>(what: &'static str, bytes: &'a [u8]) -> Result<(&'a [u8], [u8; SIGNATURE_LEN]), CertError> {
    if bytes.len() > MAX_ENCODED_LEN {
        return Err(CertError::TooLong(what));
    }
    let at = bytes.len().checked_sub(SIGNATURE_LEN).ok_or(CertError::Malformed(what))?;
    let (body, sig) = bytes.split_at(at);
    Ok((body, sig.try_into().expect("64 bytes")))
}

/// Verifies `sig` over `kind`/`body` by the Ed25519 key `key`.
fn verify(key: &[u8; 32], kind: &str, body: &[u8], sig: &[u8; SIGNATURE_LEN]) -> Result<(), CertError> {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(key).map_err(|_| CertError::BadSignature)?;
    vk.verify_strict(&signed_message(kind, body), &ed25519_dalek::Signature::from_bytes(sig))
        .map_err(|_| CertError::BadSignature)
}
