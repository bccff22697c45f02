//! Process faults: `kill` and `pause`. Which processes ([`Selector`], passed to the agent
//! as given: it decides on regexes, users and protection) and how many of them ([`Pick`]).

use faultline_proto::v1::{self, fault_spec};
use serde::Deserialize;

use super::error::at_most_one;
use super::{Kind, Period, RequestError, Text};

/// A process fault as a document or the command line gives it (`kill:`/`pause:`; the
/// flags of `faultctl inject kill|pause`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessInput {
    pub pid: Option<i32>,
    pub name: Option<String>,
    pub cmdline: Option<String>,
    pub cgroup: Option<String>,
    pub unit: Option<String>,
    pub user: Option<String>,
    /// A container id or a prefix of at least 12 hex digits (the agent resolves it).
    pub container: Option<String>,
    #[serde(default)]
    pub all: bool,
    pub count: Option<u32>,
    pub percent: Option<f64>,
    /// kill only.
    pub signal: Option<String>,
    /// kill only.
    pub every: Option<Text>,
}

/// Which processes: every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    pub pid: Option<i32>,
    pub name: Option<String>,
    pub cmdline: Option<String>,
    pub cgroup: Option<String>,
    pub unit: Option<String>,
    pub user: Option<String>,
    pub container: Option<String>,
}

/// How many of the matches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pick {
    All,
    Count(u32),
    /// Percent of the matches; its range is the agent's to check.
    Percent(f64),
}

/// The processes a fault targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    pub selector: Selector,
    pub pick: Pick,
}

impl Targets {
    fn new(i: &ProcessInput) -> Result<Targets, RequestError> {
        at_most_one(&[
            ("all", i.all),
            ("count", i.count.is_some()),
            ("percent", i.percent.is_some()),
        ])?;
        let pick = match (i.count, i.percent) {
            (Some(n), _) => Pick::Count(n),
            (None, Some(p)) => Pick::Percent(p),
            (None, None) => Pick::All,
        };
        Ok(Targets {
            selector: Selector {
                pid: i.pid,
                name: i.name.clone(),
                cmdline: i.cmdline.clone(),
                cgroup: i.cgroup.clone(),
                unit: i.unit.clone(),
                user: i.user.clone(),
                container: i.container.clone(),
            },
            pick,
        })
    }

    fn selector_proto(&self) -> v1::ProcessSelector {
        let s = &self.selector;
        v1::ProcessSelector {
            pid: s.pid,
            name: s.name.clone(),
            cmdline: s.cmdline.clone(),
            cgroup: s.cgroup.clone(),
            unit: s.unit.clone(),
            user: s.user.clone(),
            container: s.container.clone(),
        }
    }

    fn pick_proto(&self) -> v1::Pick {
        let mode = match self.pick {
            Pick::All => v1::pick::Mode::All(true),
            Pick::Count(n) => v1::pick::Mode::Count(n),
            Pick::Percent(p) => v1::pick::Mode::Percent(p),
        };
        v1::Pick { mode: Some(mode) }
    }
}

/// Send a signal, once or every `every` for the fault's duration.
#[derive(Debug, Clone, PartialEq)]
pub struct Kill {
    pub targets: Targets,
    /// By name or number; the agent knows the signals.
    pub signal: String,
    pub every: Option<Period>,
}

impl Kill {
    /// The default signal.
    pub const SIGNAL: &'static str = "KILL";
}

impl Kind for Kill {
    type Input = ProcessInput;

    fn new(i: &Self::Input) -> Result<Self, RequestError> {
        Ok(Kill {
            targets: Targets::new(i)?,
            signal: i.signal.clone().unwrap_or_else(|| Kill::SIGNAL.into()),
            every: i
                .every
                .as_ref()
                .map(|t| Period::field("every", &t.0))
                .transpose()?,
        })
    }

    fn to_proto(&self) -> fault_spec::Kind {
        fault_spec::Kind::Kill(v1::KillSpec {
            selector: Some(self.targets.selector_proto()),
            pick: Some(self.targets.pick_proto()),
            signal: self.signal.clone(),
            every_ms: self.every.map_or(0, Period::as_millis),
        })
    }
}

/// Stop the processes (SIGSTOP, or freeze their cgroup) for the fault's duration.
#[derive(Debug, Clone, PartialEq)]
pub struct Pause {
    pub targets: Targets,
}

impl Kind for Pause {
    type Input = ProcessInput;

    fn new(i: &Self::Input) -> Result<Self, RequestError> {
        let extra: Vec<&'static str> =
            [("signal", i.signal.is_some()), ("every", i.every.is_some())]
                .into_iter()
                .filter(|(_, given)| *given)
                .map(|(f, _)| f)
                .collect();
        if !extra.is_empty() {
            return Err(RequestError::NotTaken {
                kind: "pause",
                fields: extra,
            });
        }
        Ok(Pause {
            targets: Targets::new(i)?,
        })
    }

    fn to_proto(&self) -> fault_spec::Kind {
        fault_spec::Kind::Pause(v1::PauseSpec {
            selector: Some(self.targets.selector_proto()),
            pick: Some(self.targets.pick_proto()),
        })
    }
}
