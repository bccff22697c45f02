//! `faultd cleanup`: put the node back with no agent running (systemd runs it as
//! `ExecStopPost`).
//!
//! It takes the state dir's lock (refusing while a live `faultd` holds it), replays the
//! journal like a starting agent ([`Engine::recover`]: resumes paused processes, thaws
//! frozen cgroups, restores qdiscs), then sweeps what faultline tags even without a
//! journal: root qdiscs with handle `fa17:`, ingress redirects to and the `flifb*` IFB
//! devices ([`crate::sys::tc::Tc::sweep`]) in the agent's own network namespace and in
//! every namespace a network fault touched (`<state-dir>/netns.json`), and removes this
//! agent's stress cgroups ([`Host::sweep_stress_groups`]) under its own group. Then it looks again: the node is clean when the
//! journal is empty and a second sweep finds nothing.

use std::path::Path;

use crate::engine::Engine;
use crate::host::Host;
use crate::limits::Limits;
use crate::sys::netns::NetnsTarget;

/// What cleanup did and whether the node is clean.
#[derive(Debug, Default)]
pub struct Report {
    /// One line per action taken.
    pub done: Vec<String>,
    /// What was not looked at, and why.
    pub notes: Vec<String>,
    /// One line per thing still wrong after the sweep.
    pub left: Vec<String>,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.left.is_empty()
    }
}

/// Runs the cleanup. Errs only when it cannot start (the lock is held, the state dir
/// cannot be created); everything else lands in the report.
pub async fn run(state_dir: &Path, limits: Limits) -> anyhow::Result<Report> {
    std::fs::create_dir_all(state_dir)
        .map_err(|e| anyhow::anyhow!("cannot create state dir {}: {e}", state_dir.display()))?;
    let _lock = crate::server::lock_state_dir(state_dir).map_err(|e| {
        anyhow::anyhow!("{e:#}; refusing to clean up under a live agent (it reverts its own faults when stopped: systemctl stop faultd)")
    })?;
    let mut r = Report::default();
    let journal = crate::engine::journal::Journal::open(state_dir)?;
    let mut spaces = vec![NetnsTarget::Current];
    for t in journal.netns() {
        if !spaces.contains(&t) {
            spaces.push(t);
        }
    }
    let mut host = Host::detect(limits);
    host.set_instance(state_dir);
    let engine = Engine::new(host, Some(journal.clone()));
    for res in engine.recover().await {
        match res.result {
            Ok(()) => r
                .done
                .push(format!("reverted fault {} from the journal", res.id)),
            Err(e) => r.left.push(format!("fault {}: revert failed: {e}", res.id)),
        }
    }
    for t in &spaces {
        match sweep(t).await {
            Ok(lines) => r
                .done
                .extend(lines.into_iter().map(|l| format!("{l} ({t})"))),
            Err(Gone) => r
                .done
                .push(format!("{t} no longer exists: nothing to sweep")),
        }
    }
    // This agent's stress cgroups (`faultline-stress-<instance>-*`, the instance derived
    // from the state dir) under its own group, which `ExecStopPost` shares with it.
    match engine.host().sweep_stress_groups() {
        Ok(names) => r.done.extend(
            names
                .into_iter()
                .map(|n| format!("removed stress cgroup {n}")),
        ),
        Err(e) => r.left.push(format!("stress cgroup sweep: {e}")),
    }
    // This agent's disk fill files (`.faultline-fill-<instance>-*`) in every directory
    // a fill touched (`<state-dir>/disk-dirs.json`).
    match engine.host().sweep_fill_files() {
        Ok(files) => r.done.extend(
            files
                .into_iter()
                .map(|f| format!("removed disk fill file {}", f.display())),
        ),
        Err(e) => r.left.push(format!("disk fill sweep: {e}")),
    }
    // Look again.
    if let Ok(files) = engine.host().sweep_fill_files()
        && !files.is_empty()
    {
        r.left.push(format!(
            "a second sweep still found disk fill files: {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    match engine.host().sweep_stress_groups() {
        Ok(names) if !names.is_empty() => r.left.push(format!(
            "a second sweep still found stress cgroups: {}",
            names.join(", ")
        )),
        _ => {}
    }
    Ok(r)
}

struct Gone;

/// Sweeps one namespace; `Err(Gone)` when it no longer exists.
async fn sweep(t: &NetnsTarget) -> Result<Vec<String>, Gone> {
    let tc = match crate::sys::tc::ops::Tc::connect(t).await {
        Ok(tc) => tc,
        Err(_) => return Err(Gone),
    };
    Ok(tc
        .sweep()
        .await
        .unwrap_or_else(|e| vec![format!("sweep failed: {e}")]))
}
