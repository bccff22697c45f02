//! Stress faults: CPU and memory in a capped cgroup, optionally inside a target's cgroup.

use faultline_proto::v1::{self, fault_spec};
use serde::Deserialize;

use super::error::at_most_one;
use super::value::{opt, opt_span};
use super::{Kind, RequestError, Size, Span, Text};

/// Where stress runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// In faultd's own cgroup subtree.
    Agent,
    Cgroup(String),
    Unit(String),
    /// In this process's cgroup.
    Pid(i32),
    /// In this container's cgroup (an id or a prefix the agent resolves).
    Container(String),
}

impl Placement {
    pub(super) fn new(
        cgroup: &Option<String>,
        unit: &Option<String>,
        pid: Option<i32>,
        container: &Option<String>,
    ) -> Result<Placement, RequestError> {
        at_most_one(&[
            ("cgroup", cgroup.is_some()),
            ("unit", unit.is_some()),
            ("pid", pid.is_some()),
            ("container", container.is_some()),
        ])?;
        Ok(match (cgroup, unit, pid, container) {
            (Some(c), ..) => Placement::Cgroup(c.clone()),
            (None, Some(u), ..) => Placement::Unit(u.clone()),
            (None, None, Some(p), _) => Placement::Pid(p),
            (None, None, None, Some(c)) => Placement::Container(c.clone()),
            (None, None, None, None) => Placement::Agent,
        })
    }

    pub(super) fn to_proto(&self) -> v1::StressPlacement {
        let mut p = v1::StressPlacement::default();
        match self {
            Placement::Agent => {}
            Placement::Cgroup(c) => p.cgroup = c.clone(),
            Placement::Unit(u) => p.unit = u.clone(),
            Placement::Pid(pid) => p.pid = *pid,
            Placement::Container(c) => p.container = c.clone(),
        }
        p
    }
}

/// A CPU stress fault as a document or the command line gives it (`cpu:`; the flags of
/// `faultctl inject cpu`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuInput {
    pub percent: Option<f64>,
    pub cores: Option<u32>,
    pub load: Option<f64>,
    pub cgroup: Option<String>,
    pub unit: Option<String>,
    pub pid: Option<i32>,
    pub container: Option<String>,
}

/// How much CPU (the agent checks the numbers against the host and its limits).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CpuAmount {
    /// Percent of the node's capacity (or of the target cgroup's CPU limit).
    Share(f64),
    /// N workers, each at a duty cycle in percent.
    Workers { cores: u32, load: f64 },
}

/// Burn CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct Cpu {
    pub amount: CpuAmount,
    pub placement: Placement,
}

impl Kind for Cpu {
    type Input = CpuInput;

    fn new(i: &Self::Input) -> Result<Self, RequestError> {
        let amount = match (i.percent, i.cores, i.load) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(RequestError::Exclusive {
                    fields: vec!["percent", "cores"],
                });
            }
            (Some(p), None, None) => CpuAmount::Share(p),
            (None, Some(cores), Some(load)) => CpuAmount::Workers { cores, load },
            _ => {
                return Err(RequestError::Missing {
                    any_of: &[&["percent"], &["cores", "load"]],
                });
            }
        };
        Ok(Cpu {
            amount,
            placement: Placement::new(&i.cgroup, &i.unit, i.pid, &i.container)?,
        })
    }

    fn to_proto(&self) -> fault_spec::Kind {
        let (percent, cores, load) = match self.amount {
            CpuAmount::Share(p) => (p, 0, 0.0),
            CpuAmount::Workers { cores, load } => (0.0, cores, load),
        };
        fault_spec::Kind::Cpu(v1::CpuSpec {
            percent,
            cores,
            load,
            placement: Some(self.placement.to_proto()),
        })
    }
}

/// A memory stress fault as a document or the command line gives it (`memory:`; the
/// flags of `faultctl inject mem`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryInput {
    pub size: Option<Text>,
    pub percent: Option<f64>,
    pub ramp: Option<Text>,
    pub cgroup: Option<String>,
    pub unit: Option<String>,
    pub pid: Option<i32>,
    pub container: Option<String>,
}

/// How much memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemoryAmount {
    Size(Size),
    /// Percent of MemTotal (or of the target cgroup's memory limit).
    Percent(f64),
}

/// Hold memory resident.
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    pub amount: MemoryAmount,
    /// Grow linearly over this long.
    pub ramp: Option<Span>,
    pub placement: Placement,
}

impl Kind for Memory {
    type Input = MemoryInput;

    fn new(i: &Self::Input) -> Result<Self, RequestError> {
        at_most_one(&[("size", i.size.is_some()), ("percent", i.percent.is_some())])?;
        let amount = match (opt("size", &i.size, Size::parse)?, i.percent) {
            (Some(s), _) => MemoryAmount::Size(s),
            (None, Some(p)) => MemoryAmount::Percent(p),
            (None, None) => {
                return Err(RequestError::Missing {
                    any_of: &[&["size"], &["percent"]],
                });
            }
        };
        Ok(Memory {
            amount,
            ramp: opt_span("ramp", &i.ramp)?,
            placement: Placement::new(&i.cgroup, &i.unit, i.pid, &i.container)?,
        })
    }

    fn to_proto(&self) -> fault_spec::Kind {
        let (size_bytes, percent) = match self.amount {
            MemoryAmount::Size(s) => (s.bytes(), 0.0),
            MemoryAmount::Percent(p) => (0, p),
        };
        fault_spec::Kind::Memory(v1::MemorySpec {
            size_bytes,
            percent,
            ramp_ms: self.ramp.map_or(0, Span::as_millis),
            placement: Some(self.placement.to_proto()),
        })
    }
}
