//! Prometheus probes against a real Prometheus server (Debian's `prometheus`, started by
//! the test on its own loopback port and directory) that scrapes faultd's own `/metrics`
//! and a small exporter whose value the test sets.

use std::time::Duration;

use faultline_tests::agent::{Victim, eventually};
use faultline_tests::fleet::{Fleet, Run, now_ms, report_in, text};
use faultline_tests::pki::free_port;
use faultline_tests::prom_server::PromServer;
use faultline_tests::service::Exporter;
use faultline_tests::{require, unique_name};

/// One agent with metrics on a free port, an exporter of `gauge` at `value`, and a
/// Prometheus scraping both every 250 ms, waited for until it has scraped both.
fn setup(gauge: &str, value: f64) -> (Fleet, Exporter, PromServer) {
    let mport = free_port();
    let fleet = Fleet::start_one(&format!("metrics_listen = \"127.0.0.1:{mport}\"\n"));
    let exporter = Exporter::start(gauge, value);
    let prom = PromServer::start(
        &[
            ("faultd", format!("127.0.0.1:{mport}")),
            ("exporter", exporter.target()),
        ],
        "250ms",
    );
    prom.wait_for("up{job=\"faultd\"}", 1.0, Duration::from_secs(20));
    prom.wait_for(gauge, value, Duration::from_secs(20));
    (fleet, exporter, prom)
}

/// The probe trips when the exporter's value goes over `max` (at `max` it holds), and
/// not before; a second probe over faultd's own metrics sees the fault come and go.
#[test]
fn prometheus_probe_trips_when_the_value_crosses_max_and_not_before() {
    require!("prometheus");
    let gauge = format!("slo_{}_queue_depth", unique_name("q"));
    let (fleet, exporter, prom) = setup(&gauge, 3.0);
    let tag = unique_name("prq");
    let victim = Victim::sleep(&tag);
    let scenario = fleet.write(
        "prom.yaml",
        &format!(
            r#"
name: prom-max
max_duration: 2m
lease_ttl: 5s
baseline: 1s
probes:
  - name: queue
    prometheus: {{url: "{url}", query: "{gauge}", max: 5}}
    interval: 200ms
  - name: faults
    prometheus: {{url: "{url}", query: "sum(faultline_active_faults)", max: 10}}
    interval: 200ms
abort: {{probe_failures: 3, probes: [queue]}}
recovery: {{timeout: 5s}}
steps:
  - name: pause the worker
    inject: {{pause: {{cmdline: "^{tag}"}}}}
    duration: 60s
"#,
            url = prom.url(),
        ),
    );
    let reports = fleet.path("reports");
    let mut run = Run::start(&fleet, &scenario, &reports, &[]);
    assert!(
        eventually(Duration::from_secs(30), || !fleet.active(0).is_empty()),
        "no fault became active"
    );
    // faultd's own metrics, through Prometheus: the fault is active.
    prom.wait_for("sum(faultline_active_faults)", 1.0, Duration::from_secs(20));
    // At max the value is in bounds: no abort.
    exporter.set(5.0);
    prom.wait_for(&gauge, 5.0, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(run.running(), "aborted at the bound itself");
    // Over max.
    let crossed_at = now_ms();
    exporter.set(5.5);
    let o = run.finish(Duration::from_secs(60));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("was aborted: probe queue failed 3 times in a row"),
        "{t}"
    );
    assert!(fleet.active(0).is_empty(), "faults left: {t}");
    assert_eq!(fleet.all_faults(0)[0]["state"], "reverted");
    let (_, r) = report_in(&reports);
    let queue = &r["probes"][0];
    assert_eq!(queue["kind"], "prometheus");
    assert_eq!(queue["bounds"]["max"], 5.0);
    let samples = queue["samples"].as_array().unwrap();
    let mut failed = 0;
    for s in samples {
        let at = s["at_ms"].as_u64().unwrap();
        if s["ok"] == false {
            assert!(at >= crossed_at, "failed before the crossing: {s}");
            assert_eq!(s["value"], 5.5, "{s}");
            assert_eq!(s["error"], "value 5.5 > max 5", "{s}");
            failed += 1;
        } else {
            assert!(s["value"].as_f64().unwrap() <= 5.0, "{s}");
        }
    }
    // Three in a row aborted the run; more fail while it waits for recovery.
    assert!(failed >= 3, "{samples:#?}");
    assert!(samples.iter().any(|s| s["value"] == 5.0 && s["ok"] == true));
    assert!(samples.iter().any(|s| s["value"] == 3.0));
    // The other probe saw faultd's gauge go from 0 to 1.
    let faults: Vec<f64> = r["probes"][1]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["value"].as_f64())
        .collect();
    assert_eq!(faults.first(), Some(&0.0), "{faults:?}");
    assert!(faults.contains(&1.0), "{faults:?}");
    drop(victim);
}

/// Prometheus killed in the middle of a run: the probe's samples fail with the reason,
/// the run goes on to its end, reverts its fault and writes its report.
#[test]
fn a_prometheus_that_is_down_gives_failed_samples_not_a_crash() {
    require!("prometheus");
    let gauge = format!("slo_{}_up", unique_name("d"));
    let (fleet, _exporter, mut prom) = setup(&gauge, 1.0);
    let tag = unique_name("prd");
    let victim = Victim::sleep(&tag);
    let scenario = fleet.write(
        "down.yaml",
        &format!(
            r#"
name: prom-down
max_duration: 1m
lease_ttl: 5s
baseline: 500ms
probes:
  - name: up
    prometheus: {{url: "{url}", query: "{gauge}", min: 1}}
    interval: 100ms
    timeout: 1s
abort: {{probe_failures: 0}}
recovery: {{timeout: 2s}}
steps:
  - name: pause the worker
    inject: {{pause: {{cmdline: "^{tag}"}}}}
    duration: 3s
  - wait: 1s
"#,
            url = prom.url(),
        ),
    );
    let reports = fleet.path("reports");
    let run = Run::start(&fleet, &scenario, &reports, &[]);
    assert!(
        eventually(Duration::from_secs(30), || !fleet.active(0).is_empty()),
        "no fault became active"
    );
    let url = prom.url();
    let killed_at = now_ms();
    prom.kill();
    let o = run.finish(Duration::from_secs(60));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(fleet.active(0).is_empty(), "{t}");
    let (_, r) = report_in(&reports);
    assert_eq!(r["outcome"], "completed", "{r:#}");
    assert_eq!(r["steps"][0]["recovery"], "not recovered");
    let samples = r["probes"][0]["samples"].as_array().unwrap();
    let after: Vec<&serde_json::Value> = samples
        .iter()
        .filter(|s| s["at_ms"].as_u64().unwrap() > killed_at + 200)
        .collect();
    assert!(after.len() > 5, "{} samples after the kill", after.len());
    for s in &after {
        assert_eq!(s["ok"], false, "{s}");
        let e = s["error"].as_str().unwrap();
        assert!(
            e.starts_with(&format!(
                "cannot reach Prometheus at {url}/: connect 127.0.0.1:"
            )),
            "{e}"
        );
    }
    assert!(
        samples
            .iter()
            .any(|s| s["at_ms"].as_u64().unwrap() < killed_at && s["ok"] == true)
    );
    drop(victim);
}

/// `--dry-run` sends each query once and reports Prometheus's own error for a query it
/// rejects (exit 3); a real run refuses the scenario before it changes anything (exit 2).
#[test]
fn a_query_prometheus_rejects_is_reported_by_dry_run_and_refused_by_run() {
    require!("prometheus");
    let gauge = format!("slo_{}_depth", unique_name("r"));
    let (fleet, _exporter, prom) = setup(&gauge, 2.0);
    let tag = unique_name("prr");
    let _victim = Victim::sleep(&tag);
    let write = |name: &str, query: &str| {
        fleet.write(
            name,
            &format!(
                r#"
name: prom-query
max_duration: 1m
baseline: 100ms
probes:
  - name: depth
    prometheus: {{url: "{url}", query: '{query}', max: 5}}
steps:
  - inject: {{pause: {{cmdline: "^{tag}"}}}}
    duration: 2s
"#,
                url = prom.url(),
            ),
        )
    };
    let good = write("good.yaml", &gauge);
    let o = fleet.ctl(&["run", "--dry-run", good.to_str().unwrap()]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("value 2"), "the dry run shows the value: {t}");
    let bad = write("bad.yaml", &format!("sum(rate({gauge}[1m])"));
    let o = fleet.ctl(&["run", "--dry-run", bad.to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(3), "{t}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Prometheus rejected the query (bad_data): invalid parameter \"query\": ")
            && out.contains("parse error"),
        "{t}"
    );
    let reports = fleet.path("reports");
    let o = fleet.ctl(&[
        "run",
        bad.to_str().unwrap(),
        "--report-dir",
        reports.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("probe \"depth\": Prometheus rejected the query (bad_data)"),
        "{t}"
    );
    assert!(!reports.exists(), "a report was written");
    assert!(fleet.all_faults(0).is_empty(), "the agent was touched");
}

/// faultd's own health guard with a Prometheus probe (`[[health.probe]] prometheus =
/// ...`): it leaves the fault alone while the exporter's value is at `max`, and aborts it
/// by itself (no faultctl involved) once the value goes over, naming the value.
#[test]
fn the_agents_health_guard_aborts_its_faults_when_a_prometheus_value_crosses_max() {
    require!("prometheus", "root");
    let gauge = format!("slo_{}_errors", unique_name("h"));
    let exporter = Exporter::start(&gauge, 1.0);
    let prom = PromServer::start(&[("exporter", exporter.target())], "250ms");
    prom.wait_for(&gauge, 1.0, Duration::from_secs(20));
    let agent = faultline_tests::agent::Agent::start_with(faultline_tests::agent::AgentOptions {
        limits: Some(format!(
            "profile = \"staging\"\n[health]\ninterval = \"200ms\"\n\
             [[health.probe]]\nprometheus = {{ url = \"{}\", query = \"{gauge}\", max = 2 }}\n\
             timeout = \"1s\"\nfailures = 2\n",
            prom.url()
        )),
        ..Default::default()
    });
    let v = Victim::sleep(&unique_name("prh"));
    agent.ctl_json(&[
        "inject",
        "pause",
        "--pid",
        &v.pid().to_string(),
        "--for",
        "5m",
    ]);
    // At max: healthy, the fault stays.
    exporter.set(2.0);
    prom.wait_for(&gauge, 2.0, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        v.state(),
        Some('T'),
        "aborted at the bound:\n{}",
        agent.log_text()
    );
    exporter.set(2.5);
    assert!(
        eventually(Duration::from_secs(10), || v.state() == Some('S')),
        "not aborted:\n{}",
        agent.log_text()
    );
    let list = agent.ctl_json(&["list", "--all"]).to_string();
    assert!(
        list.contains("health guard: probe prometheus") && list.contains("value 2.5 > max 2"),
        "{list}"
    );
}
