//! faultline's gRPC API, `faultline.v1`, generated from `proto/faultline/v1/agent.proto`,
//! and the few helpers that the agent and the controller must agree on: durations and
//! rates ([`units`]), network faults in words ([`describe`]), caller text cut at a
//! character boundary ([`text`]), the JSON mapping of the messages ([`json`]), the
//! probes' HTTP GET ([`http`]) and the Prometheus condition ([`prometheus`]).
//!
//! The generated code lives in [`v1`]; `faultctl` depends on this crate only.

/// The generated `faultline.v1` messages, client (`agent_client`) and server
/// (`agent_server`).
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("faultline.v1");
}

pub mod command;
pub mod describe;
pub mod http;
pub mod json;
pub mod prometheus;
pub mod text;
pub mod units;

/// The encoded `FileDescriptorSet` of `faultline.v1` (what server reflection serves).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/faultline_v1_descriptor.bin"));

/// The default Unix socket path of `faultd`.
pub const DEFAULT_SOCKET: &str = "/run/faultline/faultd.sock";

impl v1::FaultKind {
    /// The short lowercase name used on the command line and in tables: `kill`, `pause`...
    pub fn short_name(self) -> &'static str {
        match self {
            v1::FaultKind::Unspecified => "unspecified",
            v1::FaultKind::Kill => "kill",
            v1::FaultKind::Pause => "pause",
            v1::FaultKind::Network => "network",
            v1::FaultKind::Cpu => "cpu",
            v1::FaultKind::Memory => "memory",
            v1::FaultKind::DiskFill => "disk-fill",
            v1::FaultKind::IoLimit => "io-limit",
            v1::FaultKind::IoStress => "io-stress",
        }
    }
}

impl v1::FaultState {
    /// The short lowercase name used in tables: `active`, `reverted`...
    pub fn short_name(self) -> &'static str {
        match self {
            v1::FaultState::Unspecified => "unspecified",
            v1::FaultState::Pending => "pending",
            v1::FaultState::Active => "active",
            v1::FaultState::Reverted => "reverted",
            v1::FaultState::Expired => "expired",
            v1::FaultState::Failed => "failed",
            v1::FaultState::Completed => "completed",
        }
    }
}

impl v1::EventType {
    /// The short lowercase name used in `faultctl watch`: `injected`, `reverted`...
    pub fn short_name(self) -> &'static str {
        match self {
            v1::EventType::Unspecified => "unspecified",
            v1::EventType::Injected => "injected",
            v1::EventType::Reverted => "reverted",
            v1::EventType::Expired => "expired",
            v1::EventType::Failed => "failed",
            v1::EventType::Refused => "refused",
            v1::EventType::Tick => "tick",
            v1::EventType::HealthAbort => "health-abort",
        }
    }
}
