//! Network-authority mode on the simulated underlay: only certified hosts
//! become peers; a revocation spreads and cuts its host off everywhere; a
//! certificate's group and name permissions hold against a host that
//! ignores its own.

use super::*;
use weavers_cert::{Authority, AuthorityKey, GroupRange, HostCert, NamePattern, Permissions};

/// The test clock's wall time (see `config`), in seconds.
const T0: u64 = 1_700_000_000;

struct Ca {
    key: AuthorityKey,
    cert: Authority,
}

impl Ca {
    fn new() -> Ca {
        let key = AuthorityKey::from_seed(rand::random());
        let cert = key.self_certify("test", T0 - 3600, 3650).unwrap();
        Ca { key, cert }
    }

    fn sign(&self, name: &str, key: &PublicKey, perms: Permissions) -> HostCert {
        self.key.sign_host(name, key.0, perms, T0 - 60, 30).unwrap()
    }
}

fn ranges(s: &str) -> Option<Vec<GroupRange>> {
    Some(GroupRange::parse_list(s).unwrap())
}

/// Host i's config, certified by `ca` with `perms`.
fn certified(i: usize, ca: &Ca, perms: Permissions) -> Config {
    let mut c = config(i, b"pw");
    let cert = ca.sign(&c.name, &c.keypair.public, perms);
    c.trust = Some(Trust { authority: ca.cert.clone(), cert, revocations: Vec::new() });
    c
}

/// `cfgs` bootstrapped from the first, run for `secs`.
fn mesh(cfgs: Vec<Config>, secs: u64) -> Net {
    let n = cfgs.len();
    let mut net = Net::with_configs(cfgs);
    for i in 1..n {
        net.bootstrap(i, 0);
    }
    net.run(Duration::from_secs(secs));
    net
}

#[test]
fn only_hosts_with_a_valid_certificate_for_their_key_become_peers() {
    let ca = Ca::new();
    let other = Ca::new();
    let mut cfgs: Vec<Config> = (0..3).map(|i| certified(i, &ca, Permissions::default())).collect();
    // h4: a certificate from another authority. h5: h1's certificate with
    // its own key. h6: expired. h7: no certificate (password mode).
    cfgs.push(certified(3, &other, Permissions::default()));
    let mut h5 = config(4, b"pw");
    h5.trust =
        Some(Trust { authority: ca.cert.clone(), cert: cfgs[0].trust.clone().unwrap().cert, revocations: vec![] });
    cfgs.push(h5);
    let mut h6 = config(5, b"pw");
    let stale = ca.key.sign_host("h6", h6.keypair.public.0, Permissions::default(), T0 - 90_000, 1).unwrap();
    h6.trust = Some(Trust { authority: ca.cert.clone(), cert: stale, revocations: vec![] });
    cfgs.push(h6);
    cfgs.push(config(6, b"pw"));
    let mut net = mesh(cfgs, 10);
    for i in 0..3 {
        for j in 0..3 {
            if i != j {
                assert_eq!(net.state(i, j), Some(PeerState::Connected), "h{} - h{}", i + 1, j + 1);
            }
        }
        for j in 3..7 {
            assert_ne!(net.state(i, j), Some(PeerState::Connected), "h{} accepted h{}", i + 1, j + 1);
        }
    }
    // h1 refuses the certificates of h5, h6 and h7 (wrong key, expired,
    // none); h4 refuses h1's (another authority) before showing its own.
    assert!(net.node(0).handshakes().certs_refused >= 3, "{:?}", net.node(0).handshakes());
    assert!(net.node(0).drops().get(DropReason::BadCertificate) >= 3);
    assert!(net.node(3).handshakes().certs_refused >= 1, "{:?}", net.node(3).handshakes());
    // The certified name is the one peers list.
    let now = net.now;
    assert!(net.node(1).peer_infos(now).iter().any(|p| p.name == "h1" && p.state == PeerState::Connected));
}

#[test]
fn a_revocation_cuts_its_host_off_everywhere_and_reaches_a_host_that_was_away() {
    let ca = Ca::new();
    let cfgs: Vec<Config> = (0..5).map(|i| certified(i, &ca, Permissions::default())).collect();
    let mut net = mesh(cfgs, 8);
    assert!(net.all_connected());
    // h5 is cut off from everyone while the revocation goes round.
    for i in 0..4 {
        net.blocked.insert((i, 4));
    }
    let rev = ca.key.revoke("h3", T0 + 1).unwrap();
    let now = net.now;
    let (body, new) = net.node(0).add_revocation(now, rev.encoded()).unwrap();
    assert!(new && body.name == "h3");
    // Out at the next tick; within it (a few hops, no clock moving),
    // everyone that is reachable has dropped h3.
    net.run(Duration::from_millis(50));
    for i in [0, 1, 3] {
        assert_ne!(net.state(i, 2), Some(PeerState::Connected), "h{} still has h3", i + 1);
        assert_eq!(net.node(i).revocation_list(), vec![("h3".to_owned(), T0 + 1)]);
    }
    assert!(events(&mut net, 1).contains(&Event::RevocationsChanged));
    // Again: not new.
    let now = net.now;
    assert!(!net.node(0).add_revocation(now, rev.encoded()).unwrap().1);
    // h3 stays out, h5 comes back and learns it from the first peer it meets.
    net.blocked.clear();
    net.run(Duration::from_secs(20));
    for i in [0, 1, 3, 4] {
        assert_ne!(net.state(i, 2), Some(PeerState::Connected), "h{} took h3 back", i + 1);
    }
    assert_eq!(net.node(4).revocation_list(), vec![("h3".to_owned(), T0 + 1)]);
    assert_eq!(net.state(4, 0), Some(PeerState::Connected));
    // A revocation from another authority is refused.
    let forged = Ca::new().key.revoke("h1", T0 + 2).unwrap();
    let now = net.now;
    assert!(net.node(1).add_revocation(now, forged.encoded()).is_err());
}

#[test]
fn a_host_certified_again_after_its_revocation_is_taken_back() {
    let ca = Ca::new();
    let cfgs: Vec<Config> = (0..3).map(|i| certified(i, &ca, Permissions::default())).collect();
    let mut net = mesh(cfgs, 6);
    let rev = ca.key.revoke("h3", T0 - 30).unwrap();
    let now = net.now;
    net.node(0).add_revocation(now, rev.encoded()).unwrap();
    net.run(Duration::from_secs(5));
    assert_ne!(net.state(0, 2), Some(PeerState::Connected));
    // A new certificate, issued after the revocation.
    let k = net.key(2);
    let renewed = ca.key.sign_host("h3", k.0, Permissions::default(), T0 - 10, 30).unwrap();
    let now = net.now;
    net.node(2).set_own_cert(renewed, now).unwrap();
    net.run(Duration::from_secs(40));
    assert_eq!(net.state(0, 2), Some(PeerState::Connected));
    assert_eq!(net.state(1, 2), Some(PeerState::Connected));
}

#[test]
fn group_frames_go_only_where_certificates_allow() {
    let ca = Ca::new();
    let g1 = [239, 1, 0, 1];
    let g3 = [239, 3, 0, 1];
    let cfgs = vec![
        // h1 may publish 239.1/16 only.
        certified(0, &ca, Permissions { publish: ranges("239.1.0.0/16"), ..Default::default() }),
        // h2 may subscribe to 239.3/16 only.
        certified(1, &ca, Permissions { subscribe: ranges("239.3.0.0/16"), ..Default::default() }),
        certified(2, &ca, Permissions::default()),
        // h4 may publish nothing but 239.9/16.
        certified(3, &ca, Permissions { publish: ranges("239.9.0.0/16"), ..Default::default() }),
    ];
    let mut net = mesh(cfgs, 6);
    assert!(net.all_connected());
    for i in [1, 2] {
        net.inject(i, &join_v2(i, g1));
        net.inject(i, &join_v2(i, g3));
    }
    net.run(Duration::from_secs(1));
    for m in 0..20 {
        net.inject(0, &udp_to_group(0, g1, m));
        net.inject(0, &udp_to_group(0, g3, 100 + m));
    }
    assert_eq!(net.group_markers(2, g1), (0..20).collect::<Vec<_>>());
    assert!(net.group_markers(1, g1).is_empty(), "h2 may not subscribe to 239.1/16");
    assert!(net.group_markers(1, g3).is_empty() && net.group_markers(2, g3).is_empty(), "h1 may not publish 239.3");
    let now = net.now;
    let row =
        |net: &mut Net, i: usize, g: &str| net.node(i).group_infos(now).into_iter().find(|r| r.group == g).unwrap();
    let r1 = row(&mut net, 0, "239.1.0.1");
    assert_eq!((r1.counters.sent_frames, r1.counters.refused_copies), (20, 20));
    assert_eq!(row(&mut net, 0, "239.3.0.1").counters.refused_frames, 20);

    // h4 turns rogue: it swaps in a certificate that lets it publish
    // everything (its peers still hold the one it showed them).
    let k = net.key(3);
    net.node(3).trust.as_mut().unwrap().own = ca.sign("h4", &k, Permissions::default());
    let before = net.node(2).drops().get(DropReason::NotPermitted);
    for m in 0..20 {
        net.inject(3, &udp_to_group(3, g1, 200 + m));
    }
    assert!(net.group_markers(2, g1).iter().all(|m| *m < 200), "h3 delivered the rogue's frames");
    assert_eq!(net.node(2).drops().get(DropReason::NotPermitted) - before, 20);
    assert_eq!(row(&mut net, 2, "239.1.0.1").counters.refused_frames, 20);
    // Legitimate traffic carries on meanwhile.
    net.inject(0, &udp_to_group(0, g1, 50));
    assert_eq!(net.group_markers(2, g1).last(), Some(&50));
}

#[test]
fn names_are_registered_and_removed_only_as_certificates_allow() {
    let ca = Ca::new();
    let names = |p: &str| Permissions { names: Some(NamePattern::parse_list(p).unwrap()), ..Default::default() };
    let cfgs =
        vec![certified(0, &ca, names("*.md.aex")), certified(1, &ca, names("h2")), certified(2, &ca, names("h3"))];
    let mut net = mesh(cfgs, 6);
    let now = net.now;
    let a: std::net::IpAddr = "239.1.0.1".parse().unwrap();
    net.node(0).dns_add("IBM.md.aex", a, None, now).unwrap();
    let refused = net.node(0).dns_add("ibm.orders.aex", a, None, now).unwrap_err();
    assert!(matches!(refused, crate::dns::DnsError::NotPermitted(_)), "{refused:?}");
    // h3 turns rogue: its own certificate now allows every name.
    let k = net.key(2);
    net.node(2).trust.as_mut().unwrap().own = ca.sign("h3", &k, Permissions::default());
    net.node(2).dns_add("aapl.md.aex", a, None, now).unwrap();
    net.run(Duration::from_secs(3));
    // Its peers do not believe it, nor its removal of h1's name.
    let rows = dns_rows(&mut net, 1);
    assert_eq!(rows, vec![("ibm.md.aex".to_owned(), "239.1.0.1".to_owned(), "h1".to_owned())]);
    let now = net.now;
    let sel = crate::dns::Selector::new(Some("ibm.md.aex"), None, None).unwrap();
    net.node(2).dns_remove(&sel, now).unwrap();
    net.run(Duration::from_secs(3));
    assert_eq!(dns_rows(&mut net, 1).len(), 1, "the rogue's tombstone removed h1's name at h2");
    assert_eq!(net.node(0).dns_own_entries().len(), 1, "the rogue's tombstone removed h1's own entry");
}

#[test]
fn hosts_reached_only_through_a_relay_are_known_by_the_certificate_in_their_record() {
    let ca = Ca::new();
    let names = |p: &str| Permissions { names: Some(NamePattern::parse_list(p).unwrap()), ..Default::default() };
    let g = [239, 1, 0, 7];
    let cfgs = vec![certified(0, &ca, Permissions::default()), certified(1, &ca, Permissions::default()), {
        let mut p = names("*.md.aex");
        p.publish = ranges("239.1.0.0/16");
        certified(2, &ca, p)
    }];
    let mut net = Net::with_configs(cfgs);
    // h1 and h3 never meet directly: h2 relays between them.
    net.blocked.insert((0, 2));
    net.bootstrap(1, 0);
    net.bootstrap(2, 1);
    net.run(Duration::from_secs(10));
    assert_eq!(net.state(0, 2), Some(PeerState::Relayed));
    let now = net.now;
    net.node(2).dns_add("ibm.md.aex", "239.1.0.7".parse().unwrap(), None, now).unwrap();
    net.inject(0, &join_v2(0, g));
    net.run(Duration::from_secs(2));
    // h1 has h3's certificate from its record: its name counts, and its
    // frames to a group it may publish to are delivered.
    assert_eq!(dns_rows(&mut net, 0), vec![("ibm.md.aex".to_owned(), "239.1.0.7".to_owned(), "h3".to_owned())]);
    for m in 0..10 {
        net.inject(2, &udp_to_group(2, g, m));
    }
    net.run(Duration::from_millis(200));
    assert_eq!(net.group_markers(0, g), (0..10).collect::<Vec<_>>());
    let now = net.now;
    assert!(net.node(0).peer_infos(now).iter().any(|p| p.name == "h3"));
}

#[test]
fn differing_digests_are_answered_at_most_once_per_interval() {
    let ca = Ca::new();
    let cfgs: Vec<Config> = (0..2).map(|i| certified(i, &ca, Permissions::default())).collect();
    let mut net = mesh(cfgs, 4);
    for name in ["a", "b", "c"] {
        let now = net.now;
        net.node(0).add_revocation(now, ca.key.revoke(name, T0).unwrap().encoded()).unwrap();
    }
    net.run(Duration::from_millis(100));
    // h2 (a rogue here) sends h1 a wrong digest 50 times in a row.
    let k = net.key(1);
    let before = net.wire_log.iter().filter(|(a, b, _)| *a == 0 && *b == 1).count();
    for _ in 0..50 {
        let (now, mut out) = (net.now, Out::default());
        net.node(0).on_revocation_digest(now, k, &[0, 1, 2, 3, 4, 5, 6, 7, 8], &mut out);
        net.collect(0, out);
    }
    let sent = net.wire_log.iter().filter(|(a, b, _)| *a == 0 && *b == 1).count() - before;
    // One answer: three revocations and a digest.
    assert!(sent <= 4, "h1 answered the same peer's digests {sent} datagrams' worth");
    assert!(net.node(0).drops().get(DropReason::RateLimited) >= 49);
}
