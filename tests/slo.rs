//! SLO abort conditions and the HTML report, end to end: a real `faultd`, the real
//! `faultctl run`, and an HTTP service on 127.0.0.1 whose error rate or latency the test
//! raises in the middle of a fault step. The report's HTML page is opened in Debian's
//! headless Chromium with no network at all.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use faultline_tests::agent::{Victim, eventually, proc_state};
use faultline_tests::chromium;
use faultline_tests::fleet::{Fleet, Run, now_ms, report_in, text};
use faultline_tests::service::{Reply, Service};
use faultline_tests::{bin, require, unique_name};

/// Waits until agent 0 has an active fault (the step is in progress).
fn wait_for_fault(fleet: &Fleet, run: &mut Run) {
    assert!(
        eventually(Duration::from_secs(30), || !run.running()
            || !fleet.active(0).is_empty()),
        "no fault became active"
    );
    assert!(
        run.running(),
        "the run ended before its fault was active:\n{}",
        run.stderr()
    );
}

/// A drill whose service gets worse in the middle of its one fault step: it must abort
/// within one window of the change, with `reason` in the abort, revert everything and
/// write the report. Returns the report and when the service was made worse.
fn abort_mid_step(
    url: &str,
    probe_abort: &str,
    interval: &str,
    worsen: impl FnOnce(),
    reason: &str,
) -> (serde_json::Value, u64, PathBuf) {
    let fleet = Fleet::start(1);
    let tag = unique_name("slo");
    let victim = Victim::sleep(&tag);
    let scenario = fleet.write(
        "slo.yaml",
        &format!(
            r#"
name: slo-abort
max_duration: 2m
lease_ttl: 5s
baseline: 1s
probes:
  - name: api
    http: {{url: "{url}"}}
    interval: {interval}
    abort: {probe_abort}
recovery: {{timeout: 5s}}
steps:
  - name: pause the worker
    inject: {{pause: {{cmdline: "^{tag}"}}}}
    duration: 60s
  - wait: 30s
"#,
        ),
    );
    let reports = fleet.path("reports");
    let mut run = Run::start(&fleet, &scenario, &reports, &[]);
    wait_for_fault(&fleet, &mut run);
    assert!(
        eventually(Duration::from_secs(2), || proc_state(victim.pid())
            == Some('T')),
        "the victim is not paused"
    );
    // Mid-step: the fault has been on for a while, the SLO holds.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        run.running(),
        "the run aborted before the service got worse"
    );
    let worse_at = now_ms();
    worsen();
    let o = run.finish(Duration::from_secs(60));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("was aborted: {reason}")),
        "{t}"
    );
    // Everything reverted.
    assert!(fleet.active(0).is_empty(), "faults left: {t}");
    let f = &fleet.all_faults(0)[0];
    assert_eq!(f["state"], "reverted", "{f:#}");
    assert!(
        eventually(Duration::from_secs(2), || proc_state(victim.pid())
            != Some('T')),
        "the victim is still stopped"
    );
    // The report, in all three formats.
    let (json, r) = report_in(&reports);
    for ext in ["md", "html"] {
        assert!(json.with_extension(ext).is_file(), "no .{ext} report");
    }
    assert_eq!(r["outcome"], "aborted", "{r:#}");
    let aborted_at = r["aborted_at_ms"].as_u64().unwrap();
    let window = r["abort_condition"]["window_ms"].as_u64().unwrap();
    let took = aborted_at.saturating_sub(worse_at);
    eprintln!(
        "aborted {took} ms after the change (window {window} ms): {}",
        r["abort_reason"]
    );
    assert!(aborted_at > worse_at, "aborted before the change: {r:#}");
    assert!(
        took <= window,
        "aborted {took} ms after the change, more than one window ({window} ms)"
    );
    // Before the change every sample held the SLO.
    let samples = r["probes"][0]["samples"].as_array().unwrap();
    assert!(samples.len() > 20, "{} samples", samples.len());
    let md = std::fs::read_to_string(json.with_extension("md")).unwrap();
    assert!(md.contains(&format!("- abort condition: {reason}")), "{md}");
    // The step was cut short by the abort; its window ends with the run's faults.
    let step = &r["steps"][0];
    assert_eq!(step["recovery"], "not measured", "{step:#}");
    assert!(r["faults_ended_at_ms"].as_u64().unwrap() >= aborted_at);
    drop(victim);
    (r, worse_at, json)
}

#[test]
fn error_rate_raised_to_2_percent_mid_step_aborts_within_one_window() {
    // Every 50th request fails once `raised`: 2 %.
    let raised = Arc::new(AtomicBool::new(false));
    let n = Arc::new(AtomicU64::new(0));
    let (r2, n2) = (raised.clone(), n.clone());
    let svc = Service::start(move || {
        if r2.load(Ordering::SeqCst) && n2.fetch_add(1, Ordering::SeqCst) % 50 == 0 {
            500
        } else {
            200
        }
    });
    let (r, worse_at, _) = abort_mid_step(
        &svc.url(),
        "{error_rate: 1%, window: 5s, min_samples: 50}",
        "20ms",
        || raised.store(true, Ordering::SeqCst),
        "api: error rate ",
    );
    let c = &r["abort_condition"];
    assert_eq!(c["condition"], "error_rate", "{c:#}");
    assert_eq!(c["probe"], "api");
    assert_eq!(c["limit"], 1.0);
    assert!(c["value"].as_f64().unwrap() > 1.0, "{c:#}");
    let reason = r["abort_reason"].as_str().unwrap();
    assert!(reason.ends_with(" % over 5 s > 1 %"), "{reason}");
    // A sample is stamped when it starts: one still in flight at the change may see it.
    for s in r["probes"][0]["samples"].as_array().unwrap() {
        let ended = s["at_ms"].as_u64().unwrap() + s["latency_us"].as_u64().unwrap() / 1000 + 1;
        if ended < worse_at {
            assert_eq!(s["ok"], true, "a failure before the change: {s}");
        }
    }
    assert!(n.load(Ordering::SeqCst) > 50);
}

#[test]
fn p99_breach_mid_step_aborts_within_one_window() {
    // Once `slow`, every answer takes 1 s more. The limit, 400 ms, leaves room for an
    // emulated guest's own hiccups before the change (a 100 ms limit aborted a TCG
    // guest's run during its baseline).
    let slow = Arc::new(AtomicBool::new(false));
    let s2 = slow.clone();
    let svc = Service::start(move || Reply {
        status: 200,
        delay: if s2.load(Ordering::SeqCst) {
            Duration::from_millis(1000)
        } else {
            Duration::ZERO
        },
    });
    let (r, worse_at, _) = abort_mid_step(
        &svc.url(),
        "{p99: 400ms, window: 5s, min_samples: 20}",
        "50ms",
        || slow.store(true, Ordering::SeqCst),
        "api: p99 ",
    );
    let c = &r["abort_condition"];
    assert_eq!(c["condition"], "p99", "{c:#}");
    assert_eq!(c["limit"], 400.0);
    assert!(c["value"].as_f64().unwrap() >= 1000.0, "{c:#}");
    let reason = r["abort_reason"].as_str().unwrap();
    assert!(reason.ends_with(" ms over 5 s > 400 ms"), "{reason}");
    // No sample failed: latency alone aborted the run. A sample that ended before the
    // change was fast (one started just before it may be answered after it: an emulated
    // guest can take hundreds of ms to hand the request to the service).
    for s in r["probes"][0]["samples"].as_array().unwrap() {
        assert_eq!(s["ok"], true, "{s}");
        let latency = s["latency_us"].as_u64().unwrap();
        if s["at_ms"].as_u64().unwrap() + latency / 1000 + 1 < worse_at {
            assert!(latency < 400_000, "{s}");
        }
    }
}

/// Bad SLO and probe input is refused when the scenario is read, by a run and by a dry
/// run alike, naming the probe, the key and the limit; nothing is written.
#[test]
fn bad_slo_input_is_refused_when_the_scenario_is_read() {
    let dir = tempfile::Builder::new()
        .prefix("faultline-slo-bad-")
        .tempdir()
        .unwrap();
    std::fs::write(
        dir.path().join("fleet.toml"),
        "[[agents]]\nname = \"gone\"\naddress = \"unix:///nonexistent/faultd.sock\"\n",
    )
    .unwrap();
    let cases = [
        (
            "http: {url: 'http://127.0.0.1:1/'}\n    abort: {error_rate: 150%}",
            "probe \"p\": abort.error_rate: \"150%\" is not in 0..=100%",
        ),
        (
            "http: {url: 'http://127.0.0.1:1/'}\n    abort: {error_rate: -0.5}",
            "probe \"p\": abort.error_rate: \"-0.5\" is not in 0..=100%",
        ),
        (
            "http: {url: 'http://127.0.0.1:1/'}\n    interval: 1s\n    abort: {p99: 150ms, window: 1500ms}",
            "probe \"p\": abort.window 1s 500ms is shorter than two probe intervals (2 × 1s = 2s)",
        ),
        (
            "prometheus: {url: 'http://127.0.0.1:1', query: 'up'}",
            "probe \"p\": prometheus: give max, min or both",
        ),
        (
            "prometheus: {url: 'http://127.0.0.1:1', query: 'up', max: 1}\n    abort: {p99: 1s}",
            "probe \"p\": abort.p99: a prometheus probe checks a value, not a latency",
        ),
    ];
    for (i, (probe, want)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.yaml"));
        std::fs::write(
            &file,
            format!(
                "name: bad\ninventory: fleet.toml\nmax_duration: 1m\nprobes:\n  - name: p\n    {probe}\n\
                 steps:\n  - inject: {{kill: {{name: worker}}}}\n"
            ),
        )
        .unwrap();
        let reports = dir.path().join(format!("reports{i}"));
        for dry in [false, true] {
            let mut args = vec![
                "run",
                file.to_str().unwrap(),
                "--report-dir",
                reports.to_str().unwrap(),
            ];
            if dry {
                args.push("--dry-run");
            }
            let o = std::process::Command::new(bin("faultctl"))
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let t = text(&o);
            assert_eq!(o.status.code(), Some(2), "case {i} dry={dry}: {t}");
            let e = String::from_utf8_lossy(&o.stderr);
            assert!(e.contains("invalid scenario"), "case {i}: {t}");
            assert!(e.contains(want), "case {i}: want {want:?} in {t}");
            assert!(!reports.exists(), "case {i}: a report was written");
        }
    }
}

/// The share of pixels of `rgba` within `tol` of `color`.
fn share(rgba: &[u8], color: [u8; 3], tol: u8) -> f64 {
    let n = rgba.len() / 4;
    let hits = rgba
        .chunks(4)
        .filter(|p| (0..3).all(|i| p[i].abs_diff(color[i]) <= tol))
        .count();
    hits as f64 / n as f64
}

/// A completed drill of two fault steps with two probes; its signed HTML report opened
/// in headless Chromium inside an empty network namespace: the screenshot is not blank
/// and shows the shaded windows and the line, and the DOM after load has one shaded
/// window per fault in each chart and one line per probe.
#[test]
fn html_report_renders_offline_in_headless_chromium() {
    require!("chromium", "root");
    let fleet = Fleet::start(1);
    let tag = unique_name("slh");
    let victim = Victim::sleep(&tag);
    let pid = victim.pid();
    // The service is slower while its worker is paused.
    let svc = Service::start(move || Reply {
        status: 200,
        delay: if proc_state(pid) == Some('T') {
            Duration::from_millis(25)
        } else {
            Duration::from_millis(2)
        },
    });
    let scenario = fleet.write(
        "html.yaml",
        &format!(
            r#"
name: html-report
description: Two pauses of the worker, watched by two probes.
max_duration: 1m
lease_ttl: 5s
baseline: 1s
probes:
  - name: api
    http: {{url: "{url}", max_latency: 500ms}}
    interval: 50ms
    abort: {{error_rate: 50%, p99: 1s, window: 2s}}
  - name: port
    tcp: {{address: "{addr}"}}
    interval: 100ms
recovery: {{timeout: 5s}}
steps:
  - name: pause one
    inject: {{pause: {{cmdline: "^{tag}"}}}}
    duration: 1500ms
  - wait: 1s
  - name: pause two
    inject: {{pause: {{cmdline: "^{tag}"}}}}
    duration: 1500ms
"#,
            url = svc.url(),
            addr = svc.addr,
        ),
    );
    let key = fleet.path("drill.key");
    let o = fleet.ctl(&["keygen", key.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let reports = fleet.path("reports");
    let run = Run::start(
        &fleet,
        &scenario,
        &reports,
        &["--sign-key", key.to_str().unwrap()],
    );
    let o = run.finish(Duration::from_secs(60));
    assert!(o.status.success(), "{}", text(&o));
    let (json, r) = report_in(&reports);
    assert_eq!(r["outcome"], "completed", "{r:#}");
    let html = json.with_extension("html");
    // Signed like the others.
    let v = fleet.ctl(&[
        "report",
        "verify",
        html.to_str().unwrap(),
        "--public-key",
        &format!("{}.pub", key.display()),
    ]);
    assert!(v.status.success(), "{}", text(&v));
    // Self-contained: nothing to fetch.
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.contains("<script"), "a script in the page");
    assert!(
        !page.contains(" src=") && !page.contains(" href="),
        "a reference"
    );
    assert!(
        !page.contains("url(") && !page.contains("@import"),
        "CSS fetches"
    );

    // Offline: an empty network namespace.
    let png = fleet.path("report.png");
    let o = chromium::screenshot(&html, &png, 1100, 1600, true);
    assert!(o.status.success() && png.is_file(), "{}", text(&o));
    let (w, h, rgba) = chromium::read_png(&png);
    assert_eq!((w, h), (1100, 1600));
    let white = share(&rgba, [255, 255, 255], 3);
    eprintln!("screenshot {w}x{h}: {:.1} % white", white * 100.0);
    assert!(
        white < 0.97,
        "the page is blank ({:.1} % white)",
        white * 100.0
    );
    // The shaded fault windows (amber at 22 % over the plot) and the blue line.
    let shade = share(&rgba, [250, 231, 200], 10);
    let line = share(&rgba, [37, 99, 235], 40);
    eprintln!("shaded {:.2} %, line {:.3} %", shade * 100.0, line * 100.0);
    assert!(shade > 0.005, "no shaded fault window in the screenshot");
    assert!(line > 0.0005, "no probe line in the screenshot");

    let (dom, o) = chromium::dump_dom(&html, true);
    assert!(o.status.success(), "{}", text(&o));
    let charts: Vec<&str> = dom.split("<svg ").skip(1).collect();
    assert_eq!(charts.len(), 2, "one chart per probe:\n{dom}");
    for c in &charts {
        let c = &c[..c.find("</svg>").unwrap()];
        assert_eq!(
            c.matches("class=\"fault-window\"").count(),
            2,
            "one shaded window per fault:\n{c}"
        );
        assert_eq!(c.matches("<polyline ").count(), 1, "one line per chart");
        assert_eq!(c.matches("class=\"abort-line\"").count(), 0);
    }
    assert_eq!(
        dom.matches("class=\"series\"").count(),
        2,
        "one line per probe"
    );
    assert!(dom.contains("<title>Game day report: html-report"), "{dom}");
    assert!(dom.contains("pause one") && dom.contains("pause two"));
    drop(victim);
}
