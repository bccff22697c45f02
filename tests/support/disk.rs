//! Disk helpers for the disk fault tests: a tmpfs a test mounts at a unique mountpoint
//! (and unmounts), and `df`'s view of a filesystem.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::agent::stderr;

/// A name no other test (or helper) uses: `faultline-<tag>-<pid>-<nanos>`.
pub fn unique(tag: &str) -> String {
    format!(
        "faultline-{tag}-{}-{:08x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// A filesystem a test mounts at a unique directory, unmounted (and the directory
/// removed) on drop.
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    /// A tmpfs of `mib` MiB.
    pub fn mount(tag: &str, mib: u64) -> Tmpfs {
        Tmpfs::of(
            tag,
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m"),
                "faultline-disk",
            ],
        )
    }

    /// The block device `dev` (e.g. the VM's scratch disk), of type `fstype`.
    pub fn device(tag: &str, dev: &str, fstype: &str) -> Tmpfs {
        Tmpfs::of(tag, &["-t", fstype, dev])
    }

    fn of(tag: &str, args: &[&str]) -> Tmpfs {
        let dir = std::env::temp_dir().join(unique(&format!("disk-{tag}")));
        std::fs::create_dir(&dir).unwrap();
        let out = Command::new("mount").args(args).arg(&dir).output().unwrap();
        assert!(out.status.success(), "mount {args:?}: {}", stderr(&out));
        Tmpfs { dir }
    }

    pub fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    /// The disk fill files (`.faultline-fill-*`) in it.
    pub fn fill_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|d| d.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".faultline-fill-")
            })
            .collect()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A filesystem's (used, available) bytes as `df` counts them (used: blocks minus free
/// blocks; available: what unprivileged users may still write), from statvfs(2): the
/// numbers coreutils' `df -B1` prints, without needing its `--output` (busybox's `df`,
/// in the VM, has none).
pub fn df(p: &Path) -> (u64, u64) {
    let s =
        nix::sys::statvfs::statvfs(p).unwrap_or_else(|e| panic!("statvfs {}: {e}", p.display()));
    let f = s.fragment_size();
    ((s.blocks() - s.blocks_free()) * f, s.blocks_available() * f)
}
