//! `weavers top`: a live view of this host's peers and groups, refreshed
//! every interval: per-peer and per-group rates (frames and bytes a second,
//! from the difference of two snapshots of the daemon's counters) and the
//! drop counters that moved. Plain text redrawn in place (no terminal
//! library): it works over ssh and in `watch`-less shells.

use std::collections::HashMap;
use std::time::Duration;

use weavers_api::{routes, Client, ClientError, GroupInfo, Status};

use crate::output::clean;

/// One snapshot: the status (peers, drops) and the groups.
pub struct Snapshot {
    /// The daemon's status.
    pub status: Status,
    /// Every group row.
    pub groups: Vec<GroupInfo>,
}

/// Reads a snapshot from the daemon.
pub async fn snapshot(client: &Client) -> Result<Snapshot, ClientError> {
    Ok(Snapshot { status: client.get(routes::STATUS).await?, groups: client.get(routes::GROUPS).await? })
}

fn rate(now: u64, before: u64, secs: f64) -> f64 {
    now.saturating_sub(before) as f64 / secs
}

fn human_bytes(per_s: f64) -> String {
    match per_s {
        r if r >= 1e9 => format!("{:.1}G", r / 1e9),
        r if r >= 1e6 => format!("{:.1}M", r / 1e6),
        r if r >= 1e3 => format!("{:.1}k", r / 1e3),
        r => format!("{r:.0}"),
    }
}

/// The page for `now`, with rates since `before` over `secs` seconds.
pub fn page(before: &Snapshot, now: &Snapshot, secs: f64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let s = &now.status;
    let _ = writeln!(
        out,
        "{} ({})  {} peers  every {secs:.1}s",
        clean(&s.name, 64),
        s.overlay_addr.as_deref().unwrap_or("not exposed"),
        s.peers.len()
    );
    let _ = writeln!(
        out,
        "\n{:<20} {:<11} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "PEER", "STATE", "RTT ms", "TX fr/s", "TX B/s", "RX fr/s", "RX B/s"
    );
    let old: HashMap<&str, _> = before.status.peers.iter().map(|p| (p.public_key.as_str(), p.traffic)).collect();
    for p in &s.peers {
        let o = old.get(p.public_key.as_str()).copied().unwrap_or_default();
        let t = p.traffic;
        let rtt = p.rtt_us.map_or("-".to_owned(), |r| format!("{:.2}", r as f64 / 1000.0));
        let _ = writeln!(
            out,
            "{:<20} {:<11} {:>8} {:>10.0} {:>10} {:>10.0} {:>10}",
            clean(&p.name, 20),
            p.state.as_str(),
            rtt,
            rate(t.tx_frames, o.tx_frames, secs),
            human_bytes(rate(t.tx_bytes, o.tx_bytes, secs)),
            rate(t.rx_frames, o.rx_frames, secs),
            human_bytes(rate(t.rx_bytes, o.rx_bytes, secs)),
        );
    }
    let _ = writeln!(
        out,
        "\n{:<26} {:>7} {:>9} {:>9} {:>10} {:>9} {:>9}",
        "GROUP", "MEMBERS", "PEERS", "LOCAL/s", "SENT/s", "IN/s", "DROP/s"
    );
    let old: HashMap<&str, _> = before.groups.iter().map(|g| (g.group.as_str(), &g.counters)).collect();
    for g in now.groups.iter().filter(|g| !g.link_local) {
        let c = &g.counters;
        let (lf, sf, df, dr) = old.get(g.group.as_str()).map_or((0, 0, 0, 0), |o| {
            (o.local_frames, o.sent_frames, o.delivered_frames, o.dropped_frames + o.refused_frames)
        });
        let _ = writeln!(
            out,
            "{:<26} {:>7} {:>9} {:>9.0} {:>10.0} {:>9.0} {:>9.0}",
            clean(&g.group, 26),
            g.local_members.len(),
            g.subscribed_peers.len(),
            rate(c.local_frames, lf, secs),
            rate(c.sent_frames, sf, secs),
            rate(c.delivered_frames, df, secs),
            rate(c.dropped_frames + c.refused_frames, dr, secs),
        );
    }
    let old: HashMap<&str, u64> = before.status.drops.iter().map(|d| (d.reason.as_str(), d.count)).collect();
    let moved: Vec<String> = s
        .drops
        .iter()
        .filter_map(|d| {
            let r = rate(d.count, old.get(d.reason.as_str()).copied().unwrap_or(0), secs);
            (r > 0.0).then(|| format!("{} {r:.0}/s", clean(&d.reason, 32)))
        })
        .collect();
    let _ = writeln!(out, "\ndrops: {}", if moved.is_empty() { "none".to_owned() } else { moved.join(", ") });
    out
}

/// Redraws [`page`] every `interval` until interrupted (or `count` pages).
pub async fn run(client: &Client, interval: Duration, count: Option<u64>) -> Result<String, ClientError> {
    use std::io::Write as _;
    let mut before = snapshot(client).await?;
    let mut at = tokio::time::Instant::now();
    let mut shown = 0u64;
    loop {
        tokio::time::sleep(interval).await;
        let now = snapshot(client).await?;
        let secs = at.elapsed().as_secs_f64().max(0.001);
        at = tokio::time::Instant::now();
        let text = page(&before, &now, secs);
        let mut stdout = std::io::stdout().lock();
        // Home and clear the screen on a terminal; plain pages otherwise.
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            let _ = stdout.write_all(b"\x1b[H\x1b[2J");
        }
        if stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush()).is_err() {
            return Ok(String::new());
        }
        before = now;
        shown += 1;
        if count.is_some_and(|c| shown >= c) {
            return Ok(String::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weavers_api::{GroupCounters, HandshakeCounts, PeerInfo, PeerState, TrafficCounters};

    fn snap(tx: u64, local: u64, drops: u64) -> Snapshot {
        Snapshot {
            status: Status {
                name: "h1".into(),
                public_key: "K".into(),
                version: "0".into(),
                listen: "0.0.0.0:6783".into(),
                bridge: "weavers".into(),
                overlay_mtu: 1375,
                overlay_addr: Some("10.32.0.1/12".into()),
                peers: vec![PeerInfo {
                    name: "h2".into(),
                    public_key: "K2".into(),
                    endpoint: None,
                    state: PeerState::Connected,
                    via: None,
                    rtt_us: Some(420),
                    session_age_s: None,
                    overlay_addr: None,
                    traffic: TrafficCounters { tx_frames: tx, tx_bytes: tx * 100, rx_frames: 0, rx_bytes: 0 },
                }],
                pending: vec![],
                drops: vec![weavers_api::DropCount { reason: "replay".into(), count: drops }],
                handshakes: HandshakeCounts::default(),
                tap_tx_dropped: 0,
                peers_down: 0,
                stalls: 0,
                local_health: 0,
                segmentation: Default::default(),
            },
            groups: vec![GroupInfo {
                group: "239.1.1.1".into(),
                link_local: false,
                filter: None,
                local_members: vec![],
                subscribed_peers: vec![],
                counters: GroupCounters { local_frames: local, ..Default::default() },
            }],
        }
    }

    #[test]
    fn rates_are_differences_over_the_interval() {
        let text = page(&snap(100, 10, 0), &snap(300, 50, 4), 2.0);
        let peer = text.lines().find(|l| l.starts_with("h2")).unwrap();
        let cols: Vec<&str> = peer.split_whitespace().collect();
        assert_eq!(cols, ["h2", "connected", "0.42", "100", "10.0k", "0", "0"], "{text}");
        let group = text.lines().find(|l| l.starts_with("239.1.1.1")).unwrap();
        assert_eq!(group.split_whitespace().nth(3), Some("20"), "{text}");
        assert!(text.contains("drops: replay 2/s"), "{text}");
        assert!(page(&snap(1, 1, 1), &snap(1, 1, 1), 1.0).contains("drops: none"));
    }
}
