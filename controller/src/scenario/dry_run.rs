//! `faultctl run --dry-run`: one sample of each probe (a prometheus probe sends its query
//! once: a query Prometheus rejects fails with Prometheus's own error), and each fault
//! step's inject sent with `dry_run` to each node it would pick (the agent resolves the
//! targets and checks its limits, and changes nothing). No lease is opened, no report is
//! written.

use faultline_proto::v1::GetLimitsRequest;

use super::document::Scenario;
use crate::inventory::Inventory;
use crate::render::Table;

/// One check of a dry run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DryRunRow {
    pub step: String,
    pub node: String,
    pub ok: bool,
    pub detail: String,
}

/// Every check of `sc` on `inv`, in order.
pub async fn check(sc: &Scenario, inv: &Inventory, seed: u64) -> Vec<DryRunRow> {
    let mut rows: Vec<DryRunRow> = Vec::new();
    let row = |step: &str, node: &str, r: Result<String, String>| DryRunRow {
        step: step.to_string(),
        node: node.to_string(),
        ok: r.is_ok(),
        detail: r.unwrap_or_else(|e| e),
    };
    for p in &sc.probes {
        let s = p.sample().await;
        let value = s.value.map(|v| format!(" (value {v})")).unwrap_or_default();
        let r = match s.error {
            None => Ok(format!(
                "{}: ok{value} in {}ms",
                p.describe(),
                s.latency_us / 1000
            )),
            Some(e) => Err(format!("{}: {e}", p.describe())),
        };
        rows.push(row(&format!("probe {}", p.name), "-", r));
    }
    for (i, step) in sc.steps.iter().enumerate() {
        for (j, s) in step.fault_steps().iter().enumerate() {
            let at = if step.parallel.is_some() {
                format!("{}.{}", i + 1, j + 1)
            } else {
                (i + 1).to_string()
            };
            let title = format!("{at} {}", s.title(&at));
            let inject = match s.inject_for(&sc.name, "dry-run", &title) {
                Ok(mut inject) => {
                    inject.dry_run = true;
                    inject
                }
                Err(e) => {
                    rows.push(row(&title, "-", Err(e)));
                    continue;
                }
            };
            let pick = match s.pick(inv, seed) {
                Ok(p) => p,
                Err(e) => {
                    rows.push(row(&title, "-", Err(e)));
                    continue;
                }
            };
            let results = crate::fanout::fan_out(&pick.nodes, |node| {
                let mut inject = inject.clone();
                async move {
                    let mut client = node.connect().await.map_err(|e| e.to_string())?;
                    let limits = client
                        .get_limits(GetLimitsRequest {})
                        .await
                        .map_err(|s| crate::client::status_text(&s))?
                        .into_inner();
                    if limits.require_lease {
                        // A run always binds a lease; the dry run only needs to say so.
                        inject.lease = Some("dry-run".into());
                    }
                    if let Ok(d) = u64::try_from(sc.lease_ttl.0.as_millis())
                        && limits.max_lease_ttl_ms > 0
                        && d > limits.max_lease_ttl_ms
                    {
                        return Err(format!(
                            "lease_ttl {} is over this agent's max_lease_ttl of {}ms",
                            sc.lease_ttl, limits.max_lease_ttl_ms
                        ));
                    }
                    let r = client
                        .inject(inject.to_proto())
                        .await
                        .map_err(|s| crate::client::status_text(&s))?
                        .into_inner();
                    if r.targets.is_empty() {
                        // A network or stress fault: what it would change, in words.
                        return Ok(r.plan);
                    }
                    let pids: Vec<String> = r.targets.iter().map(|t| t.pid.to_string()).collect();
                    Ok(format!("would hit pids {}: {}", pids.join(","), r.plan))
                }
            })
            .await;
            for (node, r) in pick.nodes.iter().zip(results) {
                rows.push(row(&title, &node.name, r));
            }
            if pick.seed.is_some() {
                rows.push(row(&title, "-", Ok(pick.describe())));
            }
        }
    }
    rows
}

/// The rows as a table, and the count.
pub fn table(name: &str, rows: &[DryRunRow]) -> String {
    let mut t = Table::new(&["STEP", "NODE", "RESULT", "DETAIL"]);
    for r in rows {
        t.row(vec![
            r.step.clone(),
            r.node.clone(),
            if r.ok { "ok" } else { "error" }.into(),
            r.detail.clone(),
        ]);
    }
    format!(
        "{}dry run of {name:?}: {} checks, {} failed; nothing was changed\n",
        t.render(0),
        rows.len(),
        rows.iter().filter(|r| !r.ok).count()
    )
}
