//! I/O stress: worker processes (`faultd __stress-io`) doing direct I/O (O_DIRECT) on
//! tagged files in a directory, inside a faultline-owned cgroup whose blk-throttle caps
//! them (v1 `blkio.throttle.{read,write}_bps_device`, v2 `io.max`).
//!
//! The files are `.faultline-io-<instance>-<token>-<n>` directly in the directory:
//! their names are fixed when planned and journalled (with the directory noted in the
//! disk-dirs registry disk fills use) before any exists, so the start's and `faultd
//! cleanup`'s sweep removes them by tag after a crash; the group is a stress group
//! (`faultline-stress-<instance>-...`), swept as those are. Revert kills the workers,
//! removes the group and the files.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use faultline_proto::units::format_size;

use super::io::IoDevice;
use super::stress::Running;
use super::{Applied, Plan, Undo};
use crate::error::FaultError;
use crate::host::Host;
use crate::sys::cgroup::{Limits, OwnedGroup, ParentSpec};
use crate::sys::stress::{IO_ALIGN, IoMode, WorkerCommand};

/// Every io stress file's name starts with this.
pub const IO_PREFIX: &str = ".faultline-io-";
/// Each worker's file when the fault names no size.
pub const DEFAULT_SIZE: u64 = 64 << 20;
/// The largest file a worker may use.
pub const MAX_SIZE: u64 = 1 << 30;

/// The io stress file name prefix for this agent instance.
pub fn instance_prefix(instance: &str) -> String {
    format!("{IO_PREFIX}{instance}-")
}

#[derive(Debug, Clone, PartialEq)]
pub struct IoStressSpec {
    pub path: PathBuf,
    pub workers: u32,
    pub size_bytes: u64,
    pub mode: IoMode,
    /// The group's caps, bytes per second; `None`: `io.stress_max_bps`.
    pub write_bps: Option<u64>,
    pub read_bps: Option<u64>,
}

/// What a plan resolved to.
#[derive(Debug, Clone)]
pub struct IoStressPlan {
    pub files: Vec<PathBuf>,
    pub size_bytes: u64,
    pub mode: IoMode,
    /// `MAJ:MIN` of the disk.
    pub dev: String,
    pub read_bps: u64,
    pub write_bps: u64,
}

/// The running workers, their group and their files.
#[derive(Debug)]
pub struct IoRunning {
    pub running: Running,
    pub files: Vec<PathBuf>,
}

const FIELD: &str = "spec.io_stress";

/// Checks the directory, the protected filesystems, the space and the limits; names
/// the files. Changes nothing.
pub fn plan(s: &IoStressSpec, host: &Host) -> Result<(Plan, IoStressPlan), FaultError> {
    let field = format!("{FIELD}.path");
    if !s.path.is_absolute() {
        return Err(FaultError::invalid(
            &field,
            format!("{} is not an absolute path", s.path.display()),
        ));
    }
    let dir = std::fs::canonicalize(&s.path)
        .map_err(|e| FaultError::invalid(&field, format!("{}: {e}", s.path.display())))?;
    let meta = std::fs::metadata(&dir)
        .map_err(|e| FaultError::invalid(&field, format!("{}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(FaultError::invalid(
            &field,
            format!("{} is not a directory", dir.display()),
        ));
    }
    for (dev, named, state) in super::disk::protected_devices(host) {
        // The state dir's filesystem is protected from fills (space), not from load.
        if !state && dev == meta.dev() {
            return Err(FaultError::Protected(format!(
                "{} is on the filesystem of {named}, which the limits' disk.protected_paths protect",
                dir.display()
            )));
        }
    }
    let l = &host.limits.io;
    if s.workers == 0 {
        return Err(FaultError::invalid(
            format!("{FIELD}.workers"),
            "give at least 1 worker",
        ));
    }
    if s.workers > l.stress_max_workers {
        return Err(crate::policy::limit(
            &host.limits,
            "io.stress_max_workers",
            l.stress_max_workers.to_string(),
            format!("{} workers", s.workers),
        ));
    }
    if s.size_bytes == 0 || !s.size_bytes.is_multiple_of(IO_ALIGN) || s.size_bytes > MAX_SIZE {
        return Err(FaultError::invalid(
            format!("{FIELD}.size_bytes"),
            format!(
                "{} is not a multiple of 4 KiB between 4 KiB and {} (O_DIRECT needs aligned sizes)",
                s.size_bytes,
                format_size(MAX_SIZE)
            ),
        ));
    }
    let mut rates = [0u64; 2];
    for (i, (name, v)) in [("read_bps", s.read_bps), ("write_bps", s.write_bps)]
        .into_iter()
        .enumerate()
    {
        rates[i] = match v {
            None => l.stress_max_bps,
            Some(0) => {
                return Err(FaultError::invalid(
                    format!("{FIELD}.{name}"),
                    "0 would stop all I/O: give a rate of at least 1",
                ));
            }
            Some(v) if v > l.stress_max_bps => {
                return Err(crate::policy::limit(
                    &host.limits,
                    "io.stress_max_bps",
                    format!("{}/s", format_size(l.stress_max_bps)),
                    format!("{name} {}/s", format_size(v)),
                ));
            }
            Some(v) => v,
        };
    }
    let (dev, devname) = super::io::resolve_device(&IoDevice::Path(dir.clone()), Some(&field))?;
    let total = s.size_bytes * s.workers as u64;
    let space = super::disk::Space::of(&dir).map_err(|e| {
        FaultError::Failed(format!("cannot read the space of {}: {e}", dir.display()))
    })?;
    let min_free = host.limits.disk.min_free;
    if space.avail.saturating_sub(total) < min_free {
        return Err(crate::policy::limit(
            &host.limits,
            "disk.min_free",
            format_size(min_free),
            format!(
                "{} workers x {} with {} available, which would leave {}",
                s.workers,
                format_size(s.size_bytes),
                format_size(space.avail),
                format_size(space.avail.saturating_sub(total))
            ),
        ));
    }
    let c = host.cgroups()?;
    c.stress_backend().map_err(|e| {
        FaultError::Precondition(format!("this node cannot confine stress in a cgroup: {e}"))
    })?;
    let token = rand::random::<u32>();
    let prefix = instance_prefix(&host.instance);
    let files: Vec<PathBuf> = (0..s.workers)
        .map(|n| dir.join(format!("{prefix}{token:08x}-{n}")))
        .collect();
    let description = format!(
        "io stress: {} worker{} doing {} O_DIRECT I/O on {} file{} of {} in {} ({devname}, {dev}), capped at read {}/s write {}/s",
        s.workers,
        if s.workers == 1 { "" } else { "s" },
        s.mode.as_str(),
        s.workers,
        if s.workers == 1 { "" } else { "s" },
        format_size(s.size_bytes),
        dir.display(),
        format_size(rates[0]),
        format_size(rates[1]),
    );
    // One io stress per node at a time: on cgroup v2 the first one turns `io` on in
    // faultd's subtree and turns it off when it ends; a second one alongside would find
    // it on, note nothing, and leave it on after both ended.
    Ok((
        Plan::described(description, Some(CONFLICT_KEY.to_string())),
        IoStressPlan {
            files,
            size_bytes: s.size_bytes,
            mode: s.mode,
            dev,
            read_bps: rates[0],
            write_bps: rates[1],
        },
    ))
}

/// The conflict key every io stress holds: at most one per node.
pub const CONFLICT_KEY: &str = "io-stress";

fn remove_files(files: &[PathBuf]) -> Result<(), FaultError> {
    let mut errors = Vec::new();
    for f in files {
        if let Err(e) = super::disk::remove(f) {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(FaultError::Failed(errors.join("; ")))
    }
}

/// Creates the throttled group and starts the workers in it; on failure removes it all.
pub fn apply(p: &IoStressPlan, host: &Host, description: String) -> Result<Applied, FaultError> {
    let c = host.cgroups()?;
    let name = format!(
        "{}stress-{}-{:08x}",
        crate::sys::cgroup::OWNED_PREFIX,
        host.instance,
        rand::random::<u32>()
    );
    let mut group = c
        .create_owned(&ParentSpec::Own, &name, &Limits::default())
        .map_err(|e| {
            FaultError::Precondition(format!("cannot create the io stress cgroup: {e}"))
        })?;
    let undo_all = |group: &OwnedGroup| {
        let _ = c.remove_owned(group, Duration::from_secs(5));
        let _ = remove_files(&p.files);
    };
    if let Err(e) = c.add_blkio_part(
        &mut group,
        &ParentSpec::Own,
        &p.dev,
        p.read_bps,
        p.write_bps,
    ) {
        undo_all(&group);
        return Err(FaultError::Precondition(format!(
            "cannot throttle the io stress cgroup: {e}"
        )));
    }
    let workers: Vec<WorkerCommand> = p
        .files
        .iter()
        .map(|f| WorkerCommand::Io {
            file: f.clone(),
            size_bytes: p.size_bytes,
            mode: p.mode,
        })
        .collect();
    let children = super::stress::start_workers(c, &group, &workers).inspect_err(|_| {
        let _ = remove_files(&p.files);
    })?;
    let pids: Vec<String> = children.iter().map(|c| c.id().to_string()).collect();
    Ok(Applied {
        description: format!(
            "{description}; group {name}, worker pids {}",
            pids.join(", ")
        ),
        undo: Undo::IoStress(IoRunning {
            running: Running {
                group,
                children: std::sync::Arc::new(std::sync::Mutex::new(children)),
            },
            files: p.files.clone(),
        }),
        targets: Vec::new(),
    })
}

/// Kills the workers, removes the group, then the files.
pub fn revert(r: &IoRunning, host: &Host) -> Result<(), FaultError> {
    super::stress::revert(&r.running, host)?;
    remove_files(&r.files)
}

/// From the journal: removes the group and the files.
pub fn revert_record(group: &OwnedGroup, files: &[PathBuf], host: &Host) -> Result<(), FaultError> {
    host.cgroups()?
        .remove_owned(group, Duration::from_secs(10))
        .map_err(|e| {
            FaultError::Failed(format!("cannot remove io stress group {}: {e}", group.name))
        })?;
    remove_files(files)
}

/// From the journal, a fault about to start: sweeps this agent's stress groups and
/// removes the files named.
pub fn revert_pending(files: &[PathBuf], host: &Host) -> Result<(), FaultError> {
    host.sweep_stress_groups()?;
    remove_files(files)
}
