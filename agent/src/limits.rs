//! Blast-radius limits: the node's own law, read from a root-owned TOML file.
//!
//! Two embedded profiles exist: `production` (the default, conservative) and `staging`.
//! A limits file picks a profile (`profile = "staging"`) and may override any field.
//! No RPC can change limits; `GetLimits` shows them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::fault::Percent;
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
    /// `[disk]`: disk-fill faults.
    pub disk: DiskLimits,
    /// `[io]`: io-limit faults.
    pub io: IoLimits,
    /// Local abort conditions (`[health]`): on a breach every fault is reverted.
    pub health: HealthLimits,
}

/// The health guard's conditions. Empty (the default): no guard runs.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthLimits {
    /// How often the guard checks.
    pub interval: Duration,
    /// Abort when `MemAvailable` (/proc/meminfo) falls below this.
    pub min_mem_available: Option<MemThreshold>,
    /// Abort when `some avg10` of /proc/pressure/cpu rises above this (percent).
    pub max_psi_cpu_some_avg10: Option<f64>,
    /// Same for /proc/pressure/memory.
    pub max_psi_memory_some_avg10: Option<f64>,
    /// Same for /proc/pressure/io.
    pub max_psi_io_some_avg10: Option<f64>,
    /// Abort when the space available on the filesystem holding a path falls below its
    /// floor (bytes, or percent of the filesystem's size).
    pub min_disk_free: Vec<(String, MemThreshold)>,
    pub probes: Vec<Probe>,
}

impl Default for HealthLimits {
    fn default() -> Self {
        HealthLimits {
            interval: Duration::from_secs(1),
            min_mem_available: None,
            max_psi_cpu_some_avg10: None,
            max_psi_memory_some_avg10: None,
            max_psi_io_some_avg10: None,
            min_disk_free: Vec::new(),
            probes: Vec::new(),
        }
    }
}

impl HealthLimits {
    /// No condition set: nothing to guard.
    pub fn is_empty(&self) -> bool {
        self.min_mem_available.is_none()
            && self.max_psi_cpu_some_avg10.is_none()
            && self.max_psi_memory_some_avg10.is_none()
            && self.max_psi_io_some_avg10.is_none()
            && self.min_disk_free.is_empty()
            && self.probes.is_empty()
    }

    /// One line per condition, for `GetLimits` and `check-config`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(m) = &self.min_mem_available {
            out.push(format!("MemAvailable below {m}"));
        }
        for (name, v) in [
            ("cpu", self.max_psi_cpu_some_avg10),
            ("memory", self.max_psi_memory_some_avg10),
            ("io", self.max_psi_io_some_avg10),
        ] {
            if let Some(v) = v {
                out.push(format!("PSI {name} some avg10 above {v}"));
            }
        }
        for (p, m) in &self.min_disk_free {
            out.push(format!(
                "space available on {p} below {}",
                disk_floor_text(m)
            ));
        }
        for p in &self.probes {
            out.push(format!(
                "probe {} fails {} time{} in a row (timeout {})",
                p.check,
                p.failures,
                if p.failures == 1 { "" } else { "s" },
                faultline_proto::units::format_duration(p.timeout)
            ));
        }
        out
    }
}

/// A disk floor in words: `1GiB`-style bytes, or a share of the filesystem.
pub fn disk_floor_text(m: &MemThreshold) -> String {
    match m {
        MemThreshold::Bytes(b) => faultline_proto::units::format_size(*b),
        MemThreshold::Percent(p) => format!("{p}% of the filesystem"),
    }
}

/// A memory floor: absolute, or a share of MemTotal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemThreshold {
    Bytes(u64),
    Percent(f64),
}

impl std::fmt::Display for MemThreshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemThreshold::Bytes(b) => write!(f, "{b} bytes"),
            MemThreshold::Percent(p) => write!(f, "{p}% of MemTotal"),
        }
    }
}

impl MemThreshold {
    /// The floor in bytes, given MemTotal.
    pub fn bytes(&self, total: u64) -> u64 {
        match self {
            MemThreshold::Bytes(b) => *b,
            MemThreshold::Percent(p) => (total as f64 * p / 100.0) as u64,
        }
    }

    /// `"512MiB"`, `"2GiB"`, `"500MB"`, `"1048576"` (bytes) or `"5%"`.
    pub fn parse(s: &str) -> Result<MemThreshold, String> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a percentage (e.g. \"5%\")"))?;
            return Ok(MemThreshold::Percent(Percent::probability(v)?));
        }
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a size: use e.g. \"512MiB\", \"2GiB\" or \"5%\""))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "kB" | "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            u => {
                return Err(format!(
                    "unknown unit {u:?} in {s:?}: use B, KiB, MiB, GiB, KB, MB, GB or %"
                ));
            }
        };
        n.checked_mul(mult)
            .map(MemThreshold::Bytes)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

/// A probe of something the node serves; `failures` consecutive failures trip it.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub check: ProbeCheck,
    pub timeout: Duration,
    pub failures: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProbeCheck {
    /// GET this `http://host:port/path` URL, expecting a 2xx status.
    Http(String),
    /// Connect to this `host:port`.
    Tcp(String),
    /// Run this command (argv), expecting exit status 0.
    Command(Vec<String>),
    /// This Prometheus instant query; its value must stay within the bounds (the same
    /// condition as faultctl's `prometheus:` probes).
    Prometheus {
        query: faultline_proto::prometheus::InstantQuery,
        bounds: faultline_proto::prometheus::Bounds,
    },
}

impl std::fmt::Display for ProbeCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeCheck::Http(u) => write!(f, "http GET {u}"),
            ProbeCheck::Tcp(a) => write!(f, "tcp {a}"),
            ProbeCheck::Command(c) => write!(f, "command {}", c.join(" ")),
            ProbeCheck::Prometheus { query, bounds } => {
                write!(f, "prometheus {} at {}", query.query(), query.server())?;
                if let Some(min) = bounds.min {
                    write!(f, " min {min}")?;
                }
                if let Some(max) = bounds.max {
                    write!(f, " max {max}")?;
                }
                Ok(())
            }
        }
    }
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
    /// Process faults (kill loops and pauses) active at once; `None`: only the global cap.
    pub max_concurrent: Option<u32>,
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
    /// Ports (source or destination, TCP or UDP) every network fault steers past
    /// itself, both ways; `[22]` by default.
    pub protected_ports: Vec<u16>,
    /// Address prefixes (source or destination) every network fault steers past itself.
    pub protected_cidrs: Vec<crate::sys::tc::Cidr>,
    /// Whether a network fault may drop every selected packet (`--blackhole`).
    pub allow_blackhole: bool,
    /// Network faults active at once; `None`: only the global cap.
    pub max_concurrent: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StressLimits {
    /// Percent of the node (CPU capacity, or RAM).
    pub max_percent: f64,
    pub max_duration: Duration,
    /// Faults of this kind active at once; `None`: only the global cap.
    pub max_concurrent: Option<u32>,
}

/// `[disk]`: what a disk fill may do to a filesystem.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskLimits {
    /// No fill may push a filesystem past this many percent used (as `df` counts it).
    pub max_used_percent: f64,
    /// No fill may leave less than this many bytes available.
    pub min_free: u64,
    /// Filesystems (named by any path on them) never filled. The one holding faultd's
    /// state dir is always protected besides these, so the journal can be written.
    pub protected_paths: Vec<String>,
    pub max_duration: Duration,
    /// Fills active at once; `None`: only the global cap.
    pub max_concurrent: Option<u32>,
}

/// `[io]`: what an io limit may impose.
#[derive(Debug, Clone, PartialEq)]
pub struct IoLimits {
    /// The lowest bytes per second a limit may set.
    pub min_bps: u64,
    /// The lowest I/O operations per second a limit may set.
    pub min_iops: u64,
    pub max_duration: Duration,
    /// Io limits and io stresses active at once; `None`: only the global cap.
    pub max_concurrent: Option<u32>,
    /// An io stress's most worker processes.
    pub stress_max_workers: u32,
    /// The highest bytes per second (read and write each) an io stress's group may do:
    /// its blk-throttle is set to this unless the fault asks for less.
    pub stress_max_bps: u64,
}

impl Limits {
    /// Every setting in force as `(key, value)`, one per key of the limits file
    /// (`network.max_jitter`, `cpu.max_concurrent`, `health.probe`...), in the file's
    /// order, unset ones included: what `faultd check-config` prints. The fields are
    /// destructured without `..`, so a new limit does not compile until it is listed.
    pub fn settings(&self) -> Vec<(String, String)> {
        use faultline_proto::units::{format_duration as d, format_rate, format_size};
        let Limits {
            profile,
            source: _,
            max_duration,
            max_concurrent_faults,
            require_lease,
            max_lease_ttl,
            process,
            network,
            cpu,
            memory,
            disk,
            io,
            health,
        } = self;
        let IoLimits {
            min_bps,
            min_iops,
            max_duration: io_max_duration,
            max_concurrent: io_max,
            stress_max_workers,
            stress_max_bps,
        } = io;
        let DiskLimits {
            max_used_percent,
            min_free,
            protected_paths,
            max_duration: disk_max_duration,
            max_concurrent: disk_max,
        } = disk;
        let ProcessLimits {
            max_kills_per_minute,
            protected_processes,
            protected_units,
            protected_cgroups,
            max_concurrent: process_max,
        } = process;
        let NetworkLimits {
            max_delay,
            max_jitter,
            max_loss_percent,
            max_duplicate_percent,
            max_corrupt_percent,
            max_reorder_percent,
            min_rate_bits,
            protected_interfaces,
            protected_ports,
            protected_cidrs,
            allow_blackhole,
            max_concurrent: network_max,
        } = network;
        let HealthLimits {
            interval,
            min_mem_available,
            max_psi_cpu_some_avg10,
            max_psi_memory_some_avg10,
            max_psi_io_some_avg10,
            min_disk_free,
            probes,
        } = health;
        let list = |v: &[String]| {
            if v.is_empty() {
                "(none)".to_string()
            } else {
                v.join(", ")
            }
        };
        let cap = |c: &Option<u32>| match c {
            Some(n) => n.to_string(),
            None => "(unset: only max_concurrent_faults)".to_string(),
        };
        let pct = |p: &f64| format!("{p}%");
        let off = |v: Option<String>| v.unwrap_or_else(|| "(off)".to_string());
        let mut out: Vec<(String, String)> = [
            ("profile", profile.clone()),
            ("max_duration", d(*max_duration)),
            ("max_concurrent_faults", max_concurrent_faults.to_string()),
            ("require_lease", require_lease.to_string()),
            ("max_lease_ttl", d(*max_lease_ttl)),
            (
                "process.max_kills_per_minute",
                max_kills_per_minute.to_string(),
            ),
            ("process.protected_processes", list(protected_processes)),
            ("process.protected_units", list(protected_units)),
            ("process.protected_cgroups", list(protected_cgroups)),
            ("process.max_concurrent", cap(process_max)),
            ("network.max_delay", d(*max_delay)),
            ("network.max_jitter", d(*max_jitter)),
            ("network.max_loss_percent", pct(max_loss_percent)),
            ("network.max_duplicate_percent", pct(max_duplicate_percent)),
            ("network.max_corrupt_percent", pct(max_corrupt_percent)),
            ("network.max_reorder_percent", pct(max_reorder_percent)),
            ("network.min_rate", format_rate(*min_rate_bits)),
            ("network.protected_interfaces", list(protected_interfaces)),
            (
                "network.protected_ports",
                list(
                    &protected_ports
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>(),
                ),
            ),
            ("network.allow_blackhole", allow_blackhole.to_string()),
            (
                "network.protected_cidrs",
                list(
                    &protected_cidrs
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>(),
                ),
            ),
            ("network.max_concurrent", cap(network_max)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (section, l) in [("cpu", cpu), ("memory", memory)] {
            let StressLimits {
                max_percent,
                max_duration,
                max_concurrent,
            } = l;
            out.push((format!("{section}.max_percent"), pct(max_percent)));
            out.push((format!("{section}.max_duration"), d(*max_duration)));
            out.push((format!("{section}.max_concurrent"), cap(max_concurrent)));
        }
        out.push(("disk.max_used_percent".into(), pct(max_used_percent)));
        out.push(("disk.min_free".into(), format_size(*min_free)));
        out.push((
            "disk.protected_paths".into(),
            format!(
                "{} (and the filesystem of faultd's state dir, always)",
                list(protected_paths)
            ),
        ));
        out.push(("disk.max_duration".into(), d(*disk_max_duration)));
        out.push(("disk.max_concurrent".into(), cap(disk_max)));
        out.push(("io.min_bps".into(), format!("{}/s", format_size(*min_bps))));
        out.push(("io.min_iops".into(), min_iops.to_string()));
        out.push(("io.max_duration".into(), d(*io_max_duration)));
        out.push(("io.max_concurrent".into(), cap(io_max)));
        out.push((
            "io.stress_max_workers".into(),
            stress_max_workers.to_string(),
        ));
        out.push((
            "io.stress_max_bps".into(),
            format!("{}/s", format_size(*stress_max_bps)),
        ));
        out.push(("health.interval".into(), d(*interval)));
        out.push((
            "health.min_mem_available".into(),
            off(min_mem_available.map(|m| m.to_string())),
        ));
        for (key, v) in [
            ("health.max_psi_cpu_some_avg10", max_psi_cpu_some_avg10),
            (
                "health.max_psi_memory_some_avg10",
                max_psi_memory_some_avg10,
            ),
            ("health.max_psi_io_some_avg10", max_psi_io_some_avg10),
        ] {
            out.push((key.into(), off(v.as_ref().map(pct))));
        }
        out.push((
            "health.min_disk_free".into(),
            if min_disk_free.is_empty() {
                "(off)".to_string()
            } else {
                min_disk_free
                    .iter()
                    .map(|(p, m)| format!("{p}: {}", disk_floor_text(m)))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ));
        if probes.is_empty() {
            out.push(("health.probe".into(), "(none)".to_string()));
        }
        for p in probes {
            out.push((
                "health.probe".into(),
                format!(
                    "{}, trips after {} failure{} (timeout {})",
                    p.check,
                    p.failures,
                    if p.failures == 1 { "" } else { "s" },
                    d(p.timeout)
                ),
            ));
        }
        out
    }

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
                max_concurrent: None,
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
                protected_ports: vec![22],
                protected_cidrs: vec![],
                allow_blackhole: false,
                max_concurrent: None,
            },
            cpu: StressLimits {
                max_percent: 15.0,
                max_duration: Duration::from_secs(60),
                max_concurrent: None,
            },
            memory: StressLimits {
                max_percent: 10.0,
                max_duration: Duration::from_secs(60),
                max_concurrent: None,
            },
            disk: DiskLimits {
                max_used_percent: 90.0,
                min_free: 1 << 30,
                protected_paths: vec![],
                max_duration: Duration::from_secs(300),
                max_concurrent: None,
            },
            io: IoLimits {
                min_bps: 1 << 20,
                min_iops: 10,
                max_duration: Duration::from_secs(300),
                max_concurrent: None,
                stress_max_workers: 4,
                stress_max_bps: 64 << 20,
            },
            health: HealthLimits::default(),
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
        l.network.allow_blackhole = true;
        l.cpu.max_percent = 50.0;
        l.memory.max_percent = 30.0;
        l.disk.max_used_percent = 95.0;
        l.disk.min_free = 256 << 20;
        l.io.min_bps = 64 << 10;
        l.io.min_iops = 1;
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
                    *out =
                        Percent::probability(*s.get_ref()).map_err(|m| bad(s.span(), field, m))?;
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
            if let Some(n) = &p.max_concurrent {
                l.process.max_concurrent = Some(*n.get_ref());
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
            if let Some(v) = &n.allow_blackhole {
                l.network.allow_blackhole = *v;
            }
            if let Some(v) = &n.protected_ports {
                l.network.protected_ports = v
                    .iter()
                    .map(|p| {
                        p.get_ref()
                            .as_integer()
                            .and_then(|i| u16::try_from(i).ok())
                            .filter(|&i| i > 0)
                            .ok_or_else(|| {
                                bad(
                                    p.span(),
                                    "network.protected_ports",
                                    format!("{} is not a port in 1..=65535", p.get_ref()),
                                )
                            })
                    })
                    .collect::<Result<_, _>>()?;
            }
            if let Some(v) = &n.protected_cidrs {
                l.network.protected_cidrs = v
                    .iter()
                    .map(|c| {
                        let e = |why: String| bad(c.span(), "network.protected_cidrs", why);
                        match c.get_ref().as_str() {
                            Some(t) => t.parse().map_err(|x| match x {
                                crate::sys::tc::NetError::InvalidParameter { reason, .. } => {
                                    e(reason)
                                }
                                other => e(other.to_string()),
                            }),
                            None => Err(e(format!(
                                "{} is not a string such as \"10.0.0.0/8\" or \"2001:db8::/32\"",
                                c.get_ref()
                            ))),
                        }
                    })
                    .collect::<Result<_, _>>()?;
            }
            if let Some(m) = &n.max_concurrent {
                l.network.max_concurrent = Some(*m.get_ref());
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
                if let Some(m) = &s.max_concurrent {
                    out.max_concurrent = Some(*m.get_ref());
                }
            }
        }
        if let Some(d) = &raw.disk {
            pct(
                &d.max_used_percent,
                "disk.max_used_percent",
                &mut l.disk.max_used_percent,
            )?;
            if let Some(m) = &d.min_free {
                l.disk.min_free = faultline_proto::units::parse_size(m.get_ref())
                    .map_err(|e| bad(m.span(), "disk.min_free", e))?;
            }
            if let Some(v) = &d.protected_paths {
                for p in v.get_ref() {
                    if !p.starts_with('/') {
                        return Err(bad(
                            v.span(),
                            "disk.protected_paths",
                            format!("{p:?} is not an absolute path"),
                        ));
                    }
                }
                l.disk.protected_paths = v.get_ref().clone();
            }
            dur(
                &d.max_duration,
                "disk.max_duration",
                &mut l.disk.max_duration,
            )?;
            if let Some(m) = &d.max_concurrent {
                l.disk.max_concurrent = Some(*m.get_ref());
            }
        }
        if let Some(i) = &raw.io {
            if let Some(m) = &i.min_bps {
                l.io.min_bps = faultline_proto::units::parse_size(m.get_ref())
                    .map_err(|e| bad(m.span(), "io.min_bps", e))?;
            }
            if let Some(m) = &i.min_iops {
                l.io.min_iops = *m.get_ref();
            }
            dur(&i.max_duration, "io.max_duration", &mut l.io.max_duration)?;
            if let Some(m) = &i.max_concurrent {
                l.io.max_concurrent = Some(*m.get_ref());
            }
            if let Some(m) = &i.stress_max_workers {
                if *m.get_ref() == 0 {
                    return Err(bad(
                        m.span(),
                        "io.stress_max_workers",
                        "must be at least 1".into(),
                    ));
                }
                l.io.stress_max_workers = *m.get_ref();
            }
            if let Some(m) = &i.stress_max_bps {
                let v = faultline_proto::units::parse_size(m.get_ref())
                    .map_err(|e| bad(m.span(), "io.stress_max_bps", e))?;
                if v == 0 {
                    return Err(bad(
                        m.span(),
                        "io.stress_max_bps",
                        "must be at least 1".into(),
                    ));
                }
                l.io.stress_max_bps = v;
            }
        }
        if let Some(h) = &raw.health {
            parse_health(h, &mut l.health, &dur, &bad)?;
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

type Bad<'a> = dyn Fn(std::ops::Range<usize>, &str, String) -> LimitsError + 'a;
type Dur<'a> =
    dyn Fn(&Option<Spanned<String>>, &str, &mut Duration) -> Result<(), LimitsError> + 'a;

fn parse_health(
    h: &RawHealth,
    out: &mut HealthLimits,
    dur: &Dur<'_>,
    bad: &Bad<'_>,
) -> Result<(), LimitsError> {
    dur(&h.interval, "health.interval", &mut out.interval)?;
    if let Some(m) = &h.min_mem_available {
        out.min_mem_available = Some(
            MemThreshold::parse(m.get_ref())
                .map_err(|e| bad(m.span(), "health.min_mem_available", e))?,
        );
    }
    for (v, name, o) in [
        (
            &h.max_psi_cpu_some_avg10,
            "health.max_psi_cpu_some_avg10",
            &mut out.max_psi_cpu_some_avg10,
        ),
        (
            &h.max_psi_memory_some_avg10,
            "health.max_psi_memory_some_avg10",
            &mut out.max_psi_memory_some_avg10,
        ),
        (
            &h.max_psi_io_some_avg10,
            "health.max_psi_io_some_avg10",
            &mut out.max_psi_io_some_avg10,
        ),
    ] {
        if let Some(s) = v {
            *o = Some(Percent::probability(*s.get_ref()).map_err(|m| bad(s.span(), name, m))?);
        }
    }
    if let Some(m) = &h.min_disk_free {
        for (path, floor) in m.get_ref() {
            if !path.starts_with('/') {
                return Err(bad(
                    m.span(),
                    "health.min_disk_free",
                    format!("{path:?} is not an absolute path"),
                ));
            }
            let t = MemThreshold::parse(floor)
                .map_err(|e| bad(m.span(), "health.min_disk_free", format!("{path}: {e}")))?;
            out.min_disk_free.push((path.clone(), t));
        }
    }
    for (i, p) in h.probe.iter().enumerate() {
        let field = |f: &str| format!("health.probe[{i}].{f}");
        let given = [
            p.http.is_some(),
            p.tcp.is_some(),
            p.command.is_some(),
            p.prometheus.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            return Err(bad(
                p.failures.as_ref().map(|f| f.span()).unwrap_or(0..0),
                &field("http|tcp|command|prometheus"),
                "a probe names exactly one of http = \"http://host:port/path\", tcp = \"host:port\", command = [\"argv\", ...], prometheus = { url = \"http://prom:9090\", query = \"...\", max = N }".into(),
            ));
        }
        let check = if let Some(u) = &p.http {
            let url = u.get_ref();
            if !url.starts_with("http://") {
                return Err(bad(
                    u.span(),
                    &field("http"),
                    format!("{url:?}: only plain http:// URLs are probed"),
                ));
            }
            ProbeCheck::Http(url.clone())
        } else if let Some(a) = &p.tcp {
            if !a.get_ref().contains(':') {
                return Err(bad(
                    a.span(),
                    &field("tcp"),
                    format!("{:?} is not host:port", a.get_ref()),
                ));
            }
            ProbeCheck::Tcp(a.get_ref().clone())
        } else if let Some(pr) = &p.prometheus {
            let r = pr.get_ref();
            let query = faultline_proto::prometheus::InstantQuery::new(&r.url, &r.query)
                .map_err(|e| bad(pr.span(), &field("prometheus"), e))?;
            let bounds = faultline_proto::prometheus::Bounds::new(r.min, r.max)
                .map_err(|e| bad(pr.span(), &field("prometheus"), e))?;
            ProbeCheck::Prometheus { query, bounds }
        } else {
            let c = p.command.as_ref().expect("counted above");
            if c.get_ref().is_empty() {
                return Err(bad(c.span(), &field("command"), "an empty command".into()));
            }
            ProbeCheck::Command(c.get_ref().clone())
        };
        let mut timeout = Duration::from_secs(2);
        dur(&p.timeout, &field("timeout"), &mut timeout)?;
        let failures = match &p.failures {
            Some(f) if *f.get_ref() == 0 => {
                return Err(bad(
                    f.span(),
                    &field("failures"),
                    "must be at least 1".into(),
                ));
            }
            Some(f) => *f.get_ref(),
            None => 3,
        };
        out.probes.push(Probe {
            check,
            timeout,
            failures,
        });
    }
    Ok(())
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
    disk: Option<RawDisk>,
    io: Option<RawIo>,
    health: Option<RawHealth>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIo {
    min_bps: Option<Spanned<String>>,
    min_iops: Option<Spanned<u64>>,
    max_duration: Option<Spanned<String>>,
    max_concurrent: Option<Spanned<u32>>,
    stress_max_workers: Option<Spanned<u32>>,
    stress_max_bps: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisk {
    max_used_percent: Option<Spanned<f64>>,
    min_free: Option<Spanned<String>>,
    protected_paths: Option<Spanned<Vec<String>>>,
    max_duration: Option<Spanned<String>>,
    max_concurrent: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    interval: Option<Spanned<String>>,
    min_mem_available: Option<Spanned<String>>,
    max_psi_cpu_some_avg10: Option<Spanned<f64>>,
    max_psi_memory_some_avg10: Option<Spanned<f64>>,
    max_psi_io_some_avg10: Option<Spanned<f64>>,
    min_disk_free: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    #[serde(default)]
    probe: Vec<RawProbe>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    http: Option<Spanned<String>>,
    tcp: Option<Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
    prometheus: Option<Spanned<RawPrometheus>>,
    timeout: Option<Spanned<String>>,
    failures: Option<Spanned<u32>>,
}

/// `prometheus = { url, query, max, min }` of a health probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrometheus {
    url: String,
    query: String,
    max: Option<f64>,
    min: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    max_kills_per_minute: Option<Spanned<u32>>,
    protected_processes: Option<Vec<String>>,
    protected_units: Option<Vec<String>>,
    protected_cgroups: Option<Vec<String>>,
    max_concurrent: Option<Spanned<u32>>,
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
    protected_ports: Option<Vec<Spanned<toml::Value>>>,
    protected_cidrs: Option<Vec<Spanned<toml::Value>>>,
    allow_blackhole: Option<bool>,
    max_concurrent: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStress {
    max_percent: Option<Spanned<f64>>,
    max_duration: Option<Spanned<String>>,
    max_concurrent: Option<Spanned<u32>>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Limits, LimitsError> {
        Limits::parse(t, Path::new("/etc/faultline/limits.toml"))
    }

    #[test]
    fn io_stress_limits_parse_and_refuse_zero() {
        let l = parse("[io]\nstress_max_workers = 2\nstress_max_bps = \"8MiB\"\n").unwrap();
        assert_eq!((l.io.stress_max_workers, l.io.stress_max_bps), (2, 8 << 20));
        let d = Limits::production();
        assert_eq!(
            (d.io.stress_max_workers, d.io.stress_max_bps),
            (4, 64 << 20)
        );
        for t in [
            "[io]\nstress_max_workers = 0\n",
            "[io]\nstress_max_bps = \"0MiB\"\n",
        ] {
            let e = parse(t).unwrap_err().to_string();
            assert!(e.contains("io.stress_max_"), "{t}: {e}");
        }
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
    fn protected_traffic_defaults_to_ssh_and_bad_entries_name_line_and_field() {
        for l in [Limits::production(), Limits::staging()] {
            assert_eq!(l.network.protected_ports, vec![22]);
            assert!(l.network.protected_cidrs.is_empty());
        }
        let l = parse(
            "[network]\nprotected_ports = [22, 7443]\nprotected_cidrs = [\"10.9.0.0/16\", \"2001:db8::1\"]\n",
        )
        .unwrap();
        assert_eq!(l.network.protected_ports, vec![22, 7443]);
        assert_eq!(
            l.network
                .protected_cidrs
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>(),
            ["10.9.0.0/16", "2001:db8::1/128"]
        );
        assert!(
            parse("[network]\nprotected_ports = []\n")
                .unwrap()
                .network
                .protected_ports
                .is_empty()
        );
        for (text, want) in [
            (
                "[network]\n\nprotected_ports = [22,\n 70000]\n",
                "/etc/faultline/limits.toml:4: field network.protected_ports: 70000 is not a port in 1..=65535",
            ),
            (
                "[network]\nprotected_ports = [\"ssh\"]\n",
                "/etc/faultline/limits.toml:2: field network.protected_ports: \"ssh\" is not a port in 1..=65535",
            ),
            (
                "[network]\nprotected_cidrs = [\"10.0.0.0/33\"]\n",
                "/etc/faultline/limits.toml:2: field network.protected_cidrs: \"10.0.0.0/33\": prefix length must be 0..=32",
            ),
            (
                "[network]\nprotected_cidrs = [10]\n",
                "/etc/faultline/limits.toml:2: field network.protected_cidrs: 10 is not a string such as \"10.0.0.0/8\" or \"2001:db8::/32\"",
            ),
        ] {
            assert_eq!(parse(text).unwrap_err().to_string(), want);
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

    /// Every key the shipped limits file names (set, commented out, or in an example)
    /// has its row in `settings()`, so `check-config` drops none.
    #[test]
    fn settings_show_every_key_of_the_limits_file() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../systemd/limits.toml"
        ))
        .unwrap();
        let key = regex::Regex::new(r"([a-z_0-9]+) = ").unwrap();
        let mut section = String::new();
        let mut keys = Vec::new();
        for line in text.lines() {
            let t = line.trim_start_matches(['#', ' ']);
            if let Some(name) = t.strip_prefix("[[").and_then(|t| t.strip_suffix("]]")) {
                section = name.to_string();
                continue;
            }
            if let Some(name) = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                section = name.to_string();
                continue;
            }
            for c in key.captures_iter(t) {
                let k = match section.as_str() {
                    "" => c[1].to_string(),
                    "health.probe" => "health.probe".to_string(),
                    s => format!("{s}.{}", &c[1]),
                };
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        assert!(keys.len() >= 30, "found the file's keys: {keys:?}");
        for l in [Limits::production(), Limits::staging()] {
            let shown: Vec<String> = l.settings().into_iter().map(|(k, _)| k).collect();
            for k in &keys {
                assert!(shown.contains(k), "{k} is not shown: {shown:?}");
            }
        }
        let rows = Limits::staging().settings();
        let get = |k: &str| rows.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(get("network.max_jitter"), "500ms");
        assert_eq!(get("network.max_duplicate_percent"), "5%");
        assert_eq!(get("network.min_rate"), "100kbit");
        assert_eq!(
            get("cpu.max_concurrent"),
            "(unset: only max_concurrent_faults)"
        );
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
    fn health_min_disk_free() {
        let l =
            parse("[health]\nmin_disk_free = { \"/var\" = \"1GiB\", \"/\" = \"5%\" }\n").unwrap();
        assert_eq!(
            l.health.min_disk_free,
            vec![
                ("/".to_string(), MemThreshold::Percent(5.0)),
                ("/var".to_string(), MemThreshold::Bytes(1 << 30)),
            ]
        );
        assert_eq!(
            l.health.describe(),
            vec![
                "space available on / below 5% of the filesystem",
                "space available on /var below 1GiB"
            ]
        );
        let e = parse("[health]\nmin_disk_free = { \"var\" = \"1GiB\" }\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("field health.min_disk_free: \"var\" is not an absolute path"),
            "{e}"
        );
    }

    #[test]
    fn health_prometheus_probe() {
        let l = parse(
            "[health]\n[[health.probe]]\n\
             prometheus = { url = \"http://127.0.0.1:9090\", query = \"sum(up)\", min = 1, max = 5 }\n\
             failures = 2\n",
        )
        .unwrap();
        assert_eq!(
            l.health.describe(),
            vec![
                "probe prometheus sum(up) at http://127.0.0.1:9090/ min 1 max 5 fails 2 times in a row (timeout 2s)"
            ]
        );
        for (text, want) in [
            (
                "prometheus = { url = \"http://p:9090\", query = \"up\" }",
                "field health.probe[0].prometheus: give max, min or both",
            ),
            (
                "prometheus = { url = \"http://p:9090\", query = \"up\", min = 2, max = 1 }",
                "field health.probe[0].prometheus: min 2 is above max 1",
            ),
            (
                "prometheus = { url = \"https://p:9090\", query = \"up\", max = 1 }",
                "field health.probe[0].prometheus: url ",
            ),
            (
                "prometheus = { url = \"http://p:9090\", query = \" \", max = 1 }",
                "field health.probe[0].prometheus: query is empty",
            ),
            (
                "prometheus = { url = \"http://p:9090\", query = \"up\", max = 1, step = 2 }",
                "unknown field `step`",
            ),
            (
                "tcp = \"x:1\"\nprometheus = { url = \"http://p:9090\", query = \"up\", max = 1 }",
                "field health.probe[0].http|tcp|command|prometheus: a probe names exactly one",
            ),
        ] {
            let e = parse(&format!("[health]\n[[health.probe]]\n{text}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn health_section_and_per_kind_caps() {
        let l = parse(
            "[process]\nmax_concurrent = 2\n[network]\nmax_concurrent = 1\n[memory]\nmax_concurrent = 3\n\
             [health]\ninterval = \"500ms\"\nmin_mem_available = \"512MiB\"\nmax_psi_io_some_avg10 = 40\n\
             [[health.probe]]\ntcp = \"127.0.0.1:22\"\nfailures = 2\n\
             [[health.probe]]\nhttp = \"http://127.0.0.1:8080/healthz\"\ntimeout = \"1s\"\n\
             [[health.probe]]\ncommand = [\"/bin/true\"]\n",
        )
        .unwrap();
        assert_eq!(l.process.max_concurrent, Some(2));
        assert_eq!(l.network.max_concurrent, Some(1));
        assert_eq!(l.memory.max_concurrent, Some(3));
        assert_eq!(l.cpu.max_concurrent, None);
        let h = &l.health;
        assert_eq!(h.interval, Duration::from_millis(500));
        assert_eq!(h.min_mem_available, Some(MemThreshold::Bytes(512 << 20)));
        assert_eq!(h.max_psi_io_some_avg10, Some(40.0));
        assert_eq!(h.probes.len(), 3);
        assert_eq!(h.probes[0].failures, 2);
        assert_eq!(h.probes[1].failures, 3);
        assert_eq!(h.probes[1].timeout, Duration::from_secs(1));
        assert_eq!(
            h.describe(),
            vec![
                "MemAvailable below 536870912 bytes",
                "PSI io some avg10 above 40",
                "probe tcp 127.0.0.1:22 fails 2 times in a row (timeout 2s)",
                "probe http GET http://127.0.0.1:8080/healthz fails 3 times in a row (timeout 1s)",
                "probe command /bin/true fails 3 times in a row (timeout 2s)",
            ]
        );
        assert_eq!(
            MemThreshold::parse("5%").unwrap(),
            MemThreshold::Percent(5.0)
        );
        let e = parse("[health]\nmin_mem_available = \"12 parsecs\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "/etc/faultline/limits.toml:2: field health.min_mem_available: unknown unit"
            ),
            "{e}"
        );
        let e = parse("[health]\n[[health.probe]]\ntcp = \"x:1\"\nfailures = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/faultline/limits.toml:4: field health.probe[0].failures: must be at least 1"
        );
        let e = parse("[health]\nmax_psi_cpu_some_avg10 = 101\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":2: field health.max_psi_cpu_some_avg10"), "{e}");
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
