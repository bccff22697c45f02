//! The one error type of the tc layer.

use std::io;

/// Everything that can go wrong applying, inspecting or reverting traffic control.
///
/// Messages are lowercase, name the object and say what to do; the integrator maps
/// them to gRPC codes (`UnknownInterface`, `InvalidParameter` -> InvalidArgument;
/// `ForeignRootQdisc`, `MissingKernelModule` -> FailedPrecondition; `Permission` ->
/// PermissionDenied; the rest -> Internal/Unavailable).
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The interface does not exist in the target namespace.
    #[error(
        "unknown interface {iface:?} in {netns}: check the name with `ip link` in that namespace"
    )]
    UnknownInterface { iface: String, netns: String },

    /// The interface's root (or ingress) qdisc is not a kernel default and not ours:
    /// an operator's own traffic control setup that faultline refuses to replace.
    #[error(
        "interface {iface:?} has a foreign {kind} qdisc (handle {handle}) at {place}: faultline will not replace an operator's own traffic control; remove it first or choose another interface"
    )]
    ForeignRootQdisc {
        iface: String,
        kind: String,
        handle: String,
        /// "root" or "ingress".
        place: &'static str,
    },

    /// The running kernel lacks the module that provides `kind`.
    #[error(
        "this kernel has no {module} (needed to {what}): load it with `modprobe {module}` or use a kernel that has it"
    )]
    MissingKernelModule { module: String, what: String },

    /// The caller may not do this (not root / no CAP_NET_ADMIN in that namespace).
    #[error(
        "permission denied to {op}: faultd needs CAP_NET_ADMIN in the target network namespace"
    )]
    Permission { op: String },

    /// The target network namespace cannot be entered.
    #[error("cannot enter network namespace {netns}: {source}")]
    Netns {
        netns: String,
        #[source]
        source: io::Error,
    },

    /// A fault parameter is out of range or inconsistent.
    #[error("invalid {parameter}: {reason}")]
    InvalidParameter {
        parameter: &'static str,
        reason: String,
    },

    /// The kernel refused a request for another reason.
    #[error("kernel refused to {op}: {source}")]
    Kernel {
        op: String,
        #[source]
        source: io::Error,
    },

    /// The netlink socket itself failed (not a kernel answer).
    #[error("netlink i/o failed while trying to {op}: {detail}")]
    NetlinkIo { op: String, detail: String },

    /// A kernel dump could not be decoded.
    #[error("cannot decode the kernel's {what}: {detail}")]
    Decode { what: String, detail: String },
}

impl NetError {
    pub(crate) fn invalid(parameter: &'static str, reason: impl Into<String>) -> Self {
        NetError::InvalidParameter {
            parameter,
            reason: reason.into(),
        }
    }
}
