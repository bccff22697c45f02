//! The safety core end to end: leases lapse, the health guard aborts, a bad limits file
//! stops the start, `faultd cleanup` puts a crashed agent's node back, and 50 crashes at
//! random moments never leave a fault of ours behind.

#[path = "net_common/mod.rs"]
mod net_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use faultline_tests::agent::{Agent, AgentOptions, Victim, eventually, fault_id, read_trim};
use faultline_tests::require;

const STAGING: &str = "profile = \"staging\"\n";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Waits until `pid` is no longer stopped; returns how long that took.
fn until_resumed(pid: i32, within: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    eventually(within, || {
        faultline_tests::agent::proc_state(pid).is_some_and(|s| s != 'T')
    })
    .then(|| t0.elapsed())
}

#[test]
fn lapsed_lease_reverts_its_faults_within_ttl_plus_1s() {
    require!("root");
    let agent = Agent::start_staging();
    let v = Victim::sleep("faultline-lease-lapse");
    let out = agent.ctl(&["lease", "open", "--ttl", "2s"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let opened = Instant::now();
    let lease = text(&out.stdout).trim().to_string();
    assert!(lease.starts_with("l-"), "{lease}");
    let f = agent.ctl_json(&[
        "inject",
        "pause",
        "--pid",
        &v.pid().to_string(),
        "--for",
        "5m",
        "--lease",
        &lease,
    ]);
    assert_eq!(v.state(), Some('T'));
    // Nobody renews: the lease lapses 2 s after it was opened.
    assert!(
        until_resumed(v.pid(), Duration::from_secs(10)).is_some(),
        "never resumed"
    );
    let after = opened.elapsed();
    eprintln!("lease lapse: resumed {after:?} after the 2s lease was opened");
    assert!(
        after <= Duration::from_secs(3),
        "reverted {after:?} after opening a 2s lease (must be within TTL + 1 s)"
    );
    let got = agent.ctl_json(&["get", &fault_id(&f)]);
    assert!(
        got["end_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("lease expired"),
        "{got}"
    );
}

#[test]
fn inject_hold_renews_and_sigkill_of_faultctl_reverts_within_ttl_plus_1s() {
    require!("root");
    let agent = Agent::start_staging();
    let v = Victim::sleep("faultline-hold");
    let mut ctl = Command::new(faultline_tests::bin("faultctl"))
        .args(["--agent", &agent.uri(), "inject", "pause", "--pid"])
        .arg(v.pid().to_string())
        .args(["--for", "5m", "--hold", "--hold-ttl", "2s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || v.state() == Some('T')),
        "never paused:\n{}",
        agent.log_text()
    );
    // Held: still paused well past the TTL, because faultctl renews.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(v.state(), Some('T'), "a held lease keeps the fault");
    ctl.kill().unwrap();
    let killed = Instant::now();
    let _ = ctl.wait();
    let took = until_resumed(v.pid(), Duration::from_secs(10)).expect("never resumed");
    eprintln!(
        "inject --hold SIGKILLed: resumed {:?} after the kill (ttl 2s)",
        killed.elapsed()
    );
    assert!(
        took <= Duration::from_secs(3),
        "reverted {took:?} after faultctl died (must be within TTL + 1 s)"
    );
}

#[test]
fn inject_hold_ctrl_c_reverts() {
    require!("root");
    let agent = Agent::start_staging();
    let v = Victim::sleep("faultline-hold-int");
    let ctl = Command::new(faultline_tests::bin("faultctl"))
        .args(["--agent", &agent.uri(), "inject", "pause", "--pid"])
        .arg(v.pid().to_string())
        .args(["--for", "5m", "--hold"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if !eventually(Duration::from_secs(10), || v.state() == Some('T')) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(ctl.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let out = ctl.wait_with_output().unwrap();
        panic!(
            "never paused (state {:?}):\nstdout: {}\nstderr: {}\nagent:\n{}",
            v.state(),
            text(&out.stdout),
            text(&out.stderr),
            agent.log_text()
        );
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ctl.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = ctl.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(v.state(), Some('S'), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("reverted f-"),
        "{}",
        text(&out.stdout)
    );
}

fn health_limits(body: &str) -> String {
    format!("{STAGING}[health]\ninterval = \"200ms\"\n{body}")
}

#[test]
fn failing_probe_aborts_everything_within_its_period() {
    require!("root");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let agent = Agent::start_with(AgentOptions {
        limits: Some(health_limits(&format!(
            "[[health.probe]]\ntcp = \"{addr}\"\ntimeout = \"500ms\"\nfailures = 2\n"
        ))),
        ..Default::default()
    });
    let v1 = Victim::sleep("faultline-health-1");
    let v2 = Victim::sleep("faultline-health-2");
    for v in [&v1, &v2] {
        agent.ctl_json(&[
            "inject",
            "pause",
            "--pid",
            &v.pid().to_string(),
            "--for",
            "5m",
        ]);
    }
    // Healthy: the guard leaves them alone.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!((v1.state(), v2.state()), (Some('T'), Some('T')));
    drop(listener);
    let t0 = Instant::now();
    // Period: 2 failures x 200 ms interval; allow one more round and the revert.
    for v in [&v1, &v2] {
        assert!(
            eventually(Duration::from_secs(5), || v.state() == Some('S')),
            "not aborted:\n{}",
            agent.log_text()
        );
    }
    let took = t0.elapsed();
    eprintln!("health probe: both faults aborted {took:?} after the listener closed");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    let list = agent.ctl_json(&["list", "--all"]);
    assert!(
        list.to_string().contains("health guard: probe tcp"),
        "{list}"
    );
    // It keeps guarding: a new fault is aborted too while the probe fails.
    let v3 = Victim::sleep("faultline-health-3");
    agent.ctl_json(&[
        "inject",
        "pause",
        "--pid",
        &v3.pid().to_string(),
        "--for",
        "5m",
    ]);
    assert!(eventually(Duration::from_secs(5), || v3.state() == Some('S')));
    assert!(agent.log_text().contains("health guard tripped"));
}

#[test]
fn memory_floor_breach_aborts_everything() {
    require!("root");
    // A floor above all of the node's memory: MemAvailable is below it for real.
    let agent = Agent::start_with(AgentOptions {
        limits: Some(health_limits("min_mem_available = \"100%\"\n")),
        ..Default::default()
    });
    let limits = agent.ctl_json(&["limits"]);
    assert_eq!(
        limits["health_conditions"],
        serde_json::json!(["MemAvailable below 100% of MemTotal"]),
        "{limits}"
    );
    let v = Victim::sleep("faultline-health-mem");
    let t0 = Instant::now();
    agent.ctl_json(&[
        "inject",
        "pause",
        "--pid",
        &v.pid().to_string(),
        "--for",
        "5m",
    ]);
    assert!(
        eventually(Duration::from_secs(5), || v.state() == Some('S')),
        "not aborted:\n{}",
        agent.log_text()
    );
    eprintln!(
        "health memory floor: aborted {:?} after inject",
        t0.elapsed()
    );
    let list = agent.ctl_json(&["list", "--all"]);
    assert!(
        list.to_string().contains("health guard: MemAvailable"),
        "{list}"
    );
}

fn start_faultd_with_limits(limits: &Path, dir: &Path) -> std::process::Output {
    let mut c = Command::new(faultline_tests::bin("faultd"))
        .arg("--socket")
        .arg(dir.join("s.sock"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--config")
        .arg(dir.join("none.toml"))
        .arg("--limits")
        .arg(limits)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if faultline_tests::agent::wait_timeout(&mut c, Duration::from_secs(5)).is_none() {
        let _ = c.kill();
        panic!("faultd started with a bad limits file");
    }
    c.wait_with_output().unwrap()
}

#[test]
fn limits_file_with_wrong_permissions_stops_the_start() {
    require!("root");
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("none.toml"), "").unwrap();
    let p = dir.path().join("limits.toml");
    std::fs::write(&p, STAGING).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o664)).unwrap();
    let out = start_faultd_with_limits(&p, dir.path());
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("refusing limits file {}", p.display()))
            && err.contains(&format!("fix: chmod go-w {}", p.display())),
        "{err}"
    );
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    nix::unistd::chown(&p, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let out = start_faultd_with_limits(&p, dir.path());
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("owned by uid 65534, not root")
            && err.contains(&format!("fix: chown root: {}", p.display())),
        "{err}"
    );
    assert!(!dir.path().join("s.sock").exists(), "never listened");
}

fn cleanup(state: &Path, config: &Path) -> std::process::Output {
    Command::new(faultline_tests::bin("faultd"))
        .arg("cleanup")
        .arg("--state-dir")
        .arg(state)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn cleanup_reverts_a_crashed_agents_faults_and_refuses_under_a_live_one() {
    require!("root");
    let mut agent = Agent::start_staging();
    let v = Victim::sleep("faultline-cleanup");
    agent.ctl_json(&[
        "inject",
        "pause",
        "--pid",
        &v.pid().to_string(),
        "--for",
        "5m",
    ]);
    // A live agent holds the lock: cleanup refuses and changes nothing.
    let out = cleanup(&agent.state_dir(), &agent.config_path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("another faultd is using the state dir"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("refusing"));
    assert_eq!(v.state(), Some('T'));

    agent.crash();
    assert_eq!(v.state(), Some('T'));
    let out = cleanup(&agent.state_dir(), &agent.config_path());
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(v.state(), Some('S'), "resumed by cleanup");
    let o = text(&out.stdout);
    assert!(
        o.contains("reverted fault f-") && o.contains("node clean"),
        "{o}"
    );
    assert_eq!(
        std::fs::read_dir(agent.state_dir().join("journal"))
            .unwrap()
            .count(),
        0
    );
    // Idempotent: a second run finds nothing and still says clean.
    let out = cleanup(&agent.state_dir(), &agent.config_path());
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("node clean (0 actions)"));
}

/// A freezer cgroup of the test's own with one sleeping process; removed on drop.
struct Group {
    dir: PathBuf,
    kid: Option<Victim>,
}

impl Group {
    fn new(mount: &Path) -> Group {
        let dir = mount.join(faultline_tests::unique_name("faultline-test-crash-"));
        std::fs::create_dir(&dir).unwrap();
        let kid = Victim::sleep("faultline-crash-frozen");
        std::fs::write(dir.join("cgroup.procs"), kid.pid().to_string()).unwrap();
        Group {
            dir,
            kid: Some(kid),
        }
    }

    fn frozen(&self) -> bool {
        read_trim(&self.dir.join("freezer.state")) != "THAWED"
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("freezer.state"), "THAWED");
        self.kid = None;
        let _ = eventually(Duration::from_secs(5), || {
            std::fs::read_to_string(self.dir.join("cgroup.procs"))
                .map(|s| s.trim().is_empty())
                .unwrap_or(true)
        });
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn pseudo_random(n: u64) -> u64 {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (t ^ (t >> 7)).wrapping_mul(0x9E37_79B9_7F4A_7C15) % n
}

/// 50 times: start faultd, inject a pause, a kill loop and a cgroup freeze, SIGKILL it
/// at a random moment (every fifth round exactly between the journal write and the
/// kernel change), start it again: the node is clean by the time it listens.
#[test]
fn crash_loop_50_times_leaves_nothing_behind() {
    require!("root");
    let freezer = faultline_tests::caps::v1_mount("freezer");
    if freezer.is_none() {
        eprintln!("crash loop: no v1 freezer here; the cgroup freeze part is left out");
    }
    // The network part runs only where the kernel has netem (the VM tier).
    let pair = match &net_common::kernel().netem {
        Ok(()) => Some(net_common::Pair::new()),
        Err(why) => {
            eprintln!("crash loop: no network fault here ({why}); the rest runs");
            None
        }
    };
    let ours = |p: &net_common::Pair| {
        p.ns.qdiscs_json(&p.a)
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["handle"].as_str().unwrap_or("").starts_with("fa17:"))
    };
    let state = tempfile::tempdir().unwrap();
    // CPU stress where the host has a cgroup hierarchy for it; its group is named after
    // this state dir's agent instance, so leftovers are found in cgroupfs.
    let stress_root = if faultline_tests::probe("cgroup2-controllers").is_ok() {
        faultline_tests::caps::v2_mount()
    } else if faultline_tests::caps::v1_mount("memory").is_some() {
        faultline_tests::caps::v1_mount("cpu")
    } else {
        None
    };
    let stress_prefix = {
        let mut h = faultline_agent::host::Host::for_tests();
        h.set_instance(state.path());
        format!("faultline-stress-{}-", h.instance)
    };
    let stress_left = |root: &Path| -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![(root.to_path_buf(), 0)];
        while let Some((d, depth)) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if e.file_name().to_string_lossy().starts_with(&stress_prefix) {
                    found.push(e.path());
                } else if depth < 4 {
                    stack.push((e.path(), depth + 1));
                }
            }
        }
        found
    };
    if stress_root.is_none() {
        eprintln!("crash loop: no cgroup hierarchy for stress here; the rest runs");
    }
    let limits = format!("{STAGING}[process]\nmax_kills_per_minute = 1000\n");
    let mut worst = Duration::ZERO;
    let mut hook_rounds = 0;
    // Rounds where the crash left a fault in place for recovery to undo.
    let (mut stress_live, mut paused_live) = (0, 0);
    for round in 0..50 {
        let hook = round % 5 == 4;
        let mut agent = Agent::start_with(AgentOptions {
            limits: Some(limits.clone()),
            state_dir: Some(state.path().to_path_buf()),
            env: if hook {
                vec![("FAULTLINE_TEST_CRASH_AFTER_JOURNAL".into(), "1".into())]
            } else {
                vec![]
            },
            ..Default::default()
        });
        let paused = Victim::sleep("faultline-crash-pause");
        let looped = Victim::sleep("faultline-crash-loop");
        let group = freezer.as_deref().map(Group::new);
        let uri = agent.uri();
        let mut cmds: Vec<Vec<String>> = vec![
            vec![
                "inject".into(),
                "pause".into(),
                "--pid".into(),
                paused.pid().to_string(),
                "--for".into(),
                "5m".into(),
            ],
            vec![
                "inject".into(),
                "kill".into(),
                "--pid".into(),
                looped.pid().to_string(),
                "--signal".into(),
                "CONT".into(),
                "--every".into(),
                "1s".into(),
                "--for".into(),
                "1m".into(),
            ],
        ];
        if stress_root.is_some() {
            cmds.push(vec![
                "inject".into(),
                "cpu".into(),
                "--percent".into(),
                "5".into(),
                "--for".into(),
                "30s".into(),
            ]);
        }
        if let Some(p) = &pair {
            cmds.push(vec![
                "inject".into(),
                "net".into(),
                "--netns".into(),
                p.ns.name.clone(),
                "--iface".into(),
                p.a.clone(),
                "--delay".into(),
                "10ms".into(),
                "--for".into(),
                "5m".into(),
            ]);
        }
        if let Some(g) = &group {
            cmds.push(vec![
                "inject".into(),
                "pause".into(),
                "--cgroup".into(),
                g.dir.display().to_string(),
                "--for".into(),
                "5m".into(),
            ]);
        }
        let spawned: Vec<std::process::Child> = cmds
            .iter()
            .map(|a| {
                Command::new(faultline_tests::bin("faultctl"))
                    .args(["--agent", &uri])
                    .args(a)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        if hook {
            // The first inject aborts the agent right after its journal write.
            assert!(
                eventually(Duration::from_secs(10), || !agent.alive()),
                "the crash hook did not fire:\n{}",
                agent.log_text()
            );
            hook_rounds += 1;
        } else {
            std::thread::sleep(Duration::from_millis(pseudo_random(120)));
        }
        agent.crash_if_alive();
        if stress_root
            .as_deref()
            .is_some_and(|r| !stress_left(r).is_empty())
        {
            stress_live += 1;
        }
        if paused.state() == Some('T') {
            paused_live += 1;
        }
        for mut c in spawned {
            let _ = c.kill();
            let _ = c.wait();
        }
        let again = Agent::start_with(AgentOptions {
            limits: Some(limits.clone()),
            state_dir: Some(state.path().to_path_buf()),
            ..Default::default()
        });
        let t0 = Instant::now();
        // Within 1 s of start (it listens only after recovery): nothing of ours left.
        let clean = eventually(Duration::from_secs(1), || {
            paused.state() != Some('T')
                && looped.state() != Some('T')
                && group.as_ref().is_none_or(|g| !g.frozen())
                && pair.as_ref().is_none_or(|p| !ours(p))
                && stress_root
                    .as_deref()
                    .is_none_or(|r| stress_left(r).is_empty())
                && std::fs::read_dir(state.path().join("journal"))
                    .map(|d| d.count() == 0)
                    .unwrap_or(true)
        });
        let took = t0.elapsed();
        worst = worst.max(took);
        assert!(
            clean,
            "round {round}: not clean 1 s after restart: pause {:?}, loop {:?}, group frozen {:?}, our qdisc {:?}, stress groups {:?}\nfirst agent:\n{}\nsecond agent:\n{}",
            paused.state(),
            looped.state(),
            group.as_ref().map(|g| g.frozen()),
            pair.as_ref().map(ours),
            stress_root.as_deref().map(stress_left),
            agent.log_text(),
            again.log_text()
        );
        drop(again);
    }
    eprintln!(
        "crash loop: 50 rounds ({hook_rounds} crashed between journal and kernel; the crash left a paused process in {paused_live}, a stress group in {stress_live}), clean each time; worst wait after listening {worst:?}"
    );
}

#[test]
fn watch_hold_lease_binds_faults_and_lapses_when_watch_is_killed() {
    require!("root");
    use std::io::BufRead;
    let agent = Agent::start_staging();
    let v = Victim::sleep("faultline-watch-hold");
    let mut watch = Command::new(faultline_tests::bin("faultctl"))
        .args([
            "--agent",
            &agent.uri(),
            "-o",
            "json",
            "watch",
            "--hold",
            "--ttl",
            "2s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    // Kept open: the watch prints the inject event later and must not hit EPIPE.
    let mut events = std::io::BufReader::new(watch.stdout.take().unwrap());
    events.read_line(&mut first).unwrap();
    let lease: serde_json::Value = serde_json::from_str(&first).unwrap();
    let lease = lease["lease"].as_str().unwrap().to_string();
    agent.ctl_json(&[
        "inject",
        "pause",
        "--pid",
        &v.pid().to_string(),
        "--for",
        "5m",
        "--lease",
        &lease,
    ]);
    // Renewed by the watch well past its TTL.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(v.state(), Some('T'), "watch --hold renews its lease");
    let mut injected = String::new();
    events.read_line(&mut injected).unwrap();
    assert!(injected.contains("injected"), "{injected}");
    watch.kill().unwrap();
    let _ = watch.wait();
    let took = until_resumed(v.pid(), Duration::from_secs(10)).expect("never resumed");
    eprintln!("watch --hold SIGKILLed: resumed {took:?} later (ttl 2s)");
    assert!(took <= Duration::from_secs(3), "took {took:?}");
}
