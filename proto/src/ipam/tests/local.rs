//! One host alone: range parsing, the allocator, and the choice of a donor.

use super::*;

#[test]
fn range_parsing_and_addresses() {
    let r: Range = "10.32.0.0/12".parse().unwrap();
    assert_eq!(r, Range::default());
    assert_eq!(r.size(), 1 << 20);
    assert_eq!(r.addr(1), Some(Ipv4Addr::new(10, 32, 0, 1)));
    assert_eq!(r.addr(r.size() - 1), Some(Ipv4Addr::new(10, 47, 255, 255)));
    assert_eq!(r.addr(r.size()), None);
    assert_eq!(r.offset(Ipv4Addr::new(10, 33, 0, 2)), Some(65538));
    assert_eq!(r.offset(Ipv4Addr::new(10, 48, 0, 0)), None);
    assert_eq!(r.offset(Ipv4Addr::new(9, 255, 255, 255)), None);
    assert_eq!(r.to_string(), "10.32.0.0/12");
    for bad in ["10.32.0.1/12", "10.32.0.0/31", "10.32.0.0/0", "10.32.0.0", "x/12", "10.32.0.0/x", "::1/64"] {
        assert!(matches!(bad.parse::<Range>(), Err(IpamError::BadRange(_))), "{bad}");
    }
}

#[test]
fn allocator_is_idempotent_skips_reserved_and_frees() {
    let range: Range = "10.0.0.0/29".parse().unwrap(); // 8 offsets, 6 usable
    let me = key(0);
    let mut ring = Ring::new(range);
    let mut a = Allocator::new();
    assert_eq!(a.allocate(&ring, me, "c1"), Err(IpamError::NotSeeded));
    assert!(ring.seed(me, &[key(1)], 1));
    assert_eq!(a.allocate(&ring, me, ""), Err(IpamError::InvalidOwner));
    assert_eq!(a.allocate(&ring, me, &"x".repeat(MAX_OWNER_ID_LEN + 1)), Err(IpamError::InvalidOwner));
    assert_eq!(a.free_count(&ring, me), 6);
    let got: Vec<u32> = (0..6).map(|i| a.allocate(&ring, me, &format!("c{i}")).unwrap()).collect();
    assert_eq!(got, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(a.allocate(&ring, me, "c3"), Ok(4), "same owner, same address");
    assert_eq!(a.allocate(&ring, me, "c9"), Err(IpamError::NoSpace));
    assert_eq!(a.free_count(&ring, me), 0);
    assert_eq!(a.release("c1"), Some(2));
    assert_eq!(a.release("c1"), None);
    assert_eq!(a.allocate(&ring, me, "c9"), Ok(2));
    assert_eq!(a.release("c0"), Some(1));
    assert_eq!(a.release("c2"), Some(3));
    assert_eq!(a.allocate(&ring, me, "c10"), Ok(3), "next fit: not the address just freed first");
    let mut freed = a.release_all_except(&["c3", "c10"]);
    freed.sort();
    assert_eq!(freed, vec![2, 5, 6]);
    assert_eq!(a.in_use().collect::<Vec<_>>(), vec![("c10", 3), ("c3", 4)]);
    // A state file where one offset has two owners is refused.
    let bad = AllocatorState { allocations: [("a".to_string(), 3), ("b".to_string(), 3)].into(), next: 0 };
    assert!(Allocator::try_from(bad).is_err());
    // Another host's ring view gives this host nothing.
    assert_eq!(Allocator::new().allocate(&ring, key(1), "c1"), Err(IpamError::NoSpace));
}

#[test]
fn donor_choice() {
    assert_eq!(choose_donor(key(0), []), None);
    assert_eq!(choose_donor(key(0), [(key(1), 0), (key(0), 50)]), None);
    assert_eq!(choose_donor(key(0), [(key(1), 5), (key(2), 9), (key(3), 9)]), Some(key(2)));
}
