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
    /// Names this agent's own stress groups (`faultline-stress-<instance>-...`), from its
    /// state dir, so that a sweep removes only its own even if several agents share a
    /// cgroup (tests; one agent per node in production).
    pub instance: String,
    /// The TCP port faultd serves gRPC on (mutual TLS), once bound: every network fault
    /// steers it past itself, so no fault cuts a remote controller off.
    pub listen_port: std::sync::OnceLock<u16>,
    /// faultd's state dir (its filesystem is never filled; disk fills note the
    /// directories they touch in it), once known.
    pub state_dir: Option<std::path::PathBuf>,
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
            instance: "x".into(),
            listen_port: std::sync::OnceLock::new(),
            state_dir: None,
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

    /// Sets [`Host::instance`] from the state dir's path.
    pub fn set_instance(&mut self, state_dir: &std::path::Path) {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        state_dir
            .canonicalize()
            .unwrap_or_else(|_| state_dir.to_path_buf())
            .hash(&mut h);
        self.instance = format!("{:06x}", h.finish() & 0xff_ffff);
        self.state_dir = Some(state_dir.to_path_buf());
    }

    /// Removes this agent's stress groups left by a previous run (kills their workers);
    /// returns their names.
    pub fn sweep_stress_groups(&self) -> Result<Vec<String>, FaultError> {
        let c = self.cgroups()?;
        if c.stress_backend().is_err() {
            return Ok(Vec::new());
        }
        let prefix = format!(
            "{}stress-{}-",
            crate::sys::cgroup::OWNED_PREFIX,
            self.instance
        );
        let groups = c
            .find_owned(&crate::sys::cgroup::ParentSpec::Own)
            .map_err(|e| FaultError::Failed(format!("cannot list stress groups: {e}")))?;
        let mut out = Vec::new();
        for g in groups.into_iter().filter(|g| g.name.starts_with(&prefix)) {
            c.remove_owned(&g, std::time::Duration::from_secs(10))
                .map_err(|e| {
                    FaultError::Failed(format!("cannot remove stress group {}: {e}", g.name))
                })?;
            out.push(g.name);
        }
        Ok(out)
    }

    /// Removes this agent's disk fill files left by a previous run in every directory
    /// a fill touched; returns them.
    pub fn sweep_fill_files(&self) -> Result<Vec<std::path::PathBuf>, FaultError> {
        match &self.state_dir {
            Some(d) => crate::fault::disk::sweep(d, &self.instance),
            None => Ok(Vec::new()),
        }
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
