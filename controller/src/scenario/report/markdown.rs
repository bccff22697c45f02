//! The report as Markdown, for people: the summary, each probe's statistics, each step
//! per node with its probe windows, the cleanup and the timeline.

use super::{Recovery, Report};
use crate::probe::Stats;
use crate::render::absolute;

impl Report {
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
                .or(self.skip_reason.as_ref())
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        if let Some(b) = &self.abort_condition {
            m += &format!(
                "- abort condition: {b} ({} samples in the window)\n",
                b.samples
            );
        }
        if let Some(r) = self.abort_recovery_ms {
            m += &format!("- recovery after the abort: {r} ms\n");
        }
        if let Some(s) = &self.signed_by {
            m += &format!(
                "- signed by: {} ({} {})\n",
                s.identity, s.key_type, s.fingerprint
            );
        }
        m += "\n## Probes\n\n| probe | checks | aborts on | samples | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|---|\n";
        for p in &self.probes {
            m += &format!(
                "| {} | {} | {} | {} |\n",
                p.name,
                p.checks,
                p.slo.as_ref().map_or("-", |s| s.text.as_str()),
                st(&p.overall)
            );
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
}
