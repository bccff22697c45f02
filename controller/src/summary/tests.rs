//! `report summary` over 30 reports made here: two scenarios, every outcome, signed,
//! unsigned, signed by another key, one changed after signing, two older than the window.

use std::path::Path;

use super::*;
use crate::scenario::report::{NodeStep, StepReport};
use crate::scenario::{FileFormats, Scenario};
use crate::sign::ReportSigner;

const NOW: u64 = 1_796_083_200_000; // 2026-12-01T00:00:00Z
const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

fn scenario(name: &str) -> Scenario {
    Scenario::parse(&format!(
        "name: {name}\ninventory: fleet.toml\nmax_duration: 1m\nsteps:\n  - name: kill\n    inject: {{kill: {{name: worker}}}}\n"
    ))
    .unwrap()
}

fn step(index: &str, ok: bool, recovery: Recovery, recovery_ms: Option<u64>) -> StepReport {
    StepReport {
        index: index.into(),
        name: format!("step-{index}"),
        kind: "kill".into(),
        nodes: vec![NodeStep {
            node: "n1".into(),
            ok,
            error: (!ok).then(|| "cannot reach faultd".into()),
            ..Default::default()
        }],
        recovery,
        recovery_ms,
        ..Default::default()
    }
}

/// A report of `outcome` started at `at`.
fn report(sc: &Scenario, run: u32, at: u64, outcome: &str) -> Report {
    let mut r = Report::skipped(sc, "fleet.toml", 7, at, "frozen: test".into());
    r.run_id = format!("r{run:08}");
    r.ended_at_ms = at + 60_000;
    r.outcome = outcome.into();
    if outcome != "skipped" {
        r.skip_reason = None;
        r.timeline.clear();
    }
    r
}

fn write(dir: &Path, r: &Report, signer: Option<&ReportSigner>) -> std::path::PathBuf {
    let formats = FileFormats {
        json: true,
        markdown: false,
        html: false,
    };
    r.write(dir, formats, signer).unwrap().remove(0)
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    key_a: std::path::PathBuf,
    tampered: std::path::PathBuf,
    other_key: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("reports");
    let key_a = tmp.path().join("a.key");
    let key_b = tmp.path().join("b.key");
    crate::sign::keygen(&key_a, false, Some("a@test")).unwrap();
    crate::sign::keygen(&key_b, false, Some("b@test")).unwrap();
    let a = ReportSigner::from_file(&key_a, None).unwrap();
    let b = ReportSigner::from_file(&key_b, None).unwrap();

    // latency-db: 20 runs in the last 20 hours, in its own subdirectory (as
    // /var/lib/faultline/reports/NAME/).
    let lat = scenario("latency-db");
    let lat_dir = dir.join("latency-db");
    let mut completed = 0u64;
    let mut tampered = None;
    let mut other_key = None;
    for i in 0..20u32 {
        let at = NOW - (u64::from(i) + 1) * HOUR;
        let mut r = match i % 10 {
            0..=6 => {
                completed += 1;
                let mut r = report(&lat, i, at, "completed");
                r.steps = vec![step("1", true, Recovery::Recovered, Some(100 * completed))];
                r
            }
            7 => {
                let mut r = report(&lat, i, at, "completed with failures");
                r.steps = vec![step("1", false, Recovery::NoFaultApplied, None)];
                r
            }
            8 => {
                let mut r = report(&lat, i, at, "aborted");
                r.abort_reason = Some("probe api: error rate 5 % > 1 %".into());
                r.abort_recovery_ms = Some(3000);
                r.steps = vec![step("1", true, Recovery::NotMeasured, None)];
                r
            }
            _ => report(&lat, i, at, "skipped"),
        };
        if i == 0 {
            // Completed, but its second step never recovered: an issue.
            r.steps.push(step("2", true, Recovery::NotRecovered, None));
        }
        let signer = match i {
            5 | 15 => None,
            11 => Some(&b),
            _ => Some(&a),
        };
        let path = write(&lat_dir, &r, signer);
        if i == 3 {
            tampered = Some(path.clone());
        }
        if i == 11 {
            other_key = Some(path);
        }
    }
    // One report changed after it was signed.
    let tampered = tampered.unwrap();
    let text = std::fs::read_to_string(&tampered).unwrap();
    let changed = text.replace("\"seed\": 7", "\"seed\": 8");
    assert_ne!(text, changed);
    std::fs::write(&tampered, changed).unwrap();

    // cpu-stress: 8 unsigned runs in the window, 2 aborted ones older than 30 days.
    let cpu = scenario("cpu-stress");
    for i in 0..8u32 {
        let mut r = report(
            &cpu,
            100 + i,
            NOW - DAY * u64::from(i) - 30 * 60_000,
            "completed",
        );
        r.steps = vec![step(
            "1",
            true,
            Recovery::Recovered,
            Some(200 * (u64::from(i) + 1)),
        )];
        write(&dir, &r, None);
    }
    for (i, days) in [(200u32, 31u64), (201, 40)] {
        let mut r = report(&cpu, i, NOW - days * DAY, "aborted");
        r.abort_reason = Some("old".into());
        write(&dir, &r, None);
    }
    // Not reports: ignored.
    std::fs::write(dir.join("fleet.json"), "{\"agents\": []}").unwrap();
    Fixture {
        _tmp: tmp,
        dir,
        key_a: crate::sign::pub_path(&key_a),
        tampered,
        other_key: other_key.unwrap(),
    }
}

fn files(dir: &Path) -> usize {
    let mut v = Vec::new();
    json_files(dir, &mut v).unwrap();
    v.len()
}

#[test]
fn thirty_reports_sum_up_exactly() {
    let f = fixture();
    assert_eq!(files(&f.dir), 31, "30 reports and one other JSON file");
    let o = Options {
        dirs: vec![f.dir.clone()],
        since_ms: Some(NOW - 30 * DAY),
        now_ms: NOW,
        trust: Trust::Integrity,
        next_runs: BTreeMap::from([(
            "latency-db".to_string(),
            vec![NextRun {
                schedule: "latency-nightly".into(),
                next_at_ms: Some(NOW + 2 * HOUR),
            }],
        )]),
    };
    let s = summarize(&o).unwrap();
    assert_eq!((s.reports, s.older), (28, 2));
    assert!(s.unreadable.is_empty(), "{:?}", s.unreadable);
    let names: Vec<&str> = s.scenarios.iter().map(|e| e.scenario.as_str()).collect();
    assert_eq!(names, ["cpu-stress", "latency-db"]);

    let cpu = &s.scenarios[0];
    assert_eq!(
        (
            cpu.runs,
            cpu.completed,
            cpu.failed,
            cpu.aborted,
            cpu.skipped
        ),
        (8, 8, 0, 0, 0)
    );
    assert_eq!(cpu.success_rate_percent, Some(100.0));
    // 200, 400, ... 1600 ms.
    assert_eq!(
        cpu.recovery,
        RecoveryStats {
            count: 8,
            p50_ms: Some(800),
            p95_ms: Some(1600),
            mean_ms: Some(900),
        }
    );
    assert_eq!(cpu.issues_found, 0);
    assert_eq!(
        (
            cpu.signatures.signed,
            cpu.signatures.unsigned,
            cpu.signatures.failed_verification
        ),
        (0, 8, 0)
    );
    let last = cpu.last_run.as_ref().unwrap();
    assert_eq!(
        (last.run_id.as_str(), last.outcome.as_str()),
        ("r00000100", "completed")
    );
    assert_eq!(last.started_at_ms, NOW - 30 * 60_000);
    assert!(cpu.next_runs.is_empty());

    let lat = &s.scenarios[1];
    assert_eq!(
        (
            lat.runs,
            lat.completed,
            lat.failed,
            lat.aborted,
            lat.skipped
        ),
        (20, 14, 2, 2, 2)
    );
    // 14 of the 18 that ran (the skipped two are not tests).
    let rate = lat.success_rate_percent.unwrap();
    assert!((rate - 1400.0 / 18.0).abs() < 1e-9, "{rate}");
    // 100..1400 ms from the completed runs, 3000 ms twice after the aborts: 16 values.
    assert_eq!(
        lat.recovery,
        RecoveryStats {
            count: 16,
            p50_ms: Some(800),
            p95_ms: Some(3000),
            mean_ms: Some(1031),
        }
    );
    // 2 failed steps, 2 aborts, 1 step that did not recover.
    assert_eq!(lat.issues_found, 5);
    let issues: Vec<&str> = lat.issues.iter().map(|i| i.what.as_str()).collect();
    assert_eq!(
        issues
            .iter()
            .filter(|w| **w == "aborted: probe api: error rate 5 % > 1 %")
            .count(),
        2,
        "{issues:?}"
    );
    assert_eq!(
        issues
            .iter()
            .filter(|w| **w == "step 1 step-1 failed: n1: cannot reach faultd")
            .count(),
        2,
        "{issues:?}"
    );
    assert!(
        issues.contains(&"step 2 step-2: not recovered within the recovery timeout"),
        "{issues:?}"
    );
    let last = lat.last_run.as_ref().unwrap();
    assert_eq!(
        (last.run_id.as_str(), last.outcome.as_str()),
        ("r00000000", "completed")
    );
    assert_eq!(lat.next_runs[0].next_at_ms, Some(NOW + 2 * HOUR));
    // Integrity only: 17 intact (the one signed by another key too), 2 unsigned, the
    // changed one fails.
    assert_eq!(
        (
            lat.signatures.signed,
            lat.signatures.unsigned,
            lat.signatures.failed_verification
        ),
        (17, 2, 1)
    );
    assert_eq!(lat.signatures.failed[0].report, f.tampered);

    // Against key A: the report signed by B fails too.
    let s = summarize(&Options {
        trust: Trust::Key(f.key_a.clone()),
        ..o.clone()
    })
    .unwrap();
    let lat = &s.scenarios[1];
    assert_eq!(
        (
            lat.signatures.signed,
            lat.signatures.unsigned,
            lat.signatures.failed_verification
        ),
        (16, 2, 2)
    );
    let bad: Vec<&Path> = lat
        .signatures
        .failed
        .iter()
        .map(|b| b.report.as_path())
        .collect();
    assert!(bad.contains(&f.tampered.as_path()) && bad.contains(&f.other_key.as_path()));

    // All time: the two old aborted runs count.
    let s = summarize(&Options {
        since_ms: None,
        ..o.clone()
    })
    .unwrap();
    let cpu = &s.scenarios[0];
    assert_eq!((s.reports, s.older), (30, 0));
    assert_eq!((cpu.runs, cpu.completed, cpu.aborted), (10, 8, 2));
    assert!((cpu.success_rate_percent.unwrap() - 80.0).abs() < 1e-9);
    assert_eq!(cpu.issues_found, 2);

    // Every rendering carries the figures; the page loads nothing from anywhere.
    let s = summarize(&o).unwrap();
    let table = s.table();
    assert!(table.contains("77.8%"), "{table}");
    assert!(table.contains("800ms/3000ms/1031ms"), "{table}");
    assert!(table.contains("17/2/1"), "{table}");
    assert!(table.contains("FAILED VERIFICATION"), "{table}");
    let md = s.markdown();
    assert!(
        md.contains("| latency-db | 20 | 14 | 2 | 2 | 2 | 77.8% | 800ms | 3000ms | 1031ms | 5 | 17 | 2 | 1 |"),
        "{md}"
    );
    let html = s.html();
    assert!(html.contains("<td class=\"num\">77.8%</td>"), "{html}");
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["scenarios"][1]["recovery"]["p95_ms"], 3000);
    assert_eq!(json["scenarios"][1]["signatures"]["failed_verification"], 1);
}

#[test]
fn bad_trust_and_missing_dirs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let e = summarize(&Options {
        dirs: vec![tmp.path().join("nope")],
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let bad = tmp.path().join("bad.pub");
    std::fs::write(&bad, "not a key\n").unwrap();
    let e = summarize(&Options {
        dirs: vec![tmp.path().to_path_buf()],
        trust: Trust::Key(bad),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, SummaryError::Trust(_)), "{e}");
}
