//! cgroupfs file access. Every read and write names the file (and the data written) in
//! its error, in the manner of youki's `WrapIoResult::wrap_write`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::CgroupError;

/// Builds the [`CgroupError::Io`] for `op` on `path` (with the data written, if any).
pub(crate) fn io_err(
    op: &'static str,
    path: &Path,
    data: Option<&str>,
    source: std::io::Error,
) -> CgroupError {
    CgroupError::Io {
        path: path.to_path_buf(),
        op,
        data: data.map(str::to_string),
        source,
    }
}

/// `cat FILE`.
pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|e| io_err("read", path, None, e))
}

/// `cat FILE`, trimmed of the trailing newline.
pub(crate) fn read_trimmed(path: &Path) -> Result<String, CgroupError> {
    read(path).map(|s| s.trim().to_string())
}

/// `cat FILE` as an unsigned number.
pub(crate) fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let text = read_trimmed(path)?;
    text.parse().map_err(|_| CgroupError::Parse {
        what: path.display().to_string(),
        detail: format!("expected an unsigned number, found {text:?}"),
    })
}

/// `cat FILE` as an unsigned number, `None` if the file is absent (the controller is not
/// enabled or mounted there).
pub(crate) fn read_u64_opt(path: &Path) -> Result<Option<u64>, CgroupError> {
    if !path.is_file() {
        return Ok(None);
    }
    read_u64(path).map(Some)
}

/// `mkdir DIR` (Ok if it exists already).
pub(crate) fn mkdir(path: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err("create cgroup directory", path, None, e)),
    }
}

/// `echo DATA > FILE`: one `write(2)` of `data` into an existing cgroupfs file (never
/// created: a missing control file means the controller is absent, and that is an error).
pub(crate) fn write(path: &Path, data: &str) -> Result<(), CgroupError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| io_err("open for writing", path, Some(data), e))?;
    f.write_all(data.as_bytes())
        .map_err(|e| io_err("write", path, Some(data), e))
}

/// The pids listed in a `cgroup.procs` file (`cat DIR/cgroup.procs`).
pub(crate) fn read_pids(path: &Path) -> Result<Vec<i32>, CgroupError> {
    let text = read(path)?;
    text.split_whitespace()
        .map(|t| {
            t.parse::<i32>().map_err(|_| CgroupError::Parse {
                what: path.display().to_string(),
                detail: format!("expected a pid, found {t:?}"),
            })
        })
        .collect()
}

/// Polls `check` every few milliseconds until it returns true or `timeout` passes.
/// Returns the last answer (false on timeout).
pub(crate) fn poll_until(
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<bool, CgroupError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if check()? {
            return Ok(true);
        }
        if start.elapsed() >= timeout {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Every directory at and below `dir` (the group and its descendants), breadth first,
/// at most `limit` of them. A directory that vanishes during the walk is skipped.
pub(crate) fn walk_dirs(dir: &Path, limit: usize) -> Result<Vec<PathBuf>, CgroupError> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() && out.len() < limit {
        let d = out[i].clone();
        i += 1;
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && i > 1 => continue,
            Err(e) => return Err(io_err("list cgroup directory", &d, None, e)),
        };
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.push(entry.path());
                if out.len() >= limit {
                    break;
                }
            }
        }
    }
    Ok(out)
}
