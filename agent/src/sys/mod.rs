//! The kernel boundary: everything that touches netlink, cgroupfs, procfs, pidfds and
//! namespaces. Nothing here knows about proto types or the engine.

pub mod cgroup;
pub mod container;
pub mod netns;
pub mod proc;
pub mod stress;
pub mod tc;
