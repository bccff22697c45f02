//! Real containers (podman with runc, see `support/container.rs`): faultd finds them from
//! `/proc/*/cgroup` alone, by id or by a 12-digit prefix; and the real faultd and faultctl
//! act on them by `--container` (kill, pause, network, CPU and memory stress).

use std::path::{Path, PathBuf};
use std::time::Duration;

use faultline_agent::sys::container::{ContainerQuery, Runtime, resolve};
use faultline_tests::agent::{Agent, eventually, fault_id, stderr};
use faultline_tests::container::{Container, sweep};
use faultline_tests::require;

const TAG: &str = "ctrtest";

fn start(cmd: &[&str]) -> Container {
    sweep(TAG);
    Container::start(TAG, cmd).unwrap_or_else(|e| panic!("cannot start a container: {e}"))
}

#[test]
fn a_real_container_resolves_by_prefix_with_its_pids_cgroup_and_netns() {
    require!("root", "podman");
    let c = start(&["/bin/sh", "-c", "sleep 300 & exec sleep 301"]);
    // The shell's child is started asynchronously: wait until both run.
    let q = ContainerQuery::parse(&c.id[..12]).unwrap();
    let mut found = resolve(&q, Path::new("/proc")).unwrap();
    for _ in 0..50 {
        if found.procs.len() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        found = resolve(&q, Path::new("/proc")).unwrap();
    }
    assert_eq!(found.id, c.id);
    assert_eq!(found.runtime, Runtime::Podman);
    assert_eq!(found.init, c.pid);
    assert_eq!(found.procs.len(), 2, "{found}");
    assert!(
        found.procs.iter().all(|(_, comm)| comm == "sleep"),
        "{found}"
    );
    // Its cgroup is the one the kernel shows for the container's process.
    assert_eq!(found.cgroup(), c.cgroup().unwrap());
    // Every pid listed is in that cgroup, and conmon (its parent) is not listed.
    let conmon: i32 = c.inspect("{{.State.ConmonPid}}").unwrap().parse().unwrap();
    assert!(!found.pids().contains(&conmon));
    for pid in found.pids() {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(text.contains(&c.id), "pid {pid}: {text}");
    }
    // Its network namespace is its own (--network none), not the agent's.
    let ns = found.netns.expect("the namespace link is readable as root");
    let link = std::fs::read_link(format!("/proc/{}/ns/net", c.pid)).unwrap();
    assert_eq!(link.to_str().unwrap(), format!("net:[{}]", ns.inode));
    assert!(!ns.host);
    println!("{found}");
}

#[test]
fn host_network_containers_are_seen_as_such_and_gone_ones_are_not_found() {
    require!("root", "podman");
    sweep(TAG);
    let mut c = Container::start_with(TAG, &["--network", "host"], &["/bin/sleep", "300"])
        .unwrap_or_else(|e| panic!("cannot start a container: {e}"));
    let q = ContainerQuery::parse(&c.id).unwrap();
    let found = resolve(&q, Path::new("/proc")).unwrap();
    assert!(found.netns.unwrap().host, "{found}");
    c.remove().unwrap();
    let e = resolve(&q, Path::new("/proc")).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "no running container on this node has an id starting with {}",
            c.id
        )),
        "{e}"
    );
}

// ------------------------------------------------------------ faultd and faultctl

/// The real faultd, and a prefix of `c`'s id as a person would type it.
fn agent_and_prefix(c: &Container) -> (Agent, String) {
    (Agent::start(), c.id[..12].to_string())
}

/// A container running two `sleep`s (a shell's child and the shell become sleep),
/// both seen; the real faultd; and the container's 12-digit prefix.
fn two_sleeps() -> (Container, Agent, String) {
    let c = start(&["/bin/sh", "-c", "sleep 300 & exec sleep 301"]);
    wait_procs(&c, 2);
    let (agent, prefix) = agent_and_prefix(&c);
    (c, agent, prefix)
}

/// A process's state letter (`S`, `T`, `D`...) from `/proc/PID/stat`.
fn state(pid: i32) -> Option<char> {
    faultline_tests::agent::proc_state(pid)
}

/// Waits until the container runs `n` processes, as procfs shows them.
fn wait_procs(c: &Container, n: usize) {
    let q = ContainerQuery::parse(&c.id).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || resolve(&q, Path::new("/proc"))
            .map(|f| f.procs.len() == n)
            .unwrap_or(false)),
        "container {} never ran {n} processes",
        c.name
    );
}

/// The pids in a cgroup directory (`cgroup.procs`).
fn procs_of(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The container's directory in the v1 hierarchy `controller`.
fn v1_dir(c: &Container, controller: &str) -> PathBuf {
    let root = faultline_tests::caps::v1_mount(controller).expect("a v1 hierarchy");
    root.join(c.cgroup().unwrap().trim_start_matches('/'))
}

#[test]
fn dry_run_shows_the_container_and_changes_nothing() {
    require!("root", "podman");
    let (c, agent, prefix) = two_sleeps();
    let out = agent.ctl_json(&[
        "inject",
        "pause",
        "--container",
        &prefix,
        "--for",
        "30s",
        "--dry-run",
    ]);
    assert_eq!(out["dry_run"], true, "{out}");
    let ct = &out["container"];
    assert_eq!(ct["id"], c.id.as_str(), "{out}");
    assert_eq!(ct["runtime"], "podman", "{out}");
    assert_eq!(ct["cgroup"], c.cgroup().unwrap().as_str(), "{out}");
    assert_eq!(ct["netns_pid"], c.pid, "{out}");
    let link = std::fs::read_link(format!("/proc/{}/ns/net", c.pid)).unwrap();
    assert_eq!(
        format!("net:[{}]", ct["netns_inode"]),
        link.to_str().unwrap(),
        "{out}"
    );
    assert_eq!(ct["host_network"], false, "{out}");
    let pids: Vec<i64> = ct["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{out}");
    let conmon: i64 = c.inspect("{{.State.ConmonPid}}").unwrap().parse().unwrap();
    assert!(!pids.contains(&conmon), "conmon listed: {out}");
    assert!(
        out["plan"].as_str().unwrap().starts_with("freeze cgroup"),
        "{out}"
    );
    // Nothing happened: no fault, the processes run.
    assert!(out["fault"].is_null(), "{out}");
    for p in &pids {
        assert_ne!(state(*p as i32), Some('T'));
    }
    assert_eq!(
        agent.ctl_json(&["list"])["faults"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0),
        0
    );
    // The table a person reads names the container, its cgroup and its namespace.
    let table = agent.ctl(&[
        "inject",
        "pause",
        "--container",
        &prefix,
        "--for",
        "30s",
        "--dry-run",
    ]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{text} {}", stderr(&table));
    assert!(text.contains(&c.id) && text.contains("podman"), "{text}");
    assert!(text.contains(&c.cgroup().unwrap()), "{text}");
    println!("{text}");
}

#[test]
fn pause_by_container_freezes_its_cgroup_and_revert_thaws_it() {
    require!("root", "podman");
    let (c, agent, prefix) = two_sleeps();
    let out = agent.ctl_json(&["inject", "pause", "--container", &prefix, "--for", "60s"]);
    let id = fault_id(&out);
    assert_eq!(out["container"]["id"], c.id.as_str(), "{out}");
    // The kernel's view: the group the plan names is frozen, and so are its processes.
    let desc = out["fault"]["description"].as_str().unwrap().to_string();
    let (dir, who) = desc
        .strip_prefix("froze cgroup ")
        .and_then(|d| d.split_once(" in container "))
        .expect(&desc);
    assert_eq!(who, format!("{prefix} (podman)"), "{desc}");
    let dir = PathBuf::from(dir);
    let frozen = || {
        let v1 = std::fs::read_to_string(dir.join("freezer.state")).unwrap_or_default();
        let v2 = std::fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
        v1.trim() == "FROZEN" || v2.lines().any(|l| l == "frozen 1")
    };
    assert!(frozen(), "{} is not frozen", dir.display());
    assert!(dir.to_string_lossy().contains(&c.id), "{}", dir.display());
    let pids = procs_of(&dir);
    assert_eq!(pids.len(), 2, "{pids:?}");
    // The journal's undo names the cgroup by path, not the container.
    let journal =
        std::fs::read_to_string(agent.state_dir().join(format!("journal/{id}.json"))).unwrap();
    assert!(
        journal.contains("\"thaw\"") && journal.contains(&c.cgroup().unwrap()),
        "{journal}"
    );
    // `get` shows the container.
    let got = agent.ctl_json(&["get", &id]);
    assert_eq!(got["container"]["id"], c.id.as_str(), "{got}");
    let table = agent.ctl(&["get", &id]);
    assert!(String::from_utf8_lossy(&table.stdout).contains(&c.id));
    // `status` lists it with the container in its description, and in its JSON.
    let status = agent.ctl(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains(&format!("in container {prefix}")), "{text}");
    let status = agent.ctl_json(&["status"]);
    assert_eq!(
        status["active"][0]["container"]["id"],
        c.id.as_str(),
        "{status}"
    );
    for p in &pids {
        println!("pid {p} frozen: state {:?}", state(*p));
    }
    agent.ctl_json(&["revert", &id]);
    assert!(!frozen(), "{} still frozen after revert", dir.display());
    assert!(eventually(Duration::from_secs(5), || pids
        .iter()
        .all(|p| state(*p) == Some('S'))));
    assert_eq!(c.status().unwrap(), "running");
}

#[test]
fn pause_of_some_processes_in_a_container_stops_them_with_sigstop() {
    require!("root", "podman");
    let (c, agent, prefix) = two_sleeps();
    // With another selector, only the matches are stopped (SIGSTOP), one of two here.
    let out = agent.ctl_json(&[
        "inject",
        "pause",
        "--container",
        &prefix,
        "--name",
        "sleep",
        "--count",
        "1",
        "--for",
        "60s",
    ]);
    let id = fault_id(&out);
    let hit: Vec<i32> = out["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["pid"].as_i64().unwrap() as i32)
        .collect();
    assert_eq!(hit.len(), 1, "{out}");
    assert_eq!(state(hit[0]), Some('T'), "{out}");
    let all: Vec<i32> = procs_of(&v1_dir(&c, "freezer"));
    let other: Vec<&i32> = all.iter().filter(|p| !hit.contains(p)).collect();
    assert_eq!(other.len(), 1, "{all:?}");
    assert_eq!(state(*other[0]), Some('S'));
    agent.ctl_json(&["revert", &id]);
    assert_eq!(state(hit[0]), Some('S'));
}

#[test]
fn kill_by_container_kills_its_processes_and_not_conmon() {
    require!("root", "podman");
    let (c, agent, prefix) = two_sleeps();
    let conmon: i32 = c.inspect("{{.State.ConmonPid}}").unwrap().parse().unwrap();
    let out = agent.ctl_json(&["inject", "kill", "--container", &prefix]);
    let hit: Vec<i32> = out["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["pid"].as_i64().unwrap() as i32)
        .collect();
    assert_eq!(hit.len(), 2, "{out}");
    assert!(!hit.contains(&conmon), "{out}");
    assert_eq!(out["fault"]["container"]["id"], c.id.as_str(), "{out}");
    assert!(
        eventually(Duration::from_secs(10), || !c.running()),
        "the container still runs"
    );
    for p in hit {
        assert!(!matches!(state(p), Some('S' | 'R' | 'T')), "pid {p} lives");
    }
}

#[test]
fn unknown_bad_and_gone_containers_are_refused_and_nothing_changes() {
    require!("root", "podman");
    let c = start(&["/bin/sleep", "300"]);
    let agent = Agent::start();
    // Unknown id: not found (exit 4), naming what runs.
    let o = agent.ctl(&["inject", "kill", "--container", "0123456789abcdef0123"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(
            "no running container on this node has an id starting with 0123456789abcdef0123"
        ),
        "{e}"
    );
    assert!(e.contains(&c.id[..12]), "the running one is named: {e}");
    // Malformed ids: bad input (exit 2), naming the field.
    for bad in ["abc", "not-an-id-at-all", "containerd://"] {
        let o = agent.ctl(&["inject", "pause", "--container", bad, "--for", "5s"]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains("container"), "{}", stderr(&o));
    }
    // Network: the container plus a netns is refused by the agent too (a raw request).
    // A host-network container's namespace is the node's: refused.
    let h = Container::start_with(TAG, &["--network", "host"], &["/bin/sleep", "300"]).unwrap();
    let o = agent.ctl(&[
        "inject",
        "net",
        "--container",
        &h.id[..12],
        "--delay",
        "10ms",
        "--for",
        "5s",
    ]);
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("node's own network namespace"),
        "{}",
        stderr(&o)
    );
    // Nothing was started, the container runs untouched.
    assert_eq!(
        agent.ctl_json(&["list", "--all"])["faults"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0),
        0
    );
    assert_eq!(state(c.pid), Some('S'));
}

/// A veth pair made inside the container's own namespace (`eth0` and a peer), so that the
/// root namespace is never touched; it goes with the container.
fn give_eth0(c: &Container) {
    let ns = format!("--net=/proc/{}/ns/net", c.pid);
    let run = |args: &[&str]| {
        let o = std::process::Command::new("nsenter")
            .arg(&ns)
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    run(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "flpeer0",
    ]);
    run(&["ip", "link", "set", "eth0", "up"]);
    run(&["ip", "link", "set", "flpeer0", "up"]);
}

/// `tc qdisc show dev eth0` inside the container's namespace.
fn qdiscs(c: &Container) -> String {
    let o = std::process::Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", c.pid))
        .args(["tc", "qdisc", "show", "dev", "eth0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn network_faults_enter_the_containers_namespace() {
    require!("root", "podman");
    let c = start(&["/bin/sleep", "300"]);
    let (agent, prefix) = agent_and_prefix(&c);
    let net = |extra: &[&str]| {
        let mut a = vec!["inject", "net", "--container", prefix.as_str()];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["--delay", "40ms", "--for", "30s"]);
        agent.ctl(&a)
    };
    // The container (--network none) has only lo: its eth0, the default, is not found
    // there, though the node has an eth0. Bad input: exit 2, naming the field.
    let o = net(&["--dry-run"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("spec.network.iface"), "{}", stderr(&o));
    give_eth0(&c);
    let before = qdiscs(&c);
    // flpeer0 exists only in the container's namespace: found with --container, not
    // without (the agent's own namespace).
    let o = agent.ctl(&[
        "inject",
        "net",
        "--iface",
        "flpeer0",
        "--delay",
        "40ms",
        "--for",
        "30s",
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    if faultline_tests::probe("netem").is_err() {
        // This kernel has no sch_netem: the plan gets past the container's namespace and
        // interface to the kernel check, and is refused there (exit 6), changing nothing.
        // The VM tier's kernel has netem, but no podman.
        for iface in ["eth0", "flpeer0"] {
            let o = net(&["--iface", iface, "--dry-run"]);
            assert_eq!(o.status.code(), Some(6), "{iface}: {}", stderr(&o));
            assert!(stderr(&o).contains("sch_netem"), "{}", stderr(&o));
        }
        let o = net(&[]);
        assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
        assert_eq!(qdiscs(&c), before);
        assert!(
            agent.ctl_json(&["list"])["faults"]
                .as_array()
                .map(Vec::is_empty)
                .unwrap_or(true)
        );
        faultline_tests::skip(
            "containers::network_faults_enter_the_containers_namespace",
            "netem",
            "this kernel has no sch_netem (the plan in the container's namespace ran; applying netem did not)",
        );
        return;
    }
    let out = agent.ctl_json(&[
        "inject",
        "net",
        "--container",
        &prefix,
        "--delay",
        "40ms",
        "--for",
        "30s",
        "--dry-run",
    ]);
    let plan = out["plan"].as_str().unwrap();
    assert!(
        plan.contains("eth0 egress in container") && plan.contains(&prefix),
        "{plan}"
    );
    assert!(plan.contains(&format!("/proc/{}/ns/net", c.pid)), "{plan}");
    assert_eq!(out["container"]["id"], c.id.as_str(), "{out}");
    assert_eq!(qdiscs(&c), before, "a dry run changed the qdiscs");
    let out = agent.ctl_json(&[
        "inject",
        "net",
        "--container",
        &prefix,
        "--delay",
        "40ms",
        "--for",
        "30s",
    ]);
    let id = fault_id(&out);
    let during = qdiscs(&c);
    assert!(
        during.contains("netem") && during.contains("delay 40ms"),
        "{during}"
    );
    let journal =
        std::fs::read_to_string(agent.state_dir().join(format!("journal/{id}.json"))).unwrap();
    assert!(
        journal.contains(&format!("/proc/{}/ns/net", c.pid)),
        "{journal}"
    );
    agent.ctl_json(&["revert", &id]);
    assert_eq!(qdiscs(&c), before);
}

/// Whether stress runs here in v1 cgroups (what the stress tests read); if not, a
/// counted skip of `test`.
fn v1_stress(test: &str) -> bool {
    if faultline_tests::caps::stress().is_ok() && faultline_tests::caps::v1_mount("cpu").is_some() {
        return true;
    }
    faultline_tests::skip(
        test,
        faultline_tests::caps::stress_capability(),
        "stress in v1 cgroups is what this test reads",
    );
    false
}

/// The pids of a container's faultline stress group in `controller`'s hierarchy.
fn stress_workers(c: &Container, controller: &str) -> Vec<i32> {
    let dir = v1_dir(c, controller);
    std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("faultline-stress-")
        })
        .flat_map(|e| procs_of(&e.path()))
        .collect()
}

#[test]
fn stress_runs_in_the_containers_cgroup_against_its_limit() {
    require!("root", "podman");
    if !v1_stress("containers::stress_runs_in_the_containers_cgroup_against_its_limit") {
        return;
    }
    sweep(TAG);
    let c = Container::start_with(
        TAG,
        &["--cpus", "0.5", "--memory", "256m"],
        &["/bin/sleep", "300"],
    )
    .unwrap_or_else(|e| panic!("cannot start a container: {e}"));
    let (agent, prefix) = agent_and_prefix(&c);
    let cpuacct = v1_dir(&c, "cpuacct").join("cpuacct.usage");
    let usage = || -> u64 {
        std::fs::read_to_string(&cpuacct)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = usage();
    let out = agent.ctl_json(&[
        "inject",
        "cpu",
        "--percent",
        "50",
        "--container",
        &prefix,
        "--for",
        "30s",
    ]);
    let id = fault_id(&out);
    let desc = out["fault"]["description"].as_str().unwrap();
    assert!(
        desc.contains("of its cgroup's CPU limit (0.50 CPUs)"),
        "{desc}"
    );
    assert!(
        desc.contains(&format!("inside container {prefix}")),
        "{desc}"
    );
    assert_eq!(out["container"]["id"], c.id.as_str(), "{out}");
    let workers = stress_workers(&c, "cpu");
    assert!(
        !workers.is_empty(),
        "no worker in a stress group under the container's cpu group"
    );
    std::thread::sleep(Duration::from_secs(2));
    let used_ms = (usage() - before) / 1_000_000;
    println!("container cpuacct.usage grew {used_ms} ms in ~2 s with 50% of 0.5 CPUs");
    assert!(
        used_ms > 100,
        "the container's CPU counter moved {used_ms} ms"
    );
    agent.ctl_json(&["revert", &id]);
    assert!(stress_workers(&c, "cpu").is_empty());

    // Memory: half of the container's 256 MiB limit, resident inside its memory group.
    let out = agent.ctl_json(&[
        "inject",
        "mem",
        "--percent",
        "50",
        "--container",
        &prefix,
        "--for",
        "30s",
    ]);
    let id = fault_id(&out);
    let desc = out["fault"]["description"].as_str().unwrap();
    assert!(desc.starts_with("memory stress: 128.0 MiB"), "{desc}");
    let workers = stress_workers(&c, "memory");
    assert_eq!(workers.len(), 1, "{desc}");
    let charged = v1_dir(&c, "memory").join("memory.usage_in_bytes");
    assert!(
        eventually(Duration::from_secs(10), || std::fs::read_to_string(
            &charged
        )
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap()
            > 100 << 20),
        "the container's memory group never held the worker's pages"
    );
    agent.ctl_json(&["revert", &id]);
    assert!(stress_workers(&c, "memory").is_empty());
    assert!(c.running());
}

#[test]
fn a_container_removed_under_a_fault_leaves_the_fault_revertable_and_nothing_behind() {
    require!("root", "podman");
    // Frozen, then removed: podman kills it (runc thaws to deliver SIGKILL); the revert
    // finds the group gone and counts it as reverted.
    let (mut c, agent, prefix) = two_sleeps();
    let out = agent.ctl_json(&["inject", "pause", "--container", &prefix, "--for", "60s"]);
    let pause = fault_id(&out);
    let freezer = v1_dir(&c, "freezer");
    let started = std::time::Instant::now();
    c.remove().unwrap();
    println!(
        "podman rm -f of a frozen container took {:?}",
        started.elapsed()
    );
    let o = agent.ctl(&["revert", &pause]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = agent.ctl_json(&["get", &pause]);
    assert_eq!(got["state"], "reverted", "{got}");
    println!("pause: {}", got["end_reason"]);
    assert!(
        eventually(Duration::from_secs(5), || !freezer.exists()),
        "{} left",
        freezer.display()
    );
}

#[test]
fn a_container_removed_under_stress_ends_the_stress_and_leaves_no_group() {
    require!("root", "podman");
    if !v1_stress(
        "containers::a_container_removed_under_stress_ends_the_stress_and_leaves_no_group",
    ) {
        return;
    }
    let mut c = start(&["/bin/sleep", "300"]);
    let (agent, prefix) = agent_and_prefix(&c);
    let out = agent.ctl_json(&[
        "inject",
        "cpu",
        "--percent",
        "10",
        "--container",
        &prefix,
        "--for",
        "60s",
    ]);
    let id = fault_id(&out);
    let cpu = v1_dir(&c, "cpu");
    let memory = v1_dir(&c, "memory");
    let cpuacct = v1_dir(&c, "cpuacct");
    assert!(!stress_workers(&c, "cpu").is_empty());
    c.remove().unwrap();
    // The fault ends on its own (its workers died with the container) or by revert;
    // either way no worker and no group is left, and the container's group goes.
    let o = agent.ctl(&["revert", &id]);
    println!("revert: {} {}", o.status, stderr(&o));
    let got = agent.ctl_json(&["get", &id]);
    println!("state {} reason {}", got["state"], got["end_reason"]);
    assert_ne!(got["state"], "active", "{got}");
    assert!(
        eventually(Duration::from_secs(10), || !cpu.exists()
            && !memory.exists()
            && !cpuacct.exists()),
        "{} left: {:?}",
        cpu.display(),
        std::fs::read_dir(&cpu).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
}
