//! `faultd cleanup`: put the node back with no agent running (systemd runs it as
//! `ExecStopPost`).
//!
//! It takes the state dir's lock (refusing while a live `faultd` holds it), replays the
//! journal like a starting agent ([`Engine::recover`]: resumes paused processes, thaws
//! frozen cgroups, restores qdiscs), then sweeps what faultline tags even without a
//! journal: root qdiscs with handle `fa17:`, ingress redirects to and the `flifb*` IFB
//! devices ([`crate::sys::tc::Tc::sweep`]) in the agent's own network namespace and in
//! every namespace a network fault touched (`<state-dir>/netns.json`), and removes
//! faultline-owned cgroups (`faultline-*`, [`crate::sys::cgroup::Cgroups::sweep_owned`])
//! under the agent's own group. Then it looks again: the node is clean when the
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
    let engine = Engine::new(Host::detect(limits), Some(journal.clone()));
    let owned_parent = crate::sys::cgroup::ParentSpec::Own;
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
    // faultline-owned cgroups (stress groups, `faultline-*`) under the agent's own
    // group, which `ExecStopPost` shares with the agent.
    // In a hierarchy root (no systemd unit, no delegation) `faultline-*` groups may
    // belong to someone else's run (tests make them there): leave them alone unless
    // cleanup's own group is below the root in every hierarchy.
    let at_root = std::fs::read_to_string("/proc/self/cgroup")
        .map(|t| {
            t.lines()
                .any(|l| matches!(l.rsplit_once(':'), Some((_, "/" | "/agent"))))
        })
        .unwrap_or(true);
    match engine.host().cgroups() {
        _ if at_root => r.notes.push(
            "faultline cgroup sweep skipped: cleanup runs in a root cgroup, not in faultd's own unit".into(),
        ),
        Ok(cg) => match cg.sweep_owned(&owned_parent, std::time::Duration::from_secs(5)) {
            Ok(names) => r
                .done
                .extend(names.into_iter().map(|n| format!("removed cgroup {n}"))),
            Err(e) => r.left.push(format!("cgroup sweep: {e}")),
        },
        Err(e) => r.notes.push(format!("no cgroup sweep: {e}")),
    }
    // Look again.
    if !at_root
        && let Ok(cg) = engine.host().cgroups()
        && let Ok(left) = cg.find_owned(&owned_parent)
    {
        for g in left {
            r.left.push(format!(
                "faultline cgroup {} still exists: {:?}",
                g.name, g.groups
            ));
        }
    }
    let (entries, bad) = journal.load();
    for e in entries {
        if !r.left.iter().any(|l| l.contains(&e.id)) {
            r.left.push(format!(
                "fault {} ({}) still in the journal: {}",
                e.id, e.kind, e.description
            ));
        }
    }
    for (p, why) in bad {
        r.left.push(format!(
            "unreadable journal entry {}: {why} (inspect it, revert by hand, delete it)",
            p.display()
        ));
    }
    for t in &spaces {
        if let Ok(lines) = sweep(t).await
            && !lines.is_empty()
        {
            r.left.push(format!(
                "{t}: a second sweep still found: {}",
                lines.join("; ")
            ));
        }
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
