//! The chaos freeze: one file on the controller host that stops every `faultctl run`
//! (manual or scheduled) there before it touches a node. A frozen run writes a report
//! with outcome `skipped` and the reason, and exits with [`crate::ExitCode::Frozen`].
//!
//! The file is [`DEFAULT_PATH`] (`/etc/faultline/freeze`): root-owned directory, so only
//! root sets or lifts a freeze (`faultctl freeze` / `faultctl thaw` fail with a
//! permission error otherwise), world-readable (0644), so every user's `faultctl run`
//! sees it. `FAULTLINE_FREEZE_FILE` names another file (tests; a freeze per team). The
//! freeze is a brake on this host's controller, not a control the agents enforce: a
//! faultctl elsewhere, or one started with another `FAULTLINE_FREEZE_FILE`, does not see
//! it (the agents' limits file and `faultctl abort` are what stop faults on a node).
//!
//! The file is JSON ([`Freeze`]), written whole (temporary file, then rename). A freeze
//! with `until` ends by itself at that time: the file stays, and is read as not frozen.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::render::absolute;

/// Where the freeze lives.
pub const DEFAULT_PATH: &str = "/etc/faultline/freeze";

/// The environment variable that names another freeze file.
pub const PATH_ENV: &str = "FAULTLINE_FREEZE_FILE";

/// The freeze file in effect: `FAULTLINE_FREEZE_FILE`, else [`DEFAULT_PATH`].
pub fn path() -> PathBuf {
    std::env::var_os(PATH_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_PATH), PathBuf::from)
}

/// A chaos freeze.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freeze {
    pub reason: String,
    /// Who froze it: `user@host` (with sudo: the user who ran sudo, `alice (sudo)@host`).
    pub by: String,
    pub at_ms: u64,
    /// When it ends by itself; None: at `faultctl thaw`.
    #[serde(default)]
    pub until_ms: Option<u64>,
}

impl Freeze {
    /// Whether it holds at `now_ms`.
    pub fn active(&self, now_ms: u64) -> bool {
        self.until_ms.is_none_or(|u| now_ms < u)
    }

    /// One line: `frozen: REASON (by WHO at T, until U)`.
    pub fn describe(&self) -> String {
        format!(
            "frozen: {} (by {} at {}, {})",
            self.reason,
            self.by,
            absolute(self.at_ms),
            match self.until_ms {
                Some(u) => format!("until {}", absolute(u)),
                None => "until faultctl thaw".into(),
            }
        )
    }
}

/// Why the freeze could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    #[error(
        "cannot read the chaos freeze {}: {source} (refusing to run: a freeze that cannot \
         be read may be in effect)",
        path.display()
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the chaos freeze {} is malformed: {reason} (refusing to run; `faultctl thaw` as \
         root removes it)",
        path.display()
    )]
    Malformed { path: PathBuf, reason: String },
    #[error("cannot write the chaos freeze {}: {source}{}", path.display(), hint(source))]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Input(String),
}

fn hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        " (only root may freeze or thaw chaos on this host: run it with sudo)"
    } else {
        ""
    }
}

/// The freeze at `path` if there is one that holds at `now_ms`. No file: not frozen.
pub fn current(path: &Path, now_ms: u64) -> Result<Option<Freeze>, FreezeError> {
    Ok(read(path)?.filter(|f| f.active(now_ms)))
}

/// The freeze file's content, expired or not.
pub fn read(path: &Path) -> Result<Option<Freeze>, FreezeError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(FreezeError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| FreezeError::Malformed {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Who is freezing: `user@host`, the sudo user first.
pub fn who() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let user = match std::env::var("SUDO_USER") {
        Ok(u) if !u.is_empty() => format!("{u} (sudo)"),
        _ => std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| {
                use std::os::unix::fs::MetadataExt;
                let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
                    return "unknown".into();
                };
                // The name /etc/passwd gives the uid, else the number.
                std::fs::read_to_string("/etc/passwd")
                    .ok()
                    .and_then(|t| {
                        t.lines().find_map(|l| {
                            let f: Vec<&str> = l.split(':').collect();
                            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
                        })
                    })
                    .unwrap_or_else(|| format!("uid {uid}"))
            }),
    };
    if host.is_empty() {
        user
    } else {
        format!("{user}@{host}")
    }
}

/// `--until`: an RFC 3339 time (`2026-12-24T08:00:00Z`; `2026-12-24 08:00` is read as
/// UTC) or a duration from now (`2h`, `3d`). Must be in the future.
pub fn parse_until(text: &str, now_ms: u64) -> Result<u64, FreezeError> {
    let t = text.trim();
    let at = if let Ok(d) = humantime::parse_duration(t.trim_start_matches('+')) {
        now_ms + d.as_millis() as u64
    } else {
        let st = humantime::parse_rfc3339_weak(t).map_err(|_| {
            FreezeError::Input(format!(
                "invalid --until {text:?}: give a time (2026-12-24T08:00:00Z, or \
                 \"2026-12-24 08:00:00\" in UTC) or a duration from now (2h, 3d)"
            ))
        })?;
        st.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    if at <= now_ms {
        return Err(FreezeError::Input(format!(
            "invalid --until {text:?}: {} is not in the future",
            absolute(at)
        )));
    }
    Ok(at)
}

/// Writes the freeze (0644, replacing the file whole).
pub fn set(path: &Path, f: &Freeze) -> Result<(), FreezeError> {
    if f.reason.trim().is_empty() {
        return Err(FreezeError::Input(
            "invalid --reason: empty (say why chaos is frozen; it is printed to everyone whose run it stops)".into(),
        ));
    }
    let werr = |source| FreezeError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    // /etc/faultline comes with the agent's package; a controller-only host may lack it.
    std::fs::create_dir_all(dir).map_err(|source| FreezeError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let tmp = dir.join(format!(
        ".{}.{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("freeze"),
        std::process::id()
    ));
    let mut text = serde_json::to_vec_pretty(f).expect("plain data");
    text.push(b'\n');
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        werr(e)
    })
}

/// Lifts the freeze; returns what it was (None: there was none).
pub fn thaw(path: &Path) -> Result<Option<Freeze>, FreezeError> {
    let was = match read(path) {
        Ok(f) => f,
        // A malformed file is removed all the same.
        Err(FreezeError::Malformed { .. }) => None,
        Err(e) => return Err(e),
    };
    match std::fs::remove_file(path) {
        Ok(()) => Ok(was),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FreezeError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_083_200_000; // 2026-12-01T00:00:00Z

    #[test]
    fn set_read_expire_thaw() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("freeze");
        assert_eq!(current(&p, NOW).unwrap(), None);
        let f = Freeze {
            reason: "release week".into(),
            by: "alice@ctl".into(),
            at_ms: NOW,
            until_ms: Some(NOW + 3_600_000),
        };
        set(&p, &f).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(current(&p, NOW + 1).unwrap(), Some(f.clone()));
        assert_eq!(
            f.describe(),
            "frozen: release week (by alice@ctl at 2026-12-01T00:00:00Z, until 2026-12-01T01:00:00Z)"
        );
        // Ends by itself.
        assert_eq!(current(&p, NOW + 3_600_000).unwrap(), None);
        assert_eq!(thaw(&p).unwrap(), Some(f));
        assert!(!p.exists());
        assert_eq!(thaw(&p).unwrap(), None);
        // A malformed freeze stops runs (fail closed), and thaw removes it.
        std::fs::write(&p, "{").unwrap();
        assert!(matches!(
            current(&p, NOW),
            Err(FreezeError::Malformed { .. })
        ));
        thaw(&p).unwrap();
        assert!(!p.exists());
        // An empty reason is refused, and nothing is written.
        let e = set(
            &p,
            &Freeze {
                reason: " ".into(),
                by: "x".into(),
                at_ms: NOW,
                until_ms: None,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("--reason"), "{e}");
        assert!(!p.exists());
    }

    #[test]
    fn until_is_a_time_or_a_duration_in_the_future() {
        assert_eq!(parse_until("2h", NOW).unwrap(), NOW + 7_200_000);
        assert_eq!(parse_until("+1d", NOW).unwrap(), NOW + 86_400_000);
        assert_eq!(
            parse_until("2026-12-01T06:00:00Z", NOW).unwrap(),
            NOW + 6 * 3_600_000
        );
        assert_eq!(
            parse_until("2026-12-01 06:00:00", NOW).unwrap(),
            NOW + 6 * 3_600_000
        );
        let e = parse_until("2026-11-30T06:00:00Z", NOW).unwrap_err();
        assert!(e.to_string().contains("not in the future"), "{e}");
        let e = parse_until("tomorrow", NOW).unwrap_err();
        assert!(e.to_string().contains("--until"), "{e}");
    }
}
