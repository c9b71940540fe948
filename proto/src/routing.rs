//! Routing over the mesh: a direct session where one exists, otherwise the
//! first hop of a shortest path through hosts that have sessions.

use crate::keys::PublicKey;
use std::collections::{HashMap, VecDeque};

/// Computes, for every reachable host, the direct peer to hand its frames to.
///
/// `direct` are this host's live sessions; `links` yields each other host's
/// reported connections. A link between two other hosts counts only if both
/// ends report it, so the stale record of a host that died (still listing
/// its old sessions) does not keep it looking reachable. The search only
/// ever starts through `direct`. Ties break by key order, so the result is
/// deterministic.
pub fn next_hops<'a>(
    me: PublicKey,
    direct: &[PublicKey],
    links: impl IntoIterator<Item = (PublicKey, &'a [PublicKey])>,
) -> HashMap<PublicKey, PublicKey> {
    let reported: HashMap<PublicKey, &[PublicKey]> = links.into_iter().collect();
    let mut adj: HashMap<PublicKey, Vec<PublicKey>> = HashMap::new();
    for (from, tos) in &reported {
        let mut v: Vec<PublicKey> = tos
            .iter()
            .copied()
            .filter(|to| to != from && reported.get(to).is_some_and(|back| back.contains(from)))
            .collect();
        v.sort();
        v.dedup();
        adj.insert(*from, v);
    }
    let mut hops = HashMap::new();
    let mut queue = VecDeque::new();
    let mut first: Vec<PublicKey> = direct.iter().copied().filter(|k| *k != me).collect();
    first.sort();
    first.dedup();
    for d in first {
        hops.insert(d, d);
        queue.push_back(d);
    }
    while let Some(at) = queue.pop_front() {
        let via = hops[&at];
        for next in adj.get(&at).map(Vec::as_slice).unwrap_or(&[]) {
            if *next != me && !hops.contains_key(next) {
                hops.insert(*next, via);
                queue.push_back(*next);
            }
        }
    }
    hops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u8) -> PublicKey {
        PublicKey([n; 32])
    }

    #[test]
    fn direct_then_relay_then_unreachable() {
        // 1 - 2 - 3 - 4, and 5 alone. Seen from 1 with a session to 2 only.
        let l2 = [k(1), k(3)];
        let l3 = [k(2), k(4)];
        let l4 = [k(3)];
        let hops = next_hops(k(1), &[k(2)], vec![(k(2), &l2[..]), (k(3), &l3[..]), (k(4), &l4[..]), (k(5), &[][..])]);
        assert_eq!(hops.get(&k(2)), Some(&k(2)));
        assert_eq!(hops.get(&k(3)), Some(&k(2)));
        assert_eq!(hops.get(&k(4)), Some(&k(2)));
        assert_eq!(hops.get(&k(5)), None);
        assert_eq!(hops.get(&k(1)), None);
    }

    #[test]
    fn a_link_only_one_end_reports_does_not_count() {
        // 3 died still listing 2; 2 has dropped it.
        let l2 = [k(1)];
        let l3 = [k(2)];
        let hops = next_hops(k(1), &[k(2)], vec![(k(2), &l2[..]), (k(3), &l3[..])]);
        assert_eq!(hops.get(&k(3)), None);
    }

    #[test]
    fn a_direct_session_beats_a_relay() {
        let l2 = [k(3)];
        let l3 = [k(2)];
        let hops = next_hops(k(1), &[k(2), k(3)], vec![(k(2), &l2[..]), (k(3), &l3[..])]);
        assert_eq!(hops.get(&k(3)), Some(&k(3)));
    }
}
