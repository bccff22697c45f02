//! Scheduled drills as systemd timers (`faultctl schedule`). A drill NAME is:
//!
//! - `/etc/faultline/drills/NAME/`: root-owned, 0755; `scenario.yaml` (a copy of the
//!   scenario), `inventory.toml|yaml` (a copy of its inventory) and `drill.toml` (where
//!   the report goes, the signing key, the calendar: [`Drill`]);
//! - `faultline-drill@NAME.timer`: the packaged template timer (`Persistent=true`) with a
//!   drop-in `/etc/systemd/system/faultline-drill@NAME.timer.d/schedule.conf` that sets
//!   `OnCalendar=` and `RandomizedDelaySec=`;
//! - `faultline-drill@NAME.service`: the packaged template service, which runs
//!   `faultctl schedule exec NAME` = `faultctl run` of the copy, with its inventory, the
//!   report to `/var/lib/faultline/reports/NAME/` (or `--report-dir`) and the signing
//!   key. The run holds a lease on every node (as every `faultctl run`): if the service is
//!   killed, the agents revert on their own.
//!
//! `FAULTLINE_DRILLS_DIR` and `FAULTLINE_SYSTEMD_DIR` move the two directories (tests).
//! Bad input (a name that is no unit instance name, a calendar `systemd-analyze calendar`
//! refuses, a scenario or inventory that does not load, an unusable key) is refused
//! before anything is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::scenario::Scenario;
use crate::summary::NextRun;

/// Where drills live.
pub const DRILLS_DIR: &str = "/etc/faultline/drills";
/// Where the timers' drop-ins go.
pub const SYSTEMD_DIR: &str = "/etc/systemd/system";
/// Where scheduled reports go by default: `REPORTS_DIR/NAME/`.
pub const REPORTS_DIR: &str = "/var/lib/faultline/reports";

/// The drills directory in effect.
pub fn drills_dir() -> PathBuf {
    env_dir("FAULTLINE_DRILLS_DIR", DRILLS_DIR)
}

fn systemd_dir() -> PathBuf {
    env_dir("FAULTLINE_SYSTEMD_DIR", SYSTEMD_DIR)
}

fn env_dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// A drill's settings (`drill.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drill {
    pub name: String,
    /// The scenario's own name (reports carry it).
    pub scenario: String,
    /// Where the scenario was copied from.
    pub source: PathBuf,
    pub on_calendar: String,
    /// RandomizedDelaySec, in seconds.
    #[serde(default)]
    pub randomized_delay_s: u64,
    pub report_dir: PathBuf,
    #[serde(default)]
    pub sign_key: Option<PathBuf>,
    /// The inventory copy's file name in the drill directory.
    pub inventory: String,
}

/// Why a schedule command failed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// Bad input: nothing was installed.
    #[error("{0}")]
    Input(String),
    #[error("no drill {name:?} is scheduled ({} has no {name}/drill.toml; see faultctl schedule list)", dir.display())]
    NotFound { name: String, dir: PathBuf },
    #[error("cannot {what} {}: {source}{}", path.display(), perm_hint(source))]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Systemd(String),
}

fn perm_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        " (scheduling drills is for root: run it with sudo)"
    } else {
        ""
    }
}

impl ScheduleError {
    /// The exit code: 2 bad input, 4 unknown drill, 3 permission, 1 otherwise.
    pub fn exit_code(&self) -> crate::ExitCode {
        match self {
            ScheduleError::Input(_) => crate::ExitCode::BadInput,
            ScheduleError::NotFound { .. } => crate::ExitCode::NotFound,
            ScheduleError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                crate::ExitCode::Refused
            }
            _ => crate::ExitCode::Other,
        }
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ScheduleError {
    let path = path.to_path_buf();
    move |source| ScheduleError::Io { what, path, source }
}

/// A drill name must be a unit instance name as-is (no escaping): letters, digits, `-`,
/// `_`, `.`, at most 64 characters, not starting with `.` or `-`.
pub fn check_name(name: &str) -> Result<(), ScheduleError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let bad = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > 64 {
        Some(format!("it is {} characters long (at most 64)", name.len()))
    } else if let Some(c) = name.chars().find(|c| !ok_char(*c)) {
        Some(format!(
            "{c:?} is not allowed (letters, digits, '-', '_' and '.' only: it becomes the unit instance faultline-drill@NAME)"
        ))
    } else if name.starts_with('.') || name.starts_with('-') {
        Some("it starts with '.' or '-'".into())
    } else {
        None
    };
    match bad {
        Some(why) => Err(ScheduleError::Input(format!(
            "invalid drill NAME {name:?}: {why}"
        ))),
        None => Ok(()),
    }
}

/// Checks a calendar spec as systemd reads it: `systemd-analyze calendar SPEC`.
/// Returns systemd's normalized form and the next elapse it prints.
pub fn check_calendar(spec: &str) -> Result<String, ScheduleError> {
    if spec.trim().is_empty() || spec.contains('\n') {
        return Err(ScheduleError::Input(format!(
            "invalid --on-calendar {spec:?}: empty, or more than one line"
        )));
    }
    let out = Command::new("systemd-analyze")
        .args(["calendar", spec])
        .output()
        .map_err(|e| {
            ScheduleError::Systemd(format!(
                "cannot check --on-calendar: cannot run systemd-analyze ({e}); schedules need systemd"
            ))
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        return Err(ScheduleError::Input(format!(
            "invalid --on-calendar {spec:?}: systemd-analyze calendar says: {} (examples: daily, \"*-*-* 02:00:00 UTC\", \"Tue *-*-* 14:00\", hourly)",
            why.trim()
        )));
    }
    let normalized = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Normalized form:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| spec.to_string());
    Ok(normalized)
}

/// `--randomized-delay`: a duration (`10m`, `90s`), in whole seconds.
pub fn parse_delay(text: &str) -> Result<u64, ScheduleError> {
    humantime::parse_duration(text.trim())
        .map(|d| d.as_secs())
        .map_err(|e| {
            ScheduleError::Input(format!(
                "invalid --randomized-delay {text:?}: {e} (a duration: 90s, 10m, 1h)"
            ))
        })
}

/// What `schedule add` asks for.
#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    pub name: String,
    pub file: PathBuf,
    pub on_calendar: String,
    pub randomized_delay: Option<String>,
    pub report_dir: Option<PathBuf>,
    pub sign_key: Option<PathBuf>,
    /// Overrides the scenario's inventory.
    pub inventory: Option<PathBuf>,
}

fn drop_in_dir(name: &str) -> PathBuf {
    systemd_dir().join(format!("faultline-drill@{name}.timer.d"))
}

/// The timer drop-in of a drill.
pub fn drop_in(d: &Drill) -> String {
    format!(
        "# Written by faultctl schedule add {name}; removed by faultctl schedule remove {name}.\n\
         [Timer]\nOnCalendar={cal}\nRandomizedDelaySec={delay}\n",
        name = d.name,
        cal = d.on_calendar,
        delay = d.randomized_delay_s
    )
}

/// Checks everything, then installs the drill and starts its timer. Nothing is written
/// when a check fails.
pub fn add(o: &AddOptions) -> Result<Drill, ScheduleError> {
    check_name(&o.name)?;
    let dir = drills_dir().join(&o.name);
    if dir.join("drill.toml").exists() {
        return Err(ScheduleError::Input(format!(
            "drill {:?} is already scheduled: faultctl schedule remove {} first",
            o.name, o.name
        )));
    }
    let on_calendar = check_calendar(&o.on_calendar)?;
    let randomized_delay_s = o
        .randomized_delay
        .as_deref()
        .map(parse_delay)
        .transpose()?
        .unwrap_or(0);
    let sc = Scenario::load(&o.file).map_err(|e| ScheduleError::Input(e.to_string()))?;
    let inv_src = match (&o.inventory, &sc.inventory) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => o.file.parent().unwrap_or(Path::new(".")).join(p),
        (None, None) => {
            return Err(ScheduleError::Input(format!(
                "invalid scenario {}: it names no inventory (add `inventory: FILE` or pass --inventory)",
                o.file.display()
            )));
        }
    };
    crate::inventory::Inventory::load(&inv_src).map_err(|e| ScheduleError::Input(e.to_string()))?;
    let sign_key = match &o.sign_key {
        None => None,
        Some(k) => {
            crate::sign::ReportSigner::from_file(k, None)
                .map_err(|e| ScheduleError::Input(format!("invalid --sign-key: {e}")))?;
            Some(std::path::absolute(k).map_err(io("resolve", k))?)
        }
    };
    let report_dir = match &o.report_dir {
        Some(d) => std::path::absolute(d).map_err(io("resolve", d))?,
        None => Path::new(REPORTS_DIR).join(&o.name),
    };
    let inv_ext = match inv_src.extension().and_then(|e| e.to_str()) {
        Some("yaml") => "yaml",
        Some("yml") => "yml",
        _ => "toml",
    };
    let d = Drill {
        name: o.name.clone(),
        scenario: sc.name.clone(),
        source: std::path::absolute(&o.file).map_err(io("resolve", &o.file))?,
        on_calendar,
        randomized_delay_s,
        report_dir,
        sign_key,
        inventory: format!("inventory.{inv_ext}"),
    };
    // Install: the drill directory, the drop-in, then systemd. On a failure, what was
    // written is taken back.
    let install = || -> Result<(), ScheduleError> {
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let copy = |from: &Path, to: &Path| std::fs::copy(from, to).map_err(io("copy to", to));
        copy(&o.file, &dir.join("scenario.yaml"))?;
        copy(&inv_src, &dir.join(&d.inventory))?;
        let toml = toml::to_string(&d).expect("plain data");
        let f = dir.join("drill.toml");
        std::fs::write(&f, toml).map_err(io("write", &f))?;
        let dd = drop_in_dir(&o.name);
        std::fs::create_dir_all(&dd).map_err(io("create", &dd))?;
        let f = dd.join("schedule.conf");
        std::fs::write(&f, drop_in(&d)).map_err(io("write", &f))?;
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", "--now", &timer(&o.name)])?;
        Ok(())
    };
    if let Err(e) = install() {
        let _ = remove_files(&o.name);
        let _ = systemctl(&["daemon-reload"]);
        return Err(e);
    }
    Ok(d)
}

/// `faultline-drill@NAME.timer`.
pub fn timer(name: &str) -> String {
    format!("faultline-drill@{name}.timer")
}

/// `faultline-drill@NAME.service`.
pub fn service(name: &str) -> String {
    format!("faultline-drill@{name}.service")
}

fn systemctl(args: &[&str]) -> Result<String, ScheduleError> {
    let out = Command::new("systemctl").args(args).output().map_err(|e| {
        ScheduleError::Systemd(format!("cannot run systemctl {}: {e}", args.join(" ")))
    })?;
    if !out.status.success() {
        return Err(ScheduleError::Systemd(format!(
            "systemctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn remove_files(name: &str) -> Result<(), ScheduleError> {
    let dir = drills_dir().join(name);
    let dd = drop_in_dir(name);
    for d in [&dir, &dd] {
        match std::fs::remove_dir_all(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", d)(e)),
        }
    }
    Ok(())
}

/// The drill NAME's settings.
pub fn load(name: &str) -> Result<Drill, ScheduleError> {
    check_name(name)?;
    let dir = drills_dir();
    let f = dir.join(name).join("drill.toml");
    let text = match std::fs::read_to_string(&f) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ScheduleError::NotFound {
                name: name.into(),
                dir,
            });
        }
        Err(e) => return Err(io("read", &f)(e)),
    };
    toml::from_str(&text)
        .map_err(|e| ScheduleError::Input(format!("{} is malformed: {e}", f.display())))
}

/// Stops and disables the timer, removes the drop-in and the drill directory. The
/// reports stay.
pub fn remove(name: &str) -> Result<Drill, ScheduleError> {
    let d = load(name)?;
    // A drill that is running now is stopped (its faults are reverted by the run's end).
    systemctl(&["disable", "--now", &timer(name)])?;
    let _ = systemctl(&["stop", &service(name)]);
    remove_files(name)?;
    // The last drill takes its directory along (so that purging the package can remove
    // /etc/faultline).
    let _ = std::fs::remove_dir(drills_dir());
    systemctl(&["daemon-reload"])?;
    let _ = systemctl(&["reset-failed", &timer(name), &service(name)]);
    Ok(d)
}

/// Starts the drill's service now (`systemctl start`, which waits until the run ends).
pub fn run_now(name: &str) -> Result<Drill, ScheduleError> {
    let d = load(name)?;
    // The run's own result is in its report and the journal; a failed drill is not a
    // failed `schedule run`... but systemctl start says so, and so do we.
    systemctl(&["start", &service(name)])?;
    Ok(d)
}

/// A drill as `schedule list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub drill: Drill,
    /// The next run as systemd computes it (None: the timer is not active).
    pub next_at_ms: Option<u64>,
    pub last_run: Option<crate::summary::LastRun>,
}

/// Every drill, with its next run and its last result.
pub fn list() -> Result<Vec<Listed>, ScheduleError> {
    let dir = drills_dir();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read", &dir)(e)),
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("drill.toml").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        let d = load(&n)?;
        let last_run = if d.report_dir.is_dir() {
            crate::summary::summarize(&crate::summary::Options {
                dirs: vec![d.report_dir.clone()],
                ..Default::default()
            })
            .ok()
            .and_then(|s| {
                s.scenarios
                    .into_iter()
                    .find(|e| e.scenario == d.scenario)
                    .and_then(|e| e.last_run)
            })
        } else {
            None
        };
        out.push(Listed {
            next_at_ms: next_elapse(&n),
            drill: d,
            last_run,
        });
    }
    Ok(out)
}

/// The timer's next elapse, as systemd computes it: `systemctl show` (in UTC, read as
/// printed, or `@SECONDS` where it honors --timestamp=unix), else the manager's property
/// over D-Bus (busctl).
pub fn next_elapse(name: &str) -> Option<u64> {
    let shown = Command::new("systemctl")
        .env("TZ", "UTC")
        .args([
            "show",
            "--timestamp=unix",
            "--property=NextElapseUSecRealtime",
            "--value",
            &timer(name),
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| parse_shown_time(String::from_utf8_lossy(&o.stdout).trim()));
    shown.or_else(|| {
        let out = Command::new("busctl")
            .args([
                "get-property",
                "org.freedesktop.systemd1",
                &bus_path(&timer(name)),
                "org.freedesktop.systemd1.Timer",
                "NextElapseUSecRealtime",
            ])
            .output()
            .ok()?;
        let usec: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .strip_prefix("t ")?
            .parse()
            .ok()?;
        (usec > 0).then_some(usec / 1000)
    })
}

/// A time as `systemctl show` prints it: `@1733018400` (--timestamp=unix), or
/// `Tue 2026-12-01 02:00:00 UTC` (TZ=UTC); in milliseconds. None for `n/a`, empty, 0.
fn parse_shown_time(s: &str) -> Option<u64> {
    if let Some(secs) = s.strip_prefix('@') {
        let secs: u64 = secs.parse().ok()?;
        return (secs > 0).then_some(secs * 1000);
    }
    let mut w = s.split_whitespace();
    let (_dow, date, time, zone) = (w.next()?, w.next()?, w.next()?, w.next()?);
    if zone != "UTC" || w.next().is_some() {
        return None;
    }
    let st = humantime::parse_rfc3339_weak(&format!("{date} {time}")).ok()?;
    let ms = st.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    (ms > 0).then_some(ms)
}

/// The manager's object path of a unit (sd-bus escaping: every byte but ASCII
/// letters and digits becomes `_XX`).
fn bus_path(unit: &str) -> String {
    let mut p = String::from("/org/freedesktop/systemd1/unit/");
    for b in unit.bytes() {
        if b.is_ascii_alphanumeric() {
            p.push(b as char);
        } else {
            p.push_str(&format!("_{b:02x}"));
        }
    }
    p
}

/// Scenario name to its drills' next runs, for `report summary`. Empty where there
/// are no drills on this host.
pub fn next_runs() -> BTreeMap<String, Vec<NextRun>> {
    let mut m: BTreeMap<String, Vec<NextRun>> = BTreeMap::new();
    for l in list().unwrap_or_default() {
        m.entry(l.drill.scenario.clone())
            .or_default()
            .push(NextRun {
                schedule: l.drill.name.clone(),
                next_at_ms: l.next_at_ms,
            });
    }
    m
}

/// The `faultctl run` options of the drill NAME (`faultctl schedule exec NAME`, the
/// service's ExecStart).
pub fn run_options(
    name: &str,
    format: crate::render::Format,
) -> Result<crate::scenario::RunOptions, ScheduleError> {
    let d = load(name)?;
    let dir = drills_dir().join(name);
    Ok(crate::scenario::RunOptions {
        file: dir.join("scenario.yaml"),
        report_dir: d.report_dir.clone(),
        sign_key: d.sign_key.clone(),
        inventory: Some(dir.join(&d.inventory)),
        format,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unit_instance_names() {
        for ok in ["latency-nightly", "cpu_tue", "db.delay", "A1"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "-x", ".x", "a b", "a/b", "a@b", "ü", &"x".repeat(65)] {
            let e = check_name(bad).unwrap_err();
            assert!(e.to_string().contains("invalid drill NAME"), "{e}");
        }
    }

    #[test]
    fn timestamps_and_drop_in() {
        assert_eq!(parse_shown_time("@1733018400"), Some(1_733_018_400_000));
        assert_eq!(
            parse_shown_time("Tue 2026-12-01 02:00:00 UTC"),
            Some(1_796_090_400_000)
        );
        assert_eq!(parse_shown_time("Tue 2026-12-01 02:00:00 CET"), None);
        assert_eq!(parse_shown_time(""), None);
        assert_eq!(parse_shown_time("n/a"), None);
        assert_eq!(
            bus_path("faultline-drill@a.timer"),
            "/org/freedesktop/systemd1/unit/faultline_2ddrill_40a_2etimer"
        );
        let d = Drill {
            name: "n".into(),
            scenario: "s".into(),
            source: "/x.yaml".into(),
            on_calendar: "*-*-* 02:00:00 UTC".into(),
            randomized_delay_s: 600,
            report_dir: "/r".into(),
            sign_key: None,
            inventory: "inventory.toml".into(),
        };
        assert!(
            drop_in(&d)
                .contains("[Timer]\nOnCalendar=*-*-* 02:00:00 UTC\nRandomizedDelaySec=600\n")
        );
        assert_eq!(parse_delay("10m").unwrap(), 600);
        assert!(parse_delay("soon").is_err());
    }

    /// Needs systemd-analyze (the package systemd): skipped, saying so, without it.
    #[test]
    fn calendars_are_checked_by_systemd() {
        if Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped: no systemd-analyze on this host");
            return;
        }
        assert_eq!(check_calendar("daily").unwrap(), "*-*-* 00:00:00");
        let e = check_calendar("every tuesday-ish").unwrap_err();
        assert!(
            e.to_string().contains("systemd-analyze calendar says"),
            "{e}"
        );
        assert!(check_calendar("").is_err());
    }
}
