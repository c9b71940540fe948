//! The text form of keys, certificates and revocations: base64 between
//! `-----BEGIN WEAVERS <LABEL>-----` and `-----END WEAVERS <LABEL>-----`
//! lines, as PEM writes it. Lines outside the block (comments a human
//! reads) are ignored.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

/// Longest text [`decode`] reads (a certificate with full lists is well
/// under this).
pub const MAX_TEXT_LEN: usize = 16 * 1024;

/// Why a text could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArmorError {
    /// No `BEGIN`/`END` pair with the expected label.
    #[error("no {0} block (expected -----BEGIN WEAVERS {0}-----)")]
    Missing(&'static str),
    /// The text between them is not base64.
    #[error("the {0} block is not valid base64")]
    Base64(&'static str),
    /// Longer than [`MAX_TEXT_LEN`].
    #[error("text too long ({0} bytes)")]
    TooLong(usize),
}

/// `bytes` as a block labelled `label`, with a final newline.
pub fn encode(label: &str, bytes: &[u8]) -> String {
    let b64 = B64.encode(bytes);
    let mut out = format!("-----BEGIN WEAVERS {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END WEAVERS {label}-----\n"));
    out
}

/// The bytes of the first block labelled `label` in `text`.
pub fn decode(label: &'static str, text: &str) -> Result<Vec<u8>, ArmorError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(ArmorError::TooLong(text.len()));
    }
    let begin = format!("-----BEGIN WEAVERS {label}-----");
    let end = format!("-----END WEAVERS {label}-----");
    let mut lines = text.lines().map(str::trim).skip_while(|l| *l != begin);
    if lines.next().is_none() {
        return Err(ArmorError::Missing(label));
    }
    let mut b64 = String::new();
    for line in lines {
        if line == end {
            return B64.decode(b64.as_bytes()).map_err(|_| ArmorError::Base64(label));
        }
        b64.push_str(line);
    }
    Err(ArmorError::Missing(label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_ignore_comments() {
        let text = format!("# a comment\n{}trailing\n", encode("THING", &[7u8; 100]));
        assert_eq!(decode("THING", &text).unwrap(), vec![7u8; 100]);
        assert_eq!(decode("OTHER", &text), Err(ArmorError::Missing("OTHER")));
        let cut = text.replace("-----END WEAVERS THING-----", "");
        assert_eq!(decode("THING", &cut), Err(ArmorError::Missing("THING")));
        let bad = "-----BEGIN WEAVERS THING-----\n!!\n-----END WEAVERS THING-----\n";
        assert_eq!(decode("THING", bad), Err(ArmorError::Base64("THING")));
    }
}
