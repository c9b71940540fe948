//! The data-plane task: the event loop. It owns the [`Plane`] (the node,
//! the UDP socket, the TAP) and the [`Control`] state, and waits on four
//! sources: control commands, datagrams, frames from the TAP, and the
//! node's timer. One task, so the node needs no locks.

use crate::commands::Control;
use crate::control::Command;
use crate::kernel_io::{KernelIo, Plane};
use crate::udp::recv_gro;
use std::os::fd::AsRawFd;
use std::time::Instant;
use tokio::io::Interest;
use tokio::sync::mpsc;
use weavers_proto::stats::DropReason;
use weavers_proto::vnet::{self, VnetHdr, VNET_HDR_LEN};

/// Datagrams or frames handled per wake-up before looking at other sources.
const BATCH: usize = 64;

/// Everything the task owns.
pub struct Dataplane {
    plane: Plane,
    control: Control,
}

impl Dataplane {
    /// The task over a started plane and its control state.
    pub fn new(plane: Plane, control: Control) -> Self {
        Dataplane { plane, control }
    }

    /// Runs until `shutdown` resolves; consumes the data plane so that the
    /// TAP is closed (and so removed) when it returns.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut buf = vec![0u8; 65_536];
        let tap = self.plane.tap.clone();
        loop {
            let deadline = tokio::time::Instant::from_std(self.plane.node.poll_timeout());
            tokio::select! {
                _ = &mut shutdown => break,
                Some(cmd) = commands.recv() => self.control.command(&mut self.plane, cmd).await,
                r = self.plane.udp.readable() => if r.is_ok() {
                    let more = drain_udp(&mut self.plane, &mut buf);
                    // Space given away is on disk before the donation leaves (at the next tick).
                    self.control.after_node_work(&mut self.plane.node);
                    if more {
                        let_others_run().await;
                    }
                },
                r = tap.readable() => if let Ok(mut guard) = r {
                    if drain_tap(&mut self.plane, &mut buf) {
                        guard.clear_ready();
                    } else {
                        let_others_run().await;
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    // What already arrived counts before any timeout is
                    // judged: after this process was not scheduled for a
                    // while (a loaded host), the timer and the socket are
                    // ready together, and a pong waiting in the socket must
                    // not let a liveness probe fail (a false failure).
                    drain_udp(&mut self.plane, &mut buf);
                    self.plane.with_io(|node, io| node.handle_timeout(Instant::now(), io));
                    self.control.after_node_work(&mut self.plane.node);
                    self.control.host.save_peers_if_due(&self.plane.node, Instant::now());
                    self.control.retry_allocations(&mut self.plane).await;
                    self.control.reload_cert(&mut self.plane.node);
                }
            }
        }
        self.control.host.save_peers(&self.plane.node);
    }
}

/// After a full batch (more may be waiting): lets the runtime poll its I/O
/// and timer drivers and run the other tasks (the control API, metrics,
/// DNS) before the next batch. (A source that ran empty returns to the
/// runtime anyway.)
///
/// Without it a socket that never runs empty (a flood, or more traffic
/// than the host's CPU share keeps up with) kept this task busy for
/// thousands of datagrams between two driver polls (tokio's cooperative
/// budget), and `weavers status` went unanswered for over 30 s
/// (`tests/tests/rogue_flood`, `WEAVERS_ROGUE_SCALE=4` on a loaded host).
/// A yield defers this task until the drivers have been polled: one
/// `epoll_wait` per full batch of 64.
async fn let_others_run() {
    tokio::task::yield_now().await;
}

/// Hands up to [`BATCH`] reads of datagrams (each possibly coalesced by GRO)
/// to the node. Returns true when all [`BATCH`] were read (more may wait).
fn drain_udp(plane: &mut Plane, buf: &mut [u8]) -> bool {
    let Plane { node, udp, tap, tx } = plane;
    let mut io = KernelIo::new(udp, tap.get_ref(), tx);
    let fd = udp.as_raw_fd();
    let mut full = true;
    for _ in 0..BATCH {
        match udp.try_io(Interest::READABLE, || recv_gro(fd, buf)) {
            Ok((n, from, seg)) => {
                // The time of each datagram, not of the batch: keepalive
                // round trips on a LAN are shorter than a batch.
                let now = Instant::now();
                for d in buf[..n].chunks(seg.unwrap_or(n).max(1)) {
                    node.handle_datagram(now, from, d, &mut io);
                }
            }
            Err(_) => {
                full = false;
                break;
            }
        }
    }
    // TCP segments held to be joined into a super-frame go into the TAP now.
    node.flush(&mut io);
    let failed = io.finish();
    node.count_drops(DropReason::SendFailed, failed);
    full
}

/// Hands up to [`BATCH`] frames from the TAP to the node, then flushes what
/// it queued per peer. Returns true when the TAP is empty (readiness can be cleared).
fn drain_tap(plane: &mut Plane, buf: &mut [u8]) -> bool {
    let now = Instant::now();
    let Plane { node, udp, tap, tx } = plane;
    let mut io = KernelIo::new(udp, tap.get_ref(), tx);
    let mut empty = false;
    for _ in 0..BATCH {
        match tap.get_ref().read(buf) {
            Ok(n) if n > VNET_HDR_LEN => {
                let (h, frame) = buf[..n].split_at_mut(VNET_HDR_LEN);
                let h: &[u8; VNET_HDR_LEN] = (&*h).try_into().expect("split at the header length");
                let hdr = VnetHdr::parse(h);
                if hdr.is_gso() {
                    node.handle_offloaded_frame(now, h, frame, &mut io);
                } else if hdr.flags & vnet::F_NEEDS_CSUM != 0
                    && !vnet::complete_checksum(frame, hdr.csum_start, hdr.csum_offset)
                {
                    node.count_drops(DropReason::Malformed, 1);
                } else {
                    node.handle_frame(now, frame, &mut io);
                }
            }
            Ok(_) => node.count_drops(DropReason::Malformed, 1),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                empty = true;
                break;
            }
            Err(e) => {
                tracing::warn!("reading the TAP: {e}");
                empty = true;
                break;
            }
        }
    }
    node.flush(&mut io);
    let failed = io.finish();
    node.count_drops(DropReason::SendFailed, failed);
    empty
}
