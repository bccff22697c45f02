//! What the agent knows of the node it runs on: its limits, its own process ancestry
//! (never a target), the cgroup hierarchies, the kernel.

use crate::error::FaultError;
use crate::limits::Limits;
use crate::sys::cgroup::{CgroupMode, Cgroups};

/// The node, as faults see it. Built once at start.
#[derive(Debug)]
pub struct Host {
    pub limits: Limits,
    /// faultd's pid and its ancestors': never selected.
    pub self_and_ancestors: Vec<i32>,
    cgroups: Result<Cgroups, String>,
    pub kernel_release: String,
    pub hostname: String,
    /// What the kernel offers network faults (probed in a throwaway namespace at start),
    /// or why it could not be probed.
    pub net: Result<crate::sys::tc::KernelSupport, String>,
}

impl Host {
    /// Detects the node's cgroups and identity.
    pub fn detect(limits: Limits) -> Host {
        let uts = nix::sys::utsname::uname().ok();
        Host {
            limits,
            self_and_ancestors: crate::sys::proc::self_and_ancestors(),
            cgroups: Cgroups::detect().map_err(|e| e.to_string()),
            kernel_release: uts
                .as_ref()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            net: Err("not probed yet".into()),
            hostname: uts
                .as_ref()
                .map(|u| u.nodename().to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    /// The detected host with the embedded production limits.
    pub fn for_tests() -> Host {
        Host::detect(Limits::production())
    }

    /// The cgroup hierarchies, or why there are none.
    pub fn cgroups(&self) -> Result<&Cgroups, FaultError> {
        self.cgroups.as_ref().map_err(|e| {
            FaultError::Precondition(format!("no usable cgroup hierarchy on this node: {e}"))
        })
    }

    /// `v1`, `v2`, `hybrid` or `none`.
    pub fn cgroup_mode(&self) -> String {
        match &self.cgroups {
            Ok(c) => c.mode().to_string(),
            Err(_) => CgroupMode::None.to_string(),
        }
    }
}
