//! The agent's error type for anything a request can run into, and what each means to a
//! caller. `api` maps it to gRPC codes in one place.

/// Why a fault could not be injected, reverted or looked up.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum FaultError {
    /// Malformed input; names the field. (InvalidArgument)
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// Over a limit of the limits file. (PermissionDenied)
    #[error(
        "refused by limit {limit} = {value}: requested {requested} (the node's limits file {file} sets it)"
    )]
    Limit {
        limit: String,
        value: String,
        requested: String,
        file: String,
    },
    /// The target is protected. (PermissionDenied)
    #[error("refused: {0}")]
    Protected(String),
    /// The caller may not do this. (PermissionDenied)
    #[error("permission denied: {0}")]
    Unauthorized(String),
    /// Unknown id, or nothing matches. (NotFound)
    #[error("{0}")]
    NotFound(String),
    /// This host cannot do it. (FailedPrecondition)
    #[error("{0}")]
    Precondition(String),
    /// Too many faults at once. (ResourceExhausted)
    #[error(
        "refused by limit {limit} = {value}: {active} already active ({ids}); revert one first or edit {file}"
    )]
    TooMany {
        limit: String,
        value: u32,
        active: usize,
        ids: String,
        file: String,
    },
    /// Applying or reverting failed in the kernel. (Internal)
    #[error("{0}")]
    Failed(String),
}

impl FaultError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> FaultError {
        FaultError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The limit a refusal names, if it is one (for events and audit).
    pub fn limit(&self) -> Option<&str> {
        match self {
            FaultError::Limit { limit, .. } | FaultError::TooMany { limit, .. } => Some(limit),
            _ => None,
        }
    }
}
