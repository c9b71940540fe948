//! Policy-routing rules (`ip rule`): the rules that send what one source
//! address sends to a routing table of its own.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::route::RouteHeader;
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::IpVersion;

use crate::error::errno_of;
use crate::route::max_prefix_len;
use crate::{Netlink, NetlinkError};

/// A rule `from SRC/LEN lookup TABLE` (`ip rule add from SRC lookup TABLE
/// pref PRIORITY`), as [`Netlink::add_source_rule`] adds it and
/// [`Netlink::rules_to_table`] lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceRule {
    /// The source the rule matches; `None` matches every source.
    pub src: Option<IpAddr>,
    /// The source's prefix length.
    pub src_len: u8,
    /// The table it looks up.
    pub table: u32,
    /// Its priority (`pref`): lower goes first.
    pub priority: u32,
}

impl SourceRule {
    /// `from src/32 lookup table pref priority` (`/128` for IPv6).
    pub fn from_host(src: IpAddr, table: u32, priority: u32) -> SourceRule {
        SourceRule { src: Some(src), src_len: max_prefix_len(src), table, priority }
    }

    fn message(&self, family: AddressFamily) -> RuleMessage {
        let mut m = RuleMessage::default();
        m.header.family = family;
        m.header.action = RuleAction::ToTable;
        m.header.src_len = self.src_len;
        // Tables past 255 go in FRA_TABLE only.
        m.header.table = u8::try_from(self.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
        m.attributes.push(RuleAttribute::Table(self.table));
        m.attributes.push(RuleAttribute::Priority(self.priority));
        if let Some(src) = self.src {
            m.attributes.push(RuleAttribute::Source(src));
        }
        m
    }

    fn target(&self) -> String {
        let from = self.src.map_or_else(|| "all".to_owned(), |s| format!("{s}/{}", self.src_len));
        format!("from {from} lookup {} pref {}", self.table, self.priority)
    }
}

fn family_of(v6: bool) -> AddressFamily {
    if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

impl Netlink {
    /// Adds `rule`. `false` when the same rule was there already.
    pub async fn add_source_rule(&self, rule: &SourceRule) -> Result<bool, NetlinkError> {
        let v6 = rule.src.is_some_and(|s| s.is_ipv6());
        if let Some(src) = rule.src {
            if rule.src_len > max_prefix_len(src) {
                return Err(NetlinkError::InvalidPrefix {
                    addr: src,
                    prefix_len: rule.src_len,
                    why: "prefix length too long".into(),
                });
            }
        }
        let mut req = self.handle.rule().add();
        *req.message_mut() = rule.message(family_of(v6));
        match req.execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno_of(&e) == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(NetlinkError::request("adding rule", rule.target())(e)),
        }
    }

    /// The IPv4 (or, with `v6`, IPv6) rules that look up `table`, in
    /// priority order.
    pub async fn rules_to_table(&self, v6: bool, table: u32) -> Result<Vec<SourceRule>, NetlinkError> {
        let version = if v6 { IpVersion::V6 } else { IpVersion::V4 };
        let mut rules = self.handle.rule().get(version).execute();
        let mut out = Vec::new();
        while let Some(m) = rules.try_next().await.map_err(NetlinkError::request("listing rules", "(all)"))? {
            if m.header.action != RuleAction::ToTable {
                continue;
            }
            let mut rule =
                SourceRule { src: None, src_len: m.header.src_len, table: u32::from(m.header.table), priority: 0 };
            for attr in &m.attributes {
                match attr {
                    RuleAttribute::Table(t) => rule.table = *t,
                    RuleAttribute::Priority(p) => rule.priority = *p,
                    RuleAttribute::Source(s) => rule.src = Some(*s),
                    _ => {}
                }
            }
            if rule.table == table {
                out.push(rule);
            }
        }
        out.sort_by_key(|r| r.priority);
        Ok(out)
    }

    /// Deletes `rule`. `false` when there was no such rule.
    pub async fn delete_source_rule(&self, rule: &SourceRule) -> Result<bool, NetlinkError> {
        let v6 = rule.src.is_some_and(|s| s.is_ipv6());
        match self.handle.rule().del(rule.message(family_of(v6))).execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno_of(&e) == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(NetlinkError::request("deleting rule", rule.target())(e)),
        }
    }
}
