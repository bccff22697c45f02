//! The engine's lifecycle against [`FakeEffects`]: no root, no kernel, virtual time.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::testing::{self, FakeEffects};
use super::{Engine, EventType, InjectRequest, State, journal};
use crate::error::FaultError;
use crate::fault::stress::{CpuAmount, CpuSpec, Placement};
use crate::fault::{
    FaultSpec, KillSpec, PauseSpec, Percent, Pick, ProcId, Selector, Timed, UndoRecord,
};
use crate::limits::Limits;

type Fake = Engine<FakeEffects>;

fn engine(limits: Limits) -> Fake {
    Engine::with_effects(FakeEffects::new(limits))
}

fn staging() -> Fake {
    engine(Limits::staging())
}

fn pause(secs: u64) -> Timed {
    Timed::new(
        FaultSpec::Pause(PauseSpec {
            selector: Selector {
                pid: Some(4242),
                ..Default::default()
            },
            pick: Pick::All,
        }),
        Some(Duration::from_secs(secs)),
    )
    .unwrap()
}

fn cpu(pct: f64) -> Timed {
    Timed::new(
        FaultSpec::Cpu(CpuSpec {
            amount: CpuAmount::Share(Percent::share(pct).unwrap()),
            placement: Placement::Own,
        }),
        Some(Duration::from_secs(30)),
    )
    .unwrap()
}

fn req(fault: Timed) -> InjectRequest {
    testing::request(fault)
}

async fn inject(e: &Fake, fault: Timed) -> String {
    e.inject(req(fault)).await.unwrap().fault.unwrap().id
}

fn reverts(e: &Fake) -> Vec<u64> {
    e.effects().ledger().reverted
}

#[tokio::test(start_paused = true)]
async fn lifecycle_contract_on_the_fake() {
    let e = staging();
    e.effects()
        .set(|k| k.revert_delay = Duration::from_millis(20));
    let ended = testing::lifecycle(&e, pause(60), |f| {
        let l = e.effects().ledger();
        match (l.applied.as_slice(), l.journal.get(&f.id)) {
            ([1], Some(j)) if j.phase == journal::Phase::Active => Ok(()),
            _ => Err(format!("applied once and journalled as active: {l:?}")),
        }
    })
    .await
    .unwrap();
    assert_eq!(ended.state, State::Reverted);
    let l = e.effects().ledger();
    assert_eq!(l.applied, vec![1]);
    assert_eq!(l.reverted, vec![1], "exactly one revert");
    assert!(
        l.intent_before_apply,
        "the intent is journalled before applying"
    );
    assert!(l.journal.is_empty(), "the journal forgets a reverted fault");
}

/// Revert, expiry, abort and lease lapse all aimed at one fault at the same instant,
/// in many interleavings: one of them runs the undo, every one of them gets the same
/// filed record.
#[tokio::test(start_paused = true)]
async fn concurrent_revert_expiry_abort_and_lapse_end_a_fault_exactly_once() {
    for round in 0..40u64 {
        let e = staging();
        e.effects()
            .set(|k| k.revert_delay = Duration::from_millis(round % 7));
        let lease = e.open_lease(Duration::from_secs(2), "test").unwrap();
        let mut r = req(pause(2));
        r.lease = Some(lease.id.clone());
        let id = e.inject(r).await.unwrap().fault.unwrap().id;
        // Land just before, at, or after the shared deadline.
        tokio::time::sleep(Duration::from_millis(1990 + (round % 3) * 10)).await;
        let (a, b, all) = tokio::join!(
            e.revert(&id, "by hand"),
            e.revert(&id, "again"),
            e.revert_all("abort"),
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let a = a.unwrap();
        assert_eq!(a.ended_at, b.unwrap().ended_at, "round {round}");
        assert!(all.iter().all(|r| r.id == id && r.result.is_ok()));
        assert_eq!(reverts(&e), vec![1], "round {round}: exactly one undo");
        assert_eq!(e.get(&id).unwrap().ended_at, a.ended_at);
        assert!(e.list(false).is_empty());
        assert!(e.effects().ledger().journal.is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn a_hundred_concurrent_injects_never_overshoot_capacity() {
    let mut limits = Limits::staging();
    limits.max_concurrent_faults = 7;
    let e = engine(limits);
    // Slow applies keep every reserved fault pending while the others arrive.
    e.effects()
        .set(|k| k.apply_delay = Duration::from_millis(50));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let e = e.clone();
            tokio::spawn(async move { e.inject(req(pause(60))).await })
        })
        .collect();
    let mut ok = 0;
    let mut too_many = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(FaultError::TooMany { .. }) => too_many += 1,
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!((ok, too_many), (7, 93));
    assert_eq!(e.list(false).len(), 7);
    assert_eq!(e.effects().ledger().applied.len(), 7);

    // The per-kind cap and the stress share hold the same way.
    let mut limits = Limits::staging();
    limits.cpu.max_concurrent = Some(3);
    let e = engine(limits);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let e = e.clone();
            tokio::spawn(async move { e.inject(req(cpu(10.0))).await.is_ok() })
        })
        .collect();
    let ok = futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(ok, 3);
    let e = staging();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let e = e.clone();
            tokio::spawn(async move { e.inject(req(cpu(20.0))).await.is_ok() })
        })
        .collect();
    let ok = futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(ok, 2, "50% of the node in 20% shares");
}

#[tokio::test(start_paused = true)]
async fn a_fault_expires_at_its_duration_and_not_before() {
    let e = staging();
    let mut events = e.subscribe();
    let id = inject(&e, pause(5)).await;
    tokio::time::sleep(Duration::from_millis(4990)).await;
    assert_eq!(e.get(&id).unwrap().state, State::Active);
    assert!(reverts(&e).is_empty());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = e.get(&id).unwrap();
    assert_eq!(r.state, State::Expired);
    assert_eq!(r.end_reason, "duration ran out");
    assert_eq!(reverts(&e), vec![1]);
    assert!(e.effects().ledger().journal.is_empty());
    let kinds: Vec<EventType> = std::iter::from_fn(|| events.try_recv().ok())
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec![EventType::Injected, EventType::Expired]);
}

#[tokio::test(start_paused = true)]
async fn a_lease_lapses_at_its_deadline_unless_renewed() {
    let e = staging();
    let lease = e.open_lease(Duration::from_secs(2), "ctl").unwrap();
    let mut r = req(pause(60));
    r.lease = Some(lease.id.clone());
    let bound = e.inject(r).await.unwrap().fault.unwrap().id;
    let free = inject(&e, pause(60)).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        e.renew_lease(&lease.id).unwrap();
    }
    assert_eq!(e.get(&bound).unwrap().state, State::Active);
    assert_eq!(e.lease_lapses(), 0);
    // The holder stops renewing.
    tokio::time::sleep(Duration::from_millis(2010)).await;
    let r = e.get(&bound).unwrap();
    assert_eq!(r.state, State::Reverted);
    assert!(
        r.end_reason
            .starts_with("lease expired (ctl stopped renewing"),
        "{}",
        r.end_reason
    );
    assert_eq!(
        e.get(&free).unwrap().state,
        State::Active,
        "unbound faults stay"
    );
    assert_eq!(e.lease_lapses(), 1);
    assert!(matches!(
        e.renew_lease(&lease.id),
        Err(FaultError::NotFound(_))
    ));
    // Nothing binds to a lapsed lease.
    let mut r = req(pause(60));
    r.lease = Some(lease.id.clone());
    assert!(matches!(e.inject(r).await, Err(FaultError::NotFound(_))));
}

#[tokio::test(start_paused = true)]
async fn an_abort_while_a_fault_is_being_applied_ends_it_once_applied() {
    let e = staging();
    e.effects()
        .set(|k| k.apply_delay = Duration::from_millis(100));
    let e2 = e.clone();
    let injecting = tokio::spawn(async move { e2.inject(req(pause(60))).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let id = e.list(false)[0].id.clone();
    assert_eq!(e.get(&id).unwrap().state, State::Pending);
    // A single revert is refused while pending (retry); an abort is not.
    let err = e.revert(&id, "x").await.unwrap_err();
    assert!(err.to_string().contains("still being applied"), "{err}");
    let all = e.revert_all("stop").await;
    assert_eq!(all.len(), 1);
    assert!(all[0].result.is_ok());
    let out = injecting.await.unwrap().unwrap().fault.unwrap();
    assert_eq!(out.state, State::Reverted);
    assert_eq!(out.end_reason, "abort: stop");
    assert_eq!(reverts(&e), vec![1]);
    assert!(e.list(false).is_empty());
    assert!(e.effects().ledger().journal.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_lapsed_lease_ends_its_pending_faults_too() {
    let e = staging();
    e.effects().set(|k| k.apply_delay = Duration::from_secs(3));
    let lease = e.open_lease(Duration::from_secs(1), "ctl").unwrap();
    let mut r = req(pause(60));
    r.lease = Some(lease.id.clone());
    let out = e.inject(r).await.unwrap().fault.unwrap();
    assert_eq!(out.state, State::Reverted, "applied after the lease lapsed");
    assert!(out.end_reason.starts_with("lease expired"));
    assert_eq!(reverts(&e), vec![1]);
}

#[tokio::test(start_paused = true)]
async fn failures_are_filed_and_free_their_slot() {
    let mut limits = Limits::staging();
    limits.max_concurrent_faults = 1;
    let e = engine(limits);
    e.effects().set(|k| k.fail_apply = Some("boom".into()));
    let err = e.inject(req(pause(60))).await.unwrap_err();
    assert_eq!(err.to_string(), "boom");
    let failed = e.list(true);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].state, State::Failed);
    assert!(e.effects().ledger().journal.is_empty());

    e.effects().set(|k| {
        k.fail_apply = None;
        k.fail_revert = Some("stuck".into());
    });
    let id = inject(&e, pause(60)).await;
    let err = e.revert(&id, "x").await.unwrap_err();
    assert_eq!(err.to_string(), "stuck");
    let r = e.get(&id).unwrap();
    assert_eq!(r.state, State::Failed);
    assert_eq!(r.end_reason, "revert failed: stuck");
    let j = e.effects().ledger().journal;
    assert_eq!(
        j[&id].phase,
        journal::Phase::RevertFailed,
        "kept for the next start"
    );
    // The slot is free again.
    e.effects().set(|k| k.fail_revert = None);
    inject(&e, pause(60)).await;
}

#[tokio::test(start_paused = true)]
async fn a_watched_fault_that_fails_on_its_own_ends_as_failed() {
    let e = staging();
    let id = inject(&e, cpu(10.0)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(e.get(&id).unwrap().state, State::Active);
    e.effects().set(|k| {
        k.failing.insert(1);
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = e.get(&id).unwrap();
    assert_eq!(r.state, State::Failed);
    assert_eq!(r.end_reason, "fake worker of #1 died");
    assert_eq!(reverts(&e), vec![1]);
}

#[tokio::test(start_paused = true)]
async fn a_repeating_kill_runs_rounds_within_the_rate_and_stops_at_its_end() {
    let e = staging();
    e.effects().set(|k| k.targets = 2);
    let kill = Timed::new(
        FaultSpec::Kill(KillSpec {
            selector: Selector {
                name: Some("x".into()),
                ..Default::default()
            },
            pick: Pick::All,
            signal: Signal::SIGKILL,
            every: Some(Duration::from_secs(10)),
        }),
        Some(Duration::from_secs(45)),
    )
    .unwrap();
    let mut events = e.subscribe();
    let id = inject(&e, kill).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(e.get(&id).unwrap().state, State::Expired);
    let ticks: Vec<String> = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| e.kind == EventType::Tick)
        .map(|e| e.message)
        .collect();
    // 2 kills at inject, then rounds at 10, 20, 30, 40 s: 6 kills a minute allow two.
    assert_eq!(ticks.len(), 4, "{ticks:?}");
    assert_eq!(ticks[..2], ["killed 2", "killed 2"]);
    assert!(ticks[2].starts_with("round skipped: refused by limit process.max_kills_per_minute"));
    assert_eq!(e.effects().ledger().kills, 4);
}

#[tokio::test(start_paused = true)]
async fn recovery_reverts_oldest_first_and_keeps_what_failed() {
    let e = staging();
    let undo = |pid| UndoRecord::Resume {
        procs: vec![ProcId {
            pid,
            starttime: 1,
            comm: "x".into(),
        }],
    };
    for (id, at) in [("f-c", 30), ("f-a", 10), ("f-b", 20)] {
        e.effects().preload(journal::Entry {
            id: id.into(),
            kind: "pause".into(),
            phase: journal::Phase::Active,
            created_at_ms: at,
            requested_by: "old".into(),
            description: String::new(),
            undo: undo(at as i32),
        });
    }
    e.effects().set(|k| k.fail_recovery = vec![undo(20)]);
    let out = e.recover().await;
    let ids: Vec<&str> = out.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["f-a", "f-b", "f-c"]);
    assert_eq!(
        e.effects().ledger().recovered,
        [undo(10), undo(20), undo(30)]
    );
    assert!(out[1].result.is_err());
    let j = e.effects().ledger().journal;
    assert_eq!(j.keys().collect::<Vec<_>>(), ["f-b"]);
    assert_eq!(j["f-b"].phase, journal::Phase::RevertFailed);
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_makes_the_same_checks_and_changes_nothing() {
    let mut limits = Limits::staging();
    limits.max_concurrent_faults = 1;
    let e = engine(limits);
    let mut dry = req(pause(60));
    dry.dry_run = true;
    let out = e.inject(dry.clone()).await.unwrap();
    assert!(out.fault.is_none());
    assert_eq!(out.plan, "fake pause");
    inject(&e, pause(60)).await;
    // At capacity: the dry run is refused like the real inject would be.
    assert!(matches!(
        e.inject(dry.clone()).await,
        Err(FaultError::TooMany { .. })
    ));
    // A host check failing in the plan fails the dry run with it.
    e.effects()
        .set(|k| k.plan_error = Some(FaultError::Precondition("no sch_netem".into())));
    assert!(matches!(
        e.inject(dry).await,
        Err(FaultError::Precondition(_))
    ));
    assert_eq!(e.effects().ledger().applied.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_inject_still_files_its_fault() {
    let e = staging();
    e.effects()
        .set(|k| k.apply_delay = Duration::from_millis(100));
    let e2 = e.clone();
    let t = tokio::spawn(async move { e2.inject(req(pause(60))).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    // The client went away mid-apply.
    t.abort();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let live = e.list(false);
    assert_eq!(live.len(), 1);
    assert_eq!(
        live[0].state,
        State::Active,
        "applied and tracked, not stranded"
    );
    let all = e.revert_all("").await;
    assert!(all[0].result.is_ok());
    assert_eq!(reverts(&e), vec![1]);
}
