//! weaversd: the weavers daemon. See `weaversd --help` and the README.

mod api;
mod commands;
mod config;
mod control;
mod dataplane;
mod dns;
mod host;
mod kernel_io;
mod metrics;
mod netdev;
mod state;
mod udp;

use anyhow::Context;
use clap::Parser;
use std::time::Instant;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use weavers_proto::keys::NetworkKey;
use weavers_proto::node::{Config, Node, Timers};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let flags = config::Flags::parse();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    if let Err(e) = rt.block_on(run(flags)) {
        eprintln!("weaversd: {e:#}");
        std::process::exit(1);
    }
}

async fn run(flags: config::Flags) -> anyhow::Result<()> {
    let settings = config::Settings::load(flags)?;
    let state = state::StateDir::open(&settings.state_dir)?;
    let keypair = state.identity()?;
    let mut peers_file = state.peers()?;
    let netdev = netdev::Netdev::new().await?;
    let tap_name = format!("{}-tap", settings.bridge);

    // The overlay MTU leaves room for our headers under the underlay's.
    let underlay_mtu = netdev.max_underlay_mtu(&[&settings.bridge, &tap_name]).await?;
    let overlay_mtu = weavers_proto::wire::overlay_mtu(underlay_mtu as usize, settings.listen.is_ipv6());
    anyhow::ensure!(overlay_mtu >= 576, "underlay MTU {underlay_mtu} leaves only {overlay_mtu} for the overlay");

    let udp = bind_udp(settings.listen)?;
    if !udp::enable_gro(std::os::fd::AsRawFd::as_raw_fd(&udp)) {
        tracing::info!("UDP receive offload (UDP_GRO) unavailable; datagrams arrive one by one");
    }
    let bridge_index =
        netdev.ensure_bridge(&settings.bridge, overlay_mtu as u32).await.context("setting up the bridge")?;
    let tap = netdev::Tap::open_offloaded(&tap_name).context("opening the TAP")?;
    netdev.attach_tap(tap.name(), bridge_index, overlay_mtu as u32).await.context("attaching the TAP")?;
    // SAFETY: the Tap owns its fd and never closes or replaces it while the
    // AsyncFd holds it.
    let tap = unsafe { AsyncFd::register_with_interest(tap, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("registering the TAP")?;

    let ipam_range = match settings.ipalloc_range {
        (std::net::IpAddr::V4(a), len) => weavers_proto::ipam::Range::new(a, len)?,
        (a, len) => anyhow::bail!("--ipalloc-range {a}/{len}: IPAM shares out an IPv4 range"),
    };
    let listener = api::bind(&settings.socket)?;
    let now = Instant::now();
    let unix_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let mut node = Node::new(
        Config {
            name: settings.name.clone(),
            keypair: keypair.clone(),
            network_key: NetworkKey::from_password(&settings.password),
            overlay_mtu,
            timers: Timers { query_interval: settings.query_interval, ..Timers::default() },
            unix_ms,
            seed: rand::random(),
            ipam_range,
        },
        now,
    );
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
    let dns_file = state.dns()?;
    let kept = dns_file.entries.len();
    let skipped = node.dns_restore(dns_file.entries);
    if kept > 0 {
        tracing::info!(entries = kept - skipped, skipped, "DNS entries restored");
    }
    for k in &peers_file.known {
        if let (Some(key), Ok(ep)) = (weavers_proto::keys::PublicKey::from_base64(&k.public_key), k.endpoint.parse()) {
            node.add_known_peer(key, ep, &k.name, now);
        }
    }
    let exposed = peers_file.exposed.take();
    let added = peers_file.added.clone();
    let mut plane = kernel_io::Plane { node, udp, tap: std::sync::Arc::new(tap), tx: udp::TxBatch::new(true) };
    let mut control = commands::Control::new(
        host::Host::new(state, peers_file),
        netdev.clone(),
        settings.bridge.clone(),
        settings.listen,
        dns::DnsService::new(settings.dns_port, settings.dns_upstream),
    );
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
    let dp = dataplane::Dataplane::new(plane, control);

    // Shutdown: SIGTERM or SIGINT tells every task through one watch channel.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let api_task = tokio::spawn(api::serve(listener, cmd_tx.clone(), stopped(stop_rx.clone())));
    let metrics_task =
        settings.metrics_addr.map(|addr| tokio::spawn(metrics::serve(addr, cmd_tx.clone(), stopped(stop_rx.clone()))));
    drop(cmd_tx);

    tracing::info!(
        name = %settings.name,
        public_key = %keypair.public,
        listen = %settings.listen,
        bridge = %settings.bridge,
        overlay_mtu,
        "weaversd ready"
    );
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let signalled = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        let _ = stop_tx.send(true);
    };
    // Returns after the data plane dropped the TAP, which removes it.
    dp.run(cmd_rx, signalled).await;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);

    // Best-effort teardown: collect every error rather than stopping at the first.
    let mut errors = Vec::new();
    if let Err(e) = netdev.delete_link(&tap_name).await {
        errors.push(format!("removing {tap_name}: {e}"));
    }
    if let Err(e) = netdev.delete_link(&settings.bridge).await {
        errors.push(format!("removing {}: {e}", settings.bridge));
    }
    match api_task.await {
        Ok(Err(e)) => errors.push(format!("control API: {e:#}")),
        Err(e) => errors.push(format!("control API task: {e}")),
        Ok(Ok(())) => {}
    }
    if let Some(t) = metrics_task {
        if let Ok(Err(e)) = t.await {
            errors.push(format!("metrics: {e:#}"));
        }
    }
    if errors.is_empty() {
        tracing::info!("stopped cleanly");
        Ok(())
    } else {
        anyhow::bail!("shutdown: {}", errors.join("; "))
    }
}

/// Binds the mesh's UDP socket with large buffers (bursts of multicast
/// fan-out would otherwise overflow the defaults).
fn bind_udp(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into()).with_context(|| format!("binding UDP {addr} (is another weaversd running?)"))?;
    Ok(tokio::net::UdpSocket::from_std(s.into())?)
}
