//! Blast-radius limits: the node's own law, read from a root-owned TOML file.
//!
//! Two embedded profiles exist: `production` (the default, conservative) and `staging`.
//! A limits file picks a profile (`profile = "staging"`) and may override any field.
//! No RPC can change limits; `GetLimits` shows them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// Where limits are read from when `--limits` is not given.
pub const DEFAULT_LIMITS_PATH: &str = "/etc/faultline/limits.toml";

/// The effective limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `production` or `staging`.
    pub profile: String,
    /// The file they came from, or `embedded defaults`.
    pub source: String,
    /// The longest any fault may last.
    pub max_duration: Duration,
    /// Faults active at once, all kinds together.
    pub max_concurrent_faults: u32,
    /// Refuse faults that are not bound to a lease (a dead-man switch).
    pub require_lease: bool,
    /// The longest lease TTL a client may ask for.
    pub max_lease_ttl: Duration,
    pub process: ProcessLimits,
    pub network: NetworkLimits,
    pub cpu: StressLimits,
    pub memory: StressLimits,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessLimits {
    /// Processes signalled by kill faults in any sliding minute.
    pub max_kills_per_minute: u32,
    /// Process names (comm or executable basename) never selected.
    pub protected_processes: Vec<String>,
    /// systemd units whose processes are never selected.
    pub protected_units: Vec<String>,
    /// cgroup paths whose processes are never selected.
    pub protected_cgroups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkLimits {
    pub max_delay: Duration,
    pub max_jitter: Duration,
    pub max_loss_percent: f64,
    pub max_duplicate_percent: f64,
    pub max_corrupt_percent: f64,
    pub max_reorder_percent: f64,
    /// The lowest rate limit a fault may impose, bits per second.
    pub min_rate_bits: u64,
    /// Interfaces no network fault may touch (in any namespace).
    pub protected_interfaces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StressLimits {
    /// Percent of the node (CPU capacity, or RAM).
    pub max_percent: f64,
    pub max_duration: Duration,
}

impl Limits {
    /// The embedded `production` profile: the conservative default.
    pub fn production() -> Limits {
        Limits {
            profile: "production".into(),
            source: "embedded defaults".into(),
            max_duration: Duration::from_secs(300),
            max_concurrent_faults: 1,
            require_lease: false,
            max_lease_ttl: Duration::from_secs(300),
            process: ProcessLimits {
                max_kills_per_minute: 6,
                protected_processes: vec![
                    "sshd".into(),
                    "systemd-journald".into(),
                    "faultd".into(),
                ],
                protected_units: vec![
                    "sshd.service".into(),
                    "ssh.service".into(),
                    "systemd-journald.service".into(),
                    "faultd.service".into(),
                ],
                protected_cgroups: vec![],
            },
            network: NetworkLimits {
                max_delay: Duration::from_millis(50),
                max_jitter: Duration::from_millis(50),
                max_loss_percent: 1.0,
                max_duplicate_percent: 1.0,
                max_corrupt_percent: 1.0,
                max_reorder_percent: 1.0,
                min_rate_bits: 1_000_000,
                protected_interfaces: vec![],
            },
            cpu: StressLimits {
                max_percent: 15.0,
                max_duration: Duration::from_secs(60),
            },
            memory: StressLimits {
                max_percent: 10.0,
                max_duration: Duration::from_secs(60),
            },
        }
    }

    /// The embedded `staging` profile: production with wider maxima.
    pub fn staging() -> Limits {
        let mut l = Limits::production();
        l.profile = "staging".into();
        l.max_concurrent_faults = 10;
        l.network.max_delay = Duration::from_millis(500);
        l.network.max_jitter = Duration::from_millis(500);
        l.network.max_loss_percent = 5.0;
        l.network.max_duplicate_percent = 5.0;
        l.network.max_corrupt_percent = 5.0;
        l.network.max_reorder_percent = 5.0;
        l.network.min_rate_bits = 100_000;
        l.cpu.max_percent = 50.0;
        l.memory.max_percent = 30.0;
        l
    }

    /// An embedded profile by name.
    pub fn profile(name: &str) -> Option<Limits> {
        match name {
            "production" => Some(Limits::production()),
            "staging" => Some(Limits::staging()),
            _ => None,
        }
    }

    /// Parses a limits file's text. `file` is used in error messages only.
    pub fn parse(text: &str, file: &Path) -> Result<Limits, LimitsError> {
        let raw: RawLimits = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            LimitsError::Syntax {
                file: file.to_path_buf(),
                line,
                col,
                message: e.message().trim().to_string(),
            }
        })?;
        let bad = |span: std::ops::Range<usize>, field: &str, message: String| LimitsError::Field {
            file: file.to_path_buf(),
            line: line_col(text, span.start).0,
            field: field.to_string(),
            message,
        };

        let mut l = match &raw.profile {
            None => Limits::production(),
            Some(p) => Limits::profile(p.get_ref()).ok_or_else(|| {
                bad(
                    p.span(),
                    "profile",
                    format!(
                        "unknown profile {:?}: use \"production\" or \"staging\"",
                        p.get_ref()
                    ),
                )
            })?,
        };
        l.source = file.display().to_string();

        let dur = |v: &Option<Spanned<String>>,
                   field: &str,
                   out: &mut Duration|
         -> Result<(), LimitsError> {
            if let Some(s) = v {
                let d = faultline_proto::units::parse_duration(s.get_ref())
                    .map_err(|m| bad(s.span(), field, m))?;
                if d.is_zero() {
                    return Err(bad(s.span(), field, "must be greater than zero".into()));
                }
                *out = d;
            }
            Ok(())
        };
        let pct =
            |v: &Option<Spanned<f64>>, field: &str, out: &mut f64| -> Result<(), LimitsError> {
                if let Some(s) = v {
                    let p = *s.get_ref();
                    if !(0.0..=100.0).contains(&p) || p.is_nan() {
                        return Err(bad(
                            s.span(),
                            field,
                            format!("{p} is not a percentage in 0..=100"),
                        ));
                    }
                    *out = p;
                }
                Ok(())
            };

        dur(&raw.max_duration, "max_duration", &mut l.max_duration)?;
        if let Some(n) = &raw.max_concurrent_faults {
            l.max_concurrent_faults = *n.get_ref();
        }
        if let Some(b) = raw.require_lease {
            l.require_lease = b;
        }
        dur(&raw.max_lease_ttl, "max_lease_ttl", &mut l.max_lease_ttl)?;
        if let Some(p) = &raw.process {
            if let Some(n) = &p.max_kills_per_minute {
                l.process.max_kills_per_minute = *n.get_ref();
            }
            if let Some(v) = &p.protected_processes {
                l.process.protected_processes = v.clone();
            }
            if let Some(v) = &p.protected_units {
                l.process.protected_units = v.clone();
            }
            if let Some(v) = &p.protected_cgroups {
                l.process.protected_cgroups = v.clone();
            }
        }
        if let Some(n) = &raw.network {
            let net = &mut l.network;
            dur(&n.max_delay, "network.max_delay", &mut net.max_delay)?;
            dur(&n.max_jitter, "network.max_jitter", &mut net.max_jitter)?;
            for (v, name, out) in [
                (
                    &n.max_loss_percent,
                    "network.max_loss_percent",
                    &mut net.max_loss_percent,
                ),
                (
                    &n.max_duplicate_percent,
                    "network.max_duplicate_percent",
                    &mut net.max_duplicate_percent,
                ),
                (
                    &n.max_corrupt_percent,
                    "network.max_corrupt_percent",
                    &mut net.max_corrupt_percent,
                ),
                (
                    &n.max_reorder_percent,
                    "network.max_reorder_percent",
                    &mut net.max_reorder_percent,
                ),
            ] {
                pct(v, name, out)?;
            }
            if let Some(r) = &n.min_rate {
                net.min_rate_bits = faultline_proto::units::parse_rate(r.get_ref())
                    .map_err(|m| bad(r.span(), "network.min_rate", m))?;
            }
            if let Some(v) = &n.protected_interfaces {
                l.network.protected_interfaces = v.clone();
            }
        }
        for (raw_s, out, name) in [
            (&raw.cpu, &mut l.cpu, "cpu"),
            (&raw.memory, &mut l.memory, "memory"),
        ] {
            if let Some(s) = raw_s {
                pct(
                    &s.max_percent,
                    &format!("{name}.max_percent"),
                    &mut out.max_percent,
                )?;
                dur(
                    &s.max_duration,
                    &format!("{name}.max_duration"),
                    &mut out.max_duration,
                )?;
            }
        }
        Ok(l)
    }

    /// Reads limits: `path` if given (it must exist), else [`DEFAULT_LIMITS_PATH`] if it
    /// exists, else the embedded `production` profile. A file must be owned by root and
    /// not writable by group or others when `require_root_owned` is set.
    pub fn load(path: Option<&Path>, require_root_owned: bool) -> Result<Limits, LimitsError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_LIMITS_PATH), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Limits::production());
            }
            Err(e) => {
                return Err(LimitsError::Read {
                    file: path,
                    source: e,
                });
            }
        };
        if require_root_owned {
            check_owner(&path)?;
        }
        Limits::parse(&text, &path)
    }
}

/// Refuses a file that is not owned by root or is writable by group or others.
pub fn check_owner(path: &Path) -> Result<(), LimitsError> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path).map_err(|e| LimitsError::Read {
        file: path.to_path_buf(),
        source: e,
    })?;
    if md.uid() != 0 {
        return Err(LimitsError::Permissions {
            file: path.to_path_buf(),
            why: format!(
                "it is owned by uid {}, not root (fix: chown root: {})",
                md.uid(),
                path.display()
            ),
        });
    }
    if md.mode() & 0o022 != 0 {
        return Err(LimitsError::Permissions {
            file: path.to_path_buf(),
            why: format!(
                "it is writable by {} (mode {:o}; fix: chmod go-w {})",
                if md.mode() & 0o020 != 0 {
                    "its group"
                } else {
                    "others"
                },
                md.mode() & 0o7777,
                path.display()
            ),
        });
    }
    Ok(())
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    (line, col)
}

#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("cannot read limits file {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{col}: {message}")]
    Syntax {
        file: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("{file}:{line}: field {field}: {message}")]
    Field {
        file: PathBuf,
        line: usize,
        field: String,
        message: String,
    },
    #[error("refusing limits file {file}: {why}")]
    Permissions { file: PathBuf, why: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    profile: Option<Spanned<String>>,
    max_duration: Option<Spanned<String>>,
    max_concurrent_faults: Option<Spanned<u32>>,
    require_lease: Option<bool>,
    max_lease_ttl: Option<Spanned<String>>,
    process: Option<RawProcess>,
    network: Option<RawNetwork>,
    cpu: Option<RawStress>,
    memory: Option<RawStress>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    max_kills_per_minute: Option<Spanned<u32>>,
    protected_processes: Option<Vec<String>>,
    protected_units: Option<Vec<String>>,
    protected_cgroups: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    max_delay: Option<Spanned<String>>,
    max_jitter: Option<Spanned<String>>,
    max_loss_percent: Option<Spanned<f64>>,
    max_duplicate_percent: Option<Spanned<f64>>,
    max_corrupt_percent: Option<Spanned<f64>>,
    max_reorder_percent: Option<Spanned<f64>>,
    min_rate: Option<Spanned<String>>,
    protected_interfaces: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStress {
    max_percent: Option<Spanned<f64>>,
    max_duration: Option<Spanned<String>>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Limits, LimitsError> {
        Limits::parse(t, Path::new("/etc/faultline/limits.toml"))
    }

    #[test]
    fn embedded_production_profile_is_conservative() {
        let l = Limits::production();
        assert_eq!(l.max_duration, Duration::from_secs(300));
        assert_eq!(l.network.max_delay, Duration::from_millis(50));
        assert_eq!(l.network.max_loss_percent, 1.0);
        assert_eq!(l.cpu.max_percent, 15.0);
        assert_eq!(l.cpu.max_duration, Duration::from_secs(60));
        assert_eq!(l.memory.max_percent, 10.0);
        assert_eq!(l.memory.max_duration, Duration::from_secs(60));
        assert_eq!(l.max_concurrent_faults, 1);
        assert_eq!(l.process.max_kills_per_minute, 6);
        for p in ["sshd", "systemd-journald", "faultd"] {
            assert!(l.process.protected_processes.iter().any(|x| x == p));
        }
    }

    #[test]
    fn staging_profile_widens() {
        let l = Limits::staging();
        assert_eq!(l.network.max_delay, Duration::from_millis(500));
        assert_eq!(l.network.max_loss_percent, 5.0);
        assert_eq!(l.cpu.max_percent, 50.0);
        assert_eq!(l.memory.max_percent, 30.0);
        assert_eq!(l.max_concurrent_faults, 10);
    }

    #[test]
    fn file_picks_profile_and_overrides() {
        let l = parse(
            "profile = \"staging\"\nmax_duration = \"10m\"\n[process]\nmax_kills_per_minute = 2\n[cpu]\nmax_percent = 20\n",
        )
        .unwrap();
        assert_eq!(l.profile, "staging");
        assert_eq!(l.source, "/etc/faultline/limits.toml");
        assert_eq!(l.max_duration, Duration::from_secs(600));
        assert_eq!(l.process.max_kills_per_minute, 2);
        assert_eq!(l.cpu.max_percent, 20.0);
        assert_eq!(l.memory.max_percent, 30.0);
        assert_eq!(l.max_concurrent_faults, 10);
    }

    #[test]
    fn empty_file_is_production() {
        let mut l = parse("").unwrap();
        l.source = "embedded defaults".into();
        assert_eq!(l, Limits::production());
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = parse("profile = \"production\"\n[network]\nmax_loss_percent = 150\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/faultline/limits.toml:3: field network.max_loss_percent: 150 is not a percentage in 0..=100"
        );
        let e = parse("max_duration = \"-5s\"\n").unwrap_err().to_string();
        assert!(
            e.starts_with("/etc/faultline/limits.toml:1: field max_duration: "),
            "{e}"
        );
        assert!(e.contains("negative"), "{e}");
        let e = parse("\n\nprofile = \"prod\"\n").unwrap_err().to_string();
        assert!(
            e.contains(":3: field profile: unknown profile \"prod\""),
            "{e}"
        );
        let e = parse("[cpu]\nmax_precent = 3\n").unwrap_err().to_string();
        assert!(e.starts_with("/etc/faultline/limits.toml:2:"), "{e}");
        assert!(e.contains("max_precent"), "{e}");
        let e = parse("max_concurrent_faults = \"two\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/faultline/limits.toml:1:"), "{e}");
    }

    /// Uncomments `#key = value` lines of a shipped, commented default file.
    pub(crate) fn uncomment(text: &str) -> String {
        text.lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(k, _)| {
                        k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    }) =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn shipped_limits_file_matches_embedded_defaults() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../systemd/limits.toml"
        ))
        .unwrap();
        let mut l = parse(&uncomment(&text)).unwrap();
        l.source = "embedded defaults".into();
        assert_eq!(l, Limits::production());
        let mut l = parse(&text).unwrap();
        l.source = "embedded defaults".into();
        assert_eq!(l, Limits::production());
    }

    #[test]
    fn owner_check_refuses_writable_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("limits.toml");
        std::fs::write(&p, "").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let is_root = nix::unistd::Uid::effective().is_root();
        let e = check_owner(&p).unwrap_err().to_string();
        if is_root {
            assert!(e.contains("writable by its group"), "{e}");
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        if is_root {
            check_owner(&p).unwrap();
        }
    }
}
