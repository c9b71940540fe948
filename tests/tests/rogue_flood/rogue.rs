//! The rogue: a password holder with its own identity, speaking the wire
//! format through weavers-proto. It completes an IK handshake with every
//! victim as any member would (so what it sends next is decrypted and
//! reaches the deep checks), answers their pings (so they keep its
//! sessions), and then sends, in a loop, the worst it can:
//!
//! - gossip: other hosts' records with forged versions (signed with its
//!   own key), its own record at ever-increasing versions carrying IPAM
//!   ranges of prefix 0, 33 and 255, ranges overlapping the mesh's, a
//!   version from the far future, and 4,096 then 5,000 multicast groups;
//! - frame bundles teaching 100,000 distinct source MACs, over and over;
//! - 1-byte fragments of control messages (refused: too small), and
//!   1-byte last pieces of 64 KiB messages, never completed, from ever new
//!   message ids;
//! - super-frames with bogus virtio-net headers (bad GSO types, gso_size 0
//!   or huge, checksum offsets past the end, ...).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weavers_proto::gossip::record::{PeerRecord, SignedRecord};
use weavers_proto::gossip::sync::Message;
use weavers_proto::groups::{FilterMode, GroupFilter};
use weavers_proto::hsmac::Mac1Key;
use weavers_proto::ipam::{IpamRecord, Range, SeedId};
use weavers_proto::keys::{NetworkKey, PublicKey, StaticKeypair, DEFAULT_NETWORK};
use weavers_proto::session::{Handshake, Session};
use weavers_proto::wire::{self, FragmentHeader, HandshakeSecond, Kind, Packet, PacketType, Pattern, MAC_LEN};

/// Source MACs the bundles cycle through: 100,000 distinct ones.
pub const DISTINCT_MACS: u32 = 100_000;
/// Source MACs per bundle (14-byte frames, each with its 2-byte length).
const MACS_PER_BUNDLE: u32 = 80;
/// Groups in the rogue's largest valid record, and in its invalid one.
pub const VALID_GROUPS: u32 = weavers_proto::groups::MAX_GROUPS as u32;
pub const TOO_MANY_GROUPS: u32 = 5_000;
/// Largest piece of a control message the rogue cuts (a datagram fits the
/// underlay MTU).
const PIECE: usize = 1_200;
/// A whole message at its largest: a virtio-net header and a 64 KiB frame.
const MAX_MESSAGE: u32 = 10 + 65_535 + 14;
/// One round of the loop.
const TICK: Duration = Duration::from_millis(20);

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A victim as the rogue sees it.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub key: PublicKey,
    pub addr: SocketAddr,
}

/// What the rogue sent, by kind, to all victims together.
#[derive(Debug, Default)]
pub struct Sent {
    pub datagrams: u64,
    pub mac_bundles: u64,
    pub macs_taught: u64,
    pub forged_records: u64,
    pub own_records: u64,
    pub group_records: u64,
    pub tiny_pieces: u64,
    pub held_pieces: u64,
    pub bogus_offloads: u64,
    /// Pings of the victims answered.
    pub pongs: u64,
    /// Pongs the victims sent back to the rogue's pings.
    pub pongs_heard: u64,
    pub reconnects: u64,
}

/// The rogue's session with one victim.
struct Link {
    target: Target,
    sock: UdpSocket,
    session: Session,
    index: u32,
    /// Next fragment message id.
    next_id: u32,
    /// Next source MAC number (mod [`DISTINCT_MACS`]).
    next_mac: u32,
    last_heard: Instant,
}

impl Link {
    /// An IK handshake to the victim with the network key, as any member makes one.
    fn connect(kp: &StaticKeypair, key: &NetworkKey, target: &Target, index: u32) -> anyhow::Result<Link> {
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut hs = Handshake::initiator(Pattern::Ik, kp, key, Some(&target.key), Instant::now())
            .map_err(|e| anyhow::anyhow!("handshake: {e:?}"))?;
        let mut buf = vec![0u8; 2048];
        let n = wire::write_handshake_header(
            &mut buf,
            PacketType::HandshakeInit,
            index,
            HandshakeSecond::Init { pattern: Pattern::Ik, hint: 0 },
        );
        let hello = weavers_proto::fuzzing::mesh::good_hello(unix_ms());
        let m = hs.write(&hello, &mut buf[n..]).map_err(|e| anyhow::anyhow!("handshake: {e:?}"))?;
        let mac1 = Mac1Key::new(key, Some(&target.key)).mac(&buf[..n + m]);
        buf[n + m..n + m + MAC_LEN].copy_from_slice(&mac1);
        buf[n + m + MAC_LEN..n + m + 2 * MAC_LEN].fill(0);
        let mut rx = vec![0u8; 65_536];
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut next_try = Instant::now();
        while Instant::now() < deadline {
            if Instant::now() >= next_try {
                sock.send_to(&buf[..n + m + 2 * MAC_LEN], target.addr)?;
                next_try = Instant::now() + Duration::from_secs(1);
            }
            let Ok((len, _)) = sock.recv_from(&mut rx) else { continue };
            if let Ok(Packet::HandshakeResponse { sender, receiver, noise, .. }) = Packet::parse(&rx[..len]) {
                if receiver != index {
                    continue;
                }
                let mut p = vec![0u8; noise.len()];
                hs.read(noise, &mut p).map_err(|e| anyhow::anyhow!("{}'s response: {e:?}", target.name))?;
                let session = hs.into_session(index, sender, Instant::now()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
                sock.set_nonblocking(true)?;
                let mut link = Link {
                    target: target.clone(),
                    sock,
                    session,
                    index,
                    next_id: 1,
                    next_mac: 0,
                    last_heard: Instant::now(),
                };
                // The first DATA packet confirms the session.
                let mut ping = vec![Kind::Ping as u8];
                ping.extend_from_slice(&0u64.to_be_bytes());
                link.send(&ping, &mut Sent::default());
                return Ok(link);
            }
        }
        anyhow::bail!("{} did not answer the rogue's handshake", target.name)
    }

    /// `plaintext` sealed on the session, sent.
    fn send(&mut self, plaintext: &[u8], sent: &mut Sent) {
        let mut out = vec![0u8; plaintext.len() + 64];
        let n = self.session.seal(plaintext, &mut out).expect("seal");
        // A full socket buffer is a loss like the underlay's.
        let _ = self.sock.send_to(&out[..n], self.target.addr);
        sent.datagrams += 1;
    }

    /// Reads what the victim sent; answers its pings (so it keeps the session).
    fn drain(&mut self, sent: &mut Sent) {
        let mut rx = vec![0u8; 65_536];
        let mut plain = vec![0u8; 65_536];
        while let Ok((len, _)) = self.sock.recv_from(&mut rx) {
            let Ok(Packet::Data { receiver, counter, ciphertext }) = Packet::parse(&rx[..len]) else { continue };
            if receiver != self.index {
                continue;
            }
            let Ok(n) = self.session.open(counter, ciphertext, &mut plain) else { continue };
            self.last_heard = Instant::now();
            if n == 9 && plain[0] == Kind::Pong as u8 {
                sent.pongs_heard += 1;
            }
            if n == 9 && plain[0] == Kind::Ping as u8 {
                let mut pong = plain[..9].to_vec();
                pong[0] = Kind::Pong as u8;
                self.send(&pong, sent);
                sent.pongs += 1;
            }
        }
    }

    fn fresh_id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// A control message (`kind`, `body`) in pieces, as a sender cuts one
    /// too big for a datagram.
    fn send_in_pieces(&mut self, kind: Kind, body: &[u8], sent: &mut Sent) {
        let id = self.fresh_id();
        for (i, piece) in body.chunks(PIECE).enumerate() {
            let h = FragmentHeader { id, total: body.len() as u32, offset: (i * PIECE) as u32, kind: kind as u8 };
            self.send(&fragment(&h, piece), sent);
        }
    }

    /// A gossip message carrying `records`, in pieces when large.
    fn send_records(&mut self, records: Vec<Vec<u8>>, sent: &mut Sent) {
        let body = Message::Records(records).encode();
        if body.len() < PIECE {
            let mut plain = vec![Kind::Gossip as u8];
            plain.extend_from_slice(&body);
            self.send(&plain, sent);
        } else {
            self.send_in_pieces(Kind::Gossip, &body, sent);
        }
    }

    /// A bundle of [`MACS_PER_BUNDLE`] frames from new source MACs.
    fn send_mac_bundle(&mut self, sent: &mut Sent) {
        let mut b = vec![Kind::Frame as u8];
        for _ in 0..MACS_PER_BUNDLE {
            let s = self.next_mac.to_be_bytes();
            self.next_mac = (self.next_mac + 1) % DISTINCT_MACS;
            let mut f = [0u8; 14];
            f[0..6].copy_from_slice(&[2, 0xee, 0, 0, 0, 1]);
            f[6..12].copy_from_slice(&[2, 0xaa, s[0], s[1], s[2], s[3]]);
            f[12..14].copy_from_slice(&[0x88, 0xb6]);
            assert!(wire::push_bundled(&mut b, &f));
        }
        self.send(&b, sent);
        sent.mac_bundles += 1;
        sent.macs_taught += MACS_PER_BUNDLE as u64;
    }
}

/// A `Fragment` payload: the kind byte, the header, the piece.
fn fragment(h: &FragmentHeader, piece: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 1 + wire::FRAGMENT_HEADER_LEN];
    p[0] = Kind::Fragment as u8;
    h.write(&mut p[1..]);
    p.extend_from_slice(piece);
    p
}

/// `record` signed by `by` (which need not be its author).
fn signed_by(record: &PeerRecord, by: &StaticKeypair) -> Vec<u8> {
    weavers_proto::fuzzing::mesh::sign_body(by, &postcard::to_allocvec(record).unwrap())
}

/// The base of the ranges whose prefix the rogue rewrites (a /24 in the
/// encoding, found by these bytes).
const MARKED_BASE: [u8; 4] = [10, 123, 45, 0];

/// The rogue's own record carrying an IPAM range of `prefix` (any byte:
/// 0, 33, 255 cannot be made with [`Range::new`], so a valid /24 is
/// encoded and its prefix byte rewritten), signed by the rogue.
fn own_with_prefix(kp: &StaticKeypair, version: u64, prefix: u8) -> Vec<u8> {
    let mut r = PeerRecord::new(kp.public, version, "rogue");
    let range = Range::new(Ipv4Addr::from(MARKED_BASE), 24).unwrap();
    r.ipam = Some(IpamRecord { seed: SeedId { stamp: 1, seeder: kp.public, range }, tokens: vec![(0, 1)], free: 10 });
    let mut body = postcard::to_allocvec(&r).unwrap();
    let mut marked = MARKED_BASE.to_vec();
    marked.push(24);
    let at = body.windows(5).position(|w| w == marked).expect("the range in the encoding");
    body[at + 4] = prefix;
    weavers_proto::fuzzing::mesh::sign_body(kp, &body)
}

/// The rogue's own record with a valid range `base/prefix` seeded by it
/// long ago, claiming space from offset 0 at a high version.
fn own_with_range(kp: &StaticKeypair, version: u64, base: [u8; 4], prefix: u8) -> Vec<u8> {
    let mut r = PeerRecord::new(kp.public, version, "rogue");
    let range = Range::new(Ipv4Addr::from(base), prefix).unwrap();
    r.ipam =
        Some(IpamRecord { seed: SeedId { stamp: 1, seeder: kp.public, range }, tokens: vec![(0, 1 << 30)], free: 1 });
    SignedRecord::sign(&r, kp).as_bytes().to_vec()
}

/// The rogue's own record subscribed to `count` groups (from `first` on).
fn own_with_groups(kp: &StaticKeypair, version: u64, first: u32, count: u32) -> Vec<u8> {
    let mut r = PeerRecord::new(kp.public, version, "rogue");
    r.groups = (first..first + count)
        .map(|n| GroupFilter {
            group: IpAddr::V4(Ipv4Addr::new(239, 200 + (n >> 16) as u8 % 50, (n >> 8) as u8, n as u8)),
            mode: FilterMode::Exclude,
            sources: Vec::new(),
        })
        .collect();
    r.groups.sort();
    r.groups.dedup();
    signed_by(&r, kp)
}

/// A virtio-net header.
fn vnet(flags: u8, gso_type: u8, hdr_len: u16, gso_size: u16, csum_start: u16, csum_offset: u16) -> [u8; 10] {
    let mut h = [0u8; 10];
    h[0] = flags;
    h[1] = gso_type;
    h[2..4].copy_from_slice(&hdr_len.to_ne_bytes());
    h[4..6].copy_from_slice(&gso_size.to_ne_bytes());
    h[6..8].copy_from_slice(&csum_start.to_ne_bytes());
    h[8..10].copy_from_slice(&csum_offset.to_ne_bytes());
    h
}

/// Headers no sane sender writes (each refused by the victim for a large
/// frame; a small frame is completed and delivered plain).
fn bogus_headers() -> Vec<[u8; 10]> {
    vec![
        vnet(1, 3, 54, 1000, 34, 16),     // UDP fragmentation offload
        vnet(1, 5, 54, 1000, 34, 16),     // UDP segmentation
        vnet(1, 0x7f, 54, 1000, 34, 16),  // no such type
        vnet(1, 1, 54, 0, 34, 16),        // segments of 0 bytes
        vnet(1, 1, 54, 65_535, 34, 16),   // segments of 64 KiB
        vnet(1, 1, 60_000, 1000, 34, 16), // headers longer than the frame
        vnet(1, 1, 54, 1000, 65_000, 16), // checksum past the end
        vnet(1, 1, 54, 1000, 34, 65_000), // checksum offset past the end
        vnet(0, 1, 54, 1000, 34, 16),     // segmentation without a partial checksum
        vnet(0xff, 1, 54, 1000, 34, 16),  // unknown flags
        vnet(1, 4, 54, 1000, 54, 16),     // TCPv6 on an IPv4 frame
    ]
}

/// A TCP/IPv4-looking frame of `len` bytes to an unknown MAC.
fn tcp_frame(len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|n| (n % 241) as u8).collect();
    f[0..6].copy_from_slice(&[2, 0xee, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0xab, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[23] = 6;
    f
}

/// Runs the attack on every target until `stop`; returns what was sent.
/// `ready` is set once every victim has a session. Each 20 ms round sends
/// every victim `scale` times 3 MAC bundles and 2 fragments (about 250
/// datagrams a second at scale 1), plus the gossip and virtio-net frames
/// (about 60 a second).
pub fn attack(
    password: &str,
    targets: &[Target],
    scale: u32,
    ready: &AtomicBool,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Sent> {
    let kp = StaticKeypair::generate();
    let key = NetworkKey::derive(password.as_bytes(), DEFAULT_NETWORK).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut sent = Sent::default();
    let mut links: Vec<Link> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        links.push(Link::connect(&kp, &key, t, 1000 + i as u32)?);
    }
    ready.store(true, Ordering::SeqCst);
    let bogus = bogus_headers();
    let (small, big) = (tcp_frame(1_000), tcp_frame(3_000));
    let start_ms = unix_ms();
    let mut version = start_ms;
    let mut tick: u64 = 0;
    let start = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let due = start + TICK * tick as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for l in links.iter_mut() {
            l.drain(&mut sent);
            if tick.is_multiple_of(50) {
                // A ping a second: the pong says the session still works.
                let mut ping = vec![Kind::Ping as u8];
                ping.extend_from_slice(&tick.to_be_bytes());
                l.send(&ping, &mut sent);
            }
        }
        // A victim that stopped answering (its session dropped): a new
        // handshake, as a member would.
        for (i, l) in links.iter_mut().enumerate() {
            if l.last_heard.elapsed() > Duration::from_secs(5) {
                *l = Link::connect(&kp, &key, &l.target, 2000 + (tick as u32 % 1000) * 8 + i as u32)?;
                sent.reconnects += 1;
            }
        }
        for l in links.iter_mut() {
            for _ in 0..scale {
                // 12,000 source MACs a second (times `scale`).
                for _ in 0..3 {
                    l.send_mac_bundle(&mut sent);
                }
                // A 1-byte piece that is not a message's last: refused.
                let id = l.fresh_id();
                let h = FragmentHeader { id, total: 5_000, offset: 0, kind: Kind::Gossip as u8 };
                l.send(&fragment(&h, &[0x5a]), &mut sent);
                sent.tiny_pieces += 1;
                // The 1-byte last piece of a 64 KiB message, never completed.
                let id = l.fresh_id();
                let kind = if id % 2 == 0 { Kind::Frame } else { Kind::Gossip };
                let h = FragmentHeader { id, total: MAX_MESSAGE, offset: MAX_MESSAGE - 1, kind: kind as u8 };
                l.send(&fragment(&h, &[0xa5]), &mut sent);
                sent.held_pieces += 1;
            }
        }
        if tick.is_multiple_of(5) {
            let round = tick / 5;
            // Other hosts' records, newer than any, signed by the rogue.
            let forged: Vec<Vec<u8>> = targets
                .iter()
                .map(|t| signed_by(&PeerRecord::new(t.key, unix_ms() + 5_000 + round, &t.name), &kp))
                .collect();
            // Its own, at an ever higher version, in turn with each bad thing.
            version += 1;
            let own = match round % 7 {
                0 => own_with_prefix(&kp, version, 0),
                1 => own_with_prefix(&kp, version, 33),
                2 => own_with_prefix(&kp, version, 255),
                3 => own_with_range(&kp, version, [10, 32, 0, 0], 11), // contains the mesh's 10.32.0.0/12
                4 => own_with_range(&kp, version, [10, 32, 0, 0], 12), // the mesh's own range, another seed
                5 => own_with_range(&kp, version, [10, 40, 0, 0], 13), // inside it
                _ => {
                    let far = PeerRecord::new(kp.public, unix_ms() + 86_400_000, "rogue");
                    SignedRecord::sign(&far, &kp).as_bytes().to_vec()
                }
            };
            let header = bogus[round as usize % bogus.len()];
            for l in links.iter_mut() {
                l.send_records(forged.clone(), &mut sent);
                l.send_records(vec![own.clone()], &mut sent);
                // A bogus header on a 1,000-byte frame, in one piece.
                let mut msg = header.to_vec();
                msg.extend_from_slice(&small);
                let id = l.fresh_id();
                let h = FragmentHeader { id, total: msg.len() as u32, offset: 0, kind: Kind::Frame as u8 };
                l.send(&fragment(&h, &msg), &mut sent);
                sent.bogus_offloads += 1;
                if round.is_multiple_of(5) {
                    // And on a 3,000-byte super-frame, in pieces.
                    let mut msg = header.to_vec();
                    msg.extend_from_slice(&big);
                    l.send_in_pieces(Kind::Frame, &msg, &mut sent);
                    sent.bogus_offloads += 1;
                }
            }
            sent.forged_records += (forged.len() * links.len()) as u64;
            sent.own_records += links.len() as u64;
        }
        if tick % 50 == 25 {
            // Once a second: as many groups as a record may carry (a new
            // set each time), or more than that.
            version += 1;
            let second = (tick / 50) as u32;
            let record = if second.is_multiple_of(2) {
                own_with_groups(&kp, version, second * 1_000, VALID_GROUPS)
            } else {
                own_with_groups(&kp, version, second * 1_000, TOO_MANY_GROUPS)
            };
            for l in links.iter_mut() {
                l.send_records(vec![record.clone()], &mut sent);
            }
            sent.group_records += links.len() as u64;
        }
        tick += 1;
    }
    // Last, the largest valid record, so the victims' group tables end full.
    version += 1;
    let record = own_with_groups(&kp, version, 0, VALID_GROUPS);
    for l in links.iter_mut() {
        l.send_records(vec![record.clone()], &mut sent);
    }
    // Keep the sessions up while it arrives.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        for l in links.iter_mut() {
            l.drain(&mut sent);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(sent)
}
