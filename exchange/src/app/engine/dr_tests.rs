//! Disaster recovery in the engine, over loopback: the release gate of
//! synchronous replication, a fence stopping the publisher, and a hot
//! standby shadowing a primary, promoted with the same state.

use super::durability::{Durability, LocalJournal, Replicated};
use super::fence;
use super::matcher::Matcher;
use super::publisher::{Dest, Publisher};
use super::standby::{shadow, Shadow};
use super::stats::Stats;
use super::threads::{publisher_loop, DrGate, PubEvent};
use crate::app::replicate::{Identity, Progress, Replicator};
use crate::auth::{Keyring, RootKey};
use crate::events::*;
use crate::journal::Writer;
use crate::matching::{Engine, EngineConfig};
use crate::types::*;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

fn order(client_id: u64, side: Side, price: Price) -> Input {
    Input::Enter(NewOrder {
        session: 1 << 24 | 1 << 12 | 1,
        client_id,
        symbol: 1,
        side,
        price,
        qty: 10,
        kind: OrderType::Limit,
        tif: TimeInForce::Day,
    })
}

fn ring() -> Keyring {
    Keyring::parse(&format!("md {}\ngw.1 {}\ndr {}\n", "01".repeat(32), "02".repeat(32), "04".repeat(32))).unwrap()
}

fn dr_key() -> RootKey {
    ring().dr().unwrap().clone()
}

fn publisher(md: SocketAddr) -> Publisher {
    let keys = super::keys::EngineKeys::new(&ring(), "eng1", &[1]).unwrap();
    Publisher::new("eng1", [(1, md)], Arc::new(Stats::default()), keys).unwrap()
}

fn wait(mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

fn wait_for(d: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < d {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn tmpdir(what: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("aex-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Outputs wait for DR's durable mark as well as the local one; the
/// replication's wake-up releases them; a fence stops the publisher with
/// nothing more sent.
#[test]
fn release_waits_for_dr_and_a_fence_stops_everything() {
    let md = UdpSocket::bind("127.0.0.1:0").unwrap();
    md.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let p = publisher(md.local_addr().unwrap());
    let progress = Arc::new(Progress::default());
    let fenced = Arc::new(AtomicU32::new(0));
    let gate = DrGate {
        progress: progress.clone(),
        on_fenced: Box::new({
            let f = fenced.clone();
            move |e| f.store(e, Ordering::SeqCst)
        }),
    };
    let (tx, rx) = mpsc::channel();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t = std::thread::spawn(move || publisher_loop(p, rx, sock, &Stats::default(), Some(gate)));
    let mut m = Matcher::new(Engine::new([1], EngineConfig::default()), 1, 0);
    let mut buf = [0u8; 2048];
    let (_, out) = m.sequence(order(1, Side::Buy, 100), 1).unwrap();
    tx.send(PubEvent::Committed(vec![out], 1)).unwrap();
    let (n, _) = md.recv_from(&mut buf).expect("a heartbeat at start");
    assert_eq!(n, 20 + crate::auth::TRAILER_LEN, "a heartbeat, nothing else");
    assert!(md.recv_from(&mut buf).is_err(), "locally durable only: nothing released");
    progress.durable.store(1, Ordering::SeqCst);
    tx.send(PubEvent::DrProgress).unwrap();
    let (n, _) = md.recv_from(&mut buf).expect("released once DR holds it");
    assert!(n > 20 + crate::auth::TRAILER_LEN);
    let (_, out) = m.sequence(order(2, Side::Buy, 101), 2).unwrap();
    tx.send(PubEvent::Committed(vec![out], 2)).unwrap();
    progress.fenced.store(7, Ordering::SeqCst);
    progress.durable.store(2, Ordering::SeqCst);
    tx.send(PubEvent::DrProgress).unwrap();
    t.join().unwrap();
    assert_eq!(fenced.load(Ordering::SeqCst), 7);
    assert!(md.recv_from(&mut buf).is_err(), "fenced: nothing more, not even a heartbeat");
}

/// A primary replicates to a hot standby, which applies every durable
/// record in shadow; when the primary falls silent the standby is promoted
/// with the same state (digest), epoch + 1, the streams numbered on and
/// nothing left to send; then its listener fences the old primary.
#[test]
fn a_hot_standby_shadows_and_is_promoted() {
    let dir = tmpdir("standby");
    let (local, remote) = (dir.join("primary.journal"), dir.join("standby.journal"));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let md: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let stats = Stats::default();
    let standby = {
        let remote = remote.clone();
        std::thread::spawn(move || {
            let mut p = publisher(md);
            let sh = Shadow {
                name: "eng1",
                symbols: &[1],
                stats: &stats,
                checkpoints: None,
                write_status: &|| {},
                dr_key: dr_key(),
            };
            let promoted = shadow(listener, &remote, Duration::from_millis(300), &mut p, sh).unwrap();
            (promoted.expect("promoted"), p)
        })
    };
    let mut m = Matcher::new(Engine::new([1], EngineConfig::default()), 1, 0);
    let mut d = Replicated::new(
        LocalJournal(Writer::create(&local, "eng1", &[1]).unwrap()),
        Replicator::start(
            addr,
            Identity { name: "eng1".into(), epoch: 1, symbols: vec![1], journal: local, key: dr_key() },
            0,
            Arc::new(|| {}),
        ),
    );
    let mut shadow_pub = publisher(md);
    for i in 0..200u64 {
        let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
        let (rec, out) = m.sequence(order(i + 1, side, 100 + (i % 5) as u32), i + 1).unwrap();
        shadow_pub.replay(&out);
        d.append(&rec).unwrap();
        if i % 16 == 15 {
            d.commit().unwrap();
        }
    }
    assert_eq!(d.commit().unwrap(), 200);
    assert!(wait(|| d.repl.progress().durable() == 200), "DR durable: {}", d.repl.progress().durable());
    let Replicated { repl, .. } = d;
    repl.abandon();
    let (promoted, mut p) = standby.join().unwrap();
    assert_eq!(promoted.epoch, 2);
    assert_eq!(promoted.engine.next_seq(), 201, "every record applied");
    assert_eq!(promoted.engine.digest(), m.engine().digest(), "same state as the primary");
    assert_eq!(p.next_seq(Dest::Md(1)), shadow_pub.next_seq(Dest::Md(1)));
    let mut out = Vec::new();
    p.flush_md(&mut out);
    p.flush_reports(&mut out);
    assert!(out.is_empty(), "no re-blast of history");

    fence::spawn(promoted.listener, promoted.epoch, dr_key()).unwrap();
    let id = |key| Identity { name: "eng1".into(), epoch: 1, symbols: vec![1], journal: dir.join("none"), key };
    // Without the dr key the responder answers nothing (and fences nobody).
    let stranger = Replicator::start(addr, id(RootKey::from_bytes([7; 32])), 200, Arc::new(|| {}));
    assert!(!wait_for(Duration::from_millis(1500), || stranger.progress().fenced().is_some()));
    drop(stranger);
    let old = Replicator::start(addr, id(dr_key()), 200, Arc::new(|| {}));
    assert!(wait(|| old.progress().fenced() == Some(2)), "the old primary is fenced");
    drop(old);
    let _ = std::fs::remove_dir_all(&dir);
}
