//! Running netlink work inside the container's network namespace.
//!
//! A netlink socket acts on the network namespace of the thread that opened
//! it. The plugin's main thread stays in the host's namespace; work inside
//! the container runs on a thread made for it ([`in_netns`]), which joins
//! the container's namespace with `setns(2)` and ends with the work.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;

use weavers_netlink::{Netlink, NetlinkError};

/// Why work in the container's namespace failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The work's own netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// Entering the namespace (or getting ready to) failed.
    #[error("{op}: {error}")]
    Enter {
        /// What was attempted.
        op: &'static str,
        /// The system's word.
        error: io::Error,
    },
    /// The thread ended without an answer.
    #[error("working in the container's network namespace: the thread ended without an answer (it panicked)")]
    Panicked,
}

/// Opens a network namespace file (`CNI_NETNS`).
pub fn open_netns(path: &std::path::Path) -> io::Result<File> {
    File::open(path)
}

/// Runs `work` with a netlink connection inside the network namespace
/// `ns`, on a thread of its own (with a current-thread tokio runtime),
/// and gives back its result.
pub async fn in_netns<F, Fut, T>(ns: &File, work: F) -> Result<T, NetnsError>
where
    F: FnOnce(Netlink) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NetlinkError>>,
    T: Send + 'static,
{
    let fail = |op: &'static str| move |error: io::Error| NetnsError::Enter { op, error };
    let ns = ns.try_clone().map_err(fail("duplicating the namespace handle"))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("weavers-cni-netns".into())
        .spawn(move || {
            let result = (|| {
                // SAFETY: setns on a valid namespace fd; it moves only this
                // thread, which ends when the work is done.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(fail("entering the container's network namespace")(io::Error::last_os_error()));
                }
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(fail("starting a runtime in the container's namespace"))?;
                rt.block_on(async move { Ok(work(Netlink::new()?).await?) })
            })();
            let _ = tx.send(result);
        })
        .map_err(fail("starting a thread for the container's namespace"))?;
    rx.await.unwrap_or(Err(NetnsError::Panicked))
}
