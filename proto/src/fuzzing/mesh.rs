//! A real [`Node`] (the victim) against a scripted attacker that holds the
//! network key and its own identity: it completes Noise handshakes with
//! the victim the way a peer would (with payloads of its choosing), then
//! seals whatever plaintext it likes on the session, so every decoder
//! behind decryption sees hostile input. Keys are fixed, so inputs replay;
//! only the Noise ephemeral keys differ between runs, which changes no
//! decision the victim makes.
//!
//! Targets: [`handshake`] (handshake messages and payloads), [`gossip`]
//! (structure-aware gossip messages: records signed with fixed test keys,
//! so the signature passes and the body checks run), [`node`] (a script
//! of datagrams, sealed payloads, local frames and time).

use super::records;
use crate::gossip::record::PeerRecord;
use crate::gossip::sync::Message;
use crate::hsmac::Mac1Key;
use crate::keys::{NetworkKey, PublicKey, StaticKeypair, KEY_LEN};
use crate::node::{Config, Io, Node, Timers};
use crate::session::{Handshake, Session};
use crate::vnet::VNET_HDR_LEN;
use crate::wire::{self, HandshakeSecond, Kind, Packet, PacketType, Pattern, RelayHeader, MAC_LEN};
use arbitrary::Unstructured;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The network key every party of the harness holds.
pub const NETWORK_KEY: [u8; KEY_LEN] = [0x5a; KEY_LEN];
/// The victim's wall clock at start (ms).
const START_MS: u64 = 1_700_000_000_000;
/// Largest datagram or payload the harness sends.
const MAX_INPUT: usize = 60_000;

/// The victim's identity.
pub fn victim_identity() -> StaticKeypair {
    StaticKeypair::from_seed([1; KEY_LEN])
}

/// The attacker's identity (a member of the network).
pub fn attacker_identity() -> StaticKeypair {
    StaticKeypair::from_seed([2; KEY_LEN])
}

/// Hosts the attacker gossips about (their records signed by their own
/// keys, as any member forwards other hosts' records).
pub fn third_identities() -> [StaticKeypair; 2] {
    [StaticKeypair::from_seed([3; KEY_LEN]), StaticKeypair::from_seed([4; KEY_LEN])]
}

const VICTIM: ([u8; 4], u16) = ([192, 0, 2, 1], 6783);
const ATTACKER: ([u8; 4], u16) = ([192, 0, 2, 2], 6783);
const STRANGER: ([u8; 4], u16) = ([198, 51, 100, 7], 40000);

/// The payload a well-behaved peer sends.
pub fn good_hello(timestamp: u64) -> Vec<u8> {
    let h =
        crate::node::HandshakePayload { timestamp, name: "attacker".into(), observed: Some(VICTIM.into()), cert: None };
    postcard::to_allocvec(&h).expect("serializes")
}

/// What the victim emits, kept until the harness looks.
#[derive(Default)]
struct Sink {
    sent: Vec<(SocketAddr, Vec<u8>)>,
    delivered: usize,
}

impl Io for Sink {
    fn send(&mut self, to: SocketAddr, datagram: &[u8]) {
        assert!(datagram.len() <= wire::MAX_DATAGRAM, "a datagram of {} bytes", datagram.len());
        if self.sent.len() < 64 {
            self.sent.push((to, datagram.to_vec()));
        }
    }
    fn deliver(&mut self, frame: &[u8]) {
        assert!(frame.len() >= wire::ETH_HEADER_LEN);
        self.delivered += 1;
    }
    fn deliver_offloaded(&mut self, _hdr: &[u8; VNET_HDR_LEN], frame: &[u8]) {
        assert!(frame.len() >= wire::ETH_HEADER_LEN);
        self.delivered += 1;
    }
}

/// The victim node and the attacker's side of its session.
pub struct Mesh {
    pub node: Node,
    pub now: Instant,
    key: NetworkKey,
    attacker: StaticKeypair,
    session: Option<Session>,
    out: Sink,
    buf: Vec<u8>,
}

impl Default for Mesh {
    fn default() -> Self {
        Self::new()
    }
}

impl Mesh {
    /// A fresh victim that knows no one.
    pub fn new() -> Self {
        let now = Instant::now();
        let cfg = Config {
            name: "victim".into(),
            keypair: victim_identity(),
            network_key: NetworkKey(NETWORK_KEY),
            overlay_mtu: 1400,
            timers: Timers { forget_after: Duration::from_secs(60), ..Timers::default() },
            unix_ms: START_MS,
            seed: 1,
            ipam_range: crate::ipam::Range::default(),
            trust: None,
        };
        Mesh {
            node: Node::new(cfg, now),
            now,
            key: NetworkKey(NETWORK_KEY),
            attacker: attacker_identity(),
            session: None,
            out: Sink::default(),
            buf: vec![0u8; wire::MAX_DATAGRAM + 64],
        }
    }

    /// Whether the attacker holds a session the victim accepted.
    pub fn connected(&self) -> bool {
        self.session.is_some()
    }

    /// A datagram to the victim from `from`.
    pub fn datagram(&mut self, from: SocketAddr, d: &[u8]) {
        self.out.sent.clear();
        self.node.handle_datagram(self.now, from, &d[..d.len().min(MAX_INPUT)], &mut self.out);
    }

    /// An IK initiation from the attacker carrying `payload`, with a valid
    /// mac1; when the victim answers, the attacker finishes the handshake
    /// and confirms the session with a ping. Returns whether it answered.
    pub fn initiate_ik(&mut self, payload: &[u8]) -> bool {
        let victim = victim_identity().public;
        let Ok(mut hs) = Handshake::initiator(Pattern::Ik, &self.attacker, &self.key, Some(&victim), self.now) else {
            return false;
        };
        let payload = &payload[..payload.len().min(MAX_INPUT)];
        let init = Pattern::Ik;
        let n = wire::write_handshake_header(
            &mut self.buf,
            PacketType::HandshakeInit,
            77,
            HandshakeSecond::Init { pattern: init, hint: 0 },
        );
        let Ok(m) = hs.write(payload, &mut self.buf[n..]) else { return false };
        let d = self.with_macs(n + m, Some(&victim));
        self.datagram(ATTACKER.into(), &d);
        let Some((sender, noise)) = self.response_to(77) else { return false };
        let mut p = vec![0u8; noise.len()];
        if hs.read(&noise, &mut p).is_err() {
            return false;
        }
        let Ok(s) = hs.into_session(77, sender, self.now) else { return false };
        self.session = Some(s);
        let mut ping = vec![Kind::Ping as u8];
        ping.extend_from_slice(&0u64.to_be_bytes());
        self.sealed(&ping);
        true
    }

    /// An initiation of `pattern` whose Noise message is `noise` as given
    /// (garbage, most likely), with valid MACs: it gets past mac1 into
    /// Noise.
    pub fn raw_initiation(&mut self, pattern: Pattern, noise: &[u8]) {
        let n = wire::write_handshake_header(
            &mut self.buf,
            PacketType::HandshakeInit,
            78,
            HandshakeSecond::Init { pattern, hint: 0 },
        );
        let noise = &noise[..noise.len().min(MAX_INPUT)];
        self.buf[n..n + noise.len()].copy_from_slice(noise);
        let victim = victim_identity().public;
        let d = self.with_macs(n + noise.len(), (pattern == Pattern::Ik).then_some(&victim));
        self.datagram(ATTACKER.into(), &d);
    }

    /// The victim dials the attacker (XX, as to a `--peer` address); the
    /// attacker answers with `noise` as its Noise message when given,
    /// else with a real one carrying `payload`.
    pub fn answer_xx(&mut self, payload: &[u8], noise: Option<&[u8]>) {
        self.node.add_bootstrap(ATTACKER.into(), self.now);
        self.out.sent.clear();
        self.node.handle_timeout(self.now, &mut self.out);
        let init = self.out.sent.iter().find_map(|(to, d)| match Packet::parse(d) {
            Ok(Packet::HandshakeInit { sender, noise, .. }) if *to == SocketAddr::from(ATTACKER) => {
                Some((sender, noise.to_vec()))
            }
            _ => None,
        });
        let Some((victim_index, their)) = init else { return };
        let n = wire::write_handshake_header(
            &mut self.buf,
            PacketType::HandshakeResponse,
            88,
            HandshakeSecond::Receiver(victim_index),
        );
        let m = match noise {
            Some(noise) => {
                let noise = &noise[..noise.len().min(MAX_INPUT)];
                self.buf[n..n + noise.len()].copy_from_slice(noise);
                noise.len()
            }
            None => {
                let Ok(mut hs) = Handshake::responder(Pattern::Xx, &self.attacker, &self.key, self.now) else { return };
                let mut scratch = vec![0u8; their.len()];
                if hs.read(&their, &mut scratch).is_err() {
                    return;
                }
                let payload = &payload[..payload.len().min(MAX_INPUT)];
                let Ok(m) = hs.write(payload, &mut self.buf[n..]) else { return };
                m
            }
        };
        let len = n + m;
        let mac1 = Mac1Key::new(&self.key, None).mac(&self.buf[..len]);
        self.buf[len..len + MAC_LEN].copy_from_slice(&mac1);
        let d = self.buf[..len + MAC_LEN].to_vec();
        self.datagram(ATTACKER.into(), &d);
    }

    /// Appends mac1 (keyed for `receiver`, or XX) and a zero mac2 to the
    /// message in `buf[..len]`; returns the datagram.
    fn with_macs(&mut self, len: usize, receiver: Option<&PublicKey>) -> Vec<u8> {
        let mac1 = Mac1Key::new(&self.key, receiver).mac(&self.buf[..len]);
        self.buf[len..len + MAC_LEN].copy_from_slice(&mac1);
        self.buf[len + MAC_LEN..len + 2 * MAC_LEN].fill(0);
        self.buf[..len + 2 * MAC_LEN].to_vec()
    }

    /// The victim's response to the attacker's initiation `index`.
    fn response_to(&self, index: u32) -> Option<(u32, Vec<u8>)> {
        self.out.sent.iter().find_map(|(to, d)| match Packet::parse(d) {
            Ok(Packet::HandshakeResponse { sender, receiver, noise, .. })
                if receiver == index && *to == SocketAddr::from(ATTACKER) =>
            {
                Some((sender, noise.to_vec()))
            }
            _ => None,
        })
    }

    /// Connects the attacker with a well-behaved handshake.
    pub fn connect(&mut self) -> bool {
        self.initiate_ik(&good_hello(START_MS))
    }

    /// `plaintext` sealed on the attacker's session, from its address.
    pub fn sealed(&mut self, plaintext: &[u8]) {
        let plaintext = &plaintext[..plaintext.len().min(MAX_INPUT)];
        let Some(s) = self.session.as_mut() else { return };
        let Ok(n) = s.seal(plaintext, &mut self.buf) else { return };
        let d = self.buf[..n].to_vec();
        self.datagram(ATTACKER.into(), &d);
    }

    /// A frame from a local member, on the TAP (with a virtio-net header
    /// when offloaded).
    pub fn local_frame(&mut self, frame: &[u8], vnet: Option<&[u8; VNET_HDR_LEN]>) {
        let frame = &frame[..frame.len().min(MAX_INPUT)];
        self.out.sent.clear();
        match vnet {
            Some(h) => self.node.handle_offloaded_frame(self.now, h, frame, &mut self.out),
            None => self.node.handle_frame(self.now, frame, &mut self.out),
        }
        self.node.flush(&mut self.out);
    }

    /// Moves the clock and runs the victim's timers.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.out.sent.clear();
        self.node.handle_timeout(self.now, &mut self.out);
    }

    /// Everything the daemon and the API read from the node.
    pub fn snapshot(&mut self) {
        let now = self.now;
        while self.node.poll_event().is_some() {}
        let _ = self.node.peer_infos(now);
        let _ = self.node.pending();
        let _ = self.node.group_infos(now);
        let _ = self.node.ipam_status();
        let _ = self.node.dns_view();
        let _ = self.node.known_peers();
        let _ = self.node.announced_overlay_addrs();
        let _ = self.node.ipam_allocate(now, "fuzz/eth0", &mut self.out);
    }
}

/// Handshakes: the victim as responder to an IK initiation whose payload
/// (first byte even) or Noise message (odd, XX or IK by the next bit) is
/// the input, or as initiator of an XX handshake whose response carries
/// the input as payload or as Noise message; then whatever state it made
/// is used.
pub fn handshake(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut m = Mesh::new();
    match mode % 5 {
        0 => {
            m.initiate_ik(rest);
        }
        1 => m.raw_initiation(Pattern::Ik, rest),
        2 => m.raw_initiation(Pattern::Xx, rest),
        3 => m.answer_xx(rest, None),
        _ => m.answer_xx(&[], Some(rest)),
    }
    m.advance(Duration::from_millis(100));
    m.snapshot();
}

/// Gossip from a connected peer, structure-aware: records of the attacker
/// and of two other hosts, each built from the input, encoded, optionally
/// mutated byte-wise, then signed by its author (so the signature holds
/// and the body's checks run), sent with summaries, bucket lists, digests
/// and wants; then the timers run (IPAM, routes, groups, DNS follow the
/// records) and everything is read back.
pub fn gossip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut m = Mesh::new();
    if !m.connect() {
        panic!("the attacker could not connect");
    }
    let thirds = third_identities();
    let attacker = m.attacker.clone();
    let authors = [&attacker, &thirds[0], &thirds[1]];
    let known: Vec<PublicKey> =
        [victim_identity().public, authors[0].public, authors[1].public, authors[2].public].into();
    let ring = crate::ipam::Ring::new(crate::ipam::Range::default());
    for _ in 0..8 {
        if u.is_empty() {
            break;
        }
        let msg = match u.int_in_range(0..=5u8).unwrap_or(0) {
            0..=2 => {
                let n = u.int_in_range(1..=3usize).unwrap_or(1);
                let records = (0..n).map(|_| signed_record(&mut u, &authors, &ring, &known)).collect();
                Message::Records(records)
            }
            3 => Message::Summary(u.arbitrary().unwrap_or(0)),
            4 => {
                let mask = u.arbitrary().unwrap_or(u64::MAX);
                let entries = (0..u.int_in_range(0..=6usize).unwrap_or(0))
                    .map(|_| (known[u.choose_index(known.len()).unwrap_or(0)], u.arbitrary().unwrap_or(0)))
                    .collect();
                Message::Digest { mask, entries }
            }
            _ => {
                if u.arbitrary().unwrap_or(false) {
                    Message::Buckets((0..u.int_in_range(60..=66usize).unwrap_or(64)).map(|i| i as u64).collect())
                } else {
                    Message::Want(known.clone())
                }
            }
        };
        let mut plain = vec![Kind::Gossip as u8];
        plain.extend_from_slice(&msg.encode());
        m.sealed(&plain);
        if u.ratio(1, 3).unwrap_or(false) {
            m.advance(Duration::from_millis(150));
        }
    }
    m.advance(Duration::from_secs(3));
    m.snapshot();
}

/// One signed record: built by [`records::peer_record`], encoded, maybe
/// mutated, and signed by its author.
fn signed_record(
    u: &mut Unstructured<'_>,
    authors: &[&StaticKeypair],
    ring: &crate::ipam::Ring,
    known: &[PublicKey],
) -> Vec<u8> {
    let author = authors[u.choose_index(authors.len()).unwrap_or(0)];
    let version = START_MS + u64::from(u.arbitrary::<u16>().unwrap_or(1));
    let key = if u.ratio(1, 16).unwrap_or(false) { known[0] } else { author.public };
    let record: PeerRecord = records::peer_record(u, key, version, ring, known);
    let mut body = postcard::to_allocvec(&record).expect("records serialize");
    // A few byte edits: encodings no honest host produces, still signed.
    for _ in 0..u.int_in_range(0..=3u8).unwrap_or(0) {
        let (at, b) = (u.arbitrary::<u16>().unwrap_or(0) as usize, u.arbitrary::<u8>().unwrap_or(0));
        let len = body.len().max(1);
        if let Some(x) = body.get_mut(at % len) {
            *x = b;
        }
    }
    sign_body(author, &body)
}

/// Signs an encoded record body as [`crate::gossip::SignedRecord::sign`]
/// does (the `signing_matches_the_record_format` test checks it).
pub fn sign_body(author: &StaticKeypair, body: &[u8]) -> Vec<u8> {
    let mut msg = b"weavers record v2\0".to_vec();
    msg.extend_from_slice(body);
    let sig = author.sign(&msg);
    let mut out = author.signer().0.to_vec();
    out.extend_from_slice(&sig);
    out.extend_from_slice(body);
    out
}

/// The whole node: a script of operations read from the input. Raw
/// datagrams from the attacker's and a stranger's address, payloads sealed
/// on the attacker's session (any bytes, or a chosen kind with any body,
/// or relayed), frames from local members (plain or offloaded), and time.
pub fn node(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut m = Mesh::new();
    if u.arbitrary::<bool>().unwrap_or(true) && !m.connect() {
        panic!("the attacker could not connect");
    }
    let victim = victim_identity().public.short_id();
    let attacker = attacker_identity().public.short_id();
    for _ in 0..64 {
        if u.is_empty() {
            break;
        }
        let op = u.int_in_range(0..=8u8).unwrap_or(0);
        let bytes: &[u8] = u.arbitrary().unwrap_or_default();
        match op {
            0 => m.datagram(ATTACKER.into(), bytes),
            1 => m.datagram(STRANGER.into(), bytes),
            2 => m.sealed(bytes),
            3 => {
                let kind = u.int_in_range(1..=10u8).unwrap_or(1);
                let mut p = vec![kind];
                p.extend_from_slice(bytes);
                m.sealed(&p);
            }
            4 => {
                let ttl = u.int_in_range(0..=9u8).unwrap_or(1);
                let (dst, src) = match u.int_in_range(0..=2u8).unwrap_or(0) {
                    0 => (victim, attacker),
                    1 => (attacker, victim),
                    _ => (crate::keys::ShortId(u.arbitrary().unwrap_or(0)), attacker),
                };
                let mut p = vec![Kind::Relay as u8; 1 + wire::RELAY_HEADER_LEN];
                let (epoch, counter) = (u.arbitrary().unwrap_or(0), u.arbitrary().unwrap_or(0));
                RelayHeader { ttl, dst, src, epoch, counter }.write(&mut p[1..]);
                p.push(u.int_in_range(1..=8u8).unwrap_or(1));
                p.extend_from_slice(bytes);
                m.sealed(&p);
            }
            5 => m.local_frame(bytes, None),
            6 => {
                let hdr: [u8; VNET_HDR_LEN] = u.arbitrary().unwrap_or_default();
                m.local_frame(bytes, Some(&hdr));
            }
            7 => {
                let ms = u.int_in_range(0..=5000u16).unwrap_or(100);
                m.advance(Duration::from_millis(u64::from(ms)));
            }
            _ => m.snapshot(),
        }
    }
    m.advance(Duration::from_secs(2));
    m.snapshot();
}
