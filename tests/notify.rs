//! systemd notification (`sd_notify(3)`) from the real `faultd`: a datagram socket stands
//! in for systemd's `$NOTIFY_SOCKET`, with `$WATCHDOG_USEC` set as systemd sets it.
//! READY=1 comes once the agent listens; WATCHDOG=1 comes at half the watchdog period and
//! stops while the agent is stopped (SIGSTOP), which is what lets systemd's watchdog
//! restart a hung agent; STOPPING=1 comes on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use faultline_tests::agent::{Agent, AgentOptions};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Every datagram that arrives within `t`.
fn collect(sock: &UnixDatagram, t: Duration) -> Vec<String> {
    let deadline = Instant::now() + t;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    out
}

fn count(msgs: &[String], line: &str) -> usize {
    msgs.iter().filter(|m| m.lines().any(|l| l == line)).count()
}

#[test]
fn ready_watchdog_pings_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    // A 400 ms watchdog: pings every 200 ms.
    let mut agent = Agent::start_with(AgentOptions {
        env: vec![
            ("NOTIFY_SOCKET".into(), path.display().to_string()),
            ("WATCHDOG_USEC".into(), "400000".into()),
        ],
        ..Default::default()
    });

    let first = collect(&sock, Duration::from_millis(1200));
    assert!(
        first
            .first()
            .is_some_and(|m| m.lines().any(|l| l == "READY=1")),
        "READY=1 first: {first:?}\n{}",
        agent.log_text()
    );
    assert!(
        first[0].contains("STATUS=serving"),
        "a STATUS line: {first:?}"
    );
    let pings = count(&first, "WATCHDOG=1");
    assert!(
        (3..=8).contains(&pings),
        "about 5 pings in 1.2 s at 200 ms intervals, got {pings}: {first:?}"
    );
    assert!(agent.log_text().contains("systemd watchdog enabled"));

    // A stopped agent stops pinging (systemd would kill it), and resumes when continued.
    let pid = Pid::from_raw(agent.pid());
    kill(pid, Signal::SIGSTOP).unwrap();
    collect(&sock, Duration::from_millis(300)); // anything sent just before the stop
    let stopped = collect(&sock, Duration::from_millis(1000));
    assert_eq!(
        count(&stopped, "WATCHDOG=1"),
        0,
        "no pings while stopped: {stopped:?}"
    );
    kill(pid, Signal::SIGCONT).unwrap();
    let resumed = collect(&sock, Duration::from_millis(1000));
    assert!(
        count(&resumed, "WATCHDOG=1") >= 2,
        "pings again once continued: {resumed:?}"
    );

    let st = agent.stop();
    assert!(st.success(), "clean exit: {st}");
    let last = collect(&sock, Duration::from_millis(300));
    assert_eq!(
        count(&last, "STOPPING=1"),
        1,
        "STOPPING=1 on SIGTERM: {last:?}"
    );
}

#[test]
fn no_watchdog_task_without_watchdog_usec() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let agent = Agent::start_with(AgentOptions {
        env: vec![("NOTIFY_SOCKET".into(), path.display().to_string())],
        ..Default::default()
    });
    let msgs = collect(&sock, Duration::from_millis(800));
    assert_eq!(count(&msgs, "READY=1"), 1, "{msgs:?}");
    assert_eq!(count(&msgs, "WATCHDOG=1"), 0, "{msgs:?}");
    assert!(!agent.log_text().contains("systemd watchdog enabled"));
}
