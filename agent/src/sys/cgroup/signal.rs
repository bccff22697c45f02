//! SIGKILL through a pidfd, after checking that the pid still names a member of the
//! group: a pid read from `cgroup.procs` and recycled meanwhile is never signalled.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{CgroupRef, Cgroups, Hierarchy};

/// `pidfd_open(2)`; `None` if the process is gone.
fn pidfd_open(pid: i32) -> std::io::Result<Option<OwnedFd>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is
    // passed to the kernel.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ESRCH) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: the syscall succeeded, so fd is a new descriptor that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
}

/// `pidfd_send_signal(2)` of SIGKILL; a process that has exited meanwhile is Ok.
fn pidfd_kill(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: fd is a valid pidfd we own; info is NULL (the kernel fills it in as for
    // kill(2)); flags 0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

/// Whether `pid` is (still) in `group` according to `/proc/PID/cgroup`.
fn is_member(cgroups: &Cgroups, pid: i32, group: &CgroupRef) -> bool {
    let Ok(entries) = Cgroups::pid_cgroups(pid) else {
        return false;
    };
    entries.iter().any(|(h, path)| {
        let same_hierarchy = match (h, &group.hierarchy) {
            (Hierarchy::V2, Hierarchy::V2) => true,
            (Hierarchy::V1(a), Hierarchy::V1(_)) => cgroups
                .dir_of(&Hierarchy::V1(a.clone()), "/")
                .is_some_and(|root| group.dir.starts_with(root)),
            _ => false,
        };
        same_hierarchy && (path == &group.path || path.starts_with(&format!("{}/", group.path)))
    })
}

/// `kill -KILL PID` for a pid listed in `group`'s `cgroup.procs`: through a pidfd taken
/// first, then checked to still be in the group. Returns whether a signal was sent.
pub(crate) fn kill_member(cgroups: &Cgroups, pid: i32, group: &CgroupRef) -> std::io::Result<bool> {
    let Some(fd) = pidfd_open(pid)? else {
        return Ok(false);
    };
    if !is_member(cgroups, pid, group) {
        return Ok(false);
    }
    pidfd_kill(&fd)?;
    Ok(true)
}
