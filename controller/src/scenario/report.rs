//! Drill reports: what a scenario run did, per step and node, with probe statistics
//! before, during and after each fault and the measured recovery time, as JSON (the
//! record) and Markdown (for people). Both can be signed ([`crate::sign`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Scenario, ScenarioError};
use crate::probe::{ProbeSpec, Sample, Stats, stats};
use crate::render::absolute;

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
    pub probes: Vec<ProbeReport>,
    pub steps: Vec<StepReport>,
    pub cleanup: Vec<NodeCleanup>,
    pub timeline: Vec<TimelineEntry>,
}

impl Report {
    /// Assembles the report, computing each step's probe windows from the samples.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        sc: &Scenario,
        run_id: &str,
        seed: u64,
        inventory: String,
        started_at_ms: u64,
        ended_at_ms: u64,
        abort_reason: Option<String>,
        abort_recovery_ms: Option<u64>,
        mut steps: Vec<StepReport>,
        timeline: Vec<TimelineEntry>,
        cleanup: Vec<NodeCleanup>,
        probes: &[(ProbeSpec, Vec<Sample>)],
    ) -> Report {
        let baseline = sc.baseline.0.as_millis() as u64;
        for s in &mut steps {
            let Some(inj) = s.injected_at_ms else {
                continue;
            };
            let rev = s.reverted_at_ms.unwrap_or(ended_at_ms);
            let end = s.ended_at_ms.unwrap_or(ended_at_ms).max(rev);
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
            run_id: run_id.to_string(),
            seed,
            inventory,
            started_at_ms,
            ended_at_ms,
            outcome: match (&abort_reason, failed) {
                (Some(_), _) => "aborted",
                (None, true) => "completed with failures",
                (None, false) => "completed",
            }
            .into(),
            abort_reason,
            abort_recovery_ms,
            probes: probes
                .iter()
                .map(|(p, v)| ProbeReport {
                    name: p.name.clone(),
                    checks: p.describe(),
                    overall: stats(v, 0, u64::MAX),
                })
                .collect(),
            steps,
            cleanup,
            timeline,
        }
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let ms = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.2}"));
        let st = |s: &Stats| {
            format!(
                "{} | {} | {} | {:.1}%",
                s.samples,
                ms(s.p50_ms),
                ms(s.p99_ms),
                s.error_rate * 100.0
            )
        };
        m += &format!("# Game day report: {}\n\n", self.scenario);
        if !self.description.is_empty() {
            m += &format!("{}\n\n", self.description.trim());
        }
        m += &format!(
            "- run: `{}` (seed {})\n- inventory: `{}`\n- started: {}\n- ended: {} ({:.1}s)\n- outcome: **{}**{}\n",
            self.run_id,
            self.seed,
            self.inventory,
            absolute(self.started_at_ms),
            absolute(self.ended_at_ms),
            self.ended_at_ms.saturating_sub(self.started_at_ms) as f64 / 1000.0,
            self.outcome,
            self.abort_reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        if let Some(r) = self.abort_recovery_ms {
            m += &format!("- recovery after the abort: {r} ms\n");
        }
        m += "\n## Probes\n\n| probe | checks | samples | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|\n";
        for p in &self.probes {
            m += &format!("| {} | {} | {} |\n", p.name, p.checks, st(&p.overall));
        }
        m += "\n## Steps\n";
        for s in &self.steps {
            m += &format!(
                "\n### {} {}\n\n- fault: {}\n- nodes: {}\n- recovery: {}\n",
                s.index,
                s.name,
                s.kind,
                s.pick,
                match (s.recovery, s.recovery_ms) {
                    (Recovery::Recovered, Some(r)) => format!("**{r} ms** after the fault ended"),
                    (Recovery::NotRecovered, _) => "**not recovered** in time".into(),
                    (Recovery::NoFaultApplied, _) => "no fault applied".into(),
                    _ => "-".into(),
                }
            );
            if let Some(e) = &s.error {
                m += &format!("- error: {e}\n");
            }
            m += "\n| node | result | fault | pids | revert |\n|---|---|---|---|---|\n";
            for n in &s.nodes {
                m += &format!(
                    "| {} | {} | {} | {} | {} |\n",
                    n.node,
                    if n.ok {
                        "ok".to_string()
                    } else {
                        format!("error: {}", n.error.as_deref().unwrap_or(""))
                    },
                    n.fault_id.as_deref().unwrap_or("-"),
                    n.targets
                        .iter()
                        .map(i32::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    n.revert.as_deref().unwrap_or("-")
                );
            }
            if !s.probes.is_empty() {
                m += "\n| probe | window | samples | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|\n";
                for p in &s.probes {
                    for (w, x) in [
                        ("before", &p.before),
                        ("during", &p.during),
                        ("after", &p.after),
                    ] {
                        m += &format!("| {} | {w} | {} |\n", p.probe, st(x));
                    }
                }
            }
        }
        m +=
            "\n## Cleanup\n\n| node | lease | reverted | clean | detail |\n|---|---|---|---|---|\n";
        for c in &self.cleanup {
            m += &format!(
                "| {} | {} | {} | {} | {} |\n",
                c.node,
                c.lease_id,
                c.reverted,
                if c.clean { "yes" } else { "NO" },
                c.detail.join("; ")
            );
        }
        m += "\n## Timeline\n\n";
        for t in &self.timeline {
            m += &format!(
                "- {} (+{:.3}s) {}\n",
                absolute(t.at_ms),
                t.at_ms.saturating_sub(self.started_at_ms) as f64 / 1000.0,
                t.event
            );
        }
        m
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

    /// Writes `DIR/NAME-RUNID.json` and `.md` (and `.sig` files with a key).
    pub fn write(
        &self,
        dir: &Path,
        key: Option<&ed25519_dalek::SigningKey>,
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
        let json = dir.join(format!("{stem}-{}.json", self.run_id));
        let md = dir.join(format!("{stem}-{}.md", self.run_id));
        let mut text = serde_json::to_vec_pretty(self).expect("plain data");
        text.push(b'\n');
        std::fs::write(&json, &text).map_err(|e| werr(&json, e))?;
        std::fs::write(&md, self.markdown()).map_err(|e| werr(&md, e))?;
        let mut out = vec![json.clone(), md.clone()];
        if let Some(k) = key {
            out.push(crate::sign::sign_file(&json, k)?);
            out.push(crate::sign::sign_file(&md, k)?);
        }
        Ok(out)
    }
}
