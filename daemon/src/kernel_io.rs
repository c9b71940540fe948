//! The node and its way to the kernel: [`Plane`] holds the [`Node`], the
//! mesh's UDP socket, the TAP and the batch of datagrams being sent, and
//! [`KernelIo`] is the node's output written straight to them. The event
//! loop (`dataplane.rs`) drives it; commands that make the node send
//! (IPAM allocations) borrow it through [`Plane::with_io`].

use crate::netdev::Tap;
use crate::udp::TxBatch;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;
use weavers_proto::node::{Io, Node};
use weavers_proto::stats::DropReason;
use weavers_proto::vnet::VNET_HDR_LEN;

/// The node's output, straight to the kernel. Failures are counted, not
/// retried: the overlay is a lossy link like any other.
/// Datagrams are queued in a [`TxBatch`] and leave when the batch ends.
pub struct KernelIo<'a> {
    udp: &'a UdpSocket,
    tap: &'a Tap,
    tx: &'a mut TxBatch,
    send_failed: u64,
}

impl<'a> KernelIo<'a> {
    /// Output to `udp` and `tap`, datagrams queued in `tx`.
    pub fn new(udp: &'a UdpSocket, tap: &'a Tap, tx: &'a mut TxBatch) -> Self {
        KernelIo { udp, tap, tx, send_failed: 0 }
    }

    /// Sends what is queued; returns the failures to count.
    pub fn finish(self) -> u64 {
        self.tx.flush(self.udp);
        self.send_failed + std::mem::take(&mut self.tx.failed)
    }
}

impl Io for KernelIo<'_> {
    fn send(&mut self, to: SocketAddr, datagram: &[u8]) {
        self.tx.push(self.udp, to, datagram);
    }

    fn deliver(&mut self, frame: &[u8]) {
        // The TAP has offloads on: a plain frame goes with an empty header.
        if self.tap.write_with_header(&[0; VNET_HDR_LEN], frame).is_err() {
            self.send_failed += 1;
        }
    }

    fn deliver_offloaded(&mut self, vnet_hdr: &[u8; VNET_HDR_LEN], frame: &[u8]) {
        if self.tap.write_with_header(vnet_hdr, frame).is_err() {
            self.send_failed += 1;
        }
    }
}

/// The node with the sockets it talks through, owned by the data-plane task.
pub struct Plane {
    /// The overlay's logic; one task owns it, so it needs no locks.
    pub node: Node,
    /// The mesh's UDP socket.
    pub udp: UdpSocket,
    /// The TAP on the bridge (shared only so the event loop can wait on it
    /// while it lends the plane out).
    pub tap: Arc<AsyncFd<Tap>>,
    /// Outgoing datagrams of the current batch.
    pub tx: TxBatch,
}

impl Plane {
    /// Runs node work whose output goes to the kernel: what it queued has
    /// left, and send failures are counted, when this returns.
    pub fn with_io<R>(&mut self, work: impl FnOnce(&mut Node, &mut KernelIo<'_>) -> R) -> R {
        let mut io = KernelIo::new(&self.udp, self.tap.get_ref(), &mut self.tx);
        let r = work(&mut self.node, &mut io);
        let failed = io.finish();
        self.node.count_drops(DropReason::SendFailed, failed);
        r
    }
}
