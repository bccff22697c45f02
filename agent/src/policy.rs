//! Blast-radius policy: a pure function of (spec, duration, limits, active faults).
//! It never touches the kernel. Every `Inject` passes through [`check`] before anything
//! is resolved or changed, and [`check_capacity`] again under the registry lock.

use std::time::Duration;

use faultline_proto::units::format_duration;

use crate::error::FaultError;
use crate::fault::{FaultSpec, Kind};
use crate::limits::Limits;

pub(crate) fn limit(limits: &Limits, name: &str, value: String, requested: String) -> FaultError {
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
        FaultSpec::DiskFill(_) | FaultSpec::IoLimit(_) | FaultSpec::IoStress(_) => {
            let (name, max) = match spec {
                FaultSpec::DiskFill(_) => ("disk.max_duration", limits.disk.max_duration),
                _ => ("io.max_duration", limits.io.max_duration),
            };
            if let Some(d) = duration
                && d > max
            {
                return Err(limit(
                    limits,
                    name,
                    format_duration(max),
                    format_duration(d),
                ));
            }
        }
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

/// The per-kind cap on concurrent faults of `kind`, and the limit's name.
pub fn kind_cap(kind: Kind, limits: &Limits) -> (Option<u32>, &'static str) {
    match kind {
        Kind::Kill | Kind::Pause => (limits.process.max_concurrent, "process.max_concurrent"),
        Kind::Network => (limits.network.max_concurrent, "network.max_concurrent"),
        Kind::Cpu => (limits.cpu.max_concurrent, "cpu.max_concurrent"),
        Kind::Memory => (limits.memory.max_concurrent, "memory.max_concurrent"),
        Kind::DiskFill => (limits.disk.max_concurrent, "disk.max_concurrent"),
        Kind::IoLimit | Kind::IoStress => (limits.io.max_concurrent, "io.max_concurrent"),
    }
}

/// Checks that one more fault of `kind` fits beside the `active` ones (their ids and
/// kinds): the global `max_concurrent_faults`, then the kind's section `max_concurrent`.
pub fn check_capacity(
    active: &[(String, Kind)],
    kind: Kind,
    limits: &Limits,
) -> Result<(), FaultError> {
    let too_many = |limit: &str, value: u32, ids: Vec<&str>| FaultError::TooMany {
        limit: limit.into(),
        value,
        active: ids.len(),
        ids: ids.join(", "),
        file: limits_file(limits),
    };
    if active.len() >= limits.max_concurrent_faults as usize {
        return Err(too_many(
            "max_concurrent_faults",
            limits.max_concurrent_faults,
            active.iter().map(|(id, _)| id.as_str()).collect(),
        ));
    }
    let (cap, name) = kind_cap(kind, limits);
    if let Some(cap) = cap {
        let same: Vec<&str> = active
            .iter()
            .filter(|(_, k)| kind_cap(*k, limits).1 == name)
            .map(|(id, _)| id.as_str())
            .collect();
        if same.len() >= cap as usize {
            return Err(too_many(name, cap, same));
        }
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

    fn net(f: impl FnOnce(&mut crate::sys::tc::Netem)) -> FaultSpec {
        use crate::sys::tc::ops::{Direction, NetFault};
        let mut netem = crate::sys::tc::Netem::default();
        f(&mut netem);
        FaultSpec::Network(
            crate::fault::network::NetworkSpec::new(
                crate::sys::netns::NetnsTarget::Current,
                NetFault {
                    iface: "veth-test".into(),
                    direction: Direction::Egress,
                    netem,
                    selection: Default::default(),
                },
            )
            .unwrap(),
        )
    }

    #[test]
    fn blackhole_needs_allow_blackhole() {
        let mut bh = net(|_| {});
        let FaultSpec::Network(n) = &mut bh else {
            unreachable!()
        };
        n.set_blackhole();
        let e = check(&bh, Some(Duration::from_secs(10)), &Limits::production()).unwrap_err();
        assert_eq!(e.limit(), Some("network.allow_blackhole"));
        assert!(
            e.to_string().starts_with(
                "refused by limit network.allow_blackhole = false: requested a blackhole"
            ),
            "{e}"
        );
        check(&bh, Some(Duration::from_secs(10)), &Limits::staging()).unwrap();
    }

    fn delay(ms: u64, jitter_ms: u64) -> FaultSpec {
        net(|n| {
            n.delay = Some(crate::sys::tc::Delay {
                latency: Duration::from_millis(ms),
                jitter: Duration::from_millis(jitter_ms),
                correlation: crate::sys::tc::Percent::ZERO,
                distribution: crate::sys::tc::Distribution::Uniform,
            })
        })
    }

    fn chance(p: f64) -> crate::sys::tc::Chance {
        crate::sys::tc::Chance {
            probability: crate::sys::tc::Percent::new(p).unwrap(),
            correlation: crate::sys::tc::Percent::ZERO,
        }
    }

    fn active(kinds: &[Kind]) -> Vec<(String, Kind)> {
        kinds
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("f-{i}"), *k))
            .collect()
    }

    type Check = Box<dyn Fn(&Limits) -> Result<(), FaultError>>;

    /// Every limit, on its boundary (allowed) and one step past it (refused, naming it).
    #[test]
    fn every_limit_on_the_boundary_and_one_past() {
        let spec_check = |spec: FaultSpec, d: u64| -> Check {
            Box::new(move |l| check(&spec, Some(Duration::from_secs(d)), l))
        };
        let mut limits = Limits::staging();
        limits.process.max_concurrent = Some(2);
        limits.network.max_concurrent = Some(1);
        limits.cpu.max_concurrent = Some(1);
        limits.memory.max_concurrent = Some(2);
        let rows: Vec<(&str, Check, Check)> = vec![
            (
                "max_duration",
                spec_check(pause(), 300),
                spec_check(pause(), 301),
            ),
            (
                "max_concurrent_faults",
                Box::new(|l| check_capacity(&active(&[Kind::Pause; 9]), Kind::Network, l)),
                Box::new(|l| check_capacity(&active(&[Kind::Pause; 10]), Kind::Network, l)),
            ),
            (
                "process.max_concurrent",
                Box::new(|l| check_capacity(&active(&[Kind::Pause, Kind::Network]), Kind::Kill, l)),
                Box::new(|l| check_capacity(&active(&[Kind::Pause, Kind::Kill]), Kind::Pause, l)),
            ),
            (
                "network.max_concurrent",
                Box::new(|l| check_capacity(&active(&[Kind::Pause, Kind::Kill]), Kind::Network, l)),
                Box::new(|l| check_capacity(&active(&[Kind::Network]), Kind::Network, l)),
            ),
            (
                "cpu.max_concurrent",
                Box::new(|l| check_capacity(&active(&[Kind::Memory]), Kind::Cpu, l)),
                Box::new(|l| check_capacity(&active(&[Kind::Cpu]), Kind::Cpu, l)),
            ),
            (
                "memory.max_concurrent",
                Box::new(|l| check_capacity(&active(&[Kind::Memory, Kind::Cpu]), Kind::Memory, l)),
                Box::new(|l| check_capacity(&active(&[Kind::Memory; 2]), Kind::Memory, l)),
            ),
            (
                "process.max_kills_per_minute",
                Box::new(|l| check_kill_rate(1, 5, l)),
                Box::new(|l| check_kill_rate(1, 6, l)),
            ),
            (
                "process.max_kills_per_minute",
                spec_check(kill_every(10_000), 120),
                spec_check(kill_every(9_999), 120),
            ),
            (
                "network.max_delay",
                spec_check(delay(500, 0), 60),
                spec_check(delay(501, 0), 60),
            ),
            (
                "network.max_jitter",
                spec_check(delay(10, 500), 60),
                spec_check(delay(10, 501), 60),
            ),
            (
                "network.max_loss_percent",
                spec_check(
                    net(|n| n.loss = Some(crate::sys::tc::Loss::Random(chance(5.0)))),
                    60,
                ),
                spec_check(
                    net(|n| n.loss = Some(crate::sys::tc::Loss::Random(chance(5.01)))),
                    60,
                ),
            ),
            (
                "network.max_duplicate_percent",
                spec_check(net(|n| n.duplicate = Some(chance(5.0))), 60),
                spec_check(net(|n| n.duplicate = Some(chance(5.01))), 60),
            ),
            (
                "network.max_corrupt_percent",
                spec_check(net(|n| n.corrupt = Some(chance(5.0))), 60),
                spec_check(net(|n| n.corrupt = Some(chance(5.01))), 60),
            ),
            (
                "network.max_reorder_percent",
                spec_check(
                    net(|n| {
                        // Reordering needs a delay (the spec refuses it without one).
                        n.delay = Some(crate::sys::tc::Delay {
                            latency: Duration::from_millis(10),
                            jitter: Duration::ZERO,
                            correlation: crate::sys::tc::Percent::ZERO,
                            distribution: crate::sys::tc::Distribution::Uniform,
                        });
                        n.reorder = Some(crate::sys::tc::Reorder {
                            probability: crate::sys::tc::Percent::new(5.0).unwrap(),
                            correlation: crate::sys::tc::Percent::ZERO,
                            gap: 0,
                        })
                    }),
                    60,
                ),
                spec_check(
                    net(|n| {
                        // Reordering needs a delay (the spec refuses it without one).
                        n.delay = Some(crate::sys::tc::Delay {
                            latency: Duration::from_millis(10),
                            jitter: Duration::ZERO,
                            correlation: crate::sys::tc::Percent::ZERO,
                            distribution: crate::sys::tc::Distribution::Uniform,
                        });
                        n.reorder = Some(crate::sys::tc::Reorder {
                            probability: crate::sys::tc::Percent::new(5.01).unwrap(),
                            correlation: crate::sys::tc::Percent::ZERO,
                            gap: 0,
                        })
                    }),
                    60,
                ),
            ),
            (
                "network.min_rate",
                // staging: 100kbit = 12 500 bytes/s
                spec_check(
                    net(|n| {
                        n.rate = Some(crate::sys::tc::Rate {
                            bytes_per_sec: 12_500,
                            ..Default::default()
                        })
                    }),
                    60,
                ),
                spec_check(
                    net(|n| {
                        n.rate = Some(crate::sys::tc::Rate {
                            bytes_per_sec: 12_499,
                            ..Default::default()
                        })
                    }),
                    60,
                ),
            ),
            (
                "max_lease_ttl",
                Box::new(|l| check_lease_ttl(Duration::from_secs(300), l)),
                Box::new(|l| check_lease_ttl(Duration::from_millis(300_001), l)),
            ),
            (
                "require_lease",
                Box::new(|l| {
                    let mut l = l.clone();
                    l.require_lease = true;
                    check_lease(true, &l)
                }),
                Box::new(|l| {
                    let mut l = l.clone();
                    l.require_lease = true;
                    check_lease(false, &l)
                }),
            ),
        ];
        for (name, on, past) in &rows {
            if let Err(e) = on(&limits) {
                panic!("{name}: the boundary must be allowed, got: {e}");
            }
            match past(&limits) {
                Ok(()) => panic!("{name}: one past the boundary must be refused"),
                Err(e) => {
                    assert_eq!(
                        e.limit(),
                        Some(*name),
                        "{name}: refusal names the limit: {e}"
                    );
                    assert!(
                        e.to_string().contains("limits"),
                        "{name}: refusal names the file: {e}"
                    );
                }
            }
        }
        // Without a per-kind cap only the global one counts.
        let l = Limits::staging();
        check_capacity(&active(&[Kind::Network; 9]), Kind::Network, &l).unwrap();
    }

    #[test]
    fn capacity_message_lists_the_active_faults() {
        let l = Limits::production();
        check_capacity(&[], Kind::Pause, &l).unwrap();
        let e = check_capacity(&active(&[Kind::Pause]), Kind::Pause, &l).unwrap_err();
        assert!(matches!(e, FaultError::TooMany { .. }));
        assert!(e.to_string().contains("1 already active (f-0)"), "{e}");
    }
}
