//! Replays every committed input of the fuzz targets whose bodies live in
//! this crate (`weavers_proto::fuzzing`): the seed corpus
//! (`fuzz/corpus/TARGET`) and every crash found and fixed
//! (`fuzz/regressions/TARGET`), through the same functions the targets
//! call, so CI runs them on stable. The `write_seeds` test (ignored; run
//! by hand) writes the seeds of the targets that need built inputs.

use std::path::{Path, PathBuf};
use weavers_proto::fuzzing::{self, mesh};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Runs `f` on every file of `corpus/TARGET` and `regressions/TARGET`;
/// the name of each is printed first, so a failure names its input.
fn replay(target: &str, f: fn(&[u8])) {
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else { continue };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
        files.sort();
        for p in files {
            eprintln!("replaying {}", p.display());
            f(&std::fs::read(&p).expect("readable"));
            n += 1;
        }
    }
    assert!(n > 0, "no committed inputs for {target}");
}

#[test]
fn wire_packet() {
    replay("wire_packet", fuzzing::wire_packet);
}

#[test]
fn frame_bundle() {
    replay("frame_bundle", fuzzing::frame_bundle);
}

#[test]
fn fragments() {
    replay("fragments", fuzzing::fragments);
}

#[test]
fn relay_header() {
    replay("relay_header", fuzzing::relay_header);
}

#[test]
fn vnet() {
    replay("vnet", fuzzing::vnet);
}

#[test]
fn segment() {
    replay("segment", fuzzing::segment);
}

#[test]
fn snoop() {
    replay("snoop", fuzzing::snoop);
}

#[test]
fn dns() {
    replay("dns", fuzzing::dns);
}

#[test]
fn ipam() {
    replay("ipam", fuzzing::ipam);
}

#[test]
fn handshake() {
    replay("handshake", mesh::handshake);
}

#[test]
fn gossip() {
    replay("gossip", mesh::gossip);
}

#[test]
fn node() {
    replay("node", mesh::node);
}

/// Writes seeds for the targets whose inputs are easiest to start from
/// real messages. `cargo test -p weavers-proto --test fuzz_regressions --
/// --ignored write_seeds`.
#[test]
#[ignore]
fn write_seeds() {
    use weavers_proto::dns::message::{build_query, RecordType};
    use weavers_proto::keys::ShortId;
    use weavers_proto::wire::{self, FragmentHeader, HandshakeSecond, Kind, PacketType, Pattern, RelayHeader};

    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    };
    // Underlay datagrams of every type.
    let mut b = vec![0u8; 200];
    let n = wire::write_handshake_header(
        &mut b,
        PacketType::HandshakeInit,
        7,
        HandshakeSecond::Init { pattern: Pattern::Ik, hint: 3 },
    );
    write("wire_packet", "init", &b[..n + 48 + 32]);
    let n = wire::write_handshake_header(&mut b, PacketType::HandshakeResponse, 7, HandshakeSecond::Receiver(9));
    write("wire_packet", "response", &b[..n + 48 + 16]);
    let n = wire::write_handshake_header(&mut b, PacketType::HandshakeFinal, 7, HandshakeSecond::Receiver(9));
    write("wire_packet", "final", &b[..n + 64]);
    wire::write_data_header(&mut b, 5, 1);
    write("wire_packet", "data", &b[..wire::DATA_HEADER_LEN + 40]);
    let n = wire::write_cookie_reply(&mut b, 11, &[1; 24], &[2; 32]);
    write("wire_packet", "cookie", &b[..n]);
    // Bundles, relay headers, fragment headers.
    let mut bundle = Vec::new();
    for f in [&[0xffu8; 60][..], &[1; 14], &[]] {
        wire::push_bundled(&mut bundle, f);
    }
    write("frame_bundle", "three", &bundle);
    let mut r = vec![0u8; wire::RELAY_HEADER_LEN];
    RelayHeader { ttl: 8, dst: ShortId(1), src: ShortId(2), epoch: 3, counter: 4 }.write(&mut r);
    r.push(Kind::Frame as u8);
    r.extend_from_slice(&bundle);
    write("relay_header", "frame", &r);
    let mut f = vec![0u8; wire::FRAGMENT_HEADER_LEN];
    FragmentHeader { id: 1, total: 600, offset: 0, kind: Kind::Gossip as u8 }.write(&mut f);
    f.extend_from_slice(&[7; 300]);
    write("fragments", "raw", &[&[2u8, 0, 0][..], &[0xff, 1, 0, 0], &f].concat());
    write("fragments", "built", &[1, 0, 0, 1, 2, 0, 5, 1, 44, 3, 1, 0, 9, 0, 0, 1, 2, 0, 5, 1, 44, 1, 0, 1]);
    // A partial checksum to complete: IPv4 + UDP from byte 34, field at +6.
    let mut v = vec![1u8, 0, 0, 0, 0, 0, 34, 0, 6, 0];
    v.extend_from_slice(&[0x01, 0, 0x5e, 1, 0, 1, 2, 0, 0, 0, 0, 1, 8, 0]);
    v.extend_from_slice(&[0x45, 0, 0, 48, 0, 0, 0, 0, 1, 17, 0, 0, 10, 32, 0, 5, 239, 1, 0, 1]);
    v.extend_from_slice(&[0x30, 0x39, 0x13, 0x88, 0, 28, 0x12, 0x34]);
    v.extend(0..20u8);
    write("vnet", "udp_csum", &v);
    // DNS: questions of every kind the server answers, and as a TCP stream.
    let queries = [
        build_query(1, "aapl.orders.aex.weavers.local.", RecordType::A, None),
        build_query(2, "many.weavers.local.", RecordType::A, Some(1232)),
        build_query(3, "aapl.orders.aex.weavers.local.", RecordType::AAAA, Some(4096)),
        build_query(4, "weavers.local.", RecordType::SOA, None),
        build_query(5, "nothing.weavers.local.", RecordType::A, None),
        build_query(6, "example.com.", RecordType::A, None),
    ];
    let mut tcp = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        write("dns", &format!("q{i}"), q);
        tcp.extend_from_slice(&(q.len() as u16).to_be_bytes());
        tcp.extend_from_slice(q);
    }
    write("dns", "tcp_stream", &tcp);
    // Handshakes: a good hello (IK payload; XX response payload).
    let hello = mesh::good_hello(1_700_000_000_000);
    write("handshake", "ik_hello", &[&[0u8][..], &hello].concat());
    write("handshake", "xx_hello", &[&[3u8][..], &hello].concat());
    write("handshake", "ik_noise", &[&[1u8][..], &[0x42; 96]].concat());
    // The structured targets read any bytes; a few to start from.
    for t in ["gossip", "node", "ipam"] {
        write(t, "zeros", &[0; 64]);
        write(t, "ramp", &(0..=255u8).collect::<Vec<_>>());
        write(t, "ones", &[0xff; 64]);
    }
    let mut node = vec![1u8, 3, 2];
    node.extend_from_slice(&[1, 0, 0, 0, 10]);
    write("node", "ping", &node);
}

/// Found by the `node` target: an empty DATA payload was read by the kind
/// byte at the start of the receive buffer, which decryption leaves as the
/// tag's first byte: 1 time in 256 it said "parity" (once parity had
/// arrived, so that repairs were on) and the body was sliced from 1 to 0.
#[test]
fn an_empty_payload_is_never_taken_for_a_parity() {
    let mut m = mesh::Mesh::new();
    assert!(m.connect());
    // Kind 11 (parity), first counter 0, one member of 1 byte, its XOR.
    let parity = [11u8, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 7];
    m.sealed(&parity);
    m.sealed(&parity);
    // Each tag's first byte is 11 with odds 1/256: 4,000 miss it all with
    // odds of about 1 in 6 million.
    for _ in 0..4000 {
        m.sealed(&[]);
    }
}
