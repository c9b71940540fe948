//! Certificates and revocations as a network uses them: made by one
//! authority, checked by hosts, refused when forged, expired or revoked.

use weavers_cert::{Authority, AuthorityKey, CertError, GroupRange, HostCert, Permissions, Revocation};

const NOW: u64 = 1_800_000_000;

fn authority() -> (AuthorityKey, Authority) {
    let key = AuthorityKey::generate();
    let cert = key.self_certify("test-net", NOW, 3650).unwrap();
    (key, cert)
}

#[test]
fn a_host_certificate_verifies_under_its_authority_only() {
    let (key, ca) = authority();
    let cert = key.sign_host("h1", [3; 32], Permissions::default(), NOW, 365).unwrap();
    let back = HostCert::from_text(&cert.to_text()).unwrap();
    assert_eq!(back, cert);
    back.verify(&ca, NOW + 10).unwrap();
    let (_, other) = authority();
    assert_eq!(back.verify(&other, NOW), Err(CertError::WrongAuthority));
    // Read back from text, the authority is the same.
    let ca2 = Authority::from_text(&ca.to_text()).unwrap();
    back.verify(&ca2, NOW).unwrap();
}

#[test]
fn periods_are_enforced() {
    let (key, ca) = authority();
    let cert = key.sign_host("h1", [3; 32], Permissions::default(), NOW, 1).unwrap();
    assert_eq!(cert.verify(&ca, NOW - 1), Err(CertError::NotYetValid(NOW)));
    assert_eq!(cert.verify(&ca, NOW + 86_401), Err(CertError::Expired(NOW + 86_400)));
    assert!(ca.check_time(NOW + 1).is_ok());
}

#[test]
fn a_changed_byte_breaks_the_signature() {
    let (key, ca) = authority();
    let perms = Permissions { subscribe: Some(vec![GroupRange::parse("239.1.0.0/16").unwrap()]), ..Default::default() };
    let cert = key.sign_host("h1", [3; 32], perms, NOW, 365).unwrap();
    let enc = cert.encoded().to_vec();
    let mut refused = 0;
    for i in 0..enc.len() {
        let mut b = enc.clone();
        b[i] ^= 0x01;
        match HostCert::decode(&b) {
            Err(_) => refused += 1,
            Ok(c) => {
                assert!(c.verify(&ca, NOW).is_err(), "byte {i} changed and still verifies");
                refused += 1;
            }
        }
    }
    assert_eq!(refused, enc.len());
}

#[test]
fn a_signature_of_one_kind_is_not_another() {
    // A revocation's bytes presented as a certificate (and back) fail.
    let (key, ca) = authority();
    let rev = key.revoke("h1", NOW).unwrap();
    assert!(HostCert::decode(rev.encoded()).and_then(|c| c.verify(&ca, NOW)).is_err());
    let cert = key.sign_host("h1", [3; 32], Permissions::default(), NOW, 365).unwrap();
    assert!(Revocation::decode(cert.encoded(), &ca).is_err());
}

#[test]
fn revocations_void_earlier_certificates_of_the_name_only() {
    let (key, ca) = authority();
    let old = key.sign_host("h1", [3; 32], Permissions::default(), NOW, 365).unwrap();
    let other = key.sign_host("h2", [4; 32], Permissions::default(), NOW, 365).unwrap();
    let rev = Revocation::from_text(&key.revoke("h1", NOW + 5).unwrap().to_text(), &ca).unwrap();
    assert!(rev.revokes(&old));
    assert!(!rev.revokes(&other));
    let renewed = key.sign_host("h1", [5; 32], Permissions::default(), NOW + 6, 365).unwrap();
    assert!(!rev.revokes(&renewed));
    let (_, foreign) = authority();
    assert_eq!(Revocation::decode(rev.encoded(), &foreign), Err(CertError::WrongAuthority));
}

#[test]
fn bad_names_and_oversized_input_are_refused() {
    let (key, _) = authority();
    assert!(key.sign_host("", [0; 32], Permissions::default(), NOW, 1).is_err());
    assert!(key.sign_host("a b", [0; 32], Permissions::default(), NOW, 1).is_err());
    assert!(matches!(HostCert::decode(&[0u8; 5000]), Err(CertError::TooLong(_))));
    assert!(matches!(HostCert::decode(&[0u8; 10]), Err(CertError::Malformed(_))));
    let key_text = key.to_text();
    assert_eq!(AuthorityKey::from_text(&key_text).unwrap().public(), key.public());
}

proptest::proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        let (_, ca) = authority();
        let _ = HostCert::decode(&bytes).map(|c| c.verify(&ca, NOW));
        let _ = Revocation::decode(&bytes, &ca);
        let _ = Authority::decode(&bytes);
    }
}
