//! DNS messages: a query's bytes in, a reply's bytes out (hickory-proto
//! for the format). Every query is hostile until parsed: anything too
//! short to carry a header, or that is itself a reply, is dropped; anything
//! else malformed gets FORMERR. Answers are bounded in count and in size.

use super::{is_valid_name, scope, DnsTable, Lookup, Scope, DOMAIN};
use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA};
/// Query types, for [`build_query`].
pub use hickory_proto::rr::RecordType;
use hickory_proto::rr::{DNSClass, Name, RData, Record};
use std::net::IpAddr;

/// Longest query accepted (a query is small; this leaves room for EDNS
/// padding).
pub const MAX_QUERY_LEN: usize = 4096;
/// Time to live of answers, in seconds: short, so that removals and the
/// rotation show at once.
pub const ANSWER_TTL: u32 = 1;
/// Time to live of negative answers (the SOA minimum), in seconds.
pub const NEGATIVE_TTL: u32 = 5;
/// Most addresses in one answer.
pub const MAX_ANSWERS: usize = 64;
/// Largest UDP reply offered to EDNS clients (the DNS flag day 2020 size).
pub const EDNS_PAYLOAD: u16 = 1232;
/// Largest UDP reply to clients without EDNS.
pub const CLASSIC_PAYLOAD: usize = 512;
/// Most additional records a query may carry (an OPT, maybe a cookie or TSIG).
const MAX_ADDITIONALS: u16 = 2;

/// How a query came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What kind of reply was made, for counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Addresses (or the SOA of the apex).
    Answer,
    /// The name exists but has nothing of the type asked for.
    NoData,
    NxDomain,
    /// A name outside the domain and no upstream, or a class other than IN.
    Refused,
    /// Malformed.
    FormErr,
    /// An opcode other than QUERY.
    NotImp,
    /// An EDNS version other than 0.
    BadVers,
}

/// What to do with a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send these bytes back.
    Reply(Vec<u8>, Verdict),
    /// A name outside the domain: pass the query to the upstream server.
    Forward,
    /// Say nothing (too short, too long, or not a query).
    Drop,
}

/// Answers one query from `table`. With `can_forward`, names outside the
/// domain come back as [`Outcome::Forward`] instead of REFUSED.
pub fn respond(query: &[u8], transport: Transport, table: &mut DnsTable, can_forward: bool) -> Outcome {
    if query.len() < 12 || query.len() > MAX_QUERY_LEN {
        return Outcome::Drop;
    }
    let flags = u16::from_be_bytes([query[2], query[3]]);
    if flags & 0x8000 != 0 {
        // A reply: answering it could start a loop between two servers.
        return Outcome::Drop;
    }
    let opcode = ((flags >> 11) & 0xf) as u8;
    if opcode != 0 {
        return Outcome::Reply(header_only(query, 4), Verdict::NotImp);
    }
    let count = |i: usize| u16::from_be_bytes([query[i], query[i + 1]]);
    // Checked before parsing, so that a 12-byte message cannot make the
    // parser reserve room for 65535 questions.
    if count(4) != 1 || count(6) != 0 || count(8) != 0 || count(10) > MAX_ADDITIONALS {
        return Outcome::Reply(header_only(query, 1), Verdict::FormErr);
    }
    let Ok(msg) = Message::from_vec(query) else {
        return Outcome::Reply(header_only(query, 1), Verdict::FormErr);
    };
    let Some(q) = msg.queries.first() else {
        return Outcome::Reply(header_only(query, 1), Verdict::FormErr);
    };

    let mut reply = Message::new(msg.metadata.id, MessageType::Response, OpCode::Query);
    reply.metadata = Metadata::response_from_request(&msg.metadata);
    reply.metadata.recursion_available = can_forward;
    reply.add_query(q.clone());
    let limit = match transport {
        Transport::Tcp => u16::MAX as usize,
        Transport::Udp => match &msg.edns {
            Some(e) => (e.max_payload() as usize).clamp(CLASSIC_PAYLOAD, EDNS_PAYLOAD as usize),
            None => CLASSIC_PAYLOAD,
        },
    };
    if let Some(e) = &msg.edns {
        let mut out = Edns::new();
        out.set_max_payload(EDNS_PAYLOAD);
        out.set_version(0);
        reply.edns = Some(out);
        if e.version() != 0 {
            reply.metadata.response_code = ResponseCode::BADVERS;
            return finish(reply, limit, Verdict::BadVers);
        }
    }

    if q.query_class() != DNSClass::IN {
        reply.metadata.response_code = ResponseCode::Refused;
        return finish(reply, limit, Verdict::Refused);
    }
    let qname = q.name().clone();
    let qtype = q.query_type();
    let rel = match scope(&qname.to_ascii()) {
        Scope::Outside if can_forward => return Outcome::Forward,
        Scope::Outside => {
            reply.metadata.response_code = ResponseCode::Refused;
            return finish(reply, limit, Verdict::Refused);
        }
        Scope::Apex => {
            reply.metadata.authoritative = true;
            if qtype == RecordType::SOA {
                reply.add_answer(soa_record());
                return finish(reply, limit, Verdict::Answer);
            }
            reply.add_authority(soa_record());
            return finish(reply, limit, Verdict::NoData);
        }
        Scope::Inside(rel) => rel,
    };
    reply.metadata.authoritative = true;
    if !is_valid_name(&rel) || !table.name_exists(&rel) {
        reply.metadata.response_code = ResponseCode::NXDomain;
        reply.add_authority(soa_record());
        return finish(reply, limit, Verdict::NxDomain);
    }
    let mut addrs: Vec<IpAddr> = Vec::new();
    if matches!(qtype, RecordType::A | RecordType::ANY) {
        if let Lookup::Found(v) = table.lookup_v4(&rel) {
            addrs.extend(v.into_iter().map(IpAddr::V4));
        }
    }
    if matches!(qtype, RecordType::AAAA | RecordType::ANY) {
        if let Lookup::Found(v) = table.lookup_v6(&rel) {
            addrs.extend(v.into_iter().map(IpAddr::V6));
        }
    }
    if addrs.is_empty() {
        reply.add_authority(soa_record());
        return finish(reply, limit, Verdict::NoData);
    }
    for a in addrs.into_iter().take(MAX_ANSWERS) {
        let rdata = match a {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        // The name as asked (its case kept, for clients that check it).
        reply.add_answer(Record::from_rdata(qname.clone(), ANSWER_TTL, rdata));
    }
    finish(reply, limit, Verdict::Answer)
}

/// Encodes `reply` within `limit` bytes: answers that do not fit are left
/// out (the first ones, in rotated order, stay); if even the rest does not
/// fit, the reply is cut to its header with TC set.
fn finish(mut reply: Message, limit: usize, verdict: Verdict) -> Outcome {
    loop {
        match reply.to_vec() {
            Ok(bytes) if bytes.len() <= limit => return Outcome::Reply(bytes, verdict),
            Ok(bytes) if !reply.answers.is_empty() => {
                // Estimate how many answers fit, then check again.
                let n = reply.answers.len();
                let per = (bytes.len() / (n + 1)).max(1);
                let over = bytes.len() - limit;
                let cut = over.div_ceil(per).clamp(1, n);
                reply.answers.truncate(n - cut);
            }
            _ => {
                let mut short = Message::new(reply.metadata.id, MessageType::Response, reply.metadata.op_code);
                short.metadata = reply.metadata;
                short.metadata.truncation = true;
                short.queries = reply.queries.clone();
                return match short.to_vec() {
                    Ok(b) if b.len() <= limit => Outcome::Reply(b, verdict),
                    _ => Outcome::Drop,
                };
            }
        }
    }
}

/// The SOA of the domain, for the apex and negative answers.
fn soa_record() -> Record {
    let apex = Name::from_ascii(format!("{DOMAIN}.")).expect("the domain is a valid name");
    let mname = Name::from_ascii(format!("ns.{DOMAIN}.")).expect("valid name");
    let rname = Name::from_ascii(format!("hostmaster.{DOMAIN}.")).expect("valid name");
    let soa = SOA::new(mname, rname, 1, 3600, 600, 86400, NEGATIVE_TTL);
    Record::from_rdata(apex, NEGATIVE_TTL, RData::SOA(soa))
}

/// A reply of only a header (the query's ID, opcode and RD, and `rcode`),
/// for queries that cannot be parsed. `query` has at least 12 bytes.
fn header_only(query: &[u8], rcode: u8) -> Vec<u8> {
    let flags = u16::from_be_bytes([query[2], query[3]]);
    let out_flags = 0x8000 | (flags & 0x7800) | (flags & 0x0100) | rcode as u16;
    let mut out = vec![0u8; 12];
    out[..2].copy_from_slice(&query[..2]);
    out[2..4].copy_from_slice(&out_flags.to_be_bytes());
    out
}

/// DNS over TCP (RFC 1035 4.2.2, RFC 7766): the length a query's 2-byte
/// prefix announces, or None when it is longer than [`MAX_QUERY_LEN`] (the
/// server then closes the connection).
pub fn tcp_query_len(prefix: [u8; 2]) -> Option<usize> {
    let n = u16::from_be_bytes(prefix) as usize;
    (n <= MAX_QUERY_LEN).then_some(n)
}

/// A reply framed for TCP, its 2-byte length first; None when it is too
/// long to frame (over 65,535 bytes).
pub fn tcp_frame(reply: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(reply.len()).ok()?;
    let mut out = Vec::with_capacity(2 + reply.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(reply);
    Some(out)
}

/// A SERVFAIL reply to `query` (when the upstream server did not answer),
/// or None if the query cannot be read.
pub fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let msg = Message::from_vec(query).ok()?;
    let mut reply = Message::new(msg.metadata.id, MessageType::Response, msg.metadata.op_code);
    reply.metadata = Metadata::response_from_request(&msg.metadata);
    reply.metadata.recursion_available = true;
    reply.metadata.response_code = ResponseCode::ServFail;
    reply.queries = msg.queries;
    reply.to_vec().ok()
}

/// Whether `reply` from the upstream server answers `query`: a reply with
/// the same ID and question.
pub fn answers_query(query: &[u8], reply: &[u8]) -> bool {
    if reply.len() < 12 || reply.len() > u16::MAX as usize || query.len() < 12 || reply[..2] != query[..2] {
        return false;
    }
    if reply[2] & 0x80 == 0 {
        return false;
    }
    let (Ok(q), Ok(r)) = (Message::from_vec(query), Message::from_vec(reply)) else { return false };
    let same = |a: &Query, b: &Query| {
        a.name().to_lowercase() == b.name().to_lowercase()
            && a.query_type() == b.query_type()
            && a.query_class() == b.query_class()
    };
    // A truncated reply may leave the question out.
    r.queries.is_empty() && r.metadata.truncation
        || (q.queries.len() == r.queries.len() && q.queries.iter().zip(&r.queries).all(|(a, b)| same(a, b)))
}

/// Builds a query (for tests and tools): `name` of `qtype`, with EDNS when
/// `edns` is given (its payload size).
pub fn build_query(id: u16, name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    let n = Name::from_ascii(name).unwrap_or_default();
    m.add_query(Query::query(n, qtype));
    if let Some(p) = edns {
        let mut e = Edns::new();
        e.set_max_payload(p);
        m.edns = Some(e);
    }
    m.to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::Visible;
    use super::*;
    use crate::keys::PublicKey;
    use proptest::prelude::*;

    fn table(rows: &[(&str, &str)]) -> DnsTable {
        let mut t = DnsTable::new();
        t.replace(
            rows.iter()
                .map(|(n, a)| Visible {
                    name: n.to_string(),
                    addr: a.parse().unwrap(),
                    owner: None,
                    origin: PublicKey([1; 32]),
                    origin_name: "h1".into(),
                    since: 1,
                })
                .collect(),
        );
        t
    }

    fn reply(o: Outcome) -> (Message, Verdict) {
        match o {
            Outcome::Reply(b, v) => (Message::from_vec(&b).expect("a reply parses"), v),
            other => panic!("no reply: {other:?}"),
        }
    }

    fn addrs(m: &Message) -> Vec<String> {
        m.answers
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => a.0.to_string(),
                RData::AAAA(a) => a.0.to_string(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_and_aaaa_answers_rotate() {
        let mut t = table(&[("aapl.orders.aex", "239.1.0.1"), ("aapl.orders.aex", "239.1.0.2"), ("v6", "fd00::1")]);
        let q = build_query(7, "AAPL.Orders.aex.weavers.local.", RecordType::A, None);
        let (m, v) = reply(respond(&q, Transport::Udp, &mut t, false));
        assert_eq!(v, Verdict::Answer);
        assert_eq!(m.metadata.id, 7);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(m.metadata.authoritative);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(addrs(&m), ["239.1.0.1", "239.1.0.2"]);
        assert_eq!(m.answers[0].name.to_ascii(), "AAPL.Orders.aex.weavers.local.", "the case asked is kept");
        assert_eq!(m.answers[0].ttl, ANSWER_TTL);
        let (m, _) = reply(respond(&q, Transport::Tcp, &mut t, false));
        assert_eq!(addrs(&m), ["239.1.0.2", "239.1.0.1"]);
        let q6 = build_query(8, "v6.weavers.local.", RecordType::AAAA, Some(1232));
        let (m, v) = reply(respond(&q6, Transport::Udp, &mut t, false));
        assert_eq!((v, addrs(&m)), (Verdict::Answer, vec!["fd00::1".to_string()]));
        assert!(m.edns.is_some(), "EDNS in, EDNS out");
    }

    #[test]
    fn negative_answers() {
        let mut t = table(&[("a.b", "10.0.0.1")]);
        let ask = |t: &mut DnsTable, name: &str, ty| {
            reply(respond(&build_query(1, name, ty, None), Transport::Udp, t, false))
        };
        let (m, v) = ask(&mut t, "nope.weavers.local.", RecordType::A);
        assert_eq!((v, m.metadata.response_code), (Verdict::NxDomain, ResponseCode::NXDomain));
        assert_eq!(m.authorities.len(), 1, "SOA for negative caching");
        let (m, v) = ask(&mut t, "a.b.weavers.local.", RecordType::AAAA);
        assert_eq!((v, m.metadata.response_code), (Verdict::NoData, ResponseCode::NoError));
        assert!(m.answers.is_empty());
        let (_, v) = ask(&mut t, "b.weavers.local.", RecordType::A);
        assert_eq!(v, Verdict::NoData, "a parent of a name exists");
        let (_, v) = ask(&mut t, "a.b.weavers.local.", RecordType::MX);
        assert_eq!(v, Verdict::NoData);
        let (m, v) = ask(&mut t, "weavers.local.", RecordType::SOA);
        assert_eq!((v, m.answers.len()), (Verdict::Answer, 1));
        let (m, v) = ask(&mut t, "example.com.", RecordType::A);
        assert_eq!((v, m.metadata.response_code), (Verdict::Refused, ResponseCode::Refused));
        assert!(!m.metadata.recursion_available);
        // A label with a zero byte in it, inside the domain.
        let mut odd = build_query(1, "x.weavers.local.", RecordType::A, None)[..12].to_vec();
        odd.extend_from_slice(b"\x03a\x00b\x07weavers\x05local\x00\x00\x01\x00\x01");
        let (_, v) = reply(respond(&odd, Transport::Udp, &mut t, false));
        assert_eq!(v, Verdict::NxDomain);
        let q = build_query(1, "example.com.", RecordType::A, None);
        assert_eq!(respond(&q, Transport::Udp, &mut t, true), Outcome::Forward);
    }

    #[test]
    fn malformed_queries_get_formerr_or_nothing() {
        let mut t = table(&[("a", "10.0.0.1")]);
        assert_eq!(respond(&[], Transport::Udp, &mut t, false), Outcome::Drop);
        assert_eq!(respond(&[0u8; 11], Transport::Udp, &mut t, false), Outcome::Drop);
        assert_eq!(respond(&vec![0u8; MAX_QUERY_LEN + 1], Transport::Udp, &mut t, false), Outcome::Drop);
        let mut q = build_query(0x1234, "a.weavers.local.", RecordType::A, None);
        q[2] |= 0x80;
        assert_eq!(respond(&q, Transport::Udp, &mut t, false), Outcome::Drop, "replies are never answered");

        // A header claiming 65535 questions, then nothing.
        let bomb = [0x12, 0x34, 0x01, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0];
        let (m, v) = reply(respond(&bomb, Transport::Udp, &mut t, false));
        assert_eq!((v, m.metadata.id, m.metadata.response_code), (Verdict::FormErr, 0x1234, ResponseCode::FormErr));
        // One question, cut short.
        let q = build_query(0x4321, "a.weavers.local.", RecordType::A, None);
        let (m, v) = reply(respond(&q[..q.len() - 3], Transport::Udp, &mut t, false));
        assert_eq!((v, m.metadata.id), (Verdict::FormErr, 0x4321));
        // A label pointing at itself.
        let mut looped = q[..12].to_vec();
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(reply(respond(&looped, Transport::Udp, &mut t, false)).1, Verdict::FormErr);
        // Opcode UPDATE.
        let mut upd = q.clone();
        upd[2] |= 5 << 3;
        let (m, v) = reply(respond(&upd, Transport::Udp, &mut t, false));
        assert_eq!((v, m.metadata.response_code), (Verdict::NotImp, ResponseCode::NotImp));
    }

    #[test]
    fn big_answers_are_cut_to_fit() {
        let rows: Vec<(String, String)> =
            (0..100).map(|i| ("pool".to_string(), format!("10.0.{}.{}", i / 200, i % 200 + 1))).collect();
        let refs: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let mut t = table(&refs);
        let q = build_query(1, "pool.weavers.local.", RecordType::A, None);
        let Outcome::Reply(b, _) = respond(&q, Transport::Udp, &mut t, false) else { panic!() };
        assert!(b.len() <= CLASSIC_PAYLOAD);
        let m = Message::from_vec(&b).unwrap();
        assert!(m.answers.len() > 20 && m.answers.len() < MAX_ANSWERS, "{}", m.answers.len());
        let q = build_query(1, "pool.weavers.local.", RecordType::A, Some(4096));
        let Outcome::Reply(b, _) = respond(&q, Transport::Udp, &mut t, false) else { panic!() };
        assert!(b.len() <= EDNS_PAYLOAD as usize);
        let Outcome::Reply(b, _) = respond(&q, Transport::Tcp, &mut t, false) else { panic!() };
        assert_eq!(Message::from_vec(&b).unwrap().answers.len(), MAX_ANSWERS);
    }

    #[test]
    fn upstream_replies_must_match() {
        let q = build_query(9, "example.com.", RecordType::A, None);
        let mut r = Message::from_vec(&q).unwrap();
        r.metadata.message_type = MessageType::Response;
        let good = r.to_vec().unwrap();
        assert!(answers_query(&q, &good));
        let mut other_id = good.clone();
        other_id[1] ^= 1;
        assert!(!answers_query(&q, &other_id));
        assert!(!answers_query(&q, &q), "a query is no reply");
        let other_q = build_query(9, "example.org.", RecordType::A, None);
        let mut r2 = Message::from_vec(&other_q).unwrap();
        r2.metadata.message_type = MessageType::Response;
        assert!(!answers_query(&q, &r2.to_vec().unwrap()));
        assert!(!answers_query(&q, &good[..5]));
        let sf = servfail(&q).unwrap();
        assert!(answers_query(&q, &sf));
        assert_eq!(Message::from_vec(&sf).unwrap().metadata.response_code, ResponseCode::ServFail);
    }

    proptest! {
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut t = table(&[("a", "10.0.0.1"), ("a", "fd00::1")]);
            for tr in [Transport::Udp, Transport::Tcp] {
                if let Outcome::Reply(b, _) = respond(&bytes, tr, &mut t, false) {
                    prop_assert!(b.len() >= 12);
                    prop_assert_eq!(&b[..2], &bytes[..2]);
                    prop_assert!(b[2] & 0x80 != 0);
                }
                let _ = respond(&bytes, tr, &mut t, true);
            }
            let _ = servfail(&bytes);
            let _ = answers_query(&bytes, &bytes);
        }

        #[test]
        fn mutated_queries_never_panic(pos in 0usize..60, val in any::<u8>(), cut in 0usize..60) {
            let mut t = table(&[("a", "10.0.0.1")]);
            let mut q = build_query(3, "a.weavers.local.", RecordType::A, Some(1232));
            if pos < q.len() { q[pos] = val; }
            q.truncate(q.len().saturating_sub(cut % 8));
            let _ = respond(&q, Transport::Udp, &mut t, false);
        }
    }
}
