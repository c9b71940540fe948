//! The body of the `exchange` fuzz target (`fuzz/fuzz_targets/exchange.rs`),
//! also replayed by this crate's tests: every wire format of AEX decoded
//! from the same bytes, and whatever decodes encodes back to something
//! that decodes to the same value; and the authentication layer's
//! parsers (sealed datagrams, sealed replication frames) on the same bytes:
//! a forgery is refused, never a panic.

use crate::auth::channel::{self, Role};
use crate::auth::{self, RootKey, StreamKey, StreamKind};
use crate::stream;
use crate::wire::{input, itch, mold, oe, repl, report};

/// Decodes `data` as each format in turn (the TCP formats as a stream of
/// frames); checks each round trip.
pub fn wire(data: &[u8]) {
    if let Ok(i) = input::decode_input(data) {
        let mut b = Vec::new();
        input::encode_input(&i, &mut b);
        assert_eq!(input::decode_input(&b), Ok(i));
    }
    if let Ok(r) = input::decode_record(data) {
        let mut b = Vec::new();
        input::encode_record(&r, &mut b);
        assert_eq!(input::decode_record(&b), Ok(r));
    }
    if let Ok(m) = itch::decode(data) {
        let mut b = Vec::new();
        itch::encode(&m, &mut b);
        assert_eq!(itch::decode(&b), Ok(m));
    }
    if let Ok(p) = mold::Packet::decode(data) {
        let n = p.messages().count();
        assert_eq!(n, usize::from(p.message_count()));
        let last = p.messages().last().map(|(s, _)| s);
        assert!(last.is_none_or(|s| s + 1 == p.next_seq()));
        for (_, m) in p.messages() {
            let _ = itch::decode(m);
        }
        // A stream receiver takes any packet: within its limits, delivering
        // in increasing order, asking for bounded ranges.
        let limits = stream::Limits { messages: 64, bytes: 4096 };
        let mut r = stream::Receiver::with_limits(stream::Start::AtOne, limits);
        let mut last = 0;
        for now in [0, stream::GIVE_UP_NS] {
            r.on_packet(&p, now, |n, _| {
                assert!(n > last, "{n} delivered after {last}");
                last = n;
            });
            let mut reqs = Vec::new();
            r.poll_requests(p.session, now, &mut reqs);
            assert!(reqs.iter().all(|q| q.count >= 1 && q.count <= stream::MAX_REQUEST));
            assert!(r.held() <= 64 && r.held_bytes() <= 4096);
            r.give_up(now, |n, _| {
                assert!(n > last, "{n} delivered after {last}");
                last = n;
            });
        }
    }
    if let Ok(r) = mold::ReRequest::decode(data) {
        assert_eq!(mold::ReRequest::decode(&r.encode()), Ok(r));
    }
    if let Ok(r) = report::decode(data) {
        let mut b = Vec::new();
        report::encode(&r, &mut b);
        assert_eq!(report::decode(&b), Ok(r));
    }
    if let Ok(o) = report::decode_outputs(data) {
        let mut b = Vec::new();
        report::encode_outputs(&o, &mut b);
        assert_eq!(report::decode_outputs(&b), Ok(o));
    }
    if let Ok(m) = oe::decode_message(data) {
        let mut b = Vec::new();
        oe::encode_frame(&m, &mut b);
        assert_eq!(oe::decode_frame(&b), Ok(Some((m, b.len()))));
    }
    // The TCP streams: frames one after another until one is incomplete
    // or bad.
    let mut rest = data;
    while let Ok(Some((m, used))) = oe::decode_frame(rest) {
        assert!(used > 0 && used <= rest.len(), "a frame of {used} bytes in {}", rest.len());
        let mut b = Vec::new();
        oe::encode_frame(&m, &mut b);
        assert_eq!(oe::decode_frame(&b), Ok(Some((m, b.len()))));
        rest = &rest[used..];
    }
    let mut rest = data;
    while let Ok(Some((m, used))) = repl::decode_frame(rest) {
        assert!(used > 0 && used <= rest.len(), "a frame of {used} bytes in {}", rest.len());
        let mut b = Vec::new();
        repl::encode(&m, &mut b);
        assert_eq!(repl::decode_frame(&b), Ok(Some((m, b.len()))));
        rest = &rest[used..];
    }
    // Sealed datagrams: whatever the bytes, a key without the sender's
    // secret opens nothing, and what peeks as a datagram has its parts.
    if let Some((_, session)) = auth::peek(data) {
        assert_eq!(&data[..10], &session.0);
    }
    let key = StreamKey::derive(&RootKey::from_bytes([0x42; 32]), StreamKind::MarketData, &mold::Session([b' '; 10]));
    let from = std::net::SocketAddr::from(([10, 40, 0, 1], 7000));
    assert!(key.open_fresh(from, data, auth::unix_ns()).is_err(), "a forgery verified");
    // Sealed replication frames, as a stream.
    let (_, mut opener) = channel::halves(&RootKey::from_bytes([0x42; 32]), Role::Server, &[1; 16], &[2; 16]);
    assert!(!matches!(opener.decode(data), Ok(Some(_))), "a forged frame verified");
}
