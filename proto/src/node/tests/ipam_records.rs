//! What a peer's record says about IPAM, as the rogue of
//! `tests/tests/rogue_flood` found: a host that published another seed and
//! then a record with no seed at all no longer counts as on another seed
//! (allocation resumes), on the simulated underlay.

use super::*;
use crate::gossip::record::{PeerRecord, SignedRecord};
use crate::gossip::sync::Message;
use crate::ipam::{IpamRecord, Range, SeedId};
use crate::wire::Kind;

/// A mesh of `n` connected hosts.
fn mesh(n: usize) -> Net {
    let mut net = Net::new(n);
    for i in 1..n {
        net.bootstrap(i, 0);
    }
    net.run(Duration::from_secs(3));
    assert!(net.all_connected());
    net
}

/// Node `from` gossips its own `record` (signed by itself) to node `to`.
fn gossip_own(net: &mut Net, from: usize, to: usize, record: &PeerRecord) {
    let signed = SignedRecord::sign(record, &net.node(from).cfg.keypair);
    let msg = Message::Records(vec![signed.as_bytes().to_vec()]).encode();
    let (now, dst) = (net.now, net.key(to));
    let mut out = Out::default();
    net.node(from).send_control(now, dst, Kind::Gossip, &msg, &mut out);
    net.collect(from, out);
    net.settle();
}

#[test]
fn a_host_that_stops_publishing_another_seed_no_longer_stops_allocation() {
    let mut net = mesh(2);
    let k1 = net.key(1);
    assert!(net.node(0).ipam_status().problems.is_empty());
    let version = net.node(1).published().version + 1_000;
    // h2 says it is on another seed of an overlapping range...
    let mut r = PeerRecord::new(k1, version, "h2");
    let range = Range::new(std::net::Ipv4Addr::new(10, 32, 0, 0), 11).unwrap();
    r.ipam = Some(IpamRecord { seed: SeedId { stamp: 1, seeder: k1, range }, tokens: vec![(0, 1)], free: 1 });
    gossip_own(&mut net, 1, 0, &r);
    assert_eq!(net.node(0).record(&k1).map(|r| r.version), Some(version));
    assert_eq!(net.node(0).ipam_status().problems.len(), 1, "another seed stops allocation");
    // ...then publishes no seed: it is on no other seed any more.
    let r = PeerRecord::new(k1, version + 1, "h2");
    gossip_own(&mut net, 1, 0, &r);
    assert_eq!(net.node(0).record(&k1).map(|r| r.version), Some(version + 1));
    assert_eq!(net.node(0).ipam_status().problems, Vec::<String>::new(), "nothing stops allocation any more");
}
