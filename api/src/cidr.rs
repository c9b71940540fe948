//! The one parser of `ADDRESS/PREFIX` (CIDR notation, IPv4 and IPv6), as
//! `weavers expose`, `--ipalloc-range` and the daemon's allocations write
//! addresses.
//!
//! Input may come from anyone who can reach the control socket or write a
//! configuration file, so the parser is strict and bounded: at most
//! [`MAX_CIDR_LEN`] bytes, an address as the standard library reads it (no
//! zone, no leading zeros in IPv4), a prefix length of one to three ASCII
//! digits (no sign, no spaces) no longer than the address. It does not
//! require the host bits to be zero: `10.32.0.1/12` is an address in a
//! network, as `ip addr` takes it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// Longest text accepted as a CIDR (the longest IPv6 form with a prefix
/// length is 49 bytes).
pub const MAX_CIDR_LEN: usize = 64;

/// Why a text is not a CIDR. `Display` is a one-line message for users
/// that quotes the (bounded) input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Longer than [`MAX_CIDR_LEN`]; the input is not repeated.
    #[error("CIDR too long ({len} bytes, at most {MAX_CIDR_LEN})")]
    TooLong {
        /// The input's length in bytes.
        len: usize,
    },
    /// Not `ADDRESS/PREFIX`: no `/`, not an address, or a prefix length
    /// that is not 1 to 3 digits.
    #[error("invalid CIDR {input:?}: expected ADDRESS/PREFIX, e.g. 10.32.0.1/12")]
    Malformed {
        /// The input.
        input: String,
    },
    /// A prefix length longer than the address (32 for IPv4, 128 for IPv6).
    #[error("invalid CIDR {input:?}: prefix length {prefix_len} is more than {max}")]
    PrefixTooLong {
        /// The input.
        input: String,
        /// The prefix length given.
        prefix_len: u16,
        /// The longest for the address's family.
        max: u8,
    },
    /// An IPv6 CIDR where only IPv4 is accepted ([`Cidr::parse_v4`]).
    #[error("invalid CIDR {input:?}: an IPv4 address is needed here")]
    NotIpv4 {
        /// The input.
        input: String,
    },
}

/// An address with a prefix length, e.g. `10.32.0.1/12`.
///
/// `Display` writes it back as `ADDRESS/PREFIX`; [`FromStr`] parses with
/// the rules of the [module](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length: at most 32 for IPv4, 128 for IPv6.
    pub prefix_len: u8,
}

impl Cidr {
    /// Parses `ADDRESS/PREFIX`; the same as `s.parse()`.
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        if s.len() > MAX_CIDR_LEN {
            return Err(CidrError::TooLong { len: s.len() });
        }
        let malformed = || CidrError::Malformed { input: s.to_owned() };
        let (addr, len) = s.split_once('/').ok_or_else(malformed)?;
        let addr: IpAddr = addr.parse().map_err(|_| malformed())?;
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let prefix_len: u16 = len.parse().map_err(|_| malformed())?;
        let max = max_prefix_len(addr);
        if prefix_len > u16::from(max) {
            return Err(CidrError::PrefixTooLong { input: s.to_owned(), prefix_len, max });
        }
        Ok(Cidr { addr, prefix_len: prefix_len as u8 })
    }

    /// Parses `ADDRESS/PREFIX` that must be IPv4.
    pub fn parse_v4(s: &str) -> Result<(Ipv4Addr, u8), CidrError> {
        match Cidr::parse(s)? {
            Cidr { addr: IpAddr::V4(a), prefix_len } => Ok((a, prefix_len)),
            Cidr { addr: IpAddr::V6(_), .. } => Err(CidrError::NotIpv4 { input: s.to_owned() }),
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        Cidr::parse(s)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Parses `ADDRESS/PREFIX` into its parts (see [`Cidr::parse`]).
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), CidrError> {
    Cidr::parse(s).map(|c| (c.addr, c.prefix_len))
}

/// Parses an address given with or without its prefix length
/// (`10.32.0.1` or `10.32.0.1/12`), as the daemon writes gateways and
/// allocation rows. With a `/`, the whole must be a valid CIDR.
pub fn parse_addr_or_cidr(s: &str) -> Result<(IpAddr, Option<u8>), CidrError> {
    if s.contains('/') {
        return Cidr::parse(s).map(|c| (c.addr, Some(c.prefix_len)));
    }
    if s.len() > MAX_CIDR_LEN {
        return Err(CidrError::TooLong { len: s.len() });
    }
    s.parse().map(|a| (a, None)).map_err(|_| CidrError::Malformed { input: s.to_owned() })
}

/// The longest prefix length of the address's family: 32 or 128.
pub fn max_prefix_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn good_cidrs_parse_and_print_back() {
        for (s, addr, len) in [
            ("10.32.0.1/12", IpAddr::V4(Ipv4Addr::new(10, 32, 0, 1)), 12),
            ("10.32.0.0/12", IpAddr::V4(Ipv4Addr::new(10, 32, 0, 0)), 12),
            ("10.0.0.1/32", IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 32),
            ("0.0.0.0/0", IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            ("fd00::1/64", IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)), 64),
            ("::1/128", IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
            ("::/0", IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        ] {
            let c: Cidr = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!((c.addr, c.prefix_len), (addr, len), "{s}");
            assert_eq!(c.to_string(), s);
            assert_eq!(parse_cidr(s), Ok((addr, len)));
        }
        // Three digits with a leading zero are still a number.
        assert_eq!(parse_cidr("10.32.0.1/012").unwrap().1, 12);
    }

    #[test]
    fn prefix_lengths_are_checked_per_family() {
        assert!(matches!(Cidr::parse("10.32.0.1/33"), Err(CidrError::PrefixTooLong { prefix_len: 33, max: 32, .. })));
        assert!(matches!(Cidr::parse("fd00::1/129"), Err(CidrError::PrefixTooLong { prefix_len: 129, max: 128, .. })));
        // Larger than a u8 holds: refused, not wrapped.
        assert!(matches!(Cidr::parse("10.0.0.1/999"), Err(CidrError::PrefixTooLong { prefix_len: 999, .. })));
        assert!(matches!(Cidr::parse("10.0.0.1/256"), Err(CidrError::PrefixTooLong { .. })));
        let msg = Cidr::parse("10.32.0.1/40").unwrap_err().to_string();
        assert_eq!(msg, "invalid CIDR \"10.32.0.1/40\": prefix length 40 is more than 32");
    }

    #[test]
    fn hostile_and_malformed_input_is_refused() {
        let long = format!("10.0.0.1/{}", "1".repeat(100));
        for bad in [
            "",
            "/",
            "/12",
            "10.32.0.1",
            "10.32.0.1/",
            "10.32.0/12",
            "10.32.0.1/+1",
            "10.32.0.1/-1",
            "10.32.0.1/ 12",
            "10.32.0.1 /12",
            " 10.32.0.1/12",
            "10.32.0.1/12 ",
            "10.32.0.1/12\n",
            "10.32.0.1/0012",
            "10.32.0.1/1/2",
            "10.32.0.1/1e1",
            "10.32.0.1/١٢",
            "010.32.0.1/12",
            "10.32.0.256/12",
            "x/1",
            "fe80::1%eth0/64",
            "[fd00::1]/64",
            "fd00::1/64/64",
            "10.32.0.1\0/12",
            "\u{1b}[31m/12",
            long.as_str(),
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} accepted");
            assert!(parse_cidr(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn long_input_is_not_repeated_in_the_message() {
        let huge = "1".repeat(10_000);
        let e = Cidr::parse(&huge).unwrap_err();
        assert_eq!(e, CidrError::TooLong { len: 10_000 });
        assert!(e.to_string().len() < 80, "{e}");
        assert!(parse_addr_or_cidr(&huge).is_err());
        // Control characters are escaped, never printed raw.
        let e = Cidr::parse("\u{1b}[2J/1").unwrap_err().to_string();
        assert!(!e.contains('\u{1b}'), "{e:?}");
    }

    #[test]
    fn ipv4_only_where_asked() {
        assert_eq!(Cidr::parse_v4("10.32.0.5/12"), Ok((Ipv4Addr::new(10, 32, 0, 5), 12)));
        assert!(matches!(Cidr::parse_v4("fd00::1/64"), Err(CidrError::NotIpv4 { .. })));
        assert!(matches!(Cidr::parse_v4("10.32.0.5"), Err(CidrError::Malformed { .. })));
    }

    #[test]
    fn addresses_with_or_without_prefix() {
        let a = IpAddr::V4(Ipv4Addr::new(10, 32, 0, 1));
        assert_eq!(parse_addr_or_cidr("10.32.0.1"), Ok((a, None)));
        assert_eq!(parse_addr_or_cidr("10.32.0.1/12"), Ok((a, Some(12))));
        assert_eq!(parse_addr_or_cidr("fd00::1"), Ok(("fd00::1".parse().unwrap(), None)));
        for bad in ["", "x", "10.32.0.1/", "10.32.0.1/33", "10.32.0.1/x", "10.32.0.1 "] {
            assert!(parse_addr_or_cidr(bad).is_err(), "{bad:?} accepted");
        }
    }
}
