//! The fault registry and lifecycle.
//!
//! `inject` validates against the limits, resolves targets, reserves a slot under the
//! registry lock (so concurrent requests cannot overshoot a limit), applies, and starts
//! the fault's timer. Every lasting fault has a deadline; when it passes the timer
//! reverts the fault. `revert`, `revert_all` and the timer all go through `end`, which
//! takes the fault out of the active set under the lock (so exactly one of them runs
//! the undo), reverts outside the lock, and files the ended record.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::broadcast;
use tokio::task::AbortHandle;

pub mod health;
pub mod journal;

use crate::error::FaultError;
use crate::fault::{FaultSpec, Kind, Undo};
use crate::host::Host;
use crate::policy;
use crate::sys::proc::ProcInfo;

/// TEST ONLY. When this environment variable is `1` at engine start, `inject` aborts
/// the process right after writing a fault's intent to the journal and before touching
/// the kernel, so the crash-loop test can hit that window deterministically. Never set
/// it in production: every inject would kill the agent.
pub const CRASH_AFTER_JOURNAL_ENV: &str = "FAULTLINE_TEST_CRASH_AFTER_JOURNAL";
/// Test-only, like [`CRASH_AFTER_JOURNAL_ENV`]: `1` aborts right after the kernel change,
/// before the applied undo is journalled (only the intent entry covers it).
pub const CRASH_AFTER_APPLY_ENV: &str = "FAULTLINE_TEST_CRASH_AFTER_APPLY";

/// How many ended faults `Get`/`List` can still show.
const ENDED_KEPT: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Active,
    Reverted,
    Expired,
    Failed,
    Completed,
}

/// A fault as the registry keeps it.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    pub id: String,
    pub spec: FaultSpec,
    pub state: State,
    pub labels: HashMap<String, String>,
    pub requested_by: String,
    pub created_at: SystemTime,
    pub duration: Option<Duration>,
    pub expires_at: Option<SystemTime>,
    pub ended_at: Option<SystemTime>,
    pub end_reason: String,
    pub description: String,
    pub undo: String,
    pub targets: Vec<ProcInfo>,
    /// The lease it is bound to.
    pub lease: Option<String>,
}

impl FaultRecord {
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Injected,
    Reverted,
    Expired,
    Failed,
    Refused,
    Tick,
    /// The health guard tripped and aborted every fault (the message says why).
    HealthAbort,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventType,
    pub at: SystemTime,
    pub fault_id: String,
    pub fault_kind: Option<Kind>,
    pub message: String,
    pub fault: Option<FaultRecord>,
    pub requested_by: String,
}

/// Why a fault ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// Reverted on request (the reason given).
    Reverted(String),
    /// Its duration ran out.
    Expired,
    /// It failed while active (a stress worker died); reverted for cleanliness.
    Failed(String),
}

/// A request to inject, already validated into domain types.
#[derive(Debug, Clone)]
pub struct InjectRequest {
    pub spec: FaultSpec,
    pub duration: Option<Duration>,
    pub labels: HashMap<String, String>,
    pub dry_run: bool,
    pub requested_by: String,
    /// Bind to this lease.
    pub lease: Option<String>,
}

/// A lease as callers see it.
#[derive(Debug, Clone)]
pub struct LeaseInfo {
    pub id: String,
    pub ttl: Duration,
    pub expires_at: SystemTime,
    pub holder: String,
    /// Active faults bound to it.
    pub faults: Vec<String>,
}

struct Lease {
    ttl: Duration,
    deadline: tokio::time::Instant,
    expires_at: SystemTime,
    holder: String,
}

/// What `inject` did (or would do).
#[derive(Debug, Clone)]
pub struct InjectOutcome {
    pub fault: Option<FaultRecord>,
    pub targets: Vec<ProcInfo>,
    pub excluded: Vec<(ProcInfo, String)>,
    pub plan: String,
}

/// The result of one fault's revert within `revert_all`.
#[derive(Debug, Clone)]
pub struct RevertResult {
    pub id: String,
    pub result: Result<(), String>,
}

struct Entry {
    record: FaultRecord,
    undo: Option<Undo>,
    tasks: Vec<AbortHandle>,
    /// Being reverted: still on the node (and still counted), but someone owns its end.
    ending: bool,
    /// See [`crate::fault::Plan::conflict_key`].
    conflict_key: Option<String>,
    /// A stress fault's share of the node: (is memory, percent).
    share: Option<(bool, f64)>,
}

#[derive(Default)]
struct Registry {
    active: HashMap<String, Entry>,
    ended: VecDeque<FaultRecord>,
    kills: VecDeque<Instant>,
    leases: HashMap<String, Lease>,
}

impl Registry {
    fn active_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.active.keys().cloned().collect();
        ids.sort();
        ids
    }

    fn active_kinds(&self) -> Vec<(String, Kind)> {
        let mut v: Vec<(String, Kind)> = self
            .active
            .values()
            .map(|e| (e.record.id.clone(), e.record.kind()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn lease_info(&self, id: &str) -> Option<LeaseInfo> {
        let l = self.leases.get(id)?;
        let mut faults: Vec<String> = self
            .active
            .values()
            .filter(|e| e.record.lease.as_deref() == Some(id))
            .map(|e| e.record.id.clone())
            .collect();
        faults.sort();
        Some(LeaseInfo {
            id: id.to_string(),
            ttl: l.ttl,
            expires_at: l.expires_at,
            holder: l.holder.clone(),
            faults,
        })
    }

    fn recent_kills(&mut self) -> usize {
        let cutoff = Instant::now() - Duration::from_secs(60);
        while self.kills.front().is_some_and(|t| *t < cutoff) {
            self.kills.pop_front();
        }
        self.kills.len()
    }

    fn file_ended(&mut self, r: FaultRecord) {
        if self.ended.len() >= ENDED_KEPT {
            self.ended.pop_front();
        }
        self.ended.push_back(r);
    }
}

/// The engine: cheap to clone, safe to share across requests.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    host: Arc<Host>,
    journal: Option<journal::Journal>,
    reg: Mutex<Registry>,
    events: broadcast::Sender<Event>,
    started_at: SystemTime,
    health_aborts: std::sync::atomic::AtomicU64,
    /// See [`CRASH_AFTER_JOURNAL_ENV`].
    crash_after_journal: bool,
    /// See [`CRASH_AFTER_APPLY_ENV`].
    crash_after_apply: bool,
    lease_lapses: std::sync::atomic::AtomicU64,
}

impl Engine {
    /// An engine; with a journal, every fault is recorded durably while it lives.
    pub fn new(host: Host, journal: Option<journal::Journal>) -> Engine {
        let (events, _) = broadcast::channel(1024);
        Engine {
            inner: Arc::new(Inner {
                host: Arc::new(host),
                journal,
                reg: Mutex::new(Registry::default()),
                events,
                started_at: SystemTime::now(),
                health_aborts: Default::default(),
                crash_after_journal: std::env::var(CRASH_AFTER_JOURNAL_ENV).as_deref() == Ok("1"),
                crash_after_apply: std::env::var(CRASH_AFTER_APPLY_ENV).as_deref() == Ok("1"),
                lease_lapses: Default::default(),
            }),
        }
    }

    fn journal_entry(
        rec: &FaultRecord,
        phase: journal::Phase,
        undo: crate::fault::UndoRecord,
    ) -> journal::Entry {
        journal::Entry {
            id: rec.id.clone(),
            kind: rec.kind().name().to_string(),
            phase,
            created_at_ms: rec
                .created_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            requested_by: rec.requested_by.clone(),
            description: rec.description.clone(),
            undo,
        }
    }

    fn journal_record(&self, e: &journal::Entry) -> Result<(), FaultError> {
        match &self.inner.journal {
            Some(j) => j.record(e).map_err(|e| {
                FaultError::Failed(format!(
                    "{e}; refusing to change the node without a durable record"
                ))
            }),
            None => Ok(()),
        }
    }

    fn journal_forget(&self, id: &str) {
        if let Some(j) = &self.inner.journal
            && let Err(e) = j.remove(id)
        {
            tracing::error!(fault = id, error = %e, "cannot remove journal entry; the next start will revert it again (harmless)");
        }
    }

    /// Reverts every fault a previous run left in the journal. Call before serving.
    /// Returns one result per fault found.
    pub async fn recover(&self) -> Vec<RevertResult> {
        let Some(j) = &self.inner.journal else {
            return Vec::new();
        };
        let (entries, bad) = j.load();
        for (path, why) in bad {
            tracing::error!(file = %path.display(), error = %why, "unreadable journal entry left in place; inspect it and run faultd cleanup");
        }
        let mut out = Vec::new();
        for e in entries {
            let r = e.undo.revert(&self.inner.host).await;
            match &r {
                Ok(()) => {
                    tracing::info!(fault = %e.id, kind = %e.kind, phase = ?e.phase, undo = ?e.undo, "recovered: reverted a fault left by a previous run");
                    self.journal_forget(&e.id);
                }
                Err(err) => {
                    tracing::error!(fault = %e.id, error = %err, "recovery could not revert a fault left by a previous run");
                    let mut e2 = e.clone();
                    e2.phase = journal::Phase::RevertFailed;
                    let _ = j.record(&e2);
                }
            }
            out.push(RevertResult {
                id: e.id,
                result: r.map_err(|e| e.to_string()),
            });
        }
        out
    }

    pub fn host(&self) -> &Host {
        &self.inner.host
    }

    /// The journal, if this engine keeps one.
    pub fn journal(&self) -> Option<&journal::Journal> {
        self.inner.journal.as_ref()
    }

    pub fn started_at(&self) -> SystemTime {
        self.inner.started_at
    }

    /// How many times the health guard has aborted every fault since start (the
    /// metrics hook `health_abort()` reads this).
    pub fn health_aborts(&self) -> u64 {
        self.inner
            .health_aborts
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_health_abort(&self) {
        self.inner
            .health_aborts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn reg(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves the registry consistent (every mutation
        // is a single insert/remove), so a poisoned lock is still usable.
        self.inner.reg.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many leases have lapsed (their holder stopped renewing) since start.
    pub fn lease_lapses(&self) -> u64 {
        self.inner
            .lease_lapses
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Lifecycle events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    fn emit(
        &self,
        kind: EventType,
        fault: Option<&FaultRecord>,
        message: String,
        requested_by: &str,
    ) {
        let _ = self.inner.events.send(Event {
            kind,
            at: SystemTime::now(),
            fault_id: fault.map(|f| f.id.clone()).unwrap_or_default(),
            fault_kind: fault.map(|f| f.kind()),
            message,
            fault: fault.cloned(),
            requested_by: requested_by.to_string(),
        });
    }

    fn refused(&self, req: &InjectRequest, e: FaultError) -> FaultError {
        if !req.dry_run {
            let _ = self.inner.events.send(Event {
                kind: EventType::Refused,
                at: SystemTime::now(),
                fault_id: String::new(),
                fault_kind: Some(req.spec.kind()),
                message: e.to_string(),
                fault: None,
                requested_by: req.requested_by.clone(),
            });
        }
        e
    }

    /// Injects a fault, or with `dry_run` says what it would do.
    pub async fn inject(&self, req: InjectRequest) -> Result<InjectOutcome, FaultError> {
        let limits = &self.inner.host.limits;
        if req.spec.lasts() && req.duration.is_none() {
            let field = if matches!(req.spec, FaultSpec::Kill(_)) {
                "duration (--for, with --every)"
            } else {
                "duration (--for)"
            };
            return Err(FaultError::invalid(
                field,
                format!("a {} fault needs a duration", req.spec.kind().name()),
            ));
        }
        if let Err(e) = policy::check(&req.spec, req.duration, limits)
            .and_then(|()| policy::check_lease(req.lease.is_some(), limits))
        {
            return Err(self.refused(&req, e));
        }
        // A fault bound to a lease that does not exist would never lapse with it.
        if let Some(l) = &req.lease
            && !self.reg().leases.contains_key(l)
        {
            return Err(FaultError::NotFound(format!(
                "lease {l:?} is unknown or has lapsed: open one with OpenLease (faultctl lease open) and bind to its id"
            )));
        }
        let plan = match req.spec.plan(&self.inner.host).await {
            Ok(p) => p,
            Err(e @ FaultError::Protected(_)) => return Err(self.refused(&req, e)),
            Err(e) => return Err(e),
        };
        let targets = plan.target_infos();
        let excluded = plan.excluded.clone();
        let plan_text = plan.description.clone();
        let kills = if matches!(req.spec, FaultSpec::Kill(_)) {
            targets.len()
        } else {
            0
        };

        let share = plan
            .stress
            .as_ref()
            .map(|sp| (matches!(req.spec, FaultSpec::Memory(_)), sp.node_percent));
        // Reserve under the lock: capacity and kill rate, then a pending record.
        let now = SystemTime::now();
        let record = {
            let mut reg = self.reg();
            let conflict = plan.conflict_key.as_ref().and_then(|k| {
                reg.active
                    .values()
                    .find(|e| e.conflict_key.as_ref() == Some(k))
                    .map(|e| e.record.id.clone())
            });
            let checks = match conflict {
                Some(id) => Err(FaultError::Precondition(format!(
                    "fault {id} is already active on the same interface and direction: revert it first (at most one network fault per namespace, interface and direction)"
                ))),
                None => policy::check_capacity(&reg.active_kinds(), req.spec.kind(), limits)
                    .and_then(|()| {
                        let recent = reg.recent_kills();
                        policy::check_kill_rate(kills, recent, limits)
                    })
                    .and_then(|()| match share {
                        Some((mem, pct)) => {
                            let active: f64 = reg
                                .active
                                .values()
                                .filter_map(|e| e.share.filter(|(m, _)| *m == mem).map(|(_, p)| p))
                                .sum();
                            policy::check_stress_share(mem, pct, active, limits)
                        }
                        None => Ok(()),
                    }),
            };
            if let Err(e) = checks {
                drop(reg);
                return Err(self.refused(&req, e));
            }
            if req.dry_run {
                return Ok(InjectOutcome {
                    fault: None,
                    targets,
                    excluded,
                    plan: plan_text,
                });
            }
            let id = loop {
                let id = format!("f-{:08x}", rand::random::<u32>());
                if !reg.active.contains_key(&id) && !reg.ended.iter().any(|r| r.id == id) {
                    break id;
                }
            };
            let record = FaultRecord {
                id: id.clone(),
                spec: req.spec.clone(),
                state: State::Pending,
                labels: req.labels.clone(),
                requested_by: req.requested_by.clone(),
                created_at: now,
                duration: req.duration,
                expires_at: req.duration.filter(|_| req.spec.lasts()).map(|d| now + d),
                ended_at: None,
                end_reason: String::new(),
                description: plan_text.clone(),
                undo: String::new(),
                targets: targets.clone(),
                lease: req.lease.clone(),
            };
            let at = Instant::now();
            for _ in 0..kills {
                reg.kills.push_back(at);
            }
            reg.active.insert(
                id,
                Entry {
                    record: record.clone(),
                    undo: None,
                    tasks: Vec::new(),
                    ending: false,
                    conflict_key: plan.conflict_key.clone(),
                    share,
                },
            );
            record
        };

        let intent = Self::journal_entry(
            &record,
            journal::Phase::Applying,
            plan.prospective_undo(&req.spec),
        );
        let noted = match (&req.spec, &self.inner.journal) {
            (FaultSpec::Network(n), Some(j)) => j.note_netns(&n.target).map_err(|e| {
                FaultError::Failed(format!(
                    "{e}; refusing to change the node without a durable record"
                ))
            }),
            _ => Ok(()),
        };
        if let Err(e) = noted.and_then(|()| self.journal_record(&intent)) {
            self.reg().active.remove(&record.id);
            return Err(e);
        }
        if self.inner.crash_after_journal {
            // Test-only (see `CRASH_AFTER_JOURNAL_ENV`): die between the journal write
            // and the kernel change, as a power cut would.
            tracing::error!(fault = %record.id, "{CRASH_AFTER_JOURNAL_ENV} is set: aborting after the intent write");
            std::process::abort();
        }
        let applied = match req.spec.apply(plan, &self.inner.host).await {
            Ok(a) => a,
            Err(e) => {
                let mut rec = record;
                // apply() undid its partial work before failing.
                self.journal_forget(&rec.id);
                {
                    let mut reg = self.reg();
                    reg.active.remove(&rec.id);
                    rec.state = State::Failed;
                    rec.ended_at = Some(SystemTime::now());
                    rec.end_reason = e.to_string();
                    reg.file_ended(rec.clone());
                }
                self.emit(
                    EventType::Failed,
                    Some(&rec),
                    e.to_string(),
                    &rec.requested_by,
                );
                return Err(e);
            }
        };
        if self.inner.crash_after_apply {
            // Test-only (see `CRASH_AFTER_APPLY_ENV`): die with the kernel changed and
            // only the intent in the journal.
            tracing::error!(fault = %record.id, "{CRASH_AFTER_APPLY_ENV} is set: aborting after the kernel change");
            std::process::abort();
        }

        let mut rec = record;
        rec.description = applied.description;
        rec.undo = applied.undo.describe();
        rec.targets = applied.targets.clone();
        if !req.spec.lasts() {
            rec.state = State::Completed;
            rec.ended_at = Some(SystemTime::now());
            rec.end_reason = "one-shot: done".into();
            self.journal_forget(&rec.id);
            {
                let mut reg = self.reg();
                reg.active.remove(&rec.id);
                reg.file_ended(rec.clone());
            }
            self.emit(
                EventType::Injected,
                Some(&rec),
                rec.description.clone(),
                &rec.requested_by,
            );
            return Ok(InjectOutcome {
                fault: Some(rec),
                targets: applied.targets,
                excluded,
                plan: plan_text,
            });
        }

        rec.state = State::Active;
        if let Err(e) = self.journal_record(&Self::journal_entry(
            &rec,
            journal::Phase::Active,
            applied.undo.record(),
        )) {
            // The intent entry is still there, so a crash now is covered; say so and go on.
            tracing::warn!(fault = %rec.id, error = %e, "cannot journal the applied undo; the intent entry covers it");
        }
        let mut tasks = Vec::new();
        if let Some(d) = rec.duration {
            let me = self.clone();
            let id = rec.id.clone();
            tasks.push(
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    // `end` aborts the fault's tasks, this timer among them: run it as a
                    // task of its own so the revert is never cancelled halfway.
                    let _ =
                        tokio::spawn(async move { me.end(&id, EndReason::Expired).await }).await;
                })
                .abort_handle(),
            );
        }
        if let FaultSpec::Kill(k) = &req.spec
            && let Some(every) = k.every
        {
            tasks.push(self.spawn_kill_loop(rec.id.clone(), k.clone(), every));
        }
        if matches!(applied.undo, Undo::Stress(_)) {
            tasks.push(self.spawn_stress_watch(rec.id.clone()));
        }
        let orphan = {
            let mut reg = self.reg();
            match reg.active.get_mut(&rec.id) {
                Some(entry) => {
                    entry.record = rec.clone();
                    entry.undo = Some(applied.undo);
                    entry.tasks = tasks;
                    None
                }
                // Cannot happen: only `end` removes active entries, and it refuses pending
                // ones. Undo rather than leave an orphan.
                None => Some((applied.undo, tasks)),
            }
        };
        if let Some((undo, tasks)) = orphan {
            for t in &tasks {
                t.abort();
            }
            let _ = undo.revert(&self.inner.host).await;
            return Err(FaultError::Failed(format!(
                "fault {} vanished while being applied",
                rec.id
            )));
        }
        self.emit(
            EventType::Injected,
            Some(&rec),
            rec.description.clone(),
            &rec.requested_by,
        );
        Ok(InjectOutcome {
            fault: Some(rec),
            targets: applied.targets,
            excluded,
            plan: plan_text,
        })
    }

    fn spawn_kill_loop(
        &self,
        id: String,
        spec: crate::fault::KillSpec,
        every: Duration,
    ) -> AbortHandle {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                let s = spec.clone();
                let m2 = me.clone();
                let round = tokio::task::spawn_blocking(move || -> Result<String, FaultError> {
                    let host = &m2.inner.host;
                    let plan = crate::fault::process::plan_kill(&s, host)?;
                    {
                        let mut reg = m2.reg();
                        let recent = reg.recent_kills();
                        policy::check_kill_rate(plan.targets.len(), recent, &host.limits)?;
                        let at = Instant::now();
                        for _ in 0..plan.targets.len() {
                            reg.kills.push_back(at);
                        }
                    }
                    crate::fault::process::apply_kill(&s, plan, host).map(|a| a.description)
                })
                .await;
                let msg = match round {
                    Ok(Ok(d)) => d,
                    Ok(Err(e)) => format!("round skipped: {e}"),
                    Err(e) => format!("round panicked: {e}"),
                };
                let rec = {
                    let reg = me.reg();
                    match reg.active.get(&id) {
                        Some(e) => e.record.clone(),
                        None => return,
                    }
                };
                me.emit(EventType::Tick, Some(&rec), msg, &rec.requested_by);
            }
        })
        .abort_handle()
    }

    /// Watches a stress fault's workers: if one dies (OOM-killed inside its cap, or
    /// killed by someone), the fault ends as failed, with why.
    fn spawn_stress_watch(&self, id: String) -> AbortHandle {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let why = {
                    let reg = me.reg();
                    match reg.active.get(&id) {
                        None => return,
                        Some(e) => match &e.undo {
                            Some(Undo::Stress(r)) if !e.ending => {
                                crate::fault::stress::check_workers(r, &me.inner.host)
                            }
                            _ => None,
                        },
                    }
                };
                if let Some(why) = why {
                    // Detached: `end` aborts this watcher.
                    let m2 = me.clone();
                    let _ = tokio::spawn(async move { m2.end(&id, EndReason::Failed(why)).await })
                        .await;
                    return;
                }
            }
        })
        .abort_handle()
    }

    /// Ends an active fault: stops its tasks, reverts it, files the record.
    async fn end(&self, id: &str, why: EndReason) -> Result<FaultRecord, FaultError> {
        // Take ownership of the fault's end, leaving it visible (and counted) as active
        // until its revert is done and the ended record is filed in the same step.
        let mut waited = Duration::ZERO;
        let (tasks, mut rec, undo) = loop {
            {
                let mut reg = self.reg();
                match reg.active.get_mut(id) {
                    None => {
                        return match reg.ended.iter().rev().find(|r| r.id == id) {
                            Some(r) => Ok(r.clone()),
                            None => Err(FaultError::NotFound(format!(
                                "no fault with id {id:?} (faultctl list shows them)"
                            ))),
                        };
                    }
                    Some(e) if e.record.state == State::Pending => {
                        return Err(FaultError::Precondition(format!(
                            "fault {id} is still being applied; retry in a moment"
                        )));
                    }
                    Some(e) if !e.ending => {
                        e.ending = true;
                        break (
                            std::mem::take(&mut e.tasks),
                            e.record.clone(),
                            e.undo.take(),
                        );
                    }
                    // Someone else is reverting it: wait for them, then report the outcome.
                    Some(_) => {}
                }
            }
            if waited > Duration::from_secs(30) {
                return Err(FaultError::Failed(format!(
                    "fault {id} has been reverting for 30 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            waited += Duration::from_millis(5);
        };
        for t in &tasks {
            t.abort();
        }
        let undo_record = undo.as_ref().map(|u| u.record());
        let result = match undo {
            Some(u) => u.revert(&self.inner.host).await,
            None => Ok(None),
        };
        let gone = result.as_ref().ok().cloned().flatten();
        let result = result.map(|_| ());
        rec.ended_at = Some(SystemTime::now());
        let (state, event, mut reason) = match (&result, &why) {
            (Err(e), _) => (
                State::Failed,
                EventType::Failed,
                format!("revert failed: {e}"),
            ),
            (Ok(()), EndReason::Expired) => (
                State::Expired,
                EventType::Expired,
                "duration ran out".to_string(),
            ),
            (Ok(()), EndReason::Reverted(r)) => (State::Reverted, EventType::Reverted, r.clone()),
            (Ok(()), EndReason::Failed(r)) => (State::Failed, EventType::Failed, r.clone()),
        };
        if let Some(g) = gone {
            reason = format!("{reason} (nothing left to undo: {g})");
        }
        rec.state = state;
        rec.end_reason = reason.clone();
        match &result {
            Ok(()) => self.journal_forget(&rec.id),
            Err(_) => {
                if let Some(r) = &undo_record {
                    let _ = self.journal_record(&Self::journal_entry(
                        &rec,
                        journal::Phase::RevertFailed,
                        r.clone(),
                    ));
                }
            }
        }
        {
            let mut reg = self.reg();
            reg.active.remove(id);
            reg.file_ended(rec.clone());
        }
        self.emit(event, Some(&rec), reason, &rec.requested_by);
        result.map(|()| rec)
    }

    /// Reverts one fault now.
    pub async fn revert(&self, id: &str, reason: &str) -> Result<FaultRecord, FaultError> {
        let reason = if reason.is_empty() {
            "reverted on request".to_string()
        } else {
            reason.to_string()
        };
        self.end(id, EndReason::Reverted(reason)).await
    }

    /// Reverts every active fault concurrently; returns when all are done.
    pub async fn revert_all(&self, reason: &str) -> Vec<RevertResult> {
        let reason = if reason.is_empty() {
            "abort".to_string()
        } else {
            format!("abort: {reason}")
        };
        // Faults still pending finish applying first; wait briefly for them.
        for _ in 0..50 {
            if !self
                .reg()
                .active
                .values()
                .any(|e| e.record.state == State::Pending)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ids = self.reg().active_ids();
        let futs = ids.into_iter().map(|id| {
            let me = self.clone();
            let reason = reason.clone();
            async move {
                let r = me.end(&id, EndReason::Reverted(reason)).await;
                RevertResult {
                    id,
                    result: r.map(|_| ()).map_err(|e| e.to_string()),
                }
            }
        });
        futures::future::join_all(futs).await
    }

    /// Opens a lease that lives `ttl` without renewal.
    pub fn open_lease(&self, ttl: Duration, holder: &str) -> Result<LeaseInfo, FaultError> {
        let limits = &self.inner.host.limits;
        if ttl < Duration::from_secs(1) {
            return Err(FaultError::invalid("ttl_ms", "a lease lives at least 1s"));
        }
        policy::check_lease_ttl(ttl, limits)?;
        let id = {
            let mut reg = self.reg();
            let id = loop {
                let id = format!("l-{:08x}", rand::random::<u32>());
                if !reg.leases.contains_key(&id) {
                    break id;
                }
            };
            reg.leases.insert(
                id.clone(),
                Lease {
                    ttl,
                    deadline: tokio::time::Instant::now() + ttl,
                    expires_at: SystemTime::now() + ttl,
                    holder: holder.to_string(),
                },
            );
            id
        };
        self.spawn_lease_watch(id.clone());
        tracing::info!(lease = %id, ttl = ?ttl, holder, "lease opened");
        Ok(self.reg().lease_info(&id).expect("just inserted"))
    }

    /// Pushes a lease's deadline `ttl` into the future.
    pub fn renew_lease(&self, id: &str) -> Result<LeaseInfo, FaultError> {
        let mut reg = self.reg();
        let l = reg.leases.get_mut(id).ok_or_else(|| {
            FaultError::NotFound(format!(
                "lease {id:?} is unknown or has lapsed (its faults were reverted)"
            ))
        })?;
        l.deadline = tokio::time::Instant::now() + l.ttl;
        l.expires_at = SystemTime::now() + l.ttl;
        Ok(reg.lease_info(id).expect("present"))
    }

    /// Releases a lease; with `revert`, reverts its faults first.
    pub async fn close_lease(
        &self,
        id: &str,
        revert: bool,
    ) -> Result<Vec<RevertResult>, FaultError> {
        let info = self.reg().lease_info(id).ok_or_else(|| {
            FaultError::NotFound(format!(
                "lease {id:?} is unknown or has lapsed (its faults were reverted)"
            ))
        })?;
        let results = if revert {
            self.revert_ids(info.faults, &format!("lease {id} closed"))
                .await
        } else {
            Vec::new()
        };
        let mut reg = self.reg();
        reg.leases.remove(id);
        for e in reg.active.values_mut() {
            if e.record.lease.as_deref() == Some(id) {
                e.record.lease = None;
            }
        }
        Ok(results)
    }

    fn spawn_lease_watch(&self, id: String) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let deadline = match me.reg().leases.get(&id) {
                    Some(l) => l.deadline,
                    None => return,
                };
                tokio::time::sleep_until(deadline).await;
                let lapsed = {
                    let mut reg = me.reg();
                    match reg.leases.get(&id) {
                        None => return,
                        Some(l) if l.deadline > tokio::time::Instant::now() => None,
                        Some(_) => {
                            let info = reg.lease_info(&id);
                            reg.leases.remove(&id);
                            info
                        }
                    }
                };
                if let Some(info) = lapsed {
                    me.inner
                        .lease_lapses
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(lease = %id, holder = %info.holder, faults = info.faults.len(), "lease expired: reverting its faults");
                    me.revert_ids(
                        info.faults,
                        &format!(
                            "lease expired ({} stopped renewing lease {id})",
                            info.holder
                        ),
                    )
                    .await;
                    return;
                }
            }
        });
    }

    async fn revert_ids(&self, ids: Vec<String>, reason: &str) -> Vec<RevertResult> {
        let futs = ids.into_iter().map(|id| {
            let me = self.clone();
            let reason = reason.to_string();
            async move {
                let r = me.end(&id, EndReason::Reverted(reason)).await;
                RevertResult {
                    id,
                    result: r.map(|_| ()).map_err(|e| e.to_string()),
                }
            }
        });
        futures::future::join_all(futs).await
    }

    /// One fault, active or recently ended.
    pub fn get(&self, id: &str) -> Result<FaultRecord, FaultError> {
        let reg = self.reg();
        reg.active
            .get(id)
            .map(|e| e.record.clone())
            .or_else(|| reg.ended.iter().rev().find(|r| r.id == id).cloned())
            .ok_or_else(|| {
                FaultError::NotFound(format!(
                    "no fault with id {id:?} (faultctl list shows them)"
                ))
            })
    }

    /// Active faults (oldest first), and with `include_ended` the recently ended ones.
    pub fn list(&self, include_ended: bool) -> Vec<FaultRecord> {
        let reg = self.reg();
        let mut out: Vec<FaultRecord> = reg.active.values().map(|e| e.record.clone()).collect();
        out.sort_by_key(|r| r.created_at);
        if include_ended {
            let mut ended: Vec<FaultRecord> = reg.ended.iter().cloned().collect();
            ended.extend(out);
            out = ended;
            out.sort_by_key(|r| r.created_at);
        }
        out
    }
}
