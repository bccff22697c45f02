//! Disk helpers for the disk fault tests: a tmpfs a test mounts at a unique mountpoint
//! (and unmounts), and `df`'s view of a filesystem.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::agent::stderr;

/// A tmpfs of `mib` MiB at a unique mountpoint, unmounted (and removed) on drop.
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(tag: &str, mib: u64) -> Tmpfs {
        let dir = std::env::temp_dir().join(format!(
            "faultline-disk-{tag}-{}-{:08x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        ));
        std::fs::create_dir(&dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m"),
                "faultline-disk",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount tmpfs: {}", stderr(&out));
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

/// `df`'s view of a filesystem: (used, available) bytes.
pub fn df(p: &Path) -> (u64, u64) {
    let out = Command::new("df")
        .args(["-B1", "--output=used,avail"])
        .arg(p)
        .output()
        .unwrap();
    assert!(out.status.success(), "df: {}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().nth(1).expect("df prints a row");
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1])
}
