//! Drill reports: what a scenario run did, per step and node, with probe statistics
//! before, during and after each fault, the measured recovery time, every probe sample
//! and what aborted the run. Written as JSON (the record: [`Report`]'s serde mapping,
//! documented field by field in docs/faultctl.md "Reports"; fields are only ever added),
//! Markdown ([`markdown`]) and a self-contained HTML page with a chart per probe
//! ([`html`]). Every file written can be signed ([`crate::sign`]).

mod chart;
pub mod html;
pub mod markdown;

use std::path::{Path, PathBuf};

use faultline_proto::prometheus::Bounds;
use serde::{Deserialize, Serialize};

use super::{Scenario, ScenarioError};
use crate::probe::{Breach, Probe, Sample, Slo, Stats, stats};

/// One line of the timeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at_ms: u64,
    pub event: String,
}

/// A step's result on one node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeStep {
    pub node: String,
    pub ok: bool,
    pub fault_id: Option<String>,
    /// The fault's state right after the inject (active, completed...).
    pub state: String,
    pub targets: Vec<i32>,
    pub plan: String,
    pub error: Option<String>,
    /// What the revert did ("reverted (reverted)", "already ended", an error).
    pub revert: Option<String>,
}

/// How a fault step's recovery went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recovery {
    /// Not measured (yet): the step was cut short, or has not reached it.
    #[default]
    #[serde(rename = "not measured")]
    NotMeasured,
    /// Every probe was back to steady state `recovery_ms` after the fault ended.
    #[serde(rename = "recovered")]
    Recovered,
    /// Not within `recovery.timeout`.
    #[serde(rename = "not recovered")]
    NotRecovered,
    /// The inject failed on every node: there was nothing to recover from.
    #[serde(rename = "no fault applied")]
    NoFaultApplied,
}

/// A probe's statistics around one step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepProbe {
    pub probe: String,
    /// The baseline window before the inject.
    pub before: Stats,
    /// From the inject to the revert.
    pub during: Stats,
    /// From the revert to the end of the step (recovery included).
    pub after: Stats,
}

/// One fault step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepReport {
    pub index: String,
    pub name: String,
    pub kind: String,
    pub select: String,
    /// Which nodes were picked, and the seed.
    pub pick: String,
    pub started_at_ms: u64,
    pub injected_at_ms: Option<u64>,
    pub reverted_at_ms: Option<u64>,
    pub ended_at_ms: Option<u64>,
    pub nodes: Vec<NodeStep>,
    /// Time from the revert until every probe was back to steady state (None: never, or
    /// not measured: see `recovery`).
    pub recovery_ms: Option<u64>,
    /// "recovered", "not recovered", "no fault applied" or "not measured".
    #[serde(default)]
    pub recovery: Recovery,
    pub probes: Vec<StepProbe>,
    pub error: Option<String>,
}

impl StepReport {
    /// Whether it injected on every picked node.
    pub fn ok(&self) -> bool {
        self.error.is_none() && !self.nodes.is_empty() && self.nodes.iter().all(|n| n.ok)
    }
}

/// What the end of the run did on one node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeCleanup {
    pub node: String,
    pub lease_id: String,
    pub reverted: usize,
    /// Nothing of this run is active on the node any more.
    pub clean: bool,
    pub detail: Vec<String>,
}

/// A probe over the whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeReport {
    pub name: String,
    pub checks: String,
    pub overall: Stats,
    /// `http`, `tcp`, `command` or `prometheus` (empty in reports before it was added).
    #[serde(default)]
    pub kind: String,
    /// A prometheus probe's bounds.
    #[serde(default)]
    pub bounds: Option<Bounds>,
    /// The probe's SLO abort conditions.
    #[serde(default)]
    pub slo: Option<SloReport>,
    /// Every sample, oldest first.
    #[serde(default)]
    pub samples: Vec<Sample>,
}

/// A probe's SLO abort conditions, as the report records them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloReport {
    /// Abort above this percentage of failed samples in the window.
    pub error_rate_percent: Option<f64>,
    /// Abort when the window's p99 latency is above this.
    pub p99_ms: Option<f64>,
    pub window_ms: u64,
    pub min_samples: usize,
    /// The conditions in words.
    pub text: String,
}

impl From<&Slo> for SloReport {
    fn from(s: &Slo) -> SloReport {
        SloReport {
            error_rate_percent: s.error_rate.map(|p| p.value()),
            p99_ms: s.p99.map(|p| p.0.as_secs_f64() * 1000.0),
            window_ms: s.window.as_millis(),
            min_samples: s.min_samples,
            text: s.describe(),
        }
    }
}

/// What a run hands over for its report.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    pub run_id: String,
    pub seed: u64,
    pub inventory: String,
    pub started_at_ms: u64,
    pub ended_at_ms: u64,
    pub abort_reason: Option<String>,
    pub aborted_at_ms: Option<u64>,
    pub abort_condition: Option<Breach>,
    pub abort_recovery_ms: Option<u64>,
    pub faults_ended_at_ms: Option<u64>,
    pub steps: Vec<StepReport>,
    pub timeline: Vec<TimelineEntry>,
    pub cleanup: Vec<NodeCleanup>,
}

/// The report of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub format: String,
    pub scenario: String,
    pub description: String,
    pub run_id: String,
    pub seed: u64,
    pub inventory: String,
    pub started_at_ms: u64,
    pub ended_at_ms: u64,
    /// "completed", "completed with failures" or "aborted".
    pub outcome: String,
    pub abort_reason: Option<String>,
    /// After an abort: time until the probes were back to steady state.
    pub abort_recovery_ms: Option<u64>,
    /// When the abort was decided.
    #[serde(default)]
    pub aborted_at_ms: Option<u64>,
    /// The probe SLO condition that aborted the run, if one did.
    #[serde(default)]
    pub abort_condition: Option<Breach>,
    /// When the end of the run had ended every fault of the run on every node.
    #[serde(default)]
    pub faults_ended_at_ms: Option<u64>,
    pub probes: Vec<ProbeReport>,
    pub steps: Vec<StepReport>,
    pub cleanup: Vec<NodeCleanup>,
    pub timeline: Vec<TimelineEntry>,
    /// Who signed the report (`run --sign-key`/`--sign-agent`), as the signer says: the
    /// signature covers it, and `faultctl report verify --allowed-signers` says whether
    /// to believe it. None: not signed.
    #[serde(default)]
    pub signed_by: Option<crate::sign::SignerInfo>,
    /// Why the run was skipped before it touched a node (outcome `skipped`): a chaos
    /// freeze (`faultctl freeze`), e.g. "frozen: release week (frozen by alice@ctl ...)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
}

impl Report {
    /// Assembles the report, computing each step's probe windows from the samples.
    pub fn build(sc: &Scenario, r: RunRecord, probes: &[(Probe, Vec<Sample>)]) -> Report {
        let baseline = sc.baseline.0.as_millis() as u64;
        let mut steps = r.steps;
        for s in &mut steps {
            let Some(inj) = s.injected_at_ms else {
                continue;
            };
            let rev = s.reverted_at_ms.unwrap_or(r.ended_at_ms);
            let end = s.ended_at_ms.unwrap_or(r.ended_at_ms).max(rev);
            s.probes = probes
                .iter()
                .map(|(p, v)| StepProbe {
                    probe: p.name.clone(),
                    before: stats(v, inj.saturating_sub(baseline), inj),
                    during: stats(v, inj, rev),
                    after: stats(v, rev, end + 1),
                })
                .collect();
        }
        let failed = steps.iter().any(|s| !s.ok());
        Report {
            format: "faultline-report/1".into(),
            scenario: sc.name.clone(),
            description: sc.description.clone(),
            run_id: r.run_id,
            seed: r.seed,
            inventory: r.inventory,
            started_at_ms: r.started_at_ms,
            ended_at_ms: r.ended_at_ms,
            outcome: match (&r.abort_reason, failed) {
                (Some(_), _) => "aborted",
                (None, true) => "completed with failures",
                (None, false) => "completed",
            }
            .into(),
            abort_reason: r.abort_reason,
            abort_recovery_ms: r.abort_recovery_ms,
            aborted_at_ms: r.aborted_at_ms,
            abort_condition: r.abort_condition,
            faults_ended_at_ms: r.faults_ended_at_ms,
            probes: probes
                .iter()
                .map(|(p, v)| ProbeReport {
                    name: p.name.clone(),
                    checks: p.describe(),
                    overall: stats(v, 0, u64::MAX),
                    kind: p.check.kind().into(),
                    bounds: p.bounds(),
                    slo: p.slo.as_ref().map(SloReport::from),
                    samples: v.clone(),
                })
                .collect(),
            steps,
            cleanup: r.cleanup,
            timeline: r.timeline,
            signed_by: None,
            skip_reason: None,
        }
    }

    /// The report of a run that was skipped before it touched a node (a chaos freeze):
    /// outcome `skipped`, no steps, `reason` recorded.
    pub fn skipped(
        sc: &Scenario,
        inventory: &str,
        seed: u64,
        at_ms: u64,
        reason: String,
    ) -> Report {
        Report {
            format: "faultline-report/1".into(),
            scenario: sc.name.clone(),
            description: sc.description.clone(),
            run_id: format!("r{:08x}", rand::random::<u32>()),
            seed,
            inventory: inventory.into(),
            started_at_ms: at_ms,
            ended_at_ms: at_ms,
            outcome: "skipped".into(),
            abort_reason: None,
            abort_recovery_ms: None,
            aborted_at_ms: None,
            abort_condition: None,
            faults_ended_at_ms: None,
            probes: Vec::new(),
            steps: Vec::new(),
            cleanup: Vec::new(),
            timeline: vec![TimelineEntry {
                at_ms: 0,
                event: format!("skipped: {reason}"),
            }],
            signed_by: None,
            skip_reason: Some(reason),
        }
    }

    /// When a step's fault was in effect: from the inject to the revert (or, for a step
    /// cut short, to the end of the run's faults). `None` if no fault was applied.
    pub fn fault_window(&self, s: &StepReport) -> Option<(u64, u64)> {
        let from = s.injected_at_ms?;
        if s.nodes.iter().all(|n| n.fault_id.is_none()) {
            return None;
        }
        let to = s
            .reverted_at_ms
            .or(self.faults_ended_at_ms)
            .unwrap_or(self.ended_at_ms)
            .max(from);
        Some((from, to))
    }

    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "scenario {:?} run {}: {}{}\n",
            self.scenario,
            self.run_id,
            self.outcome,
            self.abort_reason
                .as_ref()
                .or(self.skip_reason.as_ref())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        for st in &self.steps {
            s += &format!(
                "  step {} {}: {} of {} nodes ok, {}\n",
                st.index,
                st.name,
                st.nodes.iter().filter(|n| n.ok).count(),
                st.nodes.len(),
                match (st.recovery, st.recovery_ms) {
                    (Recovery::Recovered, Some(r)) => format!("recovery {r}ms"),
                    (Recovery::NotRecovered, _) => "not recovered".into(),
                    (Recovery::NoFaultApplied, _) => "no fault applied".into(),
                    _ => "recovery -".into(),
                }
            );
        }
        s
    }

    /// Writes `DIR/NAME-RUNID.json`, `.md` and `.html` (those `formats` asks for), and
    /// with a signer a `.sig` for every file written. Returns the paths written, reports
    /// first.
    pub fn write(
        &self,
        dir: &Path,
        formats: FileFormats,
        signer: Option<&crate::sign::ReportSigner>,
    ) -> Result<Vec<PathBuf>, ScenarioError> {
        let werr = |path: &Path, source| ScenarioError::WriteReport {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| werr(dir, e))?;
        let stem: String = self
            .scenario
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        if formats.json {
            let mut text = serde_json::to_vec_pretty(self).expect("plain data");
            text.push(b'\n');
            files.push((dir.join(format!("{stem}-{}.json", self.run_id)), text));
        }
        if formats.markdown {
            files.push((
                dir.join(format!("{stem}-{}.md", self.run_id)),
                self.markdown().into_bytes(),
            ));
        }
        if formats.html {
            files.push((
                dir.join(format!("{stem}-{}.html", self.run_id)),
                self.html().into_bytes(),
            ));
        }
        let mut out = Vec::new();
        for (path, text) in &files {
            std::fs::write(path, text).map_err(|e| werr(path, e))?;
            out.push(path.clone());
        }
        if let Some(s) = signer {
            let sigs = out
                .iter()
                .map(|p| s.sign_file(p))
                .collect::<Result<Vec<_>, _>>()?;
            out.extend(sigs);
        }
        Ok(out)
    }
}

/// Which report files a run writes (`--report-format json,md,html`; default all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFormats {
    pub json: bool,
    pub markdown: bool,
    pub html: bool,
}

impl Default for FileFormats {
    fn default() -> Self {
        FileFormats {
            json: true,
            markdown: true,
            html: true,
        }
    }
}
