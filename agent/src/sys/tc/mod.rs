//! Traffic control through rtnetlink: netem, prio, tbf, u32 filters, mirred to IFB.
//!
//! - [`netem`], [`qdisc`], [`filter`], [`dist`]: pure codecs, byte-exact with iproute2
//!   6.1 (golden tests in `golden.rs`, fixtures and their capture script in
//!   `testdata/`).
//! - [`msg`]: whole netlink requests.
//!
//! Everything faultline creates is tagged: root qdisc handle [`ROOT_MAJOR`]`:`, the
//! netem child under prio [`CHILD_MAJOR`]`:`, IFB devices named [`IFB_PREFIX`]`...`.

pub mod dist;
pub mod error;
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
