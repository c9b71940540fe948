//! The DNS commands: adding and removing this host's entries in the node,
//! and listing and looking up names in the table the DNS server answers
//! from. Keeping that table up to date, and saving the entries, is
//! `Control::after_node_work`'s (in `mod.rs`), which the dispatcher calls
//! around these.

use crate::control::DnsAdd;
use crate::dns::DnsService;
use std::time::Instant;
use weavers_api::{DnsEntryInfo, DnsLookup, DnsRecordInfo, DnsRemoved};
use weavers_proto::dns::{self, Selector, Visible};
use weavers_proto::node::Node;

/// Adds an entry of this host's.
pub fn add(node: &mut Node, add: DnsAdd, now: Instant) -> Result<DnsEntryInfo, String> {
    let v = node.dns_add(&add.name, add.addr, add.owner.as_deref(), now).map_err(|e| e.to_string())?;
    Ok(entry_info(&v))
}

/// Removes this host's entries that `sel` picks.
pub fn remove(node: &mut Node, sel: &Selector, now: Instant) -> Result<DnsRemoved, String> {
    let removed = node.dns_remove(sel, now).map_err(|e| e.to_string())?;
    Ok(DnsRemoved { removed: removed.iter().map(entry_info).collect() })
}

/// Every name in the server's table, with its addresses and origin.
pub fn records(server: &DnsService) -> Vec<DnsRecordInfo> {
    server.with_table(|t| {
        t.grouped()
            .into_iter()
            .map(|(name, v, addrs)| DnsRecordInfo {
                name: dns::fqdn(&name),
                addrs: addrs.iter().map(ToString::to_string).collect(),
                origin: v.origin_name.clone(),
                origin_key: v.origin.to_base64(),
                owner: v.owner.clone(),
            })
            .collect()
    })
}

/// The addresses of a normalised `name`; `None` when there is no such name.
pub fn lookup(server: &DnsService, name: &str) -> Option<DnsLookup> {
    let addrs = server.with_table(|t| t.lookup_all(name));
    addrs.map(|a| DnsLookup { name: dns::fqdn(name), addrs: a.iter().map(ToString::to_string).collect() })
}

/// The API's view of one visible DNS entry.
fn entry_info(v: &Visible) -> DnsEntryInfo {
    DnsEntryInfo {
        name: dns::fqdn(&v.name),
        addr: v.addr.to_string(),
        owner: v.owner.clone(),
        origin: v.origin_name.clone(),
        origin_key: v.origin.to_base64(),
    }
}
