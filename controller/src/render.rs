//! Rendering API answers: aligned tables for people, JSON for scripts.
//!
//! Every function is pure: times are rendered relative to a `now_ms` the caller passes
//! (Unix milliseconds), so the output is testable. JSON field names are the proto field
//! names (snake_case) and enums are lowercase strings (`"active"`, `"kill"`); they are a
//! contract for scripts and only ever gain fields.

use std::time::{Duration, UNIX_EPOCH};

use faultline_proto::units::format_ms;
use faultline_proto::v1::{
    Event, EventType, Fault, FaultKind, FaultSpec, FaultState, InjectResponse, Limits, Pick,
    ProcessSelector, ProcessTarget, RevertAllResponse, StatusResponse, StressLimits, fault_spec,
    pick,
};
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------- names

/// `kill`, `pause`, ... (`unknown(N)` for a kind this faultctl does not know).
pub fn kind_name(v: i32) -> String {
    FaultKind::try_from(v)
        .map(|k| k.short_name().to_string())
        .unwrap_or_else(|_| format!("unknown({v})"))
}

/// `active`, `reverted`, ...
pub fn state_name(v: i32) -> String {
    FaultState::try_from(v)
        .map(|k| k.short_name().to_string())
        .unwrap_or_else(|_| format!("unknown({v})"))
}

/// `injected`, `expired`, ...
pub fn event_name(v: i32) -> String {
    EventType::try_from(v)
        .map(|k| k.short_name().to_string())
        .unwrap_or_else(|_| format!("unknown({v})"))
}

// ---------------------------------------------------------------- times

/// `2026-11-23T14:05:01Z`, or `-` for zero.
pub fn absolute(at_ms: u64) -> String {
    if at_ms == 0 {
        return "-".into();
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(at_ms)).to_string()
}

/// `in 4m55s`, `12s ago`, `now`; `-` for zero. Whole seconds from a second up.
pub fn relative(at_ms: u64, now_ms: u64) -> String {
    if at_ms == 0 {
        return "-".into();
    }
    let (diff, future) = if at_ms >= now_ms {
        (at_ms - now_ms, true)
    } else {
        (now_ms - at_ms, false)
    };
    if diff < 1000 && !future {
        return "just now".into();
    }
    let d = if diff >= 1000 {
        diff / 1000 * 1000
    } else {
        diff
    };
    if future {
        format!("in {}", format_ms(d))
    } else {
        format!("{} ago", format_ms(d))
    }
}

/// `2026-11-23T14:05:01Z (in 4m55s)`.
pub fn when(at_ms: u64, now_ms: u64) -> String {
    if at_ms == 0 {
        return "-".into();
    }
    format!("{} ({})", absolute(at_ms), relative(at_ms, now_ms))
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------- tables

/// A table with aligned columns; the last column is not padded.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders it, each line indented by `indent` spaces.
    pub fn render(&self, indent: usize) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut width = vec![0; cols];
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in &self.rows {
            let mut line = " ".repeat(indent);
            for (i, c) in r.iter().enumerate() {
                line.push_str(c);
                if i + 1 < r.len() {
                    line.push_str(&" ".repeat(width[i] - c.chars().count() + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn kv(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:w$}  {v}\n"))
        .collect()
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

fn list_or_dash(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
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

/// The selector's string fields, in proto order.
fn string_fields(s: &ProcessSelector) -> [(&'static str, &Option<String>); 5] {
    [
        ("name", &s.name),
        ("cmdline", &s.cmdline),
        ("cgroup", &s.cgroup),
        ("unit", &s.unit),
        ("user", &s.user),
    ]
}

/// The selector in words: `name=nginx user=www-data`.
pub fn selector_text(s: &ProcessSelector) -> String {
    let mut parts = vec![];
    if let Some(p) = s.pid {
        parts.push(format!("pid={p}"));
    }
    for (k, v) in string_fields(s) {
        if let Some(v) = v {
            parts.push(format!("{k}={v:?}"));
        }
    }
    if parts.is_empty() {
        "(empty)".into()
    } else {
        parts.join(" ")
    }
}

/// The pick in words: `all`, `2 at random`, `50% at random`.
pub fn pick_text(p: Option<&Pick>) -> String {
    match p.and_then(|p| p.mode.as_ref()) {
        None | Some(pick::Mode::All(_)) => "all".into(),
        Some(pick::Mode::Count(n)) => format!("{n} at random"),
        Some(pick::Mode::Percent(x)) => format!("{x}% at random"),
    }
}

/// A spec in one line: `kill SIGKILL every 30s; select name="nginx"; pick 1 at random`.
pub fn spec_text(spec: Option<&FaultSpec>) -> String {
    match spec.and_then(|s| s.kind.as_ref()) {
        None => "-".into(),
        Some(fault_spec::Kind::Kill(k)) => {
            let every = if k.every_ms > 0 {
                format!(" every {}", format_ms(k.every_ms))
            } else {
                String::new()
            };
            format!(
                "kill signal {}{every}; select {}; pick {}",
                or_dash(&k.signal),
                k.selector
                    .as_ref()
                    .map(selector_text)
                    .unwrap_or_else(|| "(none)".into()),
                pick_text(k.pick.as_ref())
            )
        }
        Some(fault_spec::Kind::Pause(p)) => format!(
            "pause; select {}; pick {}",
            p.selector
                .as_ref()
                .map(selector_text)
                .unwrap_or_else(|| "(none)".into()),
            pick_text(p.pick.as_ref())
        ),
        Some(fault_spec::Kind::Network(n)) => network_text(n),
        Some(fault_spec::Kind::Cpu(c)) => format!(
            "cpu {}{}",
            if c.cores > 0 {
                format!("{} workers at {}%", c.cores, c.load)
            } else {
                format!("{}%", c.percent)
            },
            placement_text(c.placement.as_ref())
        ),
        Some(fault_spec::Kind::Memory(m)) => format!(
            "memory {}{}{}",
            if m.size_bytes > 0 {
                format!("{} MiB", m.size_bytes >> 20)
            } else {
                format!("{}% of RAM", m.percent)
            },
            if m.ramp_ms > 0 {
                format!(" ramp {}", format_ms(m.ramp_ms))
            } else {
                String::new()
            },
            placement_text(m.placement.as_ref())
        ),
    }
}

fn placement_text(p: Option<&faultline_proto::v1::StressPlacement>) -> String {
    match p {
        Some(p) if !p.cgroup.is_empty() => format!(" in cgroup {}", p.cgroup),
        Some(p) if !p.unit.is_empty() => format!(" in unit {}", p.unit),
        Some(p) if p.pid > 0 => format!(" in the cgroup of pid {}", p.pid),
        _ => String::new(),
    }
}

fn placement_json(p: Option<&faultline_proto::v1::StressPlacement>) -> Value {
    p.map(|p| json!({"cgroup": p.cgroup, "unit": p.unit, "pid": p.pid}))
        .unwrap_or(Value::Null)
}

/// A network spec in tc's words: `network eth0 egress: delay 50ms loss 1%; dst 10.0.0.0/8`.
fn network_text(n: &faultline_proto::v1::NetworkSpec) -> String {
    let e = n.netem.clone().unwrap_or_default();
    let mut p = Vec::new();
    if e.delay_us > 0 {
        let mut d = format!("delay {}", fmt_us(e.delay_us));
        if e.jitter_us > 0 {
            d.push_str(&format!(" {}", fmt_us(e.jitter_us)));
        }
        if !e.distribution.is_empty() && e.distribution != "uniform" {
            d.push_str(&format!(" {}", e.distribution));
        }
        p.push(d);
    }
    if let Some(g) = &e.loss_gemodel {
        p.push(format!(
            "loss gemodel {}% {}% {}% {}%",
            g.p, g.r, g.loss_bad, g.loss_good
        ));
    } else if e.loss_percent > 0.0 {
        p.push(format!("loss {}%", e.loss_percent));
    }
    for (v, w) in [
        (e.duplicate_percent, "duplicate"),
        (e.corrupt_percent, "corrupt"),
        (e.reorder_percent, "reorder"),
    ] {
        if v > 0.0 {
            p.push(format!("{w} {v}%"));
        }
    }
    if e.rate_bits_per_sec > 0 {
        p.push(format!(
            "rate {}",
            faultline_proto::units::format_rate(e.rate_bits_per_sec)
        ));
    }
    let s = n.selection.clone().unwrap_or_default();
    let mut sel = Vec::new();
    for c in &s.dst {
        sel.push(format!("dst {c}"));
    }
    for c in &s.src {
        sel.push(format!("src {c}"));
    }
    for (v, w) in [
        (&s.protocol, "protocol"),
        (&s.dport, "dport"),
        (&s.sport, "sport"),
    ] {
        if !v.is_empty() {
            sel.push(format!("{w} {v}"));
        }
    }
    let ns = if n.pid > 0 {
        format!(" (netns of pid {})", n.pid)
    } else if !n.netns.is_empty() {
        format!(" (netns {})", n.netns)
    } else {
        String::new()
    };
    format!(
        "network {}{ns} {}: {}; {}",
        n.iface,
        if n.direction.is_empty() {
            "egress"
        } else {
            &n.direction
        },
        p.join(" "),
        if sel.is_empty() {
            "all traffic".to_string()
        } else {
            sel.join(" ")
        }
    )
}

fn fmt_us(us: u64) -> String {
    if us.is_multiple_of(1000) {
        format_ms(us / 1000)
    } else {
        format!("{us}us")
    }
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
            "at most {}% for at most {}",
            s.max_percent,
            format_ms(s.max_duration_ms)
        ),
    }
}

/// `faultctl limits`.
pub fn limits_table(l: &Limits) -> String {
    kv(&[
        ("profile", or_dash(&l.profile)),
        ("source", or_dash(&l.source)),
        ("max duration", format_ms(l.max_duration_ms)),
        ("max concurrent faults", l.max_concurrent_faults.to_string()),
        ("max kills per minute", l.max_kills_per_minute.to_string()),
        (
            "network max delay",
            l.network
                .as_ref()
                .map(|n| format_ms(n.max_delay_ms))
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "network max loss",
            l.network
                .as_ref()
                .map(|n| format!("{}%", n.max_loss_percent))
                .unwrap_or_else(|| "-".into()),
        ),
        ("cpu stress", stress_text(l.cpu.as_ref())),
        ("memory stress", stress_text(l.memory.as_ref())),
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

/// `faultctl inject`: what was (or would be) hit and what was left alone.
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
    let verb = if r.dry_run { "would hit" } else { "hit" };
    out.push('\n');
    match r.targets.len() {
        0 => out.push_str(&format!("{verb} no processes\n")),
        n => {
            out.push_str(&format!(
                "{verb} {n} process{}:\n",
                if n == 1 { "" } else { "es" }
            ));
            out.push_str(&targets_table(&r.targets, 2));
        }
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

// ---------------------------------------------------------------- json

fn selector_json(s: &ProcessSelector) -> Value {
    let mut m = Map::new();
    if let Some(p) = s.pid {
        m.insert("pid".into(), json!(p));
    }
    for (k, v) in string_fields(s) {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    Value::Object(m)
}

fn pick_json(p: Option<&Pick>) -> Value {
    match p.and_then(|p| p.mode.as_ref()) {
        None | Some(pick::Mode::All(_)) => json!({"all": true}),
        Some(pick::Mode::Count(n)) => json!({"count": n}),
        Some(pick::Mode::Percent(x)) => json!({"percent": x}),
    }
}

/// A spec as `{"kill": {...}}` or `{"pause": {...}}` (mirrors the proto oneof).
pub fn spec_json(spec: Option<&FaultSpec>) -> Value {
    match spec.and_then(|s| s.kind.as_ref()) {
        None => Value::Null,
        Some(fault_spec::Kind::Kill(k)) => json!({"kill": {
            "selector": k.selector.as_ref().map(selector_json),
            "pick": pick_json(k.pick.as_ref()),
            "signal": k.signal,
            "every_ms": k.every_ms,
        }}),
        Some(fault_spec::Kind::Pause(p)) => json!({"pause": {
            "selector": p.selector.as_ref().map(selector_json),
            "pick": pick_json(p.pick.as_ref()),
        }}),
        Some(fault_spec::Kind::Network(n)) => {
            let e = n.netem.clone().unwrap_or_default();
            let s = n.selection.clone().unwrap_or_default();
            json!({"network": {
                "iface": n.iface, "netns": n.netns, "pid": n.pid, "direction": n.direction,
                "netem": {
                    "delay_us": e.delay_us, "jitter_us": e.jitter_us,
                    "delay_correlation": e.delay_correlation, "distribution": e.distribution,
                    "loss_percent": e.loss_percent, "loss_correlation": e.loss_correlation,
                    "loss_gemodel": e.loss_gemodel.as_ref().map(|g| json!({
                        "p": g.p, "r": g.r, "loss_bad": g.loss_bad, "loss_good": g.loss_good})),
                    "duplicate_percent": e.duplicate_percent, "duplicate_correlation": e.duplicate_correlation,
                    "corrupt_percent": e.corrupt_percent, "corrupt_correlation": e.corrupt_correlation,
                    "reorder_percent": e.reorder_percent, "reorder_correlation": e.reorder_correlation,
                    "gap": e.gap, "rate_bits_per_sec": e.rate_bits_per_sec, "limit": e.limit,
                },
                "selection": {"dst": s.dst, "src": s.src, "dport": s.dport, "sport": s.sport, "protocol": s.protocol},
            }})
        }
        Some(fault_spec::Kind::Cpu(c)) => json!({"cpu": {
            "percent": c.percent, "cores": c.cores, "load": c.load,
            "placement": placement_json(c.placement.as_ref()),
        }}),
        Some(fault_spec::Kind::Memory(m)) => json!({"memory": {
            "size_bytes": m.size_bytes, "percent": m.percent, "ramp_ms": m.ramp_ms,
            "placement": placement_json(m.placement.as_ref()),
        }}),
    }
}

/// A process target.
pub fn target_json(t: &ProcessTarget) -> Value {
    json!({"pid": t.pid, "comm": t.comm, "cmdline": t.cmdline, "uid": t.uid})
}

/// A fault record.
pub fn fault_json(f: &Fault) -> Value {
    json!({
        "id": f.id,
        "kind": kind_name(f.kind),
        "state": state_name(f.state),
        "spec": spec_json(f.spec.as_ref()),
        "labels": f.labels.iter().collect::<std::collections::BTreeMap<_, _>>(),
        "requested_by": f.requested_by,
        "created_at_ms": f.created_at_ms,
        "expires_at_ms": f.expires_at_ms,
        "ended_at_ms": f.ended_at_ms,
        "duration_ms": f.duration_ms,
        "end_reason": f.end_reason,
        "description": f.description,
        "undo": f.undo,
        "targets": f.targets.iter().map(target_json).collect::<Vec<_>>(),
        "lease_id": f.lease_id,
    })
}

/// `faultctl list -o json`: `{"faults": [...]}`.
pub fn faults_json(faults: &[Fault]) -> Value {
    json!({"faults": faults.iter().map(fault_json).collect::<Vec<_>>()})
}

/// `faultctl status -o json`.
pub fn status_json(s: &StatusResponse) -> Value {
    json!({
        "agent_version": s.agent_version,
        "kernel_release": s.kernel_release,
        "hostname": s.hostname,
        "cgroup_mode": s.cgroup_mode,
        "kinds": s.kinds.iter().map(|k| json!({
            "kind": kind_name(k.kind), "supported": k.supported, "detail": k.detail,
        })).collect::<Vec<_>>(),
        "active": s.active.iter().map(fault_json).collect::<Vec<_>>(),
        "started_at_ms": s.started_at_ms,
        "pid": s.pid,
        "limits_source": s.limits_source,
    })
}

fn stress_json(s: Option<&StressLimits>) -> Value {
    s.map(|s| json!({"max_percent": s.max_percent, "max_duration_ms": s.max_duration_ms}))
        .unwrap_or(Value::Null)
}

/// `faultctl limits -o json`.
pub fn limits_json(l: &Limits) -> Value {
    json!({
        "profile": l.profile,
        "source": l.source,
        "max_duration_ms": l.max_duration_ms,
        "max_concurrent_faults": l.max_concurrent_faults,
        "max_kills_per_minute": l.max_kills_per_minute,
        "protected_processes": l.protected_processes,
        "protected_units": l.protected_units,
        "protected_cgroups": l.protected_cgroups,
        "protected_interfaces": l.protected_interfaces,
        "network": l.network.as_ref().map(|n| json!({
            "max_delay_ms": n.max_delay_ms, "max_loss_percent": n.max_loss_percent,
        })),
        "cpu": stress_json(l.cpu.as_ref()),
        "memory": stress_json(l.memory.as_ref()),
        "require_lease": l.require_lease,
        "max_lease_ttl_ms": l.max_lease_ttl_ms,
        "process_max_concurrent": l.process_max_concurrent,
        "network_max_concurrent": l.network_max_concurrent,
        "health_conditions": l.health_conditions,
        "health_interval_ms": l.health_interval_ms,
    })
}

/// `faultctl inject -o json`.
pub fn inject_json(r: &InjectResponse) -> Value {
    json!({
        "dry_run": r.dry_run,
        "fault": r.fault.as_ref().map(fault_json),
        "plan": r.plan,
        "targets": r.targets.iter().map(target_json).collect::<Vec<_>>(),
        "excluded": r.excluded.iter().map(|e| json!({
            "process": e.process.as_ref().map(target_json),
            "reason": e.reason,
        })).collect::<Vec<_>>(),
    })
}

/// `faultctl abort -o json`.
pub fn abort_json(r: &RevertAllResponse) -> Value {
    json!({
        "results": r.results.iter().map(|x| json!({"id": x.id, "ok": x.ok, "error": x.error}))
            .collect::<Vec<_>>(),
        "elapsed_us": r.elapsed_us,
    })
}

/// `faultctl watch -o json`: one object per line.
pub fn event_json(e: &Event) -> Value {
    json!({
        "type": event_name(e.r#type),
        "at_ms": e.at_ms,
        "fault_id": e.fault_id,
        "kind": kind_name(e.kind),
        "message": e.message,
        "fault": e.fault.as_ref().map(fault_json),
        "requested_by": e.requested_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_proto::v1::{ExcludedProcess, KillSpec, RevertResult};

    const NOW: u64 = 1_795_000_000_000;

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
    fn relative_times() {
        assert_eq!(relative(NOW + 295_400, NOW), "in 4m55s");
        assert_eq!(relative(NOW - 12_900, NOW), "12s ago");
        assert_eq!(relative(NOW - 10, NOW), "just now");
        assert_eq!(relative(NOW + 300, NOW), "in 300ms");
        assert_eq!(relative(0, NOW), "-");
        assert_eq!(absolute(1_795_000_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&["A", "LONGER", "C"]);
        t.row(vec!["xxxx".into(), "y".into(), "last column".into()]);
        assert_eq!(t.render(0), "A     LONGER  C\nxxxx  y       last column\n");
        assert_eq!(t.render(2).lines().next(), Some("  A     LONGER  C"));
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
        let v = fault_json(&fault());
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
                "lease_id": "",
            })
        );
        assert_eq!(kind_name(99), "unknown(99)");
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
        let v = inject_json(&r);
        assert_eq!(v["dry_run"], json!(true));
        assert_eq!(v["fault"], Value::Null);
        assert_eq!(v["excluded"][0]["reason"], json!("pid 1 is protected"));
        assert_eq!(v["targets"][0]["pid"], json!(4242));
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
            abort_json(&r)["results"][1],
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
        let line = serde_json::to_string(&event_json(&e)).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(event_json(&e)["type"], json!("expired"));
        assert_eq!(event_json(&e)["kind"], json!("pause"));
    }
}
