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

/// The value v1 shows for "no memory limit" is PAGE_COUNTER_MAX pages in bytes
/// (9223372036854771712 with 4 KiB pages); anything this large means unlimited.
const V1_UNLIMITED: u64 = 1 << 62;

/// `echo PERIOD > DIR/cpu.cfs_period_us; echo QUOTA > DIR/cpu.cfs_quota_us`
/// (`-1` when `quota_us` is `None`).
pub(crate) fn set_cfs(
    dir: &Path,
    quota_us: Option<u64>,
    period_us: u64,
) -> Result<(), CgroupError> {
    fs::write(&dir.join("cpu.cfs_period_us"), &period_us.to_string())?;
    let q = quota_us.map_or_else(|| "-1".to_string(), |q| q.to_string());
    fs::write(&dir.join("cpu.cfs_quota_us"), &q)
}

/// `cat DIR/cpu.cfs_quota_us DIR/cpu.cfs_period_us`: `(Some(quota), period)`, or
/// `(None, period)` for `-1`; `None` if the files are absent.
pub(crate) fn cfs(dir: &Path) -> Result<Option<(Option<u64>, u64)>, CgroupError> {
    let qp = dir.join("cpu.cfs_quota_us");
    if !qp.is_file() {
        return Ok(None);
    }
    let q = fs::read_trimmed(&qp)?;
    let period = fs::read_u64(&dir.join("cpu.cfs_period_us"))?;
    let quota = match q.parse::<i64>() {
        Ok(v) if v < 0 => None,
        Ok(v) => Some(v as u64),
        Err(_) => {
            return Err(CgroupError::Parse {
                what: qp.display().to_string(),
                detail: format!("expected a number, found {q:?}"),
            });
        }
    };
    Ok(Some((quota, period)))
}

/// `echo BYTES > DIR/memory.limit_in_bytes`, then the same into
/// `memory.memsw.limit_in_bytes` where swap is accounted, so the capped pages cannot
/// escape to swap.
pub(crate) fn set_memory_limit(dir: &Path, bytes: u64) -> Result<(), CgroupError> {
    fs::write(&dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    if memsw.is_file() {
        fs::write(&memsw, &bytes.to_string())?;
    }
    Ok(())
}

/// `cat DIR/memory.limit_in_bytes`: `Some(Some(bytes))`, `Some(None)` when unlimited,
/// `None` if absent.
pub(crate) fn memory_limit(dir: &Path) -> Result<Option<Option<u64>>, CgroupError> {
    Ok(fs::read_u64_opt(&dir.join("memory.limit_in_bytes"))?
        .map(|v| (v < V1_UNLIMITED).then_some(v)))
}

/// `cat DIR/cpuacct.usage` (nanoseconds) in microseconds.
pub(crate) fn cpuacct_usage_usec(dir: &Path) -> Result<Option<u64>, CgroupError> {
    Ok(fs::read_u64_opt(&dir.join("cpuacct.usage"))?.map(|ns| ns / 1000))
}

/// `cat DIR/memory.usage_in_bytes`.
pub(crate) fn memory_usage(dir: &Path) -> Result<Option<u64>, CgroupError> {
    fs::read_u64_opt(&dir.join("memory.usage_in_bytes"))
}

/// `grep oom_kill DIR/memory.oom_control` (kernels >= 4.13).
pub(crate) fn oom_kills(dir: &Path) -> Result<Option<u64>, CgroupError> {
    super::v2::keyed_u64(&dir.join("memory.oom_control"), "oom_kill")
}

/// `echo SHARES > DIR/cpu.shares` for a v2-scale `weight` (100 = 1024 shares).
pub(crate) fn set_cpu_shares(dir: &Path, weight: u64) -> Result<(), CgroupError> {
    let shares = (weight.clamp(1, 10_000) * 1024 / 100).clamp(2, 262_144);
    fs::write(&dir.join("cpu.shares"), &shares.to_string())
}

/// `cat DIR/cpu.shares` on the v2 weight scale (1024 shares = 100), rounded.
pub(crate) fn cpu_weight(dir: &Path) -> Result<Option<u64>, CgroupError> {
    Ok(fs::read_u64_opt(&dir.join("cpu.shares"))?.map(|s| (s * 100 + 512) / 1024))
}
