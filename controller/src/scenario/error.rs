//! Why a scenario could not run, failed, or was aborted.

use std::path::PathBuf;

use crate::inventory::InventoryError;
use crate::sign::SignError;

/// Why a scenario could not run, failed, or was aborted.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid scenario {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("the scenario names no inventory: add `inventory: FILE` or pass --inventory")]
    NoInventory,
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error("scenario {name:?} was aborted: {reason} (report: {report})")]
    Aborted {
        name: String,
        reason: String,
        report: String,
    },
    #[error("scenario {name:?}: {failed} step(s) failed on some node (report: {report})")]
    StepsFailed {
        name: String,
        failed: usize,
        report: String,
    },
    /// A chaos freeze (`faultctl freeze`) skipped the run before it touched a node.
    #[error("scenario {name:?} skipped, nothing was touched: chaos is {freeze} (report: {report})")]
    Frozen {
        name: String,
        freeze: String,
        report: String,
    },
    /// The freeze file could not be read: the run is refused.
    #[error(transparent)]
    Freeze(#[from] crate::freeze::FreezeError),
    #[error("dry run of {name:?}: {failed} check(s) failed; see the table above")]
    DryRunFailed { name: String, failed: usize },
    #[error("cannot write report {path}: {source}")]
    WriteReport {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Loading the signing key, or signing the report.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Writing the output.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}
