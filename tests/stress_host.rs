//! Privileged tests of confined stress against the running kernel: faultline-owned
//! groups with hard caps, workers inside them, teardown, OOM inside the group, and the
//! parent-death signal. Each test runs once per cgroup version: the `_v1` variants on
//! the host kernel, the `_v2` ones where cgroup2 has the cpu and memory controllers
//! (the VM tier).
//!
//! Every test works inside its own parent group `faultline-t…` (removed by a guard), so
//! sweeps never see another test's groups. Workers are the `stress-bench` binary
//! answering faultd's hidden worker subcommands.

use std::io::BufRead;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faultline_agent::sys::cgroup::{
    Cgroups, CpuMax, Hierarchy, Limits, OwnedGroup, ParentSpec, StressBackend,
};
use faultline_agent::sys::stress::{self, WorkerCommand, spawn_worker, spawn_worker_cmd};
use faultline_tests::{require, unique_name};

/// The worker binary: next to faultd when FAULTLINE_BIN_DIR says where (the VM tier
/// copies it there), else where cargo built it.
fn worker() -> std::path::PathBuf {
    let near = faultline_tests::bin_dir().join("stress-bench");
    if std::env::var_os("FAULTLINE_BIN_DIR").is_some() && near.exists() {
        near
    } else {
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_stress-bench"))
    }
}
const TEARDOWN: Duration = Duration::from_secs(5);

/// The test's own parent group; removes it and everything below on drop.
struct Scope {
    cg: Cgroups,
    parent: OwnedGroup,
    children: Vec<Child>,
}

impl Scope {
    fn new(backend: StressBackend) -> Scope {
        let cg = Cgroups::detect().unwrap();
        assert_eq!(cg.stress_backend().unwrap(), backend);
        let parent = cg
            .create_owned(
                &ParentSpec::Path("/".into()),
                &unique_name("faultline-t"),
                &Limits::default(),
            )
            .unwrap();
        Scope {
            cg,
            parent,
            children: Vec::new(),
        }
    }

    fn under(&self) -> ParentSpec {
        ParentSpec::Path(self.parent.groups[0].path.clone())
    }

    fn worker(&mut self, g: &OwnedGroup, cmd: &WorkerCommand) -> u32 {
        let c = spawn_worker(&worker(), &cmd.to_args(), &g.groups).unwrap();
        let pid = c.id();
        self.children.push(c);
        pid
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let r = self.cg.remove_owned(&self.parent, TEARDOWN);
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Err(e) = r
            && !std::thread::panicking()
        {
            panic!("cannot remove the test's parent group: {e}");
        }
    }
}

fn caps(quota_us: u64, mem: u64) -> Limits {
    Limits {
        cpu: Some(CpuMax {
            quota_us: Some(quota_us),
            period_us: 100_000,
        }),
        memory_max: Some(mem),
        cpu_weight: Some(200),
    }
}

fn cpu(load: f64) -> WorkerCommand {
    WorkerCommand::Cpu {
        load_percent: load,
        period: stress::DEFAULT_PERIOD,
    }
}

fn mem(bytes: u64) -> WorkerCommand {
    WorkerCommand::Mem {
        size_bytes: bytes,
        ramp: Duration::ZERO,
    }
}

/// Whether `pid` has exited (gone, or a zombie nobody has reaped yet).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')),
    }
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

// ---- group created with caps read back, found, removed ----

fn caps_read_back(backend: StressBackend) {
    let s = Scope::new(backend);
    let want = caps(30_000, 64 << 20);
    let g =
        s.cg.create_owned(&s.under(), "faultline-caps", &want)
            .unwrap();
    match backend {
        StressBackend::V2 => assert_eq!(g.groups.len(), 1),
        StressBackend::V1 => {
            assert!(g.groups.iter().all(|p| p.hierarchy != Hierarchy::V2));
            assert!(
                s.cg.v1_root("cpu")
                    .is_some_and(|r| g.groups.iter().any(|p| p.dir.starts_with(r)))
            );
            assert!(
                s.cg.v1_root("memory")
                    .is_some_and(|r| g.groups.iter().any(|p| p.dir.starts_with(r)))
            );
        }
    }
    for part in &g.groups {
        assert!(part.dir.is_dir(), "{}", part.dir.display());
        assert_eq!(s.cg.limits(part).unwrap(), want, "{}", part.dir.display());
    }
    let found = s.cg.find_owned(&s.under()).unwrap();
    assert_eq!(found, vec![g.clone()]);
    // Creating it again is refused, naming the leftover.
    let e =
        s.cg.create_owned(&s.under(), "faultline-caps", &want)
            .unwrap_err()
            .to_string();
    assert!(e.contains("exists already"), "{e}");
    s.cg.remove_owned(&g, TEARDOWN).unwrap();
    assert!(g.groups.iter().all(|p| !p.dir.exists()));
    // Idempotent.
    s.cg.remove_owned(&g, TEARDOWN).unwrap();
    assert!(s.cg.find_owned(&s.under()).unwrap().is_empty());
}

#[test]
fn caps_read_back_v1() {
    require!("root", "cgroup-v1-cpu-memory");
    caps_read_back(StressBackend::V1);
}

#[test]
fn caps_read_back_v2() {
    require!("root", "cgroup2-controllers");
    caps_read_back(StressBackend::V2);
}

// ---- workers placed, confined, killed; group removed ----

fn workers_killed_on_teardown(backend: StressBackend) {
    let mut s = Scope::new(backend);
    let g =
        s.cg.create_owned(&s.under(), "faultline-work", &caps(40_000, 128 << 20))
            .unwrap();
    let mut pids = vec![s.worker(&g, &cpu(20.0)), s.worker(&g, &cpu(20.0))];
    pids.push(s.worker(&g, &mem(16 << 20)));
    pids.sort_unstable();
    let in_group: Vec<u32> =
        s.cg.owned_procs(&g)
            .unwrap()
            .into_iter()
            .map(|p| p as u32)
            .collect();
    assert_eq!(in_group, pids, "workers are in the group from the start");
    for &pid in &pids {
        let adj = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
        assert_eq!(adj.trim(), "1000", "pid {pid}");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        // PR_SET_PDEATHSIG is not in /proc; the parent-death test checks it works.
        assert!(status.contains("State:"), "{status}");
        let groups = Cgroups::pid_cgroups(pid as i32).unwrap();
        for part in &g.groups {
            assert!(
                groups.iter().any(|(_, p)| *p == part.path),
                "pid {pid} not in {}: {groups:?}",
                part.path
            );
        }
    }
    let u0 = s.cg.owned_usage(&g).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || {
            s.cg.owned_usage(&g).unwrap().memory_bytes.unwrap() >= 16 << 20
        }),
        "the memory worker's 16 MiB never showed in the group: {:?}",
        s.cg.owned_usage(&g).unwrap()
    );
    let u1 = s.cg.owned_usage(&g).unwrap();
    assert!(u1.cpu_usec.unwrap() > u0.cpu_usec.unwrap(), "{u0:?} {u1:?}");

    s.cg.remove_owned(&g, TEARDOWN).unwrap();
    for c in &mut s.children {
        let st = c.wait().unwrap();
        assert_eq!(st.signal(), Some(libc::SIGKILL), "{st:?}");
    }
    s.children.clear();
    assert!(g.groups.iter().all(|p| !p.dir.exists()));
}

#[test]
fn workers_killed_on_teardown_v1() {
    require!("root", "cgroup-v1-cpu-memory");
    workers_killed_on_teardown(StressBackend::V1);
}

#[test]
fn workers_killed_on_teardown_v2() {
    require!("root", "cgroup2-controllers");
    workers_killed_on_teardown(StressBackend::V2);
}

// ---- a memory worker past its cap is OOM-killed inside its group ----

fn oom_inside_the_group(backend: StressBackend) {
    let mut s = Scope::new(backend);
    let cap = 48u64 << 20;
    let g =
        s.cg.create_owned(&s.under(), "faultline-oom", &caps(100_000, cap))
            .unwrap();
    // A bystander in the same parent scope, outside the capped group.
    let bystander =
        s.cg.create_owned(&s.under(), "faultline-bystander", &caps(100_000, 64 << 20))
            .unwrap();
    let by = s.worker(&bystander, &mem(8 << 20));
    let hog = s.worker(&g, &mem(256 << 20));
    let hog_child = s.children.iter_mut().find(|c| c.id() == hog).unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(st) = hog_child.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the hog was not OOM-killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let u = s.cg.owned_usage(&g).unwrap();
    assert!(u.oom_kills.unwrap_or(0) >= 1, "{u:?}");
    // The bystander, and this test process, carry on.
    assert!(!dead(by), "the bystander died");
    assert_eq!(s.cg.owned_usage(&bystander).unwrap().oom_kills, Some(0));
    s.cg.remove_owned(&g, TEARDOWN).unwrap();
}

#[test]
fn oom_inside_the_group_v1() {
    require!("root", "cgroup-v1-cpu-memory");
    oom_inside_the_group(StressBackend::V1);
}

#[test]
fn oom_inside_the_group_v2() {
    require!("root", "cgroup2-controllers");
    oom_inside_the_group(StressBackend::V2);
}

// ---- a killed parent takes its workers with it; a sweep removes the leftover ----

fn parent_death_kills_workers(backend: StressBackend) {
    let mut s = Scope::new(backend);
    // The holder plays faultd: placed in the test's parent group, it makes its stress
    // group under its own group (ParentSpec::Own) and starts three workers there.
    let mut cmd = Command::new(worker());
    cmd.args([
        "__hold",
        "--parent",
        "own",
        "--name",
        "faultline-held",
        "--workers",
        "2",
        "--load",
        "10",
        "--mem",
        &(8u64 << 20).to_string(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped());
    let mut holder = spawn_worker_cmd(cmd, &s.parent.groups).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let workers: Vec<u32> = line
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("holder said {line:?}"))
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(workers.len(), 3);
    let held = s.cg.find_owned(&s.under()).unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].name, "faultline-held");
    if backend == StressBackend::V2 {
        // The holder moved itself into the leaf so its group could hold children.
        let parent_dir = &s.parent.groups[0].dir;
        let procs = std::fs::read_to_string(parent_dir.join("cgroup.procs")).unwrap();
        assert!(procs.trim().is_empty(), "{procs}");
        let leaf = std::fs::read_to_string(parent_dir.join("agent/cgroup.procs")).unwrap();
        assert_eq!(leaf.trim(), holder.id().to_string());
    }
    assert!(workers.iter().all(|&w| !dead(w)));

    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || workers.iter().all(|&w| dead(w))),
        "workers outlived their parent: {:?}",
        workers.iter().filter(|&&w| !dead(w)).collect::<Vec<_>>()
    );
    // "The next start": a sweep finds and removes the leftover group.
    let removed = s.cg.sweep_owned(&s.under(), TEARDOWN).unwrap();
    assert_eq!(removed, vec!["faultline-held".to_string()]);
    assert!(held[0].groups.iter().all(|p| !p.dir.exists()));
    s.children.clear();
}

#[test]
fn parent_death_kills_workers_v1() {
    require!("root", "cgroup-v1-cpu-memory");
    parent_death_kills_workers(StressBackend::V1);
}

#[test]
fn parent_death_kills_workers_v2() {
    require!("root", "cgroup2-controllers");
    parent_death_kills_workers(StressBackend::V2);
}

// ---- stress placed in a target group shows up in the target's counters ----

fn shows_in_target_counters(backend: StressBackend) {
    let mut s = Scope::new(backend);
    // The scope's parent group plays the target workload's group.
    let target = s.parent.groups.clone();
    let before: Vec<_> = target.iter().map(|t| s.cg.usage(t).unwrap()).collect();
    let g =
        s.cg.create_owned(&s.under(), "faultline-placed", &caps(50_000, 64 << 20))
            .unwrap();
    s.worker(&g, &cpu(50.0));
    s.worker(&g, &mem(20 << 20));
    let grown = |t: &faultline_agent::sys::cgroup::CgroupRef| {
        s.cg.usage(t).unwrap().memory_bytes.unwrap_or(0) >= 20 << 20
    };
    wait_until(Duration::from_secs(10), || target.iter().any(grown));
    std::thread::sleep(Duration::from_millis(300));
    let after: Vec<_> = target.iter().map(|t| s.cg.usage(t).unwrap()).collect();
    let cpu_grew = before
        .iter()
        .zip(&after)
        .any(|(b, a)| a.cpu_usec.unwrap_or(0) > b.cpu_usec.unwrap_or(0) + 100_000);
    let mem_now = after
        .iter()
        .filter_map(|a| a.memory_bytes)
        .max()
        .unwrap_or(0);
    assert!(cpu_grew, "{before:?} -> {after:?}");
    assert!(mem_now >= 20 << 20, "{after:?}");
    s.cg.remove_owned(&g, TEARDOWN).unwrap();
}

#[test]
fn shows_in_target_counters_v1() {
    require!("root", "cgroup-v1-cpu-memory");
    shows_in_target_counters(StressBackend::V1);
}

#[test]
fn shows_in_target_counters_v2() {
    require!("root", "cgroup2-controllers");
    shows_in_target_counters(StressBackend::V2);
}

// ---- the cap holds even when the worker asks for more ----

fn cap_holds(backend: StressBackend) {
    let mut s = Scope::new(backend);
    // A 100 % worker in a group capped at 0.2 CPU.
    let g =
        s.cg.create_owned(&s.under(), "faultline-cap", &caps(20_000, 64 << 20))
            .unwrap();
    s.worker(&g, &cpu(100.0));
    std::thread::sleep(Duration::from_millis(300));
    let u0 = s.cg.owned_usage(&g).unwrap().cpu_usec.unwrap();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let used = s.cg.owned_usage(&g).unwrap().cpu_usec.unwrap() - u0;
    let cpus = used as f64 / 1e6 / t0.elapsed().as_secs_f64();
    eprintln!("a 100 % worker capped at 0.20 CPU used {cpus:.3} CPU");
    // At most the cap (plus accounting slack); at least most of it, so a worker that
    // never spins (or a cap far below the one asked for) fails too.
    assert!(cpus <= 0.23, "used {cpus:.3} CPU, above the 0.20 cap");
    assert!(
        cpus >= 0.15,
        "used only {cpus:.3} CPU of the 0.20 it may use: the worker does not spin"
    );
    s.cg.remove_owned(&g, TEARDOWN).unwrap();
}

#[test]
fn cap_holds_v1() {
    require!("root", "cgroup-v1-cpu-memory");
    cap_holds(StressBackend::V1);
}

#[test]
fn cap_holds_v2() {
    require!("root", "cgroup2-controllers");
    cap_holds(StressBackend::V2);
}
