//! A rogue password holder (issue 13), in password mode, with real daemons:
//! it completes a handshake with h1 as any member can, then sends what no
//! honest daemon sends: h2's record with its groups and names emptied,
//! signed with the rogue's own key; a record of its own at the largest
//! version; a frame wrapped as if relayed from h2. Each is refused and
//! counted (`bad_gossip`, `relay_forged`), h1 still sees h2 as h2 sees
//! itself (its name in the DNS, its group), and a group running h1 -> h2
//! meanwhile loses nothing.
//!
//! h1 is the victim, h2 the host impersonated, h3 an honest third, h4 the
//! rogue: no daemon, this test's own code in h4's namespace, speaking the
//! wire format through weavers-proto.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use weavers_proto::gossip::record::{PeerRecord, SignedRecord};
use weavers_proto::gossip::sync::Message;
use weavers_proto::hsmac::Mac1Key;
use weavers_proto::keys::{NetworkKey, PublicKey, StaticKeypair, DEFAULT_NETWORK};
use weavers_proto::session::{Handshake, Session};
use weavers_proto::wire::{self, HandshakeSecond, Kind, Packet, PacketType, Pattern, RelayHeader, MAC_LEN};
use weavers_tests::mcast::{GroupReceiver, Join, Numbered, Out};
use weavers_tests::{lab_or_skip, netns, wait_until, DaemonOpts, Lab, WEAVERS_PORT};

const SEC: Duration = Duration::from_secs(1);

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn drops(lab: &Lab, i: usize, reason: &str) -> u64 {
    let st = lab.status_json(i);
    st["drops"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["reason"] == reason))
        .map_or(0, |d| d["count"].as_u64().unwrap_or(0))
}

fn key_of(lab: &Lab, i: usize) -> PublicKey {
    PublicKey::from_base64(lab.status_json(i)["public_key"].as_str().unwrap()).unwrap()
}

/// The rogue: a session with the victim, made as any member makes one.
struct Rogue {
    sock: UdpSocket,
    victim: SocketAddr,
    session: Session,
}

impl Rogue {
    /// An IK handshake to `victim` (key `victim_key`) with the network key
    /// of `password`; the rogue's own fresh identity.
    fn connect(kp: &StaticKeypair, password: &str, victim: SocketAddr, victim_key: PublicKey) -> Rogue {
        let key = NetworkKey::derive(password.as_bytes(), DEFAULT_NETWORK).unwrap();
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        sock.set_read_timeout(Some(SEC)).unwrap();
        let mut hs = Handshake::initiator(Pattern::Ik, kp, &key, Some(&victim_key), Instant::now()).unwrap();
        let mut buf = vec![0u8; 2048];
        let n = wire::write_handshake_header(
            &mut buf,
            PacketType::HandshakeInit,
            77,
            HandshakeSecond::Init { pattern: Pattern::Ik, hint: 0 },
        );
        let m = hs.write(&weavers_proto::fuzzing::mesh::good_hello(unix_ms()), &mut buf[n..]).unwrap();
        let mac1 = Mac1Key::new(&key, Some(&victim_key)).mac(&buf[..n + m]);
        buf[n + m..n + m + MAC_LEN].copy_from_slice(&mac1);
        buf[n + m + MAC_LEN..n + m + 2 * MAC_LEN].fill(0);
        sock.send_to(&buf[..n + m + 2 * MAC_LEN], victim).unwrap();
        let mut rx = vec![0u8; 2048];
        let deadline = Instant::now() + 5 * SEC;
        while Instant::now() < deadline {
            let Ok((len, _)) = sock.recv_from(&mut rx) else { continue };
            if let Ok(Packet::HandshakeResponse { sender, receiver: 77, noise, .. }) = Packet::parse(&rx[..len]) {
                let mut p = vec![0u8; noise.len()];
                hs.read(noise, &mut p).expect("the victim's response");
                let session = hs.into_session(77, sender, Instant::now()).unwrap();
                let mut r = Rogue { sock, victim, session };
                let mut ping = vec![Kind::Ping as u8];
                ping.extend_from_slice(&0u64.to_be_bytes());
                r.send(&ping);
                return r;
            }
        }
        panic!("h1 did not answer the rogue's handshake");
    }

    /// `plaintext` sealed on the session.
    fn send(&mut self, plaintext: &[u8]) {
        let mut out = vec![0u8; plaintext.len() + 64];
        let n = self.session.seal(plaintext, &mut out).unwrap();
        self.sock.send_to(&out[..n], self.victim).unwrap();
    }

    /// A gossip message carrying `records` (signed bytes).
    fn send_records(&mut self, records: Vec<Vec<u8>>) {
        let mut plain = vec![Kind::Gossip as u8];
        plain.extend_from_slice(&Message::Records(records).encode());
        self.send(&plain);
    }
}

/// `record` signed by `by` (which need not be its author), in the format
/// of [`SignedRecord::sign`].
fn signed_by(record: &PeerRecord, by: &StaticKeypair) -> Vec<u8> {
    weavers_proto::fuzzing::mesh::sign_body(by, &postcard::to_allocvec(record).unwrap())
}

#[test]
fn a_rogue_password_holder_cannot_forge_records_or_relay_sources() {
    let Some(mut lab) = lab_or_skip(4) else { return };
    lab.start_daemon(1, DaemonOpts::new());
    lab.start_daemon(2, DaemonOpts::new().peer(1));
    lab.start_daemon(3, DaemonOpts::new().peer(1));
    lab.wait_mesh(&[1, 2, 3], 30 * SEC);
    for i in 1..=3 {
        lab.expose(i, &format!("{}/16", Lab::overlay(i)));
    }
    let (group, port) = (Ipv4Addr::new(239, 1, 3, 3), 5333);
    let rx = GroupReceiver::start(lab.ns(2), port, Join::V4 { group, iface: Lab::overlay(2) }).unwrap();
    lab.try_cli(2, &["dns", "add", "svc", &Lab::overlay(2).to_string()]).unwrap();
    let subscribed = || lab.try_cli_json(1, &["groups", "--json"]).is_ok_and(|v| v.to_string().contains("\"h2\""));
    assert!(wait_until(10 * SEC, subscribed), "h2's join did not reach h1");
    assert!(wait_until(10 * SEC, || lab.try_cli(1, &["dns", "lookup", "svc"]).is_ok()), "h2's name did not reach h1");

    // The group runs through the attack.
    const N: u64 = 3000;
    let stream = Numbered::new(200).paced(5, Duration::from_millis(2));
    let sender = {
        let (ns, stream) = (lab.ns(1).to_owned(), stream.clone());
        std::thread::spawn(move || {
            stream.send(&ns, Out::V4(Lab::overlay(1)), SocketAddr::V4(SocketAddrV4::new(group, port)), 0..N)
        })
    };

    let (h1_key, h2_key) = (key_of(&lab, 1), key_of(&lab, 2));
    let before = (drops(&lab, 1, "bad_gossip"), drops(&lab, 1, "relay_forged"));
    let password = lab.password().to_owned();
    let victim = SocketAddr::V4(SocketAddrV4::new(lab.ip(1), WEAVERS_PORT));
    netns::run_in(lab.ns(4), move || {
        let kp = StaticKeypair::generate();
        let mut rogue = Rogue::connect(&kp, &password, victim, h1_key);
        // The channel works: its own honest record is taken.
        let own = PeerRecord::new(kp.public, unix_ms(), "rogue");
        rogue.send_records(vec![SignedRecord::sign(&own, &kp).as_bytes().to_vec()]);
        // h2's record, emptied (no groups, no names), newer than any: signed
        // by the rogue, which is not h2.
        let forged = PeerRecord::new(h2_key, unix_ms() + 5_000, "h2");
        rogue.send_records(vec![signed_by(&forged, &kp)]);
        // Its own record at the largest version: it would freeze it.
        let frozen = PeerRecord::new(kp.public, u64::MAX, "rogue");
        rogue.send_records(vec![SignedRecord::sign(&frozen, &kp).as_bytes().to_vec()]);
        // A frame wrapped as if h2 had sent it through the rogue as relay.
        let mut relayed = vec![Kind::Relay as u8; 1 + wire::RELAY_HEADER_LEN];
        RelayHeader { ttl: 8, dst: h1_key.short_id(), src: h2_key.short_id(), epoch: unix_ms(), counter: 1 }
            .write(&mut relayed[1..]);
        relayed.extend_from_slice(&[0x5a; 96]);
        for _ in 0..10 {
            rogue.send(&relayed);
        }
    });

    sender.join().unwrap().unwrap();
    rx.wait_for(N as usize, 30 * SEC);
    rx.wait_quiet(SEC, 5 * SEC);
    let got = rx.finish().len() as u64;
    let after = (drops(&lab, 1, "bad_gossip"), drops(&lab, 1, "relay_forged"));
    eprintln!("rogue: bad_gossip +{}, relay_forged +{}; group {got} of {N}", after.0 - before.0, after.1 - before.1);
    assert!(after.0 >= before.0 + 2, "h1 did not count both forged records: {before:?} -> {after:?}");
    assert!(after.1 >= before.1 + 10, "h1 did not count the spoofed relayed frames: {before:?} -> {after:?}");
    assert!(N - got <= N / 1000, "the group lost {} of {N} during the attack", N - got);
    // The rogue's honest record went through the same channel and was taken.
    assert!(lab.peer_entry(1, "rogue").is_some(), "h1 never took the rogue's own record: the test proves nothing");
    // h1 still has h2 as h2 says it is: its name, its group.
    let row: Value = lab.peer_entry(1, "h2").expect("h2 still known to h1");
    assert_eq!(row["state"], "connected", "{row}");
    let addrs = lab.try_cli(1, &["dns", "lookup", "svc"]).unwrap_or_else(|e| panic!("h2's name is gone at h1: {e:#}"));
    assert_eq!(addrs.trim(), Lab::overlay(2).to_string());
    assert!(subscribed(), "h1 no longer lists h2 as subscribed");
    assert!(lab.daemon_running(1), "h1's daemon died:\n{}", lab.log_tail(1, 30));
}
