//! What a certificate allows: the multicast groups a host may publish to
//! and subscribe to (ranges of group addresses), and the overlay DNS names
//! it may register (patterns).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use weavers_api::cidr::Cidr;
use weavers_api::dns_name;

/// Most ranges (or patterns) one list of a certificate holds.
pub const MAX_ENTRIES: usize = 64;

/// Why a range or a pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not `ADDRESS/PREFIX`.
    #[error("{0}")]
    Cidr(#[from] weavers_api::cidr::CidrError),
    /// A range that is not inside the multicast space.
    #[error("{0} is not a multicast group range (inside 224.0.0.0/4 or ff00::/8)")]
    NotMulticast(String),
    /// A name pattern that is not a name under weavers.local with `*` labels.
    #[error("invalid name pattern {0:?}: use labels and `*` for one label, e.g. *.md.aex")]
    Pattern(String),
    /// More than [`MAX_ENTRIES`] in one list.
    #[error("more than {MAX_ENTRIES} entries in one list")]
    TooMany,
}

/// A range of multicast group addresses, e.g. `239.1.0.0/16`; host bits
/// are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupRange {
    /// The first address of the range.
    pub addr: IpAddr,
    /// The prefix length (at most 32 for IPv4, 128 for IPv6).
    pub prefix_len: u8,
}

impl GroupRange {
    /// Every IPv4 group: `224.0.0.0/4`.
    pub const ALL_V4: GroupRange = GroupRange { addr: IpAddr::V4(Ipv4Addr::new(224, 0, 0, 0)), prefix_len: 4 };
    /// Every IPv6 group: `ff00::/8`.
    pub const ALL_V6: GroupRange =
        GroupRange { addr: IpAddr::V6(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0)), prefix_len: 8 };

    /// Parses `ADDRESS/PREFIX`; the range must lie inside the multicast
    /// space. Host bits are cleared.
    pub fn parse(s: &str) -> Result<GroupRange, PolicyError> {
        let c = Cidr::parse(s.trim())?;
        let r = GroupRange::new(c.addr, c.prefix_len).ok_or_else(|| PolicyError::NotMulticast(s.to_owned()))?;
        Ok(r)
    }

    /// The range `addr/prefix_len` with host bits cleared, if it is a valid
    /// prefix inside the multicast space.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<GroupRange> {
        let r = match addr {
            IpAddr::V4(a) if prefix_len <= 32 => {
                GroupRange { addr: IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix_len))), prefix_len }
            }
            IpAddr::V6(a) if prefix_len <= 128 => {
                GroupRange { addr: IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix_len))), prefix_len }
            }
            _ => return None,
        };
        let all = if r.addr.is_ipv4() { GroupRange::ALL_V4 } else { GroupRange::ALL_V6 };
        (r.prefix_len >= all.prefix_len && all.contains(r.addr)).then_some(r)
    }

    /// Whether `group` is in the range (never across families).
    pub fn contains(&self, group: IpAddr) -> bool {
        match (self.addr, group) {
            (IpAddr::V4(net), IpAddr::V4(g)) if self.prefix_len <= 32 => {
                u32::from(g) & mask32(self.prefix_len) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(g)) if self.prefix_len <= 128 => {
                u128::from(g) & mask128(self.prefix_len) == u128::from(net)
            }
            _ => false,
        }
    }

    /// Both families' whole multicast space: what "all groups" means.
    pub fn all() -> Vec<GroupRange> {
        vec![GroupRange::ALL_V4, GroupRange::ALL_V6]
    }

    /// Parses a comma-separated list (`239.1.0.0/16,ff0e::/16`).
    pub fn parse_list(s: &str) -> Result<Vec<GroupRange>, PolicyError> {
        let v: Vec<GroupRange> =
            s.split(',').filter(|p| !p.trim().is_empty()).map(GroupRange::parse).collect::<Result<_, _>>()?;
        if v.len() > MAX_ENTRIES {
            return Err(PolicyError::TooMany);
        }
        Ok(v)
    }
}

impl fmt::Display for GroupRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

fn mask32(prefix_len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix_len.min(32))).unwrap_or(0)
}

fn mask128(prefix_len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix_len.min(128))).unwrap_or(0)
}

/// A pattern of overlay DNS names (without `.weavers.local`), lowercase:
/// labels, each either literal or `*` for exactly one label. `*.md.aex`
/// allows `ibm.md.aex` but not `md.aex` nor `a.b.md.aex`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NamePattern(String);

impl NamePattern {
    /// Parses a pattern as users write it (case-insensitive, with or
    /// without `.weavers.local`).
    pub fn parse(s: &str) -> Result<NamePattern, PolicyError> {
        let bad = || PolicyError::Pattern(s.chars().take(80).collect());
        // Each `*` must be a whole label; check the rest as a name with the
        // wildcards replaced by a plain label.
        let probe = s.trim().split('.').map(|l| if l == "*" { "x" } else { l }).collect::<Vec<_>>().join(".");
        if s.split('.').any(|l| l.contains('*') && l != "*") {
            return Err(bad());
        }
        let normal = dns_name::normalize(&probe).map_err(|_| bad())?;
        // Put the wildcards back where they were (normalising keeps labels).
        let labels: Vec<&str> = s.trim().trim_end_matches('.').split('.').collect();
        let out: Vec<String> = normal
            .split('.')
            .enumerate()
            .map(|(i, l)| if labels.get(i) == Some(&"*") { "*".to_owned() } else { l.to_owned() })
            .collect();
        Ok(NamePattern(out.join(".")))
    }

    /// Whether the (normalised) `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let mut p = self.0.split('.');
        let mut n = name.split('.');
        loop {
            match (p.next(), n.next()) {
                (None, None) => return true,
                (Some("*"), Some(l)) if !l.is_empty() => {}
                (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => {}
                _ => return false,
            }
        }
    }

    /// Parses a comma-separated list.
    pub fn parse_list(s: &str) -> Result<Vec<NamePattern>, PolicyError> {
        let v: Vec<NamePattern> =
            s.split(',').filter(|p| !p.trim().is_empty()).map(NamePattern::parse).collect::<Result<_, _>>()?;
        if v.len() > MAX_ENTRIES {
            return Err(PolicyError::TooMany);
        }
        Ok(v)
    }

    /// The pattern as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a certified host may do. `None` in a list means "no limit".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Groups it may send to; `None`: every group.
    pub publish: Option<Vec<GroupRange>>,
    /// Groups it may receive; `None`: every group.
    pub subscribe: Option<Vec<GroupRange>>,
    /// Names it may register under weavers.local; `None`: any name.
    pub names: Option<Vec<NamePattern>>,
}

impl Permissions {
    /// Whether the host may send to `group`.
    pub fn may_publish(&self, group: IpAddr) -> bool {
        self.publish.as_ref().is_none_or(|v| v.iter().any(|r| r.contains(group)))
    }

    /// Whether the host may receive `group`.
    pub fn may_subscribe(&self, group: IpAddr) -> bool {
        self.subscribe.as_ref().is_none_or(|v| v.iter().any(|r| r.contains(group)))
    }

    /// Whether the host may register the normalised `name`.
    pub fn may_register(&self, name: &str) -> bool {
        self.names.as_ref().is_none_or(|v| v.iter().any(|p| p.matches(name)))
    }

    /// Whether each list is within [`MAX_ENTRIES`] (decoded certificates
    /// are checked with this).
    pub fn is_bounded(&self) -> bool {
        self.publish.as_ref().is_none_or(|v| v.len() <= MAX_ENTRIES)
            && self.subscribe.as_ref().is_none_or(|v| v.len() <= MAX_ENTRIES)
            && self.names.as_ref().is_none_or(|v| v.len() <= MAX_ENTRIES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ranges_parse_and_match() {
        let r = GroupRange::parse("239.1.0.9/16").unwrap();
        assert_eq!(r.to_string(), "239.1.0.0/16");
        assert!(r.contains("239.1.200.1".parse().unwrap()));
        assert!(!r.contains("239.2.0.1".parse().unwrap()));
        assert!(!r.contains("ff0e::1".parse().unwrap()));
        let v6 = GroupRange::parse("ff0e::/16").unwrap();
        assert!(v6.contains("ff0e::1:2".parse().unwrap()));
        assert!(!v6.contains("ff02::1".parse().unwrap()));
        assert!(matches!(GroupRange::parse("10.0.0.0/8"), Err(PolicyError::NotMulticast(_))));
        assert!(matches!(GroupRange::parse("224.0.0.0/3"), Err(PolicyError::NotMulticast(_))));
        assert!(GroupRange::parse("224.0.0.0/4").is_ok());
        assert!(GroupRange::parse("239.1.1.1/32").is_ok());
        assert!(GroupRange::parse("239.1.1.1/33").is_err());
        assert_eq!(GroupRange::parse_list("239.1.0.0/16, ff0e::/16,").unwrap().len(), 2);
    }

    #[test]
    fn name_patterns_match_one_label_per_star() {
        let p = NamePattern::parse("*.MD.aex.weavers.local").unwrap();
        assert_eq!(p.as_str(), "*.md.aex");
        assert!(p.matches("ibm.md.aex"));
        assert!(!p.matches("md.aex"));
        assert!(!p.matches("a.b.md.aex"));
        assert!(!p.matches("ibm.orders.aex"));
        assert!(NamePattern::parse("engine").unwrap().matches("engine"));
        assert!(NamePattern::parse("a*.md").is_err());
        assert!(NamePattern::parse("").is_err());
        assert!(NamePattern::parse("bad name").is_err());
    }

    #[test]
    fn permissions_default_to_everything_and_limit_when_given() {
        let all = Permissions::default();
        assert!(all.may_publish("239.9.9.9".parse().unwrap()) && all.may_register("x"));
        let p = Permissions {
            publish: Some(vec![GroupRange::parse("239.1.0.0/16").unwrap()]),
            subscribe: Some(vec![]),
            names: Some(vec![NamePattern::parse("*.md.aex").unwrap()]),
        };
        assert!(p.may_publish("239.1.0.1".parse().unwrap()));
        assert!(!p.may_publish("239.2.0.1".parse().unwrap()));
        assert!(!p.may_subscribe("239.1.0.1".parse().unwrap()));
        assert!(p.may_register("a.md.aex") && !p.may_register("a.orders.aex"));
    }
}
