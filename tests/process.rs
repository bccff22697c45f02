//! End-to-end: process faults with the real `faultd` and the real `faultctl`, checked in
//! `/proc`.

use std::time::Duration;

use faultline_tests::agent::{Agent, Victim, eventually, fault_id, proc_state, stderr};
use faultline_tests::require;

/// A copy of `sleep` under a unique name (so its comm is unique), in `dir`.
fn unique_sleep(dir: &std::path::Path, prefix: &str) -> (std::path::PathBuf, String) {
    let name = faultline_tests::unique_name(prefix);
    let p = dir.join(&name);
    std::fs::copy(faultline_tests::agent::sleep_binary(), &p).unwrap();
    (p, name)
}

#[test]
fn kill_by_pid() {
    require!("root");
    let agent = Agent::start();
    let mut v = Victim::sleep("faultline-kill-by-pid");
    let out = agent.ctl_json(&["inject", "kill", "--pid", &v.pid().to_string()]);
    assert_eq!(
        out["targets"][0]["pid"].as_i64(),
        Some(v.pid() as i64),
        "{out}"
    );
    assert!(
        eventually(Duration::from_secs(5), || v.exited().is_some()),
        "victim still alive"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(v.exited().unwrap().signal(), Some(9));
}

#[test]
fn kill_by_name_with_signal() {
    require!("root");
    let agent = Agent::start();
    let dir = tempfile::tempdir().unwrap();
    let (path, name) = unique_sleep(dir.path(), "flk");
    let mut child = faultline_tests::agent::KillOnDrop::new(
        std::process::Command::new(&path)
            .arg("600")
            .spawn()
            .unwrap(),
    );
    assert!(eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{}/comm", child.id()))
            .map(|c| c.trim() == name)
            .unwrap_or(false)
    }));
    let out = agent.ctl_json(&["inject", "kill", "--name", &name, "--signal", "TERM"]);
    assert_eq!(out["targets"].as_array().map(|a| a.len()), Some(1), "{out}");
    use std::os::unix::process::ExitStatusExt;
    assert!(eventually(Duration::from_secs(5), || child
        .try_wait()
        .ok()
        .flatten()
        .is_some()));
    assert_eq!(child.wait().unwrap().signal(), Some(15));
}

#[test]
fn pause_then_expiry_resumes() {
    require!("root");
    let agent = Agent::start();
    let v = Victim::sleep("faultline-pause-expiry");
    let out = agent.ctl_json(&[
        "inject",
        "pause",
        "--pid",
        &v.pid().to_string(),
        "--for",
        "1s",
    ]);
    let id = fault_id(&out);
    assert_eq!(v.state(), Some('T'), "paused process is stopped");
    assert!(
        eventually(Duration::from_secs(5), || v.state() == Some('S')),
        "resumed after expiry: {:?}",
        v.state()
    );
    // The record is filed as expired right after the resume.
    assert!(
        eventually(
            Duration::from_secs(2),
            || agent.ctl_json(&["get", &id])["state"].as_str() == Some("expired")
        ),
        "{}",
        agent.ctl_json(&["get", &id])
    );
}

#[test]
fn revert_early_resumes() {
    require!("root");
    let agent = Agent::start();
    let v = Victim::sleep("faultline-pause-revert");
    let id = fault_id(&agent.ctl_json(&[
        "inject",
        "pause",
        "--pid",
        &v.pid().to_string(),
        "--for",
        "60s",
    ]));
    assert_eq!(v.state(), Some('T'));
    let listed = agent.ctl_json(&["list"]);
    assert!(listed.to_string().contains(&id), "{listed}");
    let out = agent.ctl(&["revert", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v.state(), Some('S'), "revert returns once resumed");
    assert_eq!(
        agent.ctl_json(&["get", &id])["state"].as_str(),
        Some("reverted")
    );
}

#[test]
fn abort_resumes_all() {
    require!("root");
    let agent = Agent::start_staging();
    let vs: Vec<Victim> = (0..3)
        .map(|i| Victim::sleep(&format!("faultline-abort-{i}")))
        .collect();
    for v in &vs {
        agent.ctl_json(&[
            "inject",
            "pause",
            "--pid",
            &v.pid().to_string(),
            "--for",
            "60s",
        ]);
    }
    assert!(vs.iter().all(|v| v.state() == Some('T')));
    let out = agent.ctl(&["abort", "--reason", "test"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for v in &vs {
        assert_eq!(v.state(), Some('S'));
    }
    let left = agent.ctl_json(&["list"]);
    assert!(
        !left.to_string().contains("\"active\""),
        "nothing active after abort: {left}"
    );
}

#[test]
fn sigterm_to_agent_resumes_paused() {
    require!("root");
    let mut agent = Agent::start();
    let v = Victim::sleep("faultline-pause-sigterm");
    agent.ctl_json(&[
        "inject",
        "pause",
        "--pid",
        &v.pid().to_string(),
        "--for",
        "60s",
    ]);
    assert_eq!(v.state(), Some('T'));
    let st = agent.stop();
    assert!(st.success(), "faultd exits 0 after SIGTERM: {st}");
    assert_eq!(
        v.state(),
        Some('S'),
        "paused process resumed before faultd exited"
    );
}

#[test]
fn pid1_is_refused() {
    require!("root");
    let agent = Agent::start();
    let out = agent.ctl(&["inject", "kill", "--pid", "1"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "refused by policy: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("pid 1"), "{}", stderr(&out));
    assert_eq!(proc_state(1).map(|s| s != 'Z'), Some(true));
}

/// A process of a copied `sleep` named `name` (its comm), killed on drop.
fn named_sleep(dir: &std::path::Path, name: &str) -> faultline_tests::agent::KillOnDrop {
    let p = dir.join(name);
    std::fs::copy(faultline_tests::agent::sleep_binary(), &p).unwrap();
    let child = faultline_tests::agent::KillOnDrop::new(
        std::process::Command::new(&p).arg("600").spawn().unwrap(),
    );
    let comm = format!("/proc/{}/comm", child.id());
    assert!(eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == name)
    }));
    child
}

/// Nested cgroups of the test's own in the v2 hierarchy (present on both tiers); removed
/// deepest first on drop, or the test fails. Drop the processes in them first.
struct Nested {
    dirs: Vec<std::path::PathBuf>,
}

impl Nested {
    /// `/<unique>/<leaf>`; returns the guard and the leaf's directory.
    fn new(leaf: &str) -> (Nested, std::path::PathBuf) {
        let root = faultline_tests::caps::v2_mount().expect("a cgroup2 mount");
        let top = root.join(faultline_tests::unique_name("fltprot-"));
        let leaf = top.join(leaf);
        std::fs::create_dir(&top).unwrap();
        std::fs::create_dir(&leaf).unwrap();
        (
            Nested {
                dirs: vec![leaf.clone(), top],
            },
            leaf,
        )
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        for d in &self.dirs {
            let gone = eventually(Duration::from_secs(5), || {
                std::fs::remove_dir(d).is_ok() || !d.exists()
            });
            if !gone {
                faultline_tests::leftover(format!("cgroup {}", d.display()));
            }
        }
    }
}

/// Asserts that `faultctl ARGS` is refused by policy (exit 3) with `why` in the message.
fn refused(agent: &Agent, args: &[&str], why: &str) {
    let out = agent.ctl(args);
    assert_eq!(
        out.status.code(),
        Some(3),
        "faultctl {args:?} must be refused: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(why),
        "faultctl {args:?}: the refusal names {why:?}: {}",
        stderr(&out)
    );
}

/// README: kernel threads, `sshd`, protected units and cgroups are never selected, by
/// pid, by name or as part of a whole group, with the real selection over /proc.
#[test]
fn kernel_threads_sshd_protected_units_and_cgroups_are_never_selected() {
    require!("root", "cgroup2");
    let agent = Agent::start();
    // A kernel thread: kthreadd, and every process named like it.
    let kthreadd = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "kthreadd")
        })
        .expect("kthreadd runs");
    refused(
        &agent,
        &[
            "inject",
            "pause",
            "--pid",
            &kthreadd.to_string(),
            "--for",
            "5s",
        ],
        "kernel thread",
    );
    refused(
        &agent,
        &["inject", "kill", "--name", "kthreadd"],
        "kernel thread",
    );

    // sshd, by its comm: by pid and by name.
    let dir = tempfile::tempdir().unwrap();
    let sshd = named_sleep(dir.path(), "sshd");
    let pid = sshd.id().to_string();
    refused(
        &agent,
        &["inject", "pause", "--pid", &pid, "--for", "5s"],
        "protected process \"sshd\"",
    );
    refused(
        &agent,
        &["inject", "kill", "--name", "sshd"],
        "protected process \"sshd\"",
    );
    // Untouched: alive and not stopped (a process just spawned may still be running its
    // start-up on a loaded machine: R as well as S).
    let st = proc_state(sshd.id() as i32);
    assert!(
        matches!(st, Some('S' | 'R')),
        "sshd untouched: state {st:?}"
    );

    // A process in a cgroup of a protected unit (a path component sshd.service): by name
    // and as the whole group.
    let (unit, unit_dir) = Nested::new("sshd.service");
    let name = faultline_tests::unique_name("flu");
    let in_unit = named_sleep(dir.path(), &name);
    std::fs::write(unit_dir.join("cgroup.procs"), in_unit.id().to_string()).unwrap();
    refused(
        &agent,
        &["inject", "kill", "--name", &name],
        "in protected unit sshd.service",
    );
    refused(
        &agent,
        &[
            "inject",
            "pause",
            "--cgroup",
            &unit_dir.display().to_string(),
            "--for",
            "5s",
        ],
        "protected unit sshd.service",
    );
    assert_eq!(proc_state(in_unit.id() as i32), Some('S'), "untouched");
    drop(in_unit);
    drop(unit);

    // A process under a cgroup the limits file protects.
    let (lab, lab_dir) = Nested::new("lab");
    let protected = format!(
        "/{}",
        lab_dir
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
    );
    let agent = Agent::start_with(faultline_tests::agent::AgentOptions {
        limits: Some(format!(
            "[process]\nprotected_cgroups = [\"{protected}\"]\n"
        )),
        ..Default::default()
    });
    let name = faultline_tests::unique_name("flc");
    let in_cg = named_sleep(dir.path(), &name);
    std::fs::write(lab_dir.join("cgroup.procs"), in_cg.id().to_string()).unwrap();
    refused(
        &agent,
        &["inject", "kill", "--name", &name],
        &format!("in protected cgroup {protected}"),
    );
    assert_eq!(proc_state(in_cg.id() as i32), Some('S'), "untouched");
    drop(in_cg);
    drop(lab);
}

#[test]
fn dry_run_lists_targets_and_touches_nothing() {
    require!("root");
    let agent = Agent::start();
    let v = Victim::sleep("faultline-dry-run");
    let out = agent.ctl_json(&[
        "inject",
        "pause",
        "--pid",
        &v.pid().to_string(),
        "--for",
        "10s",
        "--dry-run",
    ]);
    assert_eq!(
        out["targets"][0]["pid"].as_i64(),
        Some(v.pid() as i64),
        "{out}"
    );
    assert!(
        out["targets"][0]["cmdline"]
            .as_str()
            .unwrap_or("")
            .contains("faultline-dry-run"),
        "{out}"
    );
    assert_eq!(v.state(), Some('S'));
    let listed = agent.ctl_json(&["list", "--all"]);
    assert!(
        !listed.to_string().contains("\"pause\""),
        "dry run recorded nothing: {listed}"
    );
}

#[test]
fn every_kills_a_respawning_target_repeatedly() {
    require!("root");
    let agent = Agent::start();
    let dir = tempfile::tempdir().unwrap();
    let (path, name) = unique_sleep(dir.path(), "flr");
    let counter = dir.path().join("count");
    // A supervisor that restarts the worker whenever it dies and counts the starts.
    let script = format!(
        "n=0; while [ -d {d} ]; do n=$((n+1)); echo $n > {c}; {p} 600; done",
        d = dir.path().display(),
        c = counter.display(),
        p = path.display()
    );
    // In its own process group, output to nowhere, killed (with every process running
    // the copied binary) however the test ends.
    let sup = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    struct Supervisor(std::process::Child, std::path::PathBuf);
    impl Drop for Supervisor {
        fn drop(&mut self) {
            use nix::sys::signal::{Signal, kill, killpg};
            use nix::unistd::Pid;
            let _ = killpg(Pid::from_raw(self.0.id() as i32), Signal::SIGKILL);
            let _ = self.0.kill();
            let _ = self.0.wait();
            // Any worker that escaped the group: find it by its executable's path.
            let me = self.1.to_string_lossy().into_owned();
            for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                if cmd.starts_with(me.as_bytes()) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
    }
    let _sup = Supervisor(sup, path.clone());
    let count = || {
        std::fs::read_to_string(&counter)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(0)
    };
    assert!(eventually(Duration::from_secs(5), || count() >= 1));
    assert!(eventually(Duration::from_secs(5), || agent
        .ctl(&["inject", "kill", "--name", &name, "--dry-run"])
        .status
        .success()));
    let n0 = count();
    let out = agent.ctl_json(&[
        "inject", "kill", "--name", &name, "--every", "1s", "--for", "3500ms",
    ]);
    let id = fault_id(&out);
    assert!(
        eventually(
            Duration::from_secs(10),
            || agent.ctl_json(&["get", &id])["state"].as_str() == Some("expired")
        ),
        "kill loop expires"
    );
    // The first kill plus one per second for 3.5 s (at 0, 1, 2 and 3 s): four kills,
    // each followed by a restart, and no fifth once the fault has expired.
    let restarts = || count() - n0;
    assert!(
        eventually(Duration::from_secs(5), || restarts() >= 4),
        "the worker was restarted {} times during the kill loop, expected 4 (one per kill)",
        restarts()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        restarts(),
        4,
        "4 kills (at 0, 1, 2, 3 s of a 3.5 s loop), each restarting the worker once"
    );
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    require!("root");
    let agent = Agent::start();
    let v = Victim::sleep("faultline-bad-input");
    let pid = v.pid().to_string();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["inject", "kill"], 2, "selector"),
        (
            &["inject", "kill", "--pid", &pid, "--signal", "NOPE"],
            2,
            "signal",
        ),
        (
            &["inject", "pause", "--pid", &pid, "--for", "0s"],
            2,
            "duration",
        ),
        (
            &["inject", "pause", "--pid", &pid, "--for", "-5s"],
            2,
            "--for",
        ),
        (
            &["inject", "pause", "--pid", &pid, "--for", "301s"],
            3,
            "max_duration",
        ),
        (
            &[
                "inject",
                "pause",
                "--pid",
                &pid,
                "--for",
                "10s",
                "--percent",
                "150",
            ],
            2,
            "percent",
        ),
        (&["inject", "kill", "--cmdline", "(unclosed"], 2, "regex"),
        (&["get", "f-does-not-exist"], 4, "f-does-not-exist"),
        (&["revert", "f-does-not-exist"], 4, "f-does-not-exist"),
    ];
    for (args, code, needle) in cases {
        let out = agent.ctl(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(*code), "faultctl {args:?}: {err}");
        assert!(
            err.contains(needle),
            "faultctl {args:?}: error should mention {needle:?}: {err}"
        );
        assert_eq!(v.state(), Some('S'), "faultctl {args:?} changed the victim");
    }
    let listed = agent.ctl_json(&["list", "--all"]);
    assert_eq!(
        listed.to_string().matches("\"id\"").count(),
        0,
        "nothing recorded: {listed}"
    );

    // Beyond the concurrency limit (production: 1).
    let v2 = Victim::sleep("faultline-bad-input-2");
    let id = fault_id(&agent.ctl_json(&["inject", "pause", "--pid", &pid, "--for", "30s"]));
    let out = agent.ctl(&[
        "inject",
        "pause",
        "--pid",
        &v2.pid().to_string(),
        "--for",
        "30s",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("max_concurrent_faults"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(&id),
        "names the active fault: {}",
        stderr(&out)
    );
    assert_eq!(v2.state(), Some('S'));
}

/// A cgroup made for a test under a hierarchy mount; its processes are killed and the
/// group removed on drop.
struct TestGroup {
    dir: std::path::PathBuf,
    kids: Vec<Victim>,
}

impl TestGroup {
    fn new(mount: &std::path::Path, n: usize) -> TestGroup {
        let dir = mount.join(faultline_tests::unique_name("faultline-test-"));
        std::fs::create_dir(&dir).unwrap();
        let mut g = TestGroup {
            dir,
            kids: Vec::new(),
        };
        for i in 0..n {
            let v = Victim::sleep(&format!("faultline-freeze-{i}"));
            std::fs::write(g.dir.join("cgroup.procs"), v.pid().to_string()).unwrap();
            g.kids.push(v);
        }
        g
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        // Thaw in case the test failed midway, so the kill can land.
        let _ = std::fs::write(self.dir.join("cgroup.freeze"), "0");
        let _ = std::fs::write(self.dir.join("freezer.state"), "THAWED");
        self.kids.clear();
        let empty = eventually(Duration::from_secs(5), || {
            std::fs::read_to_string(self.dir.join("cgroup.procs"))
                .map(|s| s.trim().is_empty())
                .unwrap_or(true)
        });
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            faultline_tests::leftover(format!(
                "cgroup {} (empty within 5 s: {empty}): rmdir: {e}",
                self.dir.display()
            ));
        }
    }
}

fn freeze_and_thaw(mount: std::path::PathBuf, frozen: impl Fn(&std::path::Path) -> bool) {
    let agent = Agent::start();
    let g = TestGroup::new(&mount, 2);
    let cg = g.dir.display().to_string();
    let out = agent.ctl_json(&["inject", "pause", "--cgroup", &cg, "--for", "30s"]);
    let id = fault_id(&out);
    assert_eq!(out["targets"].as_array().map(|a| a.len()), Some(2), "{out}");
    assert!(frozen(&g.dir), "group is frozen after inject");
    // A frozen task sits in the refrigerator: not running, not signal-stopped.
    for k in &g.kids {
        assert_ne!(k.state(), Some('R'));
    }
    let out = agent.ctl(&["revert", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!frozen(&g.dir), "group is thawed after revert");
    for k in &g.kids {
        assert_eq!(k.state(), Some('S'));
    }
}

#[test]
fn freeze_v1_cgroup() {
    require!("root", "cgroup-v1-freezer");
    let mount = faultline_tests::caps::v1_mount("freezer").unwrap();
    freeze_and_thaw(mount, |d| {
        faultline_tests::agent::read_trim(&d.join("freezer.state")) == "FROZEN"
    });
}

#[test]
fn freeze_v2_cgroup() {
    require!("root", "cgroup2-freeze");
    let mount = faultline_tests::caps::v2_mount().unwrap();
    freeze_and_thaw(mount, |d| {
        std::fs::read_to_string(d.join("cgroup.events"))
            .map(|e| e.lines().any(|l| l == "frozen 1"))
            .unwrap_or(false)
    });
}
