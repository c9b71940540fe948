//! Network-authority mode on the daemon's side: reading `--ca` and
//! `--cert` (refusing a certificate that is not this host's, not signed by
//! the authority, or outside its period), the saved revocations, and
//! reading the certificate again when it is renewed (every minute, and on
//! SIGHUP).

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use weavers_cert::{unix_now, Authority, HostCert, Revocation};
use weavers_proto::keys::PublicKey;
use weavers_proto::node::{Node, Trust};

/// How often the certificate file is read again.
pub const RELOAD_EVERY: Duration = Duration::from_secs(60);

/// The files behind network-authority mode, and when to read them again.
#[derive(Debug)]
pub struct AuthorityFiles {
    cert_path: PathBuf,
    /// The certificate's text as last taken (a reload that finds the same
    /// text does nothing).
    cert_text: String,
    next_reload: Instant,
}

fn read(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {what} {}", path.display()))
}

/// Reads and checks `--ca` and `--cert` for the host `own`; `saved` are
/// the revocations the state dir kept (those that do not verify are
/// skipped with a warning).
pub fn load(ca: &Path, cert: &Path, own: &PublicKey, saved: Vec<Vec<u8>>) -> anyhow::Result<(Trust, AuthorityFiles)> {
    let authority = Authority::from_text(&read(ca, "--ca")?).with_context(|| format!("--ca {}", ca.display()))?;
    authority.check_time(unix_now()).with_context(|| format!("--ca {}: the authority's certificate", ca.display()))?;
    let cert_text = read(cert, "--cert")?;
    let host = check_cert(&authority, &cert_text, own).with_context(|| format!("--cert {}", cert.display()))?;
    let mut revocations = Vec::new();
    for r in saved {
        match Revocation::decode(&r, &authority) {
            Ok(rev) if rev.revokes(&host) => {
                bail!("--cert {}: this certificate was revoked (at {})", cert.display(), rev.body().revoked_at)
            }
            Ok(_) => revocations.push(r),
            Err(e) => tracing::warn!("a saved revocation is not from this authority and was skipped: {e}"),
        }
    }
    tracing::info!(
        authority = authority.name(),
        name = host.name(),
        expires = host.body().not_after,
        revocations = revocations.len(),
        "network-authority mode: only hosts with a valid certificate from this authority are peers, \
         with the groups and names their certificates allow"
    );
    let files = AuthorityFiles { cert_path: cert.to_path_buf(), cert_text, next_reload: Instant::now() + RELOAD_EVERY };
    Ok((Trust { authority, cert: host, revocations }, files))
}

/// The certificate in `text`, checked for `own` under `authority` now.
fn check_cert(authority: &Authority, text: &str, own: &PublicKey) -> anyhow::Result<HostCert> {
    let cert = HostCert::from_text(text)?;
    if cert.body().public_key != own.0 {
        bail!(
            "the certificate is for the key {} but this host's key is {own} (weaversd --print-public-key); \
             sign one for this key",
            PublicKey(cert.body().public_key)
        );
    }
    cert.verify(authority, unix_now())?;
    Ok(cert)
}

impl AuthorityFiles {
    /// Reads the certificate again when due (or now, with `force`): a new,
    /// valid one replaces this host's in the node; an invalid one is
    /// logged and the old one kept.
    pub fn reload(&mut self, node: &mut Node, now: Instant, force: bool) {
        if !force && now < self.next_reload {
            return;
        }
        self.next_reload = now + RELOAD_EVERY;
        let text = match read(&self.cert_path, "--cert") {
            Ok(t) => t,
            Err(e) => return tracing::warn!("{e:#}; keeping the certificate in use"),
        };
        if text == self.cert_text {
            return;
        }
        let cert = match HostCert::from_text(&text) {
            Ok(c) => c,
            Err(e) => {
                return tracing::warn!("--cert {}: {e}; keeping the certificate in use", self.cert_path.display())
            }
        };
        let expires = cert.body().not_after;
        match node.set_own_cert(cert, now) {
            Ok(()) => {
                self.cert_text = text;
                tracing::info!(expires, "renewed certificate taken: handshakes from now on show it");
            }
            Err(e) => tracing::warn!("--cert {}: {e}; keeping the certificate in use", self.cert_path.display()),
        }
    }
}
