//! faultctl's errors and the one mapping from an error to an exit code.

use crate::client::ConnectError;

/// faultctl's exit codes. Documented in `faultctl --help` ([`EXIT_CODES_HELP`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// Anything not covered below.
    Other = 1,
    /// Bad input: a usage error, or the agent said InvalidArgument.
    BadInput = 2,
    /// Refused by policy: PermissionDenied (a limit, a protected target, a caller that
    /// may not mutate) or ResourceExhausted (too many faults).
    Refused = 3,
    /// NotFound: unknown fault id, or a selector that matches nothing.
    NotFound = 4,
    /// The agent could not be reached (connect failure, Unavailable).
    Unreachable = 5,
    /// FailedPrecondition: this host cannot do it.
    Unsupported = 6,
    /// A chaos freeze skipped the run (`faultctl freeze`).
    Frozen = 7,
}

impl ExitCode {
    /// The code for its number (an unknown number is [`ExitCode::Other`]).
    pub fn from_u8(code: u8) -> ExitCode {
        match code {
            0 => ExitCode::Ok,
            2 => ExitCode::BadInput,
            3 => ExitCode::Refused,
            4 => ExitCode::NotFound,
            5 => ExitCode::Unreachable,
            6 => ExitCode::Unsupported,
            7 => ExitCode::Frozen,
            _ => ExitCode::Other,
        }
    }
}

/// The exit-code table as printed at the end of `faultctl --help` (a macro so that clap's
/// `after_help` can `concat!` it).
#[macro_export]
macro_rules! exit_codes_text {
    () => {
        "Exit codes:
  0  ok
  1  any other error
  2  bad input (usage error, or the agent said InvalidArgument)
  3  refused by policy (a limit, a protected target, not allowed, too many faults)
  4  not found (unknown fault id, or a selector that matches nothing)
  5  agent unreachable (cannot connect, or the agent is unavailable)
  6  this host cannot do it (missing kernel feature, foreign state)
  7  skipped: chaos is frozen (faultctl freeze); nothing was touched"
    };
}

/// The exit-code table, as text.
pub const EXIT_CODES_HELP: &str = exit_codes_text!();

/// The exit code for a gRPC status code from the agent.
pub fn exit_code_for(code: tonic::Code) -> ExitCode {
    use tonic::Code;
    match code {
        Code::Ok => ExitCode::Ok,
        Code::InvalidArgument | Code::OutOfRange => ExitCode::BadInput,
        Code::PermissionDenied | Code::ResourceExhausted | Code::Unauthenticated => {
            ExitCode::Refused
        }
        Code::NotFound => ExitCode::NotFound,
        Code::Unavailable => ExitCode::Unreachable,
        Code::FailedPrecondition => ExitCode::Unsupported,
        _ => ExitCode::Other,
    }
}

/// Everything that can go wrong in a faultctl command.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Bad input caught before anything was sent, in the words of the edge that read it
    /// (the command line names its flags).
    #[error("{0}")]
    Input(String),
    /// The agent could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The agent answered with an error.
    #[error("{}", crate::client::status_text(.0))]
    Rpc(#[from] tonic::Status),
    /// The agent answered, but some reverts failed: something may still be in effect.
    #[error("{0}")]
    RevertFailed(String),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// A combination of flags or a command that cannot work.
    #[error("{0}")]
    Usage(String),
    /// The inventory, a selector or the fleet blast radius.
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    /// Some nodes of a fleet command failed (each is reported in the output).
    #[error("{failed} of {total} nodes failed: {}", nodes.join(", "))]
    Fleet {
        failed: usize,
        total: usize,
        nodes: Vec<String>,
        code: ExitCode,
    },
    /// A scenario that is malformed, failed, or was aborted.
    #[error(transparent)]
    Scenario(#[from] crate::scenario::ScenarioError),
    /// Signing a report, or making a key.
    #[error(transparent)]
    Sign(#[from] crate::sign::SignError),
    /// A report that does not verify.
    #[error(transparent)]
    Verify(#[from] crate::sign::VerifyError),
    /// A scheduled drill.
    #[error(transparent)]
    Schedule(#[from] crate::schedule::ScheduleError),
    /// Setting, lifting or reading the chaos freeze.
    #[error(transparent)]
    Freeze(#[from] crate::freeze::FreezeError),
}

impl CtlError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CtlError::Input(_) => ExitCode::BadInput,
            CtlError::Connect(ConnectError::BadUri { .. }) => ExitCode::BadInput,
            CtlError::Connect(ConnectError::Unreachable { .. }) => ExitCode::Unreachable,
            CtlError::Rpc(s) => exit_code_for(s.code()),
            CtlError::RevertFailed(_) => ExitCode::Other,
            CtlError::Output(_) => ExitCode::Other,
            CtlError::Usage(_) | CtlError::Inventory(_) => ExitCode::BadInput,
            CtlError::Fleet { code, .. } => *code,
            CtlError::Scenario(e) => scenario_code(e),
            CtlError::Sign(e) if e.is_bad_input() => ExitCode::BadInput,
            CtlError::Verify(e) if e.is_bad_input() => ExitCode::BadInput,
            CtlError::Sign(_) | CtlError::Verify(_) => ExitCode::Other,
            CtlError::Freeze(e) => freeze_code(e),
            CtlError::Schedule(e) => e.exit_code(),
        }
    }
}

fn freeze_code(e: &crate::freeze::FreezeError) -> ExitCode {
    use crate::freeze::FreezeError as F;
    match e {
        F::Input(_) => ExitCode::BadInput,
        F::Write { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            ExitCode::Refused
        }
        _ => ExitCode::Other,
    }
}

fn scenario_code(e: &crate::scenario::ScenarioError) -> ExitCode {
    use crate::scenario::ScenarioError as E;
    match e {
        E::Invalid { .. } | E::NoInventory | E::Inventory(_) => ExitCode::BadInput,
        E::Sign(s) if s.is_bad_input() => ExitCode::BadInput,
        E::DryRunFailed { .. } => ExitCode::Refused,
        E::Frozen { .. } => ExitCode::Frozen,
        E::Freeze(f) => freeze_code(f),
        _ => ExitCode::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn maps_every_status_code() {
        let table = [
            (Code::Ok, 0),
            (Code::Cancelled, 1),
            (Code::Unknown, 1),
            (Code::InvalidArgument, 2),
            (Code::DeadlineExceeded, 1),
            (Code::NotFound, 4),
            (Code::AlreadyExists, 1),
            (Code::PermissionDenied, 3),
            (Code::ResourceExhausted, 3),
            (Code::FailedPrecondition, 6),
            (Code::Aborted, 1),
            (Code::OutOfRange, 2),
            (Code::Unimplemented, 1),
            (Code::Internal, 1),
            (Code::Unavailable, 5),
            (Code::DataLoss, 1),
            (Code::Unauthenticated, 3),
        ];
        for (code, want) in table {
            assert_eq!(exit_code_for(code) as u8, want, "{code:?}");
        }
    }

    #[test]
    fn local_errors_have_their_codes() {
        let e = CtlError::Input("invalid --label \"x\"".into());
        assert_eq!(e.exit_code(), ExitCode::BadInput);
        let e = CtlError::Connect(ConnectError::Unreachable {
            uri: "unix:///x".into(),
            reason: "No such file or directory".into(),
            hint: None,
        });
        assert_eq!(e.exit_code(), ExitCode::Unreachable);
        let e = CtlError::Rpc(tonic::Status::permission_denied(
            "kill of pid 1 refused: pid 1 is protected",
        ));
        assert_eq!(e.exit_code(), ExitCode::Refused);
        assert_eq!(e.to_string(), "kill of pid 1 refused: pid 1 is protected");
    }
}
