//! Crash recovery: a `faultd` killed with SIGKILL leaves its faults in the journal; the
//! next start reverts them before it accepts requests.

use std::time::{Duration, Instant};

use faultline_tests::agent::{Agent, AgentOptions, Victim, eventually};
use faultline_tests::require;

#[test]
fn restart_after_sigkill_resumes_paused_process() {
    require!("root");
    let mut agent = Agent::start();
    let v = Victim::sleep("faultline-recovery-pause");
    let out = agent.ctl_json(&[
        "inject",
        "pause",
        "--pid",
        &v.pid().to_string(),
        "--for",
        "5m",
    ]);
    assert!(out.to_string().contains("f-"), "{out}");
    assert_eq!(v.state(), Some('T'));
    agent.crash();
    assert_eq!(v.state(), Some('T'), "a crash leaves the fault in place");

    let t0 = Instant::now();
    let again = Agent::start_with(AgentOptions {
        state_dir: Some(agent.state_dir()),
        ..Default::default()
    });
    // The agent listens only after recovery, so the process is already resumed.
    let ready = t0.elapsed();
    assert_eq!(
        v.state(),
        Some('S'),
        "resumed by crash recovery (agent ready after {ready:?})"
    );
    assert!(
        again.log_text().contains("recovered"),
        "{}",
        again.log_text()
    );
    let journal = agent.state_dir().join("journal");
    assert!(
        eventually(Duration::from_secs(2), || std::fs::read_dir(&journal)
            .map(|d| d.count() == 0)
            .unwrap_or(false)),
        "journal emptied"
    );
    eprintln!("recovery: agent ready {ready:?} after start");
}

#[test]
fn recovery_ignores_a_recycled_pid() {
    require!("root");
    let mut agent = Agent::start();
    let mut v = Victim::sleep("faultline-recovery-recycled");
    agent.ctl_json(&[
        "inject",
        "pause",
        "--pid",
        &v.pid().to_string(),
        "--for",
        "5m",
    ]);
    agent.crash();
    // The paused process dies while no agent runs.
    let _ = v.child.kill();
    let _ = v.child.wait();
    let again = Agent::start_with(AgentOptions {
        state_dir: Some(agent.state_dir()),
        ..Default::default()
    });
    assert!(
        again.log_text().contains("recovered"),
        "{}",
        again.log_text()
    );
    let journal = agent.state_dir().join("journal");
    assert_eq!(
        std::fs::read_dir(&journal).unwrap().count(),
        0,
        "a gone process counts as reverted"
    );
}
