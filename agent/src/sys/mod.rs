//! The kernel boundary: everything that touches netlink, cgroupfs, procfs, pidfds and
//! namespaces. Nothing here knows about proto types or the engine.
//!
//! Each developer adds a `pub mod` line for their module here.

pub mod cgroup;
pub mod stress;
