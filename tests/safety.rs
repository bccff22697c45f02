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
    let out = agent.ctl(&["lease", "open", "--ttl", "5s"]);
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
    // Nobody renews: the lease lapses 5 s after it was opened (5 s, not less: two faultctl
    // starts in an emulated guest under load have taken over 2 s).
    assert!(
        until_resumed(v.pid(), Duration::from_secs(10)).is_some(),
        "never resumed"
    );
    let after = opened.elapsed();
    eprintln!("lease lapse: resumed {after:?} after the 5s lease was opened");
    assert!(
        after <= Duration::from_secs(6),
        "reverted {after:?} after opening a 5s lease (must be within TTL + 1 s)"
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
    let mut ctl = faultline_tests::agent::KillOnDrop::new(
        Command::new(faultline_tests::bin("faultctl"))
            .args(["--agent", &agent.uri(), "inject", "pause", "--pid"])
            .arg(v.pid().to_string())
            .args(["--for", "5m", "--hold", "--hold-ttl", "2s"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
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
    let ctl = faultline_tests::agent::KillOnDrop::new(
        Command::new(faultline_tests::bin("faultctl"))
            .args(["--agent", &agent.uri(), "inject", "pause", "--pid"])
            .arg(v.pid().to_string())
            .args(["--for", "5m", "--hold"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    if !eventually(Duration::from_secs(10), || v.state() == Some('T')) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(ctl.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let out = ctl.into_inner().wait_with_output().unwrap();
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
    let out = ctl.into_inner().wait_with_output().unwrap();
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

/// Issue #15: a protected port or prefix that does not parse stops faultd's start,
/// naming the file, the line and the field; nothing listens.
#[test]
fn bad_protected_traffic_in_the_limits_file_stops_the_start() {
    require!("root");
    for (body, line, field, why) in [
        (
            "[network]\nprotected_ports = [22, 70000]\n",
            2,
            "network.protected_ports",
            "70000 is not a port in 1..=65535",
        ),
        (
            "profile = \"staging\"\n[network]\n\nprotected_cidrs = [\"10.0.0.0/8\", \"10.1.2\"]\n",
            4,
            "network.protected_cidrs",
            "\"10.1.2\": not an IPv4 or IPv6 address",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("none.toml"), "").unwrap();
        let p = dir.path().join("limits.toml");
        std::fs::write(&p, body).unwrap();
        let out = start_faultd_with_limits(&p, dir.path());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        let want = format!("{}:{line}: field {field}: {why}", p.display());
        assert!(err.contains(&want), "want {want:?} in: {err}");
        assert!(!dir.path().join("s.sock").exists(), "never listened");
    }
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

/// Which freezer the crash loop's group uses: v1 `freezer.state` where a v1 freezer is
/// mounted (the hybrid host), else v2 `cgroup.freeze`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Freezer {
    V1,
    V2,
}

/// A freezer cgroup of the test's own with one sleeping process; thawed, emptied and
/// removed on drop, or the test fails.
struct Group {
    dir: PathBuf,
    freezer: Freezer,
    kid: Option<Victim>,
}

impl Group {
    fn new(freezer: Freezer) -> Group {
        let mount = match freezer {
            Freezer::V1 => faultline_tests::caps::v1_mount("freezer"),
            Freezer::V2 => faultline_tests::caps::v2_mount(),
        }
        .expect("the freezer hierarchy is mounted");
        let dir = mount.join(faultline_tests::unique_name("faultline-test-crash-"));
        std::fs::create_dir(&dir).unwrap();
        let kid = Victim::sleep("faultline-crash-frozen");
        std::fs::write(dir.join("cgroup.procs"), kid.pid().to_string()).unwrap();
        Group {
            dir,
            freezer,
            kid: Some(kid),
        }
    }

    /// Frozen or freezing: any trace of a freeze left.
    fn frozen(&self) -> bool {
        match self.freezer {
            Freezer::V1 => read_trim(&self.dir.join("freezer.state")) != "THAWED",
            Freezer::V2 => read_trim(&self.dir.join("cgroup.freeze")) != "0",
        }
    }

    /// Fully frozen, as the kernel reports it.
    fn frozen_in_kernel(&self) -> bool {
        match self.freezer {
            Freezer::V1 => read_trim(&self.dir.join("freezer.state")) == "FROZEN",
            Freezer::V2 => std::fs::read_to_string(self.dir.join("cgroup.events"))
                .is_ok_and(|e| e.lines().any(|l| l == "frozen 1")),
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = match self.freezer {
            Freezer::V1 => std::fs::write(self.dir.join("freezer.state"), "THAWED"),
            Freezer::V2 => std::fs::write(self.dir.join("cgroup.freeze"), "0"),
        };
        self.kid = None;
        let empty = eventually(Duration::from_secs(5), || {
            std::fs::read_to_string(self.dir.join("cgroup.procs"))
                .map(|s| s.trim().is_empty())
                .unwrap_or(true)
        });
        if !empty || std::fs::remove_dir(&self.dir).is_err() {
            faultline_tests::leftover(format!(
                "cgroup {} (processes: {})",
                self.dir.display(),
                read_trim(&self.dir.join("cgroup.procs"))
            ));
        }
    }
}

fn pseudo_random(n: u64) -> u64 {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (t ^ (t >> 7)).wrapping_mul(0x9E37_79B9_7F4A_7C15) % n
}

/// The fault kinds the crash loop checks in the kernel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Pause,
    Freeze,
    Stress,
    Net,
    Fill,
    Io,
}

/// How a round of the crash loop ends the agent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Crash {
    /// Every inject at once; SIGKILL once every fault is visible in the kernel.
    Live,
    /// Every inject at once; SIGKILL 0-120 ms after the faultctl processes start.
    Random,
    /// One inject of this kind; the agent aborts itself between the journal write and
    /// the kernel change (`FAULTLINE_TEST_CRASH_AFTER_JOURNAL`).
    AfterJournal(Kind),
    /// One inject of this kind; the agent aborts itself right after the kernel change,
    /// before the undo is journalled (`FAULTLINE_TEST_CRASH_AFTER_APPLY`).
    AfterApply(Kind),
}

/// Rounds: `FAULTLINE_CRASH_ROUNDS`, default 50 (the VM tier runs 20: a round costs
/// about 10 s in the emulated guest against 0.2 s on the host).
fn rounds() -> usize {
    std::env::var("FAULTLINE_CRASH_ROUNDS")
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("FAULTLINE_CRASH_ROUNDS={v:?} is not a number"))
        })
        .unwrap_or(50)
}

/// In every 10 rounds: 0, 2, 4, 6 live; 1, 7 random; 3, 8 after the journal; 5, 9 after
/// the kernel change. The hook rounds of each sort take the kinds in turn, so 20 rounds
/// cover 4 kinds with each hook (with 5, the 50 host rounds cover every kind).
fn crash_of(round: usize, kinds: &[Kind]) -> Crash {
    let block = round / 10 * 2;
    let kind = |n: usize| kinds[(block + n) % kinds.len()];
    match round % 10 {
        3 => Crash::AfterJournal(kind(0)),
        8 => Crash::AfterJournal(kind(1)),
        5 => Crash::AfterApply(kind(0)),
        9 => Crash::AfterApply(kind(1)),
        1 | 7 => Crash::Random,
        _ => Crash::Live,
    }
}

/// 50 times (see [`rounds`]): start faultd, inject a pause, a kill loop, a cgroup freeze,
/// CPU stress, a disk fill (on a tmpfs of its own), an io limit (on a blkio group of its
/// own) and a netem delay (each kind where the kernel has it: a counted skip
/// otherwise), SIGKILL it (of 50 rounds: 20 once every fault is visible in the kernel, 10
/// at a random moment, 10 between the journal write and the kernel change, 10 right after
/// the kernel change), start it again: the node is clean by the time it listens. Each
/// kind must have been live in the kernel at the crash in every round that waits for it,
/// and in every after-the-kernel-change round of its kind.
#[test]
fn crash_loop_leaves_nothing_behind() {
    require!("root");
    const TEST: &str = "safety::crash_loop_leaves_nothing_behind";
    let rounds = rounds();
    let mut kinds = vec![Kind::Pause];
    let freezer = if faultline_tests::caps::v1_mount("freezer").is_some() {
        Some(Freezer::V1)
    } else if faultline_tests::probe("cgroup2-freeze").is_ok() {
        Some(Freezer::V2)
    } else {
        let cap = if faultline_tests::caps::v2_mount().is_some() {
            "cgroup2-freeze"
        } else {
            "cgroup-v1-freezer"
        };
        faultline_tests::skip(TEST, cap, "no freezer: the cgroup freeze part is left out");
        None
    };
    if freezer.is_some() {
        kinds.push(Kind::Freeze);
    }
    // CPU stress where the host has a cgroup hierarchy for it; its group is named after
    // this state dir's agent instance, so leftovers are found in cgroupfs.
    let stress_root = match faultline_tests::caps::stress() {
        Ok(()) if faultline_tests::probe("cgroup2-controllers").is_ok() => {
            faultline_tests::caps::v2_mount()
        }
        Ok(()) => faultline_tests::caps::v1_mount("cpu"),
        Err(why) => {
            faultline_tests::skip(
                TEST,
                faultline_tests::caps::stress_capability(),
                &format!("{why}: the stress part is left out"),
            );
            None
        }
    };
    if stress_root.is_some() {
        kinds.push(Kind::Stress);
    }
    // The network part runs only where the kernel has netem (the VM tier).
    let pair = match faultline_tests::probe("netem") {
        Ok(()) => Some(net_common::Pair::new()),
        Err(why) => {
            faultline_tests::skip(
                TEST,
                "netem",
                &format!("{why}: the network part is left out"),
            );
            None
        }
    };
    if pair.is_some() {
        kinds.push(Kind::Net);
    }
    // A disk fill on a tmpfs of the test's own.
    let scratch = faultline_tests::disk::Tmpfs::mount("crash", 32);
    kinds.push(Kind::Fill);
    // An io limit on a test blkio group of its own, where the host throttles through v1
    // (the VM's cgroup2 io.max is left out: a counted skip).
    let io_group = match faultline_tests::caps::v1_mount("blkio")
        .filter(|r| r.join("blkio.throttle.write_bps_device").exists())
    {
        Some(root) => {
            let d = root.join(format!("faultline-crash-io-{}", std::process::id()));
            std::fs::create_dir_all(&d).unwrap();
            kinds.push(Kind::Io);
            Some(d)
        }
        None => {
            faultline_tests::skip(
                TEST,
                "cgroup-v1-blkio-throttle",
                "no v1 blkio throttling: the io limit part is left out",
            );
            None
        }
    };
    let io_limited =
        |d: &Path| read_trim(&d.join("blkio.throttle.write_bps_device")).ends_with(" 4194304");
    let ours = |p: &net_common::Pair| {
        p.ns.qdiscs_json(&p.a)
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["handle"].as_str().unwrap_or("").starts_with("fa17:"))
    };
    let state = tempfile::tempdir().unwrap();
    // Every agent of the loop starts in one v2 group (where stress needs v2), so a
    // restarted agent finds its predecessor's stress groups.
    let home = faultline_tests::agent::CgroupHome::if_needed();
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
    // A stress group with its workers in it.
    let stress_running = |root: &Path| {
        stress_left(root)
            .iter()
            .any(|g| !read_trim(&g.join("cgroup.procs")).is_empty())
    };
    let limits =
        format!("{STAGING}[process]\nmax_kills_per_minute = 1000\n[disk]\nmin_free = \"1MiB\"\n");
    let mut worst = Duration::ZERO;
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    // Rounds where the crash left a fault of that kind in the kernel for recovery to undo.
    let mut live: std::collections::BTreeMap<String, usize> = Default::default();
    let started = Instant::now();
    for round in 0..rounds {
        let crash = crash_of(round, &kinds);
        eprintln!(
            "crash loop: round {round} ({crash:?}) at {:.1} s",
            started.elapsed().as_secs_f64()
        );
        *counts.entry(format!("{crash:?}")).or_default() += 1;
        let env = match crash {
            Crash::AfterJournal(_) => vec![(
                faultline_agent::engine::CRASH_AFTER_JOURNAL_ENV.to_string(),
                "1".to_string(),
            )],
            Crash::AfterApply(_) => vec![(
                faultline_agent::engine::CRASH_AFTER_APPLY_ENV.to_string(),
                "1".to_string(),
            )],
            _ => vec![],
        };
        let mut agent = Agent::start_with(AgentOptions {
            limits: Some(limits.clone()),
            state_dir: Some(state.path().to_path_buf()),
            env,
            home: home.clone(),
            ..Default::default()
        });
        let paused = Victim::sleep("faultline-crash-pause");
        let looped = Victim::sleep("faultline-crash-loop");
        let group = freezer.map(Group::new);
        let uri = agent.uri();
        let inject = |kind: Option<Kind>| -> Vec<String> {
            let v: Vec<String> = match kind {
                Some(Kind::Pause) => vec![
                    "pause".into(),
                    "--pid".into(),
                    paused.pid().to_string(),
                    "--for".into(),
                    "5m".into(),
                ],
                None => vec![
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
                Some(Kind::Stress) => vec![
                    "cpu".into(),
                    "--percent".into(),
                    "5".into(),
                    "--for".into(),
                    "30s".into(),
                ],
                Some(Kind::Net) => {
                    let p = pair.as_ref().unwrap();
                    vec![
                        "net".into(),
                        "--netns".into(),
                        p.ns.name.clone(),
                        "--iface".into(),
                        p.a.clone(),
                        "--delay".into(),
                        "10ms".into(),
                        "--for".into(),
                        "5m".into(),
                    ]
                }
                Some(Kind::Fill) => vec![
                    "disk-fill".into(),
                    "--path".into(),
                    scratch.path().into(),
                    "--size".into(),
                    "8MiB".into(),
                    "--for".into(),
                    "5m".into(),
                ],
                Some(Kind::Io) => vec![
                    "io-limit".into(),
                    "--cgroup".into(),
                    io_group.as_ref().unwrap().display().to_string(),
                    "--path".into(),
                    "/var/tmp".into(),
                    "--write-bps".into(),
                    "4MiB".into(),
                    "--for".into(),
                    "5m".into(),
                ],
                Some(Kind::Freeze) => vec![
                    "pause".into(),
                    "--cgroup".into(),
                    group.as_ref().unwrap().dir.display().to_string(),
                    "--for".into(),
                    "5m".into(),
                ],
            };
            std::iter::once("inject".to_string()).chain(v).collect()
        };
        let cmds: Vec<Vec<String>> = match crash {
            Crash::AfterJournal(k) | Crash::AfterApply(k) => vec![inject(Some(k))],
            Crash::Live | Crash::Random => std::iter::once(None)
                .chain(kinds.iter().copied().map(Some))
                .map(inject)
                .collect(),
        };
        let is_live = |k: Kind| match k {
            Kind::Pause => paused.state() == Some('T'),
            Kind::Freeze => group.as_ref().is_some_and(|g| g.frozen_in_kernel()),
            // The group: its workers die with the agent (parent-death signal).
            Kind::Stress => stress_root
                .as_deref()
                .is_some_and(|r| !stress_left(r).is_empty()),
            Kind::Net => pair.as_ref().is_some_and(ours),
            Kind::Fill => !scratch.fill_files().is_empty(),
            Kind::Io => io_group.as_deref().is_some_and(io_limited),
        };
        let _spawned: Vec<faultline_tests::agent::KillOnDrop> = cmds
            .iter()
            .map(|a| {
                faultline_tests::agent::KillOnDrop::new(
                    Command::new(faultline_tests::bin("faultctl"))
                        .args(["--agent", &uri])
                        .args(a)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap(),
                )
            })
            .collect();
        match crash {
            Crash::AfterJournal(_) | Crash::AfterApply(_) => {
                // The inject aborts the agent.
                assert!(
                    eventually(Duration::from_secs(20), || !agent.alive()),
                    "round {round}: the crash hook did not fire:\n{}",
                    agent.log_text()
                );
            }
            Crash::Live => {
                assert!(
                    eventually(Duration::from_secs(30), || kinds
                        .iter()
                        .all(|&k| is_live(k))
                        && stress_root.as_deref().is_none_or(stress_running)),
                    "round {round}: not every fault became visible in the kernel within 30 s: {:?}\n{}",
                    kinds.iter().map(|&k| (k, is_live(k))).collect::<Vec<_>>(),
                    agent.log_text()
                );
            }
            Crash::Random => std::thread::sleep(Duration::from_millis(pseudo_random(120))),
        }
        agent.crash_if_alive();
        let now_live: Vec<Kind> = kinds.iter().copied().filter(|&k| is_live(k)).collect();
        match crash {
            Crash::AfterJournal(k) => assert!(
                !now_live.contains(&k),
                "round {round}: a crash before the kernel change left {k:?} live"
            ),
            Crash::AfterApply(k) => {
                assert!(
                    now_live.contains(&k),
                    "round {round}: a crash right after the kernel change left no {k:?} in the kernel:\n{}",
                    agent.log_text()
                );
                *live.entry(format!("{k:?} after apply")).or_default() += 1;
            }
            Crash::Live | Crash::Random => {
                let when = if crash == Crash::Live {
                    ""
                } else {
                    " at random"
                };
                for k in &now_live {
                    *live.entry(format!("{k:?}{when}")).or_default() += 1;
                }
            }
        }
        drop(_spawned);
        let again = Agent::start_with(AgentOptions {
            limits: Some(limits.clone()),
            state_dir: Some(state.path().to_path_buf()),
            home: home.clone(),
            ..Default::default()
        });
        let t0 = Instant::now();
        // Within 1 s of start (it listens only after recovery): nothing of ours left.
        let clean = eventually(Duration::from_secs(1), || {
            paused.state() != Some('T')
                && looped.state() != Some('T')
                && group.as_ref().is_none_or(|g| !g.frozen())
                && pair.as_ref().is_none_or(|p| !ours(p))
                && scratch.fill_files().is_empty()
                && io_group.as_deref().is_none_or(|d| !io_limited(d))
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
            "round {round} ({crash:?}): not clean 1 s after restart: pause {:?}, loop {:?}, group frozen {:?}, our qdisc {:?}, stress groups {:?}, fill files {:?}\nfirst agent:\n{}\nsecond agent:\n{}",
            paused.state(),
            looped.state(),
            group.as_ref().map(|g| g.frozen()),
            pair.as_ref().map(ours),
            stress_root.as_deref().map(stress_left),
            scratch.fill_files(),
            agent.log_text(),
            again.log_text()
        );
        drop(again);
    }
    eprintln!(
        "crash loop: {rounds} rounds {counts:?}, kinds {kinds:?}; rounds with a fault live in the kernel at the crash: {live:?}; clean each time; worst wait after listening {worst:?}"
    );
    if let Some(d) = &io_group {
        let _ = std::fs::remove_dir(d);
    }
    let live_rounds = (0..rounds)
        .filter(|&r| crash_of(r, &kinds) == Crash::Live)
        .count();
    for k in &kinds {
        let n = live.get(&format!("{k:?}")).copied().unwrap_or(0);
        assert!(
            n >= live_rounds,
            "{k:?} was live in the kernel at the crash in {n} of the {live_rounds} rounds that wait for it: {live:?}"
        );
    }
}

#[test]
fn watch_hold_lease_binds_faults_and_lapses_when_watch_is_killed() {
    require!("root");
    use std::io::BufRead;
    let agent = Agent::start_staging();
    let v = Victim::sleep("faultline-watch-hold");
    let mut watch = faultline_tests::agent::KillOnDrop::new(
        Command::new(faultline_tests::bin("faultctl"))
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
            .unwrap(),
    );
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
