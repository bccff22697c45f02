//! I/O faults: throttle a cgroup's I/O on one block device.

use faultline_proto::v1::{self, fault_spec};
use serde::Deserialize;

use super::error::at_most_one;
use super::value::opt;
use super::{Kind, Placement, RequestError, Size, Text};

/// An io limit as a document or the command line gives it (`io_limit:`; the flags of
/// `faultctl inject io-limit`). Rates are sizes per second (`4MiB`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoLimitInput {
    pub cgroup: Option<String>,
    pub unit: Option<String>,
    pub pid: Option<i32>,
    pub container: Option<String>,
    pub device: Option<String>,
    pub path: Option<String>,
    pub read_bps: Option<Text>,
    pub write_bps: Option<Text>,
    pub read_iops: Option<u64>,
    pub write_iops: Option<u64>,
}

/// Throttle the target's I/O on a device.
#[derive(Debug, Clone, PartialEq)]
pub struct IoLimit {
    pub target: Placement,
    /// A device node, or a path whose filesystem's device is meant.
    pub device: Option<String>,
    pub path: Option<String>,
    pub read_bps: Option<Size>,
    pub write_bps: Option<Size>,
    pub read_iops: Option<u64>,
    pub write_iops: Option<u64>,
}

impl Kind for IoLimit {
    type Input = IoLimitInput;

    fn new(i: &Self::Input) -> Result<Self, RequestError> {
        let target = Placement::new(&i.cgroup, &i.unit, i.pid, &i.container)?;
        if target == Placement::Agent {
            return Err(RequestError::Missing {
                any_of: &[&["cgroup"], &["unit"], &["pid"], &["container"]],
            });
        }
        at_most_one(&[("device", i.device.is_some()), ("path", i.path.is_some())])?;
        if i.device.is_none() && i.path.is_none() {
            return Err(RequestError::Missing {
                any_of: &[&["device"], &["path"]],
            });
        }
        for (field, p) in [("device", &i.device), ("path", &i.path)] {
            if let Some(p) = p
                && !p.starts_with('/')
            {
                return Err(RequestError::invalid(
                    field,
                    format!("{p:?} is not an absolute path"),
                ));
            }
        }
        for (field, n) in [("read_iops", i.read_iops), ("write_iops", i.write_iops)] {
            if n == Some(0) {
                return Err(RequestError::invalid(field, "0 would stop all I/O"));
            }
        }
        let l = IoLimit {
            target,
            device: i.device.clone(),
            path: i.path.clone(),
            read_bps: opt("read_bps", &i.read_bps, Size::parse)?,
            write_bps: opt("write_bps", &i.write_bps, Size::parse)?,
            read_iops: i.read_iops,
            write_iops: i.write_iops,
        };
        if l.read_bps.is_none()
            && l.write_bps.is_none()
            && l.read_iops.is_none()
            && l.write_iops.is_none()
        {
            return Err(RequestError::Missing {
                any_of: &[
                    &["read_bps"],
                    &["write_bps"],
                    &["read_iops"],
                    &["write_iops"],
                ],
            });
        }
        Ok(l)
    }

    fn to_proto(&self) -> fault_spec::Kind {
        fault_spec::Kind::IoLimit(v1::IoLimitSpec {
            target: Some(self.target.to_proto()),
            device: self.device.clone().unwrap_or_default(),
            path: self.path.clone().unwrap_or_default(),
            read_bps: self.read_bps.map_or(0, Size::bytes),
            write_bps: self.write_bps.map_or(0, Size::bytes),
            read_iops: self.read_iops.unwrap_or(0),
            write_iops: self.write_iops.unwrap_or(0),
        })
    }
}

/// An io stress as a document or the command line gives it (`io_stress:`; the flags of
/// `faultctl inject io-stress`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoStressInput {
    pub path: Option<String>,
    pub workers: Option<u32>,
    pub size: Option<Text>,
    pub mode: Option<String>,
    pub read_bps: Option<Text>,
    pub write_bps: Option<Text>,
}

/// Direct I/O load by worker processes on tagged files in a directory.
#[derive(Debug, Clone, PartialEq)]
pub struct IoStress {
    pub path: String,
    pub workers: Option<u32>,
    pub size: Option<Size>,
    /// `read`, `write` or `mixed`.
    pub mode: Option<String>,
    pub read_bps: Option<Size>,
    pub write_bps: Option<Size>,
}

impl Kind for IoStress {
    type Input = IoStressInput;

    fn new(i: &Self::Input) -> Result<Self, RequestError> {
        let Some(path) = &i.path else {
            return Err(RequestError::Missing {
                any_of: &[&["path"]],
            });
        };
        if !path.starts_with('/') {
            return Err(RequestError::invalid(
                "path",
                format!("{path:?} is not an absolute path"),
            ));
        }
        if i.workers == Some(0) {
            return Err(RequestError::invalid("workers", "give at least 1 worker"));
        }
        if let Some(m) = &i.mode
            && !["read", "write", "mixed"].contains(&m.as_str())
        {
            return Err(RequestError::invalid(
                "mode",
                format!("{m:?} is not read, write or mixed"),
            ));
        }
        let s = IoStress {
            path: path.clone(),
            workers: i.workers,
            size: opt("size", &i.size, Size::parse)?,
            mode: i.mode.clone(),
            read_bps: opt("read_bps", &i.read_bps, Size::parse)?,
            write_bps: opt("write_bps", &i.write_bps, Size::parse)?,
        };
        if let Some(sz) = s.size
            && !sz.bytes().is_multiple_of(4096)
        {
            return Err(RequestError::invalid(
                "size",
                "give a positive multiple of 4KiB (O_DIRECT needs aligned sizes)",
            ));
        }
        // A rate of 0 is refused by Size::parse (it would stop all I/O).
        Ok(s)
    }

    fn to_proto(&self) -> fault_spec::Kind {
        fault_spec::Kind::IoStress(v1::IoStressSpec {
            path: self.path.clone(),
            workers: self.workers.unwrap_or(0),
            size_bytes: self.size.map_or(0, Size::bytes),
            mode: self.mode.clone().unwrap_or_default(),
            write_bps: self.write_bps.map_or(0, Size::bytes),
            read_bps: self.read_bps.map_or(0, Size::bytes),
        })
    }
}
