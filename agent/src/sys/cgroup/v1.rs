//! cgroup v1 (one hierarchy per controller) control files.

use std::path::Path;

use super::{CgroupError, fs};

/// Whether the v1 freezer group at `dir` can be frozen (the root group has no
/// `freezer.state`).
pub(crate) fn can_freeze(dir: &Path) -> bool {
    dir.join("freezer.state").is_file()
}

/// `echo FROZEN > DIR/freezer.state` (or `echo THAWED` to thaw).
pub(crate) fn set_frozen(dir: &Path, frozen: bool) -> Result<(), CgroupError> {
    fs::write(
        &dir.join("freezer.state"),
        if frozen { "FROZEN" } else { "THAWED" },
    )
}

/// `cat DIR/freezer.state` is `FROZEN` (not `FREEZING`, not `THAWED`); a frozen parent
/// makes its children read `FROZEN` too.
pub(crate) fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    Ok(fs::read_trimmed(&dir.join("freezer.state"))? == "FROZEN")
}
