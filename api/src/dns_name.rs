//! Names in the overlay DNS (`NAME.weavers.local`) and the owner tags of
//! its entries, as users and the CNI plugin write them: the one place that
//! says what a valid name is. The daemon normalises every name it is given
//! with [`normalize`]; the plugin makes its labels to pass [`is_valid_name`].

/// The overlay's domain, without the final dot.
pub const DOMAIN: &str = "weavers.local";
/// Longest full name (`NAME.weavers.local`, without the final dot).
pub const MAX_NAME_LEN: usize = 253;
/// Longest label (the text between dots).
pub const MAX_LABEL_LEN: usize = 63;
/// Longest owner tag.
pub const MAX_OWNER_LEN: usize = 128;

/// Why a name or an owner tag was refused; `Display` is the message for
/// users (it quotes at most 80 characters of the input, control
/// characters as `?`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a name in the overlay's domain.
    #[error("invalid name {shown:?}: {why}")]
    Name {
        /// The start of the input, made printable.
        shown: String,
        /// What is wrong with it.
        why: String,
    },
    /// Not an acceptable owner tag.
    #[error("invalid owner tag: use 1 to {MAX_OWNER_LEN} visible ASCII characters (no spaces)")]
    Owner,
}

/// The full name of a normalised name: `NAME.weavers.local`.
pub fn fqdn(name: &str) -> String {
    format!("{name}.{DOMAIN}")
}

/// Normalises a name as users give it: case-insensitive, with or without
/// the `.weavers.local` suffix and a final dot. Returns the name without
/// the domain, in lowercase.
pub fn normalize(input: &str) -> Result<String, NameError> {
    let shown: String = input.chars().take(80).map(|c| if c.is_control() { '?' } else { c }).collect();
    let bad = |why: &str| NameError::Name { shown: shown.clone(), why: why.to_owned() };
    if input.is_empty() {
        return Err(bad("empty"));
    }
    if input.len() > MAX_NAME_LEN + 1 {
        return Err(bad(&format!("longer than {MAX_NAME_LEN} bytes")));
    }
    if !input.is_ascii() {
        return Err(bad("only ASCII letters, digits, '-' and '_' may be used (write IDNs in their xn-- form)"));
    }
    let lower = input.to_ascii_lowercase();
    let s = lower.strip_suffix('.').unwrap_or(&lower);
    if s == DOMAIN {
        return Err(bad("that is the domain itself; give a name in it"));
    }
    let rel = s.strip_suffix(&format!(".{DOMAIN}")).unwrap_or(s);
    check_name(rel).map_err(bad)?;
    Ok(rel.to_string())
}

/// Whether `name` is a normalised name (without the domain).
pub fn is_valid_name(name: &str) -> bool {
    check_name(name).is_ok()
}

fn check_name(rel: &str) -> Result<(), &'static str> {
    if rel.is_empty() {
        return Err("empty");
    }
    if rel.len() + 1 + DOMAIN.len() > MAX_NAME_LEN {
        return Err("the full name is longer than 253 bytes");
    }
    for label in rel.split('.') {
        if label.is_empty() {
            return Err("empty label (two dots in a row, or a leading dot)");
        }
        if label.len() > MAX_LABEL_LEN {
            return Err("a label (the text between dots) is longer than 63 bytes");
        }
        if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
            return Err("only letters, digits, '-' and '_' may be used");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label may not start or end with '-'");
        }
    }
    Ok(())
}

/// Whether `owner` is an acceptable owner tag: 1 to 128 visible ASCII characters.
pub fn is_valid_owner(owner: &str) -> bool {
    !owner.is_empty() && owner.len() <= MAX_OWNER_LEN && owner.bytes().all(|b| b.is_ascii_graphic())
}

/// Checks an owner tag as users give it.
pub fn check_owner(owner: &str) -> Result<(), NameError> {
    if is_valid_owner(owner) {
        Ok(())
    } else {
        Err(NameError::Owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise_case_suffix_and_dot() {
        for (input, want) in [
            ("AAPL.orders.aex", "aapl.orders.aex"),
            ("aapl.orders.aex.weavers.local", "aapl.orders.aex"),
            ("aapl.orders.aex.WEAVERS.LOCAL.", "aapl.orders.aex"),
            ("web", "web"),
            ("web.", "web"),
            ("_svc._tcp.x", "_svc._tcp.x"),
            ("a-b.c1", "a-b.c1"),
        ] {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input}");
        }
        let label = "a".repeat(63);
        assert!(normalize(&label).is_ok());
        // 253 in all: 239 + ".weavers.local".
        let longest = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(47));
        assert_eq!(fqdn(&longest).len(), 253);
        assert!(normalize(&longest).is_ok());
        for bad in [
            "",
            ".",
            "weavers.local",
            "WEAVERS.LOCAL.",
            "a..b",
            ".a",
            "-a",
            "a-",
            "a b",
            "a\nb",
            "é",
            "a/b",
            "a*",
            "..",
            &"a".repeat(64),
            &format!("{longest}x"),
            &"a.".repeat(200),
        ] {
            assert!(normalize(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn messages_quote_a_bounded_printable_input() {
        assert_eq!(
            normalize("bad..name").unwrap_err().to_string(),
            "invalid name \"bad..name\": empty label (two dots in a row, or a leading dot)"
        );
        let e = normalize(&format!("\u{1b}[31m{}", "x".repeat(500))).unwrap_err().to_string();
        assert!(!e.contains('\u{1b}') && e.len() < 200, "{e:?}");
    }

    #[test]
    fn owner_tags() {
        for ok in ["c1", "cni:3f69/eth0", &"o".repeat(MAX_OWNER_LEN)] {
            assert!(is_valid_owner(ok) && check_owner(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "a b", "tab\t", "é", &"o".repeat(MAX_OWNER_LEN + 1)] {
            assert_eq!(check_owner(bad), Err(NameError::Owner), "{bad:?}");
        }
    }
}
