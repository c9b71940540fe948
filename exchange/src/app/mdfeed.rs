//! The market-data consumer that `aex record` and `aex view` share: finds
//! the symbols' market-data groups by DNS, joins them on port 7702, runs one
//! [`stream::Receiver`] per `md.SSS` stream, re-requests gaps from the
//! address the stream's packets come from (through the unicast socket,
//! where the retransmissions arrive), gives up on a gap after
//! [`stream::GIVE_UP_NS`], and fences epochs: an ITCH message whose epoch is
//! lower than the highest seen is dropped.
//!
//! Every datagram is hostile: anything that does not decode, or belongs to
//! no stream of ours, is counted and dropped.

use crate::net::{self, DatagramKind, GroupKind};
use crate::stream::{Receiver, Start};
use crate::symbols::SymbolTable;
use crate::types::{Epoch, SymbolIndex};
use crate::wire::itch::{self, ItchMessage};
use crate::wire::mold::{Packet, Session};
use anyhow::{anyhow, Context};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// How often gaps are looked at (re-requests, giving up).
const TICK: Duration = Duration::from_millis(10);

/// The flags every market-data consumer has.
#[derive(Debug, Clone, clap::Args)]
pub struct FeedArgs {
    /// Symbol indices to subscribe to (`1-50,60`); default all
    #[arg(long)]
    pub only: Option<String>,
    /// The overlay DNS server (`IP` or `IP:PORT`); default the first
    /// nameserver of /etc/resolv.conf
    #[arg(long)]
    pub dns: Option<String>,
    /// The overlay address to bind the unicast socket to and join the
    /// groups on; default the source address towards 239.192.0.1
    #[arg(long)]
    pub bind: Option<Ipv4Addr>,
    /// How long to keep asking the DNS for the groups' names, in seconds
    #[arg(long, default_value_t = 30)]
    pub resolve_wait: u64,
}

/// One market-data message delivered in stream order.
#[derive(Clone, Debug)]
pub struct Delivered {
    /// The symbol of the stream.
    pub symbol: SymbolIndex,
    /// Its sequence number in the stream.
    pub seq: u64,
    /// The ITCH bytes as received.
    pub bytes: Vec<u8>,
    /// The decoded message.
    pub message: ItchMessage,
}

/// The feed's counters.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct FeedStats {
    /// Datagrams received on both sockets.
    pub datagrams: u64,
    /// Messages delivered.
    pub messages: u64,
    /// Re-requests sent.
    pub gaps_requested: u64,
    /// Messages given up on (never recovered).
    pub gaps_unrecovered: u64,
    /// Messages dropped for an epoch lower than the highest seen.
    pub stale_epoch_dropped: u64,
    /// Datagrams or messages that did not decode, or belong to no stream of ours.
    pub dropped_malformed: u64,
    /// The highest epoch seen.
    pub epoch: Epoch,
}

struct StreamState {
    symbol: SymbolIndex,
    session: Session,
    rx: Receiver,
    /// Where the stream's packets come from (where re-requests go).
    source: Option<SocketAddr>,
}

/// Resolved groups and open sockets, receiving every selected symbol's
/// market data.
pub struct Feed {
    groups: UdpSocket,
    unicast: UdpSocket,
    streams: Vec<StreamState>,
    by_session: HashMap<Session, usize>,
    stats: FeedStats,
    started: Instant,
    buf: Vec<u8>,
    buf2: Vec<u8>,
}

/// The Mold session name of a symbol's market data (`md.001`).
pub fn md_session(symbol: SymbolIndex) -> Session {
    // At most "md.65535": always a valid session name.
    Session::new(&format!("md.{symbol:03}")).unwrap_or(Session([b' '; 10]))
}

impl Feed {
    /// Resolves the groups of the selected symbols, joins them and opens the
    /// unicast socket. Must run inside a tokio runtime.
    pub fn open(args: &FeedArgs, table: &SymbolTable, start: Start) -> anyhow::Result<Feed> {
        let symbols = net::select_symbols(table, args.only.as_deref()).map_err(|e| anyhow!("--only {e}"))?;
        let dns = match &args.dns {
            Some(s) => net::parse_dns_server(s).map_err(|e| anyhow!("--dns {e}"))?,
            None => net::system_dns().context("finding the DNS server (give --dns)")?,
        };
        let addr = match args.bind {
            Some(a) => a,
            None => net::overlay_addr().context("finding the overlay address (give --bind)")?,
        };
        let wait = Duration::from_secs(args.resolve_wait);
        let groups = net::resolve_groups(dns, symbols.iter().copied(), GroupKind::MarketData, wait)
            .context("resolving the market-data groups")?;
        let addrs: Vec<Ipv4Addr> = groups.iter().map(|&(_, g)| g).collect();
        let gsock = net::group_receiver(net::MD_PORT, &addrs, addr, true)
            .with_context(|| format!("joining the market-data groups on {addr}"))?;
        let usock =
            net::unicast_socket(addr, 0, true).with_context(|| format!("binding the unicast socket to {addr}"))?;
        let streams: Vec<StreamState> = symbols
            .iter()
            .map(|s| StreamState {
                symbol: s.index,
                session: md_session(s.index),
                rx: Receiver::new(start),
                source: None,
            })
            .collect();
        let by_session = streams.iter().enumerate().map(|(i, s)| (s.session, i)).collect();
        Ok(Feed {
            groups: UdpSocket::from_std(gsock)?,
            unicast: UdpSocket::from_std(usock)?,
            streams,
            by_session,
            stats: FeedStats::default(),
            started: Instant::now(),
            buf: vec![0u8; 65536],
            buf2: vec![0u8; 65536],
        })
    }

    /// The counters.
    pub fn stats(&self) -> FeedStats {
        self.stats
    }

    /// The symbols subscribed to, in index order.
    pub fn symbols(&self) -> impl Iterator<Item = SymbolIndex> + '_ {
        self.streams.iter().map(|s| s.symbol)
    }

    /// The next message expected per symbol.
    pub fn next_seqs(&self) -> impl Iterator<Item = (SymbolIndex, Option<u64>)> + '_ {
        self.streams.iter().map(|s| (s.symbol, s.rx.next()))
    }

    fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Waits for one datagram (or at most one tick), handles it and the
    /// gaps, and appends what it delivered to `out`. Socket errors other
    /// than would-block are returned.
    pub async fn step(&mut self, out: &mut Vec<Delivered>) -> anyhow::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        let mut buf2 = std::mem::take(&mut self.buf2);
        let got = tokio::select! {
            r = self.groups.recv_from(&mut buf) => Some((r, true)),
            r = self.unicast.recv_from(&mut buf2) => Some((r, false)),
            _ = tokio::time::sleep(TICK) => None,
        };
        let result = match got {
            Some((Ok((n, from)), from_group)) => {
                let d = if from_group { &buf[..n] } else { &buf2[..n] };
                self.on_datagram(d, from, from_group, out);
                Ok(())
            }
            // ICMP errors from an earlier send (the source went away) are not fatal.
            Some((Err(e), _)) if is_transient(&e) => Ok(()),
            Some((Err(e), _)) => Err(anyhow!(e).context("receiving market data")),
            None => Ok(()),
        };
        self.buf = buf;
        self.buf2 = buf2;
        result?;
        self.poll_gaps().await;
        Ok(())
    }

    /// Handles one datagram (public for tests of the decoding rules).
    pub fn on_datagram(&mut self, d: &[u8], from: SocketAddr, from_group: bool, out: &mut Vec<Delivered>) {
        self.stats.datagrams += 1;
        if net::classify(d) != Some(DatagramKind::Packet) {
            // Re-requests are not ours to answer; short datagrams are junk.
            self.stats.dropped_malformed += 1;
            return;
        }
        let Ok(p) = Packet::decode(d) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let Some(&i) = self.by_session.get(&p.session) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let now = self.now_ns();
        let st = &mut self.streams[i];
        if from_group || st.source.is_none() {
            st.source = Some(from);
        }
        let arrival = st.rx.on_packet(p.seq, p.message_count() as usize, now);
        for (seq, bytes) in p.messages().skip(arrival.skip).take(arrival.take) {
            let message = match itch::decode(bytes) {
                Ok(m) if m.event.symbol() == st.symbol => m,
                _ => {
                    self.stats.dropped_malformed += 1;
                    continue;
                }
            };
            if message.epoch < self.stats.epoch {
                self.stats.stale_epoch_dropped += 1;
                continue;
            }
            self.stats.epoch = message.epoch;
            self.stats.messages += 1;
            out.push(Delivered { symbol: st.symbol, seq, bytes: bytes.to_vec(), message });
        }
    }

    async fn poll_gaps(&mut self) {
        let now = self.now_ns();
        for st in &mut self.streams {
            if let Some(source) = st.source {
                if let Some(req) = st.rx.poll_request(st.session, now) {
                    self.stats.gaps_requested += 1;
                    // A full send buffer or an unreachable source: the next poll asks again.
                    let _ = self.unicast.try_send_to(&req.encode(), source);
                }
            }
            let lost = st.rx.give_up(now);
            self.stats.gaps_unrecovered += lost;
        }
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), WouldBlock | ConnectionRefused | ConnectionReset | Interrupted)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = int.recv() => {},
        _ = term.recv() => {},
    }
    Ok(())
}

/// Writes `text` to `path` atomically (a temporary file, then a rename).
pub fn write_atomic(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
