//! `weavers password generate`: a new network password from the operating
//! system's random generator.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;

/// Random bytes in a generated password: 256 bits, far beyond what an
/// offline guesser could search even at one Argon2 guess per microsecond.
pub const RANDOM_BYTES: usize = 32;

/// A new password: [`RANDOM_BYTES`] from the OS RNG as URL-safe base64
/// without padding (43 characters, no whitespace, no shell metacharacters).
pub fn generate() -> String {
    let mut bytes = [0u8; RANDOM_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the command prints: the password on one line, or with `--json`
/// `{"password": "..."}`.
pub fn output(password: &str, json: bool) -> String {
    if json {
        format!("{}\n", serde_json::json!({ "password": password }))
    } else {
        format!("{password}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_43_url_safe_characters_of_32_random_bytes() {
        let a = generate();
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{a}");
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), RANDOM_BYTES);
        assert_ne!(a, generate(), "two calls give two passwords");
        assert_eq!(output(&a, false), format!("{a}\n"));
        let v: serde_json::Value = serde_json::from_str(&output(&a, true)).unwrap();
        assert_eq!(v["password"], a.as_str());
    }
}
