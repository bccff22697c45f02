//! cgroup v2 (unified hierarchy) control files.

use std::path::Path;

use super::{CgroupError, fs};

/// Whether the v2 group at `dir` can be frozen (it has `cgroup.freeze`: every non-root
/// group on kernels >= 5.2, controllers or not).
pub(crate) fn can_freeze(dir: &Path) -> bool {
    dir.join("cgroup.freeze").is_file()
}

/// `echo 1 > DIR/cgroup.freeze` (or `echo 0` to thaw).
pub(crate) fn set_frozen(dir: &Path, frozen: bool) -> Result<(), CgroupError> {
    fs::write(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })
}

/// `grep frozen DIR/cgroup.events`: whether every task in the group (and below) is
/// frozen, counting a freeze inherited from an ancestor.
pub(crate) fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    Ok(events_field(dir, "frozen")? == Some(1))
}

/// One `KEY VALUE` field of `DIR/cgroup.events` (`populated`, `frozen`).
pub(crate) fn events_field(dir: &Path, key: &str) -> Result<Option<u64>, CgroupError> {
    let path = dir.join("cgroup.events");
    let text = fs::read(&path)?;
    Ok(text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    }))
}
