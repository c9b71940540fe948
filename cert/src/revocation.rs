//! Revocations: the authority's signed word that the certificates issued
//! to a name up to a moment are void.

use crate::{armor, split_signed, Authority, CertError, HostCert, FORMAT_VERSION};
use serde::{Deserialize, Serialize};

const LABEL: &str = "REVOCATION";

/// What a revocation says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationBody {
    /// [`FORMAT_VERSION`].
    pub version: u8,
    /// The authority's public key.
    pub authority: [u8; 32],
    /// The host name whose certificates are void.
    pub name: String,
    /// Certificates of `name` valid from this moment or earlier (unix
    /// seconds) are void; one issued later is not (a re-enrolled host).
    pub revoked_at: u64,
}

/// A signed revocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    body: RevocationBody,
    encoded: Vec<u8>,
}

impl Revocation {
    pub(crate) const KIND: &'static str = "revocation";

    pub(crate) fn from_parts(body: RevocationBody, encoded: Vec<u8>) -> Revocation {
        Revocation { body, encoded }
    }

    /// What it says.
    pub fn body(&self) -> &RevocationBody {
        &self.body
    }

    /// The binary form, as hosts pass it on.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// Reads the binary form and checks that `authority` signed it.
    pub fn decode(bytes: &[u8], authority: &Authority) -> Result<Revocation, CertError> {
        let (body_bytes, sig) = split_signed(Self::KIND, bytes)?;
        let body: RevocationBody = postcard::from_bytes(body_bytes).map_err(|_| CertError::Malformed(Self::KIND))?;
        if body.version != FORMAT_VERSION {
            return Err(CertError::Version(Self::KIND, body.version));
        }
        if !crate::is_valid_name(&body.name) {
            return Err(CertError::Name(Self::KIND));
        }
        if &body.authority != authority.key() {
            return Err(CertError::WrongAuthority);
        }
        authority.verify(Self::KIND, body_bytes, &sig)?;
        Ok(Revocation { body, encoded: bytes.to_vec() })
    }

    /// Whether it voids `cert`.
    pub fn revokes(&self, cert: &HostCert) -> bool {
        let c = cert.body();
        c.authority == self.body.authority && c.name == self.body.name && c.not_before <= self.body.revoked_at
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        format!(
            "# weavers revocation of {:?} at {} (unix seconds)\n{}",
            self.body.name,
            self.body.revoked_at,
            armor::encode(LABEL, &self.encoded)
        )
    }

    /// Reads the text form and checks the signature.
    pub fn from_text(text: &str, authority: &Authority) -> Result<Revocation, CertError> {
        Revocation::decode(&armor::decode("REVOCATION", text)?, authority)
    }
}
