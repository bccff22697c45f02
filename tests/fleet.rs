//! faultctl for game days, end to end: several real `faultd` agents on this machine (each
//! its own socket and state dir), the real `faultctl` with an inventory, and a small HTTP
//! service on 127.0.0.1 as the system under test.
//!
//! All agents run on the same host, so each step of a scenario targets its own victim
//! process (a `sleep` with a unique argv[0]) on one named node.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultline_tests::agent::{Victim, eventually, proc_state};
use faultline_tests::fleet::{Fleet, report_in, text};
use faultline_tests::service::Service;
use faultline_tests::{bin, unique_name};

fn stopped(v: &Victim) -> bool {
    proc_state(v.pid()) == Some('T')
}

#[test]
fn scenario_runs_to_a_signed_report_that_verifies_and_detects_one_changed_byte() {
    let fleet = Fleet::start(3);
    let svc = Service::start(|| 200);
    let tags: Vec<String> = (0..3).map(|_| unique_name("flv")).collect();
    let mut victims: Vec<Victim> = tags.iter().map(|t| Victim::sleep(t)).collect();
    let scenario = fleet.write(
        "drill.yaml",
        &format!(
            r#"
name: e2e-drill
max_duration: 1m
lease_ttl: 3s
baseline: 500ms
probes:
  - name: api
    http: {{url: "{url}", expect_status: 200, max_latency: 1s}}
    interval: 100ms
  - name: port
    tcp: {{address: "{addr}"}}
    interval: 100ms
recovery: {{consecutive_ok: 2, timeout: 10s}}
steps:
  - name: kill worker on node-1
    select: name=node-1
    inject:
      kill: {{cmdline: "^{t0}", count: 1}}
  - wait: 200ms
  - parallel:
      - name: pause node-2
        select: name=node-2
        inject: {{pause: {{cmdline: "^{t1}"}}}}
        duration: 20s
        hold: 1s
      - name: pause node-3
        select: zone=a,name=node-3
        inject: {{pause: {{cmdline: "^{t2}"}}}}
        duration: 800ms
"#,
            url = svc.url(),
            addr = svc.addr,
            t0 = tags[0],
            t1 = tags[1],
            t2 = tags[2],
        ),
    );
    let key = fleet.path("drill.key");
    let o = Command::new(bin("faultctl"))
        .arg("keygen")
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let reports = fleet.path("reports");
    let o = fleet.ctl(&[
        "run",
        scenario.to_str().unwrap(),
        "--report-dir",
        reports.to_str().unwrap(),
        "--sign-key",
        key.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (json, r) = report_in(&reports);
    assert_eq!(r["outcome"], "completed", "{r:#}");
    assert_eq!(r["scenario"], "e2e-drill");
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "{r:#}");
    for s in steps {
        assert_eq!(s["nodes"].as_array().unwrap().len(), 1, "{s:#}");
        let n = &s["nodes"][0];
        assert_eq!(n["ok"], true, "{s:#}");
        assert!(s["recovery_ms"].as_u64().is_some(), "{s:#}");
        for p in s["probes"].as_array().unwrap() {
            assert!(p["before"]["samples"].as_u64().unwrap() > 0, "{s:#}");
            assert!(p["after"]["samples"].as_u64().unwrap() > 0, "{s:#}");
            assert!(p["before"]["p50_ms"].as_f64().is_some(), "{s:#}");
        }
    }
    let by_name = |n: &str| steps.iter().find(|s| s["name"] == n).unwrap();
    assert_eq!(
        by_name("kill worker on node-1")["nodes"][0]["node"],
        "node-1"
    );
    assert_eq!(
        by_name("kill worker on node-1")["nodes"][0]["targets"][0],
        victims[0].pid()
    );
    assert_eq!(by_name("pause node-2")["nodes"][0]["node"], "node-2");
    assert_eq!(
        by_name("pause node-2")["nodes"][0]["targets"][0],
        victims[1].pid()
    );
    // The kill happened; the pauses ended; nothing is left on any agent.
    assert!(eventually(Duration::from_secs(5), || victims[0]
        .exited()
        .is_some()));
    assert!(!stopped(&victims[1]) && !stopped(&victims[2]));
    for i in 0..3 {
        assert!(fleet.active(i).is_empty(), "agent {i} still has faults");
    }
    // The node-2 pause was reverted by faultctl (hold 1s < duration 20s).
    let f = fleet
        .all_faults(1)
        .into_iter()
        .find(|f| f["kind"] == "pause")
        .unwrap();
    assert_eq!(f["state"], "reverted", "{f:#}");
    assert!(!r["timeline"].as_array().unwrap().is_empty());
    let cleanup = r["cleanup"].as_array().unwrap();
    assert_eq!(cleanup.len(), 3);
    assert!(cleanup.iter().all(|c| c["clean"] == true), "{cleanup:#?}");
    let md = json.with_extension("md");
    let mdt = std::fs::read_to_string(&md).unwrap();
    assert!(mdt.contains("# Game day report: e2e-drill"), "{mdt}");
    assert!(mdt.contains("| api | before |"), "{mdt}");

    // Signature: verifies with the trusted key, and fails after one byte changes.
    let pubkey = fleet.path("drill.key.pub");
    let verify = |p: &Path| {
        Command::new(bin("faultctl"))
            .args(["report", "verify"])
            .arg(p)
            .arg("--public-key")
            .arg(&pubkey)
            .output()
            .unwrap()
    };
    for p in [&json, &md] {
        let o = verify(p);
        assert!(o.status.success(), "{}", text(&o));
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("signature OK"));
    }
    let mut bytes = std::fs::read(&json).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(&json, &bytes).unwrap();
    let o = verify(&json);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("signature check FAILED"),
        "{}",
        text(&o)
    );
}

#[test]
fn failing_probe_aborts_every_fault_and_every_agent_is_clean() {
    let fleet = Fleet::start(2);
    let tags: Vec<String> = (0..2).map(|_| unique_name("flv")).collect();
    let victims: Vec<Victim> = tags.iter().map(|t| Victim::sleep(t)).collect();
    // The service is unhealthy while its worker (victim 0) is stopped.
    let worker = victims[0].pid();
    let svc = Service::start(move || {
        if proc_state(worker) == Some('T') {
            503
        } else {
            200
        }
    });
    let scenario = fleet.write(
        "abort.yaml",
        &format!(
            r#"
name: e2e-abort
max_duration: 1m
lease_ttl: 5s
baseline: 300ms
probes:
  - name: api
    http: {{url: "{url}"}}
    interval: 100ms
abort: {{probe_failures: 3}}
recovery: {{timeout: 5s}}
steps:
  - parallel:
      - select: name=node-1
        inject: {{pause: {{cmdline: "^{t0}"}}}}
        duration: 50s
      - select: name=node-2
        inject: {{pause: {{cmdline: "^{t1}"}}}}
        duration: 50s
  - wait: 30s
"#,
            url = svc.url(),
            t0 = tags[0],
            t1 = tags[1],
        ),
    );
    let reports = fleet.path("reports");
    let t = Instant::now();
    let o = fleet.ctl(&[
        "run",
        scenario.to_str().unwrap(),
        "--report-dir",
        reports.to_str().unwrap(),
    ]);
    let took = t.elapsed();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("was aborted: probe api failed 3 times in a row"),
        "{}",
        text(&o)
    );
    eprintln!("aborted run took {took:?}");
    assert!(
        took < Duration::from_secs(30),
        "the abort did not cut the run short"
    );
    let (_, r) = report_in(&reports);
    assert_eq!(r["outcome"], "aborted");
    assert!(r["abort_reason"].as_str().unwrap().contains("probe api"));
    assert!(r["abort_recovery_ms"].as_u64().is_some(), "{r:#}");
    for i in 0..2 {
        assert!(fleet.active(i).is_empty(), "agent {i} still has faults");
        let f = &fleet.all_faults(i)[0];
        assert_eq!(f["state"], "reverted", "{f:#}");
    }
    assert!(!stopped(&victims[0]) && !stopped(&victims[1]));
}

#[test]
fn sigkill_to_faultctl_mid_run_makes_every_agent_revert_within_the_lease_ttl_plus_1s() {
    let fleet = Fleet::start(2);
    let tags: Vec<String> = (0..2).map(|_| unique_name("flv")).collect();
    let victims: Vec<Victim> = tags.iter().map(|t| Victim::sleep(t)).collect();
    let scenario = fleet.write(
        "kill.yaml",
        &format!(
            r#"
name: e2e-sigkill
max_duration: 2m
lease_ttl: 4s
baseline: 100ms
steps:
  - parallel:
      - select: name=node-1
        inject: {{pause: {{cmdline: "^{t0}"}}}}
        duration: 90s
      - select: name=node-2
        inject: {{pause: {{cmdline: "^{t1}"}}}}
        duration: 90s
"#,
            t0 = tags[0],
            t1 = tags[1],
        ),
    );
    let mut child = faultline_tests::agent::KillOnDrop::new(
        fleet
            .command(&[
                "run",
                scenario.to_str().unwrap(),
                "--report-dir",
                fleet.path("reports").to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(
        eventually(Duration::from_secs(15), || stopped(&victims[0])
            && stopped(&victims[1])),
        "the pauses never took effect"
    );
    // Hold past one renewal, so the lease is known to be kept alive while faultctl lives.
    std::thread::sleep(Duration::from_millis(5000));
    assert!(stopped(&victims[0]) && stopped(&victims[1]));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let t = Instant::now();
    let back = eventually(Duration::from_secs(12), || {
        !stopped(&victims[0]) && !stopped(&victims[1])
    });
    let took = t.elapsed();
    eprintln!("agents reverted {took:?} after SIGKILL to faultctl (lease ttl 4s)");
    assert!(back, "the agents did not revert after the lease lapsed");
    // The last renewal came before the kill, so the lease lapses less than 4 s after it;
    // 1 s more for the revert and this poll.
    assert!(
        took <= Duration::from_secs(5),
        "the agents reverted {took:?} after faultctl died: more than the 4 s lease TTL + 1 s"
    );
    for i in 0..2 {
        // The process resumes a moment before the fault's ended record is filed.
        assert!(eventually(Duration::from_secs(5), || fleet
            .active(i)
            .is_empty()));
        let f = &fleet.all_faults(i)[0];
        assert!(f["end_reason"].as_str().unwrap().contains("lease"), "{f:#}");
    }
}

#[test]
fn max_nodes_1_touches_exactly_one_node_and_partial_failures_are_per_node() {
    let fleet = Fleet::start(3);
    let tag = unique_name("flv");
    let victim = Victim::sleep(&tag);
    let pattern = format!("^{tag}");
    let o = fleet.ctl(&[
        "-o",
        "json",
        "--select",
        "role=app",
        "--max-nodes",
        "1",
        "--seed",
        "7",
        "inject",
        "pause",
        "--cmdline",
        &pattern,
        "--for",
        "30s",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows:#}");
    let picked = rows[0]["node"].as_str().unwrap().to_string();
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("picked 1 of 3 selected nodes at random (repeat with --seed 7)"),
        "{}",
        text(&o)
    );
    let touched: Vec<usize> = (0..3)
        .filter(|i| !fleet.all_faults(*i).is_empty())
        .collect();
    assert_eq!(touched.len(), 1, "touched agents {touched:?}");
    assert_eq!(picked, format!("node-{}", touched[0] + 1));
    assert!(stopped(&victim));
    // The same seed picks the same node (a dry run, so nothing more is touched).
    let o = fleet.ctl(&[
        "-o",
        "json",
        "--max-nodes",
        "1",
        "--seed",
        "7",
        "inject",
        "pause",
        "--cmdline",
        &pattern,
        "--for",
        "30s",
        "--dry-run",
    ]);
    let again: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(again[0]["node"], picked.as_str(), "{}", text(&o));

    // Fan-out to every node: one row per node.
    let o = fleet.ctl(&["abort", "--reason", "test over"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("3 of 3 nodes ok"), "{out}");
    assert!(!stopped(&victim));

    // One node unreachable: its row says so, the others are fine, the exit code is 5.
    let mut inv = std::fs::read_to_string(&fleet.inventory).unwrap();
    inv += "[[agents]]\nname = \"gone\"\naddress = \"unix:///nonexistent/faultd.sock\"\nlabels = { role = \"app\" }\n";
    std::fs::write(&fleet.inventory, inv).unwrap();
    let o = fleet.ctl(&["-o", "json", "status"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows.iter().filter(|r| r["ok"] == true).count(), 3);
    let gone = rows.iter().find(|r| r["node"] == "gone").unwrap();
    assert!(
        gone["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach faultd"),
        "{gone:#}"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("1 of 4 nodes failed: gone"),
        "{}",
        text(&o)
    );
    let o = fleet.ctl(&["status"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("3 of 4 nodes ok, 1 failed"), "{out}");
}

#[test]
fn dry_run_touches_nothing() {
    let fleet = Fleet::start(2);
    let tag = unique_name("flv");
    let victim = Victim::sleep(&tag);
    let reports = fleet.path("reports");
    let ok = fleet.write(
        "ok.yaml",
        &format!(
            r#"
name: e2e-dry
max_duration: 1m
steps:
  - name: kill everywhere
    inject: {{kill: {{cmdline: "^{tag}"}}}}
  - parallel:
      - select: zone=b
        inject: {{pause: {{cmdline: "^{tag}"}}}}
        duration: 10s
"#
        ),
    );
    let o = fleet.ctl(&[
        "run",
        "--dry-run",
        ok.to_str().unwrap(),
        "--report-dir",
        reports.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("would hit pids {}", victim.pid())),
        "{out}"
    );
    assert!(
        out.contains("3 checks, 0 failed; nothing was changed"),
        "{out}"
    );
    // Two refusals by the agents' limits: too much CPU, too long a pause.
    let bad = fleet.write(
        "bad.yaml",
        &format!(
            r#"
name: e2e-dry-bad
max_duration: 1m
steps:
  - inject: {{cpu: {{percent: 95}}}}
    duration: 10s
  - inject: {{pause: {{cmdline: "^{tag}"}}}}
    duration: 1h
"#
        ),
    );
    let o = fleet.ctl(&["run", "--dry-run", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("cpu.max_percent"), "{out}");
    assert!(out.contains("max_duration"), "{out}");
    // A malformed scenario (two kinds in one step) is refused before anything is touched.
    let malformed = fleet.write(
        "malformed.yaml",
        &format!(
            r#"
name: e2e-malformed
max_duration: 1m
steps:
  - inject: {{cpu: {{percent: 5}}, pause: {{cmdline: "^{tag}"}}}}
    duration: 10s
"#
        ),
    );
    let o = fleet.ctl(&["run", malformed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // Nothing happened anywhere.
    assert_eq!(proc_state(victim.pid()).map(|s| s != 'T'), Some(true));
    for i in 0..2 {
        assert!(fleet.all_faults(i).is_empty(), "agent {i} has faults");
    }
    assert!(!reports.exists());
}

#[test]
fn ctrl_c_aborts_every_fault_and_still_writes_the_report() {
    let fleet = Fleet::start(2);
    let tags: Vec<String> = (0..2).map(|_| unique_name("flv")).collect();
    let victims: Vec<Victim> = tags.iter().map(|t| Victim::sleep(t)).collect();
    let scenario = fleet.write(
        "int.yaml",
        &format!(
            r#"
name: e2e-sigint
max_duration: 2m
lease_ttl: 30s
baseline: 100ms
steps:
  - parallel:
      - select: name=node-1
        inject: {{pause: {{cmdline: "^{t0}"}}}}
        duration: 90s
      - select: name=node-2
        inject: {{pause: {{cmdline: "^{t1}"}}}}
        duration: 90s
"#,
            t0 = tags[0],
            t1 = tags[1],
        ),
    );
    let reports = fleet.path("reports");
    let child = faultline_tests::agent::KillOnDrop::new(
        fleet
            .command(&[
                "run",
                scenario.to_str().unwrap(),
                "--report-dir",
                reports.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(
        eventually(Duration::from_secs(15), || stopped(&victims[0])
            && stopped(&victims[1])),
        "the pauses never took effect"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let o = child.into_inner().wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // Reverted by faultctl itself, long before the 30s lease TTL could.
    assert!(
        !stopped(&victims[0]) && !stopped(&victims[1]),
        "{}",
        text(&o)
    );
    let (_, r) = report_in(&reports);
    assert_eq!(r["outcome"], "aborted");
    assert_eq!(r["abort_reason"], "interrupted (Ctrl-C)");
    for i in 0..2 {
        assert!(fleet.active(i).is_empty());
        let f = &fleet.all_faults(i)[0];
        assert!(
            f["end_reason"].as_str().unwrap()
                == "scenario e2e-sigint aborted: interrupted (Ctrl-C)",
            "{f:#}"
        );
    }
}
