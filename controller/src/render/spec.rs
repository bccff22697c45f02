//! A fault spec in one line, as `faultctl get` and scenario reports show it: one row per
//! fault kind in [`spec_text`].

use faultline_proto::units::format_ms;
use faultline_proto::v1::{FaultSpec, Pick, ProcessSelector, StressPlacement, fault_spec, pick};

use super::or_dash;

/// The selector's string fields, in proto order.
fn string_fields(s: &ProcessSelector) -> [(&'static str, &Option<String>); 6] {
    [
        ("name", &s.name),
        ("cmdline", &s.cmdline),
        ("cgroup", &s.cgroup),
        ("unit", &s.unit),
        ("user", &s.user),
        ("container", &s.container),
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
        Some(fault_spec::Kind::Network(n)) => faultline_proto::describe::network(n),
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
        Some(fault_spec::Kind::IoLimit(l)) => {
            let size = faultline_proto::units::format_size;
            let mut parts = Vec::new();
            for (k, v) in [("read", l.read_bps), ("write", l.write_bps)] {
                if v > 0 {
                    parts.push(format!("{k} {}/s", size(v)));
                }
            }
            for (k, v) in [("read", l.read_iops), ("write", l.write_iops)] {
                if v > 0 {
                    parts.push(format!("{k} {v} iops"));
                }
            }
            format!(
                "io-limit {} on {}{}",
                parts.join(", "),
                if l.device.is_empty() {
                    format!("the device of {}", l.path)
                } else {
                    l.device.clone()
                },
                placement_text(l.target.as_ref())
            )
        }
        Some(fault_spec::Kind::IoStress(s)) => {
            let size = faultline_proto::units::format_size;
            let mut caps = Vec::new();
            for (k, v) in [("read", s.read_bps), ("write", s.write_bps)] {
                if v > 0 {
                    caps.push(format!(" {k} at most {}/s", size(v)));
                }
            }
            format!(
                "io-stress {} x{} {} {}{}",
                s.path,
                s.workers.max(1),
                if s.mode.is_empty() { "write" } else { &s.mode },
                if s.size_bytes > 0 {
                    size(s.size_bytes)
                } else {
                    "64 MiB".into()
                },
                caps.concat()
            )
        }
        Some(fault_spec::Kind::DiskFill(d)) => format!(
            "disk-fill {} {}{}",
            d.path,
            if d.size_bytes > 0 {
                format!("+{}", faultline_proto::units::format_size(d.size_bytes))
            } else if d.free_bytes > 0 {
                format!(
                    "until {} free",
                    faultline_proto::units::format_size(d.free_bytes)
                )
            } else {
                format!("to {}% used", d.percent)
            },
            if d.ramp_ms > 0 {
                format!(" ramp {}", format_ms(d.ramp_ms))
            } else {
                String::new()
            }
        ),
    }
}

fn placement_text(p: Option<&StressPlacement>) -> String {
    match p {
        Some(p) if !p.cgroup.is_empty() => format!(" in cgroup {}", p.cgroup),
        Some(p) if !p.unit.is_empty() => format!(" in unit {}", p.unit),
        Some(p) if p.pid > 0 => format!(" in the cgroup of pid {}", p.pid),
        Some(p) if !p.container.is_empty() => format!(" in container {}", p.container),
        _ => String::new(),
    }
}
