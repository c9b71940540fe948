//! The market-data consumer that `aex record` and `aex view` share: finds
//! the symbols' market-data groups by DNS, joins them on port 7702, runs one
//! [`Receiver`] per `md.SSS` stream, re-requests gaps from the address the
//! stream's packets come from (through the unicast socket, where the
//! retransmissions arrive), gives up on a gap after
//! [`crate::stream::GIVE_UP_NS`], and fences epochs: an ITCH message whose
//! epoch is lower than the highest seen on its stream is dropped (per
//! stream, since the symbols of one feed may come from several engines,
//! each with its own epoch).
//!
//! Every datagram is hostile: anything that does not decode, or belongs to
//! no stream of ours, is counted and dropped; a packet must verify under
//! its stream's key (from the `md` key, `--keys`) from the address it came
//! from, and be fresh, before anything in it is believed (`crate::auth`),
//! and our re-requests go out sealed. The decisions are in [`Streams`] (no
//! sockets; tested below); [`Feed`] adds the sockets.

use crate::auth::{self, AuthError, Keyring, Kind, RequestClock, RootKey, StreamKey, StreamKind};
use crate::net::{self, GroupKind};
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

/// The longest wait for a datagram before gaps are looked at again.
const TICK: Duration = Duration::from_millis(10);
/// How often gaps are looked at (re-requests, giving up); a receiver asks
/// for the same gap at most every 50 ms anyway.
const POLL_EVERY_NS: u64 = 5_000_000;
/// Datagrams handled per step without waiting.
const BATCH: usize = 256;

/// The flags every market-data consumer has.
#[derive(Debug, Clone, clap::Args)]
pub struct FeedArgs {
    /// Symbol indices to subscribe to (`1-50,60`); default all
    #[arg(long)]
    pub only: Option<String>,
    /// The key file with the market-data key, `md` (`aex keys` writes it as
    /// md.keys); mode 0600
    #[arg(long)]
    pub keys: std::path::PathBuf,
    /// Where it meets the overlay.
    #[command(flatten)]
    pub overlay: crate::app::overlay::OverlayArgs,
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FeedStats {
    /// Datagrams received on both sockets.
    pub datagrams: u64,
    /// Messages delivered.
    pub messages: u64,
    /// Re-requests sent.
    pub gaps_requested: u64,
    /// Messages given up on (never recovered).
    pub gaps_unrecovered: u64,
    /// Messages that arrived past a hole beyond what a stream holds
    /// (`stream::Limits::DEFAULT`): dropped, asked for again.
    pub messages_over_limit: u64,
    /// Messages dropped for an epoch lower than the highest seen on their stream.
    pub stale_epoch_dropped: u64,
    /// Datagrams or messages that did not decode, or belong to no stream of ours.
    pub dropped_malformed: u64,
    /// Datagrams refused for a tag that does not verify (forged, altered,
    /// sent from another address than sealed for).
    pub dropped_unauthenticated: u64,
    /// Authentic datagrams sealed too long ago (a replay).
    pub dropped_stale: u64,
    /// The highest epoch seen on any stream.
    pub epoch: Epoch,
}

struct StreamState {
    symbol: SymbolIndex,
    session: Session,
    key: StreamKey,
    rx: Receiver,
    /// The highest epoch seen on this stream.
    epoch: Epoch,
    /// Where the stream's packets come from (where re-requests go).
    source: Option<SocketAddr>,
}

/// The Mold session name of a symbol's market data (`md.001`).
pub fn md_session(symbol: SymbolIndex) -> Session {
    // At most "md.65535": always a valid session name.
    Session::new(&format!("md.{symbol:03}")).unwrap_or(Session([b' '; 10]))
}

/// The receiving state of every stream: what to deliver, what to ask for.
pub struct Streams {
    streams: Vec<StreamState>,
    by_session: HashMap<Session, usize>,
    stats: FeedStats,
    /// Our unicast socket's address (our re-requests are sealed for it).
    local: SocketAddr,
    clock: RequestClock,
}

impl Streams {
    /// One stream per symbol, each starting as `start` says, keyed from the
    /// `md` root key; `local` is our unicast socket.
    pub fn new(
        symbols: impl IntoIterator<Item = SymbolIndex>,
        start: Start,
        md: &RootKey,
        local: SocketAddr,
    ) -> Streams {
        let streams: Vec<StreamState> = symbols
            .into_iter()
            .map(|s| StreamState {
                symbol: s,
                session: md_session(s),
                key: StreamKey::derive(md, StreamKind::MarketData, &md_session(s)),
                rx: Receiver::new(start),
                epoch: 0,
                source: None,
            })
            .collect();
        let by_session = streams.iter().enumerate().map(|(i, s)| (s.session, i)).collect();
        Streams { streams, by_session, stats: FeedStats::default(), local, clock: RequestClock::default() }
    }

    /// The counters.
    pub fn stats(&self) -> FeedStats {
        self.stats
    }

    /// The symbols, in the order given.
    pub fn symbols(&self) -> impl Iterator<Item = SymbolIndex> + '_ {
        self.streams.iter().map(|s| s.symbol)
    }

    /// The next message expected per symbol.
    pub fn next_seqs(&self) -> impl Iterator<Item = (SymbolIndex, Option<u64>)> + '_ {
        self.streams.iter().map(|s| (s.symbol, s.rx.next()))
    }

    /// Handles one datagram from `from` (on the group socket when
    /// `from_group`), appending what it delivers to `out`; `now_ns` is the
    /// monotonic clock of the streams' timers.
    pub fn on_datagram(&mut self, d: &[u8], from: SocketAddr, from_group: bool, now_ns: u64, out: &mut Vec<Delivered>) {
        self.stats.datagrams += 1;
        let Some((Kind::Packet, session)) = auth::peek(d) else {
            // Re-requests are not ours to answer; short datagrams are junk.
            self.stats.dropped_malformed += 1;
            return;
        };
        let Some(&i) = self.by_session.get(&session) else {
            // No stream of ours: no key it could verify under.
            self.stats.dropped_unauthenticated += 1;
            return;
        };
        let st = &mut self.streams[i];
        let body = match st.key.open_fresh(from, d, auth::unix_ns()) {
            Ok(o) => o.body,
            Err(AuthError::Stale) => return self.stats.dropped_stale += 1,
            Err(AuthError::Forged) => return self.stats.dropped_unauthenticated += 1,
            Err(AuthError::Malformed) => return self.stats.dropped_malformed += 1,
        };
        let Ok(p) = Packet::decode(body) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        if from_group || st.source.is_none() {
            st.source = Some(from);
        }
        // Messages past a hole are held by the receiver and delivered (here
        // or with a later packet) once it is filled.
        let StreamState { symbol, rx, epoch, .. } = st;
        let stats = &mut self.stats;
        let arrival = rx.on_packet(&p, now_ns, |seq, bytes| deliver(*symbol, epoch, stats, seq, bytes, out));
        stats.messages_over_limit += arrival.dropped as u64;
    }

    /// The re-requests to send now, sealed (with where to), and gaps given
    /// up (the messages held past them then go through to `out`).
    pub fn poll(&mut self, now_ns: u64, requests: &mut Vec<(Vec<u8>, SocketAddr)>, out: &mut Vec<Delivered>) {
        let mut reqs = Vec::new();
        for st in &mut self.streams {
            if let Some(source) = st.source {
                reqs.clear();
                st.rx.poll_requests(st.session, now_ns, &mut reqs);
                for req in &reqs {
                    self.stats.gaps_requested += 1;
                    requests.push((auth::seal_rerequest(&st.key, req, self.local, self.clock.stamp()), source));
                }
            }
            let StreamState { symbol, rx, epoch, .. } = st;
            let stats = &mut self.stats;
            stats.gaps_unrecovered += rx.give_up(now_ns, |seq, bytes| deliver(*symbol, epoch, stats, seq, bytes, out));
        }
    }
}

/// One message of `symbol`'s stream in stream order: decoded, fenced by
/// the stream's `epoch`, delivered to `out`.
fn deliver(
    symbol: SymbolIndex,
    epoch: &mut Epoch,
    stats: &mut FeedStats,
    seq: u64,
    bytes: &[u8],
    out: &mut Vec<Delivered>,
) {
    let message = match itch::decode(bytes) {
        Ok(m) if m.event.symbol() == symbol => m,
        _ => {
            stats.dropped_malformed += 1;
            return;
        }
    };
    if message.epoch < *epoch {
        stats.stale_epoch_dropped += 1;
        return;
    }
    *epoch = message.epoch;
    stats.epoch = stats.epoch.max(message.epoch);
    stats.messages += 1;
    out.push(Delivered { symbol, seq, bytes: bytes.to_vec(), message });
}

/// Resolved groups and open sockets, receiving every selected symbol's
/// market data.
pub struct Feed {
    groups: UdpSocket,
    unicast: UdpSocket,
    streams: Streams,
    started: Instant,
    buf: Vec<u8>,
    buf2: Vec<u8>,
    requests: Vec<(Vec<u8>, SocketAddr)>,
    last_poll: u64,
}

impl Feed {
    /// Resolves the groups of the selected symbols, joins them and opens the
    /// unicast socket. Must run inside a tokio runtime.
    pub fn open(args: &FeedArgs, table: &SymbolTable, start: Start) -> anyhow::Result<Feed> {
        let symbols = net::select_symbols(table, args.only.as_deref()).map_err(|e| anyhow!("--only {e}"))?;
        let md = Keyring::load(&args.keys).context("--keys")?.md().context("--keys")?.clone();
        let (dns, addr, wait) = (args.overlay.dns()?, args.overlay.bind()?, args.overlay.wait());
        let groups = net::resolve_groups(dns, symbols.iter().copied(), GroupKind::MarketData, wait)
            .context("resolving the market-data groups")?;
        let addrs: Vec<Ipv4Addr> = groups.iter().map(|&(_, g)| g).collect();
        let gsock = net::group_receiver(net::MD_PORT, &addrs, addr, true)
            .with_context(|| format!("joining the market-data groups on {addr}"))?;
        let usock =
            net::unicast_socket(addr, 0, true).with_context(|| format!("binding the unicast socket to {addr}"))?;
        let local = usock.local_addr()?;
        Ok(Feed {
            groups: UdpSocket::from_std(gsock)?,
            unicast: UdpSocket::from_std(usock)?,
            streams: Streams::new(symbols.iter().map(|s| s.index), start, &md, local),
            started: Instant::now(),
            buf: vec![0u8; 65536],
            buf2: vec![0u8; 65536],
            requests: Vec::new(),
            last_poll: 0,
        })
    }

    /// The counters.
    pub fn stats(&self) -> FeedStats {
        self.streams.stats()
    }

    /// The symbols subscribed to, in index order.
    pub fn symbols(&self) -> impl Iterator<Item = SymbolIndex> + '_ {
        self.streams.symbols()
    }

    /// The next message expected per symbol.
    pub fn next_seqs(&self) -> impl Iterator<Item = (SymbolIndex, Option<u64>)> + '_ {
        self.streams.next_seqs()
    }

    fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Handles what the sockets have ready (up to a batch of datagrams
    /// without waiting; otherwise waits for one, or at most one tick), then
    /// the gaps, and appends what was delivered to `out`. Socket errors
    /// other than transient ones are returned.
    pub async fn step(&mut self, out: &mut Vec<Delivered>) -> anyhow::Result<()> {
        let mut handled = 0;
        while handled < BATCH {
            let now = self.now_ns();
            let g = self.groups.try_recv_from(&mut self.buf);
            let got_group = self.take(g, true, now, out)?;
            let u = self.unicast.try_recv_from(&mut self.buf2);
            let got_unicast = self.take(u, false, now, out)?;
            if !got_group && !got_unicast {
                break;
            }
            handled += 1;
        }
        if handled == BATCH {
            // Let the runtime's drivers (signals, timers) and other tasks run.
            tokio::task::yield_now().await;
        } else if handled == 0 {
            let got = tokio::select! {
                r = self.groups.recv_from(&mut self.buf) => Some((r, true)),
                r = self.unicast.recv_from(&mut self.buf2) => Some((r, false)),
                _ = tokio::time::sleep(TICK) => None,
            };
            if let Some((r, from_group)) = got {
                let now = self.now_ns();
                self.take(r, from_group, now, out)?;
            }
        }
        let now = self.now_ns();
        if now.saturating_sub(self.last_poll) >= POLL_EVERY_NS {
            self.last_poll = now;
            self.streams.poll(now, &mut self.requests, out);
            for (req, to) in self.requests.drain(..) {
                // A full send buffer or an unreachable source: the next poll asks again.
                let _ = self.unicast.try_send_to(&req, to);
            }
        }
        Ok(())
    }

    /// Handles one receive's result; whether a datagram was handled.
    fn take(
        &mut self,
        r: std::io::Result<(usize, SocketAddr)>,
        from_group: bool,
        now: u64,
        out: &mut Vec<Delivered>,
    ) -> anyhow::Result<bool> {
        match r {
            Ok((n, from)) => {
                let d = if from_group { &self.buf[..n] } else { &self.buf2[..n] };
                self.streams.on_datagram(d, from, from_group, now, out);
                Ok(true)
            }
            // Nothing ready, or ICMP errors from an earlier send (the source went away).
            Err(e) if is_transient(&e) => Ok(false),
            Err(e) => Err(anyhow!(e).context("receiving market data")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::MdEvent;
    use crate::stream::{Sender, GIVE_UP_NS};
    use crate::types::Side;
    use crate::wire::mold::ReRequest;

    /// The engine (where packets come from) and the feed's unicast socket.
    const SRC: &str = "10.40.0.1:5000";
    const LOCAL: &str = "10.40.0.4:7000";

    fn root() -> RootKey {
        RootKey::from_bytes([3; 32])
    }

    fn key(symbol: SymbolIndex) -> StreamKey {
        StreamKey::derive(&root(), StreamKind::MarketData, &md_session(symbol))
    }

    fn streams(symbols: &[SymbolIndex]) -> Streams {
        Streams::new(symbols.iter().copied(), Start::AtOne, &root(), LOCAL.parse().unwrap())
    }

    /// A stream's packets sealed as the engine at [`SRC`] sends them.
    fn sealed(s: &Sender, mut ps: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let sym: SymbolIndex =
            s.heartbeat()[3..10].iter().map(|&c| c as char).collect::<String>().trim().parse().unwrap();
        for p in &mut ps {
            key(sym).seal(Kind::Packet, SRC.parse().unwrap(), p);
        }
        ps
    }

    fn msg(symbol: SymbolIndex, epoch: Epoch, order_id: u64) -> Vec<u8> {
        let mut b = Vec::new();
        let event = MdEvent::AddOrder { symbol, order_id, side: Side::Buy, price: 10, qty: 1 };
        itch::encode(&ItchMessage { epoch, time: 1, event }, &mut b);
        b
    }

    fn packets(s: &mut Sender, msgs: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for m in msgs {
            s.push(m);
            s.take_packets(&mut out);
        }
        sealed(s, out)
    }

    #[test]
    fn gaps_are_asked_of_the_source_and_filled() {
        let src: SocketAddr = SRC.parse().unwrap();
        let mut f = streams(&[1, 2]);
        let mut s = Sender::new(md_session(1), 100);
        let p = packets(&mut s, &[msg(1, 1, 1), msg(1, 1, 2), msg(1, 1, 3)]);
        let mut out = Vec::new();
        f.on_datagram(&p[0], src, true, 0, &mut out);
        f.on_datagram(&p[2], src, true, 1, &mut out);
        assert_eq!(out.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![1]);
        let mut reqs = Vec::new();
        f.poll(2, &mut reqs, &mut out);
        assert_eq!(reqs.len(), 1);
        // Sealed under the stream's key for our own address; only the hole
        // (3 is held).
        let opened = key(1).open_fresh(LOCAL.parse().unwrap(), &reqs[0].0, auth::unix_ns()).unwrap();
        let req = ReRequest::decode(opened.body).unwrap();
        assert_eq!((req.seq, req.count, reqs[0].1), (2, 1, src));
        let mut re = Vec::new();
        s.retransmit(&req, &mut re);
        for r in &sealed(&s, re) {
            f.on_datagram(r, src, false, 3, &mut out);
        }
        assert_eq!(out.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        let st = f.stats();
        assert_eq!((st.messages, st.gaps_requested, st.gaps_unrecovered), (3, 1, 0));
        assert_eq!(f.next_seqs().collect::<Vec<_>>(), vec![(1, Some(4)), (2, Some(1))]);
    }

    #[test]
    fn lost_messages_are_given_up_and_counted() {
        let src: SocketAddr = SRC.parse().unwrap();
        let mut f = streams(&[1]);
        let mut s = Sender::new(md_session(1), 100);
        let p = packets(&mut s, &[msg(1, 1, 1), msg(1, 1, 2), msg(1, 1, 3), msg(1, 1, 4)]);
        let mut out = Vec::new();
        // 1 and 2 never come; 3 is held, then delivered when they are given up.
        f.on_datagram(&p[2], src, true, 0, &mut out);
        f.poll(GIVE_UP_NS - 1, &mut Vec::new(), &mut out);
        assert_eq!(f.stats().gaps_unrecovered, 0);
        assert!(out.is_empty());
        f.poll(GIVE_UP_NS, &mut Vec::new(), &mut out);
        assert_eq!(f.stats().gaps_unrecovered, 2);
        assert_eq!(out.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![3]);
        f.on_datagram(&p[3], src, true, GIVE_UP_NS + 1, &mut out);
        assert_eq!(out.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![3, 4]);
    }

    #[test]
    fn hostile_datagrams_and_stale_epochs_are_dropped() {
        let src: SocketAddr = SRC.parse().unwrap();
        let mut f = streams(&[1, 2]);
        let mut out = Vec::new();
        // Junk, a re-request, another session.
        f.on_datagram(b"junk", src, true, 0, &mut out);
        let req = ReRequest { session: md_session(1), seq: 1, count: 1 };
        f.on_datagram(&auth::seal_rerequest(&key(1), &req, src, auth::unix_ns()), src, true, 0, &mut out);
        let mut other = Sender::new(md_session(3), 10);
        let p = packets(&mut other, &[msg(3, 1, 1)]);
        f.on_datagram(&p[0], src, true, 0, &mut out);
        // Forged (another key, epoch 9), altered, sent from elsewhere, stale:
        // none is believed, none moves the stream or its epoch.
        let mut s1 = Sender::new(md_session(1), 10);
        s1.push(&msg(1, 9, 99));
        let mut plain = Vec::new();
        s1.take_packets(&mut plain);
        let mut forged = plain[0].clone();
        StreamKey::derive(&RootKey::from_bytes([4; 32]), StreamKind::MarketData, &md_session(1)).seal(
            Kind::Packet,
            src,
            &mut forged,
        );
        f.on_datagram(&forged, src, true, 0, &mut out);
        let genuine = sealed(&s1, plain.clone());
        let mut altered = genuine[0].clone();
        altered[22] ^= 1;
        f.on_datagram(&altered, src, true, 0, &mut out);
        f.on_datagram(&genuine[0], "10.40.0.9:5000".parse().unwrap(), true, 0, &mut out);
        let mut stale = plain[0].clone();
        key(1).seal_at(Kind::Packet, src, auth::unix_ns() - 2 * auth::seal::WINDOW_NS, &mut stale);
        f.on_datagram(&stale, src, true, 0, &mut out);
        assert!(out.is_empty());
        let st = f.stats();
        assert_eq!((st.dropped_malformed, st.dropped_unauthenticated, st.dropped_stale, st.epoch), (2, 4, 1, 0));
        // On stream 1: a message of another symbol, a bad ITCH, then epochs 2, 1 (stale), 2.
        let mut s = Sender::new(md_session(1), 10);
        let p = packets(&mut s, &[msg(2, 1, 1), vec![b'?'; 20], msg(1, 2, 2), msg(1, 1, 3), msg(1, 2, 4)]);
        for d in &p {
            f.on_datagram(d, src, true, 0, &mut out);
        }
        // Another stream has its own epoch: 1 is not stale there.
        let mut s2 = Sender::new(md_session(2), 10);
        for d in packets(&mut s2, &[msg(2, 1, 9)]) {
            f.on_datagram(&d, src, true, 0, &mut out);
        }
        assert_eq!(out.iter().map(|d| (d.symbol, d.seq)).collect::<Vec<_>>(), vec![(1, 3), (1, 5), (2, 1)]);
        let st = f.stats();
        assert_eq!((st.dropped_malformed, st.stale_epoch_dropped, st.messages, st.epoch), (4, 1, 3, 2));
    }
}
