//! The network password: read from its file (refused if the group or
//! others can read it), judged for strength, and turned into the network
//! key once at start, with a log line saying what holding it grants.

use anyhow::{bail, Context};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;
use weavers_proto::keys::NetworkKey;

/// Passwords shorter than this many bytes (surrounding whitespace aside)
/// get a warning.
pub const MIN_LEN: usize = 16;
/// Passwords whose [`estimated_bits`] fall below this get a warning.
pub const MIN_BITS: f64 = 60.0;

/// Reads the password file, refusing one the group or others can read
/// (the check is on the opened file, so a swap after it cannot slip by).
pub fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path).with_context(|| format!("reading password file {}", path.display()))?;
    let mode = f.metadata().with_context(|| format!("reading password file {}", path.display()))?.permissions().mode();
    if mode & 0o044 != 0 {
        bail!(
            "password file {} is readable by its group or others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    let mut password = Vec::new();
    f.read_to_end(&mut password).with_context(|| format!("reading password file {}", path.display()))?;
    Ok(password)
}

/// A simple strength estimate, in bits: each byte is worth log2 of the
/// size of the character classes the password uses (26 lowercase, 26
/// uppercase, 10 digits, 33 other printable ASCII, 128 non-ASCII), except a
/// byte equal to the one before it, which is worth nothing. It catches
/// short passwords, PINs and repeated characters, not dictionary words.
pub fn estimated_bits(password: &[u8]) -> f64 {
    let p = password.trim_ascii();
    let has = |f: fn(&u8) -> bool| p.iter().any(f);
    let pool = [
        (has(u8::is_ascii_lowercase), 26),
        (has(u8::is_ascii_uppercase), 26),
        (has(u8::is_ascii_digit), 10),
        (has(|b| b.is_ascii() && !b.is_ascii_alphanumeric()), 33),
        (has(|b| !b.is_ascii()), 128),
    ]
    .iter()
    .filter(|(present, _)| *present)
    .map(|(_, n)| n)
    .sum::<u32>();
    let counted = p.iter().enumerate().filter(|&(i, b)| i == 0 || p[i - 1] != *b).count();
    counted as f64 * f64::from(pool.max(1)).log2()
}

/// Why the password is weak, naming the rule it breaks; None if it passes
/// both ([`MIN_LEN`] bytes, [`MIN_BITS`] by [`estimated_bits`]).
pub fn weakness(password: &[u8]) -> Option<String> {
    let len = password.trim_ascii().len();
    if len < MIN_LEN {
        return Some(format!("{len} bytes, under {MIN_LEN}"));
    }
    let bits = estimated_bits(password);
    (bits < MIN_BITS).then(|| format!("about {bits:.0} bits by a character-class estimate, under {MIN_BITS:.0}"))
}

/// The network key of this password and network name (Argon2id, a
/// fraction of a second: see [`NetworkKey::derive`]). Logs a warning for
/// a weak password, and what every holder of the password may do.
pub fn network_key(password: &[u8], network: &str, with_authority: bool) -> anyhow::Result<NetworkKey> {
    if let Some(why) = weakness(password) {
        tracing::warn!(
            "the network password is weak ({why}): whoever captures one handshake can test guesses offline; \
             `weavers password generate` makes a strong one"
        );
    }
    if !with_authority {
        tracing::info!(
            network,
            "password mode: every holder of the network password is trusted as a full peer \
             (it can join, read every multicast group, and publish DNS names)"
        );
    }
    let started = Instant::now();
    let key = NetworkKey::derive(password, network).context("deriving the network key")?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "network key derived (Argon2id)");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_named_by_the_rule_they_break() {
        assert_eq!(weakness(b"s3cret\n").as_deref(), Some("6 bytes, under 16"));
        let pin = weakness(b"1234567890123456").expect("sixteen digits: 53 bits");
        assert!(pin.starts_with("about 53 bits"), "{pin}");
        assert!(weakness(b"aaaaaaaaaaaaaaaaaaaa").is_some(), "one character repeated");
        assert_eq!(weakness(b"correct horse battery staple"), None);
        assert_eq!(weakness(b"q2bWbsCuvqyE1J3yMzDtSAe7xTVf8oyaWEvFyM0E_u0\n"), None, "what `password generate` prints");
        assert!(estimated_bits(b"") == 0.0);
    }

    #[test]
    fn a_password_file_others_can_read_is_refused() {
        let dir = std::env::temp_dir().join(format!("weavers-password-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        std::fs::write(&file, "correct horse battery staple\n").unwrap();
        for (mode, ok) in [(0o600, true), (0o400, true), (0o620, true), (0o640, false), (0o604, false), (0o644, false)]
        {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            match read_file(&file) {
                Ok(p) => assert!(ok && p == b"correct horse battery staple\n", "mode {mode:o}"),
                Err(e) => {
                    let e = format!("{e:#}");
                    assert!(!ok && e.contains("readable by its group or others") && e.contains("chmod 600"), "{e}");
                }
            }
        }
        assert!(read_file(&dir.join("absent")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_key_depends_on_the_network_name() {
        let a = network_key(b"correct horse battery staple", "weavers", false).unwrap();
        assert!(a == network_key(b"correct horse battery staple\n", "weavers", false).unwrap());
        assert!(a != network_key(b"correct horse battery staple", "other", false).unwrap());
        assert!(network_key(b"  ", "weavers", false).is_err());
    }
}
