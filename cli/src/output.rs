//! Human output: aligned tables and the `status` page.
//!
//! Strings from the daemon may come from other hosts (peer names are
//! gossiped), so they pass through [`clean`] before they reach a terminal.

use std::fmt::Write as _;

use weavers_api::{
    DnsEntryInfo, DnsRecordInfo, DnsStats, FilterInfo, GroupInfo, IpamStatus, PeerInfo, PeerState, Status,
};

/// Longest cell printed in a table; longer values are cut with `...`.
const MAX_CELL: usize = 40;
/// How much of a public key the peer table shows.
const KEY_PREFIX: usize = 10;

/// Make a string from the network safe and bounded for a terminal: control
/// characters (escape sequences, newlines) become `?`, and it is cut to
/// `max` characters.
pub fn clean(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).map(|c| if c.is_control() { '?' } else { c }).collect();
    if s.chars().nth(max).is_some() {
        out.push_str("...");
    }
    out
}

/// Column alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table with a header row, columns two spaces apart, no trailing blanks.
#[derive(Debug)]
pub struct Table {
    headers: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[(&'static str, Align)]) -> Self {
        Table { headers: headers.to_vec(), rows: Vec::new() }
    }

    /// Add a row; cells are cleaned. Missing cells print empty.
    pub fn row(&mut self, cells: Vec<String>) {
        self.row_max(cells, MAX_CELL);
    }

    /// Add a row whose cells may be up to `max` characters (DNS names).
    pub fn row_max(&mut self, cells: Vec<String>, max: usize) {
        self.rows.push(cells.iter().map(|c| clean(c, max)).collect());
    }

    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|(h, _)| h.len()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().take(n).enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|(h, _)| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (_, align)) in self.headers.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                let pad = widths[i] - cell.chars().count();
                if i > 0 {
                    line.push_str("  ");
                }
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn or_dash(v: Option<&str>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

/// The start of a public key, enough to tell peers apart.
pub fn short_key(key: &str) -> String {
    if key.chars().count() <= KEY_PREFIX + 3 {
        return key.to_string();
    }
    let mut s: String = key.chars().take(KEY_PREFIX).collect();
    s.push_str("...");
    s
}

/// Bytes as `wg show` gives them: `512 B`, then KiB, MiB, GiB, TiB with two
/// decimals (rounded; integers only).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut unit = 0;
    let mut div: u128 = 1024;
    while unit + 1 < UNITS.len() && u128::from(n) >= div * 1024 {
        unit += 1;
        div *= 1024;
    }
    let hundredths = (u128::from(n) * 100 + div / 2) / div;
    format!("{}.{:02} {}", hundredths / 100, hundredths % 100, UNITS[unit])
}

/// An age as the two largest units: `7s ago`, `2m 5s ago`, `3h 4m ago`,
/// `2d 1h ago`.
pub fn ago(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let text = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    };
    text + " ago"
}

/// Milliseconds with two decimals, rounded to the nearest 10 us (in integers:
/// no float formatting surprises).
pub fn rtt_ms(rtt_us: Option<u64>) -> String {
    match rtt_us {
        Some(us) => {
            let hundredths = us.saturating_add(5) / 10;
            format!("{}.{:02}", hundredths / 100, hundredths % 100)
        }
        None => "-".into(),
    }
}

/// The `peer ls` table, sorted by name then key.
pub fn peer_table(peers: &[PeerInfo]) -> String {
    let mut peers: Vec<&PeerInfo> = peers.iter().collect();
    peers.sort_by(|a, b| (&a.name, &a.public_key).cmp(&(&b.name, &b.public_key)));
    let mut t = Table::new(&[
        ("NAME", Align::Left),
        ("PUBLIC KEY", Align::Left),
        ("ENDPOINT", Align::Left),
        ("STATE", Align::Left),
        ("VIA", Align::Left),
        ("RTT(ms)", Align::Right),
        ("HANDSHAKE", Align::Right),
        ("SENT", Align::Right),
        ("RECEIVED", Align::Right),
    ]);
    for p in peers {
        t.row(vec![
            or_dash(Some(&p.name)),
            short_key(&p.public_key),
            or_dash(p.endpoint.as_deref()),
            p.state.as_str().to_string(),
            or_dash(p.via.as_deref()),
            rtt_ms(p.rtt_us),
            p.session_age_s.map(ago).unwrap_or_else(|| "-".into()),
            bytes(p.traffic.tx_bytes),
            bytes(p.traffic.rx_bytes),
        ]);
    }
    t.render()
}

fn filter_text(f: &FilterInfo) -> String {
    if f.mode == "exclude" && f.sources.is_empty() {
        return "any source".into();
    }
    let verb = if f.mode == "exclude" { "all but" } else { "only" };
    clean(&format!("{verb} {}", f.sources.join(",")), 80)
}

/// The `groups` table: one row per group, sorted by group.
pub fn group_table(groups: &[GroupInfo]) -> String {
    let mut groups: Vec<&GroupInfo> = groups.iter().collect();
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    let mut t = Table::new(&[
        ("GROUP", Align::Left),
        ("LOCAL MEMBERS", Align::Right),
        ("THIS HOST WANTS", Align::Left),
        ("SUBSCRIBED PEERS", Align::Left),
        ("LOCAL TX", Align::Right),
        ("SENT", Align::Right),
        ("DELIVERED", Align::Right),
        ("DROPPED", Align::Right),
    ]);
    for g in groups {
        let peers: Vec<String> = if g.link_local {
            vec!["(link-local: all)".into()]
        } else {
            g.subscribed_peers
                .iter()
                .map(|p| clean(if p.name.is_empty() { &p.public_key } else { &p.name }, 32))
                .collect()
        };
        t.row(vec![
            clean(&g.group, 40),
            g.local_members.len().to_string(),
            g.filter.as_ref().map_or("-".into(), filter_text),
            if peers.is_empty() { "-".into() } else { peers.join(",") },
            g.counters.local_frames.to_string(),
            g.counters.sent_frames.to_string(),
            g.counters.delivered_frames.to_string(),
            g.counters.dropped_frames.to_string(),
        ]);
    }
    t.render()
}

/// Longest DNS name (253) plus a little: names are shown whole.
const NAME_CELL: usize = 260;

/// The `dns ls` table: one row per address, sorted by name, then address.
pub fn dns_table(records: &[DnsRecordInfo]) -> String {
    let mut rows: Vec<(&str, &str, &str, Option<&str>)> = records
        .iter()
        .flat_map(|r| r.addrs.iter().map(move |a| (r.name.as_str(), a.as_str(), r.origin.as_str(), r.owner.as_deref())))
        .collect();
    rows.sort();
    let mut t =
        Table::new(&[("NAME", Align::Left), ("ADDRESS", Align::Left), ("ORIGIN", Align::Left), ("OWNER", Align::Left)]);
    for (name, addr, origin, owner) in rows {
        t.row_max(vec![name.into(), addr.into(), or_dash(Some(origin)), or_dash(owner)], NAME_CELL);
    }
    t.render()
}

/// `dns rm`: one line per removed entry.
pub fn dns_removed(removed: &[DnsEntryInfo]) -> String {
    if removed.is_empty() {
        return "nothing removed (no such entry)\n".into();
    }
    removed
        .iter()
        .map(|e| {
            format!(
                "removed {} {} (added by {})\n",
                clean(&e.name, NAME_CELL),
                clean(&e.addr, 64),
                clean(&or_dash(Some(&e.origin)), 64)
            )
        })
        .collect()
}

/// `dns stats`.
pub fn dns_stats(s: &DnsStats) -> String {
    let mut out = String::new();
    let listening = match (&s.listening, &s.error) {
        (Some(a), _) => clean(a, 64),
        (None, Some(e)) => clean(e, 200),
        (None, None) => "not yet (weavers expose gives the bridge an address)".into(),
    };
    let fields = [
        ("listening", listening),
        ("upstream", s.upstream.as_deref().map_or("none (other names are refused)".into(), |u| clean(u, 64))),
        ("entries", s.entries.to_string()),
        ("queries", format!("{} UDP, {} TCP", s.udp_queries, s.tcp_queries)),
        ("answers", s.answers.to_string()),
        ("no data", s.nodata.to_string()),
        ("nxdomain", s.nxdomain.to_string()),
        ("refused", s.refused.to_string()),
        ("malformed", format!("{} answered FORMERR, {} dropped", s.formerr, s.dropped)),
        ("not implemented", s.notimp.to_string()),
        ("forwarded", format!("{} ({} failed)", s.forwarded, s.forward_failed)),
        ("tcp rejected", s.tcp_rejected.to_string()),
    ];
    for (k, v) in fields {
        let _ = writeln!(out, "{k:<16} {v}");
    }
    out
}

/// The `ipam ls` page: the range, its spans and owners, this host's allocations.
pub fn ipam_page(s: &IpamStatus) -> String {
    let mut out = format!(
        "range {}  {}  free here {}\n",
        clean(&s.range, 64),
        if s.seeded { "shared out" } else { "not shared out yet" },
        s.free
    );
    for p in &s.problems {
        out.push_str(&format!("PROBLEM: {}\n", clean(p, 200)));
    }
    let mut t =
        Table::new(&[("FIRST", Align::Left), ("LAST", Align::Left), ("SIZE", Align::Right), ("OWNER", Align::Left)]);
    for sp in &s.spans {
        let owner = if sp.conflict { format!("{} (CONFLICT)", clean(&sp.owner, 48)) } else { clean(&sp.owner, 48) };
        t.row(vec![clean(&sp.first, 40), clean(&sp.last, 40), sp.size.to_string(), owner]);
    }
    out.push_str(&t.render());
    if !s.allocations.is_empty() {
        out.push('\n');
        let mut a = Table::new(&[("ADDRESS", Align::Left), ("OWNER", Align::Left)]);
        for r in &s.allocations {
            a.row(vec![clean(&r.address, 40), clean(&r.owner, 80)]);
        }
        out.push_str(&a.render());
    }
    out
}

/// The `status` page.
pub fn status_page(s: &Status) -> String {
    let mut out = String::new();
    let overlay = match &s.overlay_addr {
        Some(a) => clean(a, 64),
        None => "none (weavers expose gives one)".into(),
    };
    let fields = [
        ("name", clean(&s.name, 64)),
        ("public key", clean(&s.public_key, 64)),
        ("version", clean(&s.version, 64)),
        ("listen", clean(&s.listen, 64)),
        ("bridge", clean(&s.bridge, 64)),
        ("overlay MTU", s.overlay_mtu.to_string()),
        ("overlay address", overlay),
    ];
    for (k, v) in fields {
        let _ = writeln!(out, "{k:<16} {v}");
    }

    out.push('\n');
    if s.peers.is_empty() {
        out.push_str("peers: none\n");
    } else {
        let count = |st: PeerState| s.peers.iter().filter(|p| p.state == st).count();
        let _ = writeln!(
            out,
            "peers: {} ({} connected, {} relayed, {} connecting, {} unreachable)",
            s.peers.len(),
            count(PeerState::Connected),
            count(PeerState::Relayed),
            count(PeerState::Connecting),
            count(PeerState::Unreachable),
        );
        out.push_str(&peer_table(&s.peers));
    }

    if !s.pending.is_empty() {
        let _ = writeln!(out, "\naddresses not yet connected: {}", s.pending.len());
        let mut t = Table::new(&[("ENDPOINT", Align::Left), ("ATTEMPTS", Align::Right)]);
        for p in &s.pending {
            t.row(vec![p.endpoint.clone(), p.attempts.to_string()]);
        }
        out.push_str(&t.render());
    }

    let h = s.handshakes;
    let _ = writeln!(
        out,
        "\nhandshakes: {} initiated, {} completed, {} failed, {} rate limited, {} bad mac1, {} cookies sent, {} \
         cookies refused, {} certificates refused",
        h.initiated,
        h.completed,
        h.failed,
        h.rate_limited,
        h.mac1_refused,
        h.cookies_sent,
        h.cookies_refused,
        h.certs_refused
    );
    let _ = writeln!(out, "peers declared down since start: {}", s.peers_down);
    if s.stalls > 0 || s.local_health > 0 {
        let _ = writeln!(
            out,
            "own stalls since start: {} (local health {}: probe timeouts x{})",
            s.stalls,
            s.local_health,
            s.local_health + 1
        );
    }
    let g = s.segmentation;
    if g.superframes_segmented > 0 || g.retransmissions_seen > 0 || g.peers_lossy > 0 {
        let _ = writeln!(
            out,
            "lossy paths: {} peers now, {} TCP retransmissions seen, {} super-frames cut into {} segments",
            g.peers_lossy, g.retransmissions_seen, g.superframes_segmented, g.segments_sent
        );
    }
    if g.parity_sent > 0 || g.parity_received > 0 {
        let _ = writeln!(
            out,
            "parity: {} sent, {} received, {} lost datagrams rebuilt, {} groups lost more than one",
            g.parity_sent, g.parity_received, g.datagrams_repaired, g.repairs_failed
        );
    }
    let drops: Vec<String> =
        s.drops.iter().filter(|d| d.count > 0).map(|d| format!("{} {}", clean(&d.reason, MAX_CELL), d.count)).collect();
    if drops.is_empty() {
        out.push_str("drops: none\n");
    } else {
        let _ = writeln!(out, "drops: {}", drops.join(", "));
    }
    out
}

/// `weavers ping`'s line: `h2 (KEY...): direct to 10.99.0.2:6783, 0.42 ms, overlay MTU 1375`.
pub fn ping_line(p: &weavers_api::PingResult) -> String {
    let key: String = p.public_key.chars().take(8).collect();
    let path = match &p.via {
        Some(v) => format!("relayed via {}", clean(v, MAX_CELL)),
        None => "direct".to_owned(),
    };
    let to = p.endpoint.as_deref().map(|e| format!(" to {}", clean(e, 64))).unwrap_or_default();
    let rtt = p.rtt_us as f64 / 1000.0;
    let what = if p.via.is_some() { "round trip to the relay" } else { "round trip" };
    format!(
        "{} ({}...): {path}{to}, {what} {rtt:.2} ms, overlay MTU {}\n",
        clean(&p.name, MAX_CELL),
        clean(&key, 8),
        p.overlay_mtu
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use weavers_api::{DropCount, HandshakeCounts, PendingPeer, TrafficCounters};

    fn peer(name: &str, state: PeerState) -> PeerInfo {
        PeerInfo {
            name: name.into(),
            public_key: format!("{name}KEY4567890abcdefghijklmnopqrstuvwxyz0123="),
            endpoint: Some("192.0.2.2:6783".into()),
            state,
            via: None,
            rtt_us: Some(420),
            session_age_s: Some(3),
            overlay_addr: None,
            traffic: TrafficCounters { tx_frames: 12345, tx_bytes: 1_264_000, rx_frames: 7, rx_bytes: 980 },
        }
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&[("A", Align::Left), ("BB", Align::Right), ("C", Align::Left)]);
        t.row(vec!["xyz".into(), "1".into(), "".into()]);
        t.row(vec!["q".into(), "12345".into(), "end".into()]);
        assert_eq!(
            t.render(),
            "A       BB  C\n\
             xyz      1\n\
             q    12345  end\n"
        );
    }

    #[test]
    fn peer_table_rows() {
        let mut relayed = peer("c", PeerState::Relayed);
        relayed.endpoint = None;
        relayed.via = Some("b".into());
        relayed.rtt_us = None;
        relayed.session_age_s = Some(125);
        let mut unnamed = peer("", PeerState::Connecting);
        unnamed.rtt_us = Some(1_999_996);
        unnamed.session_age_s = None;
        let text = peer_table(&[relayed, peer("b", PeerState::Connected), unnamed]);
        assert_eq!(
            text,
            "\
NAME  PUBLIC KEY     ENDPOINT        STATE       VIA  RTT(ms)  HANDSHAKE      SENT  RECEIVED
-     KEY4567890...  192.0.2.2:6783  connecting  -    2000.00          -  1.21 MiB     980 B
b     bKEY456789...  192.0.2.2:6783  connected   -       0.42     3s ago  1.21 MiB     980 B
c     cKEY456789...  -               relayed     b          -  2m 5s ago  1.21 MiB     980 B
"
        );
    }

    #[test]
    fn bytes_and_ages_read_like_wg_show() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.00 KiB");
        assert_eq!(bytes(1_264_000), "1.21 MiB");
        assert_eq!(bytes(1024 * 1024 - 1), "1024.00 KiB");
        assert_eq!(bytes(5 << 30), "5.00 GiB");
        assert_eq!(bytes(u64::MAX), "16777216.00 TiB");
        assert_eq!(ago(0), "0s ago");
        assert_eq!(ago(59), "59s ago");
        assert_eq!(ago(125), "2m 5s ago");
        assert_eq!(ago(3 * 3600 + 4 * 60 + 5), "3h 4m ago");
        assert_eq!(ago(2 * 86_400 + 3600), "2d 1h ago");
        assert_eq!(ago(u64::MAX), "213503982334601d 7h ago");
    }

    #[test]
    fn rtt_rounds_to_hundredths_of_ms() {
        assert_eq!(rtt_ms(None), "-");
        assert_eq!(rtt_ms(Some(0)), "0.00");
        assert_eq!(rtt_ms(Some(4)), "0.00");
        assert_eq!(rtt_ms(Some(5)), "0.01");
        assert_eq!(rtt_ms(Some(1995)), "2.00");
        assert_eq!(rtt_ms(Some(12_345)), "12.35");
        assert_eq!(rtt_ms(Some(u64::MAX)), "18446744073709551.61");
    }

    #[test]
    fn hostile_strings_are_cleaned() {
        assert_eq!(clean("a\u{1b}[2Jb\nc", 40), "a?[2Jb?c");
        assert_eq!(clean("abcdef", 3), "abc...");
        assert_eq!(short_key("short"), "short");
        assert_eq!(short_key("ééééééééééééééé"), "éééééééééé...");
        let mut p = peer("x", PeerState::Connected);
        p.name = format!("evil\u{1b}]0;title\u{7}{}", "n".repeat(100));
        let text = peer_table(&[p]);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn dns_listings() {
        let rec = |name: &str, addrs: &[&str], origin: &str, owner: Option<&str>| DnsRecordInfo {
            name: name.into(),
            addrs: addrs.iter().map(|a| a.to_string()).collect(),
            origin: origin.into(),
            origin_key: "K".into(),
            owner: owner.map(Into::into),
        };
        let long = format!("{}.weavers.local", "x".repeat(60));
        let text = dns_table(&[
            rec("web.weavers.local", &["10.0.0.2", "10.0.0.1"], "h2", Some("ctr\u{1b}1")),
            rec("aapl.orders.aex.weavers.local", &["239.1.0.1"], "h1", None),
            rec(&long, &["fd00::1"], "h3", None),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].starts_with("NAME"));
        assert!(lines[1].starts_with("aapl.orders.aex.weavers.local") && lines[1].contains(" 239.1.0.1 "));
        assert!(lines[2].contains(" 10.0.0.1 ") && lines[2].ends_with("ctr?1"), "{text}");
        assert!(lines[4].starts_with(&long), "long names are shown whole: {text}");
        assert_eq!(dns_table(&[]), "NAME  ADDRESS  ORIGIN  OWNER\n");

        let e = DnsEntryInfo {
            name: "web.weavers.local".into(),
            addr: "10.0.0.1".into(),
            owner: None,
            origin: "h1".into(),
            origin_key: "K".into(),
        };
        assert_eq!(dns_removed(&[e]), "removed web.weavers.local 10.0.0.1 (added by h1)\n");
        assert_eq!(dns_removed(&[]), "nothing removed (no such entry)\n");
        let st = dns_stats(&DnsStats {
            listening: Some("10.40.0.1:53".into()),
            formerr: 2,
            dropped: 1,
            ..Default::default()
        });
        assert!(st.contains("listening        10.40.0.1:53\n"), "{st}");
        assert!(st.contains("malformed        2 answered FORMERR, 1 dropped\n"), "{st}");
    }

    #[test]
    fn status_page_sections() {
        let status = Status {
            name: "a".into(),
            public_key: "KEYA".into(),
            version: "0.1.0".into(),
            listen: "0.0.0.0:6783".into(),
            bridge: "weavers".into(),
            overlay_mtu: 1376,
            overlay_addr: Some("10.32.0.1/12".into()),
            peers: vec![peer("b", PeerState::Connected), peer("c", PeerState::Unreachable)],
            pending: vec![PendingPeer { endpoint: "192.0.2.9:6783".into(), attempts: 3 }],
            drops: vec![
                DropCount { reason: "replay".into(), count: 2 },
                DropCount { reason: "bad_tag".into(), count: 0 },
            ],
            handshakes: HandshakeCounts {
                initiated: 4,
                completed: 3,
                failed: 1,
                rate_limited: 0,
                mac1_refused: 7,
                cookies_sent: 2,
                cookies_refused: 1,
                certs_refused: 5,
            },
            tap_tx_dropped: 0,
            peers_down: 3,
            stalls: 4,
            local_health: 2,
            segmentation: weavers_api::SegmentationCounts {
                superframes_segmented: 5,
                segments_sent: 200,
                retransmissions_seen: 9,
                peers_lossy: 1,
                flows_evicted: 0,
                ..Default::default()
            },
        };
        let text = status_page(&status);
        let lines: Vec<&str> = text.lines().collect();
        for want in [
            "name             a",
            "public key       KEYA",
            "listen           0.0.0.0:6783",
            "overlay MTU      1376",
            "overlay address  10.32.0.1/12",
            "peers: 2 (1 connected, 0 relayed, 0 connecting, 1 unreachable)",
            "addresses not yet connected: 1",
            "192.0.2.9:6783         3",
            "handshakes: 4 initiated, 3 completed, 1 failed, 0 rate limited, 7 bad mac1, 2 cookies sent, 1 cookies refused, 5 certificates refused",
            "peers declared down since start: 3",
            "own stalls since start: 4 (local health 2: probe timeouts x3)",
            "lossy paths: 1 peers now, 9 TCP retransmissions seen, 5 super-frames cut into 200 segments",
            "drops: replay 2",
        ] {
            assert!(lines.contains(&want), "missing {want:?} in:\n{text}");
        }
        assert!(text.contains("\nNAME  PUBLIC KEY"));
        assert!(!text.contains("bad_tag"), "zero drop counters are left out");

        let empty = Status { peers: vec![], pending: vec![], drops: vec![], overlay_addr: None, ..status };
        let text = status_page(&empty);
        assert!(text.contains("peers: none\n"));
        assert!(text.contains("drops: none\n"));
        assert!(text.contains("overlay address  none"));
        assert!(!text.contains("not yet connected"));
        let quiet = Status { segmentation: Default::default(), ..empty };
        assert!(!status_page(&quiet).contains("lossy paths"), "no line while nothing was lossy");
    }
}
