//! Test support for the engine: [`FakeEffects`], which changes nothing and keeps a
//! ledger of what it would have done, and [`lifecycle`], the contract every
//! [`Effects`] passes (the engine's unit tests run it against the fake, a privileged
//! test against [`super::HostEffects`] on the real kernel, so the fake cannot drift
//! from the real thing in what the engine relies on).

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use super::Engine;
use super::effects::{Admit, Applied, Effects, PlanFacts, Planned};
use super::journal;
use super::record::{EventType, FaultRecord, InjectRequest, State};
use crate::error::FaultError;
use crate::fault::stress::{CpuAmount, MemAmount};
use crate::fault::{FaultSpec, KillSpec, Timed, UndoRecord};
use crate::limits::Limits;
use crate::sys::proc::ProcInfo;

/// The fake's undo: the number of the apply it undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FakeUndo(pub u64);

/// What the fake did, in order.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// Applies, by number.
    pub applied: Vec<u64>,
    /// Reverts, by the number of the apply they undid.
    pub reverted: Vec<u64>,
    /// The journal as it stands (id -> entry).
    pub journal: BTreeMap<String, journal::Entry>,
    /// Whether every apply found its intent already journalled.
    pub intent_before_apply: bool,
    /// Journalled undos reverted by recovery, in order.
    pub recovered: Vec<UndoRecord>,
    /// Processes "signalled" by repeating kills.
    pub kills: usize,
}

/// How the fake behaves.
#[derive(Debug, Default, Clone)]
pub struct Knobs {
    /// How long an apply takes (time to race it).
    pub apply_delay: Duration,
    /// How long a revert takes.
    pub revert_delay: Duration,
    /// The plan fails with this (a host check).
    pub plan_error: Option<FaultError>,
    /// Applies fail with this message.
    pub fail_apply: Option<String>,
    /// Reverts fail with this message.
    pub fail_revert: Option<String>,
    /// Journalled undos whose recovery fails.
    pub fail_recovery: Vec<UndoRecord>,
    /// How many processes a process fault (or a kill round) hits.
    pub targets: usize,
    /// Applies whose workers have "died" (see [`Effects::failure`]).
    pub failing: HashSet<u64>,
}

/// Effects that change nothing.
#[derive(Debug)]
pub struct FakeEffects {
    limits: Limits,
    ledger: Mutex<Ledger>,
    knobs: Mutex<Knobs>,
}

impl FakeEffects {
    pub fn new(limits: Limits) -> FakeEffects {
        FakeEffects {
            limits,
            ledger: Mutex::new(Ledger {
                intent_before_apply: true,
                ..Default::default()
            }),
            knobs: Mutex::new(Knobs {
                targets: 1,
                ..Default::default()
            }),
        }
    }

    /// A copy of the ledger.
    pub fn ledger(&self) -> Ledger {
        self.ledger.lock().unwrap().clone()
    }

    /// Changes how it behaves from now on.
    pub fn set(&self, f: impl FnOnce(&mut Knobs)) {
        f(&mut self.knobs.lock().unwrap());
    }

    /// Puts an entry in the journal, as a previous run would have left it.
    pub fn preload(&self, e: journal::Entry) {
        self.ledger.lock().unwrap().journal.insert(e.id.clone(), e);
    }

    fn knobs(&self) -> Knobs {
        self.knobs.lock().unwrap().clone()
    }
}

fn fake_proc(pid: i32) -> ProcInfo {
    ProcInfo {
        pid,
        ppid: 1,
        comm: "fake".into(),
        cmdline: "fake".into(),
        uid: 0,
        starttime: 1,
        state: 'S',
        kthread: false,
    }
}

impl Effects for FakeEffects {
    type Plan = ();
    type Undo = FakeUndo;

    fn limits(&self) -> &Limits {
        &self.limits
    }

    async fn plan(&self, spec: &FaultSpec) -> Result<Planned<()>, FaultError> {
        let k = self.knobs();
        if let Some(e) = k.plan_error {
            return Err(e);
        }
        // Let concurrent requests interleave here, as a real plan's I/O would.
        tokio::task::yield_now().await;
        let process = matches!(spec, FaultSpec::Kill(_) | FaultSpec::Pause(_));
        let facts = PlanFacts {
            description: format!("fake {}", spec.kind().name()),
            targets: if process {
                (0..k.targets).map(|i| fake_proc(1000 + i as i32)).collect()
            } else {
                Vec::new()
            },
            excluded: Vec::new(),
            conflict_key: match spec {
                FaultSpec::Network(n) => {
                    Some(format!("net:{}:{:?}", n.fault().iface, n.fault().direction))
                }
                _ => None,
            },
            share: match spec {
                FaultSpec::Cpu(c) => match c.amount {
                    CpuAmount::Share(p) => Some(p.get()),
                    CpuAmount::Cores { .. } => None,
                },
                FaultSpec::Memory(m) => match m.amount {
                    MemAmount::Percent(p) => Some(p.get()),
                    MemAmount::Bytes(_) => None,
                },
                _ => None,
            },
            prospective: UndoRecord::Nothing,
            container: None,
        };
        Ok(Planned { plan: (), facts })
    }

    async fn apply(&self, spec: &FaultSpec, _plan: ()) -> Result<Applied<FakeUndo>, FaultError> {
        let k = self.knobs();
        {
            let mut l = self.ledger.lock().unwrap();
            let intent = l
                .journal
                .values()
                .any(|e| e.phase == journal::Phase::Applying);
            l.intent_before_apply &= intent;
        }
        if !k.apply_delay.is_zero() {
            tokio::time::sleep(k.apply_delay).await;
        }
        if let Some(m) = k.fail_apply {
            return Err(FaultError::Failed(m));
        }
        let n = {
            let mut l = self.ledger.lock().unwrap();
            let n = l.applied.len() as u64 + 1;
            l.applied.push(n);
            n
        };
        let process = matches!(spec, FaultSpec::Kill(_) | FaultSpec::Pause(_));
        Ok(Applied {
            undo: FakeUndo(n),
            description: format!("fake {} #{n}", spec.kind().name()),
            undo_text: format!("undo #{n}"),
            undo_record: UndoRecord::Nothing,
            targets: if process {
                (0..k.targets).map(|i| fake_proc(1000 + i as i32)).collect()
            } else {
                Vec::new()
            },
            watch: matches!(spec, FaultSpec::Cpu(_) | FaultSpec::Memory(_)),
        })
    }

    async fn revert(&self, undo: FakeUndo) -> Result<Option<String>, FaultError> {
        let k = self.knobs();
        if !k.revert_delay.is_zero() {
            tokio::time::sleep(k.revert_delay).await;
        }
        self.ledger.lock().unwrap().reverted.push(undo.0);
        match k.fail_revert {
            Some(m) => Err(FaultError::Failed(m)),
            None => Ok(None),
        }
    }

    fn failure(&self, undo: &FakeUndo) -> Option<String> {
        self.knobs
            .lock()
            .unwrap()
            .failing
            .contains(&undo.0)
            .then(|| format!("fake worker of #{} died", undo.0))
    }

    async fn kill_round(&self, _spec: &KillSpec, admit: Admit) -> Result<String, FaultError> {
        let n = self.knobs().targets;
        admit(n)?;
        self.ledger.lock().unwrap().kills += n;
        Ok(format!("killed {n}"))
    }

    fn journal_write(
        &self,
        _spec: Option<&FaultSpec>,
        entry: &journal::Entry,
    ) -> Result<(), FaultError> {
        self.ledger
            .lock()
            .unwrap()
            .journal
            .insert(entry.id.clone(), entry.clone());
        Ok(())
    }

    fn journal_remove(&self, id: &str) {
        self.ledger.lock().unwrap().journal.remove(id);
    }

    fn journal_load(&self) -> Vec<journal::Entry> {
        let mut v: Vec<journal::Entry> = self
            .ledger
            .lock()
            .unwrap()
            .journal
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|e| e.created_at_ms);
        v
    }

    async fn revert_record(&self, undo: &UndoRecord) -> Result<(), FaultError> {
        let fail = self.knobs().fail_recovery.contains(undo);
        self.ledger.lock().unwrap().recovered.push(undo.clone());
        if fail {
            Err(FaultError::Failed("fake recovery failed".into()))
        } else {
            Ok(())
        }
    }
}

/// A request for `fault`, as the API would make it.
pub fn request(fault: Timed) -> InjectRequest {
    InjectRequest {
        fault,
        labels: Default::default(),
        dry_run: false,
        requested_by: "contract".into(),
        lease: None,
    }
}

/// The lifecycle contract: a dry run changes nothing; an inject is active and listed;
/// two reverts and an abort racing each other end it exactly once (every caller gets
/// the same filed record, one `reverted` event is emitted); it stays queryable as
/// ended; a late revert returns the ended record. `fault` must last (a pause, say).
/// `during` checks the effects while the fault is active (the fake's ledger, or the
/// kernel); afterwards the caller checks they saw one apply and one revert. Returns the
/// ended record.
pub async fn lifecycle<E: Effects>(
    engine: &Engine<E>,
    fault: Timed,
    during: impl FnOnce(&FaultRecord) -> Result<(), String>,
) -> Result<FaultRecord, String> {
    let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_string()) };
    let mut events = engine.subscribe();
    let dry = engine
        .inject(InjectRequest {
            dry_run: true,
            ..request(fault.clone())
        })
        .await
        .map_err(|e| format!("dry run: {e}"))?;
    check(dry.fault.is_none(), "a dry run returns no fault")?;
    check(
        engine.list(false).is_empty(),
        "a dry run leaves nothing live",
    )?;

    let out = engine
        .inject(request(fault))
        .await
        .map_err(|e| format!("inject: {e}"))?;
    let f = out.fault.ok_or("inject returned no fault")?;
    check(f.state == State::Active, "injected fault is active")?;
    check(f.expires_at.is_some(), "a lasting fault has an expiry")?;
    let live = engine.list(false);
    check(live.len() == 1 && live[0].id == f.id, "listed as live")?;
    during(&f)?;

    let (a, b, all) = tokio::join!(
        engine.revert(&f.id, "first"),
        engine.revert(&f.id, "second"),
        engine.revert_all("third"),
    );
    let a = a.map_err(|e| format!("revert: {e}"))?;
    let b = b.map_err(|e| format!("second revert: {e}"))?;
    // The abort either joins the end already under way (and reports it) or, with real
    // effects fast enough to file the end between the joined futures' first polls,
    // finds nothing live: both are one end. Never another fault, never a failure.
    check(
        all.iter().all(|r| r.id == f.id) && all.len() <= 1,
        "abort saw the fault or nothing",
    )?;
    check(all.iter().all(|r| r.result.is_ok()), "abort result ok")?;
    check(a.state == State::Reverted, "ended as reverted")?;
    check(
        a.ended_at == b.ended_at && a.end_reason == b.end_reason,
        "every ender sees the same filed record",
    )?;
    check(engine.list(false).is_empty(), "nothing live after the end")?;
    let got = engine.get(&f.id).map_err(|e| format!("get: {e}"))?;
    check(got.state == State::Reverted, "get shows it ended")?;
    check(
        engine.list(true).iter().any(|r| r.id == f.id),
        "list --all keeps it",
    )?;
    let late = engine
        .revert(&f.id, "late")
        .await
        .map_err(|e| format!("late revert: {e}"))?;
    check(
        late.ended_at == a.ended_at,
        "a late revert returns the record",
    )?;

    let mut injected = 0;
    let mut ended = 0;
    while let Ok(e) = events.try_recv() {
        if e.fault_id != f.id {
            continue;
        }
        match e.kind {
            EventType::Injected => injected += 1,
            EventType::Reverted | EventType::Expired | EventType::Failed => ended += 1,
            _ => {}
        }
    }
    check(injected == 1, "one injected event")?;
    check(ended == 1, "one ended event")?;
    Ok(a)
}
