//! From command-line arguments to API requests. Only syntax is checked here (durations,
//! `key=value` labels); what the agent must decide (limits, signal names, regexes,
//! percent ranges, an empty selector) is left to it, so there is one source of truth.

use std::collections::HashMap;

use faultline_proto::units::parse_duration;
use faultline_proto::v1::{
    CpuSpec, FaultSpec, GilbertElliott, InjectRequest, KillSpec, MemorySpec, NetemSpec,
    NetworkSpec, PauseSpec, Pick, ProcessSelector, StressPlacement, TrafficSelector, fault_spec,
    pick,
};

use crate::cli::{
    CommonInjectArgs, CpuArgs, KillArgs, MemArgs, NetArgs, PauseArgs, PickArgs, PlacementArgs,
    SelectorArgs,
};

/// Input refused before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A duration flag that does not parse, or is zero.
    #[error("invalid {flag}: {reason}")]
    BadDuration { flag: &'static str, reason: String },
    /// A `--label` that is not `key=value`.
    #[error("invalid --label {0:?}: expected KEY=VALUE with a non-empty key")]
    BadLabel(String),
    /// The same label key twice.
    #[error("invalid --label {0:?}: the key is given twice")]
    DuplicateLabel(String),
    /// Any other flag that does not parse; the message names the flag.
    #[error("{0}")]
    BadFlag(String),
}

/// Parses a duration flag into whole milliseconds. Zero is refused here because zero
/// means "unset" on the wire.
pub fn duration_flag(flag: &'static str, text: &str) -> Result<u64, RequestError> {
    let d = parse_duration(text).map_err(|reason| RequestError::BadDuration { flag, reason })?;
    let ms = d.as_millis();
    if ms == 0 {
        return Err(RequestError::BadDuration {
            flag,
            reason: format!(
                "{text:?} is {}: a duration must be at least 1ms",
                if d.is_zero() {
                    "zero"
                } else {
                    "under a millisecond"
                }
            ),
        });
    }
    Ok(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// Parses repeated `--label key=value` flags.
pub fn labels(raw: &[String]) -> Result<HashMap<String, String>, RequestError> {
    let mut out = HashMap::new();
    for l in raw {
        let Some((k, v)) = l.split_once('=') else {
            return Err(RequestError::BadLabel(l.clone()));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(RequestError::BadLabel(l.clone()));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(RequestError::DuplicateLabel(l.clone()));
        }
    }
    Ok(out)
}

/// The selector as sent: each flag given becomes a field.
pub fn selector(a: &SelectorArgs) -> ProcessSelector {
    ProcessSelector {
        pid: a.pid,
        name: a.name.clone(),
        cmdline: a.cmdline.clone(),
        cgroup: a.cgroup.clone(),
        unit: a.unit.clone(),
        user: a.user.clone(),
    }
}

/// The pick as sent: `--count` or `--percent` if given, else all.
pub fn pick(a: &PickArgs) -> Pick {
    let mode = if let Some(n) = a.count {
        pick::Mode::Count(n)
    } else if let Some(p) = a.percent {
        pick::Mode::Percent(p)
    } else {
        pick::Mode::All(true)
    };
    Pick { mode: Some(mode) }
}

fn request(
    spec: fault_spec::Kind,
    duration_ms: u64,
    common: &CommonInjectArgs,
) -> Result<InjectRequest, RequestError> {
    Ok(InjectRequest {
        spec: Some(FaultSpec { kind: Some(spec) }),
        duration_ms,
        labels: labels(&common.labels)?,
        dry_run: common.dry_run,
        lease_id: common.lease.clone().unwrap_or_default(),
    })
}

/// `faultctl inject kill ...` as an [`InjectRequest`].
pub fn kill_request(a: &KillArgs) -> Result<InjectRequest, RequestError> {
    let every_ms = match &a.every {
        Some(e) => duration_flag("--every", e)?,
        None => 0,
    };
    let duration_ms = match &a.for_ {
        Some(f) => duration_flag("--for", f)?,
        None => 0,
    };
    let spec = KillSpec {
        selector: Some(selector(&a.selector)),
        pick: Some(pick(&a.pick)),
        signal: a.signal.clone(),
        every_ms,
    };
    request(fault_spec::Kind::Kill(spec), duration_ms, &a.common)
}

/// `faultctl inject pause ...` as an [`InjectRequest`].
pub fn pause_request(a: &PauseArgs) -> Result<InjectRequest, RequestError> {
    let duration_ms = duration_flag("--for", &a.for_)?;
    let spec = PauseSpec {
        selector: Some(selector(&a.selector)),
        pick: Some(pick(&a.pick)),
    };
    request(fault_spec::Kind::Pause(spec), duration_ms, &a.common)
}

/// A percentage flag: `20%` or `20`, in 0..=100.
fn percent_flag(flag: &str, v: &Option<String>) -> Result<f64, RequestError> {
    let Some(t) = v else { return Ok(0.0) };
    let n: f64 = t.trim().trim_end_matches('%').parse().map_err(|_| {
        RequestError::BadFlag(format!(
            "invalid {flag}: {t:?} is not a percentage (e.g. 1%, 0.5)"
        ))
    })?;
    if !(0.0..=100.0).contains(&n) {
        return Err(RequestError::BadFlag(format!(
            "invalid {flag}: {t:?} is not in 0..=100%"
        )));
    }
    Ok(n)
}

fn micros_flag(flag: &str, v: &Option<String>) -> Result<u64, RequestError> {
    match v {
        None => Ok(0),
        Some(t) => faultline_proto::units::parse_duration(t)
            .map(|d| d.as_micros() as u64)
            .map_err(|e| RequestError::BadFlag(format!("invalid {flag}: {e}"))),
    }
}

/// `faultctl inject net ...` as an [`InjectRequest`].
pub fn net_request(a: &NetArgs) -> Result<InjectRequest, RequestError> {
    let duration_ms = duration_flag("--for", &a.for_)?;
    let gemodel = match &a.loss_gemodel {
        None => None,
        Some(t) => {
            let parts: Vec<&str> = t.split(',').collect();
            if !(2..=4).contains(&parts.len()) {
                return Err(RequestError::BadFlag(format!(
                    "invalid --loss-gemodel: {t:?}: write P,R[,1-H[,1-K]] in percent, e.g. 1%,10%"
                )));
            }
            let v: Vec<f64> = parts
                .iter()
                .map(|p| percent_flag("--loss-gemodel", &Some(p.to_string())))
                .collect::<Result<_, _>>()?;
            Some(GilbertElliott {
                p: v[0],
                r: v[1],
                loss_bad: v.get(2).copied().unwrap_or(100.0),
                loss_good: v.get(3).copied().unwrap_or(0.0),
            })
        }
    };
    let rate = match &a.rate {
        None => 0,
        Some(r) => faultline_proto::units::parse_rate(r)
            .map_err(|e| RequestError::BadFlag(format!("invalid --rate: {e}")))?,
    };
    if a.rate.is_some() && rate == 0 {
        return Err(RequestError::BadFlag(
            "invalid --rate: a rate of 0 would stop all traffic".into(),
        ));
    }
    let netem = NetemSpec {
        delay_us: micros_flag("--delay", &a.delay)?,
        jitter_us: micros_flag("--jitter", &a.jitter)?,
        delay_correlation: percent_flag("--delay-correlation", &a.delay_correlation)?,
        distribution: a.distribution.clone().unwrap_or_default(),
        loss_percent: percent_flag("--loss", &a.loss)?,
        loss_correlation: percent_flag("--loss-correlation", &a.loss_correlation)?,
        loss_gemodel: gemodel,
        duplicate_percent: percent_flag("--duplicate", &a.duplicate)?,
        duplicate_correlation: percent_flag("--duplicate-correlation", &a.duplicate_correlation)?,
        corrupt_percent: percent_flag("--corrupt", &a.corrupt)?,
        corrupt_correlation: percent_flag("--corrupt-correlation", &a.corrupt_correlation)?,
        reorder_percent: percent_flag("--reorder", &a.reorder)?,
        reorder_correlation: percent_flag("--reorder-correlation", &a.reorder_correlation)?,
        gap: a.gap.unwrap_or(0),
        rate_bits_per_sec: rate,
        limit: a.limit.unwrap_or(0),
    };
    let spec = NetworkSpec {
        iface: a.iface.clone(),
        netns: a.netns.clone().unwrap_or_default(),
        pid: a.pid.unwrap_or(0),
        direction: a.direction.clone(),
        netem: Some(netem),
        selection: Some(TrafficSelector {
            dst: a.dst.clone(),
            src: a.src.clone(),
            dport: a.dport.clone().unwrap_or_default(),
            sport: a.sport.clone().unwrap_or_default(),
            protocol: a.protocol.clone().unwrap_or_default(),
        }),
    };
    request(fault_spec::Kind::Network(spec), duration_ms, &a.common)
}

fn placement(p: &PlacementArgs) -> StressPlacement {
    StressPlacement {
        cgroup: p.cgroup.clone().unwrap_or_default(),
        unit: p.unit.clone().unwrap_or_default(),
        pid: p.pid.unwrap_or(0),
    }
}

/// `faultctl inject cpu ...` as an [`InjectRequest`].
pub fn cpu_request(a: &CpuArgs) -> Result<InjectRequest, RequestError> {
    let duration_ms = duration_flag("--for", &a.for_)?;
    if a.percent.is_none() && a.cores.is_none() {
        return Err(RequestError::BadFlag(
            "give --percent P, or --cores N --load P".into(),
        ));
    }
    let spec = CpuSpec {
        percent: a.percent.unwrap_or(0.0),
        cores: a.cores.unwrap_or(0),
        load: a.load.unwrap_or(0.0),
        placement: Some(placement(&a.placement)),
    };
    request(fault_spec::Kind::Cpu(spec), duration_ms, &a.common)
}

/// `faultctl inject mem ...` as an [`InjectRequest`].
pub fn mem_request(a: &MemArgs) -> Result<InjectRequest, RequestError> {
    let duration_ms = duration_flag("--for", &a.for_)?;
    let size_bytes = match &a.size {
        Some(s) => faultline_proto::units::parse_size(s)
            .map_err(|e| RequestError::BadFlag(format!("invalid --size: {e}")))?,
        None => 0,
    };
    if a.size.is_none() && a.percent.is_none() {
        return Err(RequestError::BadFlag(
            "give --size SIZE or --percent P".into(),
        ));
    }
    if a.size.is_some() && size_bytes == 0 {
        return Err(RequestError::BadFlag(
            "invalid --size: must be more than 0".into(),
        ));
    }
    let ramp_ms = match &a.ramp {
        Some(r) => parse_duration(r)
            .map_err(|e| RequestError::BadFlag(format!("invalid --ramp: {e}")))?
            .as_millis() as u64,
        None => 0,
    };
    let spec = MemorySpec {
        size_bytes,
        percent: a.percent.unwrap_or(0.0),
        ramp_ms,
        placement: Some(placement(&a.placement)),
    };
    request(fault_spec::Kind::Memory(spec), duration_ms, &a.common)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, InjectCommand};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<InjectRequest, RequestError> {
        let mut v = vec!["faultctl", "inject"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).expect("clap accepts it").command {
            Command::Inject(InjectCommand::Kill(k)) => kill_request(&k),
            Command::Inject(InjectCommand::Pause(p)) => pause_request(&p),
            Command::Inject(InjectCommand::Net(n)) => net_request(&n),
            Command::Inject(InjectCommand::Cpu(c)) => cpu_request(&c),
            Command::Inject(InjectCommand::Mem(m)) => mem_request(&m),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn kill(r: &InjectRequest) -> &KillSpec {
        match r.spec.as_ref().unwrap().kind.as_ref().unwrap() {
            fault_spec::Kind::Kill(k) => k,
            other => panic!("not a kill: {other:?}"),
        }
    }

    #[test]
    fn kill_defaults() {
        let r = parse(&["kill", "--pid", "4242"]).unwrap();
        let k = kill(&r);
        assert_eq!(k.signal, "KILL");
        assert_eq!(k.every_ms, 0);
        assert_eq!(r.duration_ms, 0);
        assert!(!r.dry_run);
        assert!(r.labels.is_empty());
        assert_eq!(k.pick.as_ref().unwrap().mode, Some(pick::Mode::All(true)));
        let s = k.selector.as_ref().unwrap();
        assert_eq!(s.pid, Some(4242));
        assert_eq!(
            (s.name.as_ref(), s.cmdline.as_ref(), s.user.as_ref()),
            (None, None, None)
        );
    }

    #[test]
    fn kill_with_everything() {
        let r = parse(&[
            "kill",
            "--name",
            "nginx",
            "--cmdline",
            "worker.*",
            "--cgroup",
            "/system.slice/x",
            "--unit",
            "nginx.service",
            "--user",
            "www-data",
            "--count",
            "2",
            "--signal",
            "TERM",
            "--every",
            "30s",
            "--for",
            "5m",
            "--dry-run",
            "--label",
            "a=b",
            "--label",
            "team=x=y",
            "--lease",
            "l-7",
        ])
        .unwrap();
        let k = kill(&r);
        assert_eq!(k.signal, "TERM");
        assert_eq!(k.every_ms, 30_000);
        assert_eq!(r.duration_ms, 300_000);
        assert_eq!(r.lease_id, "l-7");
        assert!(r.dry_run);
        assert_eq!(r.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(r.labels.get("team").map(String::as_str), Some("x=y"));
        assert_eq!(k.pick.as_ref().unwrap().mode, Some(pick::Mode::Count(2)));
        let s = k.selector.as_ref().unwrap();
        assert_eq!(s.name.as_deref(), Some("nginx"));
        assert_eq!(s.cmdline.as_deref(), Some("worker.*"));
        assert_eq!(s.cgroup.as_deref(), Some("/system.slice/x"));
        assert_eq!(s.unit.as_deref(), Some("nginx.service"));
        assert_eq!(s.user.as_deref(), Some("www-data"));
        assert_eq!(s.pid, None);
    }

    #[test]
    fn pause_with_percent() {
        let r = parse(&[
            "pause",
            "--unit",
            "w.service",
            "--percent",
            "50",
            "--for",
            "1m30s",
        ])
        .unwrap();
        assert_eq!(r.duration_ms, 90_000);
        match r.spec.unwrap().kind.unwrap() {
            fault_spec::Kind::Pause(p) => {
                assert_eq!(p.pick.unwrap().mode, Some(pick::Mode::Percent(50.0)));
                assert_eq!(p.selector.unwrap().unit.as_deref(), Some("w.service"));
            }
            other => panic!("not a pause: {other:?}"),
        }
    }

    #[test]
    fn semantic_checks_are_left_to_the_agent() {
        // Over 100 %, an unknown signal, a bad regex, an empty selector: all sent as given.
        let r = parse(&[
            "kill",
            "--percent",
            "150",
            "--signal",
            "BOGUS",
            "--cmdline",
            "(",
        ])
        .unwrap();
        assert_eq!(kill(&r).signal, "BOGUS");
        assert!(parse(&["kill"]).is_ok());
    }

    #[test]
    fn duration_errors_name_the_flag() {
        let e = parse(&["pause", "--pid", "1", "--for", "-5s"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid --for: \"-5s\" is negative: a duration must be positive"
        );
        let e = parse(&["pause", "--pid", "1", "--for", "0s"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid --for: \"0s\" is zero: a duration must be at least 1ms"
        );
        let e = parse(&["kill", "--pid", "1", "--every", "10", "--for", "1m"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid --every: \"10\" has no unit (write e.g. 10s or 10ms)"
        );
        let e = parse(&["pause", "--pid", "1", "--for", "soon"]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid --for: \"soon\" is not a duration"),
            "{e}"
        );
    }

    #[test]
    fn labels_must_be_key_value() {
        let e = parse(&["kill", "--pid", "1", "--label", "novalue"]).unwrap_err();
        assert_eq!(e, RequestError::BadLabel("novalue".into()));
        assert_eq!(
            e.to_string(),
            "invalid --label \"novalue\": expected KEY=VALUE with a non-empty key"
        );
        assert!(matches!(
            parse(&["kill", "--pid", "1", "--label", "=v"]),
            Err(RequestError::BadLabel(_))
        ));
        assert!(matches!(
            parse(&["kill", "--pid", "1", "--label", "a=1", "--label", "a=2"]),
            Err(RequestError::DuplicateLabel(_))
        ));
        // An empty value is allowed.
        assert_eq!(
            parse(&["kill", "--pid", "1", "--label", "k="])
                .unwrap()
                .labels["k"],
            ""
        );
    }
}
