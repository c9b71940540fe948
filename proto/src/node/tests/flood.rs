//! Handshakes under a flood, on the simulated underlay: junk from strangers
//! costs a mac1 check and nothing else; a member's junk puts a host under
//! load, where cookies let a proven source in at once and known peers rekey
//! on their own budget; hostile cookie replies and responses are counted
//! and change nothing.

use super::*;
use crate::cookie;
use crate::hsmac::{Cookie, CookieKey, Mac1Key};
use crate::wire::{COOKIE_NONCE_LEN, INIT_HEADER_LEN, MAC_LEN};

/// How many addresses the junk comes from.
const SOURCES: usize = 1000;

/// The `i`th junk source (none of them a node's address).
fn junk_source(i: usize) -> SocketAddr {
    let i = i % SOURCES;
    SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 1024 + i as u16))
}

/// Initiations of random bytes that parse (a header, a body the size of a
/// Noise message, the MACs). With `mac1`, as a member without a session
/// would make them: XX, a valid mac1, garbage Noise. Without, as a
/// stranger would: either pattern, mac1 random.
fn junk_pool(rng: &mut StdRng, n: usize, mac1: Option<&Mac1Key>) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let pattern = if mac1.is_some() { 0 } else { rng.gen_range(0..2u8) };
            let body = if pattern == 0 { 48 } else { rng.gen_range(96..200) };
            let mut m = vec![1, 1, 0, 0, 0, 0, pattern, 0, 0, 0, 0];
            rng.fill(&mut m[2..6]);
            m.extend((0..body + 2 * MAC_LEN).map(|_| rng.gen::<u8>()));
            if let Some(k) = mac1 {
                let at = m.len() - 2 * MAC_LEN;
                let tag = k.mac(&m[..at]);
                m[at..at + MAC_LEN].copy_from_slice(&tag);
                m[at + MAC_LEN..].fill(0);
            }
            m
        })
        .collect()
}

/// What a node answered to junk.
#[derive(Default, Debug)]
struct Answers {
    cookies: usize,
    other: usize,
}

/// Hands `n` junk initiations to the nodes `to` (in turn), from the junk
/// sources in turn; counts what they answered.
fn flood(net: &mut Net, to: &[usize], n: usize, pool: &[Vec<u8>], next: &mut usize) -> Answers {
    let now = net.now;
    let mut answers = Answers::default();
    let mut out = Out::default();
    for k in 0..n {
        let (from, msg) = (junk_source(*next), &pool[*next % pool.len()]);
        *next += 1;
        net.node(to[k % to.len()]).handle_datagram(now, from, msg, &mut out);
        for (dst, d) in out.sent.drain(..) {
            assert_eq!(dst, from, "junk is answered to its source only, if at all");
            if Packet::parse(&d).is_ok_and(|p| matches!(p, Packet::CookieReply { .. })) {
                answers.cookies += 1;
            } else {
                answers.other += 1;
            }
        }
        assert!(out.delivered.is_empty());
    }
    answers
}

/// Sends a broadcast frame from each of the first `n` nodes, marked with
/// the sender and `round`.
fn frames_round(net: &mut Net, n: usize, round: u32) {
    for i in 0..n {
        net.send_frame(i, BROADCAST, (i as u32) << 20 | round);
    }
}

/// Whether every node of the first `n` got every other's frames of rounds
/// `0..rounds`, each once.
fn every_frame_arrived(net: &Net, n: usize, rounds: u32) -> bool {
    (0..n).all(|j| {
        let mut got = net.markers(j);
        got.sort();
        let mut want: Vec<u32> =
            (0..n).filter(|i| *i != j).flat_map(|i| (0..rounds).map(move |r| (i as u32) << 20 | r)).collect();
        want.sort();
        got == want
    })
}

/// Whether every session among the first `n` nodes is younger than `age`.
fn all_sessions_younger_than(net: &mut Net, n: usize, age: Duration) -> bool {
    let now = net.now;
    (0..n).all(|i| {
        net.node(i)
            .peers
            .values()
            .all(|p| p.current.as_ref().is_some_and(|s| now.saturating_duration_since(s.established) < age))
    })
}

fn connected(net: &mut Net, i: usize, j: usize) -> bool {
    net.state(i, j) == Some(PeerState::Connected)
}

#[test]
fn strangers_junk_costs_no_handshake_and_sessions_keep_rekeying_through_it() {
    let mut net = Net::new(4);
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(3));
    assert!((0..3).all(|i| (0..3).all(|j| i == j || connected(&mut net, i, j))));
    let mut rng = StdRng::seed_from_u64(13);
    let pool = junk_pool(&mut rng, 4096, None);
    let (mut next, mut round, mut junk) = (0, 0u32, [0u64; 3]);
    let tick = Duration::from_millis(50);
    let start = net.now;
    let mut joined = None;
    // Five simulated minutes of junk at the three hosts: 80,000 a second
    // for the first ten seconds (h4 joins meanwhile), 10,000 after.
    while net.now - start < Duration::from_secs(300) {
        let t = net.now - start;
        let per_tick = if t < Duration::from_secs(10) { 4000 } else { 500 };
        let before = next;
        let a = flood(&mut net, &[0, 1, 2], per_tick, &pool, &mut next);
        assert_eq!((a.cookies, a.other), (0, 0), "a stranger's junk is never answered");
        for k in before..next {
            junk[(k - before) % 3] += 1;
        }
        if t == Duration::from_secs(1) {
            net.bootstrap(3, 0);
        }
        if t >= Duration::from_secs(1) && joined.is_none() && connected(&mut net, 0, 3) && connected(&mut net, 3, 0) {
            joined = Some(t - Duration::from_secs(1));
        }
        if t.as_millis().is_multiple_of(5000) {
            frames_round(&mut net, 3, round);
            round += 1;
        }
        net.run(tick);
    }
    let joined = joined.expect("h4 joined through the flood");
    assert!(joined <= Duration::from_secs(1), "h4 took {joined:?} to join");
    assert!(net.all_connected(), "every session survived five minutes of junk");
    assert!(all_sessions_younger_than(&mut net, 4, Duration::from_secs(135)), "and every one was rekeyed");
    assert!(every_frame_arrived(&net, 3, round), "no frame was lost to the flood or to a rekey");
    for (i, junk) in junk.iter().enumerate() {
        let h = net.node(i).handshakes();
        // Not one handshake attempted, no budget spent, no cookie: the junk
        // cost one mac1 check each.
        assert_eq!(h.mac1_refused, *junk, "h{}: {h:?}", i + 1);
        assert_eq!((h.failed, h.rate_limited, h.cookies_sent), (0, 0, 0), "h{}: {h:?}", i + 1);
        assert_eq!(net.node(i).drops().get(DropReason::BadMac1), *junk);
        assert!(h.completed >= 3, "h{} rekeyed: {h:?}", i + 1);
    }
    assert_eq!(junk.iter().sum::<u64>(), 4000 * 200 + 500 * 5800);
}

#[test]
fn under_load_a_proven_source_joins_at_once_and_known_peers_rekey_on_their_own_budget() {
    let mut net = Net::new(4);
    net.bootstrap(1, 0);
    net.bootstrap(2, 0);
    net.run(Duration::from_secs(3));
    // A member floods h1 with initiations it can make: valid mac1, garbage
    // Noise, from a thousand spoofed addresses, ten times the global budget.
    let mut rng = StdRng::seed_from_u64(17);
    let psk = super::network_key(b"pw");
    let pool = junk_pool(&mut rng, 1024, Some(&Mac1Key::new(&psk, None)));
    let (mut next, mut round, mut cookies) = (0, 0u32, 0);
    let start = net.now;
    let mut joined = None;
    while net.now - start < Duration::from_secs(150) {
        let t = net.now - start;
        let a = flood(&mut net, &[0], 250, &pool, &mut next);
        assert_eq!(a.other, 0, "garbage Noise gets no handshake answer");
        cookies += a.cookies;
        if t == Duration::from_secs(2) {
            net.bootstrap(3, 0);
        }
        if t >= Duration::from_secs(2) && joined.is_none() && connected(&mut net, 0, 3) && connected(&mut net, 3, 0) {
            joined = Some(t - Duration::from_secs(2));
        }
        if t.as_millis().is_multiple_of(5000) {
            frames_round(&mut net, 3, round);
            round += 1;
        }
        net.run(Duration::from_millis(50));
    }
    let h = net.node(0).handshakes();
    // Only the global budget's worth of the junk got a handshake attempt
    // (500 a second, one second of burst); the rest got cookies.
    let junk = 250 * 20 * 150;
    assert_eq!(h.failed + cookies as u64 + h.rate_limited, junk, "{h:?}");
    assert!(h.failed <= 500 * 151, "{h:?}");
    // The new host got a cookie too, proved its address and joined at once.
    assert!(h.cookies_sent > cookies as u64, "{h:?}");
    let joined = joined.expect("h4 joined under load");
    assert!(joined <= Duration::from_secs(1), "h4 took {joined:?} to join");
    assert_eq!(net.node(3).guard.cookies_held(), 1, "h4 was given h1's cookie");
    // The known peers never needed one: their rekeys went on their own budget.
    assert_eq!(net.node(1).guard.cookies_held() + net.node(2).guard.cookies_held(), 0);
    assert!(net.all_connected());
    assert!(all_sessions_younger_than(&mut net, 4, Duration::from_secs(135)), "every session was rekeyed");
    assert!(every_frame_arrived(&net, 3, round));
}

/// h2 with an XX initiation to h1 in flight (h1 unreachable): the
/// initiation as sent.
fn initiation_in_flight(net: &mut Net) -> Vec<u8> {
    net.blocked.insert((1, 0));
    net.bootstrap(1, 0);
    net.run(Duration::from_millis(100));
    let (_, _, init) = net.wire_log.iter().rev().find(|(i, j, d)| (*i, *j) == (1, 0) && d[1] == 1).expect("sent");
    init.clone()
}

/// Hands `d` to h2 as if from `from`; what h2 sent in return.
fn to_h2(net: &mut Net, from: SocketAddr, d: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
    let now = net.now;
    let mut out = Out::default();
    net.node(1).handle_datagram(now, from, d, &mut out);
    out.sent
}

fn cookie_reply(key: &CookieKey, receiver: u32, mac1: &[u8; MAC_LEN], cookie: &Cookie) -> Vec<u8> {
    let nonce = [7u8; COOKIE_NONCE_LEN];
    let sealed = cookie::seal(key, &nonce, mac1, cookie);
    let mut b = vec![0u8; wire::COOKIE_REPLY_LEN];
    wire::write_cookie_reply(&mut b, receiver, &nonce, &sealed);
    b
}

#[test]
fn hostile_cookie_replies_and_responses_are_counted_and_change_nothing() {
    let mut net = Net::new(2);
    let init = initiation_in_flight(&mut net);
    let sender = u32::from_be_bytes(init[2..6].try_into().unwrap());
    let at = init.len() - 2 * MAC_LEN;
    let mac1: [u8; MAC_LEN] = init[at..at + MAC_LEN].try_into().unwrap();
    let h1 = net.addrs[0];
    let psk = super::network_key(b"pw");
    let key = CookieKey::new(&psk, None);
    let cookie = Cookie([0x42; MAC_LEN]);

    // A reply for no handshake, one from elsewhere, one sealed for another
    // initiation, one sealed without the network key, one cut short.
    let hostile = [
        (h1, cookie_reply(&key, sender ^ 1, &mac1, &cookie)),
        (junk_source(1), cookie_reply(&key, sender, &mac1, &cookie)),
        (h1, cookie_reply(&key, sender, &[0; MAC_LEN], &cookie)),
        (h1, cookie_reply(&CookieKey::new(&super::network_key(b"guess"), None), sender, &mac1, &cookie)),
    ];
    for (from, d) in &hostile {
        assert!(to_h2(&mut net, *from, d).is_empty(), "a hostile cookie reply is not answered");
    }
    assert!(to_h2(&mut net, h1, &cookie_reply(&key, sender, &mac1, &cookie)[..40]).is_empty());
    assert_eq!(net.node(1).handshakes().cookies_refused, 4);
    assert_eq!(net.node(1).drops().get(DropReason::BadCookie), 4);
    assert_eq!(net.node(1).drops().get(DropReason::Malformed), 1);
    assert_eq!(net.node(1).guard.cookies_held(), 0);

    // A response to the handshake without a valid mac1: refused, and the
    // handshake stays in flight.
    let mut forged = vec![1, 2, 0, 0, 0, 9];
    forged.extend_from_slice(&sender.to_be_bytes());
    forged.extend_from_slice(&[0x33; 64 + MAC_LEN]);
    assert!(to_h2(&mut net, h1, &forged).is_empty());
    assert_eq!(net.node(1).handshakes().mac1_refused, 1);
    assert_eq!(net.node(1).handshakes().failed, 0);
    assert!(net.node(1).indices.outgoing.contains_key(&sender), "still in flight");

    // The genuine reply: kept, and the same initiation goes again at once
    // with mac2 made with the cookie. Once: a second reply is kept only.
    let sent = to_h2(&mut net, h1, &cookie_reply(&key, sender, &mac1, &cookie));
    assert_eq!(sent.len(), 1);
    let (to, again) = &sent[0];
    assert_eq!(*to, h1);
    assert_eq!(again[..at + MAC_LEN], init[..at + MAC_LEN], "the same initiation, the same mac1");
    let mac2: [u8; MAC_LEN] = again[at + MAC_LEN..].try_into().unwrap();
    assert!(cookie.verify(&again[..at + MAC_LEN], &mac2));
    assert_eq!(net.node(1).guard.cookies_held(), 1);
    assert!(to_h2(&mut net, h1, &cookie_reply(&key, sender, &mac1, &Cookie([0x43; MAC_LEN]))).is_empty());
    assert_eq!(net.node(1).handshakes().cookies_refused, 4);

    // h1 is reachable again: the handshake completes, and the next
    // initiation to h1 carries mac2 with the cookie h2 holds.
    net.blocked.clear();
    net.run(Duration::from_secs(5));
    assert!(net.all_connected());
    let later = net.wire_log.iter().rev().find(|(i, j, d)| (*i, *j) == (1, 0) && d[1] == 1).unwrap().2.clone();
    assert!(later.len() > INIT_HEADER_LEN + 2 * MAC_LEN);
    let m = later.len() - MAC_LEN;
    assert!(Cookie([0x43; MAC_LEN]).verify(&later[..m], later[m..].try_into().unwrap()));
}
