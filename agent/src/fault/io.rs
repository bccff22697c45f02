//! I/O limits: throttle a cgroup's I/O on one block device through blk-throttle, cgroup
//! v2 `io.max` or v1 `blkio.throttle.{read,write}_{bps,iops}_device`.
//!
//! The device is the whole disk blk-throttle applies to: a path resolves to its
//! filesystem's device, a partition to its disk. The previous value of every key the
//! fault sets is read first and kept in the undo (journalled before the write), and
//! revert writes exactly those values back (`max` / `0`: no limit). faultline does not
//! enable the `io` controller for a v2 group that lacks it: enabling a controller in a
//! parent's `cgroup.subtree_control` changes the accounting of every sibling, and the
//! operator's own tooling (systemd's `IOAccounting=`) owns that choice; the fault is
//! refused (FailedPrecondition) with the command that enables it.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use faultline_proto::units::format_size;

use super::stress::Placement;
use super::{Applied, Plan, Undo};
use crate::error::FaultError;
use crate::host::Host;
use crate::sys::cgroup::Hierarchy;

/// Which device to throttle.
#[derive(Debug, Clone, PartialEq)]
pub enum IoDevice {
    /// A block device node, e.g. `/dev/vdb` or `/dev/sda1`.
    Device(PathBuf),
    /// The device of the filesystem holding this path.
    Path(PathBuf),
}

/// The four blk-throttle keys, in `io.max` order.
pub const KEYS: [&str; 4] = ["rbps", "wbps", "riops", "wiops"];

#[derive(Debug, Clone, PartialEq)]
pub struct IoLimitSpec {
    pub target: Placement,
    pub device: IoDevice,
    /// rbps, wbps, riops, wiops; `None`: left as it is.
    pub values: [Option<u64>; 4],
}

/// A throttle as the kernel has it: each key's value, `None` for no limit.
pub type Settings = [Option<u64>; 4];

/// Where the limit goes and what it was: journalled, so a later start can restore it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IoUndo {
    /// The target group's directory.
    pub dir: PathBuf,
    /// cgroup v2 (`io.max`) or v1 (`blkio.throttle.*`).
    pub v2: bool,
    /// `MAJ:MIN` of the whole disk.
    pub dev: String,
    /// The keys the fault sets (indexes into [`KEYS`]) and their previous values.
    pub previous: Vec<(usize, Option<u64>)>,
}

/// The plan: the undo (with the values read now) and the values to write.
#[derive(Debug, Clone)]
pub struct IoPlan {
    pub undo: IoUndo,
    pub values: Settings,
}

fn v1_file(key: usize) -> &'static str {
    [
        "blkio.throttle.read_bps_device",
        "blkio.throttle.write_bps_device",
        "blkio.throttle.read_iops_device",
        "blkio.throttle.write_iops_device",
    ][key]
}

fn failed(what: &str, p: &Path, e: impl std::fmt::Display) -> FaultError {
    FaultError::Failed(format!("cannot {what} {}: {e}", p.display()))
}

/// The `MAJ:MIN` blk-throttle applies to for device number `rdev`: the disk of a
/// partition, the device itself otherwise. `None` when it is no block device.
pub fn throttle_device(major: u64, minor: u64) -> Option<String> {
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    let dir = std::fs::canonicalize(&sys).ok()?;
    if dir.join("partition").exists() {
        let parent = dir.parent()?;
        return std::fs::read_to_string(parent.join("dev"))
            .ok()
            .map(|s| s.trim().to_string());
    }
    Some(format!("{major}:{minor}"))
}

/// The `MAJ:MIN` blk-throttle applies to for a device or path, and the disk's name;
/// errors name `field` (`spec.io_limit.device` when `None`).
pub(crate) fn resolve_device(
    d: &IoDevice,
    field: Option<&str>,
) -> Result<(String, String), FaultError> {
    let (field, p) = match d {
        IoDevice::Device(p) => (field.unwrap_or("spec.io_limit.device"), p),
        IoDevice::Path(p) => (field.unwrap_or("spec.io_limit.path"), p),
    };
    if !p.is_absolute() {
        return Err(FaultError::invalid(
            field,
            format!("{} is not an absolute path", p.display()),
        ));
    }
    let m = std::fs::metadata(p)
        .map_err(|e| FaultError::invalid(field, format!("{}: {e}", p.display())))?;
    let num = match d {
        IoDevice::Device(_) => {
            if !m.file_type().is_block_device() {
                return Err(FaultError::invalid(
                    field,
                    format!("{} is not a block device", p.display()),
                ));
            }
            m.rdev()
        }
        IoDevice::Path(_) => m.dev(),
    };
    let (major, minor) = (nix::sys::stat::major(num), nix::sys::stat::minor(num));
    let dev = throttle_device(major, minor).ok_or_else(|| {
        FaultError::invalid(
            field,
            format!(
                "{} is on device {major}:{minor}, which is no block device (a tmpfs, overlay or network filesystem cannot be throttled)",
                p.display()
            ),
        )
    })?;
    let name = std::fs::canonicalize(format!("/sys/dev/block/{dev}"))
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dev.clone());
    Ok((dev, name))
}

/// The values `dev` has in `dir` now.
pub fn read(dir: &Path, v2: bool, dev: &str) -> Result<Settings, FaultError> {
    let mut out = [None; 4];
    if v2 {
        let f = dir.join("io.max");
        let text = std::fs::read_to_string(&f).map_err(|e| failed("read", &f, e))?;
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            if parts.next() != Some(dev) {
                continue;
            }
            for kv in parts {
                if let Some((k, v)) = kv.split_once('=')
                    && let Some(i) = KEYS.iter().position(|x| *x == k)
                {
                    out[i] = v.parse().ok();
                }
            }
        }
    } else {
        for (i, o) in out.iter_mut().enumerate() {
            let f = dir.join(v1_file(i));
            let text = std::fs::read_to_string(&f).map_err(|e| failed("read", &f, e))?;
            *o = text
                .lines()
                .filter_map(|l| l.split_once(' '))
                .find(|(d, _)| *d == dev)
                .and_then(|(_, v)| v.trim().parse().ok())
                .filter(|v| *v != 0);
        }
    }
    Ok(out)
}

/// Writes `values` (the given keys only) for `dev` in `dir`.
fn write(
    dir: &Path,
    v2: bool,
    dev: &str,
    values: &[(usize, Option<u64>)],
) -> Result<(), FaultError> {
    if v2 {
        let mut line = dev.to_string();
        for (i, v) in values {
            line.push_str(&format!(
                " {}={}",
                KEYS[*i],
                v.map_or("max".to_string(), |n| n.to_string())
            ));
        }
        let f = dir.join("io.max");
        return std::fs::write(&f, line).map_err(|e| failed("write", &f, e));
    }
    for (i, v) in values {
        let f = dir.join(v1_file(*i));
        std::fs::write(&f, format!("{dev} {}", v.unwrap_or(0)))
            .map_err(|e| failed("write", &f, e))?;
    }
    Ok(())
}

/// Resolves the target group and the device, checks the limits and reads the values in
/// force; changes nothing.
pub fn plan(s: &IoLimitSpec, host: &Host) -> Result<(Plan, IoPlan), FaultError> {
    let l = &host.limits.io;
    for (i, v) in s.values.iter().enumerate() {
        let Some(v) = v else { continue };
        let (name, min, field) = if i < 2 {
            ("io.min_bps", l.min_bps, ["read_bps", "write_bps"][i])
        } else {
            (
                "io.min_iops",
                l.min_iops,
                ["read_iops", "write_iops"][i - 2],
            )
        };
        if *v == 0 {
            return Err(FaultError::invalid(
                format!("spec.io_limit.{field}"),
                "0 would stop all I/O: give a rate of at least 1",
            ));
        }
        if *v < min {
            return Err(crate::policy::limit(
                &host.limits,
                name,
                if i < 2 {
                    format!("{}/s", format_size(min))
                } else {
                    min.to_string()
                },
                if i < 2 {
                    format!("{field} {}/s", format_size(*v))
                } else {
                    format!("{field} {v}")
                },
            ));
        }
    }
    if s.values.iter().all(Option::is_none) {
        return Err(FaultError::invalid(
            "spec.io_limit",
            "give at least one of read_bps, write_bps, read_iops, write_iops",
        ));
    }
    let (dev, devname) = resolve_device(&s.device, None)?;
    let c = host.cgroups()?;
    let nf = |e: crate::sys::cgroup::CgroupError| FaultError::NotFound(e.to_string());
    let (h, v2) = match c.v1_root("blkio") {
        Some(_) => (Hierarchy::V1("blkio".into()), false),
        None if c.v2_root().is_some() => (Hierarchy::V2, true),
        None => {
            return Err(FaultError::Precondition(
                "no blkio (v1) or cgroup2 hierarchy is mounted: I/O cannot be limited".into(),
            ));
        }
    };
    let group = match &s.target {
        Placement::Own => {
            return Err(FaultError::invalid(
                "spec.io_limit.target",
                "give the cgroup to throttle: cgroup, unit, pid or container",
            ));
        }
        Placement::Pid(pid) => c.pid_group(*pid, &h).map_err(nf)?,
        other => {
            let (path, _) = super::stress::target_path(c, other, "spec.io_limit")?;
            c.group(&h, path.as_deref().unwrap_or("/")).map_err(nf)?
        }
    };
    if group.path == "/" {
        return Err(FaultError::invalid(
            "spec.io_limit.target",
            "the root cgroup cannot be throttled: name a service's or container's group",
        ));
    }
    if v2 && !group.dir.join("io.max").exists() {
        let parent = group.dir.parent().unwrap_or(&group.dir);
        return Err(FaultError::Precondition(format!(
            "the io controller is not enabled for {} (it has no io.max): enable it in its parent first, e.g. echo +io > {}/cgroup.subtree_control (or IOAccounting=yes on its systemd unit); faultline does not change the hierarchy, which would change every sibling's accounting",
            group.dir.display(),
            parent.display()
        )));
    }
    let now = read(&group.dir, v2, &dev)?;
    let set: Vec<usize> = (0..4).filter(|i| s.values[*i].is_some()).collect();
    let undo = IoUndo {
        dir: group.dir.clone(),
        v2,
        dev: dev.clone(),
        previous: set.iter().map(|i| (*i, now[*i])).collect(),
    };
    let shown = |i: usize, v: Option<u64>| match v {
        None => format!("{}=max", KEYS[i]),
        Some(n) if i < 2 => format!("{}={}/s", KEYS[i], format_size(n)),
        Some(n) => format!("{}={n}", KEYS[i]),
    };
    let description = format!(
        "limit I/O of cgroup {} on {devname} ({dev}) through {}: {} (was {})",
        group.path,
        if v2 { "io.max" } else { "blkio.throttle" },
        set.iter()
            .map(|i| shown(*i, s.values[*i]))
            .collect::<Vec<_>>()
            .join(" "),
        set.iter()
            .map(|i| shown(*i, now[*i]))
            .collect::<Vec<_>>()
            .join(" "),
    );
    let plan = Plan::described(
        description,
        Some(format!("io-limit:{}:{dev}", group.dir.display())),
    );
    Ok((
        plan,
        IoPlan {
            undo,
            values: s.values,
        },
    ))
}

/// Reads the values in force again (the undo keeps them) and writes the new ones.
pub fn apply(p: &IoPlan, description: String) -> Result<Applied, FaultError> {
    let u = &p.undo;
    let now = read(&u.dir, u.v2, &u.dev)?;
    let undo = IoUndo {
        previous: u.previous.iter().map(|(i, _)| (*i, now[*i])).collect(),
        ..u.clone()
    };
    let new: Vec<(usize, Option<u64>)> = undo
        .previous
        .iter()
        .map(|(i, _)| (*i, p.values[*i]))
        .collect();
    if let Err(e) = write(&u.dir, u.v2, &u.dev, &new) {
        let _ = revert(&undo);
        return Err(e);
    }
    Ok(Applied {
        undo: Undo::IoLimit(undo),
        description,
        targets: Vec::new(),
    })
}

/// Writes the previous values back. A group that is gone counts as reverted.
pub fn revert(u: &IoUndo) -> Result<(), FaultError> {
    if !u.dir.exists() {
        return Ok(());
    }
    write(&u.dir, u.v2, &u.dev, &u.previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_values_are_read_written_and_restored_exactly() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("io.max"),
            "8:0 rbps=max wbps=1048576 riops=max wiops=100\n254:0 rbps=7 wbps=max riops=max wiops=max\n",
        )
        .unwrap();
        assert_eq!(
            read(d.path(), true, "8:0").unwrap(),
            [None, Some(1 << 20), None, Some(100)]
        );
        assert_eq!(read(d.path(), true, "9:0").unwrap(), [None; 4]);
        write(d.path(), true, "8:0", &[(1, Some(4 << 20)), (3, None)]).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("io.max")).unwrap(),
            "8:0 wbps=4194304 wiops=max"
        );
    }

    #[test]
    fn v1_values_are_read_from_each_file() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..4 {
            std::fs::write(d.path().join(v1_file(i)), "").unwrap();
        }
        std::fs::write(d.path().join(v1_file(1)), "254:0 4194304\n8:0 5\n").unwrap();
        assert_eq!(
            read(d.path(), false, "254:0").unwrap(),
            [None, Some(4 << 20), None, None]
        );
        write(d.path(), false, "254:0", &[(0, None)]).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join(v1_file(0))).unwrap(),
            "254:0 0"
        );
    }
}
