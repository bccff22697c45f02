//! The seam between the engine's lifecycle logic and the node: everything that plans,
//! changes or records something goes through [`Effects`]. [`HostEffects`] is the real
//! one (the fault modules against the kernel, and the journal on disk);
//! [`super::testing::FakeEffects`] stands in for it in the engine's unit tests, and
//! one contract test runs the same lifecycle against both.

use std::future::Future;
use std::sync::Arc;

use super::journal::{self, Journal};
use crate::error::FaultError;
use crate::fault::{self, FaultSpec, KillSpec, Undo, UndoRecord};
use crate::host::Host;
use crate::limits::Limits;
use crate::sys::cgroup::Hierarchy;
use crate::sys::container::Container;
use crate::sys::proc::ProcInfo;

/// What the engine needs to know of a plan to admit it (the plan itself stays opaque).
#[derive(Debug, Clone)]
pub struct PlanFacts {
    /// What it would do, in words (all a dry run returns).
    pub description: String,
    /// The processes it would hit.
    pub targets: Vec<ProcInfo>,
    /// Matches left alone, and why.
    pub excluded: Vec<(ProcInfo, String)>,
    /// See [`crate::fault::Plan::conflict_key`].
    pub conflict_key: Option<String>,
    /// A stress fault's share of the node, percent.
    pub share: Option<f64>,
    /// The undo to journal before applying (covers a crash in between).
    pub prospective: UndoRecord,
    /// The container the spec named, as resolved.
    pub container: Option<Container>,
}

/// A plan and its facts.
#[derive(Debug)]
pub struct Planned<P> {
    pub plan: P,
    pub facts: PlanFacts,
}

/// What applying did.
#[derive(Debug)]
pub struct Applied<U> {
    pub undo: U,
    /// What was done, in words.
    pub description: String,
    /// The undo in words, for the record.
    pub undo_text: String,
    /// The undo as the journal keeps it.
    pub undo_record: UndoRecord,
    /// The processes hit.
    pub targets: Vec<ProcInfo>,
    /// Whether the fault can fail on its own while active (stress workers), so that
    /// the engine watches it with [`Effects::failure`].
    pub watch: bool,
}

/// Lets a repeating kill's round through the kill-rate window, or refuses it.
pub type Admit = Box<dyn FnOnce(usize) -> Result<(), FaultError> + Send>;

/// Everything the engine does to the node and to its journal.
pub trait Effects: Send + Sync + 'static {
    type Plan: Send + 'static;
    type Undo: Send + 'static;

    /// The limits the engine enforces.
    fn limits(&self) -> &Limits;

    /// Resolves the targets and checks the host can take the fault; changes nothing.
    fn plan(
        &self,
        spec: &FaultSpec,
    ) -> impl Future<Output = Result<Planned<Self::Plan>, FaultError>> + Send;

    /// Applies a plan; on a partial failure undoes what it did.
    fn apply(
        &self,
        spec: &FaultSpec,
        plan: Self::Plan,
    ) -> impl Future<Output = Result<Applied<Self::Undo>, FaultError>> + Send;

    /// Puts the node back. `Ok(Some(why))`: there was nothing left to undo.
    fn revert(
        &self,
        undo: Self::Undo,
    ) -> impl Future<Output = Result<Option<String>, FaultError>> + Send;

    /// Why a watched active fault has failed on its own, if it has.
    fn failure(&self, undo: &Self::Undo) -> Option<String>;

    /// Why the container an active fault targets is gone, if it is (`target gone:
    /// container ID stopped ...`), told from kernel state alone; the engine then
    /// reverts the fault. Asked of every fault whose plan named a container.
    fn target_gone(&self, container: &Container) -> Option<String>;

    /// One round of a repeating kill: resolve the selector, pass the count through
    /// `admit`, signal. Returns what it did.
    fn kill_round(
        &self,
        spec: &KillSpec,
        admit: Admit,
    ) -> impl Future<Output = Result<String, FaultError>> + Send;

    /// Writes a journal entry durably (replacing the fault's previous one). `spec` is
    /// given with an intent entry, before the fault touches the node.
    fn journal_write(
        &self,
        spec: Option<&FaultSpec>,
        entry: &journal::Entry,
    ) -> Result<(), FaultError>;

    /// Forgets a fault's entry (it is reverted, or never applied).
    fn journal_remove(&self, id: &str);

    /// The entries a previous run left, oldest first.
    fn journal_load(&self) -> Vec<journal::Entry>;

    /// Reverts a journalled undo (crash recovery). Idempotent.
    fn revert_record(
        &self,
        undo: &UndoRecord,
    ) -> impl Future<Output = Result<(), FaultError>> + Send;
}

/// TEST ONLY. When this environment variable is `1` at engine start, the intent write
/// aborts the process right after the entry is durable and before the kernel is
/// touched, so the crash-loop test can hit that window deterministically. Never set
/// it in production: every inject would kill the agent.
pub const CRASH_AFTER_JOURNAL_ENV: &str = "FAULTLINE_TEST_CRASH_AFTER_JOURNAL";
/// Test-only, like [`CRASH_AFTER_JOURNAL_ENV`]: `1` aborts right after the kernel change,
/// before the applied undo is journalled (only the intent entry covers it).
pub const CRASH_AFTER_APPLY_ENV: &str = "FAULTLINE_TEST_CRASH_AFTER_APPLY";

/// The real effects: the fault modules against this node's kernel, and the journal.
#[derive(Debug)]
pub struct HostEffects {
    host: Arc<Host>,
    journal: Option<Journal>,
    crash_after_journal: bool,
    /// See [`CRASH_AFTER_APPLY_ENV`].
    crash_after_apply: bool,
}

impl HostEffects {
    pub fn new(host: Host, journal: Option<Journal>) -> HostEffects {
        HostEffects {
            host: Arc::new(host),
            journal,
            crash_after_journal: std::env::var(CRASH_AFTER_JOURNAL_ENV).as_deref() == Ok("1"),
            crash_after_apply: std::env::var(CRASH_AFTER_APPLY_ENV).as_deref() == Ok("1"),
        }
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }
}

fn not_durable(e: impl std::fmt::Display) -> FaultError {
    FaultError::Failed(format!(
        "{e}; refusing to change the node without a durable record"
    ))
}

impl Effects for HostEffects {
    type Plan = fault::Plan;
    type Undo = Undo;

    fn limits(&self) -> &Limits {
        &self.host.limits
    }

    async fn plan(&self, spec: &FaultSpec) -> Result<Planned<fault::Plan>, FaultError> {
        let plan = spec.plan(&self.host).await?;
        let facts = PlanFacts {
            description: plan.description.clone(),
            targets: plan.target_infos(),
            excluded: plan.excluded.clone(),
            conflict_key: plan.conflict_key.clone(),
            share: plan.stress.as_ref().map(|s| s.node_percent),
            prospective: plan.prospective_undo(spec),
            container: plan.container.clone(),
        };
        Ok(Planned { plan, facts })
    }

    async fn apply(
        &self,
        spec: &FaultSpec,
        plan: fault::Plan,
    ) -> Result<Applied<Undo>, FaultError> {
        let a = spec.apply(plan, &self.host).await?;
        if self.crash_after_apply {
            // Test-only (see `CRASH_AFTER_APPLY_ENV`): die with the kernel changed and
            // only the intent in the journal.
            tracing::error!("{CRASH_AFTER_APPLY_ENV} is set: aborting after the kernel change");
            std::process::abort();
        }
        Ok(Applied {
            undo_text: a.undo.describe(),
            undo_record: a.undo.record(),
            watch: matches!(a.undo, Undo::Stress(_) | Undo::DiskFill(_)),
            undo: a.undo,
            description: a.description,
            targets: a.targets,
        })
    }

    async fn revert(&self, undo: Undo) -> Result<Option<String>, FaultError> {
        undo.revert(&self.host).await
    }

    fn failure(&self, undo: &Undo) -> Option<String> {
        match undo {
            Undo::Stress(r) => fault::stress::check_workers(r, &self.host),
            Undo::DiskFill(f) => fault::disk::check(f),
            Undo::IoStress(r) => fault::stress::check_workers(&r.running, &self.host),
            _ => None,
        }
    }

    fn target_gone(&self, c: &Container) -> Option<String> {
        let cgroups = self.host.cgroups().ok()?;
        // Its own group (the path names its id: not a `/` of a hierarchy the runtime
        // leaves alone), cgroup2 first, else the first in a v1 hierarchy mounted here.
        let (h, path) = c
            .cgroups
            .iter()
            .filter(|(h, p)| p.contains(&c.id) && cgroups.dir_of(h, p).is_some())
            .min_by_key(|(h, _)| *h != Hierarchy::V2)?;
        let why = match cgroups.procs_outside_owned(h, path) {
            Ok(None) => format!("its cgroup {path} is removed"),
            Ok(Some(pids)) if pids.is_empty() => format!("no process is left in its cgroup {path}"),
            // Running, or nothing can be told: not gone.
            Ok(Some(_)) | Err(_) => return None,
        };
        Some(format!(
            "target gone: container {} stopped ({why})",
            c.short_id()
        ))
    }

    async fn kill_round(&self, spec: &KillSpec, admit: Admit) -> Result<String, FaultError> {
        let (spec, host) = (spec.clone(), self.host.clone());
        tokio::task::spawn_blocking(move || {
            let plan = fault::process::plan_kill(&spec, &host)?;
            admit(plan.targets.len())?;
            fault::process::apply_kill(&spec, plan, &host).map(|a| a.description)
        })
        .await
        .map_err(|e| FaultError::Failed(format!("kill round panicked: {e}")))?
    }

    fn journal_write(
        &self,
        spec: Option<&FaultSpec>,
        entry: &journal::Entry,
    ) -> Result<(), FaultError> {
        let Some(j) = &self.journal else {
            return Ok(());
        };
        if let Some(FaultSpec::Network(n)) = spec {
            // `faultd cleanup` sweeps every namespace a network fault touched.
            j.note_netns(n.target()).map_err(not_durable)?;
        }
        if let (Some(FaultSpec::DiskFill(_)), UndoRecord::DiskFill { file }) = (spec, &entry.undo)
            && let Some(state) = &self.host.state_dir
            && let Some(dir) = file.parent()
        {
            // The start's and `faultd cleanup`'s sweep looks in every directory a fill
            // touched.
            fault::disk::note_dir(state, dir).map_err(not_durable)?;
        }
        if let (
            Some(FaultSpec::IoStress(_)),
            UndoRecord::IoStressPending { files } | UndoRecord::IoStress { files, .. },
        ) = (spec, &entry.undo)
            && let Some(state) = &self.host.state_dir
            && let Some(dir) = files.first().and_then(|f| f.parent())
        {
            // The same registry holds io stress directories.
            fault::disk::note_dir(state, dir).map_err(not_durable)?;
        }
        j.record(entry).map_err(not_durable)?;
        if self.crash_after_journal && entry.phase == journal::Phase::Applying {
            // Test-only (see `CRASH_AFTER_JOURNAL_ENV`): die between the journal write
            // and the kernel change, as a power cut would.
            tracing::error!(fault = %entry.id, "{CRASH_AFTER_JOURNAL_ENV} is set: aborting after the intent write");
            std::process::abort();
        }
        Ok(())
    }

    fn journal_remove(&self, id: &str) {
        if let Some(j) = &self.journal
            && let Err(e) = j.remove(id)
        {
            tracing::error!(fault = id, error = %e, "cannot remove journal entry; the next start will revert it again (harmless)");
        }
    }

    fn journal_load(&self) -> Vec<journal::Entry> {
        let Some(j) = &self.journal else {
            return Vec::new();
        };
        let (entries, bad) = j.load();
        for (path, why) in bad {
            tracing::error!(file = %path.display(), error = %why, "unreadable journal entry left in place; inspect it and run faultd cleanup");
        }
        entries
    }

    async fn revert_record(&self, undo: &UndoRecord) -> Result<(), FaultError> {
        undo.revert(&self.host).await
    }
}
