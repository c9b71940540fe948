//! The shared IPv4 range and address <-> offset arithmetic.

use super::*;

/// The shared IPv4 range (`--ipalloc-range`): a network address and prefix.
///
/// Every way to make one checks it ([`Range::new`], parsing, and
/// deserializing: a range arrives in every gossiped IPAM record and
/// donation, and in the state dir), so the prefix is always 1 to 30 and
/// [`Range::size`] cannot overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawRange")]
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

/// A range as it travels, before [`Range::new`] checked it (same fields,
/// same encoding).
#[derive(Deserialize)]
struct RawRange {
    base: Ipv4Addr,
    prefix: u8,
}

impl TryFrom<RawRange> for Range {
    type Error = IpamError;
    fn try_from(r: RawRange) -> Result<Self, IpamError> {
        Range::new(r.base, r.prefix)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a hostile or broken host can put on the wire: any prefix.
    fn forged(prefix: u8) -> Range {
        Range { base: Ipv4Addr::new(0, 0, 0, 0), prefix }
    }

    #[test]
    fn ranges_with_a_bad_prefix_do_not_decode() {
        for prefix in [0, 31, 32, 33, 255] {
            let bytes = postcard::to_allocvec(&forged(prefix)).unwrap();
            assert!(postcard::from_bytes::<Range>(&bytes).is_err(), "/{prefix} decoded");
        }
        // Host bits set are refused too.
        let bytes = postcard::to_allocvec(&Range { base: Ipv4Addr::new(10, 0, 0, 1), prefix: 8 }).unwrap();
        assert!(postcard::from_bytes::<Range>(&bytes).is_err());
        let good = Range::new(Ipv4Addr::new(10, 32, 0, 0), 12).unwrap();
        let bytes = postcard::to_allocvec(&good).unwrap();
        assert_eq!(postcard::from_bytes::<Range>(&bytes).unwrap(), good);
        assert_eq!(good.size(), 1 << 20);
    }

    /// The known bug of issue 14: a gossiped IPAM record whose seed names
    /// a /0 reached `1u32 << (32 - prefix)` (a panic in debug builds; in
    /// release every host saw a "foreign seed" and stopped allocating). It
    /// is now refused where it is decoded, as a malformed record.
    #[test]
    fn a_gossiped_record_with_prefix_0_is_refused_as_malformed() {
        use crate::gossip::record::{PeerRecord, RecordError, SignedRecord};
        use crate::keys::StaticKeypair;
        let id = StaticKeypair::from_seed([3; 32]);
        for prefix in [0u8, 33] {
            let mut r = PeerRecord::new(id.public, 1_000, "rogue");
            r.ipam = Some(IpamRecord {
                seed: SeedId { stamp: 1, seeder: id.public, range: forged(prefix) },
                tokens: vec![(0, 1)],
                free: 0,
            });
            let signed = SignedRecord::sign(&r, &id);
            assert_eq!(SignedRecord::peek(signed.as_bytes()), Err(RecordError::Malformed), "/{prefix}");
        }
    }
}
