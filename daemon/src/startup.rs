//! Start-up: from settings to a data plane ready to run. Derives the
//! network key, opens the state dir, sizes the overlay MTU, binds the
//! mesh's UDP socket, sets up the bridge and the TAP, binds the control
//! socket, builds the node and restores what the state dir kept (IPAM, DNS
//! entries, known peers), then connects to the peers given and added,
//! restores the exposed address and the containers' gateway. A bridge
//! kept by the last run (containers were attached) is taken over with its
//! ports and addresses.

use crate::api;
use crate::authority;
use crate::commands::Control;
use crate::config::Settings;
use crate::dataplane::Dataplane;
use crate::dns::DnsService;
use crate::host::Host;
use crate::kernel_io::Plane;
use crate::netdev::{Netdev, Tap};
use crate::password;
use crate::state::{PeersFile, StateDir};
use crate::udp::{self, TxBatch};
use anyhow::Context;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::{UdpSocket, UnixListener};
use weavers_proto::ipam::Range;
use weavers_proto::keys::{NetworkKey, PublicKey, StaticKeypair};
use weavers_proto::node::{Config, KnownPeer, Node, Timers, Trust};

/// A daemon ready to run, and what `main` needs to run and tear it down.
pub struct Started {
    /// The data-plane task, not running yet.
    pub dataplane: Dataplane,
    /// The control API's socket, bound.
    pub listener: UnixListener,
    /// Netlink, for the teardown.
    pub netdev: Netdev,
    /// The TAP's name (the bridge's name is in the settings).
    pub tap_name: String,
    /// This host's identity.
    pub public_key: PublicKey,
    /// The MTU inside the overlay.
    pub overlay_mtu: usize,
}

/// Sets everything up, in the order the module docs give.
pub async fn start(settings: &Settings) -> anyhow::Result<Started> {
    // First: a bad password or network name stops the daemon before it
    // changes anything on the host.
    let password_key = match &settings.password {
        Some(p) => Some(password::network_key(p, &settings.network, settings.authority.is_some())?),
        None => None,
    };
    let state = StateDir::open(&settings.state_dir)?;
    let keypair = state.identity()?;
    let (network_key, trust, authority_files) = match &settings.authority {
        Some((ca, cert)) => {
            let (trust, files) = authority::load(ca, cert, &keypair.public, state.revocations()?)?;
            let key = NetworkKey::with_authority(trust.authority.key(), password_key.as_ref());
            (key, Some(trust), Some(files))
        }
        None => (password_key.expect("password mode has a password (checked in Settings::load)"), None, None),
    };
    let mut peers_file = state.peers()?;
    let netdev = Netdev::new().await?;
    let tap_name = crate::netdev::tap_name(&settings.bridge);
    let overlay_mtu = overlay_mtu(&netdev, settings, &tap_name).await?;

    let udp = bind_udp(settings.listen)?;
    if !udp::enable_gro(udp.as_raw_fd()) {
        tracing::info!("UDP receive offload (UDP_GRO) unavailable; datagrams arrive one by one");
    }
    let tap = open_tap(&netdev, &settings.bridge, &tap_name, overlay_mtu).await?;

    let ipam_range = match settings.ipalloc_range {
        (std::net::IpAddr::V4(a), len) => Range::new(a, len)?,
        (a, len) => anyhow::bail!("--ipalloc-range {a}/{len}: IPAM shares out an IPv4 range"),
    };
    let listener = api::bind(&settings.socket)?;
    let public_key = keypair.public;
    let now = Instant::now();
    let mut node = new_node(settings, keypair, network_key, trust, overlay_mtu, ipam_range, now);
    restore_ipam(&mut node, &state, ipam_range)?;
    restore_dns(&mut node, &state)?;
    restore_known_peers(&mut node, &peers_file, now);

    // The exposed address comes back only if exposing it works again.
    let exposed = peers_file.exposed.take();
    let added = peers_file.added.clone();
    let mut plane = Plane { node, udp, tap: Arc::new(tap), tx: TxBatch::new(true) };
    let mut control = Control::new(
        Host::new(state, peers_file),
        netdev.clone(),
        settings.bridge.clone(),
        settings.listen,
        DnsService::new(settings.dns_port, settings.dns_upstream),
    );
    control.authority = authority_files;
    control
        .add_peers(&mut plane.node, settings.peers.clone(), false)
        .await
        .map_err(anyhow::Error::msg)
        .context("--peer")?;
    for a in added {
        if let Err(e) = control.add_peers(&mut plane.node, vec![a.clone()], true).await {
            tracing::warn!("remembered peer {a}: {e}");
        }
    }
    if let Some(cidr) = exposed {
        match control.expose(&mut plane.node, Some(cidr.clone())).await {
            Ok(r) => tracing::info!("overlay address {} restored", r.address),
            Err(e) => tracing::warn!("restoring overlay address {cidr}: {e}"),
        }
    }
    control.restore_gateway(&mut plane).await;
    Ok(Started { dataplane: Dataplane::new(plane, control), listener, netdev, tap_name, public_key, overlay_mtu })
}

/// The overlay MTU: room for our headers under the underlay's.
async fn overlay_mtu(netdev: &Netdev, settings: &Settings, tap_name: &str) -> anyhow::Result<usize> {
    let underlay_mtu = netdev.max_underlay_mtu(&[&settings.bridge, tap_name]).await?;
    let overlay_mtu = weavers_proto::wire::overlay_mtu(underlay_mtu as usize, settings.listen.is_ipv6());
    anyhow::ensure!(overlay_mtu >= 576, "underlay MTU {underlay_mtu} leaves only {overlay_mtu} for the overlay");
    Ok(overlay_mtu)
}

/// Binds the mesh's UDP socket with large buffers (bursts of multicast
/// fan-out would otherwise overflow the defaults).
fn bind_udp(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into()).with_context(|| format!("binding UDP {addr} (is another weaversd running?)"))?;
    Ok(UdpSocket::from_std(s.into())?)
}

/// Makes the bridge, opens the TAP with offloads and attaches it.
async fn open_tap(netdev: &Netdev, bridge: &str, tap_name: &str, overlay_mtu: usize) -> anyhow::Result<AsyncFd<Tap>> {
    let bridge_index = netdev.ensure_bridge(bridge, overlay_mtu as u32).await.context("setting up the bridge")?;
    let tap = Tap::open_offloaded(tap_name).context("opening the TAP")?;
    netdev.attach_tap(tap.name(), bridge_index, overlay_mtu as u32).await.context("attaching the TAP")?;
    // SAFETY: the Tap owns its fd and never closes or replaces it while the
    // AsyncFd holds it.
    let tap = unsafe { AsyncFd::register_with_interest(tap, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("registering the TAP")?;
    Ok(tap)
}

/// The node, with a fresh seed and the wall clock for its gossip.
fn new_node(
    settings: &Settings,
    keypair: StaticKeypair,
    network_key: NetworkKey,
    trust: Option<Trust>,
    overlay_mtu: usize,
    ipam_range: Range,
    now: Instant,
) -> Node {
    let unix_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    Node::new(
        Config {
            name: settings.name.clone(),
            keypair,
            network_key,
            overlay_mtu,
            timers: Timers { query_interval: settings.query_interval, ..Timers::default() },
            unix_ms,
            seed: rand::random(),
            ipam_range,
            trust,
        },
        now,
    )
}

/// The ring and allocations from `ipam.json`, refused if the range changed.
fn restore_ipam(node: &mut Node, state: &StateDir, ipam_range: Range) -> anyhow::Result<()> {
    match state.ipam()? {
        Some(f) if f.ring.range() == ipam_range => node.restore_ipam(f.ring, f.alloc),
        Some(f) => anyhow::bail!(
            "--ipalloc-range {}/{} differs from the range in the state dir ({}/{}); a range cannot change under live allocations",
            ipam_range.base(),
            ipam_range.prefix(),
            f.ring.range().base(),
            f.ring.range().prefix()
        ),
        None => {}
    }
    Ok(())
}

/// This host's DNS entries from `dns.json`.
fn restore_dns(node: &mut Node, state: &StateDir) -> anyhow::Result<()> {
    let dns_file = state.dns()?;
    let kept = dns_file.entries.len();
    let skipped = node.dns_restore(dns_file.entries);
    if kept > 0 {
        tracing::info!(entries = kept - skipped, skipped, "DNS entries restored");
    }
    Ok(())
}

/// Hosts met before, to reconnect to, with the last handshake timestamp
/// each one's initiations must exceed.
fn restore_known_peers(node: &mut Node, peers_file: &PeersFile, now: Instant) {
    for k in &peers_file.known {
        if let (Some(key), Ok(endpoint)) = (PublicKey::from_base64(&k.public_key), k.endpoint.parse()) {
            let known = KnownPeer { key, endpoint, name: k.name.clone(), last_handshake: k.last_handshake };
            node.add_known_peer(&known, now);
        }
    }
}
