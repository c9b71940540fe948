//! What `peer ls` shows of a peer: traffic in bytes and the age of the last
//! handshake, which grows until a rekey and stays shown when the peer stops
//! answering.

use super::*;

fn row(net: &mut Net, i: usize, j: usize) -> weavers_api::PeerInfo {
    let (k, now) = (net.key(j).to_base64(), net.now);
    net.node(i).peer_infos(now).into_iter().find(|p| p.public_key == k).expect("a row for the peer")
}

#[test]
fn the_last_handshake_ages_renews_and_outlives_the_session_answering() {
    let mut net = Net::new(2);
    net.bootstrap(1, 0);
    net.run(Duration::from_secs(1));
    assert!(net.all_connected());
    for i in [0, 1] {
        let age = row(&mut net, i, 1 - i).session_age_s.expect("an age once connected");
        assert!(age <= 1, "h{}: {age} s", i + 1);
    }

    // No rekey within the first minute: the age is the clock's.
    net.run(Duration::from_secs(60));
    let age = row(&mut net, 0, 1).session_age_s.unwrap();
    assert!((59..=62).contains(&age), "{age}");

    // Renewed at least every 2 minutes.
    for _ in 0..60 {
        net.run(Duration::from_secs(5));
        let age = row(&mut net, 0, 1).session_age_s.unwrap();
        assert!(age < 135, "no handshake for {age} s");
    }

    // Frames carried: bytes counted on both sides.
    net.send_frame(0, mac_of(1), 1);
    let (tx, rx) = (row(&mut net, 0, 1).traffic, row(&mut net, 1, 0).traffic);
    assert!(tx.tx_bytes > 0 && tx.tx_bytes == rx.rx_bytes, "{tx:?} {rx:?}");

    // Cut off: no longer connected, the last handshake still shown, older.
    let before = row(&mut net, 0, 1).session_age_s.unwrap();
    net.blocked.insert((0, 1));
    net.run(Duration::from_secs(10));
    let r = row(&mut net, 0, 1);
    assert_ne!(r.state, PeerState::Connected);
    let after = r.session_age_s.expect("the last handshake's age while the peer is silent");
    assert!(after >= before + 9, "{before} -> {after}");
}
