//! Running one command on many agents at once: `faultctl --inventory FILE
//! --select LABELS [--max-nodes N | --max-percent P] CMD`.
//!
//! Each selected agent gets the same [`Op`], at most [`Fanout::concurrency`] at a time
//! (one connection per node), each within [`Fanout::node_timeout`], a connection that
//! fails retried [`Fanout::retries`] times; the outcome is one typed [`NodeResult`] per
//! node, in inventory order. Partial failures are reported per node, and [`outcome`]
//! makes the exit code non-zero if any node failed. On a terminal a progress line
//! counts the nodes done and failed.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::answer::NodeResult;
use crate::client::ConnectError;
use crate::error::{CtlError, ExitCode};
use crate::fanout::fan_out_with;
use crate::inventory::{self, BlastRadius, Inventory, Node, Selector};
use crate::op::{self, Op};

/// Which agents of which inventory, and the fleet blast radius.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    pub inventory: PathBuf,
    /// Labels, e.g. `role=db,zone=a`; empty: every agent.
    pub select: String,
    pub max_nodes: Option<usize>,
    pub max_percent: Option<f64>,
    /// Seed of the random pick.
    pub seed: Option<u64>,
}

/// Loads the inventory, selects, applies the blast radius. The pick says in words what it
/// picked ([`inventory::Pick::describe`]).
pub fn targets(s: &Selection) -> Result<inventory::Pick, CtlError> {
    let inv = Inventory::load(&s.inventory)?;
    let selected = inv.select(&Selector::parse(&s.select)?)?;
    let radius = BlastRadius::from_flags(s.max_nodes, s.max_percent)?;
    Ok(inventory::pick(selected, radius, s.seed))
}

/// How faultctl speaks to many agents (`--concurrency`, `--node-timeout`, `--retries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fanout {
    /// Agents spoken to at the same time.
    pub concurrency: usize,
    /// The most one node may take, connection and call together.
    pub node_timeout: Duration,
    /// How many more times a connection that failed is tried (nothing was sent yet, so
    /// this is safe for every command).
    pub retries: u32,
    /// Print a progress line on stderr (a terminal).
    pub progress: bool,
}

/// The default per-node timeout (`--node-timeout`).
pub const NODE_TIMEOUT: &str = "15s";
/// The default number of connection retries (`--retries`).
pub const RETRIES: u32 = 1;
/// The most `--concurrency` may be.
pub const MAX_CONCURRENCY: usize = 4096;

impl Default for Fanout {
    fn default() -> Fanout {
        Fanout {
            concurrency: crate::fanout::FANOUT,
            node_timeout: Duration::from_secs(15),
            retries: RETRIES,
            progress: false,
        }
    }
}

/// `n` with thousands separators: 10,000.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The progress line: `4,212/10,000 nodes, 3 failed`.
pub fn progress_line(done: usize, total: usize, failed: usize) -> String {
    format!(
        "{}/{} nodes, {} failed",
        thousands(done),
        thousands(total),
        thousands(failed)
    )
}

/// Connects to `node`, retrying a failed connection `retries` times (100 ms, 200 ms,
/// ... apart).
async fn connect_retrying(
    node: &Node,
    retries: u32,
) -> Result<faultline_proto::v1::agent_client::AgentClient<tonic::transport::Channel>, ConnectError>
{
    let mut tries = 0;
    loop {
        match node.connect().await {
            Ok(c) => return Ok(c),
            Err(e @ ConnectError::BadUri { .. }) => return Err(e),
            Err(e) if tries >= retries => return Err(e),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100) * tries).await;
            }
        }
    }
}

/// Runs `op` on every node; one result per node, in node order.
pub async fn execute(nodes: &[Node], op: &Op, how: &Fanout) -> Vec<NodeResult> {
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let total = nodes.len();
    let ticker = how.progress.then(|| {
        let (done, failed) = (done.clone(), failed.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let line = progress_line(
                    done.load(Ordering::Relaxed),
                    total,
                    failed.load(Ordering::Relaxed),
                );
                let mut e = std::io::stderr().lock();
                let _ = write!(e, "\r\x1b[K{line}");
                let _ = e.flush();
            }
        })
    });
    let results = fan_out_with(nodes, how.concurrency, |node| {
        let (done, failed) = (done.clone(), failed.clone());
        async move {
            let r = execute_one(node, op, how).await;
            if !r.ok {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            done.fetch_add(1, Ordering::Relaxed);
            r
        }
    })
    .await;
    if let Some(t) = ticker {
        t.abort();
        let line = progress_line(total, total, failed.load(Ordering::Relaxed));
        eprintln!("\r\x1b[K{line}");
    }
    results
}

async fn execute_one(node: &Node, op: &Op, how: &Fanout) -> NodeResult {
    let attempt = async {
        let mut client = connect_retrying(node, how.retries).await?;
        op::execute(&mut client, op).await
    };
    let res = match tokio::time::timeout(how.node_timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Unreachable {
            uri: node.address.clone(),
            reason: format!(
                "no answer within {} (--node-timeout)",
                humantime::format_duration(how.node_timeout)
            ),
            hint: None,
        }
        .into()),
    };
    let (result, error) = match res {
        Ok(a) => {
            let failed = a.failed_reverts().map(CtlError::RevertFailed);
            (Some(a), failed)
        }
        Err(e) => (None, Some(e)),
    };
    NodeResult {
        node: node.name.clone(),
        address: node.address.clone(),
        ok: error.is_none(),
        exit_code: error.as_ref().map_or(0, |e| e.exit_code() as u8),
        summary: match (&error, &result) {
            (Some(e), _) => e.to_string(),
            (None, Some(a)) => crate::render::summary(a),
            (None, None) => String::new(),
        },
        result,
        error: error.map(|e| e.to_string()),
    }
}

/// Ok if every node succeeded; otherwise the failing nodes' exit code if they all agree
/// (e.g. 5 if they were all unreachable), else "other".
pub fn outcome(results: &[NodeResult]) -> Result<(), CtlError> {
    let failed: Vec<&NodeResult> = results.iter().filter(|r| !r.ok).collect();
    let Some(first) = failed.first() else {
        return Ok(());
    };
    let code = if failed.iter().all(|r| r.exit_code == first.exit_code) {
        ExitCode::from_u8(first.exit_code)
    } else {
        ExitCode::Other
    };
    Err(CtlError::Fleet {
        failed: failed.len(),
        total: results.len(),
        nodes: {
            let mut v: Vec<String> = failed.iter().take(10).map(|r| r.node.clone()).collect();
            if failed.len() > 10 {
                v.push(format!("and {} more", thousands(failed.len() - 10)));
            }
            v
        },
        code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::answer::fleet_table;

    #[test]
    fn numbers_and_the_progress_line_read_like_prose() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(4212), "4,212");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(
            progress_line(4212, 10_000, 3),
            "4,212/10,000 nodes, 3 failed"
        );
    }

    fn row(i: usize, ok: bool) -> NodeResult {
        let address = format!("unix:///run/sim/node-{i}.sock");
        NodeResult {
            node: format!("node-{i}"),
            address: address.clone(),
            ok,
            exit_code: if ok { 0 } else { 5 },
            summary: if ok {
                "dry run: would hit pids 1000".into()
            } else {
                format!("cannot reach faultd at {address}: No such file or directory")
            },
            result: None,
            error: None,
        }
    }

    #[test]
    fn a_large_fleet_table_has_one_row_per_outcome() {
        let rows: Vec<NodeResult> = (1..=10_000).map(|i| row(i, i % 10 != 0)).collect();
        let t = fleet_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[0].starts_with("RESULT"), "{t}");
        // Failures first, their addresses folded into one outcome.
        assert!(lines[1].starts_with("error"), "{t}");
        assert!(lines[1].contains("1,000"), "{t}");
        assert!(lines[1].contains("node-10, node-20, node-30, ..."), "{t}");
        assert!(
            lines[1].contains("cannot reach faultd at ADDRESS: No such file or directory"),
            "{t}"
        );
        assert!(
            lines[2].starts_with("ok") && lines[2].contains("9,000"),
            "{t}"
        );
        assert_eq!(
            lines[3],
            "9,000 of 10,000 nodes ok, 1,000 failed (one row per outcome; every node's row: -o json)"
        );
        // A small fleet keeps one row per node.
        let small = fleet_table(&rows[..5]);
        assert_eq!(small.lines().count(), 7, "{small}");
        assert!(small.starts_with("NODE"), "{small}");
    }

    #[test]
    fn a_fleet_failure_names_at_most_ten_nodes() {
        let rows: Vec<NodeResult> = (1..=100).map(|i| row(i, false)).collect();
        let e = outcome(&rows).unwrap_err().to_string();
        assert!(
            e.starts_with("100 of 100 nodes failed: node-1, node-2,"),
            "{e}"
        );
        assert!(e.ends_with("node-10, and 90 more"), "{e}");
    }
}
