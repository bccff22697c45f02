//! Running one command on many agents at once: `faultctl --inventory FILE
//! --select LABELS [--max-nodes N | --max-percent P] CMD`.
//!
//! Each selected agent gets the same [`Op`], at most [`crate::fanout::FANOUT`] at a time; the outcome
//! is one typed [`NodeResult`] per node, in inventory order. Partial failures are
//! reported per node, and [`outcome`] makes the exit code non-zero if any node failed.

use std::path::PathBuf;

use crate::answer::NodeResult;
use crate::error::{CtlError, ExitCode};
use crate::fanout::fan_out;
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

/// Runs `op` on every node; one result per node, in node order.
pub async fn execute(nodes: &[Node], op: &Op) -> Vec<NodeResult> {
    fan_out(nodes, |node| async move {
        let res = match node.connect().await {
            Ok(mut client) => op::execute(&mut client, op).await,
            Err(e) => Err(e.into()),
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
    })
    .await
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
        nodes: failed.iter().map(|r| r.node.clone()).collect(),
        code,
    })
}
