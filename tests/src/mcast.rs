//! Multicast helpers for the lab: receivers that join a group in the ways
//! a host can (IPv4 any-source, IPv4 source-specific, IPv6), a paced sender
//! of numbered datagrams and the check that each arrived exactly once,
//! containers (extra namespaces plugged into a host's bridge), and
//! hand-made IGMP/MLD frames sent with `AF_PACKET` or a raw IPv4 socket.
//!
//! Everything runs on threads that joined a lab namespace (see
//! [`crate::netns`]); nothing here touches the namespace the test started in.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::capture::Frame;
use crate::lab::Lab;
use crate::netns;
use crate::packet;

/// The bridge the daemon makes in each lab host (its default `--bridge`).
pub const BRIDGE: &str = "weavers";
/// The daemon's TAP in each lab host (`BRIDGE-tap`).
pub const TAP: &str = "weavers-tap";

pub const IPPROTO_IGMP: u8 = 2;
pub const NH_HOP_BY_HOP: u8 = 0;
pub const NH_ICMPV6: u8 = 58;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

// ---------------------------------------------------------------------
// Receivers

/// How a [`GroupReceiver`] joins its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Join {
    /// IPv4 any-source membership (`IP_ADD_MEMBERSHIP`) on the interface
    /// that has address `iface`.
    V4 { group: Ipv4Addr, iface: Ipv4Addr },
    /// IPv4 source-specific membership (`IP_ADD_SOURCE_MEMBERSHIP`, struct
    /// ip_mreq_source): only `source` sending to `group`.
    Ssm { group: Ipv4Addr, source: Ipv4Addr, iface: Ipv4Addr },
    /// IPv6 membership (`IPV6_JOIN_GROUP`) on interface index `ifindex`.
    V6 { group: Ipv6Addr, ifindex: u32 },
}

impl Join {
    fn is_v6(&self) -> bool {
        matches!(self, Join::V6 { .. })
    }

    fn apply(&self, s: &SockRef<'_>, join: bool) -> io::Result<()> {
        match (*self, join) {
            (Join::V4 { group, iface }, true) => s.join_multicast_v4(&group, &iface),
            (Join::V4 { group, iface }, false) => s.leave_multicast_v4(&group, &iface),
            (Join::Ssm { group, source, iface }, true) => s.join_ssm_v4(&source, &group, &iface),
            (Join::Ssm { group, source, iface }, false) => s.leave_ssm_v4(&source, &group, &iface),
            (Join::V6 { group, ifindex }, true) => s.join_multicast_v6(&group, ifindex),
            (Join::V6 { group, ifindex }, false) => s.leave_multicast_v6(&group, ifindex),
        }
    }
}

/// Datagrams received: (source, payload, when).
pub type Arrivals = Vec<(SocketAddr, Vec<u8>, Instant)>;

/// A UDP socket in a lab namespace that joined one group (and receives
/// only that group: `IP_MULTICAST_ALL` is off), collecting what arrives on
/// a background thread. Its receive buffer is large (8 MiB, forced), so a
/// paced stream is not lost in the kernel.
pub struct GroupReceiver {
    sock: Arc<UdpSocket>,
    join: Join,
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Arrivals>>,
    handle: Option<JoinHandle<io::Result<()>>>,
}

impl GroupReceiver {
    /// Binds `0.0.0.0:port` (or `[::]:port`) in namespace `ns` and joins.
    /// Returns once the membership is in place (the kernel then sends its
    /// report).
    pub fn start(ns: &str, port: u16, join: Join) -> Result<GroupReceiver> {
        let sock = netns::run_in(ns, move || -> Result<UdpSocket> {
            let s = if join.is_v6() {
                let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
                s.set_only_v6(true)?;
                s.set_reuse_address(true)?;
                s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
                s.set_multicast_all_v6(false)?;
                s
            } else {
                let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
                s.set_reuse_address(true)?;
                s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
                s.set_multicast_all_v4(false)?;
                s
            };
            force_rcvbuf(&s, 8 << 20);
            join.apply(&SockRef::from(&s), true).with_context(|| format!("join {join:?}"))?;
            let s: UdpSocket = s.into();
            s.set_read_timeout(Some(Duration::from_millis(100)))?;
            Ok(s)
        })
        .with_context(|| format!("receiver for {join:?} on port {port} in {ns}"))?;
        let sock = Arc::new(sock);
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let handle = {
            let (sock, stop, got) = (sock.clone(), stop.clone(), got.clone());
            std::thread::Builder::new()
                .name(format!("mcast-rx-{port}"))
                .spawn(move || -> io::Result<()> {
                    let mut buf = vec![0u8; 65536];
                    loop {
                        let stopping = stop.load(Ordering::SeqCst);
                        match sock.recv_from(&mut buf) {
                            Ok((n, from)) => got.lock().unwrap().push((from, buf[..n].to_vec(), Instant::now())),
                            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                                if stopping {
                                    return Ok(());
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    }
                })
                .expect("spawn receiver thread")
        };
        Ok(GroupReceiver { sock, join, stop, got, handle: Some(handle) })
    }

    /// How many datagrams arrived so far.
    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// Waits until at least `n` datagrams arrived; false at the deadline.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        crate::wait_until(timeout, || self.count() >= n)
    }

    /// Waits until no datagram arrived for `quiet` (at most `timeout`).
    pub fn wait_quiet(&self, quiet: Duration, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = (self.count(), Instant::now());
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let n = self.count();
            if n != last.0 {
                last = (n, Instant::now());
            } else if last.1.elapsed() >= quiet {
                return;
            }
        }
    }

    /// A copy of what arrived so far.
    pub fn snapshot(&self) -> Arrivals {
        self.got.lock().unwrap().clone()
    }

    /// Drops the membership (`IP_DROP_MEMBERSHIP`, `IP_DROP_SOURCE_MEMBERSHIP`
    /// or `IPV6_LEAVE_GROUP`) and keeps the socket open: the kernel sends a
    /// leave (IGMPv2), a state-change report (IGMPv3: TO_IN{} or BLOCK) or
    /// a Done/report (MLD).
    pub fn leave(&self) -> io::Result<()> {
        self.join.apply(&SockRef::from(&*self.sock), false)
    }

    /// Stops receiving, closes the socket (which drops its membership) and
    /// returns what arrived.
    pub fn finish(mut self) -> Arrivals {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("multicast receiver for {:?} failed: {e}", self.join),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

impl Drop for GroupReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn force_rcvbuf(s: &Socket, bytes: libc::c_int) {
    // SAFETY: setsockopt with a valid int; failure only leaves the default.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

// ---------------------------------------------------------------------
// Numbered datagrams

/// The outgoing interface of a multicast sender.
#[derive(Clone, Copy, Debug)]
pub enum Out {
    /// `IP_MULTICAST_IF` by the interface's IPv4 address.
    V4(Ipv4Addr),
    /// `IPV6_MULTICAST_IF` by interface index.
    V6(u32),
}

/// A paced stream of numbered datagrams: `MARKER(8) | seq (u64 BE) | filler`,
/// `size` bytes each, sent `burst` at a time with `gap` between bursts.
#[derive(Clone, Debug)]
pub struct Numbered {
    pub marker: [u8; 8],
    pub size: usize,
    pub burst: usize,
    pub gap: Duration,
}

impl Numbered {
    /// Datagrams of `size` bytes (at least 16) carrying a random marker,
    /// 20 a burst with 2 ms between bursts.
    pub fn new(size: usize) -> Numbered {
        assert!(size >= 16, "a numbered datagram needs 16 bytes");
        let mut marker = [0u8; 8];
        marker.copy_from_slice(&crate::random_bytes(8));
        Numbered { marker, size, burst: 20, gap: Duration::from_millis(2) }
    }

    /// Sets the pacing.
    pub fn paced(mut self, burst: usize, gap: Duration) -> Numbered {
        self.burst = burst.max(1);
        self.gap = gap;
        self
    }

    /// The payload with sequence number `seq`.
    pub fn payload(&self, seq: u64) -> Vec<u8> {
        let mut p = Vec::with_capacity(self.size);
        p.extend_from_slice(&self.marker);
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend((16..self.size).map(|k| (k as u64 ^ seq) as u8));
        p
    }

    /// The sequence number of a payload of this stream (None for anything
    /// else, including a damaged datagram).
    pub fn seq_of(&self, payload: &[u8]) -> Option<u64> {
        if payload.len() != self.size || payload[..8] != self.marker {
            return None;
        }
        let seq = u64::from_be_bytes(payload[8..16].try_into().ok()?);
        (payload == self.payload(seq).as_slice()).then_some(seq)
    }

    /// Whether `haystack` (a captured frame) carries a datagram of this stream.
    pub fn in_frame(&self, frame: &[u8]) -> bool {
        packet::contains(frame, &self.marker)
    }

    /// Sends sequence numbers `seqs` from namespace `ns` to `dst` out of
    /// `out`, multicast TTL/hops 8, no loopback.
    pub fn send(&self, ns: &str, out: Out, dst: SocketAddr, seqs: std::ops::Range<u64>) -> Result<()> {
        let me = self.clone();
        netns::run_in(ns, move || -> Result<()> {
            let s = match (out, dst) {
                (Out::V4(iface), SocketAddr::V4(_)) => {
                    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
                    s.set_multicast_ttl_v4(8)?;
                    s.set_multicast_loop_v4(false)?;
                    s.set_multicast_if_v4(&iface).with_context(|| format!("IP_MULTICAST_IF {iface}"))?;
                    s
                }
                (Out::V6(ifindex), SocketAddr::V6(_)) => {
                    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
                    s.set_multicast_hops_v6(8)?;
                    s.set_multicast_loop_v6(false)?;
                    s.set_multicast_if_v6(ifindex).with_context(|| format!("IPV6_MULTICAST_IF {ifindex}"))?;
                    s
                }
                _ => bail!("{out:?} cannot send to {dst}"),
            };
            let s: UdpSocket = s.into();
            let mut in_burst = 0;
            for seq in seqs {
                let p = me.payload(seq);
                s.send_to(&p, dst).with_context(|| format!("send #{seq} to {dst}"))?;
                in_burst += 1;
                if in_burst == me.burst {
                    in_burst = 0;
                    if !me.gap.is_zero() {
                        std::thread::sleep(me.gap);
                    }
                }
            }
            Ok(())
        })
    }

    /// Checks that `got` holds every sequence number in `expected` exactly
    /// once and nothing else of this stream; the error says what is wrong.
    pub fn check_exactly_once(&self, got: &Arrivals, expected: std::ops::Range<u64>) -> Result<(), String> {
        let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
        let mut foreign = 0usize;
        for (_, p, _) in got {
            match self.seq_of(p) {
                Some(seq) => *seen.entry(seq).or_default() += 1,
                None => foreign += 1,
            }
        }
        let missing: Vec<u64> = expected.clone().filter(|s| !seen.contains_key(s)).collect();
        let dups: Vec<(u64, usize)> = seen.iter().filter(|(_, &n)| n > 1).map(|(&s, &n)| (s, n)).collect();
        let outside: Vec<u64> = seen.keys().copied().filter(|s| !expected.contains(s)).collect();
        if missing.is_empty() && dups.is_empty() && outside.is_empty() && foreign == 0 {
            return Ok(());
        }
        Err(format!(
            "{} datagrams received for {} expected ({}..{}): {} missing (first {:?}), {} duplicated (first {:?}), \
             {} outside the range (first {:?}), {} not of this stream",
            got.len(),
            expected.end - expected.start,
            expected.start,
            expected.end,
            missing.len(),
            &missing[..missing.len().min(10)],
            dups.len(),
            &dups[..dups.len().min(10)],
            outside.len(),
            &outside[..outside.len().min(10)],
            foreign
        ))
    }
}

// ---------------------------------------------------------------------
// Interfaces

/// The index of interface `dev` in namespace `ns`.
pub fn ifindex(ns: &str, dev: &str) -> Result<u32> {
    let s = read_sys(ns, dev, "ifindex")?;
    s.trim().parse().with_context(|| format!("ifindex of {dev} in {ns}: {s:?}"))
}

/// The MAC address of interface `dev` in namespace `ns`.
pub fn mac_of(ns: &str, dev: &str) -> Result<[u8; 6]> {
    let s = read_sys(ns, dev, "address")?;
    let v: Vec<u8> = s.trim().split(':').filter_map(|b| u8::from_str_radix(b, 16).ok()).collect();
    v.try_into().map_err(|_| anyhow!("MAC of {dev} in {ns}: {s:?}"))
}

/// The MTU of interface `dev` in namespace `ns`.
pub fn mtu_of(ns: &str, dev: &str) -> Result<u32> {
    let s = read_sys(ns, dev, "mtu")?;
    s.trim().parse().with_context(|| format!("MTU of {dev} in {ns}: {s:?}"))
}

/// `/sys/class/net/DEV/FILE` as seen from namespace `ns` (sysfs shows the
/// namespace of whoever mounted it, so this reads it with `ip netns exec`,
/// which remounts /sys).
fn read_sys(ns: &str, dev: &str, file: &str) -> Result<String> {
    let out = netns::exec_in(ns, "cat", &[format!("/sys/class/net/{dev}/{file}")])?;
    if !out.status.success() {
        bail!("no {file} for {dev} in {ns}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Adds IPv6 address `cidr` (no duplicate address detection) to `dev` in
/// namespace `ns`, and waits (10 s at most) until `dev` also has a usable
/// (not tentative) link-local address, which MLD reports come from.
pub fn add_ipv6(ns: &str, dev: &str, cidr: &str) -> Result<()> {
    netns::ip(&["-n", ns, "-6", "addr", "add", cidr, "dev", dev, "nodad"])?;
    let ready = crate::wait_until(Duration::from_secs(10), || {
        netns::ip(&["-n", ns, "-6", "-o", "addr", "show", "dev", dev, "scope", "link"])
            .is_ok_and(|o| o.contains("fe80::") && !o.contains("tentative"))
    });
    if !ready {
        bail!(
            "{dev} in {ns} has no usable IPv6 link-local address after 10 s: {}",
            netns::ip(&["-n", ns, "-6", "addr", "show", "dev", dev]).unwrap_or_default()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------
// Containers

/// An extra namespace plugged into a lab host's bridge by a veth pair, as
/// a container would be: `eth0` inside with an overlay address and a
/// `224.0.0.0/4` route. Removed when dropped (and in any case with the
/// lab: its namespace carries the lab's prefix).
pub struct Container {
    ns: String,
    addr: Ipv4Addr,
}

impl Container {
    /// The container's namespace.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Its address on the overlay.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(e) = netns::del(&self.ns) {
            eprintln!("container cleanup: {e:#}");
        }
    }
}

/// Makes a container `name` (a few letters or digits) on lab host `host`:
/// namespace `<lab prefix>h<host>c<name>`, a veth `wvc<name>` in the host's
/// bridge `weavers` (which the host's daemon must have made) and `eth0`
/// inside with address `cidr` (e.g. `10.40.2.1/16`), the bridge's MTU and a
/// route for `224.0.0.0/4`.
pub fn add_container(lab: &Lab, host: usize, name: &str, cidr: &str) -> Result<Container> {
    if name.is_empty() || name.len() > 8 || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        bail!("container name {name:?}: use 1-8 letters or digits");
    }
    let addr: Ipv4Addr = cidr
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| anyhow!("container address {cidr:?} is not IPv4/len"))?;
    let host_ns = lab.ns(host).to_owned();
    let ns = format!("{}h{host}c{name}", lab.prefix());
    netns::add(&ns).with_context(|| format!("create namespace {ns}"))?;
    let c = Container { ns, addr };
    let port = format!("wvc{name}");
    let mtu = mtu_of(&host_ns, BRIDGE)?.to_string();
    netns::ip(&[
        "-n", &host_ns, "link", "add", &port, "mtu", &mtu, "type", "veth", "peer", "name", "eth0", "netns", &c.ns,
    ])?;
    netns::ip(&["-n", &host_ns, "link", "set", &port, "master", BRIDGE, "up"])?;
    netns::ip(&["-n", &c.ns, "link", "set", "eth0", "mtu", &mtu, "up"])?;
    netns::ip(&["-n", &c.ns, "addr", "add", cidr, "dev", "eth0"])?;
    netns::ip(&["-n", &c.ns, "route", "add", "224.0.0.0/4", "dev", "eth0"])?;
    Ok(c)
}

// ---------------------------------------------------------------------
// Captured frames

/// The destination of the IPv4 or IPv6 packet in an Ethernet frame.
pub fn ip_dst_of_frame(frame: &[u8]) -> Option<IpAddr> {
    match packet::ethertype(frame)? {
        packet::ETHERTYPE_IPV4 => packet::parse_ipv4(packet::ipv4_of_frame(frame)?).map(|h| IpAddr::V4(h.dst)),
        ETHERTYPE_IPV6 => {
            let ip = frame.get(packet::ETH_HLEN..)?;
            (ip.len() >= 40 && ip[0] >> 4 == 6)
                .then(|| IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap())))
        }
        _ => None,
    }
}

/// Frames in `frames` sent to IP destination `group`.
pub fn frames_to(frames: &[Frame], group: IpAddr) -> Vec<&Frame> {
    frames.iter().filter(|f| ip_dst_of_frame(&f.data) == Some(group)).collect()
}

/// IGMP messages (type, IGMP bytes) in captured frames, IPv4 only.
pub fn igmp_messages(frames: &[Frame]) -> Vec<(Ipv4Addr, Vec<u8>)> {
    frames
        .iter()
        .filter_map(|f| {
            let ip = packet::ipv4_of_frame(&f.data)?;
            let h = packet::parse_ipv4(ip)?;
            (h.protocol == IPPROTO_IGMP).then(|| (h.dst, ip[h.header_len..].to_vec()))
        })
        .collect()
}

// ---------------------------------------------------------------------
// Hand-made IGMP and MLD

/// RFC 1071 checksum of `data` (with `init` a running sum).
pub fn internet_checksum(init: u32, data: &[u8]) -> u16 {
    let mut sum = init;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IGMPv3 group record: (type, group, sources). Types: 1 IS_IN, 2 IS_EX,
/// 3 TO_IN, 4 TO_EX, 5 ALLOW, 6 BLOCK.
pub type IgmpRecord = (u8, Ipv4Addr, Vec<Ipv4Addr>);

/// An IGMPv3 membership report (type 0x22) with a correct checksum.
pub fn igmpv3_report(records: &[IgmpRecord]) -> Vec<u8> {
    let mut m = vec![0x22, 0, 0, 0, 0, 0];
    m.extend_from_slice(&(records.len() as u16).to_be_bytes());
    for (kind, group, sources) in records {
        m.extend_from_slice(&[*kind, 0]);
        m.extend_from_slice(&(sources.len() as u16).to_be_bytes());
        m.extend_from_slice(&group.octets());
        for s in sources {
            m.extend_from_slice(&s.octets());
        }
    }
    let c = internet_checksum(0, &m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// The records of an IGMPv3 report (empty if `msg` is not one, or is cut).
pub fn igmpv3_records(msg: &[u8]) -> Vec<IgmpRecord> {
    let mut out = Vec::new();
    if msg.len() < 8 || msg[0] != 0x22 {
        return out;
    }
    let n = u16::from_be_bytes([msg[6], msg[7]]);
    let mut rest = &msg[8..];
    for _ in 0..n {
        if rest.len() < 8 {
            break;
        }
        let aux = usize::from(rest[1]) * 4;
        let nsrc = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let len = 8 + nsrc * 4 + aux;
        if rest.len() < len {
            break;
        }
        let v4 = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        let sources = rest[8..8 + nsrc * 4].chunks_exact(4).map(v4).collect();
        out.push((rest[0], v4(&rest[4..8]), sources));
        rest = &rest[len..];
    }
    out
}

/// An 8-byte IGMP message (v1/v2 report 0x12/0x16, leave 0x17, query 0x11)
/// with a correct checksum.
pub fn igmp_simple(kind: u8, group: Ipv4Addr) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0];
    m.extend_from_slice(&group.octets());
    let c = internet_checksum(0, &m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An IPv4 packet carrying IGMP message `igmp`: TTL 1, the Router Alert
/// option, a correct header checksum.
pub fn ipv4_igmp(src: Ipv4Addr, dst: Ipv4Addr, igmp: &[u8]) -> Vec<u8> {
    let total = 24 + igmp.len();
    let mut p = vec![0x46, 0xc0];
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 1, IPPROTO_IGMP, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0x94, 0x04, 0, 0]);
    let c = internet_checksum(0, &p[..24]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(igmp);
    p
}

/// An MLDv2 report (ICMPv6 type 143) listing `records` (type, group,
/// sources), checksummed for `src` -> ff02::16.
pub fn mldv2_report(src: Ipv6Addr, records: &[(u8, Ipv6Addr, Vec<Ipv6Addr>)]) -> Vec<u8> {
    let mut m = vec![143, 0, 0, 0, 0, 0];
    m.extend_from_slice(&(records.len() as u16).to_be_bytes());
    for (kind, group, sources) in records {
        m.extend_from_slice(&[*kind, 0]);
        m.extend_from_slice(&(sources.len() as u16).to_be_bytes());
        m.extend_from_slice(&group.octets());
        for s in sources {
            m.extend_from_slice(&s.octets());
        }
    }
    set_icmpv6_checksum(src, mld_routers(), &mut m);
    m
}

/// ff02::16, where MLDv2 reports go.
pub fn mld_routers() -> Ipv6Addr {
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16)
}

/// Writes the ICMPv6 checksum (pseudo-header included) into `msg[2..4]`.
pub fn set_icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &mut [u8]) {
    msg[2] = 0;
    msg[3] = 0;
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, NH_ICMPV6]);
    let mut sum: u32 = 0;
    for c in pseudo.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    let c = internet_checksum(sum, msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
}

/// An IPv6 packet carrying ICMPv6 message `icmp` with hop limit 1; with
/// `router_alert`, behind a hop-by-hop header with the Router Alert option
/// (as real MLD messages are).
pub fn ipv6_icmp(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8], router_alert: bool) -> Vec<u8> {
    let ext: &[u8] = if router_alert { &[NH_ICMPV6, 0, 5, 2, 0, 0, 1, 0] } else { &[] };
    let plen = ext.len() + icmp.len();
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(plen as u16).to_be_bytes());
    p.extend_from_slice(&[if router_alert { NH_HOP_BY_HOP } else { NH_ICMPV6 }, 1]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(ext);
    p.extend_from_slice(icmp);
    p
}

/// An Ethernet frame from `src_mac` carrying IP packet `ip` (IPv4 or IPv6,
/// by its version), to the multicast MAC of its destination.
pub fn ether_multicast(src_mac: [u8; 6], ip: &[u8]) -> Vec<u8> {
    let (dst_mac, ethertype) = match ip[0] >> 4 {
        4 => ([0x01, 0x00, 0x5e, ip[17] & 0x7f, ip[18], ip[19]], packet::ETHERTYPE_IPV4),
        _ => ([0x33, 0x33, ip[36], ip[37], ip[38], ip[39]], ETHERTYPE_IPV6),
    };
    let mut f = Vec::with_capacity(14 + ip.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// Sends whole Ethernet frames out of interface `dev` in namespace `ns`
/// with an `AF_PACKET` socket. Out of the bridge device they go through
/// the bridge (and its IGMP/MLD snooping) as the host's own frames; out of
/// the TAP they go straight to the daemon.
pub fn send_frames(ns: &str, dev: &str, frames: &[Vec<u8>]) -> Result<()> {
    let index = ifindex(ns, dev)?;
    let frames = frames.to_vec();
    let dev = dev.to_owned();
    netns::run_in(ns, move || -> Result<()> {
        // SAFETY: plain socket calls with valid arguments and lengths.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(io::Error::last_os_error()).context("AF_PACKET socket");
            }
            let mut result = Ok(());
            for f in &frames {
                let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                addr.sll_family = libc::AF_PACKET as u16;
                addr.sll_ifindex = index as i32;
                addr.sll_halen = 6;
                addr.sll_addr[..6].copy_from_slice(&f[..6]);
                let n = libc::sendto(
                    fd,
                    f.as_ptr().cast(),
                    f.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                );
                if n < 0 {
                    result = Err(io::Error::last_os_error()).with_context(|| format!("send a frame on {dev}"));
                    break;
                }
            }
            libc::close(fd);
            result
        }
    })
}

/// Link-local address of a socket on `dev`: convenience for [`SocketAddrV6`].
pub fn scoped(addr: Ipv6Addr, port: u16, ifindex: u32) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(addr, port, 0, ifindex))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn igmpv3_reports_round_trip_with_valid_checksums() {
        let g = Ipv4Addr::new(239, 1, 2, 3);
        let s = Ipv4Addr::new(10, 40, 0, 1);
        let records = vec![(3, g, vec![]), (5, g, vec![s])];
        let m = igmpv3_report(&records);
        assert_eq!(internet_checksum(0, &m), 0);
        assert_eq!(igmpv3_records(&m), records);
        let ip = ipv4_igmp(s, Ipv4Addr::new(224, 0, 0, 22), &m);
        assert_eq!(internet_checksum(0, &ip[..24]), 0);
        let f = ether_multicast([2, 0, 0, 0, 0, 1], &ip);
        assert_eq!(f[..6], [0x01, 0x00, 0x5e, 0, 0, 22]);
        assert_eq!(ip_dst_of_frame(&f), Some(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 22))));
    }

    #[test]
    fn mld_checksum_covers_the_pseudo_header() {
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let m = mldv2_report(src, &[(2, "ff15::1".parse().unwrap(), vec![])]);
        let mut sum: u32 = 0;
        for c in
            [&src.octets()[..], &mld_routers().octets()[..], &(m.len() as u32).to_be_bytes()[..], &[0, 0, 0, 58][..]]
                .concat()
                .chunks(2)
        {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        assert_eq!(internet_checksum(sum, &m), 0);
        let f = ether_multicast([2, 0, 0, 0, 0, 1], &ipv6_icmp(src, mld_routers(), &m, true));
        assert_eq!(f[..6], [0x33, 0x33, 0, 0, 0, 0x16]);
        assert_eq!(ip_dst_of_frame(&f), Some(IpAddr::V6(mld_routers())));
    }

    #[test]
    fn numbered_payloads_carry_their_sequence() {
        let s = Numbered::new(100);
        let p = s.payload(42);
        assert_eq!(p.len(), 100);
        assert_eq!(s.seq_of(&p), Some(42));
        let mut bad = p.clone();
        bad[50] ^= 1;
        assert_eq!(s.seq_of(&bad), None);
        let got: Arrivals = [1u64, 0, 2, 2]
            .iter()
            .map(|&q| (SocketAddr::from((Ipv4Addr::LOCALHOST, 1)), s.payload(q), Instant::now()))
            .collect();
        assert!(s.check_exactly_once(&got[..3].to_vec(), 0..3).is_ok());
        assert!(s.check_exactly_once(&got, 0..3).unwrap_err().contains("1 duplicated"));
        assert!(s.check_exactly_once(&got[..2].to_vec(), 0..3).unwrap_err().contains("1 missing"));
    }
}
