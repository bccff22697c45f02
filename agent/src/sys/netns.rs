//! Network namespaces: naming a target namespace, and creating a socket inside it.
//!
//! A socket stays in the namespace it was created in, so faultline creates each netlink
//! socket on a short-lived thread that has joined the target namespace with `setns`, and
//! then uses the socket from the async runtime. The calling thread never changes
//! namespace.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::sched::{CloneFlags, setns, unshare};
use serde::{Deserialize, Serialize};

/// Where `ip netns add NAME` keeps named namespaces.
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

/// The network namespace an operation acts in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NetnsTarget {
    /// The agent's own namespace.
    Current,
    /// A namespace made by `ip netns add NAME` (`/var/run/netns/NAME`).
    Named(String),
    /// A namespace file (a bind mount or `/proc/PID/ns/net`).
    Path(PathBuf),
    /// The namespace of a process (a container's): `/proc/PID/ns/net`.
    Pid(u32),
}

impl fmt::Display for NetnsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsTarget::Current => write!(f, "the agent's network namespace"),
            NetnsTarget::Named(n) => write!(f, "network namespace {n:?}"),
            NetnsTarget::Path(p) => write!(f, "network namespace {}", p.display()),
            NetnsTarget::Pid(p) => write!(f, "the network namespace of pid {p}"),
        }
    }
}

/// A namespace's identity: (device, inode) of its nsfs file. Two opens of the same
/// namespace give the same identity; a new namespace at a reused pid does not.
pub type NetnsId = (u64, u64);

impl NetnsTarget {
    /// The namespace file, `None` for [`NetnsTarget::Current`].
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            NetnsTarget::Current => None,
            NetnsTarget::Named(n) => Some(PathBuf::from(NETNS_RUN_DIR).join(n)),
            NetnsTarget::Path(p) => Some(p.clone()),
            NetnsTarget::Pid(p) => Some(PathBuf::from(format!("/proc/{p}/ns/net"))),
        }
    }

    /// Opens the namespace file (for [`NetnsTarget::Current`], the calling thread's
    /// `/proc/thread-self/ns/net`).
    pub fn open(&self) -> io::Result<File> {
        File::open(
            self.path()
                .unwrap_or_else(|| PathBuf::from("/proc/thread-self/ns/net")),
        )
    }

    /// The namespace's identity, for telling later whether it is still the same one.
    pub fn identity(&self) -> io::Result<NetnsId> {
        let m = self.open()?.metadata()?;
        Ok((m.dev(), m.ino()))
    }

    /// Runs `f` on a new thread that has joined this namespace, and returns its result.
    /// `f` typically creates a socket, which then stays bound to the namespace.
    pub fn run_in<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let file = match self {
            NetnsTarget::Current => None,
            _ => Some(self.open()?),
        };
        std::thread::Builder::new()
            .name("faultline-netns".into())
            .spawn(move || {
                if let Some(file) = file {
                    setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                }
                f()
            })?
            .join()
            .map_err(|_| io::Error::other("netns thread panicked"))?
    }
}

/// Runs `f` on a new thread inside a brand-new anonymous network namespace (gone once
/// nothing refers to it any more: the thread has ended and every socket made in it is
/// closed). For probes and tests; never touches the caller's namespace.
pub fn run_in_new<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    std::thread::Builder::new()
        .name("faultline-netns-new".into())
        .spawn(move || {
            unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            f()
        })?
        .join()
        .map_err(|_| io::Error::other("netns thread panicked"))?
}

/// A netlink (NETLINK_ROUTE) socket created inside `target`.
pub fn route_socket_in(target: &NetnsTarget) -> io::Result<OwnedFd> {
    target.run_in(new_route_socket)
}

/// A NETLINK_ROUTE socket in the calling thread's namespace.
pub fn new_route_socket() -> io::Result<OwnedFd> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let s = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)?;
    let fd = s.into_raw_fd();
    // SAFETY: `fd` was just released by `into_raw_fd` and nothing else owns it.
    #[allow(unsafe_code)]
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            NetnsTarget::Named("x".into()).path().unwrap(),
            PathBuf::from("/var/run/netns/x")
        );
        assert_eq!(
            NetnsTarget::Pid(42).path().unwrap(),
            PathBuf::from("/proc/42/ns/net")
        );
        assert!(NetnsTarget::Current.path().is_none());
        assert!(NetnsTarget::Pid(u32::MAX).identity().is_err());
    }

    #[test]
    fn current_identity_is_stable() {
        let a = NetnsTarget::Current.identity().unwrap();
        let b = NetnsTarget::Pid(std::process::id()).identity().unwrap();
        assert_eq!(a, b);
    }
}
