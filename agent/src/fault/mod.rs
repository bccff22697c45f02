//! The domain: what a fault is ([`FaultSpec`]), how it is applied, and its exact undo.
//!
//! A spec is a validated value (built from the proto message by `api::convert`); `plan`
//! resolves its targets without changing anything (this is all a dry run does); `apply`
//! changes the kernel and returns the [`Undo`]; `Undo::revert` is idempotent: a target
//! that is already gone counts as reverted.

pub mod disk;
pub mod io;
pub mod iostress;
pub mod network;
pub mod process;
pub mod stress;
pub mod values;

use std::sync::Arc;
use std::time::Duration;

pub use disk::{DiskFillSpec, FillAmount};
pub use network::NetworkSpec;
pub use process::{KillSpec, PauseSpec, Pick, Selector};
pub use stress::{CpuSpec, MemSpec};
pub use values::{CgroupPath, Percent, Timed, UnitName};

use crate::error::FaultError;
use crate::host::Host;
use crate::sys::cgroup::{CgroupRef, Hierarchy};
use crate::sys::container::{Container, ContainerError, ContainerQuery};
use crate::sys::proc::ProcInfo;

/// The running container `query` names, from `/proc/*/cgroup`: an unknown id is
/// NotFound, a prefix of several ids is InvalidArgument on `field`; both name what runs.
pub fn find_container(query: &ContainerQuery, field: &str) -> Result<Container, FaultError> {
    match crate::sys::container::resolve(query, std::path::Path::new("/proc")) {
        Ok(c) => Ok(c),
        Err(e @ ContainerError::NotFound { .. }) => Err(FaultError::NotFound(e.to_string())),
        Err(e @ (ContainerError::Ambiguous { .. } | ContainerError::BadId(_))) => {
            Err(FaultError::invalid(field, e.to_string()))
        }
        Err(e @ ContainerError::Proc { .. }) => Err(FaultError::Failed(e.to_string())),
    }
}

/// The kinds of fault, as the limits and the API count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Kill,
    Pause,
    Network,
    Cpu,
    Memory,
    DiskFill,
    IoLimit,
    IoStress,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Network => "network",
            Kind::Cpu => "cpu",
            Kind::Memory => "memory",
            Kind::DiskFill => "disk-fill",
            Kind::IoLimit => "io-limit",
            Kind::IoStress => "io-stress",
        }
    }
}

/// A validated fault specification, one variant per kind.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultSpec {
    Kill(KillSpec),
    Pause(PauseSpec),
    Network(NetworkSpec),
    Cpu(CpuSpec),
    Memory(MemSpec),
    DiskFill(DiskFillSpec),
    IoLimit(io::IoLimitSpec),
    IoStress(iostress::IoStressSpec),
}

impl FaultSpec {
    pub fn kind(&self) -> Kind {
        match self {
            FaultSpec::Kill(_) => Kind::Kill,
            FaultSpec::Pause(_) => Kind::Pause,
            FaultSpec::Network(_) => Kind::Network,
            FaultSpec::Cpu(_) => Kind::Cpu,
            FaultSpec::Memory(_) => Kind::Memory,
            FaultSpec::DiskFill(_) => Kind::DiskFill,
            FaultSpec::IoLimit(_) => Kind::IoLimit,
            FaultSpec::IoStress(_) => Kind::IoStress,
        }
    }

    /// Whether the fault has an effect over time (and so needs a duration and occupies a
    /// concurrency slot until it ends), as opposed to a one-shot action.
    pub fn lasts(&self) -> bool {
        match self {
            FaultSpec::Kill(k) => k.every.is_some(),
            FaultSpec::Pause(_)
            | FaultSpec::Network(_)
            | FaultSpec::Cpu(_)
            | FaultSpec::Memory(_)
            | FaultSpec::DiskFill(_)
            | FaultSpec::IoLimit(_)
            | FaultSpec::IoStress(_) => true,
        }
    }

    /// Resolves the targets; changes nothing. Process work runs on the blocking pool.
    pub async fn plan(&self, host: &Arc<Host>) -> Result<Plan, FaultError> {
        match self {
            FaultSpec::Network(n) => network::plan(n, host).await,
            other => {
                let (spec, host) = (other.clone(), host.clone());
                blocking(move || match &spec {
                    FaultSpec::Kill(k) => process::plan_kill(k, &host),
                    FaultSpec::Pause(p) => process::plan_pause(p, &host),
                    FaultSpec::Cpu(c) => stress::plan_cpu(c, &host).map(|(mut p, sp)| {
                        p.stress = Some(sp);
                        p
                    }),
                    FaultSpec::Memory(m) => stress::plan_mem(m, &host).map(|(mut p, sp)| {
                        p.stress = Some(sp);
                        p
                    }),
                    FaultSpec::DiskFill(d) => disk::plan(d, &host).map(|(mut p, fp)| {
                        p.fill = Some(fp);
                        p
                    }),
                    FaultSpec::IoLimit(i) => io::plan(i, &host).map(|(mut p, ip)| {
                        p.io = Some(ip);
                        p
                    }),
                    FaultSpec::IoStress(i) => iostress::plan(i, &host).map(|(mut p, ip)| {
                        p.io_stress = Some(ip);
                        p
                    }),
                    FaultSpec::Network(_) => unreachable!("handled above"),
                })
                .await
            }
        }
    }

    /// Applies a plan made by [`FaultSpec::plan`]. On a partial failure it undoes what it
    /// did and reports both.
    pub async fn apply(&self, plan: Plan, host: &Arc<Host>) -> Result<Applied, FaultError> {
        match self {
            FaultSpec::Network(n) => network::apply(n, plan, host).await,
            other => {
                let (spec, host) = (other.clone(), host.clone());
                blocking(move || match &spec {
                    FaultSpec::Kill(k) => process::apply_kill(k, plan, &host),
                    FaultSpec::Pause(_) => process::apply_pause(plan, &host),
                    FaultSpec::Cpu(_) | FaultSpec::Memory(_) => match plan.stress.clone() {
                        Some(sp) => stress::apply(&sp, &host, plan.description.clone()),
                        None => Err(FaultError::Failed(
                            "internal error: a stress plan without workers".into(),
                        )),
                    },
                    FaultSpec::IoLimit(_) => match plan.io.clone() {
                        Some(ip) => io::apply(&ip, plan.description.clone()),
                        None => Err(FaultError::Failed(
                            "internal error: an io limit plan without its values".into(),
                        )),
                    },
                    FaultSpec::IoStress(_) => match plan.io_stress.clone() {
                        Some(ip) => iostress::apply(&ip, &host, plan.description.clone()),
                        None => Err(FaultError::Failed(
                            "internal error: an io stress plan without its files".into(),
                        )),
                    },
                    FaultSpec::DiskFill(_) => match plan.fill.clone() {
                        Some(fp) => disk::apply(&fp, plan.description.clone()),
                        None => Err(FaultError::Failed(
                            "internal error: a disk fill plan without its file".into(),
                        )),
                    },
                    FaultSpec::Network(_) => unreachable!("handled above"),
                })
                .await
            }
        }
    }
}

/// Runs blocking kernel work (procfs scans, signals, cgroupfs waits) off the async
/// workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FaultError> + Send + 'static,
) -> Result<T, FaultError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        FaultError::Failed(format!("internal error: a kernel operation panicked: {e}"))
    })?
}

/// What a fault will do, resolved against the host right now.
#[derive(Debug)]
pub struct Plan {
    /// Processes it hits (with pidfds already opened and checked).
    pub targets: Vec<process::Target>,
    /// Matches left alone, and why.
    pub excluded: Vec<(ProcInfo, String)>,
    /// For a pause of a whole cgroup: the group to freeze.
    pub freeze: Option<crate::sys::cgroup::CgroupRef>,
    /// In words.
    pub description: String,
    /// Faults with the same key cannot be active at once (one network fault per
    /// namespace, interface and direction).
    pub conflict_key: Option<String>,
    /// For stress faults: the group and workers to start.
    pub stress: Option<stress::StressPlan>,
    /// For a disk fill: the file to create and its size.
    pub fill: Option<disk::FillPlan>,
    /// For an io limit: where, and the values before and after.
    pub io: Option<io::IoPlan>,
    /// For an io stress: the files, the device and the caps.
    pub io_stress: Option<iostress::IoStressPlan>,
    /// The container the spec named, as resolved for this plan.
    pub container: Option<Container>,
    /// For network faults: the namespace resolved (a container's, by its first
    /// process's path) and its identity when planned.
    pub netns: Option<(crate::sys::netns::NetnsTarget, crate::sys::netns::NetnsId)>,
    /// For network faults: the plan's netlink connection in that namespace, handed to
    /// the apply (and kept by the undo) instead of opening another.
    pub tc: Option<crate::sys::tc::Tc>,
}

impl Plan {
    /// A plan that hits no process: its description and conflict key, nothing else
    /// (the kind's own part is set by the caller).
    pub fn described(description: String, conflict_key: Option<String>) -> Plan {
        Plan {
            targets: Vec::new(),
            excluded: Vec::new(),
            freeze: None,
            description,
            conflict_key,
            stress: None,
            fill: None,
            io: None,
            io_stress: None,
            container: None,
            netns: None,
            tc: None,
        }
    }

    pub fn target_infos(&self) -> Vec<ProcInfo> {
        self.targets.iter().map(|t| t.info.clone()).collect()
    }
}

/// The result of applying a fault.
#[derive(Debug)]
pub struct Applied {
    pub undo: Undo,
    /// What was done, in words.
    pub description: String,
    /// The processes hit.
    pub targets: Vec<ProcInfo>,
}

/// How to put the node back.
#[derive(Debug)]
pub enum Undo {
    /// A one-shot action: nothing can or need be undone.
    Nothing,
    /// A repeating action: stopping it is the whole undo (the engine stops the loop).
    StopLoop,
    /// SIGCONT the stopped processes (through their pidfds).
    Resume(Vec<process::Target>),
    /// Thaw a frozen cgroup.
    Thaw(crate::sys::cgroup::CgroupRef),
    /// Remove what faultline added to an interface.
    /// With a container's namespace, the namespace file held open since the apply
    /// (`network::Pin`): the undo still reaches it once the container's process is gone
    /// (a pod's namespace outlives a container; the journal keeps only the path).
    Net(Box<crate::sys::tc::Undo>, network::Held),
    /// Kill the stress workers and remove their group.
    Stress(stress::Running),
    /// Stop the fill's ramp and remove its file.
    DiskFill(disk::Filling),
    /// Write the previous blk-throttle values back.
    IoLimit(io::IoUndo),
    /// Kill the io stress workers, remove their group and their files.
    IoStress(iostress::IoRunning),
}

impl Undo {
    /// In words, for the fault record.
    pub fn describe(&self) -> String {
        match self {
            Undo::Nothing => "nothing to undo (one-shot)".into(),
            Undo::StopLoop => "stop the repeating kill loop".into(),
            Undo::Resume(ts) => format!(
                "SIGCONT pid{} {}",
                if ts.len() == 1 { "" } else { "s" },
                ts.iter()
                    .map(|t| t.info.pid.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Undo::Thaw(cg) => format!("thaw cgroup {}", cg.dir.display()),
            Undo::Net(u, _) => network::describe_undo(u),
            Undo::DiskFill(f) => format!("remove {}", f.file.display()),
            Undo::IoLimit(u) => format!(
                "restore {} for {} in {}",
                u.previous
                    .iter()
                    .map(|(i, v)| format!(
                        "{}={}",
                        io::KEYS[*i],
                        v.map_or("max".to_string(), |n| n.to_string())
                    ))
                    .collect::<Vec<_>>()
                    .join(" "),
                u.dev,
                u.dir.display()
            ),
            Undo::IoStress(r) => format!(
                "kill the workers in cgroup {}, remove it and {}",
                r.running
                    .group
                    .groups
                    .iter()
                    .map(|g| g.dir.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" and "),
                r.files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Undo::Stress(r) => format!(
                "kill the workers in cgroup {} and remove it",
                r.group
                    .groups
                    .iter()
                    .map(|g| g.dir.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        }
    }

    /// Puts the node back. Idempotent; a target that is gone counts as reverted, and
    /// `Ok(Some(why))` says there was nothing left to undo.
    pub async fn revert(self, host: &Arc<Host>) -> Result<Option<String>, FaultError> {
        match self {
            Undo::Nothing | Undo::StopLoop => Ok(None),
            Undo::Net(u, held) => network::revert_held(&u, held).await,
            Undo::DiskFill(f) => blocking(move || disk::revert(&f).map(|()| None)).await,
            Undo::IoLimit(u) => io::revert(&u).map(|()| None),
            Undo::Stress(r) => {
                let host = host.clone();
                blocking(move || stress::revert(&r, &host).map(|()| None)).await
            }
            Undo::IoStress(r) => {
                let host = host.clone();
                blocking(move || iostress::revert(&r, &host).map(|()| None)).await
            }
            // SIGCONT through a pidfd never blocks: no trip through the blocking pool
            // (an abort of 100 pauses would otherwise start a hundred threads).
            Undo::Resume(ts) => process::resume(&ts).map(|()| None),
            Undo::Thaw(cg) => {
                let host = host.clone();
                blocking(move || {
                    host.cgroups()?.thaw(&cg).map(|()| None).map_err(|e| {
                        FaultError::Failed(format!("cannot thaw {}: {e}", cg.dir.display()))
                    })
                })
                .await
            }
        }
    }
}

/// What to undo, in a form that survives the process (no file descriptors): what the
/// journal keeps so that a later start can put the node back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UndoRecord {
    /// Nothing to put back.
    Nothing,
    /// SIGCONT these processes, each identified by pid and start time.
    Resume { procs: Vec<ProcId> },
    /// Thaw this cgroup. `hierarchy` is `v2` or `v1:<controllers>`.
    Thaw {
        hierarchy: String,
        path: String,
        dir: std::path::PathBuf,
    },
    /// Remove faultline's qdiscs (and IFB) from an interface.
    Net { undo: crate::sys::tc::Undo },
    /// A network fault about to be applied: sweep faultline's tagged qdiscs and IFB
    /// devices in this namespace.
    NetPending {
        netns: crate::sys::netns::NetnsTarget,
        iface: String,
    },
    /// Kill everything in this faultline-owned group and remove it.
    Stress {
        group: crate::sys::cgroup::OwnedGroup,
    },
    /// A stress fault about to start: sweep faultline's own stress groups.
    StressPending,
    /// Remove this disk fill file (named before it is created).
    DiskFill { file: std::path::PathBuf },
    /// Write these blk-throttle values back.
    IoLimit { undo: io::IoUndo },
    /// Kill everything in this io stress group, remove it and these files.
    IoStress {
        group: crate::sys::cgroup::OwnedGroup,
        files: Vec<std::path::PathBuf>,
    },
    /// An io stress about to start: sweep faultline's stress groups, remove these files
    /// (named before they exist).
    IoStressPending { files: Vec<std::path::PathBuf> },
}

/// A process identity that a recycled pid cannot fake.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcId {
    pub pid: i32,
    pub starttime: u64,
    pub comm: String,
}

impl ProcId {
    fn of(p: &ProcInfo) -> ProcId {
        ProcId {
            pid: p.pid,
            starttime: p.starttime,
            comm: p.comm.clone(),
        }
    }
}

fn hierarchy_text(h: &Hierarchy) -> String {
    match h {
        Hierarchy::V2 => "v2".into(),
        Hierarchy::V1(c) => format!("v1:{c}"),
    }
}

fn thaw_record(cg: &CgroupRef) -> UndoRecord {
    UndoRecord::Thaw {
        hierarchy: hierarchy_text(&cg.hierarchy),
        path: cg.path.clone(),
        dir: cg.dir.clone(),
    }
}

impl Plan {
    /// The undo this plan will need if it is applied: journalled before applying.
    pub fn prospective_undo(&self, spec: &FaultSpec) -> UndoRecord {
        match (spec, &self.freeze) {
            (FaultSpec::Kill(_), _) => UndoRecord::Nothing,
            (FaultSpec::Cpu(_) | FaultSpec::Memory(_), _) => UndoRecord::StressPending,
            (FaultSpec::IoLimit(_), _) => match &self.io {
                Some(p) => UndoRecord::IoLimit {
                    undo: p.undo.clone(),
                },
                None => UndoRecord::Nothing,
            },
            (FaultSpec::IoStress(_), _) => UndoRecord::IoStressPending {
                files: self
                    .io_stress
                    .as_ref()
                    .map(|p| p.files.clone())
                    .unwrap_or_default(),
            },
            (FaultSpec::DiskFill(_), _) => match &self.fill {
                Some(f) => UndoRecord::DiskFill {
                    file: f.file.clone(),
                },
                None => UndoRecord::Nothing,
            },
            // Until applied, the exact undo is unknown; the sweep of faultline's tagged
            // qdiscs and IFB devices (faultd cleanup) covers a crash in between.
            (FaultSpec::Network(n), _) => UndoRecord::NetPending {
                netns: self
                    .netns
                    .as_ref()
                    .map(|(t, _)| t.clone())
                    .unwrap_or_else(|| n.target().clone()),
                iface: n.fault().iface.clone(),
            },
            (FaultSpec::Pause(_), Some(cg)) => thaw_record(cg),
            (FaultSpec::Pause(_), None) => UndoRecord::Resume {
                procs: self.targets.iter().map(|t| ProcId::of(&t.info)).collect(),
            },
        }
    }
}

impl Undo {
    /// The journal's form of this undo.
    pub fn record(&self) -> UndoRecord {
        match self {
            Undo::Nothing | Undo::StopLoop => UndoRecord::Nothing,
            Undo::Resume(ts) => UndoRecord::Resume {
                procs: ts.iter().map(|t| ProcId::of(&t.info)).collect(),
            },
            Undo::Thaw(cg) => thaw_record(cg),
            Undo::Net(u, _) => UndoRecord::Net {
                undo: (**u).clone(),
            },
            Undo::Stress(r) => UndoRecord::Stress {
                group: r.group.clone(),
            },
            Undo::DiskFill(f) => UndoRecord::DiskFill {
                file: f.file.clone(),
            },
            Undo::IoLimit(u) => UndoRecord::IoLimit { undo: u.clone() },
            Undo::IoStress(r) => UndoRecord::IoStress {
                group: r.running.group.clone(),
                files: r.files.clone(),
            },
        }
    }
}

impl UndoRecord {
    /// Puts the node back from a journal record (after a crash). Idempotent: a process
    /// that is gone or whose pid now belongs to another process counts as resumed.
    pub async fn revert(&self, host: &Host) -> Result<(), FaultError> {
        match self {
            UndoRecord::Nothing => Ok(()),
            UndoRecord::Net { undo } => network::revert(undo).await.map(|_| ()),
            UndoRecord::Stress { group } => {
                host.cgroups()?
                    .remove_owned(group, Duration::from_secs(10))
                    .map_err(|e| {
                        FaultError::Failed(format!(
                            "cannot remove stress group {}: {e}",
                            group.name
                        ))
                    })?;
                stress::release_exited_container(group);
                Ok(())
            }
            UndoRecord::StressPending => host.sweep_stress_groups().map(|_| ()),
            UndoRecord::DiskFill { file } => disk::remove(file),
            UndoRecord::IoLimit { undo } => io::revert(undo),
            UndoRecord::IoStress { group, files } => iostress::revert_record(group, files, host),
            UndoRecord::IoStressPending { files } => iostress::revert_pending(files, host),
            UndoRecord::NetPending { netns, iface } => {
                let tc = match crate::sys::tc::Tc::connect(netns).await {
                    Ok(tc) => tc,
                    // The namespace is gone: nothing of ours can be left in it.
                    Err(crate::sys::tc::NetError::Netns { .. }) => return Ok(()),
                    Err(e) => return Err(network::net_error(e)),
                };
                let swept = tc.sweep().await.map_err(network::net_error)?;
                if !swept.is_empty() {
                    tracing::info!(iface = %iface, netns = %netns, removed = ?swept, "swept faultline qdiscs left by an interrupted network fault");
                }
                Ok(())
            }
            UndoRecord::Resume { procs } => {
                let mut errors = Vec::new();
                for p in procs {
                    match crate::sys::proc::PidFd::open_checked(p.pid, p.starttime) {
                        Ok(fd) => {
                            if let Err(e) = fd.signal(nix::sys::signal::Signal::SIGCONT) {
                                errors.push(e.to_string());
                            }
                        }
                        Err(
                            crate::sys::proc::ProcError::Gone { .. }
                            | crate::sys::proc::ProcError::Recycled { .. },
                        ) => {}
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(FaultError::Failed(errors.join("; ")))
                }
            }
            UndoRecord::Thaw {
                hierarchy,
                path,
                dir,
            } => {
                let h = match hierarchy.strip_prefix("v1:") {
                    Some(c) => Hierarchy::V1(c.to_string()),
                    None => Hierarchy::V2,
                };
                let cg = CgroupRef {
                    hierarchy: h,
                    path: path.clone(),
                    dir: dir.clone(),
                };
                host.cgroups()?
                    .thaw(&cg)
                    .map_err(|e| FaultError::Failed(format!("cannot thaw {}: {e}", dir.display())))
            }
        }
    }
}
