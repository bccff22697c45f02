//! `faultctl report summary`: the record of many drills. Reads every report JSON
//! (`faultline-report/*`) under the directories given, keeps those started within
//! `--since`, and sums them up per scenario: runs, completed / failed / aborted /
//! skipped, the success rate, recovery p50 / p95 / mean, the issues found, the last run
//! and its result, the next scheduled run (from the timers of this host) and how many
//! reports were signed, unsigned or failed verification. Rendered as a table, JSON,
//! Markdown or one self-contained HTML page ([`html`]).
//!
//! Definitions (docs/faultctl.md "Report summary" says the same):
//! - completed: outcome `completed`; failed: `completed with failures`; aborted:
//!   `aborted`; skipped: `skipped` (a run a chaos freeze stopped before it touched a node).
//! - success rate: completed / (completed + failed + aborted), in percent; skipped runs
//!   are not tests and do not count; none run: no rate.
//! - recovery: every step that recovered (its `recovery_ms`) and every aborted run's
//!   recovery after the abort (`abort_recovery_ms`); p50 and p95 by nearest rank (as the
//!   probe statistics), mean rounded to the millisecond.
//! - issues: every step that failed on some node, every step that did not recover
//!   within its timeout, every abort with its reason.
//! - signatures: signed (a `.sig` that verifies against the trust given, or without one,
//!   against its own key: intact), unsigned (no `.sig`), failed verification (a `.sig`
//!   that does not verify: a changed report, another key than the one trusted). A report
//!   that failed verification still counts in the figures (it says what it says), and is
//!   named in the output so nobody misses it.

pub mod html;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::probe::stats::percentile;
use crate::render::{Table, absolute};
use crate::scenario::report::{Recovery, Report};
use crate::sign;

/// What to check the reports' signatures against.
#[derive(Debug, Clone, Default)]
pub enum Trust {
    /// Each signature against its own key: intact or not.
    #[default]
    Integrity,
    /// Exactly this public key.
    Key(PathBuf),
    /// A git-style allowed_signers file.
    AllowedSigners(PathBuf),
}

/// A scheduled drill as the summary shows it: which scenario, and when it runs next.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NextRun {
    pub schedule: String,
    pub next_at_ms: Option<u64>,
}

/// What to sum up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dirs: Vec<PathBuf>,
    /// Only reports started at or after this time.
    pub since_ms: Option<u64>,
    pub now_ms: u64,
    pub trust: Trust,
    /// Scenario name to its schedules on this host.
    pub next_runs: BTreeMap<String, Vec<NextRun>>,
}

/// Why a summary could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a directory (report summary reads directories of reports)", path.display())]
    NotADirectory { path: PathBuf },
    /// The trust source is unusable (a malformed allowed_signers file, a bad key).
    #[error(transparent)]
    Trust(#[from] sign::VerifyError),
}

/// Recovery times of a scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecoveryStats {
    /// How many recoveries were measured.
    pub count: usize,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub mean_ms: Option<u64>,
}

/// One issue a run found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issue {
    pub run_id: String,
    pub at_ms: u64,
    pub what: String,
}

/// The last run of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastRun {
    pub run_id: String,
    pub started_at_ms: u64,
    /// The report's outcome (`completed`, `completed with failures`, `aborted`, `skipped`).
    pub outcome: String,
    /// The abort or skip reason.
    pub reason: Option<String>,
    pub report: PathBuf,
}

/// A report whose signature did not verify.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadSignature {
    pub report: PathBuf,
    pub error: String,
}

/// Signature counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Signatures {
    pub signed: usize,
    pub unsigned: usize,
    pub failed_verification: usize,
    pub failed: Vec<BadSignature>,
}

/// One scenario's record.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScenarioSummary {
    pub scenario: String,
    pub runs: usize,
    pub completed: usize,
    pub failed: usize,
    pub aborted: usize,
    pub skipped: usize,
    /// completed / (completed + failed + aborted), percent.
    pub success_rate_percent: Option<f64>,
    pub recovery: RecoveryStats,
    pub issues_found: usize,
    pub issues: Vec<Issue>,
    pub last_run: Option<LastRun>,
    pub next_runs: Vec<NextRun>,
    pub signatures: Signatures,
}

/// A file that looked like a report but could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unreadable {
    pub path: PathBuf,
    pub error: String,
}

/// The summary of every report read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub generated_at_ms: u64,
    pub since_ms: Option<u64>,
    pub dirs: Vec<PathBuf>,
    /// Reports read (within `since`).
    pub reports: usize,
    /// Reports left out as older than `since`.
    pub older: usize,
    pub scenarios: Vec<ScenarioSummary>,
    pub unreadable: Vec<Unreadable>,
}

/// Every `*.json` file under `dir`, recursively, sorted.
fn json_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SummaryError> {
    let rd = std::fs::read_dir(dir).map_err(|source| SummaryError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            json_files(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads the reports under `o.dirs` and sums them up.
pub fn summarize(o: &Options) -> Result<Summary, SummaryError> {
    check_trust(&o.trust)?;
    let mut files = Vec::new();
    for d in &o.dirs {
        if !d.is_dir() {
            if d.exists() {
                return Err(SummaryError::NotADirectory { path: d.clone() });
            }
            return Err(SummaryError::Read {
                path: d.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
            });
        }
        json_files(d, &mut files)?;
    }
    let mut s = Summary {
        generated_at_ms: o.now_ms,
        since_ms: o.since_ms,
        dirs: o.dirs.clone(),
        ..Default::default()
    };
    let mut by: BTreeMap<String, (ScenarioSummary, Vec<u64>)> = BTreeMap::new();
    for path in files {
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) => {
                s.unreadable.push(Unreadable {
                    path,
                    error: e.to_string(),
                });
                continue;
            }
        };
        // Other JSON files (a fleet file, a Grafana dashboard) are not reports.
        let value: serde_json::Value = match serde_json::from_slice(&text) {
            Ok(v) => v,
            Err(e) => {
                s.unreadable.push(Unreadable {
                    path,
                    error: format!("not JSON: {e}"),
                });
                continue;
            }
        };
        if !value["format"]
            .as_str()
            .is_some_and(|f| f.starts_with("faultline-report/"))
        {
            continue;
        }
        let r: Report = match serde_json::from_value(value) {
            Ok(r) => r,
            Err(e) => {
                s.unreadable.push(Unreadable {
                    path,
                    error: format!("not a faultline report: {e}"),
                });
                continue;
            }
        };
        if o.since_ms.is_some_and(|since| r.started_at_ms < since) {
            s.older += 1;
            continue;
        }
        s.reports += 1;
        let (e, recoveries) = by.entry(r.scenario.clone()).or_insert_with(|| {
            (
                ScenarioSummary {
                    scenario: r.scenario.clone(),
                    ..Default::default()
                },
                Vec::new(),
            )
        });
        add(e, recoveries, &r, &path);
        check_signature(&mut e.signatures, &path, &o.trust)?;
    }
    for (name, (mut e, mut rec)) in by {
        rec.sort_unstable();
        e.recovery = RecoveryStats {
            count: rec.len(),
            p50_ms: percentile(&rec, 50.0),
            p95_ms: percentile(&rec, 95.0),
            mean_ms: (!rec.is_empty())
                .then(|| (rec.iter().sum::<u64>() as f64 / rec.len() as f64).round() as u64),
        };
        let tests = e.completed + e.failed + e.aborted;
        e.success_rate_percent = (tests > 0).then(|| e.completed as f64 * 100.0 / tests as f64);
        e.issues_found = e.issues.len();
        e.issues
            .sort_by(|a, b| (a.at_ms, &a.run_id).cmp(&(b.at_ms, &b.run_id)));
        e.next_runs = o.next_runs.get(&name).cloned().unwrap_or_default();
        s.scenarios.push(e);
    }
    // Scheduled scenarios with no report yet still show their next run.
    for (name, v) in &o.next_runs {
        if !s.scenarios.iter().any(|e| &e.scenario == name) {
            s.scenarios.push(ScenarioSummary {
                scenario: name.clone(),
                next_runs: v.clone(),
                ..Default::default()
            });
        }
    }
    s.scenarios.sort_by(|a, b| a.scenario.cmp(&b.scenario));
    Ok(s)
}

/// Adds one report to its scenario's figures.
fn add(e: &mut ScenarioSummary, recoveries: &mut Vec<u64>, r: &Report, path: &Path) {
    e.runs += 1;
    let issue = |what: String| Issue {
        run_id: r.run_id.clone(),
        at_ms: r.started_at_ms,
        what,
    };
    match r.outcome.as_str() {
        "completed" => e.completed += 1,
        "completed with failures" => e.failed += 1,
        "aborted" => e.aborted += 1,
        "skipped" => e.skipped += 1,
        other => {
            e.failed += 1;
            e.issues.push(issue(format!("unknown outcome {other:?}")));
        }
    }
    if r.outcome == "aborted" {
        e.issues.push(issue(format!(
            "aborted: {}",
            r.abort_reason.as_deref().unwrap_or("no reason recorded")
        )));
        if let Some(ms) = r.abort_recovery_ms {
            recoveries.push(ms);
        }
    }
    for st in &r.steps {
        if !st.ok() {
            let why = st.error.clone().unwrap_or_else(|| {
                let bad: Vec<String> = st
                    .nodes
                    .iter()
                    .filter(|n| !n.ok)
                    .map(|n| format!("{}: {}", n.node, n.error.as_deref().unwrap_or("failed")))
                    .collect();
                if bad.is_empty() {
                    "no node picked".into()
                } else {
                    bad.join("; ")
                }
            });
            e.issues.push(issue(format!(
                "step {} {} failed: {why}",
                st.index, st.name
            )));
        }
        match (st.recovery, st.recovery_ms) {
            (Recovery::Recovered, Some(ms)) => recoveries.push(ms),
            (Recovery::NotRecovered, _) => e.issues.push(issue(format!(
                "step {} {}: not recovered within the recovery timeout",
                st.index, st.name
            ))),
            _ => {}
        }
    }
    let newer = e
        .last_run
        .as_ref()
        .is_none_or(|l| (r.started_at_ms, &r.run_id) > (l.started_at_ms, &l.run_id));
    if newer {
        e.last_run = Some(LastRun {
            run_id: r.run_id.clone(),
            started_at_ms: r.started_at_ms,
            outcome: r.outcome.clone(),
            reason: r.abort_reason.clone().or_else(|| r.skip_reason.clone()),
            report: path.to_path_buf(),
        });
    }
}

/// A trust source that cannot be used is bad input, whether or not there are reports.
fn check_trust(trust: &Trust) -> Result<(), SummaryError> {
    match trust {
        Trust::Integrity => {}
        Trust::Key(k) => {
            sign::load_public_key(k).map_err(|e| sign::VerifyError::BadKey {
                path: k.clone(),
                reason: e.to_string(),
            })?;
        }
        Trust::AllowedSigners(f) => {
            let text = std::fs::read_to_string(f).map_err(|source| SummaryError::Read {
                path: f.clone(),
                source,
            })?;
            sign::AllowedSigners::parse(f, &text).map_err(sign::VerifyError::from)?;
        }
    }
    Ok(())
}

/// Counts the report's signature. A malformed trust source is an error (bad input for
/// every report alike); anything wrong with one report's signature is counted.
fn check_signature(sig: &mut Signatures, path: &Path, trust: &Trust) -> Result<(), SummaryError> {
    let t = match trust {
        Trust::Integrity => sign::Trust::Nothing,
        Trust::Key(k) => sign::Trust::Key(k),
        Trust::AllowedSigners(f) => sign::Trust::AllowedSigners {
            file: f,
            identity: None,
        },
    };
    match sign::verify(path, None, t) {
        Ok(_) => sig.signed += 1,
        Err(sign::VerifyError::Unsigned { .. }) => sig.unsigned += 1,
        Err(e) if e.is_bad_input() => return Err(e.into()),
        Err(e) => {
            sig.failed_verification += 1;
            sig.failed.push(BadSignature {
                report: path.to_path_buf(),
                error: e.to_string(),
            });
        }
    }
    Ok(())
}

fn ms(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| format!("{v}ms"))
}

fn rate(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}%"))
}

fn next_text(v: &[NextRun]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter()
        .map(|n| match n.next_at_ms {
            Some(at) => format!("{} ({})", absolute(at), n.schedule),
            None => format!("not scheduled ({})", n.schedule),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn last_text(l: &Option<LastRun>) -> String {
    match l {
        None => "-".into(),
        Some(l) => format!("{} {}", absolute(l.started_at_ms), l.outcome),
    }
}

impl Summary {
    fn window(&self) -> String {
        match self.since_ms {
            Some(s) => format!("since {}", absolute(s)),
            None => "all time".into(),
        }
    }

    /// The summary for a terminal.
    pub fn table(&self) -> String {
        let mut o = format!(
            "{} report(s) {} in {}{}\n\n",
            self.reports,
            self.window(),
            self.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if self.older > 0 {
                format!(" ({} older left out)", self.older)
            } else {
                String::new()
            }
        );
        let mut t = Table::new(&[
            "SCENARIO",
            "RUNS",
            "OK",
            "FAILED",
            "ABORTED",
            "SKIPPED",
            "SUCCESS",
            "RECOVERY P50/P95/MEAN",
            "ISSUES",
            "SIGNED/UNSIGNED/BAD",
            "LAST RUN",
            "NEXT RUN",
        ]);
        for e in &self.scenarios {
            t.row(vec![
                e.scenario.clone(),
                e.runs.to_string(),
                e.completed.to_string(),
                e.failed.to_string(),
                e.aborted.to_string(),
                e.skipped.to_string(),
                rate(e.success_rate_percent),
                format!(
                    "{}/{}/{}",
                    ms(e.recovery.p50_ms),
                    ms(e.recovery.p95_ms),
                    ms(e.recovery.mean_ms)
                ),
                e.issues_found.to_string(),
                format!(
                    "{}/{}/{}",
                    e.signatures.signed, e.signatures.unsigned, e.signatures.failed_verification
                ),
                last_text(&e.last_run),
                next_text(&e.next_runs),
            ]);
        }
        o += &t.render(0);
        for e in &self.scenarios {
            if e.issues.is_empty() && e.signatures.failed.is_empty() {
                continue;
            }
            let _ = writeln!(o, "\n{}:", e.scenario);
            for i in &e.issues {
                let _ = writeln!(o, "  {} {}: {}", absolute(i.at_ms), i.run_id, i.what);
            }
            for b in &e.signatures.failed {
                let _ = writeln!(
                    o,
                    "  FAILED VERIFICATION {}: {}",
                    b.report.display(),
                    b.error
                );
            }
        }
        for u in &self.unreadable {
            let _ = writeln!(o, "\nunreadable: {}: {}", u.path.display(), u.error);
        }
        o
    }

    /// The summary as Markdown.
    pub fn markdown(&self) -> String {
        let mut m = format!(
            "# Chaos drill record\n\n{} report(s) {}, generated {}.\n\n",
            self.reports,
            self.window(),
            absolute(self.generated_at_ms)
        );
        m += "| Scenario | Runs | Completed | Failed | Aborted | Skipped | Success rate | Recovery p50 | p95 | mean | Issues | Signed | Unsigned | Failed verification | Last run | Next run |\n";
        m += "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|\n";
        let cell = |s: &str| s.replace('|', "\\|");
        for e in &self.scenarios {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&e.scenario),
                e.runs,
                e.completed,
                e.failed,
                e.aborted,
                e.skipped,
                rate(e.success_rate_percent),
                ms(e.recovery.p50_ms),
                ms(e.recovery.p95_ms),
                ms(e.recovery.mean_ms),
                e.issues_found,
                e.signatures.signed,
                e.signatures.unsigned,
                e.signatures.failed_verification,
                cell(&last_text(&e.last_run)),
                cell(&next_text(&e.next_runs)),
            );
        }
        for e in &self.scenarios {
            if e.issues.is_empty() && e.signatures.failed.is_empty() {
                continue;
            }
            let _ = writeln!(m, "\n## {}\n", e.scenario);
            for i in &e.issues {
                let _ = writeln!(m, "- {} `{}`: {}", absolute(i.at_ms), i.run_id, i.what);
            }
            for b in &e.signatures.failed {
                let _ = writeln!(
                    m,
                    "- **failed verification** `{}`: {}",
                    b.report.display(),
                    b.error
                );
            }
        }
        for u in &self.unreadable {
            let _ = writeln!(m, "\n- unreadable `{}`: {}", u.path.display(), u.error);
        }
        m
    }
}

#[cfg(test)]
mod tests;
