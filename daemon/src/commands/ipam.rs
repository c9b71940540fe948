//! The IPAM commands: allocations that wait (bounded) while the mesh seeds
//! the range or another host donates space, release, GC, taking over a dead
//! peer's space, and saving it all before answering.

use crate::control::AllocateError;
use crate::host::Host;
use crate::kernel_io::Plane;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use weavers_api::{Allocation, AllocationRow, ExposeResponse, IpamStatus, Released};
use weavers_proto::ipam::IpamError;
use weavers_proto::node::Node;

/// How long an allocation may wait for the range to be seeded or for space.
pub const ALLOCATE_TIMEOUT: Duration = Duration::from_secs(15);
/// The owner id of the host's own address (`weavers expose`).
pub const HOST_OWNER: &str = "host";

/// Who waits for an allocation.
#[derive(Debug)]
pub enum Waiter {
    /// `POST /v1/ipam/allocate` (the CNI plugin).
    Api(oneshot::Sender<Result<Allocation, AllocateError>>),
    /// `weavers expose` without an address.
    Expose(oneshot::Sender<Result<ExposeResponse, String>>),
}

/// An allocation waiting for space.
#[derive(Debug)]
pub struct PendingAlloc {
    /// Who the address is for (a container id, or [`HOST_OWNER`]).
    pub owner: String,
    /// When to give up and answer "unavailable".
    pub deadline: Instant,
    /// Who gets the answer.
    pub waiter: Waiter,
}

impl PendingAlloc {
    /// `owner`'s allocation, which may wait [`ALLOCATE_TIMEOUT`] from now.
    pub fn new(owner: String, waiter: Waiter) -> Self {
        PendingAlloc { owner, deadline: Instant::now() + ALLOCATE_TIMEOUT, waiter }
    }
}

/// A `weavers expose` whose allocation is over: the address to expose
/// (then answer with), or why there is none.
#[derive(Debug)]
pub struct ExposeWaiting {
    /// Where the answer goes.
    pub tx: oneshot::Sender<Result<ExposeResponse, String>>,
    /// The allocated `ADDR/LEN`, or why there is none.
    pub address: Result<String, String>,
}

/// Allocations waiting for the range to be seeded or for space.
#[derive(Debug, Default)]
pub struct Allocations {
    pending: Vec<PendingAlloc>,
}

impl Allocations {
    /// The parked allocations, to try again (each tick); those that still
    /// have to wait are parked again by [`Allocations::attempt`].
    pub fn take_pending(&mut self) -> Vec<PendingAlloc> {
        std::mem::take(&mut self.pending)
    }

    /// Tries `p` now: parks it if the mesh has to seed or donate first,
    /// answers an API caller (with `gateway`, the containers' gateway and
    /// DNS server), and gives an expose caller back with its address (the
    /// caller exposes it, then answers).
    pub fn attempt(
        &mut self,
        plane: &mut Plane,
        host: &Host,
        gateway: Option<String>,
        p: PendingAlloc,
    ) -> Option<ExposeWaiting> {
        let now = Instant::now();
        let r = plane.with_io(|node, io| node.ipam_allocate(now, &p.owner, io));
        let node = &mut plane.node;
        let result = match r {
            Ok((addr, len)) => match host.save_ipam(node) {
                Ok(()) => Ok(format!("{addr}/{len}")),
                Err(e) => {
                    node.ipam_release(&p.owner);
                    Err(AllocateError::Refused(format!("saving the allocation: {e:#}")))
                }
            },
            Err(IpamError::NoSpace | IpamError::NotSeeded) if now < p.deadline => {
                self.pending.push(p);
                return None;
            }
            Err(e @ (IpamError::NoSpace | IpamError::NotSeeded)) => Err(AllocateError::Unavailable(e.to_string())),
            Err(e) => Err(AllocateError::Refused(e.to_string())),
        };
        match p.waiter {
            Waiter::Api(tx) => {
                let _ = tx.send(result.map(|address| Allocation {
                    owner: p.owner,
                    address,
                    gateway,
                    mtu: node.overlay_mtu() as u32,
                }));
                None
            }
            Waiter::Expose(tx) => Some(ExposeWaiting {
                tx,
                address: result.map_err(|(AllocateError::Unavailable(e) | AllocateError::Refused(e))| e),
            }),
        }
    }
}

/// Frees `owner`'s address.
pub fn release(node: &mut Node, host: &Host, owner: &str) -> Result<Released, String> {
    let released = match node.ipam_release(owner) {
        Some(a) => vec![AllocationRow { owner: owner.to_string(), address: a.to_string() }],
        None => Vec::new(),
    };
    host.save_ipam(node).map_err(|e| format!("{e:#}"))?;
    Ok(Released { released })
}

/// Frees every address but those of `keep` and the host's own.
pub fn gc(node: &mut Node, host: &Host, keep: &[String]) -> Result<Released, String> {
    let mut keep: Vec<&str> = keep.iter().map(String::as_str).collect();
    keep.push(HOST_OWNER);
    let released = node.ipam_gc(&keep);
    host.save_ipam(node).map_err(|e| format!("{e:#}"))?;
    Ok(Released { released })
}

/// Takes over the space of `peer`, a host that is gone for good.
pub fn rmpeer(node: &mut Node, host: &Host, peer: &str) -> Result<IpamStatus, String> {
    node.ipam_take_over(peer)?;
    host.save_ipam(node).map_err(|e| format!("{e:#}"))?;
    Ok(node.ipam_status())
}
