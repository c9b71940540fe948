//! Linux's rule for interface names, which the CNI spec repeats: checked
//! before a name reaches the kernel (and by the plugin on `CNI_IFNAME`).

/// Longest interface name Linux accepts (`IFNAMSIZ - 1`).
pub const MAX_IFNAME_LEN: usize = libc::IFNAMSIZ - 1;

/// Why a name cannot be an interface name; `Display` says it in a few words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IfnameError {
    /// The empty string.
    #[error("empty")]
    Empty,
    /// More than [`MAX_IFNAME_LEN`] bytes.
    #[error("longer than 15 bytes")]
    TooLong,
    /// `.` or `..`.
    #[error("reserved name")]
    Reserved,
    /// A `/`, `:`, NUL or whitespace.
    #[error("contains '/', ':', NUL or whitespace")]
    BadCharacter,
}

/// Checks `name` against Linux's rule for interface names.
pub fn check_ifname(name: &str) -> Result<(), IfnameError> {
    if name.is_empty() {
        Err(IfnameError::Empty)
    } else if name.len() > MAX_IFNAME_LEN {
        Err(IfnameError::TooLong)
    } else if name == "." || name == ".." {
        Err(IfnameError::Reserved)
    } else if name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0) {
        Err(IfnameError::BadCharacter)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        for ok in ["eth0", "weavers", "vwv0123abcd", "a", "x".repeat(15).as_str(), "é"] {
            assert_eq!(check_ifname(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(check_ifname(""), Err(IfnameError::Empty));
        assert_eq!(check_ifname(&"x".repeat(16)), Err(IfnameError::TooLong));
        assert_eq!(check_ifname(".."), Err(IfnameError::Reserved));
        for bad in ["a/b", "a:1", "a b", "a\tb", "a\0", "\n"] {
            assert_eq!(check_ifname(bad), Err(IfnameError::BadCharacter), "{bad:?}");
        }
    }
}
