//! A probe's SLO abort conditions (`abort: {error_rate, p99, window, min_samples}` in its
//! entry): checked over a sliding window of its latest samples after every sample. A
//! breach names the probe, the condition, the value seen and the window:
//! `api: error rate 1.2 % over 30 s > 0.5 %`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Sample;
use super::stats::percentile;
use crate::request::{Percent, Span, Text};

/// `abort:` of a probe, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloDoc {
    /// Failed samples in the window, in percent (`0.5%` or `0.5`).
    pub error_rate: Option<Text>,
    /// The 99th percentile of the probe's latency in the window.
    pub p99: Option<Span>,
    /// How far back the window reaches (default 30s).
    pub window: Option<Span>,
    /// Fewer samples in the window than this: no verdict yet (default: half of what the
    /// window holds at the probe's interval, at least 2).
    pub min_samples: Option<usize>,
}

/// A probe's SLO, checked: at least one condition, a window of at least two intervals,
/// `min_samples` the window can reach.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    pub error_rate: Option<Percent>,
    pub p99: Option<Span>,
    pub window: Span,
    pub min_samples: usize,
}

/// The default window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);

impl Slo {
    /// Checks `doc` for a probe sampled every `interval`. `latency` is false for a probe
    /// whose latency is not what it checks (prometheus): it takes no `p99`. Errors name
    /// the key (`abort.window`) and the limit.
    pub fn from_doc(doc: &SloDoc, interval: Span, latency: bool) -> Result<Slo, String> {
        let error_rate = doc
            .error_rate
            .as_ref()
            .map(|t| Percent::parse(&t.0).map_err(|e| format!("abort.error_rate: {e}")))
            .transpose()?;
        if doc.p99.is_some() && !latency {
            return Err(
                "abort.p99: a prometheus probe checks a value, not a latency; \
                        bound the value with max or min and use abort.error_rate"
                    .into(),
            );
        }
        if let Some(p) = doc.p99
            && p.0.is_zero()
        {
            return Err("abort.p99: 0s would abort on any sample; give a latency above 0".into());
        }
        if error_rate.is_none() && doc.p99.is_none() {
            return Err("abort: give error_rate, p99 or both".into());
        }
        let window = doc.window.unwrap_or(Span(DEFAULT_WINDOW));
        let two = interval.0 * 2;
        if window.0 < two {
            return Err(format!(
                "abort.window {window} is shorter than two probe intervals (2 × {interval} = {})",
                Span(two)
            ));
        }
        // At most this many samples are ever in the window.
        let holds = (window.0.as_micros() / interval.0.as_micros().max(1)) as usize;
        let min_samples = match doc.min_samples {
            Some(0) => return Err("abort.min_samples must be at least 1".into()),
            Some(n) if n > holds => {
                return Err(format!(
                    "abort.min_samples {n} can never be reached: a {window} window holds at \
                     most {holds} samples at an interval of {interval}"
                ));
            }
            Some(n) => n,
            None => (holds / 2).max(2).min(holds),
        };
        Ok(Slo {
            error_rate,
            p99: doc.p99,
            window,
            min_samples,
        })
    }

    /// The conditions in words: `error rate > 0.5 % or p99 > 150ms over 30s (at least 20
    /// samples)`.
    pub fn describe(&self) -> String {
        let mut c = Vec::new();
        if let Some(r) = self.error_rate {
            c.push(format!("error rate > {} %", number(r.value())));
        }
        if let Some(p) = self.p99 {
            c.push(format!("p99 > {p}"));
        }
        format!(
            "{} over {} (at least {} samples)",
            c.join(" or "),
            self.window,
            self.min_samples
        )
    }

    /// Checks the window ending at the last of `samples` (oldest first); the first
    /// condition breached, if any.
    pub fn check(&self, probe: &str, samples: &[Sample]) -> Option<Breach> {
        let last = samples.last()?;
        let window_ms = u64::try_from(self.window.0.as_millis()).unwrap_or(u64::MAX);
        // The window is (last - window, last].
        let start = match last.at_ms.checked_sub(window_ms) {
            Some(from) => samples
                .iter()
                .rposition(|s| s.at_ms <= from)
                .map_or(0, |i| i + 1),
            None => 0,
        };
        let w = &samples[start..];
        if w.len() < self.min_samples {
            return None;
        }
        let breach = |condition, value: f64, limit: f64| Breach {
            probe: probe.to_string(),
            condition,
            value,
            limit,
            window_ms,
            samples: w.len(),
            at_ms: last.at_ms,
        };
        if let Some(limit) = self.error_rate {
            let errors = w.iter().filter(|s| !s.ok).count();
            let rate = errors as f64 * 100.0 / w.len() as f64;
            if rate > limit.value() {
                return Some(breach(Condition::ErrorRate, rate, limit.value()));
            }
        }
        if let Some(limit) = self.p99 {
            let mut lat: Vec<u64> = w.iter().map(|s| s.latency_us).collect();
            lat.sort_unstable();
            let p99 = percentile(&lat, 99.0).unwrap_or(0);
            if u128::from(p99) > limit.0.as_micros() {
                return Some(breach(
                    Condition::P99,
                    p99 as f64 / 1000.0,
                    limit.0.as_secs_f64() * 1000.0,
                ));
            }
        }
        None
    }
}

/// Which SLO condition was breached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// `value` and `limit` are percentages of failed samples.
    ErrorRate,
    /// `value` and `limit` are milliseconds.
    P99,
}

/// An SLO breach: what aborted the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breach {
    pub probe: String,
    pub condition: Condition,
    /// What the window showed: percent for `error_rate`, milliseconds for `p99`.
    pub value: f64,
    /// The bound it went over, in the same unit.
    pub limit: f64,
    pub window_ms: u64,
    /// Samples in the window.
    pub samples: usize,
    /// The time of the sample that completed the breach.
    pub at_ms: u64,
}

impl std::fmt::Display for Breach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let window = seconds(self.window_ms);
        match self.condition {
            Condition::ErrorRate => write!(
                f,
                "{}: error rate {} % over {window} > {} %",
                self.probe,
                number(self.value),
                number(self.limit)
            ),
            Condition::P99 => write!(
                f,
                "{}: p99 {} ms over {window} > {} ms",
                self.probe,
                number(self.value),
                number(self.limit)
            ),
        }
    }
}

/// `30 s`, `2.5 s`, `500 ms`.
fn seconds(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{} s", number(ms as f64 / 1000.0))
    }
}

/// A number with at most two decimals and no trailing zeros: `1.2`, `0.55`, `150`.
pub fn number(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(t: &str) -> Span {
        Span::parse(t).unwrap()
    }

    fn doc(yaml: &str) -> SloDoc {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn sample(at_ms: u64, ok: bool, latency_ms: u64) -> Sample {
        Sample {
            at_ms,
            ok,
            latency_us: latency_ms * 1000,
            value: None,
            error: None,
        }
    }

    #[test]
    fn bad_conditions_are_refused_naming_the_key_and_the_limit() {
        let e =
            |yaml: &str, interval: &str| Slo::from_doc(&doc(yaml), sp(interval), true).unwrap_err();
        assert_eq!(
            e("error_rate: 101%", "1s"),
            "abort.error_rate: \"101%\" is not in 0..=100%"
        );
        assert_eq!(
            e("error_rate: -1", "1s"),
            "abort.error_rate: \"-1\" is not in 0..=100%"
        );
        assert_eq!(
            e("error_rate: 1%\nwindow: 1s", "600ms"),
            "abort.window 1s is shorter than two probe intervals (2 × 600ms = 1s 200ms)"
        );
        assert_eq!(
            e("window: 10s", "1s"),
            "abort: give error_rate, p99 or both"
        );
        assert_eq!(
            e("p99: 150ms\nwindow: 1s\nmin_samples: 20", "100ms"),
            "abort.min_samples 20 can never be reached: a 1s window holds at most 10 samples at an interval of 100ms"
        );
        assert!(
            Slo::from_doc(&doc("p99: 150ms"), sp("1s"), false)
                .unwrap_err()
                .starts_with("abort.p99: a prometheus probe checks a value")
        );
        let s = Slo::from_doc(&doc("error_rate: 0.5%\np99: 150ms"), sp("1s"), true).unwrap();
        assert_eq!(s.window, Span(DEFAULT_WINDOW));
        assert_eq!(s.min_samples, 15);
        assert_eq!(
            s.describe(),
            "error rate > 0.5 % or p99 > 150ms over 30s (at least 15 samples)"
        );
        let s = Slo::from_doc(&doc("error_rate: 1\nwindow: 2s"), sp("1s"), true).unwrap();
        assert_eq!(s.min_samples, 2);
    }

    /// The window slides: old failures leave it; a verdict waits for min_samples.
    #[test]
    fn error_rate_over_a_sliding_window() {
        let s = Slo::from_doc(
            &doc("error_rate: 1%\nwindow: 1s\nmin_samples: 5"),
            sp("10ms"),
            true,
        )
        .unwrap();
        // Samples every 10 ms: 100 in a window.
        let mut v: Vec<Sample> = (0..4).map(|i| sample(i * 10, false, 1)).collect();
        assert_eq!(s.check("api", &v), None, "4 samples < min_samples");
        v.clear();
        for i in 0..300u64 {
            // One failure at 1 s, which leaves the window at 2 s; two more at 2.5 s and
            // 2.99 s.
            let fail = i == 100 || i == 250 || i == 299;
            v.push(sample(i * 10, !fail, 1));
            let b = s.check("api", &v);
            if i < 299 {
                assert_eq!(
                    b, None,
                    "sample {i}: 1 failure in a window is 1 %, not > 1 %"
                );
            } else {
                let b = b.unwrap();
                assert_eq!(b.condition, Condition::ErrorRate);
                assert_eq!(b.samples, 100);
                assert_eq!(b.value, 2.0);
                assert_eq!(b.to_string(), "api: error rate 2 % over 1 s > 1 %");
                break;
            }
        }
    }

    #[test]
    fn p99_over_the_window() {
        let s = Slo::from_doc(&doc("p99: 150ms\nwindow: 1s"), sp("100ms"), true).unwrap();
        let mut v: Vec<Sample> = (0..10).map(|i| sample(i * 100, true, 20)).collect();
        assert_eq!(s.check("api", &v), None);
        v.push(sample(1000, true, 212));
        let b = s.check("api", &v).unwrap();
        assert_eq!(b.to_string(), "api: p99 212 ms over 1 s > 150 ms");
        assert_eq!((b.value, b.limit, b.samples), (212.0, 150.0, 10));
    }
}
