//! The summary as one self-contained HTML page: the dashboard of the production chaos
//! report. Inline CSS only, no script, nothing loaded from anywhere (the same
//! Content-Security-Policy as the run reports).

use std::fmt::Write;

use super::{Summary, last_text, ms, next_text, rate};
use crate::render::absolute;
use crate::scenario::report::html::esc;

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto;
  max-width: 1200px; padding: 0 16px; color: #1f2937; background: #fff; }
h1 { font-size: 22px; margin: 0 0 6px; } h2 { font-size: 18px; margin: 28px 0 8px;
  border-bottom: 1px solid #e5e7eb; padding-bottom: 4px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0 18px; }
.card { border: 1px solid #e5e7eb; border-radius: 8px; padding: 10px 14px; background: #f9fafb; min-width: 130px; }
.card .v { font-size: 22px; font-weight: 600; } .card .k { color: #6b7280; font-size: 12px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e5e7eb; vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #b91c1c; font-weight: 600; } .good { color: #15803d; } .warn { color: #92400e; }
footer { margin-top: 30px; color: #6b7280; font-size: 12px; }
"#;

impl Summary {
    /// The summary as a self-contained HTML page.
    pub fn html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"generator\" content=\"faultctl {}\">\n<title>Chaos drill record</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <h1>Chaos drill record</h1>\n<p>{} report(s) {}, generated {}.</p>\n",
            env!("CARGO_PKG_VERSION"),
            self.reports,
            esc(&self.window()),
            esc(&absolute(self.generated_at_ms)),
        );
        let sum = |f: fn(&super::ScenarioSummary) -> usize| -> usize {
            self.scenarios.iter().map(f).sum()
        };
        let tests = sum(|e| e.completed + e.failed + e.aborted);
        let completed = sum(|e| e.completed);
        let overall = (tests > 0).then(|| completed as f64 * 100.0 / tests as f64);
        h += "<div class=\"cards\">\n";
        for (k, v) in [
            ("runs", sum(|e| e.runs).to_string()),
            ("success rate", rate(overall)),
            ("aborted", sum(|e| e.aborted).to_string()),
            ("issues found", sum(|e| e.issues_found).to_string()),
            ("skipped (frozen)", sum(|e| e.skipped).to_string()),
            (
                "failed verification",
                sum(|e| e.signatures.failed_verification).to_string(),
            ),
        ] {
            let _ = writeln!(
                h,
                "<div class=\"card\"><div class=\"v\">{}</div><div class=\"k\">{}</div></div>",
                esc(&v),
                esc(k)
            );
        }
        h += "</div>\n<h2>Scenarios</h2>\n<table>\n<tr><th>Scenario</th><th>Runs</th><th>Completed</th>\
              <th>Failed</th><th>Aborted</th><th>Skipped</th><th>Success rate</th><th>Recovery p50</th>\
              <th>p95</th><th>mean</th><th>Issues</th><th>Signed</th><th>Unsigned</th>\
              <th>Failed verification</th><th>Last run</th><th>Next run</th></tr>\n";
        for e in &self.scenarios {
            let num = |v: String| format!("<td class=\"num\">{}</td>", esc(&v));
            let last_class = match e.last_run.as_ref().map(|l| l.outcome.as_str()) {
                Some("completed") => "good",
                Some("aborted") => "bad",
                Some("completed with failures") => "bad",
                _ => "warn",
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td>{}{}{}{}{}{}{}{}{}{}{}{}<td{}>{}</td><td class=\"{last_class}\">{}</td><td>{}</td></tr>",
                esc(&e.scenario),
                num(e.runs.to_string()),
                num(e.completed.to_string()),
                num(e.failed.to_string()),
                num(e.aborted.to_string()),
                num(e.skipped.to_string()),
                num(rate(e.success_rate_percent)),
                num(ms(e.recovery.p50_ms)),
                num(ms(e.recovery.p95_ms)),
                num(ms(e.recovery.mean_ms)),
                num(e.issues_found.to_string()),
                num(e.signatures.signed.to_string()),
                num(e.signatures.unsigned.to_string()),
                if e.signatures.failed_verification > 0 {
                    " class=\"num bad\""
                } else {
                    " class=\"num\""
                },
                e.signatures.failed_verification,
                esc(&last_text(&e.last_run)),
                esc(&next_text(&e.next_runs)),
            );
        }
        h += "</table>\n";
        let any_issue = self
            .scenarios
            .iter()
            .any(|e| !e.issues.is_empty() || !e.signatures.failed.is_empty());
        if any_issue {
            h += "<h2>Issues found</h2>\n<table>\n<tr><th>Scenario</th><th>When</th><th>Run</th><th>What</th></tr>\n";
            for e in &self.scenarios {
                for i in &e.issues {
                    let _ = writeln!(
                        h,
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(&e.scenario),
                        esc(&absolute(i.at_ms)),
                        esc(&i.run_id),
                        esc(&i.what)
                    );
                }
                for b in &e.signatures.failed {
                    let _ = writeln!(
                        h,
                        "<tr><td>{}</td><td>-</td><td>{}</td><td class=\"bad\">failed verification: {}</td></tr>",
                        esc(&e.scenario),
                        esc(&b.report.display().to_string()),
                        esc(&b.error)
                    );
                }
            }
            h += "</table>\n";
        }
        if !self.unreadable.is_empty() {
            h += "<h2>Unreadable files</h2>\n<ul>\n";
            for u in &self.unreadable {
                let _ = writeln!(
                    h,
                    "<li>{}: {}</li>",
                    esc(&u.path.display().to_string()),
                    esc(&u.error)
                );
            }
            h += "</ul>\n";
        }
        let _ = write!(
            h,
            "<footer>faultctl report summary over {}</footer>\n</body>\n</html>\n",
            esc(&self
                .dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "))
        );
        h
    }
}
