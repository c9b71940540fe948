//! The shared IPv4 range and address <-> offset arithmetic.

use super::*;

/// The shared IPv4 range (`--ipalloc-range`): a network address and prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Range {
    base: Ipv4Addr,
    prefix: u8,
}

impl Range {
    /// A network address (host bits zero) with a prefix of 1 to 30.
    pub fn new(base: Ipv4Addr, prefix: u8) -> Result<Self, IpamError> {
        let bad = || IpamError::BadRange(format!("{base}/{prefix}"));
        if !(1..=30).contains(&prefix) {
            return Err(bad());
        }
        let host_mask = u32::MAX >> prefix;
        if u32::from(base) & host_mask != 0 {
            return Err(bad());
        }
        Ok(Range { base, prefix })
    }

    pub fn base(&self) -> Ipv4Addr {
        self.base
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Number of addresses, network and broadcast included.
    pub fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    /// The address at `offset`.
    pub fn addr(&self, offset: u32) -> Option<Ipv4Addr> {
        (offset < self.size()).then(|| Ipv4Addr::from(u32::from(self.base) + offset))
    }

    /// The offset of `addr`, if it is in the range.
    pub fn offset(&self, addr: Ipv4Addr) -> Option<u32> {
        let o = u32::from(addr).wrapping_sub(u32::from(self.base));
        (o < self.size()).then_some(o)
    }
}

impl Default for Range {
    /// 10.32.0.0/12, the default `--ipalloc-range`.
    fn default() -> Self {
        Range { base: Ipv4Addr::new(10, 32, 0, 0), prefix: 12 }
    }
}

impl FromStr for Range {
    type Err = IpamError;
    fn from_str(s: &str) -> Result<Self, IpamError> {
        let bad = || IpamError::BadRange(s.to_string());
        let (a, p) = s.trim().split_once('/').ok_or_else(bad)?;
        let base: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        Range::new(base, prefix).map_err(|_| bad())
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}
