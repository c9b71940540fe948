use super::*;
use proptest::prelude::*;

const MAX: usize = 1500;

/// Seals nothing: feeds `plains` to an encoder as counters `first..` of
/// session 7 and returns the parity bodies it owed, then its final one.
fn parities(first: u64, plains: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut e = Encoder::default();
    let mut out = vec![0u8; PARITY_HEAD + MAX];
    let mut got = Vec::new();
    for (i, p) in plains.iter().enumerate() {
        if let Some(o) = e.sent(7, first + i as u64, p, MAX, &mut out) {
            got.push(out[..o.len].to_vec());
        }
    }
    if let Some(o) = e.finish(&mut out) {
        got.push(out[..o.len].to_vec());
    }
    got
}

fn plain(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// A receiver that got every member of the group but `lost`, kept them,
/// then the parity.
fn receive(first: u64, plains: &[Vec<u8>], lost: &[usize], body: &[u8]) -> (Result<Repair, ParityError>, Vec<u8>) {
    let mut d = Decoder::default();
    for (i, p) in plains.iter().enumerate() {
        if !lost.contains(&i) {
            d.keep(7, first + i as u64, p);
        }
    }
    let parity = Parity::parse(body).unwrap();
    let mut out = vec![0u8; MAX];
    let arrived = |c: u64| !lost.iter().any(|&i| first + i as u64 == c);
    let r = d.repair(7, &parity, arrived, &mut out);
    (r, out)
}

#[test]
fn any_one_lost_member_of_a_group_is_rebuilt_exactly() {
    let mut plains = vec![plain(1200, 1), plain(64, 2), plain(1417, 3), plain(1, 4)];
    plains.extend((4..GROUP).map(|i| plain(100 * i, i as u8)));
    let bodies = parities(100, &plains);
    assert_eq!(bodies.len(), 1, "one parity per full group");
    assert_eq!(bodies[0].len(), PARITY_HEAD + 1417);
    for lost in 0..GROUP {
        let (r, out) = receive(100, &plains, &[lost], &bodies[0]);
        let len = plains[lost].len();
        assert_eq!(r, Ok(Repair::Rebuilt { counter: 100 + lost as u64, len }));
        assert_eq!(&out[..len], &plains[lost][..]);
    }
}

#[test]
fn nothing_lost_is_complete_and_two_lost_is_unrepairable() {
    let plains: Vec<_> = (0..4).map(|i| plain(500 + i, i as u8)).collect();
    let body = &parities(0, &plains)[0];
    assert_eq!(receive(0, &plains, &[], body).0, Ok(Repair::Complete));
    assert_eq!(receive(0, &plains, &[1, 3], body).0, Ok(Repair::Unrepairable));
}

#[test]
fn a_group_that_lost_nothing_is_complete_even_with_members_not_kept() {
    // Keeping starts with a peer's first parity: members that came before
    // it are not kept, and that is no failure when nothing was lost.
    let plains: Vec<_> = (0..4).map(|i| plain(300, i as u8)).collect();
    let body = &parities(0, &plains)[0];
    let mut d = Decoder::default();
    d.keep(7, 3, &plains[3]);
    let parity = Parity::parse(body).unwrap();
    let mut out = vec![0u8; MAX];
    assert_eq!(d.repair(7, &parity, |_| true, &mut out), Ok(Repair::Complete));
}

#[test]
fn a_member_that_arrived_but_is_no_longer_kept_makes_the_group_unrepairable() {
    let plains: Vec<_> = (0..4).map(|i| plain(300, i as u8)).collect();
    let body = &parities(0, &plains)[0];
    let mut d = Decoder::default();
    d.keep(7, 1, &plains[1]);
    d.keep(7, 2, &plains[2]);
    // Counter 3's slot now holds a later datagram.
    d.keep(7, 3 + KEPT as u64, &plains[3]);
    let parity = Parity::parse(body).unwrap();
    let mut out = vec![0u8; MAX];
    assert_eq!(d.repair(7, &parity, |c| c != 0, &mut out), Ok(Repair::Unrepairable));
    // Kept under another session: the same.
    let mut d = Decoder::default();
    for i in 1..4 {
        d.keep(8, i, &plains[i as usize]);
    }
    assert_eq!(d.repair(7, &parity, |c| c != 0, &mut out), Ok(Repair::Unrepairable));
}

#[test]
fn a_partial_group_is_closed_by_finish_a_gap_or_another_session() {
    let mut e = Encoder::default();
    let mut out = vec![0u8; PARITY_HEAD + MAX];
    assert_eq!(e.sent(7, 10, &plain(100, 0), MAX, &mut out), None);
    assert_eq!(e.sent(7, 11, &plain(200, 0), MAX, &mut out), None);
    // Counter 13 does not follow 11 (12 was the parity of something else).
    let o = e.sent(7, 13, &plain(50, 0), MAX, &mut out).expect("the group broke off");
    let n = o.len;
    assert_eq!(o.session, 7);
    let p = Parity::parse(&out[..n]).unwrap();
    assert_eq!((p.first, p.count()), (10, 2));
    assert_eq!(n, 8 + 1 + 2 * 2 + 200);
    // Another session breaks it off too.
    let o = e.sent(9, 14, &plain(60, 0), MAX, &mut out).expect("broken off");
    assert_eq!(o.session, 7, "the parity of session 7's group, owed on session 7");
    assert_eq!(Parity::parse(&out[..o.len]).unwrap().count(), 1);
    assert!(e.is_open());
    let o = e.finish(&mut out).expect("the open group");
    assert_eq!(o.session, 9);
    assert_eq!((Parity::parse(&out[..o.len]).unwrap().first, o.len), (14, 8 + 1 + 2 + 60));
    assert!(!e.is_open());
    assert_eq!(e.finish(&mut out), None, "nothing owed twice");
}

#[test]
fn a_single_member_group_is_a_copy_that_stands_in_for_it() {
    let p = plain(77, 9);
    let body = &parities(5, std::slice::from_ref(&p))[0];
    let (r, out) = receive(5, std::slice::from_ref(&p), &[0], body);
    assert_eq!(r, Ok(Repair::Rebuilt { counter: 5, len: 77 }));
    assert_eq!(&out[..77], &p[..]);
}

#[test]
fn a_member_too_long_for_a_parity_datagram_joins_no_group() {
    let mut e = Encoder::default();
    let mut out = vec![0u8; PARITY_HEAD + MAX];
    assert_eq!(e.sent(7, 0, &plain(100, 0), 1000, &mut out), None);
    let o = e.sent(7, 1, &plain(1001, 0), 1000, &mut out).expect("closes the open group");
    assert_eq!(Parity::parse(&out[..o.len]).unwrap().count(), 1);
    assert!(!e.is_open());
    assert_eq!(e.sent(7, 2, &plain(1001, 0), 1000, &mut out), None, "nothing open, nothing owed");
}

#[test]
fn malformed_parity_bodies_are_refused() {
    assert_eq!(Parity::parse(&[0; 8]).unwrap_err(), ParityError::Short);
    let mut b = vec![0u8; 8];
    b.push(0);
    assert_eq!(Parity::parse(&b).unwrap_err(), ParityError::Count(0));
    b[8] = GROUP as u8 + 1;
    assert_eq!(Parity::parse(&b).unwrap_err(), ParityError::Count(GROUP + 1));
    b[8] = 2;
    assert_eq!(Parity::parse(&b).unwrap_err(), ParityError::Short, "lengths missing");
    b.extend_from_slice(&[0, 10, 0, 3]);
    b.extend_from_slice(&[0; 9]);
    assert_eq!(Parity::parse(&b).unwrap_err(), ParityError::Length { len: 10, xor: 9 });
    b.push(0);
    assert!(Parity::parse(&b).is_ok());
    b[..8].copy_from_slice(&(u64::MAX - 1).to_be_bytes());
    assert_eq!(Parity::parse(&b).unwrap_err(), ParityError::Counters);
}

#[test]
fn a_kept_member_whose_length_disagrees_is_refused() {
    let plains: Vec<_> = (0..2).map(|i| plain(40, i)).collect();
    let body = &parities(0, &plains)[0];
    let mut d = Decoder::default();
    d.keep(7, 0, &plain(41, 0));
    let parity = Parity::parse(body).unwrap();
    let mut out = vec![0u8; MAX];
    assert_eq!(d.repair(7, &parity, |c| c == 0, &mut out), Err(ParityError::Mismatch));
}

proptest! {
    #[test]
    fn any_body_and_any_kept_state_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..200),
        kept in proptest::collection::vec((0u64..40, proptest::collection::vec(any::<u8>(), 0..60)), 0..20),
        arrived in any::<u64>(),
        out_len in 0usize..100,
    ) {
        let mut d = Decoder::default();
        for (c, p) in &kept {
            d.keep(1, *c, p);
        }
        if let Ok(p) = Parity::parse(&body) {
            let mut out = vec![0u8; out_len];
            if let Ok(Repair::Rebuilt { len, .. }) = d.repair(1, &p, |c| arrived >> (c % 64) & 1 == 1, &mut out) {
                prop_assert!(len <= out_len);
            }
        }
    }

    #[test]
    fn whatever_the_losses_a_group_with_one_lost_member_is_rebuilt(
        lens in proptest::collection::vec(0usize..1400, 1..=GROUP),
        first in 0u64..1_000_000,
        lost_at in any::<prop::sample::Index>(),
    ) {
        let plains: Vec<_> = lens.iter().enumerate().map(|(i, &l)| plain(l, i as u8)).collect();
        let bodies = parities(first, &plains);
        prop_assert_eq!(bodies.len(), 1);
        let lost = lost_at.index(plains.len());
        let (r, out) = receive(first, &plains, &[lost], &bodies[0]);
        prop_assert_eq!(r, Ok(Repair::Rebuilt { counter: first + lost as u64, len: plains[lost].len() }));
        prop_assert_eq!(&out[..plains[lost].len()], &plains[lost][..]);
    }
}
