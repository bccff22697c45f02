//! The cgroup namespace faultd reads paths in. In a container's own cgroup namespace
//! (every unprivileged container on cgroup v2 under containerd or CRI-O, hence the
//! DaemonSet's pod), `/proc/PID/cgroup` of other processes and the mount roots in
//! mountinfo read `/../../kubepods.slice/...`, relative to the container's group. faultd
//! joins the node's namespace (pid 1's) at start so that every path reads as on the node.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sched::{CloneFlags, setns};

/// What [`join_node_namespace`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupNs {
    /// Already in pid 1's cgroup namespace (the usual case: a systemd unit).
    Node,
    /// Was in another one (inode given) and joined pid 1's.
    Joined { from: u64, to: u64 },
}

/// Joins the cgroup namespace of `PROC/1` if the caller is in another one.
///
/// `setns(2)` with `CLONE_NEWCGROUP` moves only the calling thread; call it before any
/// other thread exists, so that every thread made later inherits it. Needs
/// CAP_SYS_ADMIN, and (to open pid 1's namespace file) CAP_SYS_PTRACE unless faultd holds
/// every capability pid 1 holds.
/// Shell: `nsenter --cgroup=/proc/1/ns/cgroup`.
pub fn join_node_namespace(proc_root: &Path) -> Result<CgroupNs, String> {
    let own = proc_root.join("self/ns/cgroup");
    let init = proc_root.join("1/ns/cgroup");
    let ino = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.ino())
            .map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let (from, to) = (ino(&own)?, ino(&init)?);
    if from == to {
        return Ok(CgroupNs::Node);
    }
    let f =
        std::fs::File::open(&init).map_err(|e| format!("cannot open {}: {e}", init.display()))?;
    setns(f.as_fd(), CloneFlags::CLONE_NEWCGROUP).map_err(|e| {
        format!(
            "cannot join the cgroup namespace of pid 1 ({}): {e}",
            init.display()
        )
    })?;
    Ok(CgroupNs::Joined { from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_proc_says_which_file() {
        let e = join_node_namespace(Path::new("/nonexistent")).unwrap_err();
        assert!(
            e.starts_with("cannot read /nonexistent/self/ns/cgroup: "),
            "{e}"
        );
    }

    #[test]
    fn the_same_namespace_is_left_alone() {
        // A fake proc whose self and 1 are the same namespace file.
        let t = tempfile::tempdir().unwrap();
        for d in ["self/ns", "1/ns"] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        std::fs::write(t.path().join("self/ns/cgroup"), "").unwrap();
        std::fs::hard_link(
            t.path().join("self/ns/cgroup"),
            t.path().join("1/ns/cgroup"),
        )
        .unwrap();
        assert_eq!(join_node_namespace(t.path()).unwrap(), CgroupNs::Node);
    }
}
