//! Network namespaces: naming a target namespace, and creating a socket inside it.
//!
//! A socket stays in the namespace it was created in, so faultline creates each netlink
//! socket on a thread that has joined the target namespace with `setns`, and then uses
//! the socket from the async runtime. The calling thread never changes namespace.
//! Netlink sockets come from one long-lived worker thread that joins the target, makes
//! the socket and joins its home namespace again ([`route_socket_in`]); other callers
//! of [`NetnsTarget::run_in`] get a short-lived thread of their own.

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

/// A job for the namespace worker thread.
type Job = Box<dyn FnOnce() + Send>;

/// The worker that makes netlink sockets in other namespaces. One long-lived thread
/// rather than one per socket: under the VM tier's emulation starting a thread cost
/// 1.1 ms, and a network fault's plan, apply and revert each make a socket (3.4 of the
/// engine's 10 ms apply + revert, `bench-net`).
static WORKER: std::sync::Mutex<Option<std::sync::mpsc::Sender<Job>>> = std::sync::Mutex::new(None);

/// Runs `job` on the worker, starting one if there is none (or the last one ended).
fn submit(job: Job) -> io::Result<()> {
    let mut w = WORKER.lock().unwrap_or_else(|p| p.into_inner());
    let job = match w.as_ref() {
        Some(tx) => match tx.send(job) {
            Ok(()) => return Ok(()),
            Err(std::sync::mpsc::SendError(job)) => job,
        },
        None => job,
    };
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("faultline-netns".into())
        .spawn(move || worker(rx))?;
    tx.send(job)
        .map_err(|_| io::Error::other("the namespace worker thread ended at once"))?;
    *w = Some(tx);
    Ok(())
}

/// The worker's loop: after each job it joins its home namespace (the one it started
/// in) again; if it cannot, it ends, so that no later job starts in the wrong namespace
/// (the next [`submit`] starts a new worker; jobs queued behind see their reply
/// channel closed).
fn worker(jobs: std::sync::mpsc::Receiver<Job>) {
    let Ok(home) = File::open("/proc/thread-self/ns/net") else {
        return;
    };
    for job in jobs {
        job();
        if setns(home.as_fd(), CloneFlags::CLONE_NEWNET).is_err() {
            return;
        }
    }
}

/// A netlink (NETLINK_ROUTE) socket created inside `target` (on the worker thread; in
/// the agent's own namespace, on the calling thread, which never leaves it).
pub fn route_socket_in(target: &NetnsTarget) -> io::Result<OwnedFd> {
    let file = match target {
        NetnsTarget::Current => return new_route_socket(),
        _ => target.open()?,
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    submit(Box::new(move || {
        let made = setns(file.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(io::Error::from)
            .and_then(|()| new_route_socket());
        let _ = tx.send(made);
    }))?;
    rx.recv()
        .map_err(|_| io::Error::other("the namespace worker thread ended"))?
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

    /// The worker goes back to its home namespace after each job: after a socket made
    /// in a brand-new namespace, the next job starts in ours. A namespace that does not
    /// exist fails cleanly and the worker lives on. Needs root (setns).
    #[test]
    fn the_worker_comes_home_after_each_socket() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP the_worker_comes_home_after_each_socket: needs root (setns)");
            return;
        }
        use std::os::fd::AsRawFd;
        let ours = NetnsTarget::Current.identity().unwrap();
        let fresh = run_in_new(|| File::open("/proc/thread-self/ns/net")).unwrap();
        let fresh_target = NetnsTarget::Path(format!("/proc/self/fd/{}", fresh.as_raw_fd()).into());
        assert_ne!(fresh_target.identity().unwrap(), ours);
        let worker_at = || {
            let (tx, rx) = std::sync::mpsc::channel();
            submit(Box::new(move || {
                let _ = tx.send(NetnsTarget::Current.identity().unwrap());
            }))
            .unwrap();
            rx.recv().unwrap()
        };
        for _ in 0..3 {
            route_socket_in(&fresh_target).unwrap();
            assert_eq!(
                worker_at(),
                ours,
                "the worker stayed in the fresh namespace"
            );
        }
        assert!(route_socket_in(&NetnsTarget::Named("faultline-no-such-ns".into())).is_err());
        route_socket_in(&fresh_target).unwrap();
        assert_eq!(worker_at(), ours);
    }

    #[test]
    fn current_identity_is_stable() {
        let a = NetnsTarget::Current.identity().unwrap();
        let b = NetnsTarget::Pid(std::process::id()).identity().unwrap();
        assert_eq!(a, b);
    }
}
