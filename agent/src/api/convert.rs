//! proto <-> domain. Incoming messages become validated domain values here, and every
//! rejection names the field, so the engine never sees malformed input.

use std::time::{Duration, SystemTime};

use faultline_proto::v1 as pb;
use regex::Regex;

use crate::engine::{self, FaultRecord, State};
use crate::error::FaultError;
use crate::fault::disk::{DiskFillSpec, FillAmount};
use crate::fault::io::{IoDevice, IoLimitSpec};
use crate::fault::process::parse_signal;
use crate::fault::stress::{CpuAmount, MemAmount, Placement};
use crate::fault::{
    CgroupPath, CpuSpec, FaultSpec, KillSpec, Kind, MemSpec, NetworkSpec, PauseSpec, Percent, Pick,
    Selector, Timed, UnitName,
};
use crate::sys::container::{Container, ContainerQuery};
use crate::sys::netns::NetnsTarget;
use crate::sys::proc::ProcInfo;
use crate::sys::tc;

/// Label keys and values: bounded, printable.
const MAX_LABELS: usize = 32;
const MAX_LABEL_LEN: usize = 256;
const MAX_REGEX_LEN: usize = 1024;

/// A container id or prefix as given (`containerd://ID` accepted); the refusal names
/// `field`. The container itself is found when the fault is planned.
fn container_query(text: &str, field: String) -> Result<ContainerQuery, FaultError> {
    ContainerQuery::parse(text).map_err(|e| FaultError::invalid(field, e.why))
}

fn selector(s: Option<&pb::ProcessSelector>, field: &str) -> Result<Selector, FaultError> {
    let s = s.ok_or_else(|| {
        FaultError::invalid(
            field,
            "missing: give at least one of pid, name, cmdline, cgroup, unit, user",
        )
    })?;
    let f = |name: &str| format!("{field}.{name}");
    let container = s
        .container
        .as_deref()
        .map(|c| container_query(c, f("container")))
        .transpose()?;
    let nonempty = |v: &Option<String>, name: &str| -> Result<Option<String>, FaultError> {
        match v {
            Some(t) if t.trim().is_empty() => Err(FaultError::invalid(f(name), "is empty")),
            Some(t) if t.len() > 4096 => {
                Err(FaultError::invalid(f(name), "is longer than 4096 bytes"))
            }
            Some(t) => Ok(Some(t.clone())),
            None => Ok(None),
        }
    };
    let pid = match s.pid {
        Some(p) if p <= 0 => {
            return Err(FaultError::invalid(
                f("pid"),
                format!("{p} is not a process id (must be > 0)"),
            ));
        }
        p => p,
    };
    let name = nonempty(&s.name, "name")?;
    if let Some(n) = &name
        && n.len() > 15
    {
        return Err(FaultError::invalid(
            f("name"),
            format!("{n:?} is longer than 15 bytes, so no comm can equal it; use cmdline instead"),
        ));
    }
    let cmdline = match nonempty(&s.cmdline, "cmdline")? {
        Some(r) => {
            if r.len() > MAX_REGEX_LEN {
                return Err(FaultError::invalid(
                    f("cmdline"),
                    format!("regex longer than {MAX_REGEX_LEN} bytes"),
                ));
            }
            Some(Regex::new(&r).map_err(|e| {
                FaultError::invalid(
                    f("cmdline"),
                    format!("invalid regex: {}", e.to_string().replace('\n', " ")),
                )
            })?)
        }
        None => None,
    };
    let cgroup = nonempty(&s.cgroup, "cgroup")?
        .map(|c| CgroupPath::parse(&c).map_err(|m| FaultError::invalid(f("cgroup"), m)))
        .transpose()?;
    let unit = nonempty(&s.unit, "unit")?
        .map(|u| UnitName::parse(&u).map_err(|m| FaultError::invalid(f("unit"), m)))
        .transpose()?;
    let user = match nonempty(&s.user, "user")? {
        Some(u) => Some(resolve_user(&u).map_err(|m| FaultError::invalid(f("user"), m))?),
        None => None,
    };
    let sel = Selector {
        pid,
        name,
        cmdline,
        cgroup,
        unit,
        user,
        container,
    };
    if sel.is_empty() {
        return Err(FaultError::invalid(
            field,
            "empty selector: give at least one of pid, name, cmdline, cgroup, unit, user, container",
        ));
    }
    Ok(sel)
}

fn resolve_user(u: &str) -> Result<(String, u32), String> {
    if let Ok(uid) = u.parse::<u32>() {
        return Ok((u.to_string(), uid));
    }
    match nix::unistd::User::from_name(u) {
        Ok(Some(user)) => Ok((u.to_string(), user.uid.as_raw())),
        Ok(None) => Err(format!("no user named {u:?} on this node")),
        Err(e) => Err(format!("cannot look up user {u:?}: {e}")),
    }
}

fn pick(p: Option<&pb::Pick>, field: &str) -> Result<Pick, FaultError> {
    match p.and_then(|p| p.mode.as_ref()) {
        None | Some(pb::pick::Mode::All(_)) => Ok(Pick::All),
        Some(pb::pick::Mode::Count(0)) => Err(FaultError::invalid(
            format!("{field}.count"),
            "must be at least 1",
        )),
        Some(pb::pick::Mode::Count(n)) => Ok(Pick::Count(*n)),
        Some(pb::pick::Mode::Percent(p)) => Percent::share(*p)
            .map(Pick::Percent)
            .map_err(|m| FaultError::invalid(format!("{field}.percent"), m)),
    }
}

/// A validated spec and duration from an `InjectRequest`.
pub fn inject_request(
    req: &pb::InjectRequest,
    requested_by: String,
) -> Result<engine::InjectRequest, FaultError> {
    let spec = match req.spec.as_ref().and_then(|s| s.kind.as_ref()) {
        None => {
            return Err(FaultError::invalid(
                "spec",
                "missing: choose a fault kind (kill, pause, network, cpu, memory, disk_fill, io_limit)",
            ));
        }
        Some(pb::fault_spec::Kind::Kill(k)) => {
            let every = match k.every_ms {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            };
            FaultSpec::Kill(KillSpec {
                selector: selector(k.selector.as_ref(), "spec.kill.selector")?,
                pick: pick(k.pick.as_ref(), "spec.kill.pick")?,
                signal: parse_signal(&k.signal).map_err(|e| match e {
                    FaultError::Invalid { message, .. } => {
                        FaultError::invalid("spec.kill.signal", message)
                    }
                    other => other,
                })?,
                every,
            })
        }
        Some(pb::fault_spec::Kind::Pause(p)) => FaultSpec::Pause(PauseSpec {
            selector: selector(p.selector.as_ref(), "spec.pause.selector")?,
            pick: pick(p.pick.as_ref(), "spec.pause.pick")?,
        }),
        Some(pb::fault_spec::Kind::Network(n)) => FaultSpec::Network(network(n)?),
        Some(pb::fault_spec::Kind::Cpu(c)) => FaultSpec::Cpu(cpu(c)?),
        Some(pb::fault_spec::Kind::Memory(m)) => FaultSpec::Memory(memory(m)?),
        Some(pb::fault_spec::Kind::DiskFill(d)) => FaultSpec::DiskFill(disk_fill(d)?),
        Some(pb::fault_spec::Kind::IoLimit(i)) => FaultSpec::IoLimit(io_limit(i)?),
        Some(pb::fault_spec::Kind::IoStress(i)) => FaultSpec::IoStress(io_stress(i)?),
    };
    let fault = Timed::new(spec, Some(Duration::from_millis(req.duration_ms)))?;
    if req.labels.len() > MAX_LABELS {
        return Err(FaultError::invalid(
            "labels",
            format!("{} labels; at most {MAX_LABELS}", req.labels.len()),
        ));
    }
    for (k, v) in &req.labels {
        if k.is_empty()
            || k.len() > MAX_LABEL_LEN
            || v.len() > MAX_LABEL_LEN
            || k.chars().any(char::is_control)
        {
            return Err(FaultError::invalid(
                "labels",
                format!(
                    "label {k:?}: keys must be 1..={MAX_LABEL_LEN} printable bytes, values at most {MAX_LABEL_LEN}"
                ),
            ));
        }
    }
    Ok(engine::InjectRequest {
        fault,
        labels: req.labels.clone(),
        dry_run: req.dry_run,
        requested_by,
        lease: Some(req.lease_id.clone()).filter(|l| !l.is_empty()),
    })
}

fn ms(t: Option<SystemTime>) -> u64 {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn kind(k: Kind) -> pb::FaultKind {
    match k {
        Kind::Kill => pb::FaultKind::Kill,
        Kind::Pause => pb::FaultKind::Pause,
        Kind::Network => pb::FaultKind::Network,
        Kind::Cpu => pb::FaultKind::Cpu,
        Kind::Memory => pb::FaultKind::Memory,
        Kind::DiskFill => pb::FaultKind::DiskFill,
        Kind::IoLimit => pb::FaultKind::IoLimit,
        Kind::IoStress => pb::FaultKind::IoStress,
    }
}

fn selector_pb(s: &Selector) -> pb::ProcessSelector {
    pb::ProcessSelector {
        pid: s.pid,
        name: s.name.clone(),
        cmdline: s.cmdline.as_ref().map(|r| r.as_str().to_string()),
        cgroup: s.cgroup.as_ref().map(|c| c.to_string()),
        unit: s.unit.as_ref().map(|u| u.to_string()),
        user: s.user.as_ref().map(|(u, _)| u.clone()),
        container: s.container.as_ref().map(|c| c.to_string()),
    }
}

fn pick_pb(p: Pick) -> pb::Pick {
    pb::Pick {
        mode: Some(match p {
            Pick::All => pb::pick::Mode::All(true),
            Pick::Count(n) => pb::pick::Mode::Count(n),
            Pick::Percent(p) => pb::pick::Mode::Percent(p.get()),
        }),
    }
}

/// The spec as applied, defaults filled in.
pub fn spec_pb(s: &FaultSpec) -> pb::FaultSpec {
    pb::FaultSpec {
        kind: Some(match s {
            FaultSpec::Kill(k) => pb::fault_spec::Kind::Kill(pb::KillSpec {
                selector: Some(selector_pb(&k.selector)),
                pick: Some(pick_pb(k.pick)),
                signal: k.signal.as_str().trim_start_matches("SIG").to_string(),
                every_ms: k.every.map(|d| d.as_millis() as u64).unwrap_or(0),
            }),
            FaultSpec::Pause(p) => pb::fault_spec::Kind::Pause(pb::PauseSpec {
                selector: Some(selector_pb(&p.selector)),
                pick: Some(pick_pb(p.pick)),
            }),
            FaultSpec::Network(n) => pb::fault_spec::Kind::Network(n.to_proto()),
            FaultSpec::Cpu(c) => pb::fault_spec::Kind::Cpu(pb::CpuSpec {
                percent: match c.amount {
                    CpuAmount::Share(p) => p.get(),
                    CpuAmount::Cores { .. } => 0.0,
                },
                cores: match c.amount {
                    CpuAmount::Cores { cores, .. } => cores,
                    CpuAmount::Share(_) => 0,
                },
                load: match c.amount {
                    CpuAmount::Cores { load, .. } => load.get(),
                    CpuAmount::Share(_) => 0.0,
                },
                placement: Some(placement_pb(&c.placement)),
            }),
            FaultSpec::Memory(m) => pb::fault_spec::Kind::Memory(pb::MemorySpec {
                size_bytes: match m.amount {
                    MemAmount::Bytes(b) => b,
                    MemAmount::Percent(_) => 0,
                },
                percent: match m.amount {
                    MemAmount::Percent(p) => p.get(),
                    MemAmount::Bytes(_) => 0.0,
                },
                ramp_ms: m.ramp.as_millis() as u64,
                placement: Some(placement_pb(&m.placement)),
            }),
            FaultSpec::DiskFill(d) => pb::fault_spec::Kind::DiskFill(pb::DiskFillSpec {
                path: d.path.display().to_string(),
                size_bytes: match d.amount {
                    FillAmount::Bytes(b) => b,
                    _ => 0,
                },
                percent: match d.amount {
                    FillAmount::Percent(p) => p.get(),
                    _ => 0.0,
                },
                free_bytes: match d.amount {
                    FillAmount::Free(b) => b,
                    _ => 0,
                },
                ramp_ms: d.ramp.as_millis() as u64,
            }),
            FaultSpec::IoLimit(i) => pb::fault_spec::Kind::IoLimit(pb::IoLimitSpec {
                target: Some(placement_pb(&i.target)),
                device: match &i.device {
                    IoDevice::Device(p) => p.display().to_string(),
                    IoDevice::Path(_) => String::new(),
                },
                path: match &i.device {
                    IoDevice::Path(p) => p.display().to_string(),
                    IoDevice::Device(_) => String::new(),
                },
                read_bps: i.values[0].unwrap_or(0),
                write_bps: i.values[1].unwrap_or(0),
                read_iops: i.values[2].unwrap_or(0),
                write_iops: i.values[3].unwrap_or(0),
            }),
            FaultSpec::IoStress(i) => pb::fault_spec::Kind::IoStress(pb::IoStressSpec {
                path: i.path.display().to_string(),
                workers: i.workers,
                size_bytes: i.size_bytes,
                mode: i.mode.as_str().into(),
                write_bps: i.write_bps.unwrap_or(0),
                read_bps: i.read_bps.unwrap_or(0),
            }),
        }),
    }
}

/// A netem probability; 0 means not set.
fn percent(v: f64, field: &str) -> Result<Option<tc::Percent>, FaultError> {
    if v == 0.0 {
        return Ok(None);
    }
    let v = Percent::probability(v).map_err(|m| FaultError::invalid(field, m))?;
    Ok(tc::Percent::new(v))
}

fn pct0(v: f64, field: &str) -> Result<tc::Percent, FaultError> {
    Ok(percent(v, field)?.unwrap_or(tc::Percent::ZERO))
}

/// A `NetworkSpec` message as a validated domain spec.
fn network(n: &pb::NetworkSpec) -> Result<NetworkSpec, FaultError> {
    const F: &str = "spec.network";
    let container = match n.container.trim() {
        "" => None,
        c => Some(container_query(c, format!("{F}.container"))?),
    };
    let iface = match (n.iface.trim(), &container) {
        // A container's interface is eth0 unless named.
        ("", Some(_)) => "eth0",
        (i, _) => i,
    };
    if container.is_some() && (!n.netns.trim().is_empty() || n.pid != 0) {
        return Err(FaultError::invalid(
            format!("{F}.container"),
            format!(
                "give a container, a netns or a pid, not more than one (got {})",
                [
                    ("container", true),
                    ("netns", !n.netns.trim().is_empty()),
                    ("pid", n.pid != 0)
                ]
                .iter()
                .filter(|(_, g)| *g)
                .map(|(w, _)| *w)
                .collect::<Vec<_>>()
                .join(" and ")
            ),
        ));
    }
    if iface.is_empty() {
        return Err(FaultError::invalid(
            format!("{F}.iface"),
            "missing: name the interface (e.g. eth0)",
        ));
    }
    if iface.len() > 15 || iface.contains(['/', ' ']) {
        return Err(FaultError::invalid(
            format!("{F}.iface"),
            format!("{iface:?} is not an interface name"),
        ));
    }
    let target = match (n.netns.trim(), n.pid) {
        ("", 0) => NetnsTarget::Current,
        ("", p) if p > 0 => NetnsTarget::Pid(p as u32),
        ("", p) => {
            return Err(FaultError::invalid(
                format!("{F}.pid"),
                format!("{p} is not a process id"),
            ));
        }
        (ns, 0) if ns.starts_with('/') => NetnsTarget::Path(ns.into()),
        (ns, 0) if !ns.contains('/') && ns != "." && ns != ".." => NetnsTarget::Named(ns.into()),
        (ns, 0) => {
            return Err(FaultError::invalid(
                format!("{F}.netns"),
                format!("{ns:?} is neither a name under /run/netns nor an absolute path"),
            ));
        }
        _ => {
            return Err(FaultError::invalid(
                format!("{F}.netns"),
                "give a netns or a pid, not both",
            ));
        }
    };
    let direction = match n.direction.trim() {
        "" | "egress" => tc::Direction::Egress,
        "ingress" => tc::Direction::Ingress,
        "both" => tc::Direction::Both,
        d => {
            return Err(FaultError::invalid(
                format!("{F}.direction"),
                format!("{d:?}: use egress, ingress or both"),
            ));
        }
    };
    let e = n.netem.clone().unwrap_or_default();
    let nf = |x: &str| format!("{F}.netem.{x}");
    let mut netem = tc::Netem::default();
    if e.limit > 0 {
        netem.limit = e.limit;
    }
    let distribution = match e.distribution.trim() {
        "" | "uniform" => tc::Distribution::Uniform,
        "normal" => tc::Distribution::Normal,
        "pareto" => tc::Distribution::Pareto,
        "paretonormal" => tc::Distribution::ParetoNormal,
        d => {
            return Err(FaultError::invalid(
                nf("distribution"),
                format!("{d:?}: use uniform, normal, pareto or paretonormal"),
            ));
        }
    };
    if e.delay_us > 0
        || e.jitter_us > 0
        || e.delay_correlation != 0.0
        || distribution != tc::Distribution::Uniform
    {
        if e.delay_us == 0 {
            return Err(FaultError::invalid(
                nf("jitter"),
                "jitter, delay correlation and distribution need a delay",
            ));
        }
        netem.delay = Some(tc::Delay {
            latency: std::time::Duration::from_micros(e.delay_us),
            jitter: std::time::Duration::from_micros(e.jitter_us),
            correlation: pct0(e.delay_correlation, &nf("delay_correlation"))?,
            distribution,
        });
    }
    if let Some(ge) = &e.loss_gemodel {
        if e.loss_percent != 0.0 {
            return Err(FaultError::invalid(
                nf("loss_gemodel"),
                "give random loss or a Gilbert-Elliott model, not both",
            ));
        }
        netem.loss = Some(tc::Loss::GilbertElliott(tc::GilbertElliott {
            p: pct0(ge.p, &nf("loss_gemodel.p"))?,
            r: pct0(ge.r, &nf("loss_gemodel.r"))?,
            loss_bad: pct0(ge.loss_bad, &nf("loss_gemodel.loss_bad"))?,
            loss_good: pct0(ge.loss_good, &nf("loss_gemodel.loss_good"))?,
        }));
    } else if let Some(p) = percent(e.loss_percent, &nf("loss_percent"))? {
        netem.loss = Some(tc::Loss::Random(tc::Chance {
            probability: p,
            correlation: pct0(e.loss_correlation, &nf("loss_correlation"))?,
        }));
    } else if e.loss_correlation != 0.0 {
        return Err(FaultError::invalid(
            nf("loss_correlation"),
            "a loss correlation needs a loss percentage",
        ));
    }
    let chance = |v: f64, c: f64, name: &str| -> Result<Option<tc::Chance>, FaultError> {
        match percent(v, &nf(&format!("{name}_percent")))? {
            Some(p) => Ok(Some(tc::Chance {
                probability: p,
                correlation: pct0(c, &nf(&format!("{name}_correlation")))?,
            })),
            None if c != 0.0 => Err(FaultError::invalid(
                nf(&format!("{name}_correlation")),
                format!("a {name} correlation needs a {name} percentage"),
            )),
            None => Ok(None),
        }
    };
    netem.duplicate = chance(e.duplicate_percent, e.duplicate_correlation, "duplicate")?;
    netem.corrupt = chance(e.corrupt_percent, e.corrupt_correlation, "corrupt")?;
    if let Some(p) = percent(e.reorder_percent, &nf("reorder_percent"))? {
        netem.reorder = Some(tc::Reorder {
            probability: p,
            correlation: pct0(e.reorder_correlation, &nf("reorder_correlation"))?,
            gap: e.gap,
        });
    } else if e.gap > 0 || e.reorder_correlation != 0.0 {
        return Err(FaultError::invalid(
            nf("gap"),
            "gap and reorder correlation need a reorder percentage",
        ));
    }
    if e.rate_bits_per_sec > 0 {
        if e.rate_bits_per_sec < 8 {
            return Err(FaultError::invalid(
                nf("rate_bits_per_sec"),
                "a rate below 8 bit/s rounds to 0 bytes/s, which stops all traffic",
            ));
        }
        netem.rate = Some(tc::Rate {
            bytes_per_sec: e.rate_bits_per_sec / 8,
            packet_overhead: 0,
            cell_size: 0,
            cell_overhead: 0,
        });
    }
    let no_netem = netem
        == (tc::Netem {
            limit: netem.limit,
            ..tc::Netem::default()
        });
    if n.blackhole && (!no_netem || e.limit != 0) {
        return Err(FaultError::invalid(
            format!("{F}.blackhole"),
            "a blackhole drops every selected packet: it takes no netem parameter (delay, loss, duplicate, corrupt, reorder, rate, limit); give one or the other",
        ));
    }
    if no_netem && !n.blackhole {
        return Err(FaultError::invalid(
            format!("{F}.netem"),
            "no netem parameter given: set at least one of delay, loss, duplicate, corrupt, reorder, rate",
        ));
    }
    let sel = n.selection.clone().unwrap_or_default();
    let sf = |x: &str| format!("{F}.selection.{x}");
    let cidrs = |v: &[String], name: &str| -> Result<Vec<tc::Cidr>, FaultError> {
        v.iter()
            .map(|c| {
                c.trim()
                    .parse::<tc::Cidr>()
                    .map_err(|e| FaultError::invalid(sf(name), e.to_string()))
            })
            .collect()
    };
    let port = |v: &str, name: &str| -> Result<Option<tc::PortRange>, FaultError> {
        match v.trim() {
            "" => Ok(None),
            p => p
                .parse::<tc::PortRange>()
                .map(Some)
                .map_err(|e| FaultError::invalid(sf(name), e.to_string())),
        }
    };
    if sel.dns
        && (!sel.dport.trim().is_empty()
            || !sel.sport.trim().is_empty()
            || !sel.protocol.trim().is_empty())
    {
        return Err(FaultError::invalid(
            sf("dns"),
            "DNS selects destination port 53, UDP and TCP, itself: give no dport, sport or protocol with it",
        ));
    }
    let mut selection = tc::Selection {
        dst: cidrs(&sel.dst, "dst")?,
        src: cidrs(&sel.src, "src")?,
        dport: port(&sel.dport, "dport")?,
        sport: port(&sel.sport, "sport")?,
        protocol: match sel.protocol.trim() {
            "" => None,
            p => Some(
                p.parse::<tc::IpProto>()
                    .map_err(|e| FaultError::invalid(sf("protocol"), e.to_string()))?,
            ),
        },
    };
    if (selection.dport.is_some() || selection.sport.is_some()) && selection.protocol.is_none() {
        return Err(FaultError::invalid(
            sf("protocol"),
            "ports need a protocol (tcp or udp): port offsets are only meaningful within one",
        ));
    }
    if sel.dns {
        // Port 53 at the UDP and TCP port offset, with no protocol key: both.
        selection.dport = Some(tc::PortRange {
            first: 53,
            last: 53,
        });
    }
    let fault = tc::NetFault {
        iface: iface.to_string(),
        direction,
        netem,
        selection,
    };
    let mut spec = match container {
        Some(c) => NetworkSpec::in_container(c, fault),
        None => NetworkSpec::new(target, fault),
    }?;
    if n.blackhole {
        spec.set_blackhole();
    }
    if sel.dns {
        spec.set_dns();
    }
    Ok(spec)
}

fn placement(p: Option<&pb::StressPlacement>, field: &str) -> Result<Placement, FaultError> {
    let Some(p) = p else {
        return Ok(Placement::Own);
    };
    let given = [
        !p.cgroup.is_empty(),
        !p.unit.is_empty(),
        p.pid != 0,
        !p.container.trim().is_empty(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if given > 1 {
        return Err(FaultError::invalid(
            field,
            "give at most one of cgroup, unit, pid, container",
        ));
    }
    if !p.container.trim().is_empty() {
        return container_query(&p.container, format!("{field}.container"))
            .map(Placement::Container);
    }
    if !p.cgroup.is_empty() {
        return CgroupPath::parse(&p.cgroup)
            .map(Placement::Cgroup)
            .map_err(|m| FaultError::invalid(format!("{field}.cgroup"), m));
    }
    if !p.unit.is_empty() {
        return UnitName::parse(&p.unit)
            .map(Placement::Unit)
            .map_err(|m| FaultError::invalid(format!("{field}.unit"), m));
    }
    if p.pid < 0 {
        return Err(FaultError::invalid(
            format!("{field}.pid"),
            format!("{} is not a process id", p.pid),
        ));
    }
    Ok(if p.pid > 0 {
        Placement::Pid(p.pid)
    } else {
        Placement::Own
    })
}

fn placement_pb(p: &Placement) -> pb::StressPlacement {
    match p {
        Placement::Own => pb::StressPlacement::default(),
        Placement::Cgroup(c) => pb::StressPlacement {
            cgroup: c.to_string(),
            ..Default::default()
        },
        Placement::Unit(u) => pb::StressPlacement {
            unit: u.to_string(),
            ..Default::default()
        },
        Placement::Pid(pid) => pb::StressPlacement {
            pid: *pid,
            ..Default::default()
        },
        Placement::Container(c) => pb::StressPlacement {
            container: c.to_string(),
            ..Default::default()
        },
    }
}

fn in_percent(v: f64, field: &str) -> Result<Percent, FaultError> {
    Percent::share(v).map_err(|m| FaultError::invalid(field, m))
}

fn cpu(c: &pb::CpuSpec) -> Result<CpuSpec, FaultError> {
    let amount = match (c.percent != 0.0, c.cores != 0 || c.load != 0.0) {
        (true, false) => CpuAmount::Share(in_percent(c.percent, "spec.cpu.percent")?),
        (false, true) => {
            if c.cores == 0 || c.cores > 1024 {
                return Err(FaultError::invalid(
                    "spec.cpu.cores",
                    format!("{} is not in 1..=1024", c.cores),
                ));
            }
            CpuAmount::Cores {
                cores: c.cores,
                load: in_percent(c.load, "spec.cpu.load")?,
            }
        }
        (true, true) => {
            return Err(FaultError::invalid(
                "spec.cpu",
                "give percent, or cores with load, not both",
            ));
        }
        (false, false) => {
            return Err(FaultError::invalid(
                "spec.cpu",
                "give percent, or cores with load",
            ));
        }
    };
    Ok(CpuSpec {
        amount,
        placement: placement(c.placement.as_ref(), "spec.cpu.placement")?,
    })
}

fn memory(m: &pb::MemorySpec) -> Result<MemSpec, FaultError> {
    let amount = match (m.size_bytes != 0, m.percent != 0.0) {
        (true, false) => MemAmount::Bytes(m.size_bytes),
        (false, true) => MemAmount::Percent(in_percent(m.percent, "spec.memory.percent")?),
        (true, true) => {
            return Err(FaultError::invalid(
                "spec.memory",
                "give size_bytes or percent, not both",
            ));
        }
        (false, false) => {
            return Err(FaultError::invalid(
                "spec.memory",
                "give size_bytes or percent",
            ));
        }
    };
    Ok(MemSpec {
        amount,
        ramp: Duration::from_millis(m.ramp_ms),
        placement: placement(m.placement.as_ref(), "spec.memory.placement")?,
    })
}

fn io_limit(i: &pb::IoLimitSpec) -> Result<IoLimitSpec, FaultError> {
    let target = placement(i.target.as_ref(), "spec.io_limit.target")?;
    if target == Placement::Own {
        return Err(FaultError::invalid(
            "spec.io_limit.target",
            "give the cgroup to throttle: cgroup, unit, pid or container",
        ));
    }
    let device = match (i.device.is_empty(), i.path.is_empty()) {
        (false, true) => IoDevice::Device(i.device.clone().into()),
        (true, false) => IoDevice::Path(i.path.clone().into()),
        _ => {
            return Err(FaultError::invalid(
                "spec.io_limit",
                "give exactly one of device or path",
            ));
        }
    };
    let v = |n: u64| (n != 0).then_some(n);
    Ok(IoLimitSpec {
        target,
        device,
        values: [
            v(i.read_bps),
            v(i.write_bps),
            v(i.read_iops),
            v(i.write_iops),
        ],
    })
}

fn io_stress(i: &pb::IoStressSpec) -> Result<crate::fault::iostress::IoStressSpec, FaultError> {
    let path = std::path::PathBuf::from(&i.path);
    if !path.is_absolute() {
        return Err(FaultError::invalid(
            "spec.io_stress.path",
            format!("{:?} is not an absolute path", i.path),
        ));
    }
    let mode = if i.mode.is_empty() {
        crate::sys::stress::IoMode::Write
    } else {
        crate::sys::stress::IoMode::parse(&i.mode).ok_or_else(|| {
            FaultError::invalid(
                "spec.io_stress.mode",
                format!("{:?} is not read, write or mixed", i.mode),
            )
        })?
    };
    let v = |n: u64| (n != 0).then_some(n);
    Ok(crate::fault::iostress::IoStressSpec {
        path,
        workers: i.workers.max(1),
        size_bytes: if i.size_bytes == 0 {
            crate::fault::iostress::DEFAULT_SIZE
        } else {
            i.size_bytes
        },
        mode,
        write_bps: v(i.write_bps),
        read_bps: v(i.read_bps),
    })
}

fn disk_fill(d: &pb::DiskFillSpec) -> Result<DiskFillSpec, FaultError> {
    if d.path.is_empty() {
        return Err(FaultError::invalid(
            "spec.disk_fill.path",
            "give the directory whose filesystem to fill",
        ));
    }
    let path = std::path::PathBuf::from(&d.path);
    if !path.is_absolute() {
        return Err(FaultError::invalid(
            "spec.disk_fill.path",
            format!("{:?} is not an absolute path", d.path),
        ));
    }
    let given = [d.size_bytes != 0, d.percent != 0.0, d.free_bytes != 0];
    let amount = match given {
        [true, false, false] => FillAmount::Bytes(d.size_bytes),
        [false, true, false] => {
            FillAmount::Percent(in_percent(d.percent, "spec.disk_fill.percent")?)
        }
        [false, false, true] => FillAmount::Free(d.free_bytes),
        _ => {
            return Err(FaultError::invalid(
                "spec.disk_fill",
                "give exactly one of size_bytes, percent or free_bytes",
            ));
        }
    };
    Ok(DiskFillSpec {
        path,
        amount,
        ramp: Duration::from_millis(d.ramp_ms),
    })
}

pub fn target(p: &ProcInfo) -> pb::ProcessTarget {
    pb::ProcessTarget {
        pid: p.pid,
        comm: p.comm.clone(),
        cmdline: p.cmdline.clone(),
        uid: p.uid,
    }
}

pub fn state(s: State) -> pb::FaultState {
    match s {
        State::Pending => pb::FaultState::Pending,
        State::Active => pb::FaultState::Active,
        State::Reverted => pb::FaultState::Reverted,
        State::Expired => pb::FaultState::Expired,
        State::Failed => pb::FaultState::Failed,
        State::Completed => pb::FaultState::Completed,
    }
}

pub fn fault(r: &FaultRecord) -> pb::Fault {
    pb::Fault {
        id: r.id.clone(),
        kind: kind(r.kind()) as i32,
        spec: Some(spec_pb(&r.spec)),
        state: state(r.state) as i32,
        labels: r.labels.clone(),
        requested_by: r.requested_by.clone(),
        created_at_ms: ms(Some(r.created_at)),
        expires_at_ms: ms(r.expires_at),
        ended_at_ms: ms(r.ended_at),
        end_reason: r.end_reason.clone(),
        description: r.description.clone(),
        undo: r.undo.clone(),
        targets: r.targets.iter().map(target).collect(),
        duration_ms: r.duration.map(|d| d.as_millis() as u64).unwrap_or(0),
        lease_id: r.lease.clone().unwrap_or_default(),
        container: r.container.as_ref().map(container),
    }
}

/// A resolved container, as the API shows it.
pub fn container(c: &Container) -> pb::Container {
    pb::Container {
        id: c.id.clone(),
        runtime: c.runtime.to_string(),
        driver: c.driver.to_string(),
        pod_uid: c.pod_uid.clone().unwrap_or_default(),
        cgroup: c.cgroup().to_string(),
        processes: c
            .procs
            .iter()
            .map(|(pid, comm)| pb::ProcessTarget {
                pid: *pid,
                comm: comm.clone(),
                ..Default::default()
            })
            .collect(),
        netns_inode: c.netns.map(|n| n.inode).unwrap_or(0),
        netns_pid: c.netns.map(|n| n.pid).unwrap_or(0),
        host_network: c.netns.is_some_and(|n| n.host),
    }
}

pub fn event(e: &engine::Event) -> pb::Event {
    use engine::EventType as E;
    pb::Event {
        r#type: match e.kind {
            E::Injected => pb::EventType::Injected,
            E::Reverted => pb::EventType::Reverted,
            E::Expired => pb::EventType::Expired,
            E::Failed => pb::EventType::Failed,
            E::Refused => pb::EventType::Refused,
            E::Tick => pb::EventType::Tick,
            E::HealthAbort => pb::EventType::HealthAbort,
        } as i32,
        at_ms: ms(Some(e.at)),
        fault_id: e.fault_id.clone(),
        kind: e.fault_kind.map(kind).unwrap_or(pb::FaultKind::Unspecified) as i32,
        message: e.message.clone(),
        fault: e.fault.as_ref().map(fault),
        requested_by: e.requested_by.clone(),
    }
}

pub fn limits(l: &crate::limits::Limits) -> pb::Limits {
    pb::Limits {
        profile: l.profile.clone(),
        source: l.source.clone(),
        max_duration_ms: l.max_duration.as_millis() as u64,
        max_concurrent_faults: l.max_concurrent_faults,
        max_kills_per_minute: l.process.max_kills_per_minute,
        protected_processes: l.process.protected_processes.clone(),
        protected_units: l.process.protected_units.clone(),
        protected_cgroups: l.process.protected_cgroups.clone(),
        network: Some(pb::NetworkLimits {
            max_delay_ms: l.network.max_delay.as_millis() as u64,
            max_loss_percent: l.network.max_loss_percent,
            max_jitter_ms: l.network.max_jitter.as_millis() as u64,
            max_duplicate_percent: l.network.max_duplicate_percent,
            max_corrupt_percent: l.network.max_corrupt_percent,
            max_reorder_percent: l.network.max_reorder_percent,
            min_rate_bits_per_sec: l.network.min_rate_bits,
            protected_ports: l
                .network
                .protected_ports
                .iter()
                .map(|p| u32::from(*p))
                .collect(),
            protected_cidrs: l
                .network
                .protected_cidrs
                .iter()
                .map(|c| c.to_string())
                .collect(),
            allow_blackhole: l.network.allow_blackhole,
        }),
        cpu: Some(pb::StressLimits {
            max_percent: l.cpu.max_percent,
            max_duration_ms: l.cpu.max_duration.as_millis() as u64,
            max_concurrent: l.cpu.max_concurrent.unwrap_or(0),
        }),
        memory: Some(pb::StressLimits {
            max_percent: l.memory.max_percent,
            max_duration_ms: l.memory.max_duration.as_millis() as u64,
            max_concurrent: l.memory.max_concurrent.unwrap_or(0),
        }),
        protected_interfaces: l.network.protected_interfaces.clone(),
        require_lease: l.require_lease,
        max_lease_ttl_ms: l.max_lease_ttl.as_millis() as u64,
        process_max_concurrent: l.process.max_concurrent.unwrap_or(0),
        network_max_concurrent: l.network.max_concurrent.unwrap_or(0),
        disk: Some(pb::DiskLimits {
            max_used_percent: l.disk.max_used_percent,
            min_free_bytes: l.disk.min_free,
            protected_paths: l.disk.protected_paths.clone(),
            max_duration_ms: l.disk.max_duration.as_millis() as u64,
            max_concurrent: l.disk.max_concurrent.unwrap_or(0),
        }),
        io: Some(pb::IoLimits {
            min_bps: l.io.min_bps,
            min_iops: l.io.min_iops,
            max_duration_ms: l.io.max_duration.as_millis() as u64,
            max_concurrent: l.io.max_concurrent.unwrap_or(0),
            stress_max_workers: l.io.stress_max_workers,
            stress_max_bps: l.io.stress_max_bps,
        }),
        health_conditions: l.health.describe(),
        health_interval_ms: if l.health.is_empty() {
            0
        } else {
            l.health.interval.as_millis() as u64
        },
    }
}

pub fn lease(l: &engine::LeaseInfo) -> pb::Lease {
    pb::Lease {
        id: l.id.clone(),
        ttl_ms: l.ttl.as_millis() as u64,
        expires_at_ms: ms(Some(l.expires_at)),
        holder: l.holder.clone(),
        fault_ids: l.faults.clone(),
    }
}

/// The reply to an `Inject` (a dry run's too).
pub fn inject_response(out: &engine::InjectOutcome, dry_run: bool) -> pb::InjectResponse {
    pb::InjectResponse {
        container: out.container.as_ref().map(container),
        fault: out.fault.as_ref().map(fault),
        dry_run,
        targets: out.targets.iter().map(target).collect(),
        excluded: out
            .excluded
            .iter()
            .map(|(p, why)| pb::ExcludedProcess {
                process: Some(target(p)),
                reason: why.clone(),
            })
            .collect(),
        plan: out.plan.clone(),
    }
}

/// The per-fault results of `RevertAll` and `CloseLease`.
pub fn revert_results(results: Vec<engine::RevertResult>) -> Vec<pb::RevertResult> {
    results
        .into_iter()
        .map(|r| pb::RevertResult {
            id: r.id,
            ok: r.result.is_ok(),
            error: r.result.err().unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn req(kind: pb::fault_spec::Kind, duration_ms: u64) -> pb::InjectRequest {
        pb::InjectRequest {
            spec: Some(pb::FaultSpec { kind: Some(kind) }),
            duration_ms,
            labels: HashMap::new(),
            dry_run: false,
            lease_id: String::new(),
        }
    }

    fn kill(sel: pb::ProcessSelector) -> pb::fault_spec::Kind {
        pb::fault_spec::Kind::Kill(pb::KillSpec {
            selector: Some(sel),
            pick: None,
            signal: String::new(),
            every_ms: 0,
        })
    }

    fn err(r: pb::InjectRequest) -> String {
        inject_request(&r, "test".into()).unwrap_err().to_string()
    }

    #[test]
    fn blackhole_dns_and_both_directions() {
        let net = |n: pb::NetworkSpec| {
            req(
                pb::fault_spec::Kind::Network(pb::NetworkSpec {
                    iface: "veth0".into(),
                    ..n
                }),
                1000,
            )
        };
        let r = inject_request(
            &net(pb::NetworkSpec {
                blackhole: true,
                direction: "both".into(),
                selection: Some(pb::TrafficSelector {
                    dst: vec!["10.0.3.0/24".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            "test".into(),
        )
        .unwrap();
        let FaultSpec::Network(n) = r.fault.spec() else {
            panic!("not a network fault")
        };
        assert!(n.blackhole());
        assert_eq!(n.fault().direction, tc::Direction::Both);
        let back = n.to_proto();
        assert!(back.blackhole);
        assert_eq!(back.direction, "both");
        assert_eq!(
            err(net(pb::NetworkSpec {
                blackhole: true,
                netem: Some(pb::NetemSpec {
                    delay_us: 1000,
                    ..Default::default()
                }),
                ..Default::default()
            })),
            "invalid spec.network.blackhole: a blackhole drops every selected packet: it takes no netem parameter (delay, loss, duplicate, corrupt, reorder, rate, limit); give one or the other"
        );
        // DNS: port 53 without a protocol (UDP and TCP), shown back as dns.
        let dns = |sel: pb::TrafficSelector| {
            net(pb::NetworkSpec {
                netem: Some(pb::NetemSpec {
                    delay_us: 1000,
                    ..Default::default()
                }),
                selection: Some(pb::TrafficSelector { dns: true, ..sel }),
                ..Default::default()
            })
        };
        let r = inject_request(&dns(Default::default()), "test".into()).unwrap();
        let FaultSpec::Network(n) = r.fault.spec() else {
            panic!("not a network fault")
        };
        let s = &n.fault().selection;
        assert_eq!(
            (s.dport, s.protocol),
            (
                Some(tc::PortRange {
                    first: 53,
                    last: 53
                }),
                None
            )
        );
        let sel = n.to_proto().selection.unwrap();
        assert!(sel.dns && sel.dport.is_empty(), "{sel:?}");
        for bad in [
            pb::TrafficSelector {
                dport: "53".into(),
                ..Default::default()
            },
            pb::TrafficSelector {
                protocol: "udp".into(),
                ..Default::default()
            },
        ] {
            assert!(
                err(dns(bad)).starts_with("invalid spec.network.selection.dns: "),
                "refused"
            );
        }
        assert!(
            err(net(pb::NetworkSpec {
                direction: "sideways".into(),
                blackhole: true,
                ..Default::default()
            }))
            .contains("use egress, ingress or both")
        );
    }

    #[test]
    fn containers_are_taken_in_every_kind_and_shown_back() {
        const ID: &str = "75bd73545e7023a79a68ca9c3590f63ef1397b86ab461edfab5e0a8456d68212";
        let sel = pb::ProcessSelector {
            container: Some(format!("containerd://{}", &ID[..12])),
            ..Default::default()
        };
        let r = inject_request(&req(kill(sel), 0), "test".into()).unwrap();
        let pb::fault_spec::Kind::Kill(k) = spec_pb(r.fault.spec()).kind.unwrap() else {
            panic!("not a kill")
        };
        assert_eq!(k.selector.unwrap().container.as_deref(), Some(&ID[..12]));
        // A network fault in a container: eth0 unless named; never with a netns or pid.
        let net = |n: pb::NetworkSpec| {
            req(
                pb::fault_spec::Kind::Network(pb::NetworkSpec {
                    netem: Some(pb::NetemSpec {
                        delay_us: 10_000,
                        ..Default::default()
                    }),
                    ..n
                }),
                1000,
            )
        };
        let r = inject_request(
            &net(pb::NetworkSpec {
                container: ID.into(),
                ..Default::default()
            }),
            "test".into(),
        )
        .unwrap();
        let FaultSpec::Network(n) = r.fault.spec() else {
            panic!("not a network fault")
        };
        assert_eq!(n.fault().iface, "eth0");
        assert_eq!(n.container().map(|c| c.as_str()), Some(ID));
        assert_eq!(n.to_proto().container, ID);
        assert_eq!(
            err(net(pb::NetworkSpec {
                container: ID.into(),
                pid: 42,
                ..Default::default()
            })),
            "invalid spec.network.container: give a container, a netns or a pid, not more than one (got container and pid)"
        );
        assert_eq!(
            err(net(pb::NetworkSpec {
                container: "nginx".into(),
                ..Default::default()
            })),
            "invalid spec.network.container: \"nginx\" is not a container id: 'n' is not a hex digit (container ids are 64 hex digits; a name is not accepted)"
        );
        // Stress placed in a container.
        let cpu = |p: pb::StressPlacement| {
            req(
                pb::fault_spec::Kind::Cpu(pb::CpuSpec {
                    percent: 10.0,
                    placement: Some(p),
                    ..Default::default()
                }),
                1000,
            )
        };
        let r = inject_request(
            &cpu(pb::StressPlacement {
                container: ID[..12].into(),
                ..Default::default()
            }),
            "test".into(),
        )
        .unwrap();
        let FaultSpec::Cpu(c) = r.fault.spec() else {
            panic!("not cpu")
        };
        assert!(matches!(&c.placement, Placement::Container(q) if q.as_str() == &ID[..12]));
        assert_eq!(
            err(cpu(pb::StressPlacement {
                container: ID.into(),
                pid: 3,
                ..Default::default()
            })),
            "invalid spec.cpu.placement: give at most one of cgroup, unit, pid, container"
        );
        assert_eq!(
            err(cpu(pb::StressPlacement {
                container: "75bd7354".into(),
                ..Default::default()
            })),
            "invalid spec.cpu.placement.container: \"75bd7354\" is 8 hex digits; give at least 12 (what `docker ps` shows) so that it names one container"
        );
    }

    #[test]
    fn rejections_name_the_field() {
        assert_eq!(
            err(req(kill(pb::ProcessSelector::default()), 0)),
            "invalid spec.kill.selector: empty selector: give at least one of pid, name, cmdline, cgroup, unit, user, container"
        );
        assert_eq!(
            err(pb::InjectRequest::default()),
            "invalid spec: missing: choose a fault kind (kill, pause, network, cpu, memory, disk_fill, io_limit)"
        );
        let bad_regex = pb::ProcessSelector {
            cmdline: Some("(".into()),
            ..Default::default()
        };
        assert!(
            err(req(kill(bad_regex), 0))
                .starts_with("invalid spec.kill.selector.cmdline: invalid regex")
        );
        let k = pb::fault_spec::Kind::Kill(pb::KillSpec {
            selector: Some(pb::ProcessSelector {
                pid: Some(5),
                ..Default::default()
            }),
            pick: None,
            signal: "NOPE".into(),
            every_ms: 0,
        });
        assert!(err(req(k, 0)).starts_with("invalid spec.kill.signal: unknown signal \"NOPE\""));
        let p = pb::fault_spec::Kind::Pause(pb::PauseSpec {
            selector: Some(pb::ProcessSelector {
                pid: Some(5),
                ..Default::default()
            }),
            pick: Some(pb::Pick {
                mode: Some(pb::pick::Mode::Percent(150.0)),
            }),
        });
        assert_eq!(
            err(req(p.clone(), 1000)),
            "invalid spec.pause.pick.percent: 150 is not in (0, 100]"
        );
        let p0 = pb::fault_spec::Kind::Pause(pb::PauseSpec {
            selector: Some(pb::ProcessSelector {
                pid: Some(5),
                ..Default::default()
            }),
            pick: None,
        });
        assert_eq!(
            err(req(p0, 0)),
            "invalid duration_ms: a pause fault needs a duration greater than zero (--for)"
        );
        let neg = pb::ProcessSelector {
            pid: Some(-3),
            ..Default::default()
        };
        assert_eq!(
            err(req(kill(neg), 0)),
            "invalid spec.kill.selector.pid: -3 is not a process id (must be > 0)"
        );
        let rel = pb::ProcessSelector {
            cgroup: Some("x/../y".into()),
            ..Default::default()
        };
        assert!(err(req(kill(rel), 0)).starts_with("invalid spec.kill.selector.cgroup:"));
        let nouser = pb::ProcessSelector {
            user: Some("no-such-user-xyz".into()),
            ..Default::default()
        };
        assert_eq!(
            err(req(kill(nouser), 0)),
            "invalid spec.kill.selector.user: no user named \"no-such-user-xyz\" on this node"
        );
    }

    #[test]
    fn spec_round_trips_with_defaults_filled_in() {
        let r = req(
            kill(pb::ProcessSelector {
                name: Some("sleep".into()),
                ..Default::default()
            }),
            0,
        );
        let d = inject_request(&r, "t".into()).unwrap();
        let back = spec_pb(d.fault.spec());
        match back.kind.unwrap() {
            pb::fault_spec::Kind::Kill(k) => {
                assert_eq!(k.signal, "KILL");
                assert_eq!(k.pick.unwrap().mode, Some(pb::pick::Mode::All(true)));
                assert_eq!(k.selector.unwrap().name.as_deref(), Some("sleep"));
            }
            other => panic!("{other:?}"),
        }
    }
}
