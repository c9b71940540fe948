//! Routing over the mesh: a direct session where one is up, otherwise one
//! relay: a direct peer whose own signed record says it reaches the
//! destination.
//!
//! Every host keeps a session with every other, so a path needs at most
//! one relay; hosts cut off from each other on the underlay each go
//! through a third that reaches both. Among the peers that qualify, the
//! relay is chosen by rendezvous hashing of (relay, destination): the
//! choice is stable when unrelated peers come and go, and the relaying load
//! for many destinations spreads over many relays. The cost of a
//! recomputation is (hosts without a direct session) x (direct peers); it
//! runs only when a session, a liveness verdict or a record's
//! reachability changes, never per packet or per tick.

use crate::keys::PublicKey;
use std::collections::HashMap;

/// For every host in `targets` (known, no live direct session), the direct
/// peer to hand its payloads to, when one qualifies. `direct` are the peers
/// with a live session; `reaches(relay, target)` says whether `relay`'s
/// record claims a live session with `target`. Direct peers route to
/// themselves.
pub fn next_hops(
    direct: &[PublicKey],
    targets: impl IntoIterator<Item = PublicKey>,
    reaches: impl Fn(&PublicKey, &PublicKey) -> bool,
) -> HashMap<PublicKey, PublicKey> {
    let mut hops: HashMap<PublicKey, PublicKey> = direct.iter().map(|d| (*d, *d)).collect();
    for t in targets {
        if hops.contains_key(&t) {
            continue;
        }
        let best = direct.iter().filter(|r| **r != t && reaches(r, &t)).max_by_key(|r| rendezvous(r, &t));
        if let Some(r) = best {
            hops.insert(t, *r);
        }
    }
    hops
}

/// Rendezvous weight of `relay` for `target` (no secret needed: it only
/// spreads load).
fn rendezvous(relay: &PublicKey, target: &PublicKey) -> (u64, PublicKey) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in relay.0.iter().chain(target.0.iter()) {
        h = (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h, *relay)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u8) -> PublicKey {
        PublicKey([n; 32])
    }

    #[test]
    fn direct_then_relay_then_unreachable() {
        // 1 has sessions with 2 and 3; 2 reaches 4, nobody reaches 5.
        let hops = next_hops(&[k(2), k(3)], [k(4), k(5)], |r, t| *r == k(2) && *t == k(4));
        assert_eq!(hops.get(&k(2)), Some(&k(2)));
        assert_eq!(hops.get(&k(3)), Some(&k(3)));
        assert_eq!(hops.get(&k(4)), Some(&k(2)));
        assert_eq!(hops.get(&k(5)), None);
    }

    #[test]
    fn a_direct_session_beats_a_relay() {
        let hops = next_hops(&[k(2), k(3)], [k(3)], |_, _| true);
        assert_eq!(hops.get(&k(3)), Some(&k(3)));
    }

    #[test]
    fn relays_spread_and_stay_put_when_others_come_and_go() {
        let direct: Vec<PublicKey> = (10..30).map(k).collect();
        let targets: Vec<PublicKey> = (100..200).map(k).collect();
        let hops = next_hops(&direct, targets.clone(), |_, _| true);
        let used: std::collections::HashSet<_> = targets.iter().map(|t| hops[t]).collect();
        assert!(used.len() >= 10, "100 destinations over {} relays", used.len());
        // Take away one relay: only its destinations move.
        let fewer: Vec<PublicKey> = direct.iter().copied().filter(|d| *d != k(10)).collect();
        let after = next_hops(&fewer, targets.clone(), |_, _| true);
        for t in &targets {
            if hops[t] != k(10) {
                assert_eq!(after[t], hops[t]);
            }
        }
    }
}
