//! Host certificates: a name and a public key, what the host may do, and
//! when, signed by the authority.

use crate::{armor, split_signed, Authority, CertError, Permissions, FORMAT_VERSION};
use serde::{Deserialize, Serialize};

const LABEL: &str = "HOST CERTIFICATE";

/// What a host certificate says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertBody {
    /// [`FORMAT_VERSION`].
    pub version: u8,
    /// The signing authority's public key.
    pub authority: [u8; 32],
    /// The host's name: how peers list it, and what a revocation names.
    pub name: String,
    /// The host's public key (X25519, as `weaversd --print-public-key`
    /// prints it): the key its handshakes must prove.
    pub public_key: [u8; 32],
    /// What the host may do.
    pub permissions: Permissions,
    /// Valid from (unix seconds).
    pub not_before: u64,
    /// Valid until (unix seconds).
    pub not_after: u64,
    /// A random number telling certificates of the same host apart.
    pub serial: u64,
}

/// A host certificate: its body and the exact bytes that were signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostCert {
    body: CertBody,
    encoded: Vec<u8>,
}

/// Whether `now` is inside `[not_before, not_after]`.
pub(crate) fn check_period(not_before: u64, not_after: u64, now: u64) -> Result<(), CertError> {
    if now < not_before {
        return Err(CertError::NotYetValid(not_before));
    }
    if now > not_after {
        return Err(CertError::Expired(not_after));
    }
    Ok(())
}

impl HostCert {
    pub(crate) const KIND: &'static str = "host certificate";

    pub(crate) fn from_parts(body: CertBody, encoded: Vec<u8>) -> HostCert {
        HostCert { body, encoded }
    }

    /// What it says.
    pub fn body(&self) -> &CertBody {
        &self.body
    }

    /// The host's name.
    pub fn name(&self) -> &str {
        &self.body.name
    }

    /// The host's permissions.
    pub fn permissions(&self) -> &Permissions {
        &self.body.permissions
    }

    /// The binary form, as carried in handshakes.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// Reads the binary form; checks its structure only ([`HostCert::verify`]
    /// checks the rest).
    pub fn decode(bytes: &[u8]) -> Result<HostCert, CertError> {
        let (body_bytes, _) = split_signed(Self::KIND, bytes)?;
        let body: CertBody = postcard::from_bytes(body_bytes).map_err(|_| CertError::Malformed(Self::KIND))?;
        if body.version != FORMAT_VERSION {
            return Err(CertError::Version(Self::KIND, body.version));
        }
        if !crate::is_valid_name(&body.name) {
            return Err(CertError::Name(Self::KIND));
        }
        if !body.permissions.is_bounded() {
            return Err(CertError::TooLong(Self::KIND));
        }
        Ok(HostCert { body, encoded: bytes.to_vec() })
    }

    /// Checks that `authority` signed it and that `now` (unix seconds) is
    /// inside its period.
    pub fn verify(&self, authority: &Authority, now: u64) -> Result<(), CertError> {
        if &self.body.authority != authority.key() {
            return Err(CertError::WrongAuthority);
        }
        let (body, sig) = split_signed(Self::KIND, &self.encoded)?;
        authority.verify(Self::KIND, body, &sig)?;
        check_period(self.body.not_before, self.body.not_after, now)
    }

    /// The text form, with comments a human reads.
    pub fn to_text(&self) -> String {
        let b = &self.body;
        let list = |v: &Option<Vec<crate::GroupRange>>| match v {
            None => "all groups".to_owned(),
            Some(v) => v.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        };
        let names = match &b.permissions.names {
            None => "any".to_owned(),
            Some(v) => v.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        };
        format!(
            "# weavers host certificate for {:?}\n# public key: {}\n# publish: {}\n# subscribe: {}\n# names: {}\n\
             # valid: {} to {} (unix seconds)\n{}",
            b.name,
            base64_key(&b.public_key),
            list(&b.permissions.publish),
            list(&b.permissions.subscribe),
            names,
            b.not_before,
            b.not_after,
            armor::encode(LABEL, &self.encoded)
        )
    }

    /// Reads the text form.
    pub fn from_text(text: &str) -> Result<HostCert, CertError> {
        HostCert::decode(&armor::decode("HOST CERTIFICATE", text)?)
    }
}

fn base64_key(k: &[u8; 32]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(k)
}
