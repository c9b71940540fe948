//! The one error type of the crate.

use std::io;
use std::net::IpAddr;

use crate::IfnameError;

/// A failed netlink operation. `Display` is one line: what was attempted,
/// on what, and the kernel's words; [`NetlinkError::errno`] gives the errno.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The netlink socket could not be opened.
    #[error("opening a netlink socket: {0}")]
    Connect(io::Error),
    /// The kernel (or rtnetlink) refused or failed a request.
    #[error("{op} {target}: {}", describe(error))]
    Request {
        /// What was attempted, e.g. "creating bridge".
        op: &'static str,
        /// The link, address or route concerned.
        target: String,
        /// What rtnetlink said.
        error: rtnetlink::Error,
    },
    /// A name that cannot be a Linux interface name.
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why it cannot be one.
        reason: IfnameError,
    },
    /// A prefix length longer than the address, or a gateway of another
    /// family than the destination.
    #[error("invalid route or address {addr}/{prefix_len}: {why}")]
    InvalidPrefix {
        /// The address.
        addr: IpAddr,
        /// The prefix length.
        prefix_len: u8,
        /// What is wrong.
        why: String,
    },
}

impl NetlinkError {
    /// The positive errno behind this error, when there is one (a kernel
    /// refusal, or a socket that could not be opened).
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Connect(e) => e.raw_os_error(),
            NetlinkError::Request { error, .. } => errno_of(error),
            _ => None,
        }
    }

    /// A closure making a [`NetlinkError::Request`] for `op` on `target`.
    pub(crate) fn request(op: &'static str, target: impl ToString) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
        let target = target.to_string();
        move |error| NetlinkError::Request { op, target, error }
    }
}

/// The positive errno of a netlink NACK.
pub(crate) fn errno_of(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| c.get().abs()),
        _ => None,
    }
}

/// A netlink error as the errno's text when it is one, else as rtnetlink
/// words it.
fn describe(error: &rtnetlink::Error) -> String {
    match error {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io().to_string(),
        other => other.to_string(),
    }
}
