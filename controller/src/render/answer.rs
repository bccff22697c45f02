//! Each command's answer as a table or a sentence ([`answer_table`]), and as one line of
//! a fleet table ([`summary`]).

use faultline_proto::units::{format_duration, format_ms, format_rate};
use faultline_proto::v1::{
    Container, Event, Fault, InjectResponse, Lease, Limits, ProcessTarget, RevertAllResponse,
    RevertResult, StatusResponse, StressLimits,
};

use super::{
    Table, absolute, event_name, kind_name, kv, list_or_dash, or_dash, plural, relative, spec_text,
    state_name, when,
};
use crate::answer::{Answer, HoldEnd, LeaseClosed, NodeResult};

/// A resolved container: what a dry run shows of it.
pub fn container_text(c: &Container) -> String {
    let procs: Vec<String> = c
        .processes
        .iter()
        .map(|p| format!("{} ({})", p.pid, p.comm))
        .collect();
    let pod = if c.pod_uid.is_empty() {
        String::new()
    } else {
        format!(", pod {}", c.pod_uid)
    };
    let netns = match (c.netns_inode, c.host_network) {
        (0, _) => "unknown (its namespace link could not be read)".to_string(),
        (i, true) => format!(
            "net:[{i}] of pid {}, the agent's own (host network)",
            c.netns_pid
        ),
        (i, false) => format!("net:[{i}] of pid {}", c.netns_pid),
    };
    kv(&[
        (
            "container",
            format!("{} ({}, {} driver{pod})", c.id, c.runtime, c.driver),
        ),
        ("  cgroup", c.cgroup.clone()),
        ("  processes", list_or_dash(&procs)),
        ("  netns", netns),
    ])
}

fn labels_text(f: &Fault) -> String {
    let mut l: Vec<_> = f.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    l.sort();
    list_or_dash(&l)
}

fn pids_text(targets: &[ProcessTarget]) -> String {
    if targets.is_empty() {
        return "-".into();
    }
    let mut s: Vec<String> = targets.iter().take(4).map(|t| t.pid.to_string()).collect();
    if targets.len() > 4 {
        s.push(format!("(+{})", targets.len() - 4));
    }
    s.join(",")
}

fn fault_when(f: &Fault, now_ms: u64) -> String {
    if f.ended_at_ms > 0 {
        format!("ended {}", relative(f.ended_at_ms, now_ms))
    } else if f.expires_at_ms > 0 {
        format!("ends {}", relative(f.expires_at_ms, now_ms))
    } else {
        "-".into()
    }
}

/// Faults as a table: ID, KIND, STATE, PIDS, WHEN, LABELS, DESCRIPTION.
pub fn faults_table(faults: &[Fault], now_ms: u64) -> String {
    if faults.is_empty() {
        return "no faults\n".into();
    }
    let mut t = Table::new(&[
        "ID",
        "KIND",
        "STATE",
        "PIDS",
        "WHEN",
        "LABELS",
        "DESCRIPTION",
    ]);
    for f in faults {
        t.row(vec![
            f.id.clone(),
            kind_name(f.kind),
            state_name(f.state),
            pids_text(&f.targets),
            fault_when(f, now_ms),
            labels_text(f),
            or_dash(&f.description),
        ]);
    }
    t.render(0)
}

fn targets_table(targets: &[ProcessTarget], indent: usize) -> String {
    let mut t = Table::new(&["PID", "COMM", "UID", "CMDLINE"]);
    for p in targets {
        t.row(vec![
            p.pid.to_string(),
            p.comm.clone(),
            p.uid.to_string(),
            p.cmdline.clone(),
        ]);
    }
    t.render(indent)
}

/// One fault in full (`faultctl get`).
pub fn fault_detail(f: &Fault, now_ms: u64) -> String {
    let mut pairs = vec![
        ("id", f.id.clone()),
        ("kind", kind_name(f.kind)),
        ("state", state_name(f.state)),
        ("spec", spec_text(f.spec.as_ref())),
        ("description", or_dash(&f.description)),
        ("undo", or_dash(&f.undo)),
        ("labels", labels_text(f)),
        ("requested by", or_dash(&f.requested_by)),
        ("lease", or_dash(&f.lease_id)),
        (
            "duration",
            if f.duration_ms > 0 {
                format_ms(f.duration_ms)
            } else {
                "-".into()
            },
        ),
        ("created", when(f.created_at_ms, now_ms)),
        ("expires", when(f.expires_at_ms, now_ms)),
    ];
    if f.ended_at_ms > 0 || !f.end_reason.is_empty() {
        pairs.push(("ended", when(f.ended_at_ms, now_ms)));
        pairs.push(("end reason", or_dash(&f.end_reason)));
    }
    let mut out = kv(&pairs);
    if let Some(c) = &f.container {
        out.push_str(&container_text(c));
    }
    if f.targets.is_empty() {
        out.push_str("targets       none\n");
    } else {
        out.push_str(&format!("targets ({})\n", f.targets.len()));
        out.push_str(&targets_table(&f.targets, 2));
    }
    out
}

/// `faultctl status`.
pub fn status_table(s: &StatusResponse, now_ms: u64) -> String {
    let up = if s.started_at_ms > 0 && now_ms >= s.started_at_ms {
        format!(
            ", up {}",
            format_ms((now_ms - s.started_at_ms) / 1000 * 1000)
        )
    } else {
        String::new()
    };
    let mut out = kv(&[
        (
            "agent",
            format!("faultd {} (pid {}{up})", or_dash(&s.agent_version), s.pid),
        ),
        ("host", or_dash(&s.hostname)),
        ("kernel", or_dash(&s.kernel_release)),
        ("cgroups", or_dash(&s.cgroup_mode)),
        ("limits", or_dash(&s.limits_source)),
        (
            "protected",
            if s.protected_traffic.is_empty() {
                "-".to_string()
            } else {
                format!(
                    "network faults spare {} (and a TCP caller's own connection)",
                    s.protected_traffic
                )
            },
        ),
    ]);
    out.push('\n');
    let mut t = Table::new(&["KIND", "SUPPORTED", "DETAIL"]);
    for k in &s.kinds {
        t.row(vec![
            kind_name(k.kind),
            if k.supported { "yes" } else { "no" }.into(),
            or_dash(&k.detail),
        ]);
    }
    out.push_str(&t.render(0));
    out.push('\n');
    match s.active.len() {
        0 => out.push_str("no active faults\n"),
        n => {
            out.push_str(&format!(
                "{n} active fault{}\n",
                if n == 1 { "" } else { "s" }
            ));
            out.push_str(&faults_table(&s.active, now_ms));
        }
    }
    out
}

fn stress_text(s: Option<&StressLimits>) -> String {
    match s {
        None => "-".into(),
        Some(s) => format!(
            "at most {}% for at most {}{}",
            s.max_percent,
            format_ms(s.max_duration_ms),
            at_once(s.max_concurrent)
        ),
    }
}

fn at_once(n: u32) -> String {
    match n {
        0 => String::new(),
        n => format!(", {n} at once"),
    }
}

fn own_limit(n: u32) -> String {
    match n {
        0 => "only the global limit".into(),
        n => n.to_string(),
    }
}

/// `faultctl limits`: every limit of the message, one row each.
pub fn limits_table(l: &Limits) -> String {
    let n = l.network.clone().unwrap_or_default();
    let net = |set: bool, v: String| if set { v } else { "-".to_string() };
    let pct = |v: f64| net(l.network.is_some(), format!("{v}%"));
    kv(&[
        ("profile", or_dash(&l.profile)),
        ("source", or_dash(&l.source)),
        ("max duration", format_ms(l.max_duration_ms)),
        ("max concurrent faults", l.max_concurrent_faults.to_string()),
        ("max process faults", own_limit(l.process_max_concurrent)),
        ("max network faults", own_limit(l.network_max_concurrent)),
        ("max kills per minute", l.max_kills_per_minute.to_string()),
        (
            "network max delay",
            net(l.network.is_some(), format_ms(n.max_delay_ms)),
        ),
        (
            "network max jitter",
            net(l.network.is_some(), format_ms(n.max_jitter_ms)),
        ),
        ("network max loss", pct(n.max_loss_percent)),
        ("network max duplicate", pct(n.max_duplicate_percent)),
        ("network max corrupt", pct(n.max_corrupt_percent)),
        ("network max reorder", pct(n.max_reorder_percent)),
        (
            "network min rate",
            net(
                l.network.is_some() && n.min_rate_bits_per_sec > 0,
                format_rate(n.min_rate_bits_per_sec),
            ),
        ),
        (
            "network blackholes",
            net(
                l.network.is_some(),
                if n.allow_blackhole {
                    "allowed"
                } else {
                    "refused"
                }
                .into(),
            ),
        ),
        (
            "protected ports",
            net(
                l.network.is_some(),
                list_or_dash(
                    &n.protected_ports
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>(),
                ),
            ),
        ),
        (
            "protected cidrs",
            net(l.network.is_some(), list_or_dash(&n.protected_cidrs)),
        ),
        ("cpu stress", stress_text(l.cpu.as_ref())),
        ("memory stress", stress_text(l.memory.as_ref())),
        (
            "disk fill",
            match &l.disk {
                None => "-".into(),
                Some(d) => format!(
                    "up to {}% used, at least {} left free, {} max, {}; protected: faultd's state dir's filesystem{}",
                    d.max_used_percent,
                    faultline_proto::units::format_size(d.min_free_bytes),
                    format_ms(d.max_duration_ms),
                    match d.max_concurrent {
                        0 => "concurrency: only the global limit".to_string(),
                        n => format!("at most {n} at once"),
                    },
                    if d.protected_paths.is_empty() {
                        String::new()
                    } else {
                        format!(" and {}", d.protected_paths.join(", "))
                    }
                ),
            },
        ),
        (
            "io limit",
            match &l.io {
                None => "-".into(),
                Some(i) => format!(
                    "at least {}/s and {} iops, {} max, {}",
                    faultline_proto::units::format_size(i.min_bps),
                    i.min_iops,
                    format_ms(i.max_duration_ms),
                    match i.max_concurrent {
                        0 => "concurrency: only the global limit".to_string(),
                        n => format!("at most {n} at once"),
                    }
                ),
            },
        ),
        (
            "io stress",
            match &l.io {
                None => "-".into(),
                Some(i) if i.stress_max_workers == 0 => "-".into(),
                Some(i) => format!(
                    "at most {} workers, at most {}/s read and write",
                    i.stress_max_workers,
                    faultline_proto::units::format_size(i.stress_max_bps)
                ),
            },
        ),
        (
            "lease required",
            if l.require_lease { "yes" } else { "no" }.into(),
        ),
        (
            "max lease ttl",
            match l.max_lease_ttl_ms {
                0 => "-".into(),
                ms => format_ms(ms),
            },
        ),
        ("protected processes", list_or_dash(&l.protected_processes)),
        ("protected units", list_or_dash(&l.protected_units)),
        ("protected cgroups", list_or_dash(&l.protected_cgroups)),
        (
            "protected interfaces",
            list_or_dash(&l.protected_interfaces),
        ),
        (
            "health guard",
            if l.health_conditions.is_empty() {
                "off".to_string()
            } else {
                format!(
                    "every {}: abort when {}",
                    format_ms(l.health_interval_ms),
                    l.health_conditions.join("; or ")
                )
            },
        ),
    ])
}

pub fn inject_table(r: &InjectResponse, now_ms: u64) -> String {
    let mut out = String::new();
    if r.dry_run {
        out.push_str("dry run: nothing was changed\n");
    } else if let Some(f) = &r.fault {
        out.push_str(&format!(
            "injected {} ({}, {}, {})\n",
            f.id,
            kind_name(f.kind),
            state_name(f.state),
            fault_when(f, now_ms)
        ));
    }
    if !r.plan.is_empty() {
        out.push_str(&format!("plan: {}\n", r.plan));
    }
    if let Some(c) = &r.container {
        out.push_str(&container_text(c));
    }
    // Only process faults hit processes: a network or stress fault lists none.
    if !r.targets.is_empty() {
        let n = r.targets.len();
        out.push_str(&format!(
            "\n{} {n} process{}:\n",
            if r.dry_run { "would hit" } else { "hit" },
            if n == 1 { "" } else { "es" }
        ));
        out.push_str(&targets_table(&r.targets, 2));
    }
    if !r.excluded.is_empty() {
        out.push_str(&format!("\nleft alone {}:\n", r.excluded.len()));
        let mut t = Table::new(&["PID", "COMM", "UID", "REASON", "CMDLINE"]);
        for e in &r.excluded {
            let p = e.process.clone().unwrap_or_default();
            t.row(vec![
                p.pid.to_string(),
                p.comm,
                p.uid.to_string(),
                e.reason.clone(),
                p.cmdline,
            ]);
        }
        out.push_str(&t.render(2));
    }
    out
}

/// `faultctl abort`: one row per fault.
pub fn abort_table(r: &RevertAllResponse) -> String {
    if r.results.is_empty() {
        return "no active faults: nothing to revert\n".into();
    }
    let mut t = Table::new(&["ID", "RESULT", "ERROR"]);
    for x in &r.results {
        t.row(vec![
            x.id.clone(),
            if x.ok { "reverted" } else { "FAILED" }.into(),
            or_dash(&x.error),
        ]);
    }
    let ok = r.results.iter().filter(|x| x.ok).count();
    format!(
        "{}\nreverted {ok} of {} fault{} in {}\n",
        t.render(0),
        r.results.len(),
        if r.results.len() == 1 { "" } else { "s" },
        format_ms(r.elapsed_us / 1000)
    )
}

/// `faultctl watch`: one line per event.
pub fn event_line(e: &Event) -> String {
    let by = if e.requested_by.is_empty() {
        String::new()
    } else {
        format!(" [by {}]", e.requested_by)
    };
    format!(
        "{}  {:<8}  {:<12}  {:<7}  {}{by}",
        absolute(e.at_ms),
        event_name(e.r#type),
        or_dash(&e.fault_id),
        kind_name(e.kind),
        e.message
    )
}

fn revert_lines(results: &[RevertResult], indent: &str) -> String {
    results
        .iter()
        .map(|x| match x.ok {
            true => format!("{indent}reverted {}\n", x.id),
            false => format!("{indent}FAILED to revert {}: {}\n", x.id, x.error),
        })
        .collect()
}

/// `faultctl lease close`.
fn lease_closed_text(c: &LeaseClosed) -> String {
    format!(
        "closed {}\n{}",
        c.id,
        revert_lines(&c.response.results, "  ")
    )
}

/// `faultctl inject --hold`: the line printed once the inject is in and held.
pub fn holding_line(lease_id: &str, ttl_ms: u64) -> String {
    format!(
        "holding lease {lease_id} (ttl {}): Ctrl-C reverts the fault\n",
        format_ms(ttl_ms)
    )
}

/// How a held fault ended, in lines.
pub fn hold_end_text(end: &HoldEnd) -> String {
    match end {
        HoldEnd::Nothing => String::new(),
        HoldEnd::Ended { fault } => format!(
            "{} ended: {} ({})\n",
            fault.id,
            state_name(fault.state),
            fault.end_reason
        ),
        HoldEnd::Reverted { results } => revert_lines(results, ""),
    }
}

/// A command's answer for people.
pub fn answer_table(a: &Answer, now_ms: u64) -> String {
    match a {
        Answer::Status(s) => status_table(s, now_ms),
        Answer::Limits(l) => limits_table(l),
        Answer::List(l) => faults_table(&l.faults, now_ms),
        Answer::Fault(f) => fault_detail(f, now_ms),
        Answer::Reverted(r) => {
            let f = r.fault.clone().unwrap_or_default();
            format!("reverted {}\n\n{}", f.id, fault_detail(&f, now_ms))
        }
        Answer::Aborted(r) => abort_table(r),
        Answer::Injected(r) => inject_table(r, now_ms),
        Answer::Held(h) => format!(
            "{}{}",
            inject_table(&h.inject, now_ms),
            hold_end_text(&h.end)
        ),
        Answer::LeaseOpened(l) => format!("{}\n", l.id),
        Answer::LeaseRenewed(l) => format!(
            "renewed {} until {} ({} fault{} bound)\n",
            l.id,
            absolute(l.expires_at_ms),
            l.fault_ids.len(),
            plural(l.fault_ids.len())
        ),
        Answer::LeaseClosed(c) => lease_closed_text(c),
    }
}

/// A command's answer in one line, for a fleet table.
pub fn summary(a: &Answer) -> String {
    match a {
        Answer::Status(s) => format!(
            "{} faultd {} kernel {} cgroup {}, {} active",
            s.hostname,
            s.agent_version,
            s.kernel_release,
            s.cgroup_mode,
            s.active.len()
        ),
        Answer::Limits(l) => format!(
            "profile {}, max duration {}ms, max {} faults",
            l.profile, l.max_duration_ms, l.max_concurrent_faults
        ),
        Answer::List(l) if l.faults.is_empty() => "no faults".into(),
        Answer::List(l) => format!(
            "{} faults: {}",
            l.faults.len(),
            l.faults
                .iter()
                .map(|f| format!("{} ({})", f.id, state_name(f.state)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Answer::Fault(f) => format!("{} {}", f.id, state_name(f.state)),
        Answer::Reverted(r) => {
            let f = r.fault.clone().unwrap_or_default();
            format!("reverted {} ({})", f.id, state_name(f.state))
        }
        Answer::Aborted(r) => format!("{} faults reverted", r.results.len()),
        Answer::Injected(r) => inject_summary(r),
        Answer::Held(h) => {
            let end = match &h.end {
                HoldEnd::Nothing => String::new(),
                HoldEnd::Ended { fault } => format!("; ended {}", state_name(fault.state)),
                HoldEnd::Reverted { results } => format!(
                    "; reverted {} of {}",
                    results.iter().filter(|x| x.ok).count(),
                    results.len()
                ),
            };
            format!("{}{end}", inject_summary(&h.inject))
        }
        Answer::LeaseOpened(l) | Answer::LeaseRenewed(l) => format!(
            "lease {} until {} ({} fault{} bound)",
            l.id,
            absolute(l.expires_at_ms),
            l.fault_ids.len(),
            plural(l.fault_ids.len())
        ),
        Answer::LeaseClosed(c) => format!(
            "closed {}, {} reverted",
            c.id,
            c.response.results.iter().filter(|x| x.ok).count()
        ),
    }
}

fn inject_summary(r: &InjectResponse) -> String {
    let pids: Vec<String> = r.targets.iter().map(|t| t.pid.to_string()).collect();
    let what = match (&r.fault, r.dry_run) {
        (_, true) => "dry run: would hit".to_string(),
        (Some(f), false) => format!("{} hit", f.id),
        (None, false) => "hit".to_string(),
    };
    if pids.is_empty() {
        return format!("{what} no processes; {}", or_dash(&r.plan));
    }
    format!("{what} pids {}", pids.join(","))
}

/// Past this many nodes, the fleet table summarises by outcome (`-o json` has every row).
pub const FLEET_ROWS: usize = 50;

/// A node's summary with its own name and address taken out, so that nodes with the
/// same outcome read the same.
fn outcome_text(r: &NodeResult) -> String {
    let s = r.summary.replace(&r.address, "ADDRESS");
    s.replace(&r.node, "NODE")
}

/// The table of a fleet command: one row per node up to [`FLEET_ROWS`] nodes, past that
/// one row per outcome (how many nodes, a few of their names, the summary with each
/// node's name and address written NODE and ADDRESS), failures first.
pub fn fleet_table(results: &[NodeResult]) -> String {
    if results.len() <= FLEET_ROWS {
        return fleet_rows(results);
    }
    let mut groups: Vec<(bool, String, Vec<&str>)> = Vec::new();
    let mut index: std::collections::HashMap<(bool, String), usize> =
        std::collections::HashMap::new();
    for r in results {
        let key = (r.ok, outcome_text(r));
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key.0, key.1, Vec::new()));
            groups.len() - 1
        });
        groups[i].2.push(&r.node);
    }
    // Failures first, then the largest groups.
    groups.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.len().cmp(&a.2.len())));
    let mut t = Table::new(&["RESULT", "NODES", "FOR EXAMPLE", "SUMMARY"]);
    const SHOWN_GROUPS: usize = 20;
    for (ok, text, nodes) in groups.iter().take(SHOWN_GROUPS) {
        let mut names = nodes.iter().take(3).copied().collect::<Vec<_>>().join(", ");
        if nodes.len() > 3 {
            names += ", ...";
        }
        t.row(vec![
            if *ok { "ok" } else { "error" }.into(),
            crate::fleet::thousands(nodes.len()),
            names,
            text.clone(),
        ]);
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    let more = if groups.len() > SHOWN_GROUPS {
        format!(
            "({} more outcomes not shown)\n",
            crate::fleet::thousands(groups.len() - SHOWN_GROUPS)
        )
    } else {
        String::new()
    };
    format!(
        "{}{more}{} of {} nodes ok{} (one row per outcome; every node's row: -o json)\n",
        t.render(0),
        crate::fleet::thousands(results.len() - failed),
        crate::fleet::thousands(results.len()),
        if failed > 0 {
            format!(", {} failed", crate::fleet::thousands(failed))
        } else {
            String::new()
        }
    )
}

fn fleet_rows(results: &[NodeResult]) -> String {
    let mut t = Table::new(&["NODE", "RESULT", "SUMMARY"]);
    for r in results {
        t.row(vec![
            r.node.clone(),
            if r.ok { "ok" } else { "error" }.into(),
            r.summary.clone(),
        ]);
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    format!(
        "{}{} of {} nodes ok{}\n",
        t.render(0),
        results.len() - failed,
        results.len(),
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    )
}

/// The lease line `watch --hold` prints first.
pub fn watch_lease_line(lease: &Lease) -> String {
    format!(
        "holding lease {} (ttl {})\n",
        lease.id,
        format_duration(std::time::Duration::from_millis(lease.ttl_ms))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_proto::v1::{
        EventType, ExcludedProcess, FaultKind, FaultSpec, FaultState, KillSpec, NetworkLimits,
        Pick, ProcessSelector, fault_spec, pick,
    };
    use serde_json::{Value, json};

    const NOW: u64 = 1_795_000_000_000;

    fn to_json<T: serde::Serialize>(v: &T) -> Value {
        serde_json::to_value(v).unwrap()
    }

    fn target(pid: i32, comm: &str) -> ProcessTarget {
        ProcessTarget {
            pid,
            comm: comm.into(),
            cmdline: format!("{comm} --serve"),
            uid: 33,
        }
    }

    fn fault() -> Fault {
        Fault {
            id: "f-1a2b".into(),
            kind: FaultKind::Kill as i32,
            spec: Some(FaultSpec {
                kind: Some(fault_spec::Kind::Kill(KillSpec {
                    selector: Some(ProcessSelector {
                        name: Some("nginx".into()),
                        ..Default::default()
                    }),
                    pick: Some(Pick {
                        mode: Some(pick::Mode::Count(1)),
                    }),
                    signal: "KILL".into(),
                    every_ms: 30_000,
                })),
            }),
            state: FaultState::Active as i32,
            labels: [("team".to_string(), "web".to_string())].into(),
            requested_by: "uid=0(root) pid=7".into(),
            created_at_ms: NOW - 5_000,
            expires_at_ms: NOW + 295_000,
            duration_ms: 300_000,
            description: "SIGKILL 1 of nginx every 30s".into(),
            undo: "stop the kill loop".into(),
            targets: vec![target(4242, "nginx")],
            ..Default::default()
        }
    }

    #[test]
    fn faults_table_rows() {
        let mut ended = fault();
        ended.id = "f-9".into();
        ended.state = FaultState::Expired as i32;
        ended.ended_at_ms = NOW - 12_000;
        ended.labels.clear();
        ended.targets = (1..=6).map(|p| target(p, "w")).collect();
        let out = faults_table(&[fault(), ended], NOW);
        assert_eq!(
            out,
            "ID      KIND  STATE    PIDS          WHEN           LABELS    DESCRIPTION\n\
             f-1a2b  kill  active   4242          ends in 4m55s  team=web  SIGKILL 1 of nginx every 30s\n\
             f-9     kill  expired  1,2,3,4,(+2)  ended 12s ago  -         SIGKILL 1 of nginx every 30s\n"
        );
        assert_eq!(faults_table(&[], NOW), "no faults\n");
    }

    #[test]
    fn detail_names_everything() {
        let out = fault_detail(&fault(), NOW);
        for want in [
            "id            f-1a2b",
            "state         active",
            "spec          kill signal KILL every 30s; select name=\"nginx\"; pick 1 at random",
            "expires       2026-11-18T11:11:35Z (in 4m55s)",
            "created       2026-11-18T11:06:35Z (5s ago)",
            "undo          stop the kill loop",
            "targets (1)",
            "  4242  nginx  33   nginx --serve",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
    }

    #[test]
    fn fault_json_is_stable() {
        // The JSON is the proto's one serde mapping; this is the contract scripts rely on.
        let v = to_json(&fault());
        assert_eq!(
            v,
            json!({
                "id": "f-1a2b", "kind": "kill", "state": "active",
                "spec": {"kill": {"selector": {"name": "nginx"}, "pick": {"count": 1},
                                  "signal": "KILL", "every_ms": 30000}},
                "labels": {"team": "web"}, "requested_by": "uid=0(root) pid=7",
                "created_at_ms": NOW - 5_000, "expires_at_ms": NOW + 295_000,
                "ended_at_ms": 0, "duration_ms": 300_000, "end_reason": "",
                "description": "SIGKILL 1 of nginx every 30s", "undo": "stop the kill loop",
                "targets": [{"pid": 4242, "comm": "nginx", "cmdline": "nginx --serve", "uid": 33}],
                "lease_id": "", "container": null,
            })
        );
    }

    #[test]
    fn dry_run_shows_hits_and_exclusions() {
        let r = InjectResponse {
            fault: None,
            dry_run: true,
            targets: vec![target(4242, "nginx")],
            excluded: vec![ExcludedProcess {
                process: Some(target(1, "systemd")),
                reason: "pid 1 is protected".into(),
            }],
            plan: "send SIGKILL to 1 process".into(),
            container: None,
        };
        let out = inject_table(&r, NOW);
        assert_eq!(
            out,
            "dry run: nothing was changed\n\
             plan: send SIGKILL to 1 process\n\
             \n\
             would hit 1 process:\n  \
               PID   COMM   UID  CMDLINE\n  \
               4242  nginx  33   nginx --serve\n\
             \n\
             left alone 1:\n  \
               PID  COMM     UID  REASON              CMDLINE\n  \
               1    systemd  33   pid 1 is protected  systemd --serve\n"
        );
        let v = to_json(&r);
        assert_eq!(v["dry_run"], json!(true));
        assert_eq!(v["fault"], Value::Null);
        assert_eq!(v["excluded"][0]["reason"], json!("pid 1 is protected"));
        assert_eq!(v["targets"][0]["pid"], json!(4242));
    }

    #[test]
    fn dry_run_shows_the_container_its_cgroup_processes_and_namespace() {
        let id = "75bd73545e7023a79a68ca9c3590f63ef1397b86ab461edfab5e0a8456d68212";
        let c = Container {
            id: id.into(),
            runtime: "containerd (cri)".into(),
            driver: "systemd".into(),
            pod_uid: "0d3c5b2e-9a7f-4c1e-8b1a-2f6e0c9d4a11".into(),
            cgroup: format!("/kubepods.slice/x.slice/cri-containerd-{id}.scope"),
            processes: vec![target(4242, "nginx"), target(4250, "nginx")],
            netns_inode: 4026532301,
            netns_pid: 4242,
            host_network: false,
        };
        let r = InjectResponse {
            fault: None,
            dry_run: true,
            targets: vec![],
            excluded: vec![],
            plan: "freeze cgroup X (2 processes)".into(),
            container: Some(c.clone()),
        };
        assert_eq!(
            inject_table(&r, NOW),
            format!(
                "dry run: nothing was changed\n\
                 plan: freeze cgroup X (2 processes)\n\
                 container    {id} (containerd (cri), systemd driver, pod 0d3c5b2e-9a7f-4c1e-8b1a-2f6e0c9d4a11)\n\
                 \x20 cgroup     /kubepods.slice/x.slice/cri-containerd-{id}.scope\n\
                 \x20 processes  4242 (nginx), 4250 (nginx)\n\
                 \x20 netns      net:[4026532301] of pid 4242\n"
            )
        );
        let host = Container {
            host_network: true,
            ..c.clone()
        };
        assert!(container_text(&host).contains("the agent's own (host network)"));
        let v = to_json(&r);
        assert_eq!(v["container"]["id"], json!(id));
        assert_eq!(v["container"]["processes"][1]["pid"], json!(4250));
        assert_eq!(v["container"]["netns_inode"], json!(4026532301u64));
    }

    #[test]
    fn abort_and_events() {
        let r = RevertAllResponse {
            results: vec![
                RevertResult {
                    id: "f-1".into(),
                    ok: true,
                    error: String::new(),
                },
                RevertResult {
                    id: "f-2".into(),
                    ok: false,
                    error: "pid 9: EPERM".into(),
                },
            ],
            elapsed_us: 12_000,
        };
        assert_eq!(
            abort_table(&r),
            "ID   RESULT    ERROR\nf-1  reverted  -\nf-2  FAILED    pid 9: EPERM\n\nreverted 1 of 2 faults in 12ms\n"
        );
        assert_eq!(
            to_json(&r)["results"][1],
            json!({"id": "f-2", "ok": false, "error": "pid 9: EPERM"})
        );
        let e = Event {
            r#type: EventType::Expired as i32,
            at_ms: NOW,
            fault_id: "f-1".into(),
            kind: FaultKind::Pause as i32,
            message: "resumed 1 process".into(),
            fault: None,
            requested_by: String::new(),
        };
        assert_eq!(
            event_line(&e),
            "2026-11-18T11:06:40Z  expired   f-1           pause    resumed 1 process"
        );
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(to_json(&e)["type"], json!("expired"));
        assert_eq!(to_json(&e)["kind"], json!("pause"));
    }

    #[test]
    fn limits_show_every_limit_in_the_table_and_the_json() {
        let l = Limits {
            profile: "staging".into(),
            max_duration_ms: 300_000,
            network: Some(NetworkLimits {
                max_delay_ms: 5000,
                max_loss_percent: 10.0,
                max_jitter_ms: 1000,
                max_duplicate_percent: 5.0,
                max_corrupt_percent: 1.0,
                max_reorder_percent: 25.0,
                min_rate_bits_per_sec: 1_000_000,
                protected_ports: vec![22, 7443],
                protected_cidrs: vec![],
                allow_blackhole: true,
            }),
            cpu: Some(StressLimits {
                max_percent: 50.0,
                max_duration_ms: 600_000,
                max_concurrent: 2,
            }),
            memory: Some(StressLimits::default()),
            process_max_concurrent: 3,
            ..Default::default()
        };
        let v = to_json(&l);
        assert_eq!(
            v["network"],
            json!({"max_delay_ms": 5000, "max_loss_percent": 10.0, "max_jitter_ms": 1000,
                   "max_duplicate_percent": 5.0, "max_corrupt_percent": 1.0,
                   "max_reorder_percent": 25.0, "min_rate_bits_per_sec": 1_000_000,
                   "protected_ports": [22, 7443], "protected_cidrs": [],
                   "allow_blackhole": true})
        );
        assert_eq!(v["cpu"]["max_concurrent"], 2);
        assert_eq!(v["memory"]["max_concurrent"], 0);
        let out = limits_table(&l);
        for want in [
            "max duration           5m",
            "max process faults     3",
            "network max jitter     1s",
            "network max duplicate  5%",
            "network max corrupt    1%",
            "network max reorder    25%",
            "network min rate       1mbit",
            "network blackholes     allowed",
            "protected ports        22, 7443",
            "protected cidrs        -",
            "cpu stress             at most 50% for at most 10m, 2 at once",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
    }

    #[test]
    fn a_network_dry_run_names_no_processes() {
        let r = InjectResponse {
            dry_run: true,
            plan: "install netem delay 40ms on eth0".into(),
            ..Default::default()
        };
        assert_eq!(
            inject_table(&r, NOW),
            "dry run: nothing was changed\nplan: install netem delay 40ms on eth0\n"
        );
        assert_eq!(
            summary(&Answer::Injected(r)),
            "dry run: would hit no processes; install netem delay 40ms on eth0"
        );
    }
}
