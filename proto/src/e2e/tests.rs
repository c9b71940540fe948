//! The end-to-end seal on its own: who can open what, replays, restarts,
//! and the cache's bound.

use super::*;
use crate::keys::ShortId;

/// A host's keys in the start at `unix_ms`.
fn host(kp: &StaticKeypair, unix_ms: u64) -> RelayKeys {
    RelayKeys::new(kp, epoch(unix_ms, 0x5a5a5))
}

/// Seals `body` from `from` for `to`.
fn seal(from: &mut RelayKeys, now: Instant, to: &PublicKey, body: &[u8]) -> Sealed {
    let mut hdr = RelayHeader { ttl: 8, dst: to.short_id(), src: from.public.short_id(), epoch: 0, counter: 0 };
    let mut sealed = body.to_vec();
    let tag = from.seal(now, to, &mut hdr, &mut sealed).unwrap();
    sealed.extend_from_slice(&tag);
    (hdr, sealed)
}

/// A sealed payload: its header, then its body and tag.
type Sealed = (RelayHeader, Vec<u8>);

/// What `to` makes of the payload as coming from `src`.
fn open(to: &mut RelayKeys, now: Instant, src: &PublicKey, p: &Sealed) -> Result<Vec<u8>, E2eError> {
    let mut sealed = p.1.clone();
    to.open(now, src, &p.0, &mut sealed).map(<[u8]>::to_vec)
}

#[test]
fn only_the_destination_opens_and_only_as_from_the_source() {
    let (ka, kb, km) = (StaticKeypair::generate(), StaticKeypair::generate(), StaticKeypair::generate());
    let now = Instant::now();
    let (mut a, mut b, mut m) = (host(&ka, 1), host(&kb, 1), host(&km, 1));
    let p = seal(&mut a, now, &kb.public, b"a frame for b");
    assert!(!p.1.windows(5).any(|w| w == b"frame"), "the body is not in the clear");
    assert_eq!(p.0.epoch, a.epoch());
    // Another host cannot open it, nor can b as if it came from anyone else.
    assert_eq!(open(&mut m, now, &ka.public, &p), Err(E2eError::Forged));
    assert_eq!(open(&mut b, now, &km.public, &p), Err(E2eError::Forged));
    // A host cannot make one that b takes as a's: m seals for b, claims a.
    let mut forged = seal(&mut m, now, &kb.public, b"from a, honest");
    forged.0.src = ka.public.short_id();
    assert_eq!(open(&mut b, now, &ka.public, &forged), Err(E2eError::Forged));
    // Nor can a reflect b's own payload back at it.
    let back = seal(&mut b, now, &ka.public, b"for a");
    assert_eq!(open(&mut b, now, &ka.public, &back), Err(E2eError::Forged));
    // b opens the real one.
    assert_eq!(open(&mut b, now, &ka.public, &p).unwrap(), b"a frame for b");
}

#[test]
fn every_header_field_but_the_hop_limit_is_authenticated() {
    let (ka, kb) = (StaticKeypair::generate(), StaticKeypair::generate());
    let now = Instant::now();
    let (mut a, mut b) = (host(&ka, 1), host(&kb, 1));
    let edits: [fn(&mut Sealed); 6] = [
        |p| p.0.dst = ShortId(p.0.dst.0 ^ 1),
        |p| p.0.src = ShortId(p.0.src.0 ^ 1),
        |p| p.0.epoch += 1,
        |p| p.0.counter += 1,
        |p| p.1[0] ^= 1,
        |p| *p.1.last_mut().unwrap() ^= 1,
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut p = seal(&mut a, now, &kb.public, b"payload");
        edit(&mut p);
        assert_eq!(open(&mut b, now, &ka.public, &p), Err(E2eError::Forged), "edit {i}");
    }
    let mut p = seal(&mut a, now, &kb.public, b"payload");
    p.0.ttl = 1;
    assert_eq!(open(&mut b, now, &ka.public, &p).unwrap(), b"payload", "relays decrement the ttl");
    let mut short = p.clone();
    short.1.truncate(TAG_LEN - 1);
    assert_eq!(open(&mut b, now, &ka.public, &short), Err(E2eError::Forged), "shorter than a tag");
}

#[test]
fn replays_are_refused_reordering_is_not_and_forgeries_change_nothing() {
    let (ka, kb) = (StaticKeypair::generate(), StaticKeypair::generate());
    let now = Instant::now();
    let (mut a, mut b) = (host(&ka, 1), host(&kb, 1));
    let ps: Vec<_> = (0..5u8).map(|i| seal(&mut a, now, &kb.public, &[i])).collect();
    assert_eq!(open(&mut b, now, &ka.public, &ps[3]).unwrap(), [3]);
    assert_eq!(open(&mut b, now, &ka.public, &ps[3]), Err(E2eError::Replay));
    assert_eq!(open(&mut b, now, &ka.public, &ps[1]).unwrap(), [1], "late but within the window");
    assert_eq!(open(&mut b, now, &ka.public, &ps[1]), Err(E2eError::Replay));
    // A forged packet with a fresh counter, or claiming a new epoch, does
    // not move the window nor replace the epoch.
    let mut f = ps[4].clone();
    f.1[0] ^= 1;
    assert_eq!(open(&mut b, now, &ka.public, &f), Err(E2eError::Forged));
    f.0.epoch += 1 << 30;
    assert_eq!(open(&mut b, now, &ka.public, &f), Err(E2eError::Forged));
    assert_eq!(open(&mut b, now, &ka.public, &ps[4]).unwrap(), [4]);
    assert_eq!(open(&mut b, now, &ka.public, &ps[0]).unwrap(), [0]);
    // Counters are per source, across its destinations: never reused.
    let kc = StaticKeypair::generate();
    let c1 = seal(&mut a, now, &kc.public, b"c");
    let b6 = seal(&mut a, now, &kb.public, b"b");
    assert_eq!((c1.0.counter, b6.0.counter), (5, 6));
    assert_eq!(open(&mut b, now, &ka.public, &b6).unwrap(), b"b");
}

#[test]
fn a_restart_is_a_new_epoch_and_older_epochs_stay_refused() {
    let (ka, kb) = (StaticKeypair::generate(), StaticKeypair::generate());
    let t0 = Instant::now();
    let mut b = host(&kb, 1_700_000_000_000);
    let mut a1 = host(&ka, 1_700_000_000_000);
    let old = seal(&mut a1, t0, &kb.public, b"first run");
    let old2 = seal(&mut a1, t0, &kb.public, b"first run, later");
    assert_eq!(open(&mut b, t0, &ka.public, &old).unwrap(), b"first run");
    // a restarts: counters from 0 again, under a new epoch and so a new key.
    let mut a2 = host(&ka, 1_700_000_060_000);
    let new = seal(&mut a2, t0, &kb.public, b"second run");
    assert_eq!(new.0.counter, 0);
    assert_ne!(new.1[..10], old.1[..10], "same counter, same plaintext length: another key stream");
    assert_eq!(open(&mut b, t0, &ka.public, &new).unwrap(), b"second run");
    // The first run's packets, recorded by a relay, are refused now,
    // delivered before or not.
    assert_eq!(open(&mut b, t0, &ka.public, &old), Err(E2eError::Replay));
    assert_eq!(open(&mut b, t0, &ka.public, &old2), Err(E2eError::Replay));
    // Still so a while later, as long as a2 keeps talking.
    let t1 = t0 + EPOCH_IDLE / 2;
    assert_eq!(open(&mut b, t1, &ka.public, &seal(&mut a2, t1, &kb.public, b"x")).unwrap(), b"x");
    assert_eq!(open(&mut b, t1 + EPOCH_IDLE / 2, &ka.public, &old2), Err(E2eError::Replay));
    // A restart whose clock went back: refused until the newer epoch has
    // been quiet for EPOCH_IDLE, then taken.
    let mut a3 = host(&ka, 1_699_000_000_000);
    let back = seal(&mut a3, t1, &kb.public, b"clock went back");
    assert_eq!(open(&mut b, t1, &ka.public, &back), Err(E2eError::Replay));
    let t2 = t1 + EPOCH_IDLE;
    assert_eq!(open(&mut b, t2, &ka.public, &back).unwrap(), b"clock went back");
}

#[test]
fn epochs_order_by_start_time_then_random_bits() {
    assert!(epoch(1_700_000_000_001, 0) > epoch(1_700_000_000_000, u32::MAX));
    assert_eq!(epoch(1, u32::MAX), (1 << 20) | 0xfffff);
    assert_ne!(epoch(5, 1), epoch(5, 2));
    assert_eq!(epoch(u64::MAX, 0) >> 20, u64::MAX >> 20, "saturates, never wraps");
}

#[test]
fn a_low_order_key_gives_no_secret() {
    let ka = StaticKeypair::generate();
    let now = Instant::now();
    let mut a = host(&ka, 1);
    let zero = PublicKey([0; KEY_LEN]);
    let mut hdr = RelayHeader { ttl: 8, dst: zero.short_id(), src: ka.public.short_id(), epoch: 0, counter: 0 };
    assert_eq!(a.seal(now, &zero, &mut hdr, &mut [0u8; 4]), Err(E2eError::NoKey));
    let mut sealed = [0u8; 20];
    assert_eq!(a.open(now, &zero, &hdr, &mut sealed), Err(E2eError::NoKey));
}

#[test]
fn the_cache_is_capped_evicting_the_least_recently_used() {
    let ka = StaticKeypair::generate();
    let kb = StaticKeypair::generate();
    let t0 = Instant::now();
    let mut a = host(&ka, 1);
    let mut b = host(&kb, 1);
    // b first, then MAX_PAIRS - 1 others later: b is the oldest.
    let first = seal(&mut a, t0, &kb.public, b"1");
    assert_eq!(open(&mut b, t0, &ka.public, &first).unwrap(), b"1");
    let t1 = t0 + Duration::from_secs(1);
    let others: Vec<PublicKey> = (1..MAX_PAIRS as u32)
        .map(|i| {
            let mut k = [7u8; KEY_LEN];
            k[..4].copy_from_slice(&i.to_be_bytes());
            PublicKey(k)
        })
        .collect();
    for k in &others {
        seal(&mut a, t1, k, b"x");
    }
    assert_eq!((a.len(), a.take_evicted()), (MAX_PAIRS, 0));
    // One more host: b's entry goes, counted once.
    let t2 = t1 + Duration::from_secs(1);
    let kc = StaticKeypair::generate();
    seal(&mut a, t2, &kc.public, b"y");
    assert_eq!((a.len(), a.take_evicted(), a.take_evicted()), (MAX_PAIRS, 1, 0));
    assert!(!a.pairs.contains_key(&kb.public) && a.pairs.contains_key(&others[0]));
    // Sealing for b again works (its secret is computed anew) and, the
    // counter being a's alone, never reuses a nonce: b opens it.
    let again = seal(&mut a, t2, &kb.public, b"2");
    assert!(again.0.counter > first.0.counter);
    assert_eq!(open(&mut b, t2, &ka.public, &again).unwrap(), b"2");
    assert_eq!(a.take_evicted(), 1, "and pushed out the next oldest");
}
