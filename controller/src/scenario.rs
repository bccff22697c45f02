//! Game-day scenarios: `faultctl run FILE.yaml`.
//!
//! A scenario names steady-state probes, a list of steps (inject a fault spec on a
//! selection of the inventory, hold, revert, wait for recovery; `parallel:` groups;
//! `wait:` pauses), abort conditions and a maximum total duration. The runner holds a
//! lease on every agent it touches (renewed every third of its TTL; every inject is
//! bound to it), so if faultctl dies the agents revert on their own. On an abort (a probe
//! failing N times in a row, Ctrl-C, the maximum duration, a lost lease) it closes every
//! lease with `revert_faults` (and with `abort.revert_all`, calls RevertAll) on every
//! node it touched, then still writes the report ([`crate::report`]).
//!
//! The format is documented in docs/faultctl.md ("Scenarios").

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_proto::v1::agent_client::AgentClient;
use faultline_proto::v1::{
    CloseLeaseRequest, FaultSpec, FaultState, GetLimitsRequest, InjectRequest, KillSpec,
    ListRequest, OpenLeaseRequest, PauseSpec, Pick, RenewLeaseRequest, RevertAllRequest,
    RevertRequest, fault_spec,
};
use serde::Deserialize;
use tonic::transport::Channel;

use crate::cli::{Cli, Output, RunArgs};
use crate::error::ExitCode;
use crate::inventory::{self, BlastRadius, Inventory, Node, Selector};
use crate::probe::{self, ProbeSpec, Shared};
use crate::render::now_ms;
use crate::report::{NodeCleanup, NodeStep, Report, StepReport, TimelineEntry};

/// Why a scenario could not run, failed, or was aborted.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid scenario {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("scenario {name:?} was aborted: {reason} (report: {report})")]
    Aborted {
        name: String,
        reason: String,
        report: String,
    },
    #[error("scenario {name:?}: {failed} step(s) failed on some node (report: {report})")]
    StepsFailed {
        name: String,
        failed: usize,
        report: String,
    },
    #[error("dry run of {name:?}: {failed} check(s) failed; see the table above")]
    DryRunFailed { name: String, failed: usize },
    #[error("cannot write report {path}: {source}")]
    WriteReport {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ScenarioError {
    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ScenarioError::Invalid { .. } => ExitCode::BadInput,
            ScenarioError::DryRunFailed { .. } => ExitCode::Refused,
            _ => ExitCode::Other,
        }
    }
}

/// A duration written as text (`500ms`, `30s`, `5m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        faultline_proto::units::parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

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
    pub max_duration: Dur,
    /// TTL of the leases faultctl holds on each agent (default 10s).
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: Dur,
    /// Seed for every random node pick (`--seed` overrides it).
    pub seed: Option<u64>,
    /// How long the probes run before the first step (default 3s).
    #[serde(default = "default_baseline")]
    pub baseline: Dur,
    #[serde(default)]
    pub probes: Vec<ProbeSpec>,
    #[serde(default)]
    pub abort: AbortSpec,
    #[serde(default)]
    pub recovery: RecoverySpec,
    pub steps: Vec<Step>,
}

fn default_lease_ttl() -> Dur {
    Dur(Duration::from_secs(10))
}
fn default_baseline() -> Dur {
    Dur(Duration::from_secs(3))
}

/// `abort:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortSpec {
    /// A probe failing this many times in a row aborts the run (default 3; 0: never).
    #[serde(default = "default_failures")]
    pub probe_failures: u32,
    /// Only these probes can abort (default: all).
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
    pub timeout: Dur,
}

fn default_ok() -> usize {
    2
}
fn default_recovery_timeout() -> Dur {
    Dur(Duration::from_secs(60))
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
    pub inject: Option<InjectDoc>,
    /// The fault's own duration (the agent ends it then, whatever happens).
    pub duration: Option<Dur>,
    /// How long to hold the fault before faultctl reverts it (default: its duration).
    pub hold: Option<Dur>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub wait: Option<Dur>,
    pub parallel: Option<Vec<Step>>,
}

/// A fault spec: exactly one kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectDoc {
    pub kill: Option<ProcDoc>,
    pub pause: Option<ProcDoc>,
    /// netem on an interface (as `faultctl inject net`).
    pub network: Option<NetDoc>,
    /// CPU stress (as `faultctl inject cpu`).
    pub cpu: Option<CpuDoc>,
    /// Memory stress (as `faultctl inject mem`).
    pub memory: Option<MemDoc>,
}

/// A CPU stress fault (`cpu:`): `percent`, or `cores` with `load`; optional placement.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuDoc {
    pub percent: Option<f64>,
    pub cores: Option<u32>,
    pub load: Option<f64>,
    pub cgroup: Option<String>,
    pub unit: Option<String>,
    pub pid: Option<i32>,
}

/// A memory stress fault (`memory:`): `size` (512MiB) or `percent`; `ramp`; placement.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemDoc {
    pub size: Option<String>,
    pub percent: Option<f64>,
    pub ramp: Option<String>,
    pub cgroup: Option<String>,
    pub unit: Option<String>,
    pub pid: Option<i32>,
}

fn placement(
    cgroup: &Option<String>,
    unit: &Option<String>,
    pid: Option<i32>,
) -> crate::cli::PlacementArgs {
    crate::cli::PlacementArgs {
        cgroup: cgroup.clone(),
        unit: unit.clone(),
        pid,
    }
}

fn kind_of(req: faultline_proto::v1::InjectRequest) -> fault_spec::Kind {
    req.spec
        .and_then(|s| s.kind)
        .expect("request builders set the spec")
}

/// A scalar (string or number) taken as text: `loss: 2%`, `loss: 2`, `dport: 5432`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum S {
            Str(String),
            Int(i64),
            Float(f64),
        }
        Ok(Scalar(match S::deserialize(d)? {
            S::Str(s) => s,
            S::Int(i) => i.to_string(),
            S::Float(f) => f.to_string(),
        }))
    }
}

/// A network fault (`network:`): the fields of `faultctl inject net`, flags without
/// their dashes (`delay`, `jitter`, `loss`, `dport`...), converted by the same code.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetDoc {
    pub iface: String,
    pub netns: Option<String>,
    pub pid: Option<i32>,
    pub direction: Option<String>,
    pub delay: Option<Scalar>,
    pub jitter: Option<Scalar>,
    pub delay_correlation: Option<Scalar>,
    pub distribution: Option<String>,
    pub loss: Option<Scalar>,
    pub loss_correlation: Option<Scalar>,
    pub loss_gemodel: Option<Scalar>,
    pub duplicate: Option<Scalar>,
    pub duplicate_correlation: Option<Scalar>,
    pub corrupt: Option<Scalar>,
    pub corrupt_correlation: Option<Scalar>,
    pub reorder: Option<Scalar>,
    pub reorder_correlation: Option<Scalar>,
    pub gap: Option<u32>,
    pub rate: Option<Scalar>,
    pub limit: Option<u32>,
    #[serde(default)]
    pub dst: Vec<String>,
    #[serde(default)]
    pub src: Vec<String>,
    pub dport: Option<Scalar>,
    pub sport: Option<Scalar>,
    pub protocol: Option<String>,
}

impl NetDoc {
    fn spec(&self) -> Result<fault_spec::Kind, String> {
        let t = |v: &Option<Scalar>| v.as_ref().map(|s| s.0.clone());
        let args = crate::cli::NetArgs {
            iface: self.iface.clone(),
            netns: self.netns.clone(),
            pid: self.pid,
            direction: self.direction.clone().unwrap_or_else(|| "egress".into()),
            delay: t(&self.delay),
            jitter: t(&self.jitter),
            delay_correlation: t(&self.delay_correlation),
            distribution: self.distribution.clone(),
            loss: t(&self.loss),
            loss_correlation: t(&self.loss_correlation),
            loss_gemodel: t(&self.loss_gemodel),
            duplicate: t(&self.duplicate),
            duplicate_correlation: t(&self.duplicate_correlation),
            corrupt: t(&self.corrupt),
            corrupt_correlation: t(&self.corrupt_correlation),
            reorder: t(&self.reorder),
            reorder_correlation: t(&self.reorder_correlation),
            gap: self.gap,
            rate: t(&self.rate),
            limit: self.limit,
            dst: self.dst.clone(),
            src: self.src.clone(),
            dport: t(&self.dport),
            sport: t(&self.sport),
            protocol: self.protocol.clone(),
            // The step's `duration` is the fault's; this only satisfies the builder.
            for_: "1s".into(),
            common: Default::default(),
        };
        let req = crate::request::net_request(&args).map_err(|e| {
            format!(
                "network: {}",
                e.to_string().replace("invalid --", "invalid ")
            )
        })?;
        Ok(req
            .spec
            .and_then(|s| s.kind)
            .expect("net_request sets the spec"))
    }
}

/// A process fault (`kill:` or `pause:`): selector, pick, and for kill signal/every.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcDoc {
    pub pid: Option<i32>,
    pub name: Option<String>,
    pub cmdline: Option<String>,
    pub cgroup: Option<String>,
    pub unit: Option<String>,
    pub user: Option<String>,
    #[serde(default)]
    pub all: bool,
    pub count: Option<u32>,
    pub percent: Option<f64>,
    pub signal: Option<String>,
    pub every: Option<Dur>,
}

impl InjectDoc {
    /// The kind named (the first, if several are).
    pub fn kind_name(&self) -> &'static str {
        [
            ("kill", self.kill.is_some()),
            ("pause", self.pause.is_some()),
            ("network", self.network.is_some()),
            ("cpu", self.cpu.is_some()),
            ("memory", self.memory.is_some()),
        ]
        .iter()
        .find(|(_, b)| *b)
        .map_or("nothing", |(k, _)| *k)
    }

    /// The kind's name, or the reason it cannot be sent.
    fn spec(&self) -> Result<(&'static str, fault_spec::Kind), String> {
        let given = usize::from(self.cpu.is_some())
            + usize::from(self.memory.is_some())
            + usize::from(self.kill.is_some())
            + usize::from(self.pause.is_some())
            + usize::from(self.network.is_some());
        if given != 1 {
            return Err(format!(
                "inject: give exactly one fault kind (kill, pause, network, cpu, memory), got {given}"
            ));
        }
        if let Some(n) = &self.network {
            return Ok(("network", n.spec()?));
        }
        if let Some(c) = &self.cpu {
            let args = crate::cli::CpuArgs {
                percent: c.percent,
                cores: c.cores,
                load: c.load,
                placement: placement(&c.cgroup, &c.unit, c.pid),
                // The step's `duration` is the fault's; this only satisfies the builder.
                for_: "1s".into(),
                common: Default::default(),
            };
            let req = crate::request::cpu_request(&args).map_err(|e| format!("cpu: {e}"))?;
            return Ok(("cpu", kind_of(req)));
        }
        if let Some(m) = &self.memory {
            let args = crate::cli::MemArgs {
                size: m.size.clone(),
                percent: m.percent,
                ramp: m.ramp.clone(),
                placement: placement(&m.cgroup, &m.unit, m.pid),
                for_: "1s".into(),
                common: Default::default(),
            };
            let req = crate::request::mem_request(&args).map_err(|e| format!("memory: {e}"))?;
            return Ok(("memory", kind_of(req)));
        }
        let sel = |d: &ProcDoc| {
            crate::request::selector(&crate::cli::SelectorArgs {
                pid: d.pid,
                name: d.name.clone(),
                cmdline: d.cmdline.clone(),
                cgroup: d.cgroup.clone(),
                unit: d.unit.clone(),
                user: d.user.clone(),
            })
        };
        let pk = |d: &ProcDoc| -> Result<Pick, String> {
            let n = usize::from(d.all)
                + usize::from(d.count.is_some())
                + usize::from(d.percent.is_some());
            if n > 1 {
                return Err("give one of all, count, percent".into());
            }
            Ok(crate::request::pick(&crate::cli::PickArgs {
                all: d.all,
                count: d.count,
                percent: d.percent,
            }))
        };
        if let Some(k) = &self.kill {
            return Ok((
                "kill",
                fault_spec::Kind::Kill(KillSpec {
                    selector: Some(sel(k)),
                    pick: Some(pk(k)?),
                    signal: k.signal.clone().unwrap_or_else(|| "KILL".into()),
                    every_ms: k.every.map_or(0, |d| d.0.as_millis() as u64),
                }),
            ));
        }
        let p = self.pause.as_ref().expect("counted above");
        if p.signal.is_some() || p.every.is_some() {
            return Err("pause takes no signal or every".into());
        }
        Ok((
            "pause",
            fault_spec::Kind::Pause(PauseSpec {
                selector: Some(sel(p)),
                pick: Some(pk(p)?),
            }),
        ))
    }
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
                i.kind_name(),
                self.select.as_deref().unwrap_or("every node")
            ),
            None => format!("step {index}"),
        }
    }

    fn validate(&self, at: &str, kinds_ok: bool) -> Result<(), String> {
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
                s.validate(&format!("{at}.{}", i + 1), kinds_ok)?;
            }
        }
        if let Some(sel) = &self.select {
            Selector::parse(sel).map_err(|e| format!("step {at}: {e}"))?;
        }
        BlastRadius::from_flags(self.max_nodes, self.max_percent)
            .map_err(|e| format!("step {at}: {e}"))?;
        if let Some(i) = &self.inject
            && let Err(e) = i.spec()
            && (kinds_ok || !e.contains("not supported"))
        {
            return Err(format!("step {at} ({}): {e}", self.title(at)));
        }
        Ok(())
    }

    fn fault_steps(&self) -> Vec<&Step> {
        match &self.parallel {
            Some(p) => p.iter().filter(|s| s.inject.is_some()).collect(),
            None if self.inject.is_some() => vec![self],
            None => vec![],
        }
    }
}

impl Scenario {
    /// Parses and validates scenario text. With `dry_run`, steps of fault kinds this
    /// faultctl cannot send are accepted here (the dry run reports them per step).
    pub fn parse(text: &str, dry_run: bool) -> Result<Scenario, String> {
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
        let mut names = std::collections::HashSet::new();
        for p in &sc.probes {
            p.validate()?;
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
            s.validate(&(i + 1).to_string(), !dry_run)?;
        }
        Ok(sc)
    }

    /// Reads a scenario file.
    pub fn load(path: &Path, dry_run: bool) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Scenario::parse(&text, dry_run).map_err(|reason| ScenarioError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
    }
}

// ------------------------------------------------------------------------ the runner

/// One agent the run touched: its connection and the lease faultctl holds on it.
struct Held {
    node: Node,
    client: AgentClient<Channel>,
    lease_id: String,
}

struct Shared_ {
    timeline: Vec<TimelineEntry>,
    steps: Vec<StepReport>,
    current: String,
    tty: bool,
}

struct Runner {
    sc: Scenario,
    inv: Inventory,
    seed: u64,
    run_id: String,
    holder: String,
    deadline: Instant,
    t0: Instant,
    /// One cell per node: the lease is opened once, by whichever step needs it first,
    /// without holding up steps on other nodes.
    held: Mutex<BTreeMap<String, Arc<tokio::sync::OnceCell<Arc<Held>>>>>,
    shared: Mutex<Shared_>,
    probes: Vec<(ProbeSpec, Shared)>,
    abort_tx: tokio::sync::watch::Sender<Option<String>>,
}

impl Runner {
    fn log(&self, event: String) {
        let mut s = self.shared.lock().expect("lock");
        let at_ms = now_ms();
        let clear = if s.tty { "\r\x1b[K" } else { "" };
        eprintln!(
            "{clear}[{} +{:.3}s] {event}",
            crate::render::absolute(at_ms),
            self.t0.elapsed().as_secs_f64()
        );
        s.timeline.push(TimelineEntry { at_ms, event });
    }

    fn abort(&self, reason: String) {
        self.abort_tx.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// The connection and lease for `node`, opening them on first use.
    async fn hold(&self, node: &Node) -> Result<Arc<Held>, String> {
        let cell = self
            .held
            .lock()
            .expect("lock")
            .entry(node.name.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let mut client = node.connect().await.map_err(|e| e.to_string())?;
            let lease = client
                .open_lease(OpenLeaseRequest {
                    ttl_ms: self.sc.lease_ttl.0.as_millis() as u64,
                    holder: self.holder.clone(),
                })
                .await
                .map_err(|s| format!("cannot open a lease: {}", crate::CtlError::Rpc(s)))?
                .into_inner();
            self.log(format!(
                "{}: lease {} opened (ttl {})",
                node.name, lease.id, self.sc.lease_ttl
            ));
            Ok(Arc::new(Held {
                node: node.clone(),
                client,
                lease_id: lease.id,
            }))
        })
        .await
        .cloned()
    }

    /// Every node with an open lease.
    fn held_now(&self) -> Vec<Arc<Held>> {
        self.held
            .lock()
            .expect("lock")
            .values()
            .filter_map(|c| c.get().cloned())
            .collect()
    }

    /// Renews every lease; a lease that cannot be renewed aborts the run.
    async fn renew_all(&self) {
        let futs = self.held_now().into_iter().map(|h| async move {
            let id = h.lease_id.clone();
            let r = h.client.clone().renew_lease(RenewLeaseRequest { id }).await;
            (h.node.name.clone(), r)
        });
        for (node, r) in futures::future::join_all(futs).await {
            if let Err(s) = r {
                let msg = format!("{node}: lease renewal failed: {}", s.message());
                self.log(msg.clone());
                self.abort(msg);
            }
        }
    }

    fn pick(&self, step: &Step) -> Result<inventory::Pick, String> {
        let sel =
            Selector::parse(step.select.as_deref().unwrap_or("")).map_err(|e| e.to_string())?;
        let nodes = self.inv.select(&sel).map_err(|e| e.to_string())?;
        let radius =
            BlastRadius::from_flags(step.max_nodes, step.max_percent).map_err(|e| e.to_string())?;
        Ok(inventory::pick(nodes, radius, Some(self.seed)))
    }

    fn request(&self, step: &Step, title: &str, dry_run: bool) -> Result<InjectRequest, String> {
        let (_, kind) = step.inject.as_ref().expect("fault step").spec()?;
        let mut labels: std::collections::HashMap<String, String> =
            step.labels.clone().into_iter().collect();
        labels.insert("scenario".into(), self.sc.name.clone());
        labels.insert("run".into(), self.run_id.clone());
        labels.insert("step".into(), title.to_string());
        Ok(InjectRequest {
            spec: Some(FaultSpec { kind: Some(kind) }),
            duration_ms: step.duration.map_or(0, |d| d.0.as_millis() as u64),
            labels,
            dry_run,
            lease_id: String::new(),
        })
    }

    async fn run_steps(self: &Arc<Self>) {
        let total = self.sc.steps.len();
        for (i, step) in self.sc.steps.iter().enumerate() {
            let idx = (i + 1).to_string();
            let title = step.title(&idx);
            self.shared.lock().expect("lock").current = format!("{}/{total} {title}", i + 1);
            if let Some(w) = step.wait {
                self.log(format!("step {idx} ({title}): waiting {w}"));
                tokio::time::sleep(w.0).await;
            } else if let Some(group) = &step.parallel {
                self.log(format!(
                    "step {idx} ({title}): {} steps in parallel",
                    group.len()
                ));
                let futs = group.iter().enumerate().map(|(j, s)| {
                    let me = self.clone();
                    let at = format!("{idx}.{}", j + 1);
                    async move {
                        if let Some(w) = s.wait {
                            tokio::time::sleep(w.0).await;
                        } else {
                            me.fault_step(s, &at).await;
                        }
                    }
                });
                futures::future::join_all(futs).await;
            } else {
                self.fault_step(step, &idx).await;
            }
        }
    }

    /// Inject on the picked nodes, hold, revert, wait for recovery.
    async fn fault_step(self: &Arc<Self>, step: &Step, at: &str) {
        let title = step.title(at);
        let mut rep = StepReport {
            index: at.to_string(),
            name: title.clone(),
            select: step.select.clone().unwrap_or_default(),
            started_at_ms: now_ms(),
            ..Default::default()
        };
        let slot = {
            let mut s = self.shared.lock().expect("lock");
            s.steps.push(rep.clone());
            s.steps.len() - 1
        };
        let save = |rep: &StepReport| {
            self.shared.lock().expect("lock").steps[slot] = rep.clone();
        };
        let req = match self.request(step, &title, false) {
            Ok(r) => r,
            Err(e) => {
                rep.error = Some(e);
                save(&rep);
                return;
            }
        };
        rep.kind = describe_spec(req.spec.as_ref());
        let pick = match self.pick(step) {
            Ok(p) => p,
            Err(e) => {
                self.log(format!("step {at} ({title}): {e}"));
                rep.error = Some(e);
                save(&rep);
                return;
            }
        };
        rep.pick = pick.describe();
        self.log(format!("step {at} ({title}): {}; {}", rep.kind, rep.pick));
        rep.injected_at_ms = Some(now_ms());
        // Until the agents answer, each picked node is "no answer" (what an abort leaves).
        rep.nodes = pick
            .nodes
            .iter()
            .map(|n| NodeStep {
                node: n.name.clone(),
                error: Some("no answer: the run was aborted during the inject".into()),
                ..Default::default()
            })
            .collect();
        save(&rep);
        let results = crate::fleet::fan_out(&pick.nodes, |node| {
            let me = self.clone();
            let mut req = req.clone();
            async move {
                let mut ns = NodeStep {
                    node: node.name.clone(),
                    ..Default::default()
                };
                let h = match me.hold(node).await {
                    Ok(h) => h,
                    Err(e) => {
                        ns.error = Some(e);
                        return ns;
                    }
                };
                req.lease_id = h.lease_id.clone();
                match h.client.clone().inject(req).await {
                    Ok(r) => {
                        let r = r.into_inner();
                        let f = r.fault.unwrap_or_default();
                        ns.ok = true;
                        ns.fault_id = Some(f.id.clone());
                        ns.state = crate::render::state_name(f.state);
                        ns.targets = r.targets.iter().map(|t| t.pid).collect();
                        ns.plan = r.plan;
                    }
                    Err(s) => ns.error = Some(crate::CtlError::Rpc(s).to_string()),
                }
                ns
            }
        })
        .await;
        rep.nodes = results;
        for n in &rep.nodes {
            match (&n.fault_id, &n.error) {
                (Some(id), _) => self.log(format!(
                    "{}: injected {id} ({}), pids {:?}",
                    n.node, n.state, n.targets
                )),
                (None, Some(e)) => self.log(format!("{}: inject FAILED: {e}", n.node)),
                _ => {}
            }
        }
        save(&rep);
        // Hold: the fault's own duration unless `hold` says otherwise (one-shot: none).
        let hold = step.hold.or(step.duration).map_or(Duration::ZERO, |d| d.0);
        let lasting = rep
            .nodes
            .iter()
            .any(|n| n.fault_id.is_some() && n.state == "active");
        if lasting && !hold.is_zero() {
            tokio::time::sleep(hold).await;
        }
        // Revert what is still active.
        let reverted_at = now_ms();
        for n in rep.nodes.iter_mut().filter(|n| n.state == "active") {
            let Some(id) = n.fault_id.clone() else {
                continue;
            };
            let Some(h) = self.held_now().into_iter().find(|h| h.node.name == n.node) else {
                continue;
            };
            let r = h
                .client
                .clone()
                .revert(RevertRequest {
                    id: id.clone(),
                    reason: format!("scenario {} step {title} done", self.sc.name),
                })
                .await;
            n.revert = Some(match r {
                Ok(r) => {
                    let f = r.into_inner().fault.unwrap_or_default();
                    format!("reverted ({})", crate::render::state_name(f.state))
                }
                Err(s) if s.code() == tonic::Code::NotFound => "already ended".into(),
                Err(s) => {
                    let m = format!("revert failed: {}", s.message());
                    self.log(format!("{}: {id}: {m}", n.node));
                    m
                }
            });
        }
        rep.reverted_at_ms = Some(reverted_at);
        self.log(format!(
            "step {at} ({title}): faults ended; waiting for recovery"
        ));
        save(&rep);
        // Recovery: every probe back to steady state.
        rep.recovery_ms = self.wait_recovery(reverted_at).await;
        rep.ended_at_ms = Some(now_ms());
        match rep.recovery_ms {
            Some(ms) => self.log(format!("step {at} ({title}): recovered in {ms}ms")),
            None => self.log(format!(
                "step {at} ({title}): NOT recovered within {}",
                self.sc.recovery.timeout
            )),
        }
        save(&rep);
    }

    /// Waits until every probe has `consecutive_ok` ok samples in a row from `from_ms`;
    /// returns the recovery time (ms after `from_ms`) or None on timeout.
    async fn wait_recovery(&self, from_ms: u64) -> Option<u64> {
        let deadline = Instant::now() + self.sc.recovery.timeout.0;
        loop {
            let mut worst: Option<u64> = Some(0);
            for (_, st) in &self.probes {
                let st = st.lock().expect("lock");
                let r = probe::recovered_at(&st.samples, from_ms, self.sc.recovery.consecutive_ok);
                worst = match (worst, r) {
                    (Some(w), Some(t)) => Some(w.max(t.saturating_sub(from_ms))),
                    _ => None,
                };
            }
            if worst.is_some() {
                return worst;
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ends everything this run made on every node it touched: reverts each fault of
    /// the run by id (retrying while one is still being applied: an inject cut short by
    /// the abort may land after it), then closes the lease with `revert_faults` as a
    /// final sweep (and calls RevertAll if `abort.revert_all` asks), then checks that
    /// nothing of the run is left.
    async fn cleanup(&self, reason: &str) -> Vec<NodeCleanup> {
        let revert_all = self.sc.abort.revert_all && !reason.is_empty();
        let why = if reason.is_empty() {
            format!("scenario {} finished", self.sc.name)
        } else {
            format!("scenario {} aborted: {reason}", self.sc.name)
        };
        let futs = self.held_now().into_iter().map(|h| {
            let why = why.clone();
            async move {
                let mut client = h.client.clone();
                let mut c = NodeCleanup {
                    node: h.node.name.clone(),
                    lease_id: h.lease_id.clone(),
                    ..Default::default()
                };
                let deadline = Instant::now() + CLEANUP_RETRY;
                let mut last_err: BTreeMap<String, String> = BTreeMap::new();
                loop {
                    let ours = match self.ours(&mut client, &h.lease_id).await {
                        Ok(v) => v,
                        Err(e) => {
                            c.detail.push(e);
                            break;
                        }
                    };
                    if ours.is_empty() || Instant::now() >= deadline {
                        break;
                    }
                    for id in ours {
                        match client
                            .revert(RevertRequest {
                                id: id.clone(),
                                reason: why.clone(),
                            })
                            .await
                        {
                            Ok(_) => {
                                c.reverted += 1;
                                last_err.remove(&id);
                            }
                            Err(s) => {
                                last_err.insert(id, s.message().to_string());
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                match client
                    .close_lease(CloseLeaseRequest {
                        id: h.lease_id.clone(),
                        revert_faults: true,
                    })
                    .await
                {
                    Ok(r) => {
                        let r = r.into_inner();
                        c.reverted += r.results.iter().filter(|x| x.ok).count();
                        for x in r.results.iter().filter(|x| !x.ok) {
                            last_err.insert(x.id.clone(), x.error.clone());
                        }
                    }
                    Err(s) => c.detail.push(format!("close lease: {}", s.message())),
                }
                if revert_all {
                    match client.revert_all(RevertAllRequest { reason: why }).await {
                        Ok(r) => {
                            c.reverted += r.into_inner().results.iter().filter(|x| x.ok).count()
                        }
                        Err(s) => c.detail.push(format!("revert all: {}", s.message())),
                    }
                }
                match self.ours(&mut client, &h.lease_id).await {
                    Ok(left) => {
                        c.clean = left.is_empty();
                        for id in &left {
                            c.detail.push(format!(
                                "{id} STILL ACTIVE: {}",
                                last_err.get(id).map_or("not reverted", String::as_str)
                            ));
                        }
                    }
                    Err(e) => c.detail.push(e),
                }
                c
            }
        });
        futures::future::join_all(futs).await
    }

    /// The faults of this run still pending or active on a node.
    async fn ours(
        &self,
        client: &mut AgentClient<Channel>,
        lease_id: &str,
    ) -> Result<Vec<String>, String> {
        let l = client
            .list(ListRequest {
                include_ended: false,
            })
            .await
            .map_err(|s| format!("list: {}", s.message()))?;
        Ok(l.into_inner()
            .faults
            .into_iter()
            .filter(|f| {
                (f.state == FaultState::Active as i32 || f.state == FaultState::Pending as i32)
                    && (f.lease_id == lease_id || f.labels.get("run") == Some(&self.run_id))
            })
            .map(|f| f.id)
            .collect())
    }
}

/// How long the cleanup keeps retrying reverts of faults still being applied.
const CLEANUP_RETRY: Duration = Duration::from_secs(10);

fn describe_spec(spec: Option<&FaultSpec>) -> String {
    crate::render::spec_text(spec)
}

/// `faultctl run [--dry-run] FILE`.
pub async fn run_command(
    cli: &Cli,
    args: &RunArgs,
    out: &mut (dyn Write + Send),
) -> Result<(), crate::CtlError> {
    let sc = Scenario::load(&args.file, args.dry_run)?;
    let inv_path = match (&cli.inventory, &sc.inventory) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => args.file.parent().unwrap_or(Path::new(".")).join(p),
        (None, None) => {
            return Err(crate::CtlError::Usage(
                "the scenario names no inventory: add `inventory: FILE` or pass --inventory".into(),
            ));
        }
    };
    let inv = Inventory::load(&inv_path)?;
    let sign_key = args
        .sign_key
        .as_deref()
        .map(crate::sign::load_signing_key)
        .transpose()?;
    let seed = cli.seed.or(sc.seed).unwrap_or_else(rand::random);
    if args.dry_run {
        return dry_run(&sc, &inv, seed, cli.output, out).await;
    }
    let run_id = format!("r{:08x}", rand::random::<u32>());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let (abort_tx, mut abort_rx) = tokio::sync::watch::channel(None);
    let probes: Vec<(ProbeSpec, Shared)> = sc
        .probes
        .iter()
        .map(|p| (p.clone(), Shared::default()))
        .collect();
    let started = Instant::now();
    let runner = Arc::new(Runner {
        deadline: started + sc.max_duration.0,
        t0: started,
        holder: format!(
            "faultctl run {} ({run_id}) on {host} pid {}",
            sc.name,
            std::process::id()
        ),
        seed,
        run_id: run_id.clone(),
        inv,
        held: Default::default(),
        shared: Mutex::new(Shared_ {
            timeline: Vec::new(),
            steps: Vec::new(),
            current: "baseline".into(),
            tty: std::io::stderr().is_terminal(),
        }),
        probes,
        abort_tx,
        sc,
    });
    let started_at_ms = now_ms();
    runner.log(format!(
        "scenario {:?} run {run_id} started (seed {seed}, max duration {})",
        runner.sc.name, runner.sc.max_duration
    ));
    // Probes.
    let mut tasks = Vec::new();
    for (spec, st) in runner.probes.clone() {
        let me = runner.clone();
        tasks.push(tokio::spawn(async move {
            let can_abort =
                me.sc.abort.probes.is_empty() || me.sc.abort.probes.contains(&spec.name);
            let mut tick = tokio::time::interval(spec.interval.0);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let s = spec.sample().await;
                let note = match (s.ok, s.error.clone()) {
                    (true, _) => None,
                    (false, e) => Some(e.unwrap_or_default()),
                };
                let (was, streak) = {
                    let mut g = st.lock().expect("lock");
                    let was = g.failing_streak;
                    g.failing_streak = if s.ok { 0 } else { was + 1 };
                    g.samples.push(s);
                    (was, g.failing_streak)
                };
                match note {
                    None if was > 0 => {
                        me.log(format!("probe {} ok again after {was} failures", spec.name))
                    }
                    Some(e) if streak == 1 => me.log(format!("probe {} failing: {e}", spec.name)),
                    _ => {}
                }
                let n = me.sc.abort.probe_failures;
                if can_abort && n > 0 && streak == n {
                    me.abort(format!("probe {} failed {n} times in a row", spec.name));
                }
            }
        }));
    }
    // Lease renewal, every third of the TTL (stopped before the leases are closed).
    let renewal = {
        let me = runner.clone();
        tokio::spawn(async move {
            let every = me.sc.lease_ttl.0 / 3;
            loop {
                tokio::time::sleep(every).await;
                me.renew_all().await;
            }
        })
    };
    // Progress line on a terminal.
    if std::io::stderr().is_terminal() {
        let me = runner.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let left = me.deadline.saturating_duration_since(Instant::now());
                let health: Vec<String> = me
                    .probes
                    .iter()
                    .map(|(p, st)| {
                        let g = st.lock().expect("lock");
                        match g.samples.last() {
                            Some(s) if s.ok => {
                                format!("{} ok {}ms", p.name, s.latency_us / 1000)
                            }
                            Some(_) => format!("{} FAIL x{}", p.name, g.failing_streak),
                            None => format!("{} -", p.name),
                        }
                    })
                    .collect();
                let cur = me.shared.lock().expect("lock").current.clone();
                eprint!(
                    "\r\x1b[K{} | step {cur} | {}s left | {}",
                    me.sc.name,
                    left.as_secs(),
                    health.join(", ")
                );
            }
        }));
    }
    let steps = async {
        let _ = tokio::time::timeout(runner.sc.baseline.0, std::future::pending::<()>()).await;
        runner.log(format!("baseline of {} taken", runner.sc.baseline));
        runner.run_steps().await;
    };
    let ctrl_c = tokio::signal::ctrl_c();
    let abort_reason: Option<String> = tokio::select! {
        () = steps => None,
        r = abort_rx.wait_for(Option::is_some) => r.ok().and_then(|v| v.clone()),
        _ = ctrl_c => Some("interrupted (Ctrl-C)".into()),
        () = tokio::time::sleep_until(runner.deadline.into()) => {
            Some(format!("max_duration {} reached", runner.sc.max_duration))
        }
    };
    renewal.abort();
    if let Some(r) = &abort_reason {
        runner.log(format!("ABORT: {r}: reverting every fault of this run"));
    }
    let cleanup = runner.cleanup(abort_reason.as_deref().unwrap_or("")).await;
    for c in &cleanup {
        runner.log(format!(
            "{}: lease {} closed, {} reverted{}",
            c.node,
            c.lease_id,
            c.reverted,
            if c.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.detail.join("; "))
            }
        ));
    }
    let abort_recovery_ms = if abort_reason.is_some() && !runner.probes.is_empty() {
        let from = now_ms();
        let r = runner.wait_recovery(from).await;
        runner.log(match r {
            Some(ms) => format!("recovered {ms}ms after the abort"),
            None => "NOT recovered after the abort".into(),
        });
        r
    } else {
        None
    };
    for t in &tasks {
        t.abort();
    }
    if runner.shared.lock().expect("lock").tty {
        eprint!("\r\x1b[K");
    }
    runner.log(format!(
        "scenario {:?} {}",
        runner.sc.name,
        if abort_reason.is_some() {
            "aborted"
        } else {
            "finished"
        }
    ));
    let shared = runner.shared.lock().expect("lock");
    let probe_data: Vec<(ProbeSpec, Vec<probe::Sample>)> = runner
        .probes
        .iter()
        .map(|(p, st)| (p.clone(), st.lock().expect("lock").samples.clone()))
        .collect();
    let report = Report::build(
        &runner.sc,
        &run_id,
        seed,
        runner.inv.source.display().to_string(),
        started_at_ms,
        now_ms(),
        abort_reason.clone(),
        abort_recovery_ms,
        shared.steps.clone(),
        shared.timeline.clone(),
        cleanup,
        &probe_data,
    );
    drop(shared);
    let paths = report.write(&args.report_dir, sign_key.as_ref())?;
    match cli.output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, &report).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        Output::Table => {
            out.write_all(report.summary().as_bytes())?;
            for p in &paths {
                writeln!(out, "wrote {}", p.display())?;
            }
        }
    }
    out.flush()?;
    let report_path = paths
        .first()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if let Some(reason) = abort_reason {
        return Err(ScenarioError::Aborted {
            name: runner.sc.name.clone(),
            reason,
            report: report_path,
        }
        .into());
    }
    let failed = report.steps.iter().filter(|s| !s.ok()).count();
    if failed > 0 {
        return Err(ScenarioError::StepsFailed {
            name: runner.sc.name.clone(),
            failed,
            report: report_path,
        }
        .into());
    }
    Ok(())
}

/// One row of a dry run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DryRunRow {
    pub step: String,
    pub node: String,
    pub ok: bool,
    pub detail: String,
}

async fn dry_run(
    sc: &Scenario,
    inv: &Inventory,
    seed: u64,
    fmt: Output,
    out: &mut (dyn Write + Send),
) -> Result<(), crate::CtlError> {
    let (tx, _) = tokio::sync::watch::channel(None);
    let runner = Runner {
        sc: sc.clone(),
        inv: inv.clone(),
        seed,
        run_id: "dry-run".into(),
        holder: String::new(),
        deadline: Instant::now(),
        t0: Instant::now(),
        held: Default::default(),
        shared: Mutex::new(Shared_ {
            timeline: Vec::new(),
            steps: Vec::new(),
            current: String::new(),
            tty: false,
        }),
        probes: Vec::new(),
        abort_tx: tx,
    };
    let mut rows: Vec<DryRunRow> = Vec::new();
    for p in &sc.probes {
        let s = p.sample().await;
        rows.push(DryRunRow {
            step: format!("probe {}", p.name),
            node: "-".into(),
            ok: s.ok,
            detail: match s.error {
                None => format!("{}: ok in {}ms", p.describe(), s.latency_us / 1000),
                Some(e) => format!("{}: {e}", p.describe()),
            },
        });
    }
    for (i, step) in sc.steps.iter().enumerate() {
        let fault_steps = step.fault_steps();
        for (j, s) in fault_steps.iter().enumerate() {
            let at = if step.parallel.is_some() {
                format!("{}.{}", i + 1, j + 1)
            } else {
                (i + 1).to_string()
            };
            let title = format!("{at} {}", s.title(&at));
            let req = match runner.request(s, &title, true) {
                Ok(r) => r,
                Err(e) => {
                    rows.push(DryRunRow {
                        step: title,
                        node: "-".into(),
                        ok: false,
                        detail: e,
                    });
                    continue;
                }
            };
            let pick = match runner.pick(s) {
                Ok(p) => p,
                Err(e) => {
                    rows.push(DryRunRow {
                        step: title,
                        node: "-".into(),
                        ok: false,
                        detail: e,
                    });
                    continue;
                }
            };
            let results = crate::fleet::fan_out(&pick.nodes, |node| {
                let mut req = req.clone();
                async move {
                    let mut client = node.connect().await.map_err(|e| e.to_string())?;
                    let limits = client
                        .get_limits(GetLimitsRequest {})
                        .await
                        .map_err(|s| crate::CtlError::Rpc(s).to_string())?
                        .into_inner();
                    if limits.require_lease {
                        // A run always binds a lease; the dry run only needs to say so.
                        req.lease_id = "dry-run".into();
                    }
                    if let Ok(d) = u64::try_from(sc.lease_ttl.0.as_millis())
                        && limits.max_lease_ttl_ms > 0
                        && d > limits.max_lease_ttl_ms
                    {
                        return Err(format!(
                            "lease_ttl {} is over this agent's max_lease_ttl of {}ms",
                            sc.lease_ttl, limits.max_lease_ttl_ms
                        ));
                    }
                    let r = client
                        .inject(req)
                        .await
                        .map_err(|s| crate::CtlError::Rpc(s).to_string())?
                        .into_inner();
                    let pids: Vec<String> = r.targets.iter().map(|t| t.pid.to_string()).collect();
                    Ok::<_, String>(format!("would hit pids {}: {}", pids.join(","), r.plan))
                }
            })
            .await;
            for (node, r) in pick.nodes.iter().zip(results) {
                rows.push(DryRunRow {
                    step: title.clone(),
                    node: node.name.clone(),
                    ok: r.is_ok(),
                    detail: r.unwrap_or_else(|e| e),
                });
            }
            if pick.seed.is_some() {
                rows.push(DryRunRow {
                    step: title.clone(),
                    node: "-".into(),
                    ok: true,
                    detail: pick.describe(),
                });
            }
        }
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    match fmt {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, &rows).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        Output::Table => {
            let mut t = crate::render::Table::new(&["STEP", "NODE", "RESULT", "DETAIL"]);
            for r in &rows {
                t.row(vec![
                    r.step.clone(),
                    r.node.clone(),
                    if r.ok { "ok" } else { "error" }.into(),
                    r.detail.clone(),
                ]);
            }
            out.write_all(t.render(0).as_bytes())?;
            writeln!(
                out,
                "dry run of {:?}: {} checks, {failed} failed; nothing was changed",
                sc.name,
                rows.len()
            )?;
        }
    }
    out.flush()?;
    if failed > 0 {
        return Err(ScenarioError::DryRunFailed {
            name: sc.name.clone(),
            failed,
        }
        .into());
    }
    Ok(())
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
        let sc = Scenario::parse(SC, true).unwrap();
        assert_eq!(sc.steps.len(), 3);
        assert_eq!(sc.abort.probe_failures, 3);
        assert_eq!(sc.lease_ttl.0, Duration::from_secs(10));
        Scenario::parse(SC, false).unwrap();
        let e = Scenario::parse(
            &SC.replace(
                "{cpu: {percent: 40}}",
                "{cpu: {percent: 40}, memory: {size: 64MiB}}",
            ),
            false,
        )
        .unwrap_err();
        assert!(e.contains("give exactly one fault kind"), "{e}");
        let e = Scenario::parse(
            &SC.replace("max_nodes: 1", "max_nodes: 1\n    wait: 2s"),
            true,
        )
        .unwrap_err();
        assert_eq!(e, "step 1: give exactly one of inject, wait, parallel");
        let e = Scenario::parse(&SC.replace("count: 1", "count: 1, all: true"), true).unwrap_err();
        assert!(e.contains("give one of all, count, percent"), "{e}");
        let e = Scenario::parse(&SC.replace("max_duration", "max_durration"), true).unwrap_err();
        assert!(e.contains("max_durration"), "{e}");
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
            let sc = Scenario::load(&p, true).unwrap_or_else(|e| panic!("{e}"));
            let text = std::fs::read_to_string(&p).unwrap();
            Scenario::parse(&text, false).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(!sc.steps.is_empty());
        }
        assert!(n >= 4, "examples/ has {n} scenarios");
    }

    #[test]
    fn network_steps_use_the_inject_net_builder() {
        let doc: InjectDoc = serde_saphyr::from_str(
            "network: {iface: eth0, delay: 100ms, jitter: 10ms, loss: 2, dport: 5432, protocol: tcp, dst: [10.0.0.0/8]}\n",
        )
        .unwrap();
        let (kind, spec) = doc.spec().unwrap();
        assert_eq!(kind, "network");
        let fault_spec::Kind::Network(n) = spec else {
            panic!("not a network spec: {spec:?}")
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
        let doc: InjectDoc =
            serde_saphyr::from_str("network: {iface: eth1, loss: 200%}\n").unwrap();
        let e = doc.spec().unwrap_err();
        assert!(e.starts_with("network: invalid loss: \"200%\""), "{e}");
        assert!(serde_saphyr::from_str::<InjectDoc>("network: {iface: eth1, los: 2%}\n").is_err());
    }
}
