//! The data plane's IPAM commands: allocations that wait (bounded) while
//! the mesh seeds the range or another host donates space, release, GC,
//! taking over a dead peer's space, and persisting it all before answering.

use crate::control::AllocateError;
use crate::dataplane::{Dataplane, KernelIo};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use weavers_api::{Allocation, AllocationRow, ExposeResponse, IpamStatus, Released};
use weavers_proto::ipam::IpamError;
use weavers_proto::stats::DropReason;

/// How long an allocation may wait for the range to be seeded or for space.
pub const ALLOCATE_TIMEOUT: Duration = Duration::from_secs(15);
/// The owner id of the host's own address (`weavers expose`).
pub const HOST_OWNER: &str = "host";

/// Who waits for an allocation.
#[derive(Debug)]
pub enum Waiter {
    Api(oneshot::Sender<Result<Allocation, AllocateError>>),
    /// `weavers expose` without an address.
    Expose(oneshot::Sender<Result<ExposeResponse, String>>),
}

/// An allocation waiting for space.
#[derive(Debug)]
pub struct PendingAlloc {
    pub owner: String,
    pub deadline: Instant,
    pub waiter: Waiter,
}

impl Dataplane {
    /// Tries `owner`'s allocation now; parks it if the mesh has to seed or
    /// donate first.
    pub async fn allocate(&mut self, owner: String, waiter: Waiter) {
        let pending = PendingAlloc { owner, deadline: Instant::now() + ALLOCATE_TIMEOUT, waiter };
        if let Some(p) = self.try_allocate(pending).await {
            self.pending_allocs.push(p);
        }
    }

    /// Retries parked allocations (each tick).
    pub async fn retry_allocations(&mut self) {
        for p in std::mem::take(&mut self.pending_allocs) {
            if let Some(p) = self.try_allocate(p).await {
                self.pending_allocs.push(p);
            }
        }
    }

    /// Answers `p` if it can be answered now; gives it back otherwise.
    async fn try_allocate(&mut self, p: PendingAlloc) -> Option<PendingAlloc> {
        let now = Instant::now();
        let mut io = KernelIo::new(&self.udp, self.tap.get_ref(), &mut self.tx);
        let r = self.node.ipam_allocate(now, &p.owner, &mut io);
        let failed = io.finish();
        self.node.count_drops(DropReason::SendFailed, failed);
        let result = match r {
            Ok((addr, len)) => match self.persist_ipam() {
                Ok(()) => Ok(format!("{addr}/{len}")),
                Err(e) => {
                    self.node.ipam_release(&p.owner);
                    Err(AllocateError::Refused(format!("saving the allocation: {e:#}")))
                }
            },
            Err(IpamError::NoSpace | IpamError::NotSeeded) if now < p.deadline => return Some(p),
            Err(e @ (IpamError::NoSpace | IpamError::NotSeeded)) => Err(AllocateError::Unavailable(e.to_string())),
            Err(e) => Err(AllocateError::Refused(e.to_string())),
        };
        match p.waiter {
            Waiter::Api(tx) => {
                let _ = tx.send(result.map(|address| Allocation {
                    owner: p.owner,
                    address,
                    gateway: self.peers_file.exposed.as_ref().and_then(|e| e.split('/').next()).map(str::to_string),
                    mtu: self.node.overlay_mtu() as u32,
                }));
            }
            Waiter::Expose(tx) => {
                let r = match result {
                    Ok(cidr) => self.expose(Some(cidr)).await,
                    Err(AllocateError::Unavailable(e) | AllocateError::Refused(e)) => Err(e),
                };
                let _ = tx.send(r);
            }
        }
        None
    }

    pub fn release(&mut self, owner: &str) -> Result<Released, String> {
        let released = match self.node.ipam_release(owner) {
            Some(a) => vec![AllocationRow { owner: owner.to_string(), address: a.to_string() }],
            None => Vec::new(),
        };
        self.persist_ipam().map_err(|e| format!("{e:#}"))?;
        Ok(Released { released })
    }

    pub fn gc(&mut self, keep: &[String]) -> Result<Released, String> {
        let mut keep: Vec<&str> = keep.iter().map(String::as_str).collect();
        keep.push(HOST_OWNER);
        let released = self.node.ipam_gc(&keep);
        self.persist_ipam().map_err(|e| format!("{e:#}"))?;
        Ok(Released { released })
    }

    pub fn rmpeer(&mut self, peer: &str) -> Result<IpamStatus, String> {
        self.node.ipam_take_over(peer)?;
        self.persist_ipam().map_err(|e| format!("{e:#}"))?;
        Ok(self.node.ipam_status())
    }

    /// Writes the ring and allocations to the state dir.
    pub fn persist_ipam(&mut self) -> anyhow::Result<()> {
        self.node.take_ipam_changed();
        let (ring, alloc) = self.node.ipam_snapshot();
        self.state.save_ipam(ring, alloc)
    }
}
