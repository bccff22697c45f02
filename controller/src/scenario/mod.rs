//! Game-day scenarios: `faultctl run FILE.yaml`.
//!
//! A scenario names steady-state probes, a list of steps (inject a fault on a selection of
//! the inventory, hold, revert, wait for recovery; `parallel:` groups; `wait:` pauses),
//! abort conditions and a maximum total duration. The runner holds a lease on every agent
//! it touches (renewed every third of its TTL; every inject is bound to it), so if
//! faultctl dies the agents revert on their own. On an abort (a probe failing N times in
//! a row, a probe's SLO breached over its window, Ctrl-C, the maximum duration, a lost
//! lease) it ends every fault of the run on every node it touched, then still writes the
//! report ([`report`]: JSON, Markdown, HTML).
//!
//! - [`document`]: the file format and its checks;
//! - [`runner`]: a run, step by step, with probes and leases;
//! - [`cleanup`]: the end of a run on every touched node;
//! - [`dry_run`]: `--dry-run`, every step checked by the agents, nothing changed.
//!
//! The format is documented in docs/faultctl.md ("Scenarios").

pub mod cleanup;
pub mod document;
pub mod dry_run;
mod error;
pub mod report;
pub mod runner;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use document::{AbortSpec, RecoverySpec, Scenario, Step};
pub use error::ScenarioError;
pub use report::FileFormats;

use crate::inventory::Inventory;
use crate::render::{Format, write_json};
use report::Report;

/// How to run a scenario (`faultctl run`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOptions {
    /// The scenario file.
    pub file: PathBuf,
    /// Check every step with the agents instead; change nothing.
    pub dry_run: bool,
    /// Where the report goes (NAME-RUNID.json, .md, .html).
    pub report_dir: PathBuf,
    /// Which report files to write.
    pub report_formats: FileFormats,
    /// Sign the report with this OpenSSH private key; with `sign_agent`, the public key
    /// of the ssh-agent key to sign with.
    pub sign_key: Option<PathBuf>,
    /// Sign through ssh-agent (`SSH_AUTH_SOCK`).
    pub sign_agent: bool,
    /// The signer's identity recorded in the report (default: the key's comment).
    pub sign_identity: Option<String>,
    /// Overrides the scenario's `inventory`.
    pub inventory: Option<PathBuf>,
    /// Overrides the scenario's `seed`.
    pub seed: Option<u64>,
    pub format: Format,
    /// The chaos freeze file [default: [`crate::freeze::path`]].
    pub freeze_file: Option<PathBuf>,
}

/// Runs (or with `dry_run`, checks) the scenario, writes the report, prints the summary.
/// An aborted run, a step that failed on some node, or a failed dry-run check is an error
/// after the report is written.
pub async fn run(o: &RunOptions, out: &mut (dyn Write + Send)) -> Result<(), ScenarioError> {
    let sc = Scenario::load(&o.file)?;
    let inv_path = match (&o.inventory, &sc.inventory) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => o.file.parent().unwrap_or(Path::new(".")).join(p),
        (None, None) => return Err(ScenarioError::NoInventory),
    };
    // The key is checked before the drill, not found wanting after it.
    let signer = match (o.sign_agent, &o.sign_key) {
        (false, None) => None,
        _ => Some(crate::sign::ReportSigner::open(
            o.sign_key.as_deref(),
            o.sign_agent,
            o.sign_identity.as_deref(),
        )?),
    };
    // A chaos freeze stops the run before anything reaches a node; the skip is recorded.
    let freeze_file = o.freeze_file.clone().unwrap_or_else(crate::freeze::path);
    if let Some(f) = crate::freeze::current(&freeze_file, crate::clock::now_ms())? {
        if o.dry_run {
            eprintln!(
                "faultctl: note: a real run would be skipped now: chaos is {}",
                f.describe()
            );
        } else {
            return skip(o, &sc, &inv_path, &f, signer.as_ref(), out);
        }
    }
    let inv = Inventory::load(&inv_path)?;
    let seed = o.seed.or(sc.seed).unwrap_or_else(rand::random);
    if !o.dry_run {
        // A query Prometheus refuses is bad input: refused before anything is changed.
        // (The dry run reports it in its table instead.)
        for p in &sc.probes {
            if let Some(e) = p.rejected_query().await {
                return Err(ScenarioError::Invalid {
                    path: o.file.clone(),
                    reason: format!("probe {:?}: {e}", p.name),
                });
            }
        }
    }
    if o.dry_run {
        let rows = dry_run::check(&sc, &inv, seed).await;
        match o.format {
            Format::Json => write_json(out, &rows)?,
            Format::Table => out.write_all(dry_run::table(&sc.name, &rows).as_bytes())?,
        }
        out.flush()?;
        let failed = rows.iter().filter(|r| !r.ok).count();
        if failed > 0 {
            return Err(ScenarioError::DryRunFailed {
                name: sc.name.clone(),
                failed,
            });
        }
        return Ok(());
    }
    let name = sc.name.clone();
    let (mut report, abort_reason) = runner::drill(sc, inv, seed).await;
    let report_path = publish(&mut report, o, signer.as_ref(), out)?;
    if let Some(reason) = abort_reason {
        return Err(ScenarioError::Aborted {
            name,
            reason,
            report: report_path,
        });
    }
    let failed = report.steps.iter().filter(|s| !s.ok()).count();
    if failed > 0 {
        return Err(ScenarioError::StepsFailed {
            name,
            failed,
            report: report_path,
        });
    }
    Ok(())
}

/// Writes the report of a run the freeze `f` skipped, prints it, and says so.
fn skip(
    o: &RunOptions,
    sc: &Scenario,
    inv_path: &Path,
    f: &crate::freeze::Freeze,
    signer: Option<&crate::sign::ReportSigner>,
    out: &mut (dyn Write + Send),
) -> Result<(), ScenarioError> {
    let seed = o.seed.or(sc.seed).unwrap_or(0);
    let mut report = Report::skipped(
        sc,
        &inv_path.display().to_string(),
        seed,
        crate::clock::now_ms(),
        f.describe(),
    );
    let report = publish(&mut report, o, signer, out)?;
    Err(ScenarioError::Frozen {
        name: sc.name.clone(),
        freeze: f.describe(),
        report,
    })
}

/// Signs and writes the report's files, prints it (the summary and the files, or the
/// JSON); returns the path of the first file written.
fn publish(
    report: &mut Report,
    o: &RunOptions,
    signer: Option<&crate::sign::ReportSigner>,
    out: &mut (dyn Write + Send),
) -> Result<String, ScenarioError> {
    report.signed_by = signer.map(|s| s.info().clone());
    let paths = report.write(&o.report_dir, o.report_formats, signer)?;
    match o.format {
        Format::Json => write_json(out, &*report)?,
        Format::Table => {
            out.write_all(report.summary().as_bytes())?;
            for p in &paths {
                writeln!(out, "wrote {}", p.display())?;
            }
        }
    }
    out.flush()?;
    Ok(paths
        .first()
        .map(|p| p.display().to_string())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While chaos is frozen, `run` connects to no agent, writes a signed "skipped"
    /// report naming the freeze and who set it, and fails with Frozen (exit 7); after
    /// the freeze ends by itself, the same run reaches the agent.
    #[tokio::test]
    async fn a_frozen_run_touches_no_node_and_records_the_skip() {
        let dir = tempfile::tempdir().unwrap();
        // The "agent": a socket that counts who connects.
        let sock = dir.path().join("agent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        listener.set_nonblocking(true).unwrap();
        std::fs::write(
            dir.path().join("fleet.toml"),
            format!(
                "[[agents]]\nname = \"n1\"\naddress = \"unix://{}\"\n",
                sock.display()
            ),
        )
        .unwrap();
        let file = dir.path().join("s.yaml");
        std::fs::write(
            &file,
            "name: frozen-drill\ninventory: fleet.toml\nmax_duration: 5s\nbaseline: 10ms\n\
             steps:\n  - name: kill\n    inject: {kill: {name: worker}}\n",
        )
        .unwrap();
        let key = dir.path().join("k");
        crate::sign::keygen(&key, false, Some("drill@test")).unwrap();
        let freeze_file = dir.path().join("freeze");
        let now = crate::clock::now_ms();
        crate::freeze::set(
            &freeze_file,
            &crate::freeze::Freeze {
                reason: "release week".into(),
                by: "alice@ctl".into(),
                at_ms: now,
                until_ms: Some(now + 2_000),
            },
        )
        .unwrap();
        let reports = dir.path().join("reports");
        let o = RunOptions {
            file,
            report_dir: reports.clone(),
            report_formats: FileFormats {
                json: true,
                markdown: true,
                html: false,
            },
            sign_key: Some(key.clone()),
            format: Format::Json,
            freeze_file: Some(freeze_file.clone()),
            ..Default::default()
        };
        let mut out = Vec::new();
        let e = run(&o, &mut out).await.unwrap_err();
        assert!(matches!(e, ScenarioError::Frozen { .. }), "{e}");
        assert_eq!(
            crate::CtlError::from(e).exit_code(),
            crate::ExitCode::Frozen
        );
        assert!(
            matches!(listener.accept(), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "a frozen run connected to the agent"
        );
        let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(report["outcome"], "skipped");
        let why = report["skip_reason"].as_str().unwrap();
        assert!(
            why.starts_with("frozen: release week (by alice@ctl at "),
            "{why}"
        );
        assert_eq!(report["steps"], serde_json::json!([]));
        let json = reports.join(format!(
            "frozen-drill-{}.json",
            report["run_id"].as_str().unwrap()
        ));
        crate::sign::verify(
            &json,
            None,
            crate::sign::Trust::Key(&crate::sign::pub_path(&key)),
        )
        .unwrap();
        let md = std::fs::read_to_string(json.with_extension("md")).unwrap();
        assert!(
            md.contains("- outcome: **skipped**: frozen: release week"),
            "{md}"
        );

        // The freeze ends by itself: the next run reaches the agent (and fails there,
        // as this socket speaks no gRPC).
        tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
        let e = run(&o, &mut Vec::new()).await.unwrap_err();
        assert!(!matches!(e, ScenarioError::Frozen { .. }), "{e}");
        assert!(
            listener.accept().is_ok(),
            "the run after the freeze never reached the agent"
        );
    }

    /// A step whose inject fails on every node (here: the only agent is unreachable)
    /// applied no fault: the report says so instead of timing a recovery from nothing.
    #[tokio::test]
    async fn a_step_that_applied_no_fault_records_no_recovery_time() {
        let dir = tempfile::tempdir().unwrap();
        let inv = dir.path().join("fleet.toml");
        std::fs::write(
            &inv,
            "[[agents]]\nname = \"gone\"\naddress = \"unix:///nonexistent/faultd.sock\"\n",
        )
        .unwrap();
        let file = dir.path().join("s.yaml");
        std::fs::write(
            &file,
            "name: nothing-applied\ninventory: fleet.toml\nmax_duration: 30s\nbaseline: 10ms\n\
             steps:\n  - name: kill\n    inject: {kill: {name: worker}}\n",
        )
        .unwrap();
        let reports = dir.path().join("reports");
        let o = RunOptions {
            file,
            report_dir: reports.clone(),
            format: Format::Json,
            ..Default::default()
        };
        let mut out = Vec::new();
        let e = run(&o, &mut out).await.unwrap_err();
        assert!(
            matches!(e, ScenarioError::StepsFailed { failed: 1, .. }),
            "{e}"
        );
        let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let step = &report["steps"][0];
        assert_eq!(step["recovery"], "no fault applied", "{step:#}");
        assert_eq!(step["recovery_ms"], serde_json::Value::Null, "{step:#}");
        assert!(
            step["nodes"][0]["error"]
                .as_str()
                .unwrap()
                .contains("cannot reach faultd"),
            "{step:#}"
        );
        let md = std::fs::read_dir(&reports)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "md"))
            .unwrap();
        let md = std::fs::read_to_string(md).unwrap();
        assert!(md.contains("- recovery: no fault applied\n"), "{md}");
        assert!(!md.contains("**0 ms**"), "{md}");
        let timeline = report["timeline"].to_string();
        assert!(!timeline.contains("recovered in"), "{timeline}");
        assert!(
            timeline.contains("no fault applied on any node"),
            "{timeline}"
        );
    }
}
