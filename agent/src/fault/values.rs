//! Validated values of the fault domain, one rule each, in one place: a constructor
//! that refuses what the rule forbids, so every holder of the type can rely on it.
//! `api::convert` builds them from the wire and names the field on refusal; the limits
//! file uses the same percentage rule.

use std::fmt;
use std::time::Duration;

use super::FaultSpec;
use crate::error::FaultError;

/// A cgroup as a caller names it: an absolute path with no `..` component
/// (`/system.slice/nginx.service`, or a path under a cgroup mount).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupPath(String);

impl CgroupPath {
    pub fn parse(text: &str) -> Result<CgroupPath, String> {
        if !text.starts_with('/') || text.split('/').any(|c| c == "..") {
            return Err(format!(
                "{text:?} must be an absolute path without \"..\" (e.g. /system.slice/x.service)"
            ));
        }
        Ok(CgroupPath(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A systemd unit name: `nginx.service`, `user@1000.service`, `app.slice` (a suffix
/// after a dot, no `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitName(String);

impl UnitName {
    pub fn parse(text: &str) -> Result<UnitName, String> {
        if text.contains('/') || !text.contains('.') {
            return Err(format!("{text:?} is not a unit name (e.g. nginx.service)"));
        }
        Ok(UnitName(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UnitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A share of something, in percent: more than 0 and at most 100 (how many of the
/// matches to pick, a CPU share or duty cycle, a share of RAM).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Percent(f64);

impl Percent {
    /// In (0, 100].
    pub fn share(v: f64) -> Result<Percent, String> {
        if !v.is_finite() || v <= 0.0 || v > 100.0 {
            return Err(format!("{v} is not in (0, 100]"));
        }
        Ok(Percent(v))
    }

    /// A chance or a ceiling in 0..=100 (netem probabilities and correlations, the
    /// limits file's percentages).
    pub fn probability(v: f64) -> Result<f64, String> {
        if !v.is_finite() || !(0.0..=100.0).contains(&v) {
            return Err(format!("{v} is not a percentage in 0..=100"));
        }
        Ok(v)
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A fault and how long it lasts. A fault that lasts (a pause, a network or stress
/// fault, a repeating kill) always has a duration greater than zero; a one-shot kill
/// may carry one (the limits still check it) but nothing ends by it.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    spec: FaultSpec,
    duration: Option<Duration>,
}

impl Timed {
    /// A zero duration counts as none. Refusals name `duration_ms`.
    pub fn new(spec: FaultSpec, duration: Option<Duration>) -> Result<Timed, FaultError> {
        let duration = duration.filter(|d| !d.is_zero());
        if spec.lasts() && duration.is_none() {
            let why = match &spec {
                FaultSpec::Kill(_) => {
                    "a repeating kill (every_ms) needs a duration (--for) to bound the loop"
                        .to_string()
                }
                s => format!(
                    "a {} fault needs a duration greater than zero (--for)",
                    s.kind().name()
                ),
            };
            return Err(FaultError::invalid("duration_ms", why));
        }
        Ok(Timed { spec, duration })
    }

    pub fn spec(&self) -> &FaultSpec {
        &self.spec
    }

    /// The Inject came over TCP from `caller`: a network fault steers that flow past
    /// itself (a controller never cuts itself off). Other kinds ignore it.
    pub fn protect_caller(&mut self, caller: std::net::SocketAddr) {
        if let FaultSpec::Network(n) = &mut self.spec {
            n.protect_caller(caller);
        }
    }

    /// The duration as requested (a one-shot kill's included).
    pub fn duration(&self) -> Option<Duration> {
        self.duration
    }

    /// When the fault ends on its own: its duration if it lasts, none for a one-shot.
    pub fn ttl(&self) -> Option<Duration> {
        self.duration.filter(|_| self.spec.lasts())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{KillSpec, Pick, Selector};

    #[test]
    fn cgroup_paths_and_unit_names() {
        assert!(CgroupPath::parse("/system.slice/x.service").is_ok());
        for bad in ["x/y", "/a/../b", "..", ""] {
            assert!(CgroupPath::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            CgroupPath::parse("x/../y").unwrap_err(),
            "\"x/../y\" must be an absolute path without \"..\" (e.g. /system.slice/x.service)"
        );
        assert!(UnitName::parse("nginx.service").is_ok());
        for bad in ["nginx", "a/b.service"] {
            assert!(UnitName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percentages() {
        assert_eq!(Percent::share(100.0).unwrap().get(), 100.0);
        assert_eq!(Percent::share(150.0).unwrap_err(), "150 is not in (0, 100]");
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(Percent::share(bad).is_err(), "{bad}");
        }
        assert_eq!(Percent::probability(0.0).unwrap(), 0.0);
        assert_eq!(
            Percent::probability(101.0).unwrap_err(),
            "101 is not a percentage in 0..=100"
        );
        assert!(Percent::probability(f64::NAN).is_err());
    }

    fn kill(every: Option<Duration>) -> FaultSpec {
        FaultSpec::Kill(KillSpec {
            selector: Selector {
                pid: Some(5),
                ..Default::default()
            },
            pick: Pick::All,
            signal: nix::sys::signal::Signal::SIGKILL,
            every,
        })
    }

    #[test]
    fn a_fault_that_lasts_needs_a_duration() {
        let one_shot = Timed::new(kill(None), Some(Duration::from_secs(5))).unwrap();
        assert_eq!(one_shot.duration(), Some(Duration::from_secs(5)));
        assert_eq!(one_shot.ttl(), None);
        assert!(Timed::new(kill(None), None).is_ok());
        let every = Some(Duration::from_secs(1));
        assert_eq!(
            Timed::new(kill(every), Some(Duration::ZERO))
                .unwrap_err()
                .to_string(),
            "invalid duration_ms: a repeating kill (every_ms) needs a duration (--for) to bound the loop"
        );
        let looped = Timed::new(kill(every), Some(Duration::from_secs(9))).unwrap();
        assert_eq!(looped.ttl(), Some(Duration::from_secs(9)));
    }
}
