//! Processes: the process table from procfs, and signals sent through pidfds so that a
//! recycled pid is never signalled.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::signal::Signal;

/// `PF_KTHREAD` in `/proc/PID/stat` flags: a kernel thread.
const PF_KTHREAD: u32 = 0x0020_0000;

/// What the agent knows of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    /// `/proc/PID/comm` (at most 15 bytes).
    pub comm: String,
    /// The command line, arguments joined by spaces; empty for kernel threads.
    pub cmdline: String,
    /// Effective uid (owner of `/proc/PID`).
    pub uid: u32,
    /// Start time in clock ticks since boot: with the pid, identifies the process.
    pub starttime: u64,
    /// State letter from `/proc/PID/stat` (`R`, `S`, `T`, `Z`...).
    pub state: char,
    pub kthread: bool,
}

impl ProcInfo {
    /// Basename of `argv[0]`, which is not truncated like comm is.
    pub fn argv0_name(&self) -> &str {
        let first = self.cmdline.split(' ').next().unwrap_or("");
        first.rsplit('/').next().unwrap_or(first)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("process {pid} does not exist")]
    Gone { pid: i32 },
    #[error(
        "process {pid} was replaced by another process with the same pid since it was selected"
    )]
    Recycled { pid: i32 },
    #[error("cannot read /proc/{pid}: {message}")]
    Read { pid: i32, message: String },
    #[error("cannot list processes in /proc: {0}")]
    List(String),
    #[error("{op} on process {pid} failed: {source}")]
    Syscall {
        op: &'static str,
        pid: i32,
        source: std::io::Error,
    },
}

fn read_info(p: &procfs::process::Process) -> Result<ProcInfo, ProcError> {
    let pid = p.pid;
    let map = |e: procfs::ProcError| match e {
        procfs::ProcError::NotFound(_) => ProcError::Gone { pid },
        other => ProcError::Read {
            pid,
            message: other.to_string(),
        },
    };
    let stat = p.stat().map_err(map)?;
    let kthread = stat.flags & PF_KTHREAD != 0;
    let cmdline = if kthread {
        Vec::new()
    } else {
        p.cmdline().unwrap_or_default()
    };
    let uid = p.uid().map_err(map)?;
    Ok(ProcInfo {
        pid,
        ppid: stat.ppid,
        comm: stat.comm,
        cmdline: cmdline.join(" "),
        uid,
        starttime: stat.starttime,
        state: stat.state,
        kthread,
    })
}

/// One process by pid.
pub fn info(pid: i32) -> Result<ProcInfo, ProcError> {
    let p = procfs::process::Process::new(pid).map_err(|e| match e {
        procfs::ProcError::NotFound(_) => ProcError::Gone { pid },
        other => ProcError::Read {
            pid,
            message: other.to_string(),
        },
    })?;
    read_info(&p)
}

/// Every process (threads excluded), skipping those that exit while being read.
pub fn list() -> Result<Vec<ProcInfo>, ProcError> {
    let all = procfs::process::all_processes().map_err(|e| ProcError::List(e.to_string()))?;
    Ok(all
        .filter_map(|p| p.ok())
        .filter_map(|p| read_info(&p).ok())
        .collect())
}

/// The state letter of a process (`T` stopped, `S` sleeping...), None if it is gone.
pub fn state(pid: i32) -> Option<char> {
    info(pid).ok().map(|i| i.state)
}

/// This process and all its ancestors up to pid 1.
pub fn self_and_ancestors() -> Vec<i32> {
    let mut out = vec![std::process::id() as i32];
    let mut cur = std::process::id() as i32;
    while let Ok(i) = info(cur) {
        if i.ppid <= 0 || out.contains(&i.ppid) {
            break;
        }
        out.push(i.ppid);
        cur = i.ppid;
    }
    out
}

/// A handle on one process that stays bound to it even if its pid is reused.
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
    pid: i32,
}

/// What a signal sent through a pidfd did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// The process had already exited (and was reaped or is a zombie).
    AlreadyGone,
}

impl PidFd {
    /// Opens a pidfd for `pid` and checks that the process behind it is still the one
    /// that started at `starttime` (the selection-time identity), so a pid recycled
    /// between the scan and now is refused.
    ///
    /// Equivalent: `pidfd_open(2)` then a re-read of `/proc/PID/stat`.
    pub fn open_checked(pid: i32, starttime: u64) -> Result<PidFd, ProcError> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; it reads
        // no memory of ours.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::ESRCH) {
                ProcError::Gone { pid }
            } else {
                ProcError::Syscall {
                    op: "pidfd_open",
                    pid,
                    source: e,
                }
            });
        }
        // SAFETY: fd is a fresh descriptor returned by the kernel that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let now = info(pid)?;
        if now.starttime != starttime {
            return Err(ProcError::Recycled { pid });
        }
        Ok(PidFd { fd, pid })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `sig` to the process this pidfd refers to, never to a pid's new owner.
    ///
    /// Equivalent: `kill -SIG PID`, but race-free (`pidfd_send_signal(2)`).
    pub fn signal(&self, sig: Signal) -> Result<Delivery, ProcError> {
        // SAFETY: the fd is a valid pidfd we own; info is NULL (allowed: the kernel fills
        // in a default siginfo) and flags are 0.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            )
        };
        if r == 0 {
            return Ok(Delivery::Delivered);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            Ok(Delivery::AlreadyGone)
        } else {
            Err(ProcError::Syscall {
                op: "pidfd_send_signal",
                pid: self.pid,
                source: e,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_self_with_identity() {
        let me = info(std::process::id() as i32).unwrap();
        assert!(!me.kthread);
        assert!(me.starttime > 0);
        let all = list().unwrap();
        assert!(all.iter().any(|p| p.pid == me.pid));
        assert!(self_and_ancestors().contains(&me.ppid));
    }

    #[test]
    fn pidfd_refuses_wrong_identity_and_signals_right_one() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let i = info(pid).unwrap();
        assert!(matches!(
            PidFd::open_checked(pid, i.starttime + 1),
            Err(ProcError::Recycled { .. })
        ));
        let fd = PidFd::open_checked(pid, i.starttime).unwrap();
        assert_eq!(fd.signal(Signal::SIGKILL).unwrap(), Delivery::Delivered);
        child.wait().unwrap();
        assert_eq!(fd.signal(Signal::SIGKILL).unwrap(), Delivery::AlreadyGone);
    }
}
