//! The bodies of the fuzz targets (`fuzz/fuzz_targets/`), one per decoder
//! family, as plain functions: each target is a one-liner calling one of
//! these, and the workspace's tests replay the committed corpus and every
//! crash found (`fuzz/regressions/`) through the same functions
//! (`proto/tests/fuzz_regressions.rs`).
//!
//! Each function takes arbitrary bytes, drives the decoder (and what
//! consumes its output) as received input would, and panics only when an
//! invariant breaks: any panic here is a bug in the code under test.
//!
//! The targets that need a peer ([`handshake`], [`gossip`], [`node`]) run
//! a real [`crate::node::Node`] against a scripted attacker holding the
//! network key: see [`mesh`].

pub mod mesh;
mod records;

use crate::dns::message::{self, Outcome, Transport};
use crate::dns::{DnsTable, Visible};
use crate::groups::LocalGroups;
use crate::ipam::{Allocator, IpamMessage, IpamRecord, Range, Ring};
use crate::keys::PublicKey;
use crate::node::Reassembly;
use crate::snoop::{self, FrameClass};
use crate::stats::Drops;
use crate::vnet::{self, VnetHdr, VNET_HDR_LEN};
use crate::wire::{self, FragmentHeader, Packet, RelayHeader};
use arbitrary::Unstructured;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Every underlay datagram: [`Packet::parse`], and what it borrows lies
/// inside the datagram where the format says.
pub fn wire_packet(data: &[u8]) {
    let Ok(p) = Packet::parse(data) else { return };
    let inside = |s: &[u8]| {
        let (start, end) = (data.as_ptr() as usize, data.as_ptr() as usize + data.len());
        let p = s.as_ptr() as usize;
        assert!(p >= start && p + s.len() <= end, "a slice outside the datagram");
    };
    match p {
        Packet::HandshakeInit { noise, macs, .. } => {
            inside(noise);
            inside(macs.mac1_covered);
            let (covered, mac2) = macs.mac2.expect("initiations carry mac2");
            assert_eq!(covered.len() + wire::MAC_LEN, data.len());
            assert_eq!(macs.mac1_covered.len() + wire::INIT_MACS_LEN, data.len());
            inside(mac2);
        }
        Packet::HandshakeResponse { noise, macs, .. } => {
            inside(noise);
            assert_eq!(macs.mac1_covered.len() + wire::MAC_LEN, data.len());
        }
        Packet::HandshakeFinal { noise, .. } => inside(noise),
        Packet::Data { ciphertext, .. } => {
            inside(ciphertext);
            assert!(ciphertext.len() >= wire::TAG_LEN);
        }
        Packet::CookieReply { .. } => assert_eq!(data.len(), wire::COOKIE_REPLY_LEN),
    }
}

/// A frame bundle (what follows a `Frame` kind byte): read frame by frame,
/// and what was read writes back to the same bytes.
pub fn frame_bundle(data: &[u8]) {
    let mut again = Vec::with_capacity(data.len());
    let mut truncated = false;
    for f in wire::bundled_frames(data) {
        match f {
            Ok(f) => assert!(wire::push_bundled(&mut again, f)),
            Err(_) => truncated = true,
        }
    }
    if truncated {
        assert!(again.len() < data.len() && data.starts_with(&again));
    } else {
        assert_eq!(again, data);
    }
}

/// The relay header: parsed, and written back the same.
pub fn relay_header(data: &[u8]) {
    let Some((h, inner)) = RelayHeader::parse(data) else {
        assert!(data.len() < wire::RELAY_HEADER_LEN);
        return;
    };
    let mut b = [0u8; wire::RELAY_HEADER_LEN];
    h.write(&mut b);
    assert_eq!(&b[..], &data[..wire::RELAY_HEADER_LEN]);
    assert_eq!(inner.len() + wire::RELAY_HEADER_LEN, data.len());
}

/// Pieces of messages from a few peers, some relayed, with time passing:
/// reassembly never holds more than its bounds, and a message it returns
/// is exactly as long as its pieces said.
pub fn fragments(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (mut r, mut drops) = (Reassembly::default(), Drops::default());
    let mut now = Instant::now();
    let keys: Vec<PublicKey> = (0..4u8).map(|i| PublicKey([i; 32])).collect();
    for _ in 0..256 {
        if u.is_empty() {
            break;
        }
        let Ok(op) = u.int_in_range(0..=9u8) else { break };
        if op == 0 {
            let ms = u.int_in_range(0..=1500u16).unwrap_or(0);
            now += Duration::from_millis(u64::from(ms));
            r.expire(now, &mut drops);
            continue;
        }
        let src = keys[usize::from(u.int_in_range(0..=3u8).unwrap_or(0))];
        let direct = op < 7;
        let via = if direct { src } else { keys[usize::from(u.int_in_range(0..=3u8).unwrap_or(0))] };
        // Either raw bytes, or a well-formed header with a chosen body.
        let body = if op % 2 == 0 {
            u.arbitrary::<&[u8]>().unwrap_or_default().to_vec()
        } else {
            let h = FragmentHeader {
                id: u.int_in_range(0..=3u32).unwrap_or(0),
                total: u.int_in_range(1..=3000u32).unwrap_or(1),
                offset: u.int_in_range(0..=3000u32).unwrap_or(0),
                kind: u.int_in_range(0..=8u8).unwrap_or(0),
            };
            let len = usize::from(u.int_in_range(0..=1600u16).unwrap_or(0));
            let mut b = vec![0u8; wire::FRAGMENT_HEADER_LEN];
            h.write(&mut b);
            b.extend(std::iter::repeat_n(0xab, len));
            b
        };
        let claimed = FragmentHeader::parse(&body).map(|(h, _)| h.total as usize);
        if let Some((_, msg)) = r.add(now, src, via, &body, direct, &mut drops) {
            assert_eq!(Some(msg.len()), claimed, "a message of another length than its pieces said");
            r.recycle(msg);
        }
        assert!(r.len() <= crate::node::MAX_PARTIAL_TOTAL);
        assert!(r.bytes() <= crate::node::MAX_PARTIAL_TOTAL * crate::node::MAX_MESSAGE);
        for k in &keys {
            assert!(r.held_by(k) <= crate::node::MAX_FRAMES_PER_PEER + crate::node::MAX_CONTROL_PER_PEER);
        }
    }
}

/// A virtio-net header and frame as a peer could send them: parsed, and a
/// partial checksum completed only when its offsets fit. The field held
/// the pseudo-header sum (the part outside the frame), so once completed
/// the range from `csum_start` plus that sum verifies, when the field is
/// at an even offset as in every real header (an odd one makes a wrong
/// checksum the kernel drops, nothing worse).
pub fn vnet(data: &[u8]) {
    let Some((hdr, frame)) = data.split_first_chunk::<VNET_HDR_LEN>() else { return };
    let h = VnetHdr::parse(hdr);
    let _ = h.is_gso();
    let mut f = frame.to_vec();
    let (start, at) = (usize::from(h.csum_start), usize::from(h.csum_start) + usize::from(h.csum_offset));
    if vnet::complete_checksum(&mut f, h.csum_start, h.csum_offset) {
        assert!(start < f.len() && at + 2 <= f.len());
        if h.csum_offset.is_multiple_of(2) {
            let pseudo = u16::from_be_bytes([frame[at], frame[at + 1]]);
            let mut sum = u64::from(pseudo);
            for c in f[start..].chunks(2) {
                sum += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            assert!(sum == 0xffff || sum == 0, "the completed checksum does not verify: {sum:#x}");
        }
    } else {
        assert_eq!(f, frame, "a refused checksum changed the frame");
    }
}

/// TCP super-frames cut into segments ([`crate::segment`]), with the TCP
/// peek of retransmission detection: any virtio header and frame is either
/// refused or makes [`crate::segment::Segments::count`] segments within the
/// bound, each a TCP/IP frame that the peek reads back, their sequence
/// numbers contiguous and their payloads as long as the frame's; and the
/// segments, offered to a coalescer in an order the input picks, give
/// back every payload byte once.
pub fn segment(data: &[u8]) {
    use crate::segment::{tcp_data, Segments};
    let Some((hdr, frame)) = data.split_first_chunk::<VNET_HDR_LEN>() else { return };
    let h = VnetHdr::parse(hdr);
    let whole = tcp_data(frame);
    let max = 1514;
    let Ok(mut s) = Segments::new(&h, frame, max) else { return };
    let whole = whole.expect("a frame that segments is TCP/IP");
    let mut out = vec![0u8; max];
    let (mut segs, mut seq, mut len) = (Vec::new(), whole.seq, 0u32);
    while let Some(l) = s.next_into(&mut out) {
        assert!(l <= max, "a segment over the bound");
        let d = tcp_data(&out[..l]).expect("every segment is TCP/IP");
        assert!(d.seq == seq && d.len > 0, "segment {} does not follow", segs.len());
        assert_eq!((d.src, d.dst, d.src_port, d.dst_port), (whole.src, whole.dst, whole.src_port, whole.dst_port));
        seq = seq.wrapping_add(d.len);
        len += d.len;
        segs.push(out[..l].to_vec());
    }
    assert_eq!((segs.len(), len), (s.count(), whole.len));
    rejoin(segs, data, len as usize);
}

/// The segments `segs` (`len` payload bytes) offered to a receiver's
/// coalescer in an order the input picks (late ones as a datagram rebuilt
/// from parity is, and swapped pairs): every payload byte comes out once,
/// whatever joins.
fn rejoin(mut segs: Vec<Vec<u8>>, data: &[u8], len: usize) {
    use crate::coalesce::Coalescer;
    use crate::segment::tcp_data;
    let n = segs.len();
    if n == 0 {
        return;
    }
    // The input's bytes pick: segments moved to the end, pairs swapped.
    for (k, b) in data.iter().take(8).enumerate() {
        let i = usize::from(*b) % n;
        if k % 2 == 0 {
            let late = segs.remove(i);
            segs.push(late);
        } else {
            segs.swap(i, (i + 1) % n);
        }
    }
    let payload = |f: &[u8]| tcp_data(f).map_or(0, |d| d.len as usize);
    let mut c = Coalescer::default();
    let mut got = 0usize;
    for f in &segs {
        if c.offer(f) {
            continue;
        }
        c.flush(|_, b| got += payload(b));
        if !c.offer(f) {
            got += payload(f);
        }
    }
    c.flush(|_, b| got += payload(b));
    assert_eq!(got, len, "the coalescer lost or repeated payload");
}

/// Frames from local members (length-prefixed, several): classified, and
/// the membership messages among them applied to the group table, whose
/// host-level filters (what the host's gossip record carries) stay valid.
pub fn snoop(data: &[u8]) {
    let mut groups = LocalGroups::new();
    let now = Instant::now();
    let mut rest = data;
    let mut n = 0u8;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        n = n.wrapping_add(1);
        match snoop::classify(frame) {
            FrameClass::Control(Ok(msg)) => {
                groups.apply([2, 0, 0, 0, 0, n], &msg, now, Duration::from_secs(260));
            }
            FrameClass::Multicast { group, .. } => assert!(group.is_multicast()),
            FrameClass::Control(Err(_)) | FrameClass::Other => {}
        }
    }
    let filters = groups.filters();
    assert!(filters.len() <= crate::groups::MAX_GROUPS);
    for f in &filters {
        assert!(f.is_valid(), "an invalid filter in the host's record: {} sources", f.sources.len());
    }
}

/// The overlay DNS server: `data` as one UDP query, and as a TCP stream of
/// length-prefixed queries read the way the daemon reads them. A UDP reply
/// never exceeds the largest size offered.
pub fn dns(data: &[u8]) {
    let mut table = dns_table();
    for can_forward in [false, true] {
        match message::respond(data, Transport::Udp, &mut table, can_forward) {
            Outcome::Reply(r, _) => assert!(r.len() <= usize::from(message::EDNS_PAYLOAD), "{} bytes", r.len()),
            Outcome::Forward => assert!(can_forward),
            Outcome::Drop => {}
        }
    }
    let _ = message::servfail(data);
    let _ = message::answers_query(data, data);
    // TCP, as daemon/src/dns.rs serves a connection.
    let mut rest = data;
    while let Some((prefix, tail)) = rest.split_first_chunk::<2>() {
        let Some(n) = message::tcp_query_len(*prefix) else { return };
        let Some((query, next)) = tail.split_at_checked(n) else { return };
        rest = next;
        match message::respond(query, Transport::Tcp, &mut table, false) {
            Outcome::Reply(r, _) => {
                if let Some(framed) = message::tcp_frame(&r) {
                    assert_eq!(framed.len(), r.len() + 2);
                }
            }
            Outcome::Forward => unreachable!("no upstream"),
            Outcome::Drop => return,
        }
    }
}

fn dns_table() -> DnsTable {
    let row = |name: &str, addr: IpAddr| Visible {
        name: name.into(),
        addr,
        owner: None,
        origin: PublicKey([9; 32]),
        origin_name: "h9".into(),
        since: 1,
    };
    let mut rows = vec![
        row("aapl.orders.aex", IpAddr::V4(Ipv4Addr::new(239, 1, 0, 1))),
        row("aapl.orders.aex", IpAddr::V6(Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0, 1))),
        row("web", IpAddr::V4(Ipv4Addr::new(10, 32, 0, 5))),
    ];
    // A name with more addresses than one answer carries.
    rows.extend((0..100u8).map(|i| row("many", IpAddr::V4(Ipv4Addr::new(10, 40, 0, i)))));
    let mut t = DnsTable::new();
    t.replace(rows);
    t
}

/// IPAM: messages as they arrive (postcard), records and donations built
/// to be valid enough to reach the ring, and the address range parser;
/// every operation keeps the ring's spans within the range.
pub fn ipam(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let me = PublicKey([1; 32]);
    let others: Vec<PublicKey> = (2..6u8).map(|i| PublicKey([i; 32])).collect();
    let mut ring = Ring::new(Range::default());
    let mut alloc = Allocator::new();
    ring.seed(me, &[], 1);
    for _ in 0..64 {
        if u.is_empty() {
            break;
        }
        let Ok(op) = u.int_in_range(0..=7u8) else { break };
        let who = others[usize::from(u.int_in_range(0..=3u8).unwrap_or(0))];
        match op {
            0 => {
                let bytes = u.arbitrary::<&[u8]>().unwrap_or_default();
                if let Ok(m) = postcard::from_bytes::<IpamMessage>(bytes) {
                    apply_ipam(&mut ring, &alloc, me, who, &m);
                }
                let _ = postcard::from_bytes::<IpamRecord>(bytes).map(|r| r.is_valid());
                if let Ok(s) = std::str::from_utf8(bytes) {
                    if let Ok(r) = s.parse::<Range>() {
                        assert!((1..=30).contains(&r.prefix()));
                        let _ = (r.size(), r.addr(r.size() - 1), r.offset(r.base()));
                    }
                }
            }
            1 => {
                let rec = records::ipam_record(&mut u, &ring, &others);
                if rec.is_valid() {
                    ring.merge_record(who, &rec);
                }
            }
            2 => {
                let d = records::donation(&mut u, &ring, who, me);
                apply_ipam(&mut ring, &alloc, me, who, &IpamMessage::Donation(d));
            }
            3 => {
                let want = u.arbitrary().unwrap_or(1);
                apply_ipam(&mut ring, &alloc, me, who, &IpamMessage::Request { want });
            }
            4 => {
                let owner = format!("c{}/eth0", u.int_in_range(0..=20u8).unwrap_or(0));
                if let Ok(off) = alloc.allocate(&ring, me, &owner) {
                    assert!(off > 0 && off < ring.size() - 1, "network or broadcast address handed out");
                }
            }
            5 => {
                ring.forget(who);
                ring.yield_seed(!alloc.is_empty());
            }
            6 => {
                ring.take_over(me, who);
                ring.settle_conflicts(me);
            }
            _ => {
                let owner = format!("c{}/eth0", u.int_in_range(0..=20u8).unwrap_or(0));
                alloc.release(&owner);
            }
        }
        let size = ring.size();
        for s in ring.spans() {
            assert!(s.start < s.end && s.end <= size, "span {}..{} outside 0..{size}", s.start, s.end);
        }
        let _ = (alloc.free_count(&ring, me), alloc.outside(&ring, me), ring.usable(me));
    }
}

/// What the node does with an IPAM message from `from` (node/ipam.rs).
fn apply_ipam(ring: &mut Ring, alloc: &Allocator, me: PublicKey, from: PublicKey, m: &IpamMessage) {
    if !m.is_valid() {
        return;
    }
    match m {
        IpamMessage::Request { want } => {
            if let Some(d) = ring.donate(me, from, *want, alloc) {
                assert!(d.is_valid(), "a donation this host made is invalid: {d:?}");
            }
        }
        IpamMessage::Donation(d) if d.from == from && d.to == me => {
            let _ = ring.accept_donation(me, d);
        }
        IpamMessage::Donation(_) => {}
    }
}

#[cfg(test)]
mod tests;
