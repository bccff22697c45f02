//! The scenario document (`faultctl run FILE.yaml`): its format, defaults and checks.
//! A step's fault is the domain request's input form ([`FaultInput`]), built by the same
//! constructors as `faultctl inject`; errors name the document's keys.
//!
//! The format is documented in docs/faultctl.md ("Scenarios").

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::ScenarioError;
use crate::inventory::{self, BlastRadius, Inventory, Selector};
use crate::probe::Probe;
use crate::request::{FaultInput, Inject, Labels, Period, RequestError, Span, Text};

/// A scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The inventory (relative to the scenario file); `--inventory` overrides it.
    pub inventory: Option<PathBuf>,
    /// The whole run may take at most this long; then it aborts.
    pub max_duration: Span,
    /// TTL of the leases faultctl holds on each agent (default 10s).
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: Span,
    /// Seed for every random node pick (`--seed` overrides it).
    pub seed: Option<u64>,
    /// How long the probes run before the first step (default 3s).
    #[serde(default = "default_baseline")]
    pub baseline: Span,
    /// Checked as they are read (see [`Probe`]).
    #[serde(default)]
    pub probes: Vec<Probe>,
    #[serde(default)]
    pub abort: AbortSpec,
    #[serde(default)]
    pub recovery: RecoverySpec,
    pub steps: Vec<Step>,
}

fn default_lease_ttl() -> Span {
    Span(Duration::from_secs(10))
}
fn default_baseline() -> Span {
    Span(Duration::from_secs(3))
}

/// `abort:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortSpec {
    /// A probe failing this many times in a row aborts the run (default 3; 0: never).
    #[serde(default = "default_failures")]
    pub probe_failures: u32,
    /// Only these probes can abort by `probe_failures` (default: all). A probe's own
    /// SLO conditions (its `abort:`) always apply.
    #[serde(default)]
    pub probes: Vec<String>,
    /// Also call RevertAll (every fault, not only this run's) on every touched node.
    #[serde(default)]
    pub revert_all: bool,
}

fn default_failures() -> u32 {
    3
}

impl Default for AbortSpec {
    fn default() -> Self {
        AbortSpec {
            probe_failures: default_failures(),
            probes: Vec::new(),
            revert_all: false,
        }
    }
}

/// `recovery:` how recovery after a revert is measured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySpec {
    /// Recovered = every probe has this many ok samples in a row (default 2).
    #[serde(default = "default_ok")]
    pub consecutive_ok: usize,
    /// Give up waiting after this long (default 60s); the step records "not recovered".
    #[serde(default = "default_recovery_timeout")]
    pub timeout: Span,
}

fn default_ok() -> usize {
    2
}
fn default_recovery_timeout() -> Span {
    Span(Duration::from_secs(60))
}

impl Default for RecoverySpec {
    fn default() -> Self {
        RecoverySpec {
            consecutive_ok: default_ok(),
            timeout: default_recovery_timeout(),
        }
    }
}

/// One step: a fault step (`inject`), a `wait`, or a `parallel` group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: Option<String>,
    /// Label selector over the inventory (default: every agent).
    pub select: Option<String>,
    pub max_nodes: Option<usize>,
    pub max_percent: Option<f64>,
    pub inject: Option<FaultInput>,
    /// The fault's own duration (the agent ends it then, whatever happens).
    pub duration: Option<Text>,
    /// How long to hold the fault before faultctl reverts it (default: its duration).
    pub hold: Option<Span>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub wait: Option<Span>,
    pub parallel: Option<Vec<Step>>,
}

impl Step {
    /// The step's display name.
    pub fn title(&self, index: &str) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        if let Some(w) = self.wait {
            return format!("wait {w}");
        }
        if self.parallel.is_some() {
            return format!("parallel group {index}");
        }
        match &self.inject {
            Some(i) => format!(
                "{} on {}",
                i.kinds().first().copied().unwrap_or("nothing"),
                self.select.as_deref().unwrap_or("every node")
            ),
            None => format!("step {index}"),
        }
    }

    /// The step's inject (fault, duration, labels); an error in the document's words.
    pub fn inject(&self) -> Result<Inject, String> {
        let input = self.inject.as_ref().ok_or("not a fault step")?;
        let fault = input.build().map_err(|e| match e {
            RequestError::Kinds { .. } => format!("inject: {e}"),
            e => format!(
                "{}: {e}",
                input.kinds().first().copied().unwrap_or("inject")
            ),
        })?;
        let mut inject = Inject::new(fault);
        inject.duration = self
            .duration
            .as_ref()
            .map(|d| Period::field("duration", &d.0))
            .transpose()
            .map_err(|e| e.to_string())?;
        inject.labels = Labels::from_map("labels", &self.labels).map_err(|e| e.to_string())?;
        Ok(inject)
    }

    /// The step's inject as a run sends it: labelled with the scenario, the run and the
    /// step (over the step's own labels of those names).
    pub fn inject_for(&self, scenario: &str, run_id: &str, title: &str) -> Result<Inject, String> {
        let mut inject = self.inject()?;
        inject.labels.set("scenario", scenario);
        inject.labels.set("run", run_id);
        inject.labels.set("step", title);
        Ok(inject)
    }

    /// The nodes of `inv` this step picks (`select`, `max_nodes`/`max_percent`, `seed`).
    pub fn pick(&self, inv: &Inventory, seed: u64) -> Result<inventory::Pick, String> {
        let sel =
            Selector::parse(self.select.as_deref().unwrap_or("")).map_err(|e| e.to_string())?;
        let nodes = inv.select(&sel).map_err(|e| e.to_string())?;
        let radius =
            BlastRadius::from_flags(self.max_nodes, self.max_percent).map_err(|e| e.to_string())?;
        Ok(inventory::pick(nodes, radius, Some(seed)))
    }

    fn validate(&self, at: &str) -> Result<(), String> {
        let kinds = [
            self.inject.is_some(),
            self.wait.is_some(),
            self.parallel.is_some(),
        ];
        if kinds.iter().filter(|b| **b).count() != 1 {
            return Err(format!(
                "step {at}: give exactly one of inject, wait, parallel"
            ));
        }
        if let Some(p) = &self.parallel {
            for (i, s) in p.iter().enumerate() {
                if s.parallel.is_some() {
                    return Err(format!("step {at}.{}: parallel groups do not nest", i + 1));
                }
                s.validate(&format!("{at}.{}", i + 1))?;
            }
        }
        if let Some(sel) = &self.select {
            Selector::parse(sel).map_err(|e| format!("step {at}: {e}"))?;
        }
        BlastRadius::from_flags(self.max_nodes, self.max_percent)
            .map_err(|e| format!("step {at}: {e}"))?;
        if self.inject.is_some() {
            self.inject()
                .map_err(|e| format!("step {at} ({}): {e}", self.title(at)))?;
        }
        Ok(())
    }

    /// The fault steps of this step: itself, or the members of its parallel group.
    pub fn fault_steps(&self) -> Vec<&Step> {
        match &self.parallel {
            Some(p) => p.iter().filter(|s| s.inject.is_some()).collect(),
            None if self.inject.is_some() => vec![self],
            None => vec![],
        }
    }
}

impl Scenario {
    /// Parses and validates scenario text.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let sc: Scenario = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        if sc.name.trim().is_empty() {
            return Err("name is empty".into());
        }
        if sc.steps.is_empty() {
            return Err("it has no steps".into());
        }
        if sc.lease_ttl.0 < Duration::from_secs(1) {
            return Err("lease_ttl must be at least 1s".into());
        }
        let mut names = HashSet::new();
        for p in &sc.probes {
            if !names.insert(p.name.clone()) {
                return Err(format!("probe name {:?} is given twice", p.name));
            }
        }
        for n in &sc.abort.probes {
            if !names.contains(n) {
                return Err(format!("abort.probes names an unknown probe {n:?}"));
            }
        }
        for (i, s) in sc.steps.iter().enumerate() {
            s.validate(&(i + 1).to_string())?;
        }
        Ok(sc)
    }

    /// Reads a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Scenario::parse(&text).map_err(|reason| ScenarioError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SC: &str = r#"
name: kill-worker
inventory: fleet.toml
max_duration: 2m
probes:
  - name: api
    http: {url: "http://127.0.0.1:8080/health", max_latency: 200ms}
    interval: 200ms
steps:
  - name: kill one
    select: role=app
    max_nodes: 1
    inject:
      kill: {name: worker, count: 1}
  - wait: 1s
  - parallel:
      - inject: {pause: {name: worker}}
        duration: 5s
      - inject: {cpu: {percent: 40}}
"#;

    #[test]
    fn parses_every_kind_including_stress() {
        let sc = Scenario::parse(SC).unwrap();
        assert_eq!(sc.steps.len(), 3);
        assert_eq!(sc.abort.probe_failures, 3);
        assert_eq!(sc.lease_ttl.0, Duration::from_secs(10));
        let e = Scenario::parse(&SC.replace(
            "{cpu: {percent: 40}}",
            "{cpu: {percent: 40}, memory: {size: 64MiB}}",
        ))
        .unwrap_err();
        assert!(e.contains("give exactly one fault kind"), "{e}");
        let e =
            Scenario::parse(&SC.replace("max_nodes: 1", "max_nodes: 1\n    wait: 2s")).unwrap_err();
        assert_eq!(e, "step 1: give exactly one of inject, wait, parallel");
        let e = Scenario::parse(&SC.replace("count: 1", "count: 1, all: true")).unwrap_err();
        assert!(e.contains("give one of all, count, percent"), "{e}");
        let e = Scenario::parse(&SC.replace("max_duration", "max_durration")).unwrap_err();
        assert!(e.contains("max_durration"), "{e}");
        let e = Scenario::parse(&SC.replace("duration: 5s", "duration: 0s")).unwrap_err();
        assert_eq!(
            e,
            "step 3.1 (pause on every node): invalid duration: \"0s\" is zero: a duration must be at least 1ms"
        );
    }

    #[test]
    fn examples_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        Inventory::load(&dir.join("inventory.toml")).unwrap();
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().and_then(|x| x.to_str()) != Some("yaml") {
                continue;
            }
            n += 1;
            let sc = Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
            assert!(!sc.steps.is_empty());
        }
        assert!(n >= 4, "examples/ has {n} scenarios");
    }

    #[test]
    fn network_steps_use_the_inject_net_builder() {
        let step = |inject: &str| -> Step {
            serde_saphyr::from_str(&format!("inject: {inject}\nduration: 1m\n")).unwrap()
        };
        let s = step(
            "{network: {iface: eth0, delay: 100ms, jitter: 10ms, loss: 2, dport: 5432, protocol: tcp, dst: [10.0.0.0/8]}}",
        );
        let r = s.inject().unwrap().to_proto();
        let Some(faultline_proto::v1::fault_spec::Kind::Network(n)) = r.spec.unwrap().kind else {
            panic!("not a network spec")
        };
        assert_eq!(n.iface, "eth0");
        assert_eq!(n.direction, "egress");
        let netem = n.netem.unwrap();
        assert_eq!((netem.delay_us, netem.jitter_us), (100_000, 10_000));
        assert_eq!(netem.loss_percent, 2.0);
        let sel = n.selection.unwrap();
        assert_eq!(sel.dport, "5432");
        assert_eq!(sel.protocol, "tcp");
        assert_eq!(sel.dst, vec!["10.0.0.0/8".to_string()]);
        assert_eq!(r.duration_ms, 60_000);
        let e = step("{network: {iface: eth1, loss: 200%}}")
            .inject()
            .unwrap_err();
        assert!(e.starts_with("network: invalid loss: \"200%\""), "{e}");
        assert!(
            serde_saphyr::from_str::<Step>("inject: {network: {iface: eth1, los: 2%}}\n").is_err()
        );
    }
}
