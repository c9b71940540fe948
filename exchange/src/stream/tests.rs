//! Tests of the sender and the receiver: unit cases, the hole-and-held invariant, and lossy and hostile networks.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn session() -> Session {
    Session::new("md.001").unwrap()
}

fn decode(p: &[u8]) -> (u64, Vec<Vec<u8>>) {
    let p = Packet::decode(p).unwrap();
    (p.seq, p.messages().map(|(_, m)| m.to_vec()).collect())
}

#[test]
fn sender_numbers_packs_and_retransmits() {
    let mut s = Sender::new(session(), 10);
    for i in 0..5u8 {
        assert_eq!(s.push(&[i; 3]), i as u64 + 1);
    }
    let mut out = Vec::new();
    s.take_packets(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(decode(&out[0]), (1, (0..5u8).map(|i| vec![i; 3]).collect()));
    out.clear();
    s.take_packets(&mut out);
    assert!(out.is_empty(), "nothing new, nothing sent");
    s.retransmit(&ReRequest { session: session(), seq: 2, count: 2 }, &mut out);
    assert_eq!(decode(&out[0]), (2, vec![vec![1; 3], vec![2; 3]]));
    // Not yet sent messages are not retransmitted; other sessions are ignored.
    s.push(&[9]);
    out.clear();
    s.retransmit(&ReRequest { session: session(), seq: 6, count: 1 }, &mut out);
    s.retransmit(&ReRequest { session: Session::new("x").unwrap(), seq: 1, count: 1 }, &mut out);
    assert!(out.is_empty());
}

#[test]
fn sender_forgets_beyond_capacity_and_splits_packets() {
    let mut s = Sender::new(session(), 3);
    for _ in 0..5 {
        s.push(&[0; 600]);
    }
    let mut out = Vec::new();
    s.take_packets(&mut out);
    // Only 3 kept (3, 4, 5); 600-byte messages go two per packet.
    assert_eq!(out.iter().map(|p| decode(p).0).collect::<Vec<_>>(), vec![3, 5]);
    out.clear();
    s.retransmit(&ReRequest { session: session(), seq: 1, count: 10 }, &mut out);
    assert_eq!(decode(&out[0]).0, 3);
}

/// A packet of messages `seq ..` (message n is `n` as 8 bytes) as sent.
fn packet(seq: u64, count: u64) -> Vec<u8> {
    let mut b = PacketBuilder::new(session(), seq, MAX_PACKET);
    for n in seq..seq + count {
        assert!(b.push(&n.to_be_bytes()));
    }
    if count == 0 {
        return mold::heartbeat(session(), seq);
    }
    b.finish()
}

/// Feeds a packet; returns the numbers delivered (checking each message's bytes).
fn feed(r: &mut Receiver, seq: u64, count: u64, now: u64) -> Vec<u64> {
    let bytes = packet(seq, count);
    let mut got = Vec::new();
    r.on_packet(&Packet::decode(&bytes).unwrap(), now, |n, m| {
        assert_eq!(m, n.to_be_bytes());
        got.push(n);
    });
    check_invariant(r);
    got
}

fn asks(r: &mut Receiver, now: u64) -> Vec<(u64, u16)> {
    let mut out = Vec::new();
    r.poll_requests(session(), now, &mut out);
    out.iter().map(|q| (q.seq, q.count)).collect()
}

/// Held and missing messages partition `next .. known_end`; within the limits.
fn check_invariant(r: &Receiver) {
    let Some(next) = r.next else {
        assert!(r.holes.is_empty() && r.held.is_empty());
        return;
    };
    let mut at = next;
    let mut holes = r.holes.iter().peekable();
    let mut held = r.held.keys().peekable();
    while at < r.known_end {
        if let Some((&s, h)) = holes.peek() {
            if s == at {
                assert!(h.end > s, "an empty hole at {s}");
                at = h.end;
                holes.next();
                continue;
            }
        }
        assert_eq!(held.next(), Some(&at), "message {at} neither held nor missing: {r:?}");
        at += 1;
    }
    assert!(holes.next().is_none() && held.next().is_none(), "past the known end: {r:?}");
    assert_eq!(at.max(next), r.known_end.max(next));
    assert!(r.held.len() as u64 <= r.limits.messages);
    assert!(r.held_bytes <= r.limits.bytes);
    assert_eq!(r.held_bytes, r.held.values().map(|m| m.len() + HELD_OVERHEAD).sum::<usize>());
    assert!(r.holes.len() <= r.held.len() + 1, "{} holes for {} held", r.holes.len(), r.held.len());
    if let Some(&k) = r.held.keys().next() {
        assert!(k > next && k - next < r.limits.messages);
    }
}

#[test]
fn receiver_holds_what_follows_a_hole_and_asks_only_for_the_hole() {
    let mut r = Receiver::new(Start::AtOne);
    assert_eq!(feed(&mut r, 1, 3, 0), vec![1, 2, 3]);
    assert!(asks(&mut r, 0).is_empty());
    // 4..6 lost; 7..8 held; only the hole is asked for, once per interval.
    assert_eq!(feed(&mut r, 7, 2, 10), Vec::<u64>::new());
    assert_eq!((r.held(), r.missing(), r.in_gap()), (2, 3, true));
    assert_eq!(asks(&mut r, 10), vec![(4, 3)]);
    assert!(asks(&mut r, 20).is_empty());
    // More arrives past the hole: held, nothing more asked.
    assert_eq!(feed(&mut r, 9, 1, 30), Vec::<u64>::new());
    assert!(asks(&mut r, 30).is_empty());
    // The answer was lost: asked again after the interval.
    assert_eq!(asks(&mut r, 10 + REQUEST_INTERVAL_NS), vec![(4, 3)]);
    // The retransmission fills it: all delivered in order.
    assert_eq!(feed(&mut r, 4, 3, 40 + REQUEST_INTERVAL_NS), vec![4, 5, 6, 7, 8, 9]);
    assert!(!r.in_gap());
    assert_eq!((r.next(), r.held(), r.held_bytes()), (Some(10), 0, 0));
    // A late duplicate changes nothing.
    assert_eq!(feed(&mut r, 3, 5, 50 + REQUEST_INTERVAL_NS), Vec::<u64>::new());
    assert_eq!(feed(&mut r, 10, 1, 60 + REQUEST_INTERVAL_NS), vec![10]);
}

#[test]
fn several_holes_are_asked_for_apart_and_filled_in_any_order() {
    let mut r = Receiver::new(Start::AtOne);
    feed(&mut r, 1, 1, 0);
    feed(&mut r, 4, 1, 0); // 2, 3 missing
    feed(&mut r, 7, 2, 0); // 5, 6 missing
    feed(&mut r, 12, 0, 0); // heartbeat: 9..11 missing
    assert_eq!(r.holes(), 3);
    assert_eq!(asks(&mut r, 1), vec![(2, 2), (5, 2), (9, 3)]);
    // The middle answer arrives first, then part of the first one.
    assert_eq!(feed(&mut r, 5, 2, 2), Vec::<u64>::new());
    assert_eq!(feed(&mut r, 3, 1, 3), Vec::<u64>::new());
    assert_eq!(r.holes(), 2);
    // Only what is still missing is asked again, after the interval.
    assert!(asks(&mut r, 4).is_empty());
    assert_eq!(asks(&mut r, 1 + REQUEST_INTERVAL_NS), vec![(2, 1), (9, 3)]);
    assert_eq!(feed(&mut r, 2, 1, 5 + REQUEST_INTERVAL_NS), vec![2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(feed(&mut r, 9, 3, 6 + REQUEST_INTERVAL_NS), vec![9, 10, 11]);
    assert_eq!((r.next(), r.holes(), r.held()), (Some(12), 0, 0));
}

#[test]
fn a_long_gap_is_asked_for_in_bounded_pieces_a_few_at_a_time() {
    let mut r = Receiver::with_limits(Start::AtOne, Limits::REPORTS);
    feed(&mut r, 1, 1, 0);
    feed(&mut r, 20_002, 0, 0); // 20,000 missing
    let first = asks(&mut r, 0);
    assert_eq!(first.len() as u64, MAX_IN_FLIGHT / u64::from(MAX_REQUEST));
    assert!(first.iter().all(|&(_, c)| c == MAX_REQUEST));
    assert_eq!(first[1].0, 2 + u64::from(MAX_REQUEST));
    // Nothing more until some of it arrives...
    assert!(asks(&mut r, 1).is_empty());
    // ...then as much more as arrived.
    let mut s = 2;
    while s < 2 + u64::from(MAX_REQUEST) {
        let n = 20.min(2 + u64::from(MAX_REQUEST) - s);
        feed(&mut r, s, n, 2);
        s += n;
    }
    let more = asks(&mut r, 3);
    assert_eq!(more, vec![(2 + MAX_IN_FLIGHT, MAX_REQUEST)]);
    assert_eq!(r.next(), Some(2 + u64::from(MAX_REQUEST)));
}

#[test]
fn requests_are_rate_limited_over_all_holes() {
    let mut r = Receiver::new(Start::AtOne);
    // 100 holes of one message each.
    for i in 0..100 {
        feed(&mut r, 2 + 2 * i, 1, 0);
    }
    assert_eq!(r.holes(), 100);
    assert_eq!(asks(&mut r, 0).len() as u64, REQUESTS_PER_INTERVAL);
    assert!(asks(&mut r, 1).is_empty());
    // Refilled evenly: one more every interval / REQUESTS_PER_INTERVAL.
    assert_eq!(asks(&mut r, REQUEST_INTERVAL_NS / REQUESTS_PER_INTERVAL).len(), 1);
    let mut total = 0;
    for t in 1..=20 {
        total += asks(&mut r, t * REQUEST_INTERVAL_NS / 4).len() as u64;
    }
    assert!(total <= 5 * REQUESTS_PER_INTERVAL + 1, "{total} requests in 5 intervals");
}

#[test]
fn messages_past_the_limits_are_dropped_counted_and_asked_for_later() {
    let limits = Limits { messages: 10, bytes: 4 * (8 + HELD_OVERHEAD) };
    let mut r = Receiver::with_limits(Start::AtOne, limits);
    feed(&mut r, 1, 1, 0);
    // 3..=6 held (bytes for four), 7..=12 dropped (bytes), 13.. dropped (window).
    feed(&mut r, 3, 15, 0);
    assert_eq!((r.held(), r.dropped(), r.missing()), (4, 11, 12));
    // Asked for: 2, and 7..=11 (below next + 10), not beyond.
    assert_eq!(asks(&mut r, 0), vec![(2, 1), (7, 5)]);
    assert_eq!(feed(&mut r, 2, 1, 1), vec![2, 3, 4, 5, 6]);
    // The window moved on: the rest is asked for now.
    assert_eq!(asks(&mut r, 2), vec![(12, 5)]);
    assert_eq!(feed(&mut r, 7, 11, 3), (7..18).collect::<Vec<_>>());
    assert_eq!((r.held(), r.held_bytes(), r.in_gap()), (0, 0, false));
}

#[test]
fn a_resumed_receiver_skips_what_it_had() {
    let mut r = Receiver::new(Start::At(5));
    assert_eq!(feed(&mut r, 3, 4, 0), vec![5, 6]);
    assert_eq!(r.next(), Some(7));
    assert_eq!(Receiver::new(Start::At(0)).next(), Some(1));
    let mut r = Receiver::new(Start::At(5));
    assert_eq!(feed(&mut r, 7, 1, 0), Vec::<u64>::new());
    assert_eq!(asks(&mut r, 0), vec![(5, 2)]);
}

#[test]
fn heartbeat_reveals_a_tail_loss() {
    let mut r = Receiver::new(Start::AtOne);
    feed(&mut r, 1, 1, 0);
    assert!(asks(&mut r, 0).is_empty());
    feed(&mut r, 4, 0, 5); // heartbeat: next is 4, so 2 and 3 are missing
    assert_eq!(asks(&mut r, 5), vec![(2, 2)]);
}

#[test]
fn late_joiner_starts_at_first_packet_and_gives_up_on_old_gaps() {
    let mut r = Receiver::new(Start::AtFirst);
    assert!(asks(&mut r, 0).is_empty());
    assert_eq!(feed(&mut r, 100, 2, 0), vec![100, 101]);
    assert_eq!(feed(&mut r, 105, 1, 1), Vec::<u64>::new());
    assert_eq!(feed(&mut r, 108, 1, GIVE_UP_NS), Vec::<u64>::new());
    let mut got = Vec::new();
    assert_eq!(r.give_up(1 + GIVE_UP_NS - 1, |n, _| got.push(n)), 0);
    // The first hole (102..=104) is old, the second (106, 107) is not.
    assert_eq!(r.give_up(1 + GIVE_UP_NS, |n, _| got.push(n)), 3);
    assert_eq!(got, vec![105]);
    assert_eq!(feed(&mut r, 106, 2, 2 + GIVE_UP_NS), vec![106, 107, 108]);
    assert_eq!(feed(&mut r, 109, 1, 3 + GIVE_UP_NS), vec![109]);
    // A tail seen by a heartbeat and never filled is given up whole.
    feed(&mut r, 120, 0, 4 + GIVE_UP_NS);
    assert_eq!(r.give_up(4 + 2 * GIVE_UP_NS, |_, _| unreachable!()), 10);
    assert_eq!((r.next(), r.in_gap()), (Some(120), false));
}

/// A tiny deterministic generator for the simulated network.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// A sender and a receiver over a network that loses, duplicates
    /// and reorders packets and re-requests alike: every message is
    /// delivered exactly once, in order, and no gap is given up, when
    /// the sender's history covers everything.
    #[test]
    fn every_message_once_and_in_order_over_a_lossy_network(
        seed in 1u64..u64::MAX,
        total in 1u64..600,
        loss in 0u64..40,
        dup in 0u64..20,
        delay in 0u64..6,
        window in 4u64..20_000,
        bytes in 1_000usize..200_000,
        start_late in any::<bool>(),
    ) {
        const TICK: u64 = 5_000_000;
        let mut rng = Rng(seed);
        let mut tx = Sender::new(session(), HISTORY);
        let limits = Limits { messages: window, bytes };
        let mut rx = Receiver::with_limits(if start_late { Start::AtFirst } else { Start::AtOne }, limits);
        // Datagrams in flight: (arrival tick, bytes).
        let mut net: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
        let mut id = 0u64;
        let mut send = |net: &mut BTreeMap<(u64, u64), Vec<u8>>, rng: &mut Rng, tick: u64, d: Vec<u8>| {
            if rng.percent(loss) {
                return;
            }
            let copies = if rng.percent(dup) { 2 } else { 1 };
            for _ in 0..copies {
                id += 1;
                net.insert((tick + rng.next() % (delay + 1), id), d.clone());
            }
        };
        let msg = |n: u64| -> Vec<u8> { (0..(n % 40) as u8).chain(n.to_be_bytes()).collect() };
        let mut got: Vec<u64> = Vec::new();
        let mut pushed = 0u64;
        let mut tick = 0u64;
        let mut requests = Vec::new();
        while tick < 40_000 {
            let now = tick * TICK;
            // The sender: a few messages a tick, a heartbeat every 20 ticks.
            if pushed < total {
                let n = (1 + rng.next() % 8).min(total - pushed);
                for _ in 0..n {
                    pushed += 1;
                    tx.push(&msg(pushed));
                }
                let mut ps = Vec::new();
                tx.take_packets(&mut ps);
                for p in ps {
                    send(&mut net, &mut rng, tick, p);
                }
            }
            if tick.is_multiple_of(20) {
                send(&mut net, &mut rng, tick, tx.heartbeat());
            }
            // The receiver: what arrives now, then its requests, each
            // answered by the sender (both ways lossy).
            while let Some(entry) = net.first_entry().filter(|e| e.key().0 <= tick) {
                let d = entry.remove();
                let p = Packet::decode(&d).unwrap();
                rx.on_packet(&p, now, |n, m| {
                    assert_eq!(m, &msg(n)[..], "message {} has another's bytes", n);
                    got.push(n);
                });
                check_invariant(&rx);
            }
            requests.clear();
            rx.poll_requests(session(), now, &mut requests);
            for q in &requests {
                prop_assert!(q.count >= 1 && q.count <= MAX_REQUEST);
                if rng.percent(loss) {
                    continue;
                }
                let mut ps = Vec::new();
                tx.retransmit(q, &mut ps);
                for p in ps {
                    send(&mut net, &mut rng, tick + 1, p);
                }
            }
            prop_assert_eq!(rx.give_up_after(now, 20 * GIVE_UP_NS, |_, _| ()), 0, "a gap given up");
            if pushed == total && rx.next() == Some(total + 1) {
                break;
            }
            tick += 1;
        }
        prop_assert_eq!(rx.next(), Some(total + 1), "not caught up after {} ticks: {:?}", tick, rx);
        let from = if start_late { got.first().copied().unwrap_or(total + 1) } else { 1 };
        prop_assert_eq!(got, (from..=total).collect::<Vec<_>>());
        prop_assert_eq!((rx.held(), rx.held_bytes(), rx.in_gap()), (0, 0, false));
    }

    /// Whatever an (authenticated but hostile) sender sends, the
    /// receiver stays within its limits, delivers in increasing order
    /// only, and asks for bounded ranges at a bounded rate.
    #[test]
    fn a_hostile_sender_cannot_grow_a_receiver_past_its_limits(
        ops in proptest::collection::vec(
            (0u8..5, 0u64..5_000, 0u64..70, 0usize..1_200, 0u64..200_000_000),
            1..300,
        ),
        window in 1u64..5_000,
        bytes in 0usize..50_000,
    ) {
        let limits = Limits { messages: window, bytes };
        let mut r = Receiver::with_limits(Start::AtOne, limits);
        let mut now = 0u64;
        let mut last_delivered = 0u64;
        let mut window_start = 0u64;
        let mut in_window = 0u64;
        for (op, seq, count, size, dt) in ops {
            now += dt;
            let mut deliver = |n: u64, _: &[u8]| {
                assert!(n > last_delivered, "{n} delivered after {last_delivered}");
                last_delivered = n;
            };
            match op {
                0 | 1 => {
                    // A packet near the front, or far ahead (op 1).
                    let base = r.next().unwrap_or(1);
                    let seq = if op == 0 { base.saturating_sub(20) + seq } else { seq.wrapping_mul(1 << 40) };
                    let mut b = PacketBuilder::new(session(), seq, MAX_PACKET);
                    for _ in 0..count {
                        if !b.push(&vec![7u8; size / (count as usize + 1)]) {
                            break;
                        }
                    }
                    let d = b.finish();
                    r.on_packet(&Packet::decode(&d).unwrap(), now, &mut deliver);
                }
                2 => {
                    let d = mold::heartbeat(session(), seq.wrapping_mul(count + 1));
                    r.on_packet(&Packet::decode(&d).unwrap(), now, &mut deliver);
                }
                3 => {
                    r.give_up(now, &mut deliver);
                }
                _ => {
                    if now >= window_start + REQUEST_INTERVAL_NS {
                        window_start = now;
                        in_window = 0;
                    }
                    let mut out = Vec::new();
                    let n = r.poll_requests(session(), now, &mut out);
                    prop_assert_eq!(n, out.len());
                    in_window += n as u64;
                    prop_assert!(in_window <= 2 * REQUESTS_PER_INTERVAL + 1, "{} requests in one interval", in_window);
                    let next = r.next().unwrap();
                    let asked: u64 = out.iter().map(|q| u64::from(q.count)).sum();
                    prop_assert!(asked <= MAX_IN_FLIGHT);
                    for q in out {
                        prop_assert!(q.count >= 1 && q.count <= MAX_REQUEST);
                        prop_assert!(q.seq >= next && q.seq + u64::from(q.count) <= next + window);
                    }
                }
            }
            check_invariant(&r);
        }
    }
}
