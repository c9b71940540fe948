//! The DNS server: UDP and TCP on the bridge's overlay addresses (port 53
//! by default: the exposed one, and the containers' gateway), answering names under `weavers.local.` from the merged table
//! the data plane keeps up to date, and passing other names to
//! `--dns-upstream` when one is given (over UDP, bounded in number and
//! time) or refusing them.
//!
//! The answering logic is [`weavers_proto::dns::message`]; this is only the
//! sockets. Limits: queries of at most [`MAX_QUERY_LEN`] bytes;
//! [`MAX_TCP_CONNECTIONS`] TCP connections, each closed after
//! [`TCP_IDLE`] without a query, after [`TCP_LIFETIME`] in all, or after
//! [`MAX_TCP_QUERIES`] queries; [`MAX_FORWARDS`] queries at the upstream
//! at once, each given [`FORWARD_TIMEOUT`].

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use weavers_api::DnsStats;
use weavers_proto::dns::message::{self, Outcome, Transport, Verdict, MAX_QUERY_LEN};
use weavers_proto::dns::{DnsTable, Visible};

/// Most TCP connections open at once.
pub const MAX_TCP_CONNECTIONS: usize = 64;
/// A TCP connection is closed when no query (or no whole query) came for this long.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// A TCP connection is closed after this long whatever it does.
pub const TCP_LIFETIME: Duration = Duration::from_secs(60);
/// Queries answered on one TCP connection before it is closed.
pub const MAX_TCP_QUERIES: usize = 100;
/// Queries waiting for the upstream server at once; more get SERVFAIL.
pub const MAX_FORWARDS: usize = 64;
/// How long the upstream server has to answer.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// The table and the counters, shared by the data plane (which updates the
/// table) and the server tasks (which answer from it). All run on the
/// daemon's one thread: the lock is never contended.
#[derive(Debug, Default)]
pub struct Shared {
    pub table: DnsTable,
    pub stats: DnsStats,
}

impl Shared {
    fn count(&mut self, outcome: &Outcome) {
        let s = &mut self.stats;
        match outcome {
            Outcome::Reply(_, v) => match v {
                Verdict::Answer => s.answers += 1,
                Verdict::NoData => s.nodata += 1,
                Verdict::NxDomain => s.nxdomain += 1,
                Verdict::Refused => s.refused += 1,
                Verdict::FormErr => s.formerr += 1,
                Verdict::NotImp | Verdict::BadVers => s.notimp += 1,
            },
            Outcome::Forward => s.forwarded += 1,
            Outcome::Drop => s.dropped += 1,
        }
    }
}

type SharedRef = Arc<Mutex<Shared>>;

fn lock(shared: &SharedRef) -> std::sync::MutexGuard<'_, Shared> {
    // A panic elsewhere while holding the lock leaves plain data behind.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The server's tasks on one address; they stop when this is dropped.
#[derive(Debug)]
struct Running {
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    /// Served for as long as the daemon runs (the containers' gateway,
    /// which containers keep as their name server), not only until
    /// another address is exposed.
    kept: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The DNS service of the daemon.
#[derive(Debug)]
pub struct DnsService {
    shared: SharedRef,
    /// Port to serve on; 0 turns the server off.
    port: u16,
    upstream: Option<SocketAddr>,
    /// The addresses served, in the order they were first served.
    running: Vec<Running>,
    error: Option<String>,
    forwards: Arc<Semaphore>,
}

impl DnsService {
    pub fn new(port: u16, upstream: Option<SocketAddr>) -> Self {
        DnsService {
            shared: Arc::default(),
            port,
            upstream,
            running: Vec::new(),
            error: None,
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
        }
    }

    /// Serves on `ip` (the address `weavers expose` gave the bridge),
    /// moving from the exposed address served so far (addresses kept by
    /// [`DnsService::keep_serving_on`] stay served). Failures are logged
    /// and shown in the stats; the daemon goes on without DNS there.
    pub fn serve_on(&mut self, ip: IpAddr) {
        self.serve(ip, false);
    }

    /// Serves on `ip` (the containers' gateway) for as long as the daemon
    /// runs: containers keep it as their name server. Failures as for
    /// [`DnsService::serve_on`].
    pub fn keep_serving_on(&mut self, ip: IpAddr) {
        self.serve(ip, true);
    }

    fn serve(&mut self, ip: IpAddr, keep: bool) {
        if self.port == 0 {
            return;
        }
        let addr = SocketAddr::new(ip, self.port);
        if !keep {
            self.running.retain(|r| r.kept || r.addr == addr);
        }
        if let Some(r) = self.running.iter_mut().find(|r| r.addr == addr) {
            r.kept |= keep;
            return;
        }
        match self.start(addr, keep) {
            Ok(r) => {
                tracing::info!(%addr, upstream = ?self.upstream, "DNS server for weavers.local serving");
                self.running.push(r);
                self.error = None;
            }
            Err(e) => {
                tracing::warn!(%addr, "DNS server not started: {e}");
                self.error = Some(format!("cannot serve on {addr}: {e}"));
            }
        }
    }

    fn start(&self, addr: SocketAddr, kept: bool) -> std::io::Result<Running> {
        let udp = Arc::new(UdpSocket::from_std(bind(addr, socket2::Type::DGRAM)?.into())?);
        let tcp = bind(addr, socket2::Type::STREAM)?;
        tcp.listen(128)?;
        let tcp = TcpListener::from_std(tcp.into())?;
        let conns = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
        let u = tokio::spawn(serve_udp(udp, self.shared.clone(), self.upstream, self.forwards.clone()));
        let t = tokio::spawn(serve_tcp(tcp, self.shared.clone(), self.upstream, self.forwards.clone(), conns));
        Ok(Running { addr, tasks: vec![u, t], kept })
    }

    /// Replaces the table's contents (the data plane's merged view).
    pub fn update(&self, rows: Vec<Visible>) {
        lock(&self.shared).table.replace(rows);
    }

    /// Runs `f` on the table (for the API's listing and lookups).
    pub fn with_table<T>(&self, f: impl FnOnce(&mut DnsTable) -> T) -> T {
        f(&mut lock(&self.shared).table)
    }

    pub fn stats(&self) -> DnsStats {
        let s = lock(&self.shared);
        DnsStats {
            listening: (!self.running.is_empty())
                .then(|| self.running.iter().map(|r| r.addr.to_string()).collect::<Vec<_>>().join(", ")),
            error: self.error.clone(),
            upstream: self.upstream.map(|u| u.to_string()),
            entries: s.table.rows().len() as u64,
            ..s.stats.clone()
        }
    }
}

/// A non-blocking socket bound to `addr`, even before the address is
/// usable (IPv6 duplicate address detection): IP_FREEBIND.
fn bind(addr: SocketAddr, ty: socket2::Type) -> std::io::Result<socket2::Socket> {
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), ty, None)?;
    if addr.is_ipv4() {
        s.set_freebind_v4(true)?;
    } else {
        s.set_only_v6(true)?;
        s.set_freebind_v6(true)?;
    }
    if ty == socket2::Type::STREAM {
        s.set_reuse_address(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// Answers one query; counts it.
fn answer(shared: &SharedRef, query: &[u8], transport: Transport, can_forward: bool) -> Outcome {
    let mut s = lock(shared);
    match transport {
        Transport::Udp => s.stats.udp_queries += 1,
        Transport::Tcp => s.stats.tcp_queries += 1,
    }
    let o = message::respond(query, transport, &mut s.table, can_forward);
    s.count(&o);
    o
}

async fn serve_udp(sock: Arc<UdpSocket>, shared: SharedRef, upstream: Option<SocketAddr>, forwards: Arc<Semaphore>) {
    // One byte more than a query may have, to tell an oversize one.
    let mut buf = vec![0u8; MAX_QUERY_LEN + 1];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors for earlier replies come back here: not fatal.
                tracing::debug!("DNS UDP receive: {e}");
                continue;
            }
        };
        let query = &buf[..n];
        match answer(&shared, query, Transport::Udp, upstream.is_some()) {
            Outcome::Reply(bytes, _) => {
                let _ = sock.send_to(&bytes, from).await;
            }
            Outcome::Forward => {
                let Some(up) = upstream else { continue };
                let (sock, shared, query) = (sock.clone(), shared.clone(), query.to_vec());
                match forwards.clone().try_acquire_owned() {
                    Ok(permit) => {
                        tokio::spawn(async move {
                            let _permit = permit;
                            if let Some(reply) = forwarded(&shared, &query, up).await {
                                let _ = sock.send_to(&reply, from).await;
                            }
                        });
                    }
                    Err(_) => {
                        lock(&shared).stats.forward_failed += 1;
                        if let Some(reply) = message::servfail(&query) {
                            let _ = sock.send_to(&reply, from).await;
                        }
                    }
                }
            }
            Outcome::Drop => {}
        }
    }
}

/// The upstream server's reply to `query`, or SERVFAIL when it gives none
/// in time (None only for a query that cannot be read).
async fn forwarded(shared: &SharedRef, query: &[u8], upstream: SocketAddr) -> Option<Vec<u8>> {
    match tokio::time::timeout(FORWARD_TIMEOUT, ask_upstream(query, upstream)).await {
        Ok(Ok(reply)) => Some(reply),
        Ok(Err(e)) => {
            tracing::debug!(%upstream, "DNS forward: {e}");
            lock(shared).stats.forward_failed += 1;
            message::servfail(query)
        }
        Err(_) => {
            lock(shared).stats.forward_failed += 1;
            message::servfail(query)
        }
    }
}

async fn ask_upstream(query: &[u8], upstream: SocketAddr) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("valid");
    let s = UdpSocket::bind(local).await?;
    // Connected: datagrams from anyone but the upstream server are not received.
    s.connect(upstream).await?;
    s.send(query).await?;
    let mut buf = vec![0u8; u16::MAX as usize];
    loop {
        let n = s.recv(&mut buf).await?;
        if message::answers_query(query, &buf[..n]) {
            return Ok(buf[..n].to_vec());
        }
    }
}

async fn serve_tcp(
    listener: TcpListener,
    shared: SharedRef,
    upstream: Option<SocketAddr>,
    forwards: Arc<Semaphore>,
    conns: Arc<Semaphore>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::debug!("DNS TCP accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            lock(&shared).stats.tcp_rejected += 1;
            continue;
        };
        let (shared, forwards) = (shared.clone(), forwards.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(TCP_LIFETIME, tcp_connection(stream, &shared, upstream, &forwards)).await;
        });
    }
}

/// Queries on one connection, each with its 2-byte length, until the
/// client closes, goes idle, misbehaves or used up its queries.
async fn tcp_connection(
    mut stream: TcpStream,
    shared: &SharedRef,
    upstream: Option<SocketAddr>,
    forwards: &Arc<Semaphore>,
) {
    for _ in 0..MAX_TCP_QUERIES {
        let mut len = [0u8; 2];
        if !matches!(tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await, Ok(Ok(_))) {
            return;
        }
        let Some(n) = message::tcp_query_len(len) else {
            lock(shared).stats.dropped += 1;
            return;
        };
        let mut query = vec![0u8; n];
        if !matches!(tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query)).await, Ok(Ok(_))) {
            return;
        }
        let reply = match answer(shared, &query, Transport::Tcp, upstream.is_some()) {
            Outcome::Reply(bytes, _) => bytes,
            Outcome::Forward => {
                let Some(up) = upstream else { return };
                let reply = match forwards.try_acquire() {
                    Ok(_permit) => forwarded(shared, &query, up).await,
                    Err(_) => {
                        lock(shared).stats.forward_failed += 1;
                        message::servfail(&query)
                    }
                };
                match reply {
                    Some(r) => r,
                    None => return,
                }
            }
            Outcome::Drop => return,
        };
        let Some(out) = message::tcp_frame(&reply) else { return };
        if !matches!(tokio::time::timeout(TCP_IDLE, stream.write_all(&out)).await, Ok(Ok(()))) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weavers_proto::dns::message::{build_query, RecordType};
    use weavers_proto::keys::PublicKey;

    fn rows() -> Vec<Visible> {
        ["10.0.0.1", "10.0.0.2"]
            .iter()
            .map(|a| Visible {
                name: "web".into(),
                addr: a.parse().unwrap(),
                owner: None,
                origin: PublicKey([1; 32]),
                origin_name: "h1".into(),
                since: 1,
            })
            .collect()
    }

    /// The A addresses in a reply (parsed by hand: the test checks the bytes).
    fn a_records(reply: &[u8]) -> (u8, Vec<[u8; 4]>) {
        let rcode = reply[3] & 0xf;
        let ancount = u16::from_be_bytes([reply[6], reply[7]]) as usize;
        // Each A answer ends with its 4 address bytes, after a 2-byte length of 4.
        let mut addrs = Vec::new();
        let mut i = 12;
        while i + 6 <= reply.len() && addrs.len() < ancount {
            if reply[i..i + 6] == [0, 1, 0, 1, 0, 0] && i + 12 <= reply.len() && reply[i + 8..i + 10] == [0, 4] {
                addrs.push(reply[i + 10..i + 14].try_into().unwrap());
                i += 14;
            } else {
                i += 1;
            }
        }
        (rcode, addrs)
    }

    #[tokio::test]
    async fn udp_and_tcp_on_loopback() {
        let mut svc = DnsService::new(0, None);
        svc.port = free_port();
        svc.update(rows());
        svc.serve_on("127.0.0.1".parse().unwrap());
        let addr = SocketAddr::new("127.0.0.1".parse().unwrap(), svc.port);
        assert_eq!(svc.stats().listening, Some(addr.to_string()), "{:?}", svc.stats().error);

        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.connect(addr).await.unwrap();
        let mut buf = vec![0u8; 2048];
        let mut firsts = Vec::new();
        for id in 0..2 {
            c.send(&build_query(id, "WEB.weavers.local.", hickory_a(), None)).await.unwrap();
            let n = tokio::time::timeout(Duration::from_secs(5), c.recv(&mut buf)).await.unwrap().unwrap();
            let (rcode, addrs) = a_records(&buf[..n]);
            assert_eq!((rcode, addrs.len()), (0, 2));
            firsts.push(addrs[0]);
        }
        assert_ne!(firsts[0], firsts[1], "round robin");
        // Garbage: counted, and the server goes on.
        c.send(b"\x00\x01garbage").await.unwrap();
        c.send(&[0x12, 0x34, 1, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0]).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), c.recv(&mut buf)).await.unwrap().unwrap();
        assert_eq!((buf[0], buf[1], buf[3] & 0xf), (0x12, 0x34, 1), "FORMERR");
        c.send(&build_query(9, "example.com.", hickory_a(), None)).await.unwrap();
        let n2 = tokio::time::timeout(Duration::from_secs(5), c.recv(&mut buf)).await.unwrap().unwrap();
        assert_eq!(buf[3] & 0xf, 5, "REFUSED");
        assert!(n >= 12 && n2 >= 12);

        let mut t = TcpStream::connect(addr).await.unwrap();
        let q = build_query(77, "web.weavers.local.", hickory_a(), None);
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        for _ in 0..2 {
            t.write_all(&framed).await.unwrap();
            let mut len = [0u8; 2];
            t.read_exact(&mut len).await.unwrap();
            let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
            t.read_exact(&mut reply).await.unwrap();
            assert_eq!(&reply[..2], &77u16.to_be_bytes());
            assert_eq!(a_records(&reply).1.len(), 2);
        }
        // A length past the limit closes the connection.
        t.write_all(&[0xff, 0xff]).await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), t.read_to_end(&mut rest)).await.unwrap();
        assert!(rest.is_empty());

        let st = svc.stats();
        assert_eq!((st.udp_queries, st.tcp_queries), (5, 2));
        assert_eq!((st.answers, st.formerr, st.dropped, st.refused), (4, 1, 2, 1));

        // Moving to another address stops the old one.
        svc.serve_on("127.0.0.2".parse().unwrap());
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn a_kept_address_stays_served_when_another_is_exposed() {
        let mut svc = DnsService::new(free_port(), None);
        svc.update(rows());
        let at = |ip: &str| SocketAddr::new(ip.parse().unwrap(), svc.port);
        let (gw, exposed, moved) = (at("127.0.0.3"), at("127.0.0.4"), at("127.0.0.5"));
        svc.keep_serving_on(gw.ip());
        svc.serve_on(exposed.ip());
        assert_eq!(svc.stats().listening, Some(format!("{gw}, {exposed}")), "{:?}", svc.stats().error);
        // Exposing another address moves the exposed one only.
        svc.serve_on(moved.ip());
        assert_eq!(svc.stats().listening, Some(format!("{gw}, {moved}")));
        assert!(TcpStream::connect(exposed).await.is_err());
        for addr in [gw, moved] {
            let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            c.connect(addr).await.unwrap();
            c.send(&build_query(3, "web.weavers.local.", hickory_a(), None)).await.unwrap();
            let mut buf = vec![0u8; 2048];
            let n = tokio::time::timeout(Duration::from_secs(5), c.recv(&mut buf)).await.unwrap().unwrap();
            assert_eq!(a_records(&buf[..n]).1.len(), 2, "{addr}");
        }
        // The gateway, exposed too (`weavers expose` without an address
        // takes the host's IPAM address, the gateway's): still one server,
        // and kept when another address is exposed later.
        svc.serve_on(gw.ip());
        assert_eq!(svc.stats().listening, Some(gw.to_string()));
        svc.serve_on(exposed.ip());
        assert_eq!(svc.stats().listening, Some(format!("{gw}, {exposed}")));
    }

    #[tokio::test]
    async fn other_names_go_upstream() {
        // A fake upstream that answers every query with its own ID and question.
        let up = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let up_addr = up.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = up.recv_from(&mut buf).await {
                let mut r = buf[..n].to_vec();
                r[2] |= 0x80;
                let _ = up.send_to(&r, from).await;
            }
        });
        let mut svc = DnsService::new(free_port(), Some(up_addr));
        svc.serve_on("127.0.0.1".parse().unwrap());
        let addr = SocketAddr::new("127.0.0.1".parse().unwrap(), svc.port);
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.connect(addr).await.unwrap();
        c.send(&build_query(5, "example.com.", hickory_a(), None)).await.unwrap();
        let mut buf = vec![0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(5), c.recv(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf[..2], &5u16.to_be_bytes());
        assert!(buf[2] & 0x80 != 0 && n > 12);
        assert_eq!(svc.stats().forwarded, 1);
    }

    fn hickory_a() -> RecordType {
        RecordType::A
    }

    fn free_port() -> u16 {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    }
}
