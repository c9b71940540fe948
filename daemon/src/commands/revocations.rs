//! Revocations from the network's authority: one handed in by `weavers ca
//! revoke` (checked by the node, which keeps it, spreads it and drops the
//! host it voids; saving it is `Control::after_node_work`'s), and the list
//! this host keeps.

use std::time::Instant;
use weavers_api::RevocationInfo;
use weavers_cert::armor;
use weavers_proto::node::Node;

/// Takes a revocation in its text form.
pub fn add(node: &mut Node, text: &str, now: Instant) -> Result<RevocationInfo, String> {
    if node.own_cert().is_none() {
        return Err("this daemon runs in password mode (no --ca): there is nothing to revoke".into());
    }
    let bytes = armor::decode("REVOCATION", text).map_err(|e| e.to_string())?;
    let (body, new) = node.add_revocation(now, &bytes).map_err(|e| format!("revocation refused: {e}"))?;
    Ok(RevocationInfo { name: body.name, revoked_at: body.revoked_at, new })
}

/// Every revocation kept, by name.
pub fn list(node: &Node) -> Vec<RevocationInfo> {
    node.revocation_list()
        .into_iter()
        .map(|(name, revoked_at)| RevocationInfo { name, revoked_at, new: false })
        .collect()
}
