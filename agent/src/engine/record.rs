//! What the engine hands out: fault records, lifecycle events, requests and results.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::fault::{FaultSpec, Kind, Timed};
use crate::sys::proc::ProcInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Active,
    Reverted,
    Expired,
    Failed,
    Completed,
}

/// A fault as the registry keeps it.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    pub id: String,
    pub spec: FaultSpec,
    pub state: State,
    pub labels: HashMap<String, String>,
    pub requested_by: String,
    pub created_at: SystemTime,
    pub duration: Option<Duration>,
    pub expires_at: Option<SystemTime>,
    pub ended_at: Option<SystemTime>,
    pub end_reason: String,
    pub description: String,
    pub undo: String,
    pub targets: Vec<ProcInfo>,
    /// The lease it is bound to.
    pub lease: Option<String>,
    /// The container its spec named, as resolved when it was injected.
    pub container: Option<crate::sys::container::Container>,
}

impl FaultRecord {
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Injected,
    Reverted,
    Expired,
    Failed,
    Refused,
    Tick,
    /// The health guard tripped and aborted every fault (the message says why).
    HealthAbort,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventType,
    pub at: SystemTime,
    pub fault_id: String,
    pub fault_kind: Option<Kind>,
    pub message: String,
    pub fault: Option<FaultRecord>,
    pub requested_by: String,
}

/// Why a fault ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// Reverted on request (the reason given).
    Reverted(String),
    /// Its duration ran out.
    Expired,
    /// It failed while active (a stress worker died); reverted for cleanliness.
    Failed(String),
}

/// A request to inject, already validated into domain types.
#[derive(Debug, Clone)]
pub struct InjectRequest {
    /// The fault and how long it lasts.
    pub fault: Timed,
    pub labels: HashMap<String, String>,
    pub dry_run: bool,
    pub requested_by: String,
    /// Bind to this lease.
    pub lease: Option<String>,
}

/// A lease as callers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseInfo {
    pub id: String,
    pub ttl: Duration,
    pub expires_at: SystemTime,
    pub holder: String,
    /// Live faults bound to it.
    pub faults: Vec<String>,
}

/// What `inject` did (or would do).
#[derive(Debug, Clone)]
pub struct InjectOutcome {
    pub fault: Option<FaultRecord>,
    pub targets: Vec<ProcInfo>,
    pub excluded: Vec<(ProcInfo, String)>,
    pub plan: String,
    /// The container the spec named, as resolved.
    pub container: Option<crate::sys::container::Container>,
}

/// The result of one fault's revert within `revert_all`.
#[derive(Debug, Clone)]
pub struct RevertResult {
    pub id: String,
    pub result: Result<(), String>,
}
