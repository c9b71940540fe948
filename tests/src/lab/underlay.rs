//! The lab's underlay filter (nftables on the underlay bridge): multicast
//! and IP-fragment drops, blocked host pairs and UDP ports, random loss,
//! and captures.

use super::{Lab, NFT_TABLE};
use crate::capture::Capture;
use crate::netns;
use anyhow::{Context, Result};

impl Lab {
    /// Turns the underlay's multicast drop on or off (frames whose
    /// destination MAC has the group bit, except broadcast, so ARP works).
    pub fn set_underlay_multicast_drop(&self, on: bool) -> Result<()> {
        netns::nft(&self.underlay, &["flush", "chain", "bridge", NFT_TABLE, "mcast"])?;
        if on {
            netns::nft(
                &self.underlay,
                &[
                    "add",
                    "rule",
                    "bridge",
                    NFT_TABLE,
                    "mcast",
                    "ether",
                    "daddr",
                    "&",
                    "01:00:00:00:00:00",
                    "==",
                    "01:00:00:00:00:00",
                    "ether",
                    "daddr",
                    "!=",
                    "ff:ff:ff:ff:ff:ff",
                    "counter",
                    "drop",
                ],
            )?;
        }
        Ok(())
    }

    /// Turns on or off dropping IPv4 fragments on the underlay (packets with
    /// the more-fragments flag or a fragment offset), as many clouds and
    /// middleboxes do: with it on, only datagrams within the MTU cross.
    pub fn set_underlay_fragment_drop(&self, on: bool) -> Result<()> {
        netns::nft(&self.underlay, &["flush", "chain", "bridge", NFT_TABLE, "nofrag"])?;
        if on {
            netns::nft(
                &self.underlay,
                &[
                    "add", "rule", "bridge", NFT_TABLE, "nofrag", "ip", "frag-off", "&", "0x3fff", "!=", "0",
                    "counter", "drop",
                ],
            )?;
        }
        Ok(())
    }

    /// IPv4 fragments the underlay dropped so far (see
    /// [`Lab::set_underlay_fragment_drop`]).
    pub fn underlay_fragments_dropped(&self) -> u64 {
        let out = netns::nft(&self.underlay, &["list", "chain", "bridge", NFT_TABLE, "nofrag"]).unwrap_or_default();
        out.split_whitespace().skip_while(|w| *w != "packets").nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
    }

    /// Blocks all IPv4 traffic between hosts `i` and `j` on the underlay
    /// (both directions).
    pub fn block(&self, i: usize, j: usize) {
        let (a, b) = (self.ip(i), self.ip(j));
        netns::nft(
            &self.underlay,
            &["add", "element", "bridge", NFT_TABLE, "blocked_pairs", &format!("{{ {a} . {b}, {b} . {a} }}")],
        )
        .unwrap_or_else(|e| panic!("block h{i} <-> h{j}: {e:#}"));
    }

    /// Undoes [`Lab::block`].
    pub fn unblock(&self, i: usize, j: usize) {
        let (a, b) = (self.ip(i), self.ip(j));
        netns::nft(
            &self.underlay,
            &["delete", "element", "bridge", NFT_TABLE, "blocked_pairs", &format!("{{ {a} . {b}, {b} . {a} }}")],
        )
        .unwrap_or_else(|e| panic!("unblock h{i} <-> h{j}: {e:#}"));
    }

    /// Blocks UDP to or from `port` on the whole underlay.
    pub fn block_udp_port(&self, port: u16) {
        netns::nft(&self.underlay, &["add", "element", "bridge", NFT_TABLE, "blocked_udp", &format!("{{ {port} }}")])
            .unwrap_or_else(|e| panic!("block UDP port {port}: {e:#}"));
    }

    /// Undoes [`Lab::block_udp_port`].
    pub fn unblock_udp_port(&self, port: u16) {
        netns::nft(
            &self.underlay,
            &["delete", "element", "bridge", NFT_TABLE, "blocked_udp", &format!("{{ {port} }}")],
        )
        .unwrap_or_else(|e| panic!("unblock UDP port {port}: {e:#}"));
    }

    /// Drops `percent` % of the UDP packets crossing the underlay, each at
    /// random (`numgen random mod 100 < percent`); 0 turns it off.
    pub fn set_underlay_loss(&self, percent: u32) -> Result<()> {
        self.set_loss(percent, &["meta", "l4proto", "udp"])
    }

    /// Drops `percent` % of every IPv4 and IPv6 packet crossing the underlay
    /// (UDP, TCP, ICMP alike: the issue's `numgen random mod 100 < 5 drop`
    /// on every underlay port, both directions), each at random; ARP is
    /// spared. 0 turns it off. Replaces [`Lab::set_underlay_loss`]'s rule.
    pub fn set_underlay_ip_loss(&self, percent: u32) -> Result<()> {
        self.set_loss(percent, &["ether", "type", "{ ip, ip6 }"])
    }

    /// One rule in the `loss` chain: packets matching `what` dropped at
    /// random, `percent` % of them (0: no rule).
    fn set_loss(&self, percent: u32, what: &[&str]) -> Result<()> {
        netns::nft(
            &self.underlay,
            &[
                "add",
                "chain",
                "bridge",
                NFT_TABLE,
                "loss",
                "{ type filter hook forward priority -15 ; policy accept ; }",
            ],
        )?;
        netns::nft(&self.underlay, &["flush", "chain", "bridge", NFT_TABLE, "loss"])?;
        if percent > 0 {
            let p = percent.min(100).to_string();
            let mut rule = vec!["add", "rule", "bridge", NFT_TABLE, "loss"];
            rule.extend_from_slice(what);
            rule.extend(["numgen", "random", "mod", "100", "<", &p, "counter", "drop"]);
            netns::nft(&self.underlay, &rule)?;
        }
        Ok(())
    }

    /// Makes every packet crossing the underlay wire-sized: segmentation
    /// offloads (TSO, GSO, UDP GSO) off on each host's eth0 and GRO off on
    /// the bridge's ports, so the kernel cuts TCP and UDP-GSO batches into
    /// MTU-sized packets before they reach the bridge, as a NIC does on the
    /// wire. Without it the bridge sees (and a loss rule drops) whole
    /// batches of up to 64 kB as one packet. Needs `ethtool`.
    pub fn underlay_wire_packets(&self) -> Result<()> {
        let ethtool = ["/usr/sbin/ethtool", "/sbin/ethtool", "/usr/bin/ethtool"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .context("ethtool is not installed (apt-get install ethtool)")?;
        for i in 1..=self.len() {
            netns::run("ip", &["netns", "exec", self.ns(i), ethtool, "-K", "eth0", "tso", "off", "gso", "off"])?;
            // Not every kernel has UDP segmentation offload on veth.
            let _ =
                netns::run("ip", &["netns", "exec", self.ns(i), ethtool, "-K", "eth0", "tx-udp-segmentation", "off"]);
            let port = format!("v{i}");
            netns::run("ip", &["netns", "exec", &self.underlay, ethtool, "-K", &port, "gro", "off"])?;
        }
        Ok(())
    }

    /// Packets the underlay's random loss dropped so far (see
    /// [`Lab::set_underlay_loss`], [`Lab::set_underlay_ip_loss`]; the count
    /// starts again at each change, 0 when it is off).
    pub fn underlay_loss_dropped(&self) -> u64 {
        let out = netns::nft(&self.underlay, &["list", "chain", "bridge", NFT_TABLE, "loss"]).unwrap_or_default();
        out.split_whitespace().skip_while(|w| *w != "packets").nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
    }

    /// Cuts host `i` off from every other host on the underlay (see
    /// [`Lab::block`]); [`Lab::reconnect`] undoes it.
    pub fn isolate(&self, i: usize) {
        for j in (1..=self.len()).filter(|&j| j != i) {
            self.block(i, j);
        }
    }

    /// Undoes [`Lab::isolate`].
    pub fn reconnect(&self, i: usize) {
        for j in (1..=self.len()).filter(|&j| j != i) {
            self.unblock(i, j);
        }
    }

    /// Starts capturing every frame in the underlay namespace.
    pub fn capture_underlay(&self) -> Capture {
        Capture::start(&self.underlay).expect("start an AF_PACKET capture in the underlay")
    }
}
