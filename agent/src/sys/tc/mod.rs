//! Traffic control through rtnetlink: netem, prio, tbf, u32 filters, mirred to IFB.
//! faultline never runs `tc` or `ip`; each operation's doc names the equivalent command.
//!
//! # Layers
//!
//! - Pure codecs, byte-exact with iproute2 6.1 (golden tests in `golden.rs` against
//!   requests captured from `tc` itself; fixtures and `capture.sh` in `testdata/`):
//!   [`netem::Netem`] (encode + decode of a kernel dump), [`qdisc::Prio`],
//!   [`qdisc::Tbf`], [`filter::Selection`] -> [`filter::U32Match`] (u32 keys, mirred
//!   redirect), [`dist::Distribution`] (normal/pareto/paretonormal tables computed in
//!   Rust, equal to iproute2's `.dist` files).
//! - [`msg`]: whole netlink requests built from those.
//! - [`ops`]: [`Tc`], a connection inside one network namespace
//!   ([`crate::sys::netns::NetnsTarget`]: current, `ip netns` name, path, or pid), with
//!   [`Tc::apply`] -> [`Undo`], [`revert`] -> [`Reverted`], [`Tc::sweep`], and
//!   [`probe_kernel`] -> [`KernelSupport`].
//!
//! # Using it for a `network` fault kind
//!
//! ```ignore
//! let tc = Tc::connect(&NetnsTarget::Pid(pid)).await?;        // or Named / Path / Current
//! let undo = tc.apply(&NetFault { iface, direction, netem, selection }).await?;
//! journal.write(&undo)?;                                       // Undo is serde
//! // ... later, from any task, even after a restart:
//! match revert(&undo).await? { Reverted::Restored => .., Reverted::AlreadyGone(why) => .. }
//! ```
//!
//! Errors are [`NetError`]; map `UnknownInterface`/`InvalidParameter` to
//! InvalidArgument, `ForeignRootQdisc`/`MissingKernelModule` to FailedPrecondition,
//! `Permission` to PermissionDenied.
//!
//! Everything faultline creates is tagged: root qdisc handle [`ROOT_MAJOR`]`:` (`fa17:`),
//! the netem child under prio [`CHILD_MAJOR`]`:` (`fa18:`), IFB devices named
//! [`IFB_PREFIX`]`...`, so [`Tc::sweep`] finds leftovers without the journal.

pub mod dist;
pub mod error;
pub mod exempt;
pub mod filter;
pub mod msg;
pub mod netem;
pub mod ops;
pub mod qdisc;
mod wire;

#[cfg(test)]
mod golden;

pub use dist::Distribution;
pub use error::NetError;
pub use exempt::Exempt;
pub use filter::{Cidr, IpProto, PortRange, Selection, U32Match};
pub use netem::{
    Chance, Delay, FourState, GilbertElliott, Loss, Netem, Percent, Rate, Reorder, Slot,
};
pub use qdisc::{Prio, RootKind, Tbf, TbfLimit};

/// Handle major of every root qdisc faultline installs (`fa17:`): a tag a sweep finds.
pub const ROOT_MAJOR: u16 = 0xFA17;
/// Handle major of the netem qdisc faultline hangs under its prio root (`fa18:`).
pub const CHILD_MAJOR: u16 = 0xFA18;
/// Name prefix of the IFB devices faultline creates for ingress faults.
pub const IFB_PREFIX: &str = "flifb";
/// The prio band (1-based class minor) that carries the fault: `fa17:4`.
pub const FAULT_BAND: u16 = 4;

pub use ops::{
    Direction, FilterInfo, IfbRecord, KernelSupport, NetFault, QdiscInfo, Reverted, Tc, Undo,
    probe_kernel, revert,
};
