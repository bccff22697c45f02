//! Process faults: kill (one-shot or repeating) and pause (SIGSTOP, or freezing a whole
//! cgroup).
//!
//! Selection scans the process table, keeps what every selector field matches, removes
//! protected processes (pid 1, kernel threads, faultd and its ancestors, the limits
//! file's protected names, units and cgroups), then picks all, N or P % at random. Every
//! target is held by a pidfd opened and checked at selection time, so a recycled pid is
//! never signalled.

use nix::sys::signal::Signal;
use rand::seq::IndexedRandom;
use regex::Regex;

use super::Plan;
use super::values::{CgroupPath, Percent, UnitName};
use crate::error::FaultError;
use crate::host::Host;
use crate::sys::container::{Container, ContainerQuery};
use crate::sys::proc::{self, Delivery, PidFd, ProcInfo};

/// Which processes: every field that is set must match.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub pid: Option<i32>,
    pub name: Option<String>,
    pub cmdline: Option<Regex>,
    pub cgroup: Option<CgroupPath>,
    pub unit: Option<UnitName>,
    /// The user as given, and the uid it resolved to.
    pub user: Option<(String, u32)>,
    /// A container's processes (resolved from `/proc/*/cgroup` when planned).
    pub container: Option<ContainerQuery>,
}

impl PartialEq for Selector {
    fn eq(&self, o: &Selector) -> bool {
        self.pid == o.pid
            && self.name == o.name
            && self.cmdline.as_ref().map(Regex::as_str) == o.cmdline.as_ref().map(Regex::as_str)
            && self.cgroup == o.cgroup
            && self.unit == o.unit
            && self.user == o.user
            && self.container == o.container
    }
}

impl Selector {
    pub fn is_empty(&self) -> bool {
        self.pid.is_none()
            && self.name.is_none()
            && self.cmdline.is_none()
            && self.cgroup.is_none()
            && self.unit.is_none()
            && self.user.is_none()
            && self.container.is_none()
    }

    /// Only a cgroup, only a unit or only a container: the selector names a whole group.
    pub fn is_whole_group(&self) -> bool {
        [
            self.cgroup.is_some(),
            self.unit.is_some(),
            self.container.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count()
            == 1
            && self.pid.is_none()
            && self.name.is_none()
            && self.cmdline.is_none()
            && self.user.is_none()
    }

    /// In words: `pid 42, name "sleep"`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = self.pid {
            parts.push(format!("pid {p}"));
        }
        if let Some(n) = &self.name {
            parts.push(format!("name {n:?}"));
        }
        if let Some(r) = &self.cmdline {
            parts.push(format!("cmdline /{}/", r.as_str()));
        }
        if let Some(c) = &self.cgroup {
            parts.push(format!("cgroup {c}"));
        }
        if let Some(u) = &self.unit {
            parts.push(format!("unit {u}"));
        }
        if let Some((u, _)) = &self.user {
            parts.push(format!("user {u}"));
        }
        if let Some(c) = &self.container {
            parts.push(format!("container {c}"));
        }
        parts.join(", ")
    }

    fn matches(&self, p: &ProcInfo) -> bool {
        self.pid.is_none_or(|pid| pid == p.pid)
            && self.name.as_ref().is_none_or(|n| *n == p.comm)
            && self.cmdline.as_ref().is_none_or(|r| r.is_match(&p.cmdline))
            && self.user.as_ref().is_none_or(|(_, uid)| *uid == p.uid)
    }
}

/// How many of the matches to hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pick {
    All,
    Count(u32),
    Percent(Percent),
}

#[derive(Debug, Clone, PartialEq)]
pub struct KillSpec {
    pub selector: Selector,
    pub pick: Pick,
    pub signal: Signal,
    /// Repeat every so often for the fault's duration; `None` is one-shot.
    pub every: Option<std::time::Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PauseSpec {
    pub selector: Selector,
    pub pick: Pick,
}

/// A selected process, held by a checked pidfd.
#[derive(Debug)]
pub struct Target {
    pub info: ProcInfo,
    pub fd: PidFd,
}

/// Parses a signal: `KILL`, `SIGKILL`, `kill`, or a number (`9`).
pub fn parse_signal(text: &str) -> Result<Signal, FaultError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(Signal::SIGKILL);
    }
    if let Ok(n) = t.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| {
            FaultError::invalid(
                "signal",
                format!("{n} is not a signal number on Linux (1..=31)"),
            )
        });
    }
    let up = t.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>().map_err(|_| {
        FaultError::invalid(
            "signal",
            format!("unknown signal {t:?}; use a name like KILL, TERM, INT, HUP, USR1 or a number"),
        )
    })
}

/// Why a process may never be selected, if it is protected.
fn protection(p: &ProcInfo, host: &Host) -> Option<String> {
    if p.pid == 1 {
        return Some("pid 1 (init) is never selected".into());
    }
    if p.kthread {
        return Some("kernel thread".into());
    }
    if host.self_and_ancestors.contains(&p.pid) {
        return Some(if p.pid == std::process::id() as i32 {
            "faultd itself".into()
        } else {
            "an ancestor of faultd".into()
        });
    }
    let lim = &host.limits.process;
    if let Some(n) = lim
        .protected_processes
        .iter()
        .find(|n| **n == p.comm || *n == p.argv0_name() || (n.len() > 15 && n.starts_with(&p.comm)))
    {
        return Some(format!(
            "protected process {n:?} (limits: process.protected_processes)"
        ));
    }
    if !lim.protected_units.is_empty() || !lim.protected_cgroups.is_empty() {
        for path in proc_cgroup_paths(p.pid) {
            if let Some(u) = lim
                .protected_units
                .iter()
                .find(|u| path.split('/').any(|c| c == u.as_str()))
            {
                return Some(format!(
                    "in protected unit {u} (limits: process.protected_units)"
                ));
            }
            if let Some(c) = lim
                .protected_cgroups
                .iter()
                .find(|c| path == **c || path.starts_with(&format!("{}/", c.trim_end_matches('/'))))
            {
                return Some(format!(
                    "in protected cgroup {c} (limits: process.protected_cgroups)"
                ));
            }
        }
    }
    None
}

/// The cgroup paths of a process, one per hierarchy, from `/proc/PID/cgroup`.
fn proc_cgroup_paths(pid: i32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2).map(str::to_string))
        .collect()
}

/// Candidates for the selector, before protection and picking; with the container the
/// selector named, resolved (its processes are the candidates: conmon and the runtime's
/// shim are not in its cgroup).
fn candidates(
    sel: &Selector,
    host: &Host,
    field: &str,
) -> Result<(Vec<ProcInfo>, Option<Container>), FaultError> {
    let container = sel
        .container
        .as_ref()
        .map(|q| super::find_container(q, &format!("{field}.selector.container")))
        .transpose()?;
    let group = if let Some(c) = &sel.cgroup {
        Some(
            host.cgroups()?
                .resolve(c.as_str())
                .map_err(|e| FaultError::NotFound(e.to_string()))?,
        )
    } else if let Some(u) = &sel.unit {
        Some(
            host.cgroups()?
                .find_unit(u.as_str())
                .map_err(|e| FaultError::NotFound(e.to_string()))?,
        )
    } else {
        None
    };
    let in_group = match &group {
        Some(g) => Some(host.cgroups()?.procs_recursive(g).map_err(|e| {
            FaultError::Failed(format!("cannot list processes of {}: {e}", g.dir.display()))
        })?),
        None => None,
    };
    let mut procs = if let Some(c) = &container {
        c.pids()
            .into_iter()
            .filter(|pid| in_group.as_ref().is_none_or(|g| g.contains(pid)))
            .filter_map(|pid| proc::info(pid).ok())
            .collect()
    } else if let Some(pids) = in_group {
        pids.into_iter()
            .filter_map(|pid| proc::info(pid).ok())
            .collect()
    } else if let Some(pid) = sel.pid {
        match proc::info(pid) {
            Ok(i) => vec![i],
            Err(_) => vec![],
        }
    } else {
        proc::list().map_err(|e| FaultError::Failed(e.to_string()))?
    };
    procs.retain(|p| sel.matches(p));
    Ok((procs, container))
}

fn select(sel: &Selector, pick: Pick, host: &Host, field: &str) -> Result<Plan, FaultError> {
    let (matched, container) = candidates(sel, host, field)?;
    if matched.is_empty() {
        return Err(FaultError::NotFound(format!(
            "no process matches {}",
            sel.describe()
        )));
    }
    let mut eligible = Vec::new();
    let mut excluded = Vec::new();
    for p in matched {
        if p.state == 'Z' || p.state == 'X' {
            excluded.push((p, "already exited (zombie)".to_string()));
        } else if let Some(why) = protection(&p, host) {
            excluded.push((p, why));
        } else {
            eligible.push(p);
        }
    }
    if eligible.is_empty()
        && excluded
            .iter()
            .all(|(p, _)| p.state == 'Z' || p.state == 'X')
    {
        return Err(FaultError::NotFound(format!(
            "every process matching {} has already exited",
            sel.describe()
        )));
    }
    if eligible.is_empty() {
        let names: Vec<String> = excluded
            .iter()
            .map(|(p, why)| format!("pid {} ({}): {why}", p.pid, p.comm))
            .collect();
        return Err(FaultError::Protected(format!(
            "{} matches only protected processes: {}",
            sel.describe(),
            names.join("; ")
        )));
    }
    let n = eligible.len();
    let want = match pick {
        Pick::All => n,
        Pick::Count(c) => (c as usize).min(n),
        Pick::Percent(p) => ((n as f64 * p.get() / 100.0).ceil() as usize).clamp(1, n),
    };
    let mut rng = rand::rng();
    let chosen: Vec<i32> = eligible
        .choose_multiple(&mut rng, want)
        .map(|p| p.pid)
        .collect();
    let mut targets = Vec::new();
    for p in eligible {
        if !chosen.contains(&p.pid) {
            excluded.push((p, format!("not picked ({want} of {n} chosen at random)")));
            continue;
        }
        match PidFd::open_checked(p.pid, p.starttime) {
            Ok(fd) => targets.push(Target { info: p, fd }),
            Err(e) => excluded.push((p, format!("gone before it could be held: {e}"))),
        }
    }
    if targets.is_empty() {
        return Err(FaultError::NotFound(format!(
            "every process matching {} exited while being selected",
            sel.describe()
        )));
    }
    Ok(Plan {
        targets,
        excluded,
        freeze: None,
        description: String::new(),
        conflict_key: None,
        stress: None,
        fill: None,
        io: None,
        io_stress: None,
        container,
        netns: None,
        tc: None,
    })
}

/// ` in container 75bd73545e70 (podman)`, or nothing: the container a fault hit, for
/// its description (what `faultctl status` and `list` show).
fn in_container(c: &Option<Container>) -> String {
    match c {
        Some(c) => format!(" in container {} ({})", c.short_id(), c.runtime),
        None => String::new(),
    }
}

fn pid_list(ts: &[Target]) -> String {
    ts.iter()
        .map(|t| format!("{} ({})", t.info.pid, t.info.comm))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn plan_kill(k: &KillSpec, host: &Host) -> Result<Plan, FaultError> {
    let mut plan = select(&k.selector, k.pick, host, "spec.kill")?;
    plan.description = format!(
        "send {} to {}{}{}",
        k.signal.as_str(),
        pid_list(&plan.targets),
        in_container(&plan.container),
        match k.every {
            Some(e) => format!(
                ", then again every {} re-resolving {}",
                faultline_proto::units::format_duration(e),
                k.selector.describe()
            ),
            None => String::new(),
        }
    );
    Ok(plan)
}

pub fn plan_pause(p: &PauseSpec, host: &Host) -> Result<Plan, FaultError> {
    let mut plan = select(&p.selector, p.pick, host, "spec.pause")?;
    if p.selector.is_whole_group() && p.pick == Pick::All {
        // A whole group: freeze it, which also catches processes that fork meanwhile.
        // Every process in it must be eligible, or the freeze would hit a protected one.
        if let Some((pr, why)) = plan
            .excluded
            .iter()
            .find(|(_, why)| !why.starts_with("already exited"))
        {
            return Err(FaultError::Protected(format!(
                "cannot freeze {}: it holds pid {} ({}): {why}",
                p.selector.describe(),
                pr.pid,
                pr.comm
            )));
        }
        let cgs = host.cgroups()?;
        let group = match (&p.selector.cgroup, &p.selector.unit, &plan.container) {
            (Some(c), _, _) => cgs.resolve(c.as_str()),
            (_, Some(u), _) => cgs.find_unit(u.as_str()),
            // The container's group as /proc shows it (cgroup2 if it has one there, else
            // the freezer's or the first v1 hierarchy's).
            (_, _, Some(c)) => cgs.resolve(c.cgroup()),
            _ => unreachable!("is_whole_group"),
        }
        .map_err(|e| FaultError::NotFound(e.to_string()))?;
        plan.description = format!(
            "freeze cgroup {} ({} processes){}",
            group.dir.display(),
            plan.targets.len(),
            in_container(&plan.container)
        );
        plan.freeze = Some(group);
    } else {
        plan.description = format!(
            "SIGSTOP {}{}",
            pid_list(&plan.targets),
            in_container(&plan.container)
        );
    }
    Ok(plan)
}

pub fn apply_kill(k: &KillSpec, plan: Plan, _host: &Host) -> Result<super::Applied, FaultError> {
    let mut hit = Vec::new();
    let mut errors = Vec::new();
    for t in &plan.targets {
        match t.fd.signal(k.signal) {
            Ok(Delivery::Delivered) => hit.push(t.info.clone()),
            Ok(Delivery::AlreadyGone) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    if hit.is_empty() && !errors.is_empty() {
        return Err(FaultError::Failed(errors.join("; ")));
    }
    let description = format!(
        "sent {} to {}{}",
        k.signal.as_str(),
        hit.iter()
            .map(|p| format!("{} ({})", p.pid, p.comm))
            .collect::<Vec<_>>()
            .join(", "),
        in_container(&plan.container)
    );
    Ok(super::Applied {
        undo: if k.every.is_some() {
            super::Undo::StopLoop
        } else {
            super::Undo::Nothing
        },
        description,
        targets: hit,
    })
}

pub fn apply_pause(plan: Plan, host: &Host) -> Result<super::Applied, FaultError> {
    let targets: Vec<ProcInfo> = plan.target_infos();
    if let Some(group) = plan.freeze {
        let frozen = host.cgroups()?.freeze(&group).map_err(|e| {
            FaultError::Precondition(format!("cannot freeze {}: {e}", group.dir.display()))
        })?;
        return Ok(super::Applied {
            description: format!(
                "froze cgroup {}{}",
                frozen.dir.display(),
                in_container(&plan.container)
            ),
            undo: super::Undo::Thaw(frozen),
            targets,
        });
    }
    let mut stopped: Vec<Target> = Vec::new();
    let mut rest = plan.targets.into_iter();
    for t in rest.by_ref() {
        match t.fd.signal(Signal::SIGSTOP) {
            Ok(Delivery::Delivered) => stopped.push(t),
            Ok(Delivery::AlreadyGone) => {}
            Err(e) => {
                let undone = resume(&stopped);
                return Err(FaultError::Failed(format!(
                    "SIGSTOP to pid {} failed: {e}; {}",
                    t.info.pid,
                    match undone {
                        Ok(()) => format!("resumed the {} already stopped", stopped.len()),
                        Err(u) => format!("and resuming the others failed too: {u}"),
                    }
                )));
            }
        }
    }
    if stopped.is_empty() {
        return Err(FaultError::NotFound(
            "every selected process exited before it could be stopped".into(),
        ));
    }
    Ok(super::Applied {
        description: format!(
            "stopped {}{}",
            pid_list(&stopped),
            in_container(&plan.container)
        ),
        targets: stopped.iter().map(|t| t.info.clone()).collect(),
        undo: super::Undo::Resume(stopped),
    })
}

/// SIGCONT every target; exited ones count as resumed.
pub fn resume(ts: &[Target]) -> Result<(), FaultError> {
    let errors: Vec<String> = ts
        .iter()
        .filter_map(|t| t.fd.signal(Signal::SIGCONT).err().map(|e| e.to_string()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(FaultError::Failed(errors.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("hup").unwrap(), Signal::SIGHUP);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(
            parse_signal("BOGUS").unwrap_err().to_string(),
            "invalid signal: unknown signal \"BOGUS\"; use a name like KILL, TERM, INT, HUP, USR1 or a number"
        );
        assert!(
            parse_signal("99")
                .unwrap_err()
                .to_string()
                .contains("99 is not a signal number")
        );
    }

    #[test]
    fn whole_group_is_cgroup_or_unit_alone() {
        let mut s = Selector {
            cgroup: Some(CgroupPath::parse("/x").unwrap()),
            ..Default::default()
        };
        assert!(s.is_whole_group());
        s.name = Some("sleep".into());
        assert!(!s.is_whole_group());
        assert!(Selector::default().is_empty());
    }

    #[test]
    fn protects_pid1_self_and_ancestors() {
        let host = Host::for_tests();
        let init = proc::info(1).unwrap();
        assert!(protection(&init, &host).unwrap().contains("pid 1"));
        let me = proc::info(std::process::id() as i32).unwrap();
        assert_eq!(protection(&me, &host).unwrap(), "faultd itself");
        let parent = proc::info(me.ppid).unwrap();
        assert_eq!(protection(&parent, &host).unwrap(), "an ancestor of faultd");
    }

    #[test]
    fn selection_by_pid_protected_and_missing() {
        let host = Host::for_tests();
        let sel = Selector {
            pid: Some(1),
            ..Default::default()
        };
        let e = select(&sel, Pick::All, &host, "spec.kill").unwrap_err();
        assert!(matches!(e, FaultError::Protected(_)), "{e}");
        assert!(
            e.to_string().contains("pid 1 (init) is never selected"),
            "{e}"
        );
        let sel = Selector {
            pid: Some(i32::MAX - 7),
            ..Default::default()
        };
        assert!(matches!(
            select(&sel, Pick::All, &host, "spec.kill").unwrap_err(),
            FaultError::NotFound(_)
        ));
    }

    #[test]
    fn picks_count_and_percent_at_random() {
        let host = Host::for_tests();
        let tag = format!("faultline-pick-{}", std::process::id());
        let mut kids: Vec<_> = (0..4)
            .map(|_| {
                use std::os::unix::process::CommandExt;
                std::process::Command::new("sleep")
                    .arg0(&tag)
                    .arg("30")
                    .spawn()
                    .unwrap()
            })
            .collect();
        let cmd = Regex::new(&regex::escape(&tag)).unwrap();
        let sel = Selector {
            cmdline: Some(cmd),
            ..Default::default()
        };
        // The children show their own cmdline only once they have exec'd.
        for _ in 0..200 {
            if select(&sel, Pick::All, &host, "spec.kill")
                .map(|p| p.targets.len())
                .unwrap_or(0)
                == 4
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let p = select(&sel, Pick::Count(3), &host, "spec.kill").unwrap();
        assert_eq!(p.targets.len(), 3);
        assert_eq!(p.excluded.len(), 1);
        let p = select(
            &sel,
            Pick::Percent(Percent::share(50.0).unwrap()),
            &host,
            "spec.kill",
        )
        .unwrap();
        assert_eq!(p.targets.len(), 2);
        let p = select(
            &sel,
            Pick::Percent(Percent::share(1.0).unwrap()),
            &host,
            "spec.kill",
        )
        .unwrap();
        assert_eq!(p.targets.len(), 1);
        let p = select(&sel, Pick::All, &host, "spec.kill").unwrap();
        assert_eq!(p.targets.len(), 4);
        for k in &mut kids {
            let _ = k.kill();
            let _ = k.wait();
        }
    }
}
