//! What an agent answered to one command, typed: the `faultline.v1` response itself, so
//! that `-o json` is the messages' one serde mapping and a fleet keeps one typed answer
//! per node ([`NodeResult`]) instead of text.

use faultline_proto::v1;
use serde::Serialize;

/// One command's answer. Serialized as the message it holds.
// One per command (per node in a fleet): the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    Status(v1::StatusResponse),
    Limits(v1::Limits),
    List(v1::ListResponse),
    /// `get`.
    Fault(v1::Fault),
    Reverted(v1::RevertResponse),
    /// `abort`.
    Aborted(v1::RevertAllResponse),
    Injected(v1::InjectResponse),
    /// `inject --hold`: the inject, and how the hold ended.
    Held(Held),
    LeaseOpened(v1::Lease),
    LeaseRenewed(v1::Lease),
    LeaseClosed(LeaseClosed),
}

impl Answer {
    /// Why a command that got its answer still failed: an `abort` whose reverts did not
    /// all succeed is not "ok", because something may still be in effect.
    pub fn failed_reverts(&self) -> Option<String> {
        let Answer::Aborted(r) = self else {
            return None;
        };
        let results = &r.results;
        let failed: Vec<&v1::RevertResult> = results.iter().filter(|x| !x.ok).collect();
        let first = failed.first()?;
        Some(format!(
            "{} of {} faults could not be reverted (first: {}: {}); see faultctl list",
            failed.len(),
            results.len(),
            first.id,
            first.error
        ))
    }
}

/// `lease close`: the lease named, and what its close reverted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaseClosed {
    pub id: String,
    #[serde(flatten)]
    pub response: v1::CloseLeaseResponse,
}

/// `inject --hold`: the inject's answer and how the hold ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Held {
    pub inject: v1::InjectResponse,
    pub lease_id: String,
    pub end: HoldEnd,
}

/// How a held fault ended.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldEnd {
    /// Nothing to hold (a dry run, or a fault that was over at once).
    Nothing,
    /// The fault ended on its own (expired, reverted by someone, failed).
    Ended { fault: v1::Fault },
    /// Interrupted (Ctrl-C, SIGTERM): the lease was closed with its faults reverted.
    Reverted { results: Vec<v1::RevertResult> },
}

/// One node's outcome of a fleet command.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeResult {
    pub node: String,
    pub address: String,
    pub ok: bool,
    /// The exit code this node alone would have given.
    pub exit_code: u8,
    /// One line for the table.
    pub summary: String,
    /// The agent's answer (what `-o json` prints for one agent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Answer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
