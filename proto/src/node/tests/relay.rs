//! Relayed frames sealed end to end: a relay passes them on without
//! reading them, the destination takes them only from their real source,
//! once, across the source's restarts too.

use super::*;
use crate::wire::{Kind, RelayHeader, RELAY_HEADER_LEN, TAG_LEN};

const A: usize = 0;
const R: usize = 1;
const B: usize = 2;
const M: usize = 3;

/// Four hosts where A reaches only R: A's frames for B (and M) go
/// through R. M is a direct peer of B and R.
fn relayed_mesh() -> Net {
    let mut net = Net::new(4);
    net.blocked.insert((A, B));
    net.blocked.insert((A, M));
    net.bootstrap(A, R);
    net.bootstrap(B, R);
    net.bootstrap(M, R);
    net.run(Duration::from_secs(6));
    assert_eq!(net.state(A, B), Some(PeerState::Relayed));
    assert_eq!(net.state(B, A), Some(PeerState::Relayed));
    assert_eq!(net.state(M, B), Some(PeerState::Connected));
    // A learns B's MAC, so its frames for B are unicast through R only.
    net.send_frame(B, BROADCAST, 1);
    assert_eq!(net.markers(A), vec![1]);
    net
}

/// What a frame from A's member to B's carries after its headers.
const SECRET: &[u8] = b"only B may read this";

/// A frame from node i's member to node j's, with `marker` and [`SECRET`].
fn secret_frame(i: usize, j: usize, marker: u32) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[0..6].copy_from_slice(&mac_of(j));
    f[6..12].copy_from_slice(&mac_of(i));
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f.extend_from_slice(&marker.to_be_bytes());
    f.extend_from_slice(SECRET);
    f
}

/// Whether `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The relay payload R opened last (its hop plaintext), `len` bytes.
fn opened_at_r(net: &mut Net, len: usize) -> Vec<u8> {
    let p = net.node(R).rx[..len].to_vec();
    assert_eq!(p[0], Kind::Relay as u8, "the last payload R opened is the relayed one");
    let (hdr, _) = RelayHeader::parse(&p[1..]).unwrap();
    assert_eq!((hdr.src, hdr.dst), (net.key(A).short_id(), net.key(B).short_id()));
    p
}

/// The length of the relay payload that carries one frame of `n` bytes.
fn relayed_len(n: usize) -> usize {
    1 + RELAY_HEADER_LEN + 1 + 2 + n + TAG_LEN
}

#[test]
fn a_relayed_frame_arrives_intact_and_the_relay_sees_only_ciphertext() {
    let mut net = relayed_mesh();
    let f = secret_frame(A, B, 7);
    net.inject(A, &f);
    assert_eq!(net.delivered[B].last(), Some(&f), "B got the frame whole");
    assert_eq!(net.markers(R), vec![1], "R relays, it does not deliver (1 was B's broadcast)");
    // What R had in the clear after opening its hop session with A, and
    // what it sealed for B: the header, not the frame.
    let opened = opened_at_r(&mut net, relayed_len(f.len()));
    assert!(!contains(&opened, SECRET) && !contains(&opened, &f[..12]), "R read the frame");
    let r = net.node(R);
    assert!(!contains(&r.rx, SECRET) && !contains(&r.plain, SECRET));

    // The same for a super-frame that travels in relayed pieces.
    let hdr = [1u8, 1, 0x36, 0, 0x14, 0x05, 0x22, 0, 0x10, 0]; // TCPv4, segments of 1300
    let sf = super_frame(A, B);
    let now = net.now;
    let mut out = Out::default();
    net.node(A).handle_offloaded_frame(now, &hdr, &sf, &mut out);
    assert!(out.sent.len() > 40 && out.sent.iter().all(|(_, d)| d.len() + 28 <= 1500), "pieces fit the underlay");
    net.collect(A, out);
    net.settle();
    assert_eq!(net.offloaded[B], vec![(hdr, sf.clone())], "B got it whole");
    let r = net.node(R);
    let chunk = &sf[30_000..30_064];
    assert!(!contains(&r.rx, chunk) && !contains(&r.plain, chunk), "R read a piece");
    assert_eq!(net.node(B).drops().get(DropReason::RelayForged), 0);
}

/// A relay payload from node i to node `dst`, sealed end to end by i with
/// its own keys, its header claiming `src` (i itself when honest).
pub(super) fn sealed_by(net: &mut Net, i: usize, src: usize, dst: usize, inner: &[u8]) -> Vec<u8> {
    let (to, now) = (net.key(dst), net.now);
    let mut hdr = RelayHeader { ttl: 4, dst: to.short_id(), src: net.key(src).short_id(), epoch: 0, counter: 0 };
    let mut body = inner.to_vec();
    let tag = net.node(i).relay_keys.seal(now, &to, &mut hdr, &mut body).unwrap();
    let mut p = vec![Kind::Relay as u8; 1 + RELAY_HEADER_LEN];
    hdr.write(&mut p[1..]);
    p.extend_from_slice(&body);
    p.extend_from_slice(&tag);
    p
}

/// A bundle of one frame, as a relayed payload's inner payload.
fn bundle(frame: &[u8]) -> Vec<u8> {
    let mut b = vec![Kind::Frame as u8];
    assert!(crate::wire::push_bundled(&mut b, frame));
    b
}

#[test]
fn a_peer_cannot_inject_frames_in_another_hosts_name() {
    let mut net = relayed_mesh();
    let forged = |net: &mut Net| net.node(B).drops().get(DropReason::RelayForged);
    let a_epoch = net.node(A).relay_keys.epoch();
    // M, a direct peer of B, wraps frames claiming to come from A: sealed
    // with the keys M has, ...
    let inner = bundle(&secret_frame(A, B, 66));
    let p = sealed_by(&mut net, M, A, B, &inner);
    send_plain(&mut net, M, B, &p);
    // ... in the clear as before end-to-end sealing, with a zero tag, ...
    let mut hdr = [0u8; RELAY_HEADER_LEN];
    RelayHeader { ttl: 4, dst: net.key(B).short_id(), src: net.key(A).short_id(), epoch: a_epoch, counter: 1 << 20 }
        .write(&mut hdr);
    let mut clear = vec![Kind::Relay as u8];
    clear.extend_from_slice(&hdr);
    clear.extend_from_slice(&inner);
    clear.extend_from_slice(&[0; TAG_LEN]);
    send_plain(&mut net, M, B, &clear);
    // ... and too short to carry a tag.
    clear.truncate(1 + RELAY_HEADER_LEN + TAG_LEN - 1);
    send_plain(&mut net, M, B, &clear);
    assert_eq!(net.markers(B), Vec::<u32>::new(), "none delivered");
    assert_eq!(forged(&mut net), 3, "each refused and counted");
    // A's own relayed frames still arrive: the forgeries moved no window.
    for marker in [70, 71] {
        net.inject(A, &secret_frame(A, B, marker));
    }
    assert_eq!(net.markers(B), vec![70, 71]);
    // And M's honest relayed payloads (claiming M) are B's to take.
    let own = sealed_by(&mut net, M, M, B, &bundle(&secret_frame(M, B, 72)));
    send_plain(&mut net, M, B, &own);
    assert_eq!(net.markers(B), vec![70, 71, 72]);
    assert_eq!(forged(&mut net), 3);
    // The reason reaches the daemon's list of drops by its name.
    assert_eq!(DropReason::RelayForged.as_str(), "relay_forged");
    assert!(net.node(B).drops().iter().any(|(r, n)| r == DropReason::RelayForged && n == 3));
}

#[test]
fn a_relay_replaying_a_relayed_payload_is_refused() {
    let mut net = relayed_mesh();
    let f = secret_frame(A, B, 8);
    net.inject(A, &f);
    assert_eq!(net.markers(B), vec![8]);
    let captured = opened_at_r(&mut net, relayed_len(f.len()));
    // R sends it to B again, on a fresh packet of its hop session (which
    // that session's own window cannot catch), twice.
    let replays = net.node(B).drops().get(DropReason::Replay);
    send_plain(&mut net, R, B, &captured);
    send_plain(&mut net, R, B, &captured);
    assert_eq!(net.markers(B), vec![8], "delivered once");
    assert_eq!(net.node(B).drops().get(DropReason::Replay), replays + 2);
    assert_eq!(net.node(B).drops().get(DropReason::RelayForged), 0, "a replay, not a forgery");
    net.inject(A, &secret_frame(A, B, 9));
    assert_eq!(net.markers(B), vec![8, 9]);
}

#[test]
fn a_restarted_source_gets_through_and_its_old_packets_do_not() {
    let mut net = relayed_mesh();
    let f = secret_frame(A, B, 10);
    net.inject(A, &f);
    let old = opened_at_r(&mut net, relayed_len(f.len()));
    let old_epoch = net.node(A).relay_keys.epoch();
    // A restarts with its key, a minute later by its clock (the same
    // seed: only the start time tells the epochs apart).
    let mut cfg = config(A, b"pw");
    cfg.keypair = net.nodes[A].take().unwrap().cfg.keypair.clone();
    cfg.unix_ms += 60_000;
    net.run(Duration::from_secs(1));
    net.nodes[A] = Some(Node::new(cfg, net.now));
    net.bootstrap(A, R);
    net.run(Duration::from_secs(6));
    assert_eq!(net.state(A, B), Some(PeerState::Relayed));
    assert!(net.node(A).relay_keys.epoch() > old_epoch);
    // Its counters start again, under the new epoch: B takes its frames.
    net.send_frame(B, BROADCAST, 11);
    net.inject(A, &secret_frame(A, B, 12));
    assert_eq!(net.markers(B), vec![10, 12]);
    // A packet of the first run, replayed by R, is refused.
    let replays = net.node(B).drops().get(DropReason::Replay);
    send_plain(&mut net, R, B, &old);
    assert_eq!(net.markers(B), vec![10, 12]);
    assert_eq!(net.node(B).drops().get(DropReason::Replay), replays + 1);
    assert_eq!(net.node(B).drops().get(DropReason::RelayForged), 0);
}
