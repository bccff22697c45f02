//! Blast-radius policy: a pure function of (spec, duration, limits, active faults).
//! It never touches the kernel. Every `Inject` passes through [`check`] before anything
//! is resolved or changed, and [`check_capacity`] again under the registry lock.

use std::time::Duration;

use faultline_proto::units::format_duration;

use crate::error::FaultError;
use crate::fault::FaultSpec;
use crate::limits::Limits;

fn limit(limits: &Limits, name: &str, value: String, requested: String) -> FaultError {
    FaultError::Limit {
        limit: name.into(),
        value,
        requested,
        file: limits_file(limits),
    }
}

fn limits_file(limits: &Limits) -> String {
    if limits.source == "embedded defaults" {
        format!(
            "{} (absent: embedded {} profile in force)",
            crate::limits::DEFAULT_LIMITS_PATH,
            limits.profile
        )
    } else {
        limits.source.clone()
    }
}

/// Checks a spec and its duration against the limits (not counting other faults).
pub fn check(
    spec: &FaultSpec,
    duration: Option<Duration>,
    limits: &Limits,
) -> Result<(), FaultError> {
    if let Some(d) = duration
        && d > limits.max_duration
    {
        return Err(limit(
            limits,
            "max_duration",
            format_duration(limits.max_duration),
            format_duration(d),
        ));
    }
    match spec {
        FaultSpec::Kill(k) => {
            if let (Some(every), Some(d)) = (k.every, duration) {
                // A loop over `d` kills at least once per round.
                let rounds_per_minute = (60_000.0 / every.as_millis().max(1) as f64).min(
                    // a loop shorter than a minute cannot do more rounds than fit in it
                    (d.as_millis() as f64 / every.as_millis().max(1) as f64)
                        .floor()
                        .max(1.0),
                );
                let max = limits.process.max_kills_per_minute as f64;
                if rounds_per_minute > max {
                    return Err(limit(
                        limits,
                        "process.max_kills_per_minute",
                        limits.process.max_kills_per_minute.to_string(),
                        format!(
                            "a kill every {} ({rounds_per_minute:.0} per minute)",
                            format_duration(every)
                        ),
                    ));
                }
            }
        }
        FaultSpec::Pause(_) => {}
        FaultSpec::Cpu(_) | FaultSpec::Memory(_) => {
            let (name, l) = match spec {
                FaultSpec::Cpu(_) => ("cpu.max_duration", &limits.cpu),
                _ => ("memory.max_duration", &limits.memory),
            };
            if let Some(d) = duration
                && d > l.max_duration
            {
                return Err(limit(
                    limits,
                    name,
                    format_duration(l.max_duration),
                    format_duration(d),
                ));
            }
        }
        FaultSpec::Network(n) => {
            crate::fault::network::check(n, limits, |name, value, requested| {
                limit(limits, name, value, requested)
            })?;
        }
    }
    Ok(())
}

/// Checks a stress fault's share of the node (`percent`, CPU of the node or memory of
/// RAM) alone and with the `active` shares of the same kind.
pub fn check_stress_share(
    memory: bool,
    percent: f64,
    active: f64,
    limits: &Limits,
) -> Result<(), FaultError> {
    let (name, max) = if memory {
        ("memory.max_percent", limits.memory.max_percent)
    } else {
        ("cpu.max_percent", limits.cpu.max_percent)
    };
    let eps = 1e-6;
    if percent > max + eps {
        return Err(limit(
            limits,
            name,
            format!("{max}% of the node"),
            format!("{percent:.2}% of the node"),
        ));
    }
    if active + percent > max + eps {
        return Err(limit(
            limits,
            name,
            format!("{max}% of the node across active stress faults"),
            format!("{percent:.2}% more with {active:.2}% already active"),
        ));
    }
    Ok(())
}

/// Checks `require_lease`.
pub fn check_lease(has_lease: bool, limits: &Limits) -> Result<(), FaultError> {
    if limits.require_lease && !has_lease {
        return Err(limit(
            limits,
            "require_lease",
            "true".into(),
            "a fault without a lease".into(),
        ));
    }
    Ok(())
}

/// Checks a lease TTL against `max_lease_ttl`.
pub fn check_lease_ttl(ttl: Duration, limits: &Limits) -> Result<(), FaultError> {
    if ttl > limits.max_lease_ttl {
        return Err(limit(
            limits,
            "max_lease_ttl",
            format_duration(limits.max_lease_ttl),
            format_duration(ttl),
        ));
    }
    Ok(())
}

/// Checks that `n` more kills fit into the sliding minute, given `recent` kills in it.
pub fn check_kill_rate(n: usize, recent: usize, limits: &Limits) -> Result<(), FaultError> {
    let max = limits.process.max_kills_per_minute as usize;
    if recent + n > max {
        return Err(limit(
            limits,
            "process.max_kills_per_minute",
            max.to_string(),
            format!(
                "{n} more kill{} with {recent} in the last minute",
                if n == 1 { "" } else { "s" }
            ),
        ));
    }
    Ok(())
}

/// Checks that one more fault fits beside the `active` ones (their ids).
pub fn check_capacity(active: &[String], limits: &Limits) -> Result<(), FaultError> {
    if active.len() >= limits.max_concurrent_faults as usize {
        return Err(FaultError::TooMany {
            limit: "max_concurrent_faults".into(),
            value: limits.max_concurrent_faults,
            active: active.len(),
            ids: active.join(", "),
            file: limits_file(limits),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{KillSpec, PauseSpec, Pick, Selector};
    use nix::sys::signal::Signal;

    fn pause() -> FaultSpec {
        FaultSpec::Pause(PauseSpec {
            selector: Selector {
                pid: Some(5),
                ..Default::default()
            },
            pick: Pick::All,
        })
    }

    fn kill_every(ms: u64) -> FaultSpec {
        FaultSpec::Kill(KillSpec {
            selector: Selector {
                pid: Some(5),
                ..Default::default()
            },
            pick: Pick::All,
            signal: Signal::SIGKILL,
            every: Some(Duration::from_millis(ms)),
        })
    }

    #[test]
    fn duration_on_and_past_the_limit() {
        let l = Limits::production();
        check(&pause(), Some(Duration::from_secs(300)), &l).unwrap();
        let e = check(&pause(), Some(Duration::from_secs(301)), &l).unwrap_err();
        assert_eq!(e.limit(), Some("max_duration"));
        assert_eq!(
            e.to_string(),
            "refused by limit max_duration = 5m: requested 5m1s (the node's limits file \
             /etc/faultline/limits.toml (absent: embedded production profile in force) sets it)"
        );
    }

    #[test]
    fn kill_loop_rate_on_and_past_the_limit() {
        let l = Limits::production();
        check(&kill_every(10_000), Some(Duration::from_secs(120)), &l).unwrap();
        let e = check(&kill_every(9_000), Some(Duration::from_secs(120)), &l).unwrap_err();
        assert_eq!(e.limit(), Some("process.max_kills_per_minute"));
        // A short loop only does the rounds that fit into it.
        check(&kill_every(1_000), Some(Duration::from_secs(6)), &l).unwrap();
        check(&kill_every(1_000), Some(Duration::from_secs(7)), &l).unwrap_err();
    }

    #[test]
    fn kill_rate_window() {
        let l = Limits::production();
        check_kill_rate(6, 0, &l).unwrap();
        check_kill_rate(1, 5, &l).unwrap();
        let e = check_kill_rate(1, 6, &l).unwrap_err();
        assert!(
            e.to_string()
                .contains("requested 1 more kill with 6 in the last minute"),
            "{e}"
        );
    }

    #[test]
    fn lease_required_and_ttl_bounded() {
        let mut l = Limits::production();
        check_lease(false, &l).unwrap();
        l.require_lease = true;
        check_lease(true, &l).unwrap();
        assert_eq!(
            check_lease(false, &l).unwrap_err().limit(),
            Some("require_lease")
        );
        check_lease_ttl(Duration::from_secs(300), &l).unwrap();
        assert_eq!(
            check_lease_ttl(Duration::from_secs(301), &l)
                .unwrap_err()
                .limit(),
            Some("max_lease_ttl")
        );
    }

    #[test]
    fn capacity_on_and_past_the_limit() {
        let l = Limits::production();
        check_capacity(&[], &l).unwrap();
        let e = check_capacity(&["f-1".into()], &l).unwrap_err();
        assert!(matches!(e, FaultError::TooMany { .. }));
        assert!(e.to_string().contains("1 already active (f-1)"), "{e}");
        let s = Limits::staging();
        let ids: Vec<String> = (0..9).map(|i| format!("f-{i}")).collect();
        check_capacity(&ids, &s).unwrap();
        let ids: Vec<String> = (0..10).map(|i| format!("f-{i}")).collect();
        check_capacity(&ids, &s).unwrap_err();
    }
}
