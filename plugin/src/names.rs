//! Names derived from an attachment (container ID + interface name): the
//! IPAM owner, the DNS owner tag, the host end of the veth and its alias,
//! and the container's DNS label.
//!
//! Everything here is a pure function of its input, so that DEL and GC find
//! what ADD made without any state kept by the plugin.

use blake2::{Blake2s256, Digest};

/// First characters of every host-side veth this plugin makes.
pub const HOST_VETH_PREFIX: &str = "vwv";
/// Start of the alias (`IFLA_IFALIAS`) of every host-side veth this plugin
/// makes; the attachment key follows. DEL and GC delete only links that
/// carry it, so a name collision can never remove another attachment's link.
pub const ALIAS_PREFIX: &str = "weavers-cni:";
/// Start of the owner tag of every DNS entry this plugin registers.
pub const DNS_OWNER_PREFIX: &str = "cni:";
/// Characters of a container ID used as its DNS name.
pub const CONTAINER_ID_LABEL_LEN: usize = 12;

/// The attachment's key, and its owner in the daemon's IPAM:
/// `CONTAINERID/IFNAME`.
pub fn attachment_key(container_id: &str, ifname: &str) -> String {
    format!("{container_id}/{ifname}")
}

/// The owner tag of the attachment's DNS entries: `cni:CONTAINERID/IFNAME`
/// (the prefix keeps GC away from tags users gave with `weavers dns add`).
pub fn dns_owner(container_id: &str, ifname: &str) -> String {
    format!("{DNS_OWNER_PREFIX}{}", attachment_key(container_id, ifname))
}

/// The attachment key in a DNS owner tag this plugin made.
pub fn key_of_dns_owner(owner: &str) -> Option<&str> {
    owner.strip_prefix(DNS_OWNER_PREFIX).filter(|k| k.contains('/'))
}

/// The host end of the veth: `vwv` and 8 hex digits of a hash of the
/// attachment key (11 characters, within Linux's 15).
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    let digest = Blake2s256::digest(attachment_key(container_id, ifname).as_bytes());
    format!("{HOST_VETH_PREFIX}{}", hex(&digest[..4]))
}

/// The alias put on the host end of the veth.
pub fn link_alias(container_id: &str, ifname: &str) -> String {
    format!("{ALIAS_PREFIX}{}", attachment_key(container_id, ifname))
}

/// The attachment key in an alias this plugin set.
pub fn key_of_alias(alias: &str) -> Option<&str> {
    alias.strip_prefix(ALIAS_PREFIX).filter(|k| k.contains('/'))
}

/// The container's DNS label (it resolves as `LABEL.weavers.local`):
/// `K8S_POD_NAME` when given and usable, else the first 12 characters of the
/// container ID, made into one valid label (lowercase letters, digits and
/// `-`; at most 63 characters; a long name keeps its start and gets a hash
/// of the whole at the end, so that two long names stay apart).
pub fn dns_label(pod_name: Option<&str>, container_id: &str) -> String {
    if let Some(label) = pod_name.and_then(|p| to_label(p, p)) {
        return label;
    }
    let short: String = container_id.chars().take(CONTAINER_ID_LABEL_LEN).collect();
    to_label(&short, container_id).unwrap_or_else(|| format!("ctr-{}", hex(&Blake2s256::digest(container_id)[..4])))
}

fn to_label(s: &str, whole: &str) -> Option<String> {
    const MAX: usize = weavers_api::dns_name::MAX_LABEL_LEN;
    let mut out = String::with_capacity(s.len().min(MAX + 1));
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    let trimmed = out.trim_end_matches('-');
    if trimmed.is_empty() {
        return None;
    }
    let label = if trimmed.len() <= MAX {
        trimmed.to_owned()
    } else {
        let tag = hex(&Blake2s256::digest(whole.as_bytes())[..4]);
        format!("{}-{tag}", trimmed[..MAX - 9].trim_end_matches('-'))
    };
    debug_assert!(weavers_api::dns_name::is_valid_name(&label), "{label}");
    Some(label)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "3f6940ab5ab43bc522569d15b23f8c1bbde1d7678b080398506924fc01d72755";

    #[test]
    fn host_veth_names_are_short_stable_and_distinct() {
        let a = host_veth_name(CID, "eth0");
        assert_eq!(a.len(), 11);
        assert!(a.starts_with("vwv") && a[3..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, host_veth_name(CID, "eth0"));
        assert_ne!(a, host_veth_name(CID, "net1"));
        assert_ne!(a, host_veth_name("other", "eth0"));
        // Not an ambiguity of the concatenation.
        assert_ne!(host_veth_name("ab", "c"), host_veth_name("a", "bc"));
        crate::config::check_ifname(&a).unwrap();
    }

    #[test]
    fn keys_owners_and_aliases_round_trip() {
        assert_eq!(attachment_key(CID, "eth0"), format!("{CID}/eth0"));
        let owner = dns_owner(CID, "eth0");
        assert!(weavers_api::dns_name::is_valid_owner(&owner));
        assert_eq!(key_of_dns_owner(&owner), Some(attachment_key(CID, "eth0").as_str()));
        assert_eq!(key_of_dns_owner("web"), None);
        assert_eq!(key_of_dns_owner("cni:"), None);
        let alias = link_alias(CID, "eth0");
        assert_eq!(key_of_alias(&alias), Some(attachment_key(CID, "eth0").as_str()));
        assert_eq!(key_of_alias("something else"), None);
        // The longest container ID still gives a valid owner tag.
        let long = "a".repeat(crate::config::MAX_CONTAINER_ID_LEN);
        assert!(weavers_api::dns_name::is_valid_owner(&dns_owner(&long, "fifteen-chars-x")));
    }

    #[test]
    fn dns_label_prefers_the_pod_name() {
        assert_eq!(dns_label(Some("web-0"), CID), "web-0");
        assert_eq!(dns_label(Some("Web_Frontend.v2"), CID), "web-frontend-v2");
        assert_eq!(dns_label(None, CID), "3f6940ab5ab4");
        assert_eq!(dns_label(Some("---"), CID), "3f6940ab5ab4");
        assert_eq!(dns_label(Some(""), CID), "3f6940ab5ab4");
        assert_eq!(dns_label(None, "My_Ctr.1"), "my-ctr-1");
        assert_eq!(dns_label(Some("é"), "a"), "a");
    }

    #[test]
    fn dns_labels_are_always_valid_and_long_ones_stay_distinct() {
        let long_a = format!("{}-a", "x".repeat(80));
        let long_b = format!("{}-b", "x".repeat(80));
        let (a, b) = (dns_label(Some(&long_a), CID), dns_label(Some(&long_b), CID));
        assert!(a.len() <= 63 && b.len() <= 63);
        assert_ne!(a, b);
        for input in ["a..b", "-x-", "UPPER", "1234", "a-", "_", "x".repeat(63).as_str(), "ünïcode-name", "a b\tc"] {
            let l = dns_label(Some(input), CID);
            assert!(weavers_api::dns_name::is_valid_name(&l), "{input:?} -> {l:?}");
            assert!(!l.contains('.'), "one label: {l}");
        }
        let l = dns_label(None, "_");
        assert!(weavers_api::dns_name::is_valid_name(&l), "{l}");
    }
}
