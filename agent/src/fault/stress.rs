//! CPU and memory stress, confined in a faultline-owned cgroup with a hard cap.
//!
//! Workers are `faultd` itself re-executed with a hidden subcommand (no shell, no
//! stress-ng), started by [`crate::sys::stress::spawn_worker`] with a parent-death
//! signal and `oom_score_adj` 1000, inside the group before they run. The group's cap
//! (`cpu.max` / `cpu.cfs_quota_us`; `memory.max` / `memory.limit_in_bytes` just above the
//! size) holds whatever the workers do. Revert kills the group and removes it.

use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::values::{CgroupPath, Percent, UnitName};
use super::{Applied, Plan, Undo};
use crate::error::FaultError;
use crate::host::Host;
use crate::sys::cgroup::{Cgroups, Hierarchy, OwnedGroup, ParentSpec};
use crate::sys::container::{Container, ContainerQuery};
use crate::sys::stress::{self, WorkerCommand};

/// Where the stress runs: inside a target's cgroup (competing under its limits), or in
/// the agent's own subtree.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    Own,
    Cgroup(CgroupPath),
    Unit(UnitName),
    Pid(i32),
    /// A container's cgroup, found from `/proc/*/cgroup` when planned.
    Container(ContainerQuery),
}

#[derive(Debug, Clone, PartialEq)]
pub enum CpuAmount {
    /// Percent of the capacity (the node's, or the target cgroup's CPU limit).
    Share(Percent),
    /// N workers each at P % duty cycle.
    Cores { cores: u32, load: Percent },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CpuSpec {
    pub amount: CpuAmount,
    pub placement: Placement,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MemAmount {
    Bytes(u64),
    /// Percent of MemTotal, or of the target cgroup's memory limit.
    Percent(Percent),
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemSpec {
    pub amount: MemAmount,
    pub ramp: Duration,
    pub placement: Placement,
}

/// What a stress plan resolved to: the group's parent, and the workers.
#[derive(Debug, Clone)]
pub struct StressPlan {
    pub parent: ParentSpec,
    pub caps: crate::sys::cgroup::Limits,
    pub workers: Vec<WorkerCommand>,
    /// Share of the node this fault takes (CPU percent of node, or memory percent of
    /// RAM), for the limits' totals.
    pub node_percent: f64,
}

/// The running workers and their group.
#[derive(Debug)]
pub struct Running {
    pub group: OwnedGroup,
    pub children: Arc<Mutex<Vec<Child>>>,
}

fn cg(host: &Host) -> Result<&Cgroups, FaultError> {
    host.cgroups()
}

fn backend_check(c: &Cgroups) -> Result<(), FaultError> {
    c.stress_backend().map(|_| ()).map_err(|e| {
        FaultError::Precondition(format!("this node cannot confine stress in a cgroup: {e}"))
    })
}

/// The hierarchy a process's group is read in: cgroup2 unless its controllers live in
/// v1 (hybrid), then v1's cpu.
fn placement_hierarchy(c: &Cgroups) -> Hierarchy {
    if c.v2_root().is_some() && c.mode() != crate::sys::cgroup::CgroupMode::Hybrid {
        Hierarchy::V2
    } else {
        Hierarchy::V1("cpu".into())
    }
}

/// The target's cgroup path (hierarchy-relative), for a placement; with the container
/// it named, resolved.
pub(crate) fn target_path(
    c: &Cgroups,
    p: &Placement,
    field: &str,
) -> Result<(Option<String>, Option<Container>), FaultError> {
    let nf = |e: crate::sys::cgroup::CgroupError| FaultError::NotFound(e.to_string());
    Ok(match p {
        Placement::Own => (None, None),
        Placement::Cgroup(path) => (Some(c.resolve(path.as_str()).map_err(nf)?.path), None),
        Placement::Unit(u) => (Some(c.find_unit(u.as_str()).map_err(nf)?.path), None),
        Placement::Pid(pid) => (
            Some(c.pid_group(*pid, &placement_hierarchy(c)).map_err(nf)?.path),
            None,
        ),
        Placement::Container(q) => {
            let found = super::find_container(q, &format!("{field}.placement.container"))?;
            let h = placement_hierarchy(c);
            let path = found.cgroup_in(&h).map(str::to_string).ok_or_else(|| {
                FaultError::NotFound(format!(
                    "container {} has no group in the {} hierarchy (its groups: {})",
                    found.short_id(),
                    match &h {
                        Hierarchy::V2 => "cgroup2".to_string(),
                        Hierarchy::V1(k) => format!("v1 {k}"),
                    },
                    found
                        .cgroups
                        .iter()
                        .map(|(_, p)| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            // The group must exist as the kernel shows it (it goes with the container).
            c.group(&h, &path).map_err(nf)?;
            (Some(path), Some(found))
        }
    })
}

fn target_limits(c: &Cgroups, path: &Option<String>) -> crate::sys::cgroup::Limits {
    let Some(path) = path else {
        return Default::default();
    };
    let h = if c.mode() == crate::sys::cgroup::CgroupMode::V2 {
        Hierarchy::V2
    } else {
        Hierarchy::V1("cpu".into())
    };
    let mut l = c
        .group(&h, path)
        .and_then(|g| c.effective_limits(&g))
        .unwrap_or_default();
    if c.mode() != crate::sys::cgroup::CgroupMode::V2 {
        // v1 keeps memory limits in their own hierarchy.
        if let Ok(m) = c
            .group(&Hierarchy::V1("memory".into()), path)
            .and_then(|g| c.effective_limits(&g))
        {
            l.memory_max = m.memory_max;
        }
    }
    l
}

/// `MemTotal` and `MemAvailable` in bytes.
pub fn meminfo() -> Result<(u64, u64), FaultError> {
    let text = std::fs::read_to_string("/proc/meminfo")
        .map_err(|e| FaultError::Failed(format!("cannot read /proc/meminfo: {e}")))?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    match (field("MemTotal:"), field("MemAvailable:")) {
        (Some(t), Some(a)) => Ok((t, a)),
        _ => Err(FaultError::Failed(
            "cannot parse MemTotal/MemAvailable in /proc/meminfo".into(),
        )),
    }
}

fn mib(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

fn placement_text(p: &Placement) -> String {
    match p {
        Placement::Own => "in faultd's own cgroup subtree".into(),
        Placement::Cgroup(c) => format!("inside cgroup {c}"),
        Placement::Unit(u) => format!("inside unit {u}"),
        Placement::Pid(p) => format!("inside the cgroup of pid {p}"),
        Placement::Container(q) => format!("inside the cgroup of container {q}"),
    }
}

/// Where it runs, in words: the placement, and the group it resolved to.
fn where_text(p: &Placement, target: &Option<String>, container: &Option<Container>) -> String {
    match (container, target) {
        (Some(c), Some(path)) => format!(
            "inside container {} ({}), cgroup {path}",
            c.short_id(),
            c.runtime
        ),
        _ => placement_text(p),
    }
}

/// Resolves a CPU fault: capacity, workers, cap.
pub fn plan_cpu(s: &CpuSpec, host: &Host) -> Result<(Plan, StressPlan), FaultError> {
    let c = cg(host)?;
    backend_check(c)?;
    let (target, container) = target_path(c, &s.placement, "spec.cpu")?;
    let node = stress::node_cpus() as f64;
    let (capacity, of) = match target_limits(c, &target).cpu.and_then(|m| m.cpus()) {
        Some(cpus) => (
            cpus.min(node),
            format!("of its cgroup's CPU limit ({cpus:.2} CPUs)"),
        ),
        None => (node, format!("of the node ({node} CPUs)")),
    };
    let p = match s.amount {
        CpuAmount::Share(pct) => stress::plan_cpu_share(pct.get(), capacity),
        CpuAmount::Cores { cores, load } => stress::plan_cpu_cores(cores, load.get()),
    };
    let cpus_used = p.cap.cpus().unwrap_or(0.0);
    let node_percent = cpus_used / node * 100.0;
    let what = match s.amount {
        CpuAmount::Share(pct) => format!("{pct}% {of}"),
        CpuAmount::Cores { cores, load } => format!("{cores} workers at {load}%"),
    };
    let description = format!(
        "CPU stress {what}: {} workers at {:.1}% duty, capped at {:.2} CPUs ({node_percent:.1}% of the node) {}",
        p.workers,
        p.load_percent,
        cpus_used,
        where_text(&s.placement, &target, &container)
    );
    let sp = StressPlan {
        parent: target.map(ParentSpec::Path).unwrap_or(ParentSpec::Own),
        caps: p.limits(),
        workers: (0..p.workers)
            .map(|_| WorkerCommand::Cpu {
                load_percent: p.load_percent,
                period: stress::DEFAULT_PERIOD,
            })
            .collect(),
        node_percent,
    };
    Ok((plan(description, container), sp))
}

/// Resolves a memory fault: size, cap, and the node's minimum available memory.
pub fn plan_mem(s: &MemSpec, host: &Host) -> Result<(Plan, StressPlan), FaultError> {
    let c = cg(host)?;
    backend_check(c)?;
    let (target, container) = target_path(c, &s.placement, "spec.memory")?;
    let (total, available) = meminfo()?;
    let base = target_limits(c, &target).memory_max.filter(|m| *m < total);
    let size = match s.amount {
        MemAmount::Bytes(b) => b,
        MemAmount::Percent(p) => (p.get() / 100.0 * base.unwrap_or(total) as f64) as u64,
    };
    if size == 0 {
        return Err(FaultError::invalid(
            "spec.memory.size_bytes",
            "resolves to 0 bytes",
        ));
    }
    if size > total {
        return Err(FaultError::invalid(
            "spec.memory.size_bytes",
            format!(
                "{} is more than this node's RAM ({})",
                mib(size),
                mib(total)
            ),
        ));
    }
    let min_free = (total / 10).max(512 << 20);
    if available.saturating_sub(size) < min_free {
        return Err(FaultError::Limit {
            limit: "memory.min_available".into(),
            value: format!(
                "{} (10% of RAM or 512 MiB, whichever is larger)",
                mib(min_free)
            ),
            requested: format!(
                "{} with {} available now, which would leave {}",
                mib(size),
                mib(available),
                mib(available.saturating_sub(size))
            ),
            file: host.limits.source.clone(),
        });
    }
    let node_percent = size as f64 / total as f64 * 100.0;
    let description = format!(
        "memory stress: {} resident{}, capped at {} ({node_percent:.1}% of RAM) {}",
        mib(size),
        if s.ramp.is_zero() {
            String::new()
        } else {
            format!(
                " after a {} ramp",
                faultline_proto::units::format_duration(s.ramp)
            )
        },
        mib(stress::memory_cap(size)),
        where_text(&s.placement, &target, &container)
    );
    let sp = StressPlan {
        parent: target.map(ParentSpec::Path).unwrap_or(ParentSpec::Own),
        caps: crate::sys::cgroup::Limits {
            cpu: None,
            memory_max: Some(stress::memory_cap(size)),
            cpu_weight: None,
        },
        workers: vec![WorkerCommand::Mem {
            size_bytes: size,
            ramp: s.ramp,
        }],
        node_percent,
    };
    Ok((plan(description, container), sp))
}

fn plan(description: String, container: Option<Container>) -> Plan {
    Plan {
        targets: Vec::new(),
        excluded: Vec::new(),
        freeze: None,
        description,
        conflict_key: None,
        stress: None,
        fill: None,
        io: None,
        io_stress: None,
        container,
        netns: None,
        tc: None,
    }
}

/// The executable workers re-execute: this very binary.
fn self_exe() -> PathBuf {
    std::fs::read_link("/proc/self/exe").unwrap_or_else(|_| PathBuf::from("/proc/self/exe"))
}

/// Starts the workers inside `group`; if one cannot start, removes the group (killing
/// those started) and reaps them.
pub(crate) fn start_workers(
    c: &Cgroups,
    group: &OwnedGroup,
    workers: &[WorkerCommand],
) -> Result<Vec<Child>, FaultError> {
    let exe = self_exe();
    let mut children = Vec::new();
    for w in workers {
        match stress::spawn_worker(&exe, &w.to_args(), &group.groups) {
            Ok(ch) => children.push(ch),
            Err(e) => {
                let _ = c.remove_owned(group, Duration::from_secs(5));
                for mut ch in children {
                    let _ = ch.wait();
                }
                return Err(FaultError::Failed(format!(
                    "cannot start a stress worker: {e}"
                )));
            }
        }
    }
    Ok(children)
}

/// Creates the group and starts the workers inside it; on failure removes it all.
pub fn apply(sp: &StressPlan, host: &Host, description: String) -> Result<Applied, FaultError> {
    let c = cg(host)?;
    // `faultline-stress-<instance>-<random>`: the instance part is what
    // `Host::sweep_stress_groups` looks for after a crash.
    let name = format!(
        "{}stress-{}-{:08x}",
        crate::sys::cgroup::OWNED_PREFIX,
        host.instance,
        rand::random::<u32>()
    );
    let group = c
        .create_owned(&sp.parent, &name, &sp.caps)
        .map_err(|e| FaultError::Precondition(format!("cannot create the stress cgroup: {e}")))?;
    let children = start_workers(c, &group, &sp.workers)?;
    let pids: Vec<String> = children.iter().map(|c| c.id().to_string()).collect();
    Ok(Applied {
        description: format!(
            "{description}; group {name}, worker pids {}",
            pids.join(", ")
        ),
        undo: Undo::Stress(Running {
            group,
            children: Arc::new(Mutex::new(children)),
        }),
        targets: Vec::new(),
    })
}

/// Kills the workers, waits until the group is empty, removes it, reaps the workers.
pub fn revert(r: &Running, host: &Host) -> Result<(), FaultError> {
    let c = cg(host)?;
    c.remove_owned(&r.group, Duration::from_secs(10))
        .map_err(|e| {
            FaultError::Failed(format!("cannot remove stress group {}: {e}", r.group.name))
        })?;
    let mut kids = r.children.lock().unwrap_or_else(|p| p.into_inner());
    for ch in kids.iter_mut() {
        let _ = ch.kill();
        let _ = ch.wait();
    }
    release_exited_container(&r.group);
    Ok(())
}

/// After a stress group inside a container's cgroup is removed: if that container has
/// exited meanwhile, its runtime could not remove its group (ours was in it, and rmdir
/// of a group with a child fails), so the empty group would be left behind because of
/// us. Removes the container's group where it is empty (no process, no child group),
/// as the runtime would have; a group of a running container always holds its first
/// process, so it is never touched. Shell: `rmdir /sys/fs/cgroup/cpu/<container group>`.
pub fn release_exited_container(group: &OwnedGroup) {
    for g in &group.groups {
        let Some(parent) = g.dir.parent() else {
            continue;
        };
        // The parent must be the container's group itself, not a group inside it.
        let path = parent.to_string_lossy();
        if crate::sys::container::container_in_path(&path).is_none_or(|n| n.group != path) {
            continue;
        }
        let empty = std::fs::read_to_string(parent.join("cgroup.procs"))
            .is_ok_and(|p| p.trim().is_empty())
            && std::fs::read_dir(parent)
                .is_ok_and(|d| !d.flatten().any(|e| e.file_type().is_ok_and(|t| t.is_dir())));
        if empty {
            match std::fs::remove_dir(parent) {
                Ok(()) => {
                    tracing::info!(group = %parent.display(), "removed the empty group of an exited container (its runtime could not while faultline's stress group was in it)")
                }
                Err(e) => {
                    tracing::warn!(group = %parent.display(), error = %e, "cannot remove the empty group of an exited container")
                }
            }
        }
    }
}

/// Why a running stress fault has failed on its own (a worker died: OOM-killed inside
/// its cap, or killed by someone), if it has.
pub fn check_workers(r: &Running, host: &Host) -> Option<String> {
    let mut kids = r.children.lock().unwrap_or_else(|p| p.into_inner());
    for ch in kids.iter_mut() {
        if let Ok(Some(st)) = ch.try_wait() {
            use std::os::unix::process::ExitStatusExt;
            let oom = host
                .cgroups()
                .ok()
                .and_then(|c| c.owned_usage(&r.group).ok())
                .and_then(|u| u.oom_kills)
                .unwrap_or(0);
            return Some(if oom > 0 || st.signal() == Some(9) {
                format!(
                    "stress worker {} was killed ({st}){}",
                    ch.id(),
                    if oom > 0 {
                        format!("; the OOM killer fired {oom} time(s) inside its cgroup")
                    } else {
                        String::new()
                    }
                )
            } else {
                format!("stress worker {} exited ({st})", ch.id())
            });
        }
    }
    None
}
