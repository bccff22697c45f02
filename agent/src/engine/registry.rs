//! The registry: a synchronous state machine over every live fault, its recent
//! history, the kill-rate window and the leases. No I/O, no waiting: the engine holds
//! it under one lock for a few microseconds at a time and does the kernel work (the
//! [`Effects`](super::Effects)) outside it.
//!
//! A fault's life: [`Registry::reserve`] (capacity, kill rate, conflicts and the lease
//! checked and a `Pending` slot taken in one step, so concurrent injects cannot
//! overshoot) -> [`Registry::activate`] -> one [`Registry::claim`] wins its end (every
//! other caller, and every later one, waits on the same outcome) -> [`Registry::finish`]
//! files it. A fault still pending when an abort or a lapsed lease claims it is
//! *doomed*: [`Registry::activate`] hands it straight to its end.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::record::{EndReason, FaultRecord, LeaseInfo, State};
use crate::error::FaultError;
use crate::fault::{Kind, UndoRecord};
use crate::limits::Limits;
use crate::policy;

/// How many ended faults `Get`/`List` can still show.
pub const ENDED_KEPT: usize = 256;

/// How a fault's end came out: the ended record, or why its revert failed.
pub type Outcome = Result<FaultRecord, FaultError>;

/// Resolves once the fault's end is filed.
pub type Done = watch::Receiver<Option<Outcome>>;

/// Completes a [`Done`]: the engine sends the outcome after it has emitted the event.
pub type Notify = watch::Sender<Option<Outcome>>;

/// What a new fault asks of the node, for the checks under the lock.
#[derive(Debug, Clone, Default)]
pub struct Ask<'a> {
    pub kind: Option<Kind>,
    /// Processes a kill would signal now (counted in the kill-rate window).
    pub kills: usize,
    /// See [`crate::fault::Plan::conflict_key`].
    pub conflict_key: Option<&'a str>,
    /// A stress fault's share of the node (CPU of the node, memory of RAM), percent.
    pub share: Option<f64>,
    /// The lease to bind to; it must exist.
    pub lease: Option<&'a str>,
}

/// A fault whose end the caller owns: stop its tasks, revert its undo, then
/// [`Registry::finish`].
#[derive(Debug)]
pub struct Ending<U> {
    pub record: FaultRecord,
    pub undo: U,
    pub undo_record: UndoRecord,
    pub tasks: Vec<AbortHandle>,
    pub why: EndReason,
}

/// The answer to a claim on a fault's end.
#[derive(Debug)]
pub enum Claim<U> {
    /// This caller ends it.
    Own(Box<Ending<U>>, Done),
    /// Someone else is ending it, or it ends as soon as it is applied: wait.
    Wait(Done),
    /// It has already ended.
    Ended(Box<FaultRecord>),
}

/// The answer to [`Registry::activate`].
#[derive(Debug)]
pub enum Activated<U> {
    /// Active: start its tasks and [`Registry::attach_tasks`].
    Active,
    /// An abort or a lapsed lease claimed it while it was being applied: end it now.
    EndNow(Box<Ending<U>>, Done),
    /// Not in the registry (cannot happen: only `finish`/`settle` remove faults).
    Vanished(U),
}

/// What [`Registry::lapse`] found.
#[derive(Debug, PartialEq)]
pub enum Lapse {
    /// The lease is gone (closed, or lapsed already).
    Gone,
    /// Renewed: sleep until this deadline.
    Until(Instant),
    /// Its deadline passed: it is removed; revert these faults.
    Lapsed(LeaseInfo),
}

/// An active fault's undo, for watchers.
#[derive(Debug)]
pub enum Lookup<'a, U> {
    Gone,
    NotActive,
    Active(&'a U),
}

#[derive(Debug)]
enum Stage<U> {
    Pending {
        doom: Option<EndReason>,
    },
    Active {
        undo: U,
        undo_record: UndoRecord,
        tasks: Vec<AbortHandle>,
    },
    Ending,
}

#[derive(Debug)]
struct Entry<U> {
    record: FaultRecord,
    stage: Stage<U>,
    conflict_key: Option<String>,
    /// A stress fault's kind and share of the node.
    share: Option<(Kind, f64)>,
    done: Notify,
}

#[derive(Debug)]
struct Lease {
    ttl: Duration,
    deadline: Instant,
    expires_at: SystemTime,
    holder: String,
}

#[derive(Debug)]
pub struct Registry<U> {
    live: HashMap<String, Entry<U>>,
    ended: VecDeque<FaultRecord>,
    kills: VecDeque<Instant>,
    leases: HashMap<String, Lease>,
}

impl<U> Default for Registry<U> {
    fn default() -> Self {
        Registry {
            live: HashMap::new(),
            ended: VecDeque::new(),
            kills: VecDeque::new(),
            leases: HashMap::new(),
        }
    }
}

fn unknown_fault(id: &str) -> FaultError {
    FaultError::NotFound(format!(
        "no fault with id {id:?} (faultctl list shows them)"
    ))
}

fn unknown_lease(id: &str) -> FaultError {
    FaultError::NotFound(format!(
        "lease {id:?} is unknown or has lapsed (its faults were reverted)"
    ))
}

impl<U> Registry<U> {
    /// Live faults (pending, active, ending) by id, and kind.
    fn live_kinds(&self) -> Vec<(String, Kind)> {
        let mut v: Vec<(String, Kind)> = self
            .live
            .values()
            .map(|e| (e.record.id.clone(), e.record.kind()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn recent_kills(&mut self, now: Instant) -> usize {
        let cutoff = now.checked_sub(Duration::from_secs(60));
        while let (Some(t), Some(c)) = (self.kills.front(), cutoff) {
            if *t >= c {
                break;
            }
            self.kills.pop_front();
        }
        self.kills.len()
    }

    /// Whether the fault fits now: no conflicting fault, the concurrency caps, the
    /// kill rate, the stress share, the lease. Changes nothing. (A dry run's checks.)
    pub fn admit(&mut self, ask: &Ask, limits: &Limits, now: Instant) -> Result<(), FaultError> {
        // A key may name several alternatives (`a|b`: a network fault in both
        // directions); two faults conflict when they share one.
        let overlap = |a: &str, b: &str| a.split('|').any(|x| b.split('|').any(|y| x == y));
        if let Some(k) = ask.conflict_key
            && let Some(e) = self
                .live
                .values()
                .find(|e| e.conflict_key.as_deref().is_some_and(|x| overlap(x, k)))
        {
            let what = match e.record.kind() {
                Kind::DiskFill => {
                    "filling the same filesystem: revert it first (one disk fill per filesystem)"
                }
                Kind::IoLimit => {
                    "limiting the same cgroup on the same device: revert it first (one io limit per cgroup and device)"
                }
                Kind::IoStress => {
                    "stressing this node's disks: revert it first (one io stress per node at a time)"
                }
                _ => {
                    "active on the same interface and direction: revert it first (at most one network fault per namespace, interface and direction)"
                }
            };
            return Err(FaultError::Precondition(format!(
                "fault {} is already {what}",
                e.record.id
            )));
        }
        if let Some(kind) = ask.kind {
            policy::check_capacity(&self.live_kinds(), kind, limits)?;
        }
        let recent = self.recent_kills(now);
        policy::check_kill_rate(ask.kills, recent, limits)?;
        if let (Some(pct), Some(kind)) = (ask.share, ask.kind) {
            let active: f64 = self
                .live
                .values()
                .filter_map(|e| e.share.filter(|(k, _)| *k == kind).map(|(_, p)| p))
                .sum();
            policy::check_stress_share(kind == Kind::Memory, pct, active, limits)?;
        }
        if let Some(l) = ask.lease
            && !self.leases.contains_key(l)
        {
            return Err(FaultError::NotFound(format!(
                "lease {l:?} is unknown or has lapsed: open one with OpenLease (faultctl lease open) and bind to its id"
            )));
        }
        Ok(())
    }

    /// [`Registry::admit`], then takes a `Pending` slot under a fresh id (set in the
    /// returned record) and counts the kills.
    pub fn reserve(
        &mut self,
        ask: &Ask,
        mut record: FaultRecord,
        limits: &Limits,
        now: Instant,
    ) -> Result<FaultRecord, FaultError> {
        self.admit(ask, limits, now)?;
        record.id = loop {
            let id = format!("f-{:08x}", rand::random::<u32>());
            if !self.live.contains_key(&id) && !self.ended.iter().any(|r| r.id == id) {
                break id;
            }
        };
        record.state = State::Pending;
        for _ in 0..ask.kills {
            self.kills.push_back(now);
        }
        let (done, _) = watch::channel(None);
        self.live.insert(
            record.id.clone(),
            Entry {
                record: record.clone(),
                stage: Stage::Pending { doom: None },
                conflict_key: ask.conflict_key.map(str::to_string),
                share: ask.kind.zip(ask.share),
                done,
            },
        );
        Ok(record)
    }

    /// Counts `n` kills of a repeating kill's round if they fit in the window.
    pub fn admit_kills(
        &mut self,
        n: usize,
        limits: &Limits,
        now: Instant,
    ) -> Result<(), FaultError> {
        let recent = self.recent_kills(now);
        policy::check_kill_rate(n, recent, limits)?;
        for _ in 0..n {
            self.kills.push_back(now);
        }
        Ok(())
    }

    /// A pending fault is applied: it becomes active with `record` and its undo, unless
    /// it was doomed meanwhile, in which case the caller now owns its end.
    pub fn activate(
        &mut self,
        id: &str,
        record: FaultRecord,
        undo: U,
        undo_record: UndoRecord,
    ) -> Activated<U> {
        let Some(e) = self.live.get_mut(id) else {
            return Activated::Vanished(undo);
        };
        e.record = record;
        match std::mem::replace(&mut e.stage, Stage::Ending) {
            Stage::Pending { doom: Some(why) } => Activated::EndNow(
                Box::new(Ending {
                    record: e.record.clone(),
                    undo,
                    undo_record,
                    tasks: Vec::new(),
                    why,
                }),
                e.done.subscribe(),
            ),
            _ => {
                e.stage = Stage::Active {
                    undo,
                    undo_record,
                    tasks: Vec::new(),
                };
                Activated::Active
            }
        }
    }

    /// Hands an active fault its tasks (timer, kill loop, watcher). If its end was
    /// claimed meanwhile, gives them back for the caller to abort.
    pub fn attach_tasks(&mut self, id: &str, tasks: Vec<AbortHandle>) -> Option<Vec<AbortHandle>> {
        match self.live.get_mut(id).map(|e| &mut e.stage) {
            Some(Stage::Active { tasks: t, .. }) => {
                t.extend(tasks);
                None
            }
            _ => Some(tasks),
        }
    }

    /// Claims the end of fault `id` for `why`. Exactly one claim of a live fault owns
    /// it; the others wait for the same outcome. A pending fault is doomed (ends as soon
    /// as it is applied) if `doom_pending`, else refused as still being applied.
    pub fn claim(
        &mut self,
        id: &str,
        why: &EndReason,
        doom_pending: bool,
    ) -> Result<Claim<U>, FaultError> {
        let Some(e) = self.live.get_mut(id) else {
            return match self.ended.iter().rev().find(|r| r.id == id) {
                Some(r) => Ok(Claim::Ended(Box::new(r.clone()))),
                None => Err(unknown_fault(id)),
            };
        };
        match &mut e.stage {
            Stage::Pending { doom } => {
                if !doom_pending {
                    return Err(FaultError::Precondition(format!(
                        "fault {id} is still being applied; retry in a moment"
                    )));
                }
                doom.get_or_insert_with(|| why.clone());
                Ok(Claim::Wait(e.done.subscribe()))
            }
            Stage::Ending => Ok(Claim::Wait(e.done.subscribe())),
            Stage::Active { .. } => {
                let Stage::Active {
                    undo,
                    undo_record,
                    tasks,
                } = std::mem::replace(&mut e.stage, Stage::Ending)
                else {
                    unreachable!("matched above")
                };
                Ok(Claim::Own(
                    Box::new(Ending {
                        record: e.record.clone(),
                        undo,
                        undo_record,
                        tasks,
                        why: why.clone(),
                    }),
                    e.done.subscribe(),
                ))
            }
        }
    }

    /// Claims every live fault (dooming the pending ones), oldest first.
    pub fn claim_all(&mut self, why: &EndReason) -> Vec<(String, Claim<U>)> {
        let mut ids: Vec<(SystemTime, String)> = self
            .live
            .values()
            .map(|e| (e.record.created_at, e.record.id.clone()))
            .collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|(_, id)| self.claim(&id, why, true).ok().map(|c| (id, c)))
            .collect()
    }

    /// Removes a live fault and files `record` as its ended state (an end that was
    /// claimed, a one-shot that completed, an apply that failed). Returns the sender
    /// of its outcome: the engine emits the event first, then sends.
    pub fn finish(&mut self, id: &str, record: FaultRecord) -> Option<Notify> {
        let e = self.live.remove(id)?;
        if self.ended.len() >= ENDED_KEPT {
            self.ended.pop_front();
        }
        self.ended.push_back(record);
        Some(e.done)
    }

    /// An active fault's undo (for the watcher that checks its workers).
    pub fn active_undo(&self, id: &str) -> Lookup<'_, U> {
        match self.live.get(id).map(|e| &e.stage) {
            None => Lookup::Gone,
            Some(Stage::Active { undo, .. }) => Lookup::Active(undo),
            Some(_) => Lookup::NotActive,
        }
    }

    /// One fault, live or recently ended.
    pub fn get(&self, id: &str) -> Result<FaultRecord, FaultError> {
        self.live
            .get(id)
            .map(|e| e.record.clone())
            .or_else(|| self.ended.iter().rev().find(|r| r.id == id).cloned())
            .ok_or_else(|| unknown_fault(id))
    }

    /// Live faults (oldest first), and with `include_ended` the recently ended ones.
    pub fn list(&self, include_ended: bool) -> Vec<FaultRecord> {
        let mut out: Vec<FaultRecord> = self.live.values().map(|e| e.record.clone()).collect();
        if include_ended {
            out.extend(self.ended.iter().cloned());
        }
        out.sort_by_key(|r| r.created_at);
        out
    }

    #[cfg(test)]
    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    pub fn has_lease(&self, id: &str) -> bool {
        self.leases.contains_key(id)
    }

    fn lease_info(&self, id: &str) -> Option<LeaseInfo> {
        let l = self.leases.get(id)?;
        let mut faults: Vec<String> = self
            .live
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

    /// Opens a lease under a fresh id; it lapses at `now + ttl` unless renewed.
    pub fn open_lease(&mut self, ttl: Duration, holder: &str, now: Instant) -> LeaseInfo {
        let id = loop {
            let id = format!("l-{:08x}", rand::random::<u32>());
            if !self.leases.contains_key(&id) {
                break id;
            }
        };
        self.leases.insert(
            id.clone(),
            Lease {
                ttl,
                deadline: now + ttl,
                expires_at: SystemTime::now() + ttl,
                holder: holder.to_string(),
            },
        );
        self.lease_info(&id).expect("just inserted")
    }

    /// Pushes a lease's deadline `ttl` past `now`.
    pub fn renew_lease(&mut self, id: &str, now: Instant) -> Result<LeaseInfo, FaultError> {
        let l = self.leases.get_mut(id).ok_or_else(|| unknown_lease(id))?;
        l.deadline = now + l.ttl;
        l.expires_at = SystemTime::now() + l.ttl;
        Ok(self.lease_info(id).expect("present"))
    }

    /// Removes a lease. With `revert`, returns its live faults for the caller to end;
    /// without, unbinds them (they run to their own duration).
    pub fn close_lease(&mut self, id: &str, revert: bool) -> Result<Vec<String>, FaultError> {
        let info = self.lease_info(id).ok_or_else(|| unknown_lease(id))?;
        self.leases.remove(id);
        if revert {
            return Ok(info.faults);
        }
        for e in self.live.values_mut() {
            if e.record.lease.as_deref() == Some(id) {
                e.record.lease = None;
            }
        }
        Ok(Vec::new())
    }

    /// Whether lease `id` has lapsed at `now`; a lapsed lease is removed (so nothing
    /// new can bind to it) and its faults returned.
    pub fn lapse(&mut self, id: &str, now: Instant) -> Lapse {
        match self.leases.get(id) {
            None => Lapse::Gone,
            Some(l) if l.deadline > now => Lapse::Until(l.deadline),
            Some(_) => {
                let info = self.lease_info(id).expect("present");
                self.leases.remove(id);
                Lapse::Lapsed(info)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{FaultSpec, PauseSpec, Pick, Selector};

    type Reg = Registry<u32>;

    fn record() -> FaultRecord {
        FaultRecord {
            id: String::new(),
            spec: FaultSpec::Pause(PauseSpec {
                selector: Selector {
                    pid: Some(7),
                    ..Default::default()
                },
                pick: Pick::All,
            }),
            state: State::Pending,
            labels: Default::default(),
            requested_by: "test".into(),
            created_at: SystemTime::now(),
            duration: Some(Duration::from_secs(60)),
            expires_at: None,
            ended_at: None,
            end_reason: String::new(),
            description: String::new(),
            undo: String::new(),
            targets: Vec::new(),
            lease: None,
            container: None,
        }
    }

    fn pause() -> Ask<'static> {
        Ask {
            kind: Some(Kind::Pause),
            ..Default::default()
        }
    }

    fn limits(max: u32) -> Limits {
        let mut l = Limits::staging();
        l.max_concurrent_faults = max;
        l
    }

    fn active(reg: &mut Reg, now: Instant) -> String {
        let r = reg.reserve(&pause(), record(), &limits(10), now).unwrap();
        assert!(matches!(
            reg.activate(&r.id, r.clone(), 1, UndoRecord::Nothing),
            Activated::Active
        ));
        r.id
    }

    #[test]
    fn one_claim_owns_the_end_and_the_rest_wait_for_its_outcome() {
        let mut reg = Reg::default();
        let now = Instant::now();
        let id = active(&mut reg, now);
        let why = EndReason::Reverted("r".into());
        let Claim::Own(ending, mut first) = reg.claim(&id, &why, false).unwrap() else {
            panic!("first claim owns");
        };
        assert_eq!(ending.undo, 1);
        let mut waiters = Vec::new();
        for why in [
            EndReason::Expired,
            EndReason::Failed("w".into()),
            why.clone(),
        ] {
            match reg.claim(&id, &why, true).unwrap() {
                Claim::Wait(d) => waiters.push(d),
                other => panic!("later claims wait: {other:?}"),
            }
        }
        // Still live (and counted) while ending.
        assert_eq!(reg.live_count(), 1);
        let mut rec = ending.record.clone();
        rec.state = State::Reverted;
        let done = reg.finish(&id, rec.clone()).unwrap();
        done.send(Some(Ok(rec))).unwrap();
        for d in waiters.iter_mut().chain([&mut first]) {
            assert_eq!(
                d.borrow_and_update()
                    .as_ref()
                    .unwrap()
                    .as_ref()
                    .unwrap()
                    .state,
                State::Reverted
            );
        }
        assert_eq!(reg.live_count(), 0);
        assert!(
            matches!(reg.claim(&id, &why, true).unwrap(), Claim::Ended(r) if r.state == State::Reverted)
        );
        assert!(reg.finish(&id, record()).is_none(), "filed once");
    }

    #[test]
    fn a_pending_fault_is_refused_or_doomed() {
        let mut reg = Reg::default();
        let now = Instant::now();
        let r = reg.reserve(&pause(), record(), &limits(10), now).unwrap();
        let why = EndReason::Reverted("abort".into());
        let e = reg.claim(&r.id, &why, false).unwrap_err();
        assert!(e.to_string().contains("still being applied"), "{e}");
        assert!(matches!(
            reg.claim(&r.id, &why, true).unwrap(),
            Claim::Wait(_)
        ));
        match reg.activate(&r.id, r.clone(), 9, UndoRecord::Nothing) {
            Activated::EndNow(e, _) => {
                assert_eq!(e.undo, 9);
                assert_eq!(e.why, why);
            }
            other => panic!("doomed: {other:?}"),
        }
        assert!(matches!(
            reg.claim(&r.id, &why, false).unwrap(),
            Claim::Wait(_)
        ));
        assert!(reg.attach_tasks(&r.id, Vec::new()).is_some());
    }

    #[test]
    fn capacity_counts_pending_and_ending_faults() {
        let mut reg = Reg::default();
        let now = Instant::now();
        let l = limits(2);
        let a = reg.reserve(&pause(), record(), &l, now).unwrap();
        let b = active(&mut reg, now);
        let _ = reg.claim(&b, &EndReason::Expired, false).unwrap();
        let e = reg.reserve(&pause(), record(), &l, now).unwrap_err();
        assert!(matches!(e, FaultError::TooMany { .. }), "{e}");
        assert!(
            e.to_string().contains(&a.id) && e.to_string().contains(&b),
            "{e}"
        );
        reg.finish(&b, record());
        reg.reserve(&pause(), record(), &l, now).unwrap();
    }

    #[test]
    fn conflicts_kill_rate_share_and_lease() {
        let mut reg = Reg::default();
        let now = Instant::now();
        let l = Limits::staging();
        let net = Ask {
            kind: Some(Kind::Network),
            conflict_key: Some("net:1:2:veth0:egress"),
            ..Default::default()
        };
        let first = reg.reserve(&net, record(), &l, now).unwrap();
        let e = reg.admit(&net, &l, now).unwrap_err();
        assert!(e.to_string().contains(&first.id), "{e}");

        let max = l.process.max_kills_per_minute as usize;
        let kills = Ask {
            kind: Some(Kind::Kill),
            kills: max,
            ..Default::default()
        };
        reg.admit(&kills, &l, now).unwrap();
        reg.admit_kills(max, &l, now).unwrap();
        assert!(reg.admit_kills(1, &l, now).is_err());
        // The window slides.
        reg.admit_kills(1, &l, now + Duration::from_secs(61))
            .unwrap();

        let cpu = |p| Ask {
            kind: Some(Kind::Cpu),
            share: Some(p),
            ..Default::default()
        };
        let max = l.cpu.max_percent;
        reg.reserve(&cpu(max * 0.75), record(), &l, now).unwrap();
        let e = reg.admit(&cpu(max * 0.5), &l, now).unwrap_err();
        assert!(e.to_string().contains("cpu.max_percent"), "{e}");

        let bound = Ask {
            kind: Some(Kind::Pause),
            lease: Some("l-nope"),
            ..Default::default()
        };
        assert!(matches!(
            reg.admit(&bound, &l, now),
            Err(FaultError::NotFound(_))
        ));
    }

    #[test]
    fn leases_lapse_at_their_deadline_unless_renewed() {
        let mut reg = Reg::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let lease = reg.open_lease(ttl, "me", t0);
        let ask = Ask {
            kind: Some(Kind::Pause),
            lease: Some(&lease.id),
            ..Default::default()
        };
        let mut r = record();
        r.lease = Some(lease.id.clone());
        let f = reg.reserve(&ask, r, &Limits::staging(), t0).unwrap();
        assert_eq!(reg.lapse(&lease.id, t0 + ttl / 2), Lapse::Until(t0 + ttl));
        reg.renew_lease(&lease.id, t0 + ttl / 2).unwrap();
        assert_eq!(
            reg.lapse(&lease.id, t0 + ttl),
            Lapse::Until(t0 + ttl + ttl / 2)
        );
        match reg.lapse(&lease.id, t0 + ttl * 2) {
            Lapse::Lapsed(info) => assert_eq!(info.faults, vec![f.id.clone()]),
            other => panic!("{other:?}"),
        }
        assert_eq!(reg.lapse(&lease.id, t0 + ttl * 2), Lapse::Gone);
        assert!(reg.renew_lease(&lease.id, t0).is_err());
        // Nothing binds to a lapsed lease.
        assert!(matches!(
            reg.admit(&ask, &Limits::staging(), t0),
            Err(FaultError::NotFound(_))
        ));
    }

    #[test]
    fn closing_a_lease_unbinds_or_hands_back_its_faults() {
        let mut reg = Reg::default();
        let now = Instant::now();
        for revert in [false, true] {
            let lease = reg.open_lease(Duration::from_secs(5), "me", now);
            let mut r = record();
            r.lease = Some(lease.id.clone());
            let ask = Ask {
                kind: Some(Kind::Pause),
                lease: Some(&lease.id),
                ..Default::default()
            };
            let f = reg.reserve(&ask, r, &Limits::staging(), now).unwrap();
            let ids = reg.close_lease(&lease.id, revert).unwrap();
            assert_eq!(ids.is_empty(), !revert);
            assert_eq!(reg.get(&f.id).unwrap().lease.is_none(), !revert);
            assert!(!reg.has_lease(&lease.id));
        }
    }

    #[test]
    fn ended_history_is_bounded() {
        let mut reg = Reg::default();
        let now = Instant::now();
        let mut first = None;
        for _ in 0..ENDED_KEPT + 5 {
            let id = active(&mut reg, now);
            first.get_or_insert(id.clone());
            let mut r = reg.get(&id).unwrap();
            r.state = State::Reverted;
            reg.finish(&id, r);
        }
        assert_eq!(reg.list(true).len(), ENDED_KEPT);
        assert!(reg.get(first.as_ref().unwrap()).is_err());
    }
}
