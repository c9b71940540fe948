//! The harness reaches what it claims to.

use super::mesh::{self, Mesh};
use crate::gossip::record::PeerRecord;
use crate::gossip::sync::Message;
use crate::gossip::SignedRecord;
use crate::wire::Kind;
use weavers_api::PeerState;

#[test]
fn the_attacker_connects_and_the_victim_reads_its_hello() {
    let mut m = Mesh::new();
    assert!(m.connect());
    let now = m.now;
    let rows = m.node.peer_infos(now);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].name, "attacker", "the handshake payload was decoded");
    assert_eq!(rows[0].state, PeerState::Connected);
}

#[test]
fn signing_matches_the_record_format() {
    let id = mesh::third_identities()[0].clone();
    let r = PeerRecord::new(id.public, 5, "h3");
    let body = postcard::to_allocvec(&r).unwrap();
    assert_eq!(mesh::sign_body(&id, &body), SignedRecord::sign(&r, &id).as_bytes());
}

#[test]
fn records_signed_by_the_harness_are_merged_by_the_victim() {
    let mut m = Mesh::new();
    assert!(m.connect());
    let id = mesh::third_identities()[1].clone();
    let r = PeerRecord::new(id.public, 1_700_000_000_001, "third");
    let signed = mesh::sign_body(&id, &postcard::to_allocvec(&r).unwrap());
    let mut plain = vec![Kind::Gossip as u8];
    plain.extend_from_slice(&Message::Records(vec![signed]).encode());
    m.sealed(&plain);
    let now = m.now;
    assert!(m.node.peer_infos(now).iter().any(|p| p.name == "third"));
}

#[test]
fn every_target_takes_empty_and_small_inputs() {
    for data in [&[][..], &[0], &[1, 2, 3], &[0xff; 64]] {
        super::wire_packet(data);
        super::frame_bundle(data);
        super::relay_header(data);
        super::fragments(data);
        super::vnet(data);
        super::snoop(data);
        super::dns(data);
        super::ipam(data);
        mesh::handshake(data);
        mesh::gossip(data);
        mesh::node(data);
    }
}
