//! The report as one self-contained HTML page: the summary on top (outcome, what
//! aborted the run), a chart per probe ([`super::chart`]: latency or value over time,
//! fault windows shaded, failed samples marked, the abort moment drawn), the step table
//! with recovery times, each step's nodes and probe windows, the cleanup and the
//! timeline. Inline CSS and SVG only: no script, no font, no image or style from
//! anywhere else, and a Content-Security-Policy that forbids loading any, so the file
//! reads the same offline, attached to a ticket, years later.

use std::fmt::Write;

use super::chart::{self, Frame, Window};
use super::{Recovery, Report, StepReport};
use crate::probe::Stats;
use crate::probe::slo::number;
use crate::render::absolute;

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut o = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto;
  max-width: 1000px; padding: 0 16px; color: #1f2937; background: #fff; }
h1 { font-size: 22px; margin: 0 0 6px; } h2 { font-size: 18px; margin: 28px 0 8px;
  border-bottom: 1px solid #e5e7eb; padding-bottom: 4px; } h3 { font-size: 15px; margin: 18px 0 6px; }
.summary { border: 1px solid #e5e7eb; border-radius: 8px; padding: 14px 18px; background: #f9fafb; }
.outcome { display: inline-block; font-weight: 600; padding: 3px 10px; border-radius: 12px; margin: 4px 0 8px; }
.outcome.completed { background: #dcfce7; color: #166534; }
.outcome.failures { background: #fef3c7; color: #92400e; }
.outcome.aborted { background: #fee2e2; color: #991b1b; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0 0; }
dl.facts dt { color: #6b7280; } dl.facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e5e7eb; vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #b91c1c; font-weight: 600; } .good { color: #15803d; }
figure.probe { margin: 10px 0 22px; } figcaption { margin-bottom: 4px; } figcaption .checks { color: #6b7280; }
svg.chart { max-width: 100%; height: auto; font: 11px system-ui, sans-serif; }
svg .plot { fill: #fcfcfd; stroke: #d1d5db; } svg .grid { stroke: #eef0f3; } svg .xtick { stroke: #9ca3af; }
svg .tick { fill: #6b7280; } svg .axis-title { fill: #6b7280; }
svg .fault-window { fill: #f59e0b; fill-opacity: 0.22; stroke: #d97706; stroke-opacity: 0.6; }
svg .fault-label { fill: #92400e; font-weight: 600; }
svg .series { fill: none; stroke: #2563eb; stroke-width: 1.4; stroke-linejoin: round; }
svg .failed-sample { fill: #dc2626; stroke: #fff; stroke-width: 0.8; }
svg .limit { stroke: #7c3aed; stroke-dasharray: 6 4; } svg .limit-label { fill: #7c3aed; }
svg .abort-line { stroke: #b91c1c; stroke-width: 2; stroke-dasharray: 4 3; } svg .abort-label { fill: #b91c1c; font-weight: 700; }
.legend span { margin-right: 14px; white-space: nowrap; } .legend i { display: inline-block; width: 14px;
  height: 10px; margin-right: 4px; vertical-align: middle; }
details summary { cursor: pointer; } ol.timeline { font-family: ui-monospace, monospace; font-size: 12px; }
footer { margin-top: 30px; color: #6b7280; font-size: 12px; }
"#;

impl Report {
    /// The report as a self-contained HTML page.
    pub fn html(&self) -> String {
        let mut h = String::new();
        let title = format!("Game day report: {}", self.scenario);
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"generator\" content=\"faultctl {}\">\n<title>{} ({})</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
            env!("CARGO_PKG_VERSION"),
            esc(&title),
            esc(&self.run_id)
        );
        self.summary_html(&mut h, &title);
        self.probes_html(&mut h);
        self.steps_html(&mut h);
        self.cleanup_html(&mut h);
        self.timeline_html(&mut h);
        let _ = write!(
            h,
            "<footer>{} · run {} · written by faultctl {}. With <code>--sign-key</code> this \
             file has a detached signature beside it: <code>faultctl report verify {}-{}.html \
             --public-key KEY.pub</code>.</footer>\n</body>\n</html>\n",
            esc(&self.format),
            esc(&self.run_id),
            env!("CARGO_PKG_VERSION"),
            esc(&self.scenario),
            esc(&self.run_id)
        );
        h
    }

    fn summary_html(&self, h: &mut String, title: &str) {
        let class = match self.outcome.as_str() {
            "completed" => "completed",
            "aborted" => "aborted",
            _ => "failures",
        };
        let _ = write!(
            h,
            "<header class=\"summary\">\n<h1>{}</h1>\n<div class=\"outcome {class}\">{}{}</div>\n",
            esc(title),
            esc(&self.outcome),
            self.abort_reason
                .as_ref()
                .or(self.skip_reason.as_ref())
                .map(|r| format!(": {}", esc(r)))
                .unwrap_or_default()
        );
        if !self.description.is_empty() {
            let _ = writeln!(h, "<p>{}</p>", esc(self.description.trim()));
        }
        let faults = self
            .steps
            .iter()
            .filter(|s| self.fault_window(s).is_some())
            .count();
        let recovered: Vec<u64> = self.steps.iter().filter_map(|s| s.recovery_ms).collect();
        let mut facts: Vec<(&str, String)> = vec![
            ("run", format!("{} (seed {})", self.run_id, self.seed)),
            ("inventory", self.inventory.clone()),
            ("started", absolute(self.started_at_ms)),
            (
                "ended",
                format!(
                    "{} ({} s)",
                    absolute(self.ended_at_ms),
                    number(self.ended_at_ms.saturating_sub(self.started_at_ms) as f64 / 1000.0)
                ),
            ),
            (
                "steps",
                format!(
                    "{} ({} with a fault applied, {} failed on some node)",
                    self.steps.len(),
                    faults,
                    self.steps.iter().filter(|s| !s.ok()).count()
                ),
            ),
        ];
        if let Some(worst) = recovered.iter().max() {
            facts.push(("slowest recovery", format!("{worst} ms")));
        }
        if let Some(b) = &self.abort_condition {
            facts.push((
                "abort condition",
                format!("{b} ({} samples in the window)", b.samples),
            ));
        }
        if let Some(at) = self.aborted_at_ms {
            facts.push((
                "aborted at",
                format!(
                    "+{} s",
                    number(at.saturating_sub(self.started_at_ms) as f64 / 1000.0)
                ),
            ));
        }
        if let Some(r) = self.abort_recovery_ms {
            facts.push(("recovery after the abort", format!("{r} ms")));
        }
        if let Some(s) = &self.signed_by {
            facts.push((
                "signed by",
                format!("{} ({} {})", s.identity, s.key_type, s.fingerprint),
            ));
        }
        let clean = self.cleanup.iter().all(|c| c.clean);
        facts.push((
            "left behind",
            if clean {
                "nothing: every node is clean".into()
            } else {
                "SOME NODE IS NOT CLEAN: see Cleanup".into()
            },
        ));
        h.push_str("<dl class=\"facts\">\n");
        for (k, v) in facts {
            let _ = writeln!(h, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
        }
        h.push_str("</dl>\n</header>\n");
    }

    fn probes_html(&self, h: &mut String) {
        h.push_str("<section id=\"probes\">\n<h2>Probes</h2>\n");
        h.push_str(
            "<p class=\"legend\"><span><i style=\"background:#2563eb\"></i>latency (a prometheus \
             probe: its value)</span><span><i style=\"background:#f59e0b;opacity:.5\"></i>fault \
             in effect</span><span><i style=\"background:#dc2626;border-radius:50%\"></i>failed \
             sample</span><span><i style=\"background:#7c3aed\"></i>SLO or bound</span><span>\
             <i style=\"background:#b91c1c\"></i>abort</span></p>\n",
        );
        let windows: Vec<Window> = self
            .steps
            .iter()
            .filter_map(|s| {
                self.fault_window(s).map(|(from_ms, to_ms)| Window {
                    from_ms,
                    to_ms,
                    label: format!("{} {}", s.index, s.name),
                })
            })
            .collect();
        let frame = Frame {
            t0: self.started_at_ms,
            t1: self.ended_at_ms,
            windows: &windows,
            abort: self
                .aborted_at_ms
                .map(|at| (at, self.abort_reason.as_deref().unwrap_or(""))),
        };
        if self.probes.is_empty() {
            h.push_str("<p>This scenario has no probes.</p>\n");
        }
        for p in &self.probes {
            let o = &p.overall;
            let _ = write!(
                h,
                "<figure class=\"probe\" id=\"probe-{}\">\n<figcaption><strong>{}</strong> \
                 <span class=\"checks\">{}</span><br>{} samples, {} failed ({} %), p50 {}, p99 {}{}</figcaption>\n",
                esc(&p.name),
                esc(&p.name),
                esc(&p.checks),
                o.samples,
                o.errors,
                number(o.error_rate * 100.0),
                ms(o.p50_ms),
                ms(o.p99_ms),
                p.slo
                    .as_ref()
                    .map(|s| format!("; aborts on {}", esc(&s.text)))
                    .unwrap_or_default()
            );
            h.push_str(&chart::svg(p, &frame));
            h.push_str("\n</figure>\n");
        }
        h.push_str("</section>\n");
    }

    fn steps_html(&self, h: &mut String) {
        h.push_str(
            "<section id=\"steps\">\n<h2>Steps</h2>\n<table class=\"steps\">\n<thead><tr><th>#</th>\
             <th>step</th><th>fault</th><th>nodes ok</th><th>injected</th><th>ended</th>\
             <th>recovery</th></tr></thead>\n<tbody>\n",
        );
        let rel = |t: Option<u64>| {
            t.map_or("-".into(), |t| {
                format!(
                    "+{} s",
                    number(t.saturating_sub(self.started_at_ms) as f64 / 1000.0)
                )
            })
        };
        for s in &self.steps {
            let ok = s.nodes.iter().filter(|n| n.ok).count();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num{}\">{ok} of {}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(&s.index),
                esc(&s.name),
                esc(&s.kind),
                if s.ok() { "" } else { " bad" },
                s.nodes.len(),
                rel(s.injected_at_ms),
                rel(self.fault_window(s).map(|w| w.1)),
                recovery_html(s)
            );
        }
        h.push_str("</tbody>\n</table>\n");
        for s in &self.steps {
            let _ = write!(
                h,
                "<h3>{} {}</h3>\n<p>{}<br>{}</p>\n",
                esc(&s.index),
                esc(&s.name),
                esc(&s.kind),
                esc(&s.pick)
            );
            if let Some(e) = &s.error {
                let _ = writeln!(h, "<p class=\"bad\">error: {}</p>", esc(e));
            }
            h.push_str(
                "<table><thead><tr><th>node</th><th>result</th><th>fault</th><th>pids</th>\
                 <th>revert</th></tr></thead><tbody>\n",
            );
            for n in &s.nodes {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td{}>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&n.node),
                    if n.ok { "" } else { " class=\"bad\"" },
                    if n.ok {
                        "ok".to_string()
                    } else {
                        format!("error: {}", esc(n.error.as_deref().unwrap_or("")))
                    },
                    esc(n.fault_id.as_deref().unwrap_or("-")),
                    n.targets
                        .iter()
                        .map(i32::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    esc(n.revert.as_deref().unwrap_or("-"))
                );
            }
            h.push_str("</tbody></table>\n");
            if !s.probes.is_empty() {
                h.push_str(
                    "<table><thead><tr><th>probe</th><th>window</th><th>samples</th><th>p50 ms</th>\
                     <th>p99 ms</th><th>errors</th></tr></thead><tbody>\n",
                );
                for p in &s.probes {
                    for (w, x) in [
                        ("before", &p.before),
                        ("during", &p.during),
                        ("after", &p.after),
                    ] {
                        let _ = writeln!(
                            h,
                            "<tr><td>{}</td><td>{w}</td>{}</tr>",
                            esc(&p.probe),
                            stats_cells(x)
                        );
                    }
                }
                h.push_str("</tbody></table>\n");
            }
        }
        h.push_str("</section>\n");
    }

    fn cleanup_html(&self, h: &mut String) {
        h.push_str(
            "<section id=\"cleanup\">\n<h2>Cleanup</h2>\n<table><thead><tr><th>node</th><th>lease</th>\
             <th>reverted</th><th>clean</th><th>detail</th></tr></thead><tbody>\n",
        );
        for c in &self.cleanup {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td{}>{}</td><td>{}</td></tr>",
                esc(&c.node),
                esc(&c.lease_id),
                c.reverted,
                if c.clean {
                    " class=\"good\""
                } else {
                    " class=\"bad\""
                },
                if c.clean { "yes" } else { "NO" },
                esc(&c.detail.join("; "))
            );
        }
        h.push_str("</tbody></table>\n</section>\n");
    }

    fn timeline_html(&self, h: &mut String) {
        let _ = write!(
            h,
            "<section id=\"timeline\">\n<h2>Timeline</h2>\n<details open>\n<summary>{} events</summary>\n<ol class=\"timeline\">\n",
            self.timeline.len()
        );
        for t in &self.timeline {
            let _ = writeln!(
                h,
                "<li>+{:.3}s {}</li>",
                t.at_ms.saturating_sub(self.started_at_ms) as f64 / 1000.0,
                esc(&t.event)
            );
        }
        h.push_str("</ol>\n</details>\n</section>\n");
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{} ms", number(x)))
}

fn stats_cells(s: &Stats) -> String {
    format!(
        "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num{}\">{} %</td>",
        s.samples,
        s.p50_ms.map_or("-".into(), number),
        s.p99_ms.map_or("-".into(), number),
        if s.errors > 0 { " bad" } else { "" },
        number(s.error_rate * 100.0)
    )
}

fn recovery_html(s: &StepReport) -> String {
    match (s.recovery, s.recovery_ms) {
        (Recovery::Recovered, Some(r)) => format!("<span class=\"good\">{r} ms</span>"),
        (Recovery::NotRecovered, _) => "<span class=\"bad\">not recovered</span>".into(),
        (Recovery::NoFaultApplied, _) => "no fault applied".into(),
        _ => "not measured".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{NodeCleanup, NodeStep, ProbeReport, SloReport, TimelineEntry};
    use super::*;
    use crate::probe::Sample;
    use crate::probe::slo::{Breach, Condition};
    use faultline_proto::prometheus::Bounds;

    /// A report as an aborted run of two fault steps (and one that applied nothing),
    /// two probes: an HTTP probe with an SLO and a prometheus probe with a bound.
    pub(crate) fn aborted_report() -> Report {
        let t0 = 1_795_000_000_000u64;
        let http: Vec<Sample> = (0..200u64)
            .map(|i| Sample {
                at_ms: t0 + i * 50,
                ok: !(i == 120 || i == 150),
                latency_us: if (60..90).contains(&i) {
                    40_000
                } else {
                    3_000 + i * 10
                },
                value: None,
                error: (i == 120 || i == 150).then(|| "status 500, expected 200".into()),
            })
            .collect();
        let prom: Vec<Sample> = (0..20u64)
            .map(|i| Sample {
                at_ms: t0 + i * 500,
                ok: i != 7,
                latency_us: 2_000,
                value: (i != 7).then_some(i as f64 * 0.25),
                error: (i == 7).then(|| "cannot reach Prometheus at http://127.0.0.1:9/".into()),
            })
            .collect();
        let node = |ok: bool| NodeStep {
            node: "node-1".into(),
            ok,
            fault_id: ok.then(|| "f-1-1".into()),
            state: "active".into(),
            error: (!ok).then(|| "refused".into()),
            ..Default::default()
        };
        let step = |index: &str, name: &str, from: u64, to: Option<u64>, ok: bool| StepReport {
            index: index.into(),
            name: name.into(),
            kind: "pause SIGSTOP".into(),
            started_at_ms: t0 + from,
            injected_at_ms: Some(t0 + from),
            reverted_at_ms: to.map(|t| t0 + t),
            recovery_ms: to.map(|_| 350),
            recovery: if to.is_some() {
                Recovery::Recovered
            } else {
                Recovery::NotMeasured
            },
            nodes: vec![node(ok)],
            ..Default::default()
        };
        let breach = Breach {
            probe: "api".into(),
            condition: Condition::ErrorRate,
            value: 2.0,
            limit: 1.0,
            window_ms: 5000,
            samples: 100,
            at_ms: t0 + 7500,
        };
        Report {
            format: "faultline-report/1".into(),
            scenario: "slo <drill>".into(),
            description: "An error budget burnt on purpose.".into(),
            run_id: "r0000abcd".into(),
            seed: 7,
            inventory: "fleet.toml".into(),
            started_at_ms: t0,
            ended_at_ms: t0 + 10_000,
            outcome: "aborted".into(),
            abort_reason: Some(breach.to_string()),
            abort_recovery_ms: Some(120),
            aborted_at_ms: Some(t0 + 7500),
            abort_condition: Some(breach),
            faults_ended_at_ms: Some(t0 + 7600),
            probes: vec![
                ProbeReport {
                    name: "api".into(),
                    checks: "GET http://127.0.0.1:1/health expects 200".into(),
                    overall: crate::probe::stats(&http, 0, u64::MAX),
                    kind: "http".into(),
                    bounds: None,
                    slo: Some(SloReport {
                        error_rate_percent: Some(1.0),
                        p99_ms: Some(150.0),
                        window_ms: 5000,
                        min_samples: 50,
                        text: "error rate > 1 % or p99 > 150ms over 5s (at least 50 samples)"
                            .into(),
                    }),
                    samples: http,
                },
                ProbeReport {
                    name: "queue".into(),
                    checks: "Prometheus http://127.0.0.1:9/ query q <= 4".into(),
                    overall: crate::probe::stats(&prom, 0, u64::MAX),
                    kind: "prometheus".into(),
                    bounds: Some(Bounds::new(None, Some(4.0)).unwrap()),
                    slo: None,
                    samples: prom,
                },
            ],
            steps: vec![
                step(
                    "1",
                    "pause <script>alert(1)</script>",
                    2000,
                    Some(4000),
                    true,
                ),
                step("2", "refused everywhere", 4500, None, false),
                step("3", "pause again", 6000, None, true),
            ],
            cleanup: vec![NodeCleanup {
                node: "node-1".into(),
                lease_id: "l-1".into(),
                reverted: 1,
                clean: true,
                detail: vec![],
            }],
            timeline: vec![TimelineEntry {
                at_ms: t0 + 7500,
                event: "ABORT: api: error rate 2 % over 5 s > 1 %".into(),
            }],
            signed_by: None,
            skip_reason: None,
        }
    }

    fn count(h: &str, needle: &str) -> usize {
        h.matches(needle).count()
    }

    #[test]
    fn one_shaded_window_per_fault_one_line_per_probe_the_abort_drawn() {
        let r = aborted_report();
        let h = r.html();
        if let Ok(dir) = std::env::var("FAULTLINE_HTML_SAMPLE_DIR") {
            std::fs::write(std::path::Path::new(&dir).join("sample.html"), &h).unwrap();
        }
        assert_eq!(count(&h, "<svg "), 2);
        // Steps 1 and 3 applied a fault; step 2 applied nothing: 2 windows per chart.
        assert_eq!(count(&h, r#"<rect class="fault-window""#), 4);
        assert_eq!(count(&h, r#"<polyline class="series""#), 2);
        assert_eq!(count(&h, r#"<line class="abort-line""#), 2);
        // Two failed HTTP samples, one failed query.
        assert_eq!(count(&h, r#"<circle class="failed-sample""#), 3);
        // The p99 limit and the prometheus max.
        assert_eq!(count(&h, r#"<line class="limit""#), 2);
        assert!(h.contains("aborted: api: error rate 2 % over 5 s &gt; 1 %"));
        assert!(h.contains("pause &lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(
            !h.contains("<script"),
            "no script, not even an escaped-wrong one"
        );
        // Nothing is loaded from anywhere: the only URLs are the SVG namespace and the
        // probes' own text.
        if let Some((i, _)) = h
            .match_indices("src=")
            .chain(h.match_indices("href="))
            .next()
        {
            panic!("a reference at {i}: {}", &h[i..i + 40]);
        }
        assert!(!h.contains("url("), "no CSS url()");
        assert!(!h.contains("@import"));
        assert!(h.contains("default-src 'none'"));
        // The step table: recovery times.
        assert!(h.contains("<span class=\"good\">350 ms</span>"));
        assert!(h.contains("<td>no fault applied</td>") || h.contains("not measured"));
    }
}
