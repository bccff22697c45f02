//! Disk fill: one tagged file that takes a filesystem's free space.
//!
//! The file is `.faultline-fill-<instance>-<token>` directly in the directory the spec
//! names; its path is fixed when the fault is planned, so the journal's intent entry
//! already names it exactly. Space is taken with `fallocate` (mode 0: real blocks, the
//! size grows), or with written zeros where the filesystem refuses `fallocate`. With a
//! ramp a thread grows the file in steps. Revert stops the thread, closes the file and
//! unlinks it: the space is back. Every directory a fill touched is noted durably in
//! `<state-dir>/disk-dirs.json` before the file exists, so that a start and
//! `faultd cleanup` can sweep this agent's tagged files even without a journal entry.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use faultline_proto::units::format_size;

use super::values::Percent;
use super::{Applied, Plan, Undo};
use crate::error::FaultError;
use crate::host::Host;

/// The name prefix every fill file has.
pub const FILL_PREFIX: &str = ".faultline-fill-";

/// How much to fill.
#[derive(Debug, Clone, PartialEq)]
pub enum FillAmount {
    /// This many bytes more used.
    Bytes(u64),
    /// Until the filesystem is this many percent used.
    Percent(Percent),
    /// Until only this many bytes are available.
    Free(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiskFillSpec {
    /// An absolute path to a directory (checked when planned).
    pub path: PathBuf,
    pub amount: FillAmount,
    /// Grow linearly over this long (zero: at once).
    pub ramp: Duration,
}

/// A filesystem's space as `df` counts it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Space {
    /// Bytes in use (total minus free, the root reserve counted as free).
    pub used: u64,
    /// Bytes available to unprivileged users.
    pub avail: u64,
}

impl Space {
    /// Percent used as `df` shows it: used / (used + available).
    pub fn used_percent(&self) -> f64 {
        let all = self.used + self.avail;
        if all == 0 {
            return 100.0;
        }
        self.used as f64 * 100.0 / all as f64
    }

    pub fn of(path: &Path) -> Result<Space, std::io::Error> {
        let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
        let f = s.fragment_size();
        Ok(Space {
            used: (s.blocks().saturating_sub(s.blocks_free())) * f,
            avail: s.blocks_available() * f,
        })
    }
}

/// What a fill plan resolved to.
#[derive(Debug, Clone)]
pub struct FillPlan {
    /// The tagged file to create (it does not exist yet).
    pub file: PathBuf,
    /// Its size once grown.
    pub bytes: u64,
    pub ramp: Duration,
}

/// The running fill: the file, and the ramp thread if any.
#[derive(Debug)]
pub struct Filling {
    pub file: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Why the ramp failed, if it did.
    failed: Arc<Mutex<Option<String>>>,
}

fn io_err(what: &str, p: &Path, e: impl std::fmt::Display) -> FaultError {
    FaultError::Failed(format!("cannot {what} {}: {e}", p.display()))
}

/// The fill file's name prefix for this agent instance.
pub fn instance_prefix(instance: &str) -> String {
    format!("{FILL_PREFIX}{instance}-")
}

/// The devices of the filesystems never filled: faultd's state dir's, and the limits'
/// `disk.protected_paths` (those that exist), each with the path that named it.
pub(crate) fn protected_devices(host: &Host) -> Vec<(u64, String, bool)> {
    let mut out = Vec::new();
    if let Some(d) = &host.state_dir
        && let Ok(m) = std::fs::metadata(d)
    {
        out.push((m.dev(), d.display().to_string(), true));
    }
    for p in &host.limits.disk.protected_paths {
        if let Ok(m) = std::fs::metadata(p) {
            out.push((m.dev(), p.clone(), false));
        }
    }
    out
}

/// Resolves a fill: checks the directory, the protected filesystems and the limits;
/// works out the file's size from the space now. Changes nothing.
pub fn plan(s: &DiskFillSpec, host: &Host) -> Result<(Plan, FillPlan), FaultError> {
    let field = "spec.disk_fill.path";
    if !s.path.is_absolute() {
        return Err(FaultError::invalid(
            field,
            format!("{} is not an absolute path", s.path.display()),
        ));
    }
    let dir = std::fs::canonicalize(&s.path)
        .map_err(|e| FaultError::invalid(field, format!("{}: {e}", s.path.display())))?;
    let meta = std::fs::metadata(&dir)
        .map_err(|e| FaultError::invalid(field, format!("{}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(FaultError::invalid(
            field,
            format!("{} is not a directory", dir.display()),
        ));
    }
    for (dev, named, state) in protected_devices(host) {
        if dev == meta.dev() {
            return Err(FaultError::Protected(if state {
                format!(
                    "{} is on the filesystem of faultd's state dir {named}, which is never filled (the journal must stay writable)",
                    dir.display()
                )
            } else {
                format!(
                    "{} is on a protected filesystem (disk.protected_paths names {named} in the limits file {})",
                    dir.display(),
                    host.limits.source
                )
            }));
        }
    }
    let vfs = nix::sys::statvfs::statvfs(&dir).map_err(|e| io_err("statvfs", &dir, e))?;
    if vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Err(FaultError::Precondition(format!(
            "{} is read-only to faultd (a read-only mount, or the unit's ProtectSystem=strict): to fill it under systemd add ReadWritePaths={} in a drop-in (systemctl edit faultd)",
            dir.display(),
            dir.display()
        )));
    }
    let space = Space::of(&dir).map_err(|e| io_err("statvfs", &dir, e))?;
    let l = &host.limits.disk;
    let total = space.used + space.avail;
    let bytes = match &s.amount {
        FillAmount::Bytes(b) => *b,
        FillAmount::Percent(p) => {
            let target = (p.get() / 100.0 * total as f64) as u64;
            if target <= space.used {
                return Err(FaultError::invalid(
                    "spec.disk_fill.percent",
                    format!(
                        "the filesystem of {} is already {:.1}% used (asked to fill to {p}%)",
                        dir.display(),
                        space.used_percent()
                    ),
                ));
            }
            target - space.used
        }
        FillAmount::Free(f) => {
            if *f >= space.avail {
                return Err(FaultError::invalid(
                    "spec.disk_fill.free_bytes",
                    format!(
                        "only {} is available on the filesystem of {} (asked to leave {})",
                        format_size(space.avail),
                        dir.display(),
                        format_size(*f)
                    ),
                ));
            }
            space.avail - f
        }
    };
    if bytes == 0 {
        return Err(FaultError::invalid(
            "spec.disk_fill",
            "nothing to fill: the size is 0",
        ));
    }
    if bytes > space.avail {
        return Err(FaultError::invalid(
            "spec.disk_fill.size_bytes",
            format!(
                "{} is more than the {} available on the filesystem of {}",
                format_size(bytes),
                format_size(space.avail),
                dir.display()
            ),
        ));
    }
    let after = Space {
        used: space.used + bytes,
        avail: space.avail - bytes,
    };
    let eps = 1e-6;
    if after.avail < l.min_free {
        return Err(crate::policy::limit(
            &host.limits,
            "disk.min_free",
            format_size(l.min_free),
            format!(
                "{} more on {}, leaving {} available",
                format_size(bytes),
                dir.display(),
                format_size(after.avail)
            ),
        ));
    }
    if after.used_percent() > l.max_used_percent + eps {
        return Err(crate::policy::limit(
            &host.limits,
            "disk.max_used_percent",
            format!("{}%", l.max_used_percent),
            format!(
                "{} more on {} ({:.1}% used now, {:.1}% after)",
                format_size(bytes),
                dir.display(),
                space.used_percent(),
                after.used_percent()
            ),
        ));
    }
    let token = format!("{:08x}", rand::random::<u32>());
    let file = dir.join(format!("{}{token}", instance_prefix(&host.instance)));
    let description = format!(
        "fill the filesystem of {} with {} in {} ({:.1}% -> {:.1}% used, {} -> {} available){}",
        dir.display(),
        format_size(bytes),
        file.display(),
        space.used_percent(),
        after.used_percent(),
        format_size(space.avail),
        format_size(after.avail),
        if s.ramp.is_zero() {
            String::new()
        } else {
            format!(
                ", growing over {}",
                faultline_proto::units::format_duration(s.ramp)
            )
        }
    );
    // One fill per filesystem: a second one's checks would not see the first's growth
    // (with a ramp), so the limits could be overshot.
    let plan = Plan::described(description, Some(format!("disk-fill:{}", meta.dev())));
    Ok((
        plan,
        FillPlan {
            file,
            bytes,
            ramp: s.ramp,
        },
    ))
}

/// Grows `f` to `len` bytes of real blocks: fallocate, or written zeros from `from`
/// where the filesystem refuses fallocate.
fn grow(f: &mut File, from: u64, len: u64, path: &Path) -> Result<(), FaultError> {
    use nix::fcntl::{FallocateFlags, fallocate};
    match fallocate(&*f, FallocateFlags::empty(), 0, len as i64) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EOPNOTSUPP) => {
            use std::io::{Seek, SeekFrom};
            f.seek(SeekFrom::Start(from))
                .map_err(|e| io_err("seek in", path, e))?;
            let chunk = vec![0u8; 1 << 20];
            let mut at = from;
            while at < len {
                let n = (len - at).min(chunk.len() as u64) as usize;
                f.write_all(&chunk[..n])
                    .map_err(|e| io_err("write to", path, e))?;
                at += n as u64;
            }
            f.sync_data().map_err(|e| io_err("fsync", path, e))
        }
        Err(e) => Err(io_err("fallocate", path, e)),
    }
}

/// Creates the file and takes the space (at once, or over the ramp in a thread).
pub fn apply(p: &FillPlan, description: String) -> Result<Applied, FaultError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&p.file)
        .map_err(|e| io_err("create", &p.file, e))?;
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(Mutex::new(None));
    let thread = if p.ramp.is_zero() {
        if let Err(e) = grow(&mut f, 0, p.bytes, &p.file) {
            drop(f);
            let _ = std::fs::remove_file(&p.file);
            return Err(e);
        }
        None
    } else {
        let (stop, failed, file, bytes, ramp) = (
            stop.clone(),
            failed.clone(),
            p.file.clone(),
            p.bytes,
            p.ramp,
        );
        Some(
            std::thread::Builder::new()
                .name("faultd-fill".into())
                .spawn(move || ramp_fill(f, &file, bytes, ramp, &stop, &failed))
                .map_err(|e| io_err("start the ramp thread for", &p.file, e))?,
        )
    };
    Ok(Applied {
        undo: Undo::DiskFill(Filling {
            file: p.file.clone(),
            stop,
            thread: Mutex::new(thread),
            failed,
        }),
        description,
        targets: Vec::new(),
    })
}

/// The ramp: grows the file linearly in steps of at most 100 ms until `bytes`.
fn ramp_fill(
    mut f: File,
    path: &Path,
    bytes: u64,
    ramp: Duration,
    stop: &AtomicBool,
    failed: &Mutex<Option<String>>,
) {
    let start = Instant::now();
    let step = Duration::from_millis(100);
    let mut have = 0u64;
    loop {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let frac = (start.elapsed().as_secs_f64() / ramp.as_secs_f64()).min(1.0);
        // Page-aligned steps.
        let want = (((bytes as f64 * frac) as u64) & !4095).min(bytes);
        let want = if frac >= 1.0 { bytes } else { want };
        if want > have {
            if let Err(e) = grow(&mut f, have, want, path) {
                *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                return;
            }
            have = want;
        }
        if have >= bytes {
            return;
        }
        std::thread::sleep(step);
    }
}

/// Stops the ramp and removes the file. Idempotent: a file that is gone counts as
/// removed.
pub fn revert(r: &Filling) -> Result<(), FaultError> {
    r.stop.store(true, Ordering::Release);
    if let Some(t) = r.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = t.join();
    }
    remove(&r.file)
}

/// Why a ramp failed, if it did.
pub fn check(r: &Filling) -> Option<String> {
    r.failed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|e| format!("the disk fill stopped growing: {e}"))
}

/// Removes a fill file, refusing any path whose name is not faultline's.
pub fn remove(file: &Path) -> Result<(), FaultError> {
    let ours = file
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(FILL_PREFIX) || n.starts_with(super::iostress::IO_PREFIX));
    if !ours {
        return Err(FaultError::Failed(format!(
            "refusing to remove {}: not a faultline fill or io stress file",
            file.display()
        )));
    }
    match std::fs::remove_file(file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", file, e)),
    }
}

fn dirs_file(state_dir: &Path) -> PathBuf {
    state_dir.join("disk-dirs.json")
}

/// The directories fills have touched (for the sweep).
pub fn touched_dirs(state_dir: &Path) -> Vec<PathBuf> {
    std::fs::read(dirs_file(state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Adds a directory to `disk-dirs.json` durably (before a fill file exists in it).
pub fn note_dir(state_dir: &Path, dir: &Path) -> Result<(), crate::engine::journal::JournalError> {
    let mut all = touched_dirs(state_dir);
    if all.iter().any(|d| d == dir) {
        return Ok(());
    }
    all.push(dir.to_path_buf());
    let data = serde_json::to_vec_pretty(&all).expect("paths serialize");
    crate::engine::journal::replace_durably(&dirs_file(state_dir), &data)
}

/// Removes this instance's fill files (and io stress files) in every directory fills
/// and io stresses touched; returns them.
pub fn sweep(state_dir: &Path, instance: &str) -> Result<Vec<PathBuf>, FaultError> {
    let prefix = instance_prefix(instance);
    let io_prefix = super::iostress::instance_prefix(instance);
    let mut out = Vec::new();
    for d in touched_dirs(state_dir) {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for de in rd.flatten() {
            if de
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix) || n.starts_with(&io_prefix))
            {
                remove(&de.path())?;
                out.push(de.path());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_percent_counts_as_df() {
        let s = Space {
            used: 30,
            avail: 70,
        };
        assert!((s.used_percent() - 30.0).abs() < 1e-9);
        assert_eq!(Space { used: 0, avail: 0 }.used_percent(), 100.0);
    }

    #[test]
    fn remove_refuses_files_that_are_not_ours() {
        let d = tempfile::tempdir().unwrap();
        let other = d.path().join("data.db");
        std::fs::write(&other, "x").unwrap();
        assert!(remove(&other).is_err());
        assert!(other.exists());
        let ours = d.path().join(format!("{FILL_PREFIX}abc-1"));
        std::fs::write(&ours, "x").unwrap();
        remove(&ours).unwrap();
        remove(&ours).unwrap();
        assert!(!ours.exists());
    }

    #[test]
    fn the_sweep_removes_only_this_instances_files_in_noted_dirs() {
        let state = tempfile::tempdir().unwrap();
        let d = tempfile::tempdir().unwrap();
        note_dir(state.path(), d.path()).unwrap();
        note_dir(state.path(), d.path()).unwrap();
        assert_eq!(touched_dirs(state.path()), vec![d.path().to_path_buf()]);
        let mine = d.path().join(format!("{}1", instance_prefix("aaa")));
        let theirs = d.path().join(format!("{}1", instance_prefix("bbb")));
        for f in [&mine, &theirs] {
            std::fs::write(f, "x").unwrap();
        }
        assert_eq!(sweep(state.path(), "aaa").unwrap(), vec![mine.clone()]);
        assert!(!mine.exists() && theirs.exists());
    }

    #[test]
    fn a_fill_takes_the_space_and_revert_gives_it_back() {
        let d = tempfile::tempdir().unwrap();
        let p = FillPlan {
            file: d.path().join(format!("{FILL_PREFIX}t-1")),
            bytes: 8 << 20,
            ramp: Duration::ZERO,
        };
        let a = apply(&p, String::new()).unwrap();
        let meta = std::fs::metadata(&p.file).unwrap();
        assert_eq!(meta.len(), 8 << 20);
        assert!(
            meta.blocks() * 512 >= 8 << 20,
            "real blocks, not a sparse file"
        );
        let Undo::DiskFill(f) = a.undo else {
            panic!("a fill undo")
        };
        revert(&f).unwrap();
        assert!(!p.file.exists());
        revert(&f).unwrap();
    }

    #[test]
    fn a_ramp_grows_the_file_and_revert_stops_it() {
        let d = tempfile::tempdir().unwrap();
        let p = FillPlan {
            file: d.path().join(format!("{FILL_PREFIX}t-2")),
            bytes: 4 << 20,
            ramp: Duration::from_millis(300),
        };
        let a = apply(&p, String::new()).unwrap();
        let Undo::DiskFill(f) = a.undo else {
            panic!("a fill undo")
        };
        let t0 = Instant::now();
        while std::fs::metadata(&p.file).unwrap().len() < 4 << 20 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the ramp never finished"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(check(&f).is_none());
        revert(&f).unwrap();
        assert!(!p.file.exists());
    }
}
