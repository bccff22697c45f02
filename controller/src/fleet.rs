//! Running one faultctl command on many agents at once: `faultctl --inventory FILE
//! --select LABELS [--max-nodes N | --max-percent P] CMD`.
//!
//! Each selected agent gets the same request, at most [`FANOUT`] at a time; the answer is
//! one row per node (name, ok/error, a short summary), or with `-o json` an array of
//! per-node objects. Partial failures are reported per node and the exit code is
//! non-zero if any node failed.

use std::io::Write;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::cli::{Cli, Command, Output};
use crate::error::{CtlError, ExitCode};
use crate::inventory::{self, BlastRadius, Inventory, Node, Selector};
use crate::render::Table;

/// How many agents are spoken to at the same time.
pub const FANOUT: usize = 32;

/// The outcome on one node.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeResult {
    pub node: String,
    pub address: String,
    pub ok: bool,
    /// The exit code this node alone would have given.
    pub exit_code: u8,
    /// One line for the table.
    pub summary: String,
    /// The command's JSON output (as `-o json` prints it for one agent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Loads the inventory, selects, applies the blast radius; says what was picked on stderr.
pub fn targets(cli: &Cli) -> Result<Vec<Node>, CtlError> {
    let path = cli.inventory.as_ref().expect("called with --inventory");
    let inv = Inventory::load(path)?;
    let sel = Selector::parse(cli.select.as_deref().unwrap_or(""))?;
    let selected = inv.select(&sel)?;
    let radius = BlastRadius::from_flags(cli.max_nodes, cli.max_percent)?;
    let pick = inventory::pick(selected, radius, cli.seed);
    eprintln!("faultctl: {}", pick.describe());
    Ok(pick.nodes)
}

/// Runs `cli.command` on every node of the inventory selection.
pub async fn run(cli: &Cli, out: &mut (dyn Write + Send)) -> Result<(), CtlError> {
    if matches!(cli.command, Command::Watch { .. }) {
        return Err(CtlError::Usage(
            "watch follows one agent; give --agent instead of --inventory".into(),
        ));
    }
    let inject = crate::inject_request(cli)?;
    let nodes = targets(cli)?;
    let results = fan_out(&nodes, |node| {
        let inject = inject.clone();
        async move { run_on(cli, node, inject).await }
    })
    .await;
    match cli.output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, &results).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        Output::Table => out.write_all(table(&results).as_bytes())?,
    }
    out.flush()?;
    let failed: Vec<&NodeResult> = results.iter().filter(|r| !r.ok).collect();
    if failed.is_empty() {
        return Ok(());
    }
    // One failure kind everywhere keeps its code; a mix is "other".
    let code = if failed.iter().all(|r| r.exit_code == failed[0].exit_code) {
        failed[0].exit_code
    } else {
        ExitCode::Other as u8
    };
    Err(CtlError::Fleet {
        failed: failed.len(),
        total: results.len(),
        nodes: failed.iter().map(|r| r.node.clone()).collect(),
        code,
    })
}

/// Calls `f` on every node, at most [`FANOUT`] at a time; results in node order.
pub async fn fan_out<'a, F, Fut, T>(nodes: &'a [Node], f: F) -> Vec<T>
where
    F: Fn(&'a Node) -> Fut,
    Fut: std::future::Future<Output = T> + 'a,
{
    // The futures are made up front (not started): a closure inside the stream would make
    // the caller's future lose `Send` to a higher-ranked lifetime.
    let futs: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let fut = f(n);
            async move { (i, fut.await) }
        })
        .collect();
    let mut v: Vec<(usize, T)> = futures::stream::iter(futs)
        .buffer_unordered(FANOUT)
        .collect()
        .await;
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, t)| t).collect()
}

async fn run_on(
    cli: &Cli,
    node: &Node,
    inject: Option<faultline_proto::v1::InjectRequest>,
) -> NodeResult {
    let mut buf: Vec<u8> = Vec::new();
    let res = match node.connect().await {
        Ok(mut client) => crate::run_with(&mut client, cli, Output::Json, inject, &mut buf).await,
        Err(e) => Err(e.into()),
    };
    let result: Option<Value> = serde_json::from_slice(&buf).ok();
    let (ok, exit_code, error) = match &res {
        Ok(()) => (true, 0, None),
        Err(e) => (false, e.exit_code() as u8, Some(e.to_string())),
    };
    let summary = match &error {
        Some(e) => e.clone(),
        None => summarize(&cli.command, result.as_ref().unwrap_or(&Value::Null)),
    };
    NodeResult {
        node: node.name.clone(),
        address: node.address.clone(),
        ok,
        exit_code,
        summary,
        result,
        error,
    }
}

/// One line from a command's JSON answer.
pub fn summarize(cmd: &Command, v: &Value) -> String {
    let s = |p: &str| {
        v.pointer(p)
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    let n = |p: &str| v.pointer(p).and_then(Value::as_array).map_or(0, Vec::len);
    match cmd {
        Command::Status => format!(
            "{} faultd {} kernel {} cgroup {}, {} active",
            s("/hostname"),
            s("/agent_version"),
            s("/kernel_release"),
            s("/cgroup_mode"),
            n("/active")
        ),
        Command::Limits => format!(
            "profile {}, max duration {}ms, max {} faults",
            s("/profile"),
            s("/max_duration_ms"),
            s("/max_concurrent_faults")
        ),
        Command::List { .. } => {
            let ids: Vec<String> = v["faults"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|f| {
                            format!(
                                "{} ({})",
                                f["id"].as_str().unwrap_or(""),
                                f["state"].as_str().unwrap_or("")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if ids.is_empty() {
                "no faults".into()
            } else {
                format!("{} faults: {}", ids.len(), ids.join(", "))
            }
        }
        Command::Get { .. } => format!("{} {}", s("/id"), s("/state")),
        Command::Revert { .. } => format!("reverted {} ({})", s("/fault/id"), s("/fault/state")),
        Command::Abort { .. } => format!("{} faults reverted", n("/results")),
        Command::Inject(_) => {
            let pids: Vec<String> = v
                .pointer("/targets")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|t| t["pid"].to_string()).collect())
                .unwrap_or_default();
            let what = if v["dry_run"].as_bool() == Some(true) {
                "dry run: would hit".to_string()
            } else {
                format!("{} hit", s("/fault/id"))
            };
            format!("{what} pids {}", pids.join(","))
        }
        _ => json!(v).to_string(),
    }
}

/// The per-node table.
pub fn table(results: &[NodeResult]) -> String {
    let mut t = Table::new(&["NODE", "RESULT", "SUMMARY"]);
    for r in results {
        t.row(vec![
            r.node.clone(),
            if r.ok { "ok" } else { "error" }.into(),
            r.summary.clone(),
        ]);
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    format!(
        "{}{} of {} nodes ok{}\n",
        t.render(0),
        results.len() - failed,
        results.len(),
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    )
}
