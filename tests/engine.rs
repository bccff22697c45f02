//! The engine on the real kernel: the lifecycle contract its unit tests run against
//! `FakeEffects`, here through `HostEffects` (a real process paused and resumed, the
//! journal on disk), crash recovery through the real journal, and a dry run that makes
//! the same host checks as the inject (`faultctl inject net --dry-run` on a kernel
//! without netem fails as the inject does).

mod net_common;

use std::time::Duration;

use faultline_agent::engine::journal::{Journal, Phase};
use faultline_agent::engine::{Engine, State, testing};
use faultline_agent::fault::{FaultSpec, PauseSpec, Pick, Selector, Timed};
use faultline_agent::host::Host;
use faultline_tests::agent::{Agent, Victim, stderr};
use faultline_tests::require;
use net_common::{Pair, kernel};

fn pause(pid: i32) -> Timed {
    Timed::new(
        FaultSpec::Pause(PauseSpec {
            selector: Selector {
                pid: Some(pid),
                ..Default::default()
            },
            pick: Pick::All,
        }),
        Some(Duration::from_secs(60)),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_contract_with_the_real_effects() {
    require!("root");
    let state = tempfile::tempdir().unwrap();
    let journal = Journal::open(state.path()).unwrap();
    let engine = Engine::new(Host::for_tests(), Some(journal.clone()));
    let v = Victim::sleep("faultline-engine-contract");
    let ended = testing::lifecycle(&engine, pause(v.pid()), |f| {
        let (entries, _) = journal.load();
        match (v.state(), entries.as_slice()) {
            (Some('T'), [e]) if e.id == f.id && e.phase == Phase::Active => Ok(()),
            (s, e) => Err(format!(
                "while active: process state {s:?} (want T), journal {e:?} (want one active entry)"
            )),
        }
    })
    .await
    .unwrap();
    assert_eq!(ended.state, State::Reverted);
    assert_ne!(v.state(), Some('T'), "running again after the end");
    assert!(journal.load().0.is_empty(), "the journal forgets it");
}

/// A pause journalled by an engine that then dies (its runtime dropped with the fault
/// active) is resumed by the next engine's `recover`, and the journal is emptied.
#[test]
fn recovery_through_the_real_journal_resumes_the_process() {
    require!("root");
    let state = tempfile::tempdir().unwrap();
    let journal = Journal::open(state.path()).unwrap();
    let v = Victim::sleep("faultline-engine-recovery");
    {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let engine = Engine::new(Host::for_tests(), Some(journal.clone()));
            let out = engine
                .inject(testing::request(pause(v.pid())))
                .await
                .unwrap();
            assert_eq!(out.fault.unwrap().state, State::Active);
        });
        // The "crash": the runtime and its tasks (the fault's timer) are gone.
    }
    assert_eq!(v.state(), Some('T'), "still paused after the crash");
    assert_eq!(journal.load().0.len(), 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let results = rt.block_on(async {
        Engine::new(Host::for_tests(), Some(journal.clone()))
            .recover()
            .await
    });
    assert_eq!(results.len(), 1);
    assert!(results[0].result.is_ok(), "{results:?}");
    assert_ne!(v.state(), Some('T'), "resumed by recovery");
    assert!(journal.load().0.is_empty());
}

/// The dry run runs the host checks of the inject: where the kernel has no sch_netem
/// both fail with FailedPrecondition (exit 6) and the same message; where it has netem,
/// the dry run says what it would change and changes nothing.
#[test]
fn a_network_dry_run_makes_the_injects_host_checks() {
    require!("root");
    let agent = Agent::start();
    let p = Pair::new();
    let before = p.ns.tc(&["qdisc", "show", "dev", &p.a]);
    let args = |dry: bool| {
        let mut a = vec![
            "inject", "net", "--netns", &p.ns.name, "--iface", &p.a, "--delay", "10ms", "--for",
            "30s",
        ];
        if dry {
            a.push("--dry-run");
        }
        a
    };
    let dry = agent.ctl(&args(true));
    assert_eq!(
        p.ns.tc(&["qdisc", "show", "dev", &p.a]),
        before,
        "a dry run changes nothing"
    );
    if kernel().netem.is_err() {
        assert_eq!(dry.status.code(), Some(6), "{}", stderr(&dry));
        assert!(stderr(&dry).contains("sch_netem"), "{}", stderr(&dry));
        let real = agent.ctl(&args(false));
        assert_eq!(real.status.code(), Some(6), "{}", stderr(&real));
        assert_eq!(stderr(&dry), stderr(&real), "the same refusal");
    } else {
        assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
        let out = String::from_utf8_lossy(&dry.stdout);
        assert!(
            out.contains(&format!("netem delay 10ms on {} egress", p.a)),
            "says what it would change: {out}"
        );
    }
    assert_eq!(p.ns.tc(&["qdisc", "show", "dev", &p.a]), before);
}
