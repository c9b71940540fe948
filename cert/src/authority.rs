//! The authority: its private key (`ca.key`) and its self-signed
//! certificate (`ca.crt`).

use crate::{armor, signed_message, split_signed, verify, CertError, FORMAT_VERSION};
use crate::{CertBody, HostCert, Permissions, Revocation, RevocationBody};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

const KEY_LABEL: &str = "AUTHORITY KEY";
const CERT_LABEL: &str = "AUTHORITY CERTIFICATE";
const CERT_KIND: &str = "authority certificate";

/// The authority's private key: an Ed25519 seed. Kept by whoever signs
/// certificates (`weavers ca`), never by the hosts.
pub struct AuthorityKey(ed25519_dalek::SigningKey);

impl AuthorityKey {
    /// A new key from the operating system's random numbers.
    pub fn generate() -> AuthorityKey {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        AuthorityKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The key with this seed.
    pub fn from_seed(seed: [u8; 32]) -> AuthorityKey {
        AuthorityKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The public half.
    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// The text form (`ca.key`).
    pub fn to_text(&self) -> String {
        armor::encode(KEY_LABEL, &self.0.to_bytes())
    }

    /// Reads the text form.
    pub fn from_text(text: &str) -> Result<AuthorityKey, CertError> {
        let b = armor::decode("AUTHORITY KEY", text)?;
        let seed: [u8; 32] = b.try_into().map_err(|_| CertError::Malformed("authority key"))?;
        Ok(AuthorityKey::from_seed(seed))
    }

    fn sign(&self, kind: &str, body: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.0.sign(&signed_message(kind, body)).to_bytes()
    }

    /// The authority's certificate, named `name`, valid from `now` for
    /// `days` days.
    pub fn self_certify(&self, name: &str, now: u64, days: u32) -> Result<Authority, CertError> {
        if !crate::is_valid_name(name) {
            return Err(CertError::Name("authority certificate"));
        }
        let body = AuthorityBody {
            version: FORMAT_VERSION,
            name: name.to_owned(),
            key: self.public(),
            not_before: now,
            not_after: now.saturating_add(u64::from(days) * 86_400),
        };
        let bytes = postcard::to_allocvec(&body).expect("serializes");
        let sig = self.sign(CERT_KIND, &bytes);
        Ok(Authority { body, encoded: [bytes.as_slice(), &sig].concat() })
    }

    /// A certificate for the host `name` with key `public_key`, valid from
    /// `now` for `days` days.
    pub fn sign_host(
        &self,
        name: &str,
        public_key: [u8; 32],
        permissions: Permissions,
        now: u64,
        days: u32,
    ) -> Result<HostCert, CertError> {
        if !crate::is_valid_name(name) {
            return Err(CertError::Name("host certificate"));
        }
        if !permissions.is_bounded() {
            return Err(CertError::TooLong("host certificate"));
        }
        let mut serial = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut serial);
        let body = CertBody {
            version: FORMAT_VERSION,
            authority: self.public(),
            name: name.to_owned(),
            public_key,
            permissions,
            not_before: now,
            not_after: now.saturating_add(u64::from(days) * 86_400),
            serial: u64::from_le_bytes(serial),
        };
        let bytes = postcard::to_allocvec(&body).expect("serializes");
        if bytes.len() + 64 > crate::MAX_ENCODED_LEN {
            return Err(CertError::TooLong("host certificate"));
        }
        let sig = self.sign(HostCert::KIND, &bytes);
        Ok(HostCert::from_parts(body, [bytes.as_slice(), &sig].concat()))
    }

    /// A revocation of the certificates issued to `name` up to `now`.
    pub fn revoke(&self, name: &str, now: u64) -> Result<Revocation, CertError> {
        if !crate::is_valid_name(name) {
            return Err(CertError::Name("revocation"));
        }
        let body = RevocationBody {
            version: FORMAT_VERSION,
            authority: self.public(),
            name: name.to_owned(),
            revoked_at: now,
        };
        let bytes = postcard::to_allocvec(&body).expect("serializes");
        let sig = self.sign(Revocation::KIND, &bytes);
        Ok(Revocation::from_parts(body, [bytes.as_slice(), &sig].concat()))
    }
}

impl std::fmt::Debug for AuthorityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthorityKey(..)")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct AuthorityBody {
    version: u8,
    name: String,
    key: [u8; 32],
    not_before: u64,
    not_after: u64,
}

/// The authority's certificate: its name and public key, self-signed.
/// What every host of the network is given with `--ca`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authority {
    body: AuthorityBody,
    encoded: Vec<u8>,
}

impl Authority {
    /// The authority's Ed25519 public key.
    pub fn key(&self) -> &[u8; 32] {
        &self.body.key
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.body.name
    }

    /// When it expires (unix seconds).
    pub fn not_after(&self) -> u64 {
        self.body.not_after
    }

    /// The binary form (signed body and signature).
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// Reads and checks the binary form (its self-signature; not its
    /// period, which [`Authority::check_time`] does).
    pub fn decode(bytes: &[u8]) -> Result<Authority, CertError> {
        let (body_bytes, sig) = split_signed("authority certificate", bytes)?;
        let body: AuthorityBody =
            postcard::from_bytes(body_bytes).map_err(|_| CertError::Malformed("authority certificate"))?;
        if body.version != FORMAT_VERSION {
            return Err(CertError::Version("authority certificate", body.version));
        }
        if !crate::is_valid_name(&body.name) {
            return Err(CertError::Name("authority certificate"));
        }
        verify(&body.key, CERT_KIND, body_bytes, &sig)?;
        Ok(Authority { body, encoded: bytes.to_vec() })
    }

    /// Whether `now` (unix seconds) is inside its period.
    pub fn check_time(&self, now: u64) -> Result<(), CertError> {
        crate::host::check_period(self.body.not_before, self.body.not_after, now)
    }

    /// The text form (`ca.crt`), with a comment naming it.
    pub fn to_text(&self) -> String {
        format!("# weavers network authority {:?}\n{}", self.body.name, armor::encode(CERT_LABEL, &self.encoded))
    }

    /// Reads the text form.
    pub fn from_text(text: &str) -> Result<Authority, CertError> {
        Authority::decode(&armor::decode("AUTHORITY CERTIFICATE", text)?)
    }

    /// Checks that `kind`/`body` was signed by this authority.
    pub(crate) fn verify(&self, kind: &str, body: &[u8], sig: &[u8; 64]) -> Result<(), CertError> {
        verify(&self.body.key, kind, body, sig)
    }
}
