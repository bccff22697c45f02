//! faultctl's library and binary against an in-process fake agent on a temporary Unix
//! socket: the unix connector, every command, error -> exit code mapping, watch
//! streaming. No privileges needed.

use clap::Parser;
use faultline_controller::{Cli, CtlError, ExitCode, run};
use faultline_proto::v1::{Event, EventType, FaultKind, FaultState};
use faultline_tests::fake_agent::{FakeAgent, FakeServer};
use serde_json::Value;
use tonic::Status;

struct Fixture {
    server: FakeServer,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = FakeAgent::new()
        .serve_unix(&dir.path().join("faultd.sock"))
        .await
        .expect("serve fake agent");
    Fixture { server, _dir: dir }
}

impl Fixture {
    /// Runs `faultctl --agent <fake> args...` in-process; returns its output or error.
    async fn ctl(&self, args: &[&str]) -> Result<String, CtlError> {
        ctl_at(&self.server.uri, args).await
    }

    fn fail_next(&self, s: Status) {
        self.server.agent.state.lock().unwrap().fail_next = Some(s);
    }
}

async fn ctl_at(uri: &str, args: &[&str]) -> Result<String, CtlError> {
    let mut argv = vec!["faultctl", "--agent", uri];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("clap accepts the arguments");
    let mut out = Vec::new();
    run(&cli, &mut out).await?;
    Ok(String::from_utf8(out).expect("utf-8 output"))
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{s}"))
}

/// A child `sleep` to select by pid; killed on drop.
struct Sleeper(std::process::Child);

impl Sleeper {
    /// Spawns `sleep 600` and waits until it has exec'd (its comm is `sleep`).
    fn new() -> Self {
        let child = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("spawn sleep");
        let comm = format!("/proc/{}/comm", child.id());
        for _ in 0..200 {
            if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim_end() == "sleep") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Sleeper(child)
    }
    fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn status_and_limits_over_unix_socket() {
    let fx = fixture().await;
    let out = fx.ctl(&["status"]).await.unwrap();
    assert!(out.contains("faultd 0.0.0-fake (pid "), "{out}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["cgroups", "hybrid"]),
        "{out}"
    );
    assert!(out.contains("network  no         not in the fake"), "{out}");
    assert!(out.contains("no active faults"), "{out}");

    let v = json(&fx.ctl(&["-o", "json", "status"]).await.unwrap());
    assert_eq!(v["pid"], Value::from(std::process::id()));
    assert_eq!(v["kinds"][0]["kind"], "kill");
    assert_eq!(v["kinds"][2]["supported"], false);

    let out = fx.ctl(&["limits"]).await.unwrap();
    assert!(out.contains("max duration           5m"), "{out}");
    assert!(
        out.contains("protected processes    sshd, systemd-journald, faultd"),
        "{out}"
    );
    let v = json(&fx.ctl(&["limits", "-o", "json"]).await.unwrap());
    assert_eq!(v["max_kills_per_minute"], 6);
}

#[tokio::test]
async fn dry_run_lists_the_exact_processes_and_changes_nothing() {
    let fx = fixture().await;
    let sleeper = Sleeper::new();
    let pid = sleeper.pid();
    let out = fx
        .ctl(&[
            "inject",
            "kill",
            "--pid",
            &pid,
            "--dry-run",
            "--signal",
            "TERM",
        ])
        .await
        .unwrap();
    assert!(
        out.starts_with("dry run: nothing was changed\nplan: send SIGTERM to pid"),
        "{out}"
    );
    assert!(out.contains(&format!("  {pid}  sleep  ")), "{out}");
    assert!(out.contains("sleep 600"), "{out}");
    assert!(out.contains("pid 1 is never selected"), "{out}");
    {
        let st = fx.server.agent.state.lock().unwrap();
        assert!(st.faults.is_empty());
        let req = st.last_inject.as_ref().unwrap();
        assert!(req.dry_run);
    }
    let v = json(
        &fx.ctl(&["-o", "json", "inject", "kill", "--pid", &pid, "--dry-run"])
            .await
            .unwrap(),
    );
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["targets"][0]["pid"].to_string(), pid);
    assert_eq!(v["targets"][0]["comm"], "sleep");
    assert_eq!(v["targets"][0]["cmdline"], "sleep 600");
}

#[tokio::test]
async fn inject_list_get_revert_abort() {
    let fx = fixture().await;
    let sleeper = Sleeper::new();
    let pid = sleeper.pid();
    let v = json(
        &fx.ctl(&[
            "-o", "json", "inject", "pause", "--pid", &pid, "--for", "30s", "--label", "gd=42",
        ])
        .await
        .unwrap(),
    );
    assert_eq!(v["fault"]["id"], "f-1");
    assert_eq!(v["fault"]["state"], "active");
    assert_eq!(v["fault"]["kind"], "pause");
    assert_eq!(v["fault"]["duration_ms"], 30_000);
    assert_eq!(v["fault"]["labels"]["gd"], "42");

    let out = fx.ctl(&["list"]).await.unwrap();
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .starts_with("f-1  pause  active"),
        "{out}"
    );
    assert!(
        out.contains("ends in 29s") || out.contains("ends in 30s"),
        "{out}"
    );
    let out = fx.ctl(&["get", "f-1"]).await.unwrap();
    assert!(out.contains("labels        gd=42"), "{out}");

    let out = fx
        .ctl(&["revert", "f-1", "--reason", "seen enough"])
        .await
        .unwrap();
    assert!(out.starts_with("reverted f-1\n"), "{out}");
    assert!(out.contains("end reason    seen enough"), "{out}");
    assert_eq!(fx.ctl(&["list"]).await.unwrap(), "no faults\n");
    let v = json(&fx.ctl(&["list", "--all", "-o", "json"]).await.unwrap());
    assert_eq!(v["faults"][0]["state"], "reverted");

    fx.ctl(&["inject", "pause", "--pid", &pid, "--for", "1m"])
        .await
        .unwrap();
    fx.ctl(&[
        "inject", "kill", "--pid", &pid, "--every", "10s", "--for", "1m",
    ])
    .await
    .unwrap();
    let out = fx.ctl(&["abort", "--reason", "over"]).await.unwrap();
    assert_eq!(
        out,
        "ID   RESULT    ERROR\nf-2  reverted  -\nf-3  reverted  -\n\nreverted 2 of 2 faults in 1ms\n"
    );
    let st = fx.server.agent.state.lock().unwrap();
    assert!(
        st.faults
            .iter()
            .all(|f| f.state == FaultState::Reverted as i32)
    );
    assert_eq!(st.faults[2].end_reason, "over");
}

#[tokio::test]
async fn agent_errors_map_to_exit_codes_with_the_agents_message() {
    let fx = fixture().await;
    let cases = [
        (
            Status::invalid_argument("pick.percent: 150 is over 100"),
            ExitCode::BadInput,
        ),
        (
            Status::permission_denied("duration 10m is over the limit max_duration (5m)"),
            ExitCode::Refused,
        ),
        (
            Status::resource_exhausted("1 fault is active; the limit max_concurrent_faults is 1"),
            ExitCode::Refused,
        ),
        (
            Status::not_found("no process matches name=\"nope\""),
            ExitCode::NotFound,
        ),
        (
            Status::failed_precondition("cgroup freezer is not available"),
            ExitCode::Unsupported,
        ),
        (Status::unavailable("shutting down"), ExitCode::Unreachable),
        (Status::internal("journal write failed"), ExitCode::Other),
    ];
    for (status, code) in cases {
        let msg = status.message().to_string();
        fx.fail_next(status);
        let err = fx.ctl(&["inject", "kill", "--pid", "1"]).await.unwrap_err();
        assert_eq!(err.exit_code(), code, "{msg}");
        assert!(err.to_string().ends_with(&msg), "{err} vs {msg}");
    }
    // Real NotFound from the fake (not scripted).
    let err = fx.ctl(&["get", "f-404"]).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::NotFound);
    assert_eq!(
        err.to_string(),
        "no fault \"f-404\" (see faultctl list --all)"
    );
}

#[tokio::test]
async fn bad_input_is_refused_before_connecting() {
    // No agent at all: a syntax error must still be reported as bad input.
    let err = ctl_at(
        "unix:///nonexistent/faultd.sock",
        &["inject", "pause", "--pid", "1", "--for", "-5s"],
    )
    .await
    .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::BadInput);
    assert_eq!(
        err.to_string(),
        "invalid --for: \"-5s\" is negative: a duration must be positive"
    );
}

#[tokio::test]
async fn unreachable_agent() {
    let dir = tempfile::tempdir().unwrap();
    // A socket path with nobody listening: the file exists but refuses connections.
    let path = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let uri = format!("unix://{}", path.display());
    let err = ctl_at(&uri, &["status"]).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Unreachable);
    assert_eq!(
        err.to_string(),
        format!(
            "cannot reach faultd at {uri}: Connection refused (is faultd running? start it with: sudo faultd)"
        )
    );
}

#[tokio::test]
async fn http_transport_works_too() {
    let server = FakeAgent::new().serve_tcp().await.unwrap();
    let out = ctl_at(&server.uri, &["status"]).await.unwrap();
    assert!(out.contains("fakehost"), "{out}");
}

#[tokio::test]
async fn watch_streams_events_as_json_lines() {
    let fx = fixture().await;
    let sleeper = Sleeper::new();
    let pid = sleeper.pid();
    fx.ctl(&["inject", "pause", "--pid", &pid, "--for", "1m"])
        .await
        .unwrap();
    {
        let mut st = fx.server.agent.state.lock().unwrap();
        st.events = vec![Event {
            r#type: EventType::Refused as i32,
            at_ms: 1_795_000_000_000,
            kind: FaultKind::Kill as i32,
            message: "pid 1 is protected".into(),
            ..Default::default()
        }];
        // preset refusal + replayed f-1 + one live event, then the stream ends.
        st.watch_limit = Some(3);
    }
    let uri = fx.server.uri.clone();
    let watcher =
        tokio::spawn(async move { ctl_at(&uri, &["watch", "--replay", "-o", "json"]).await });
    // Produce the live event once the watcher is subscribed (its Watch is call 2; the fake
    // subscribes while it holds the state lock that counts calls).
    let mut live = None;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if fx.server.agent.state.lock().unwrap().calls >= 2 {
            live = Some(
                fx.ctl(&["revert", "f-1", "--reason", "done"])
                    .await
                    .unwrap(),
            );
            break;
        }
    }
    assert!(live.is_some(), "watch never subscribed");
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), watcher)
        .await
        .expect("watch ended")
        .unwrap()
        .unwrap();
    let lines: Vec<Value> = out.lines().map(json).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0]["type"], "refused");
    assert_eq!(lines[0]["fault_id"], "");
    assert_eq!(lines[1]["type"], "injected");
    assert_eq!(lines[1]["fault_id"], "f-1");
    assert_eq!(lines[1]["fault"]["state"], "active");
    assert_eq!(lines[2]["type"], "reverted");
    assert_eq!(lines[2]["fault"]["state"], "reverted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_one_line_and_exits_with_the_mapped_code() {
    let fx = fixture().await;
    let faultctl = faultline_tests::bin("faultctl");
    let run = |args: Vec<String>| {
        let faultctl = faultctl.clone();
        async move {
            tokio::process::Command::new(faultctl)
                .args(args)
                .output()
                .await
                .expect("run faultctl")
        }
    };
    let agent = fx.server.uri.clone();

    let out = run(vec!["--agent".into(), agent.clone(), "status".into()]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("fakehost"));

    fx.fail_next(Status::permission_denied("pid 1 (systemd) is protected"));
    let out = run(vec![
        "--agent".into(),
        agent.clone(),
        "inject".into(),
        "kill".into(),
        "--pid".into(),
        "1".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "faultctl: error: pid 1 (systemd) is protected\n"
    );
    assert!(out.stdout.is_empty());

    // FAULTLINE_AGENT is honoured; a missing socket is exit 5.
    let out = tokio::process::Command::new(&faultctl)
        .arg("status")
        .env("FAULTLINE_AGENT", "unix:///nonexistent/faultd.sock")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "faultctl: error: cannot reach faultd at unix:///nonexistent/faultd.sock: No such file or directory (is faultd running? start it with: sudo faultd)\n"
    );

    // A clap usage error (mutually exclusive picks) is exit 2.
    let out = run(vec![
        "--agent".into(),
        agent,
        "inject".into(),
        "kill".into(),
        "--all".into(),
        "--count".into(),
        "1".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
}
