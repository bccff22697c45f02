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
    // Read it even if absent, so that a vanished group is an Io error naming the file.
    let text = fs::read(&path)?;
    Ok(keyed(&text, key))
}

fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// `echo "QUOTA PERIOD" > DIR/cpu.max` (`max PERIOD` when `quota_us` is `None`).
pub(crate) fn set_cpu_max(
    dir: &Path,
    quota_us: Option<u64>,
    period_us: u64,
) -> Result<(), CgroupError> {
    let q = quota_us.map_or_else(|| "max".to_string(), |q| q.to_string());
    fs::write(&dir.join("cpu.max"), &format!("{q} {period_us}"))
}

/// `cat DIR/cpu.max`: `(Some(quota), period)`, or `(None, period)` for `max`.
/// `None` if the file is absent (the cpu controller is not enabled there).
pub(crate) fn cpu_max(dir: &Path) -> Result<Option<(Option<u64>, u64)>, CgroupError> {
    let p = dir.join("cpu.max");
    if !p.is_file() {
        return Ok(None);
    }
    let text = fs::read_trimmed(&p)?;
    let bad = || CgroupError::Parse {
        what: p.display().to_string(),
        detail: format!("expected \"QUOTA PERIOD\", found {text:?}"),
    };
    let (q, per) = text.split_once(' ').ok_or_else(bad)?;
    let period = per.parse().map_err(|_| bad())?;
    let quota = if q == "max" {
        None
    } else {
        Some(q.parse().map_err(|_| bad())?)
    };
    Ok(Some((quota, period)))
}

/// `echo BYTES > DIR/memory.max`, and `echo 0 > DIR/memory.swap.max` where swap is
/// accounted, so the capped pages stay resident.
pub(crate) fn set_memory_max(dir: &Path, bytes: u64) -> Result<(), CgroupError> {
    fs::write(&dir.join("memory.max"), &bytes.to_string())?;
    let swap = dir.join("memory.swap.max");
    if swap.is_file() {
        fs::write(&swap, "0")?;
    }
    Ok(())
}

/// `cat DIR/memory.max`: `Some(Some(bytes))`, `Some(None)` for `max`, `None` if absent.
pub(crate) fn memory_max(dir: &Path) -> Result<Option<Option<u64>>, CgroupError> {
    let p = dir.join("memory.max");
    if !p.is_file() {
        return Ok(None);
    }
    let text = fs::read_trimmed(&p)?;
    if text == "max" {
        return Ok(Some(None));
    }
    text.parse()
        .map(|b| Some(Some(b)))
        .map_err(|_| CgroupError::Parse {
            what: p.display().to_string(),
            detail: format!("expected a byte count or max, found {text:?}"),
        })
}

/// `grep usage_usec DIR/cpu.stat` (present in every v2 group, controller or not).
pub(crate) fn cpu_usage_usec(dir: &Path) -> Result<Option<u64>, CgroupError> {
    keyed_u64(&dir.join("cpu.stat"), "usage_usec")
}

/// `cat DIR/memory.current`, if the memory controller is enabled there.
pub(crate) fn memory_current(dir: &Path) -> Result<Option<u64>, CgroupError> {
    fs::read_u64_opt(&dir.join("memory.current"))
}

/// `grep oom_kill DIR/memory.events`.
pub(crate) fn oom_kills(dir: &Path) -> Result<Option<u64>, CgroupError> {
    keyed_u64(&dir.join("memory.events"), "oom_kill")
}

/// One `KEY VALUE` line of a flat-keyed file; `None` if the file or key is absent.
pub(crate) fn keyed_u64(path: &Path, key: &str) -> Result<Option<u64>, CgroupError> {
    if !path.is_file() {
        return Ok(None);
    }
    Ok(keyed(&fs::read(path)?, key))
}

/// Whether `DIR/cgroup.kill` exists (kernel >= 5.14).
pub(crate) fn can_kill(dir: &Path) -> bool {
    dir.join("cgroup.kill").is_file()
}

/// `echo 1 > DIR/cgroup.kill`: SIGKILL to every process in the group and below.
pub(crate) fn kill(dir: &Path) -> Result<(), CgroupError> {
    fs::write(&dir.join("cgroup.kill"), "1")
}

/// The controllers listed in a space-separated file (`cgroup.controllers`,
/// `cgroup.subtree_control`).
pub(crate) fn controllers(path: &Path) -> Result<Vec<String>, CgroupError> {
    Ok(fs::read(path)?
        .split_whitespace()
        .map(str::to_string)
        .collect())
}

/// `echo "+cpu +memory" > DIR/cgroup.subtree_control` for those of `want` not yet
/// enabled there.
pub(crate) fn enable_controllers(dir: &Path, want: &[&str]) -> Result<(), CgroupError> {
    let p = dir.join("cgroup.subtree_control");
    let have = controllers(&p)?;
    let missing: Vec<String> = want
        .iter()
        .filter(|c| !have.iter().any(|h| h == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    fs::write(&p, &missing.join(" "))
}

/// `echo WEIGHT > DIR/cpu.weight` (1..=10000, default 100).
pub(crate) fn set_cpu_weight(dir: &Path, weight: u64) -> Result<(), CgroupError> {
    fs::write(
        &dir.join("cpu.weight"),
        &weight.clamp(1, 10_000).to_string(),
    )
}

/// `cat DIR/cpu.weight`, if the cpu controller is enabled there.
pub(crate) fn cpu_weight(dir: &Path) -> Result<Option<u64>, CgroupError> {
    fs::read_u64_opt(&dir.join("cpu.weight"))
}
