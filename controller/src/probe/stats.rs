//! Statistics of probe samples: counts, error rate and latency percentiles over a time
//! window, and when a probe was back to steady state.

use serde::{Deserialize, Serialize};

use super::Sample;

/// Statistics of the samples in a window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub samples: usize,
    pub errors: usize,
    pub error_rate: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Statistics of `samples` with `from_ms <= at_ms < to_ms`.
pub fn stats(samples: &[Sample], from_ms: u64, to_ms: u64) -> Stats {
    let w: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at_ms >= from_ms && s.at_ms < to_ms)
        .collect();
    let errors = w.iter().filter(|s| !s.ok).count();
    let mut lat: Vec<u64> = w.iter().map(|s| s.latency_us).collect();
    lat.sort_unstable();
    let ms = |us: u64| (us as f64 / 1000.0 * 100.0).round() / 100.0;
    Stats {
        samples: w.len(),
        errors,
        error_rate: if w.is_empty() {
            0.0
        } else {
            ((errors as f64 / w.len() as f64) * 10_000.0).round() / 10_000.0
        },
        p50_ms: percentile(&lat, 50.0).map(ms),
        p99_ms: percentile(&lat, 99.0).map(ms),
    }
}

/// The `p`th percentile of sorted values, by nearest rank (the smallest value with at
/// least `p` % of the values at or below it); `None` for no values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[i.clamp(1, sorted.len()) - 1])
}

/// When the probe was back to steady state after `from_ms`: the time of the first of
/// `needed` consecutive ok samples taken at or after `from_ms`.
pub fn recovered_at(samples: &[Sample], from_ms: u64, needed: usize) -> Option<u64> {
    let mut run_start = None;
    let mut run = 0;
    for s in samples.iter().filter(|s| s.at_ms >= from_ms) {
        if s.ok {
            if run == 0 {
                run_start = Some(s.at_ms);
            }
            run += 1;
            if run >= needed.max(1) {
                return run_start;
            }
        } else {
            run = 0;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at: u64, ok: bool, us: u64) -> Sample {
        Sample {
            at_ms: at,
            ok,
            latency_us: us,
            value: None,
            error: None,
        }
    }

    #[test]
    fn stats_and_recovery() {
        let v: Vec<Sample> = (0..100)
            .map(|i| s(i, i % 10 != 0, (i + 1) * 1000))
            .collect();
        let st = stats(&v, 0, 100);
        assert_eq!(st.samples, 100);
        assert_eq!(st.errors, 10);
        assert_eq!(st.error_rate, 0.1);
        assert_eq!(st.p50_ms, Some(50.0));
        assert_eq!(st.p99_ms, Some(99.0));
        assert_eq!(stats(&v, 200, 300), Stats::default());
        let v = vec![
            s(0, false, 1),
            s(5, true, 1),
            s(6, false, 1),
            s(7, true, 1),
            s(8, true, 1),
        ];
        assert_eq!(recovered_at(&v, 0, 2), Some(7));
        assert_eq!(recovered_at(&v, 0, 1), Some(5));
        assert_eq!(recovered_at(&v, 0, 3), None);
        assert_eq!(percentile(&[1, 2, 3], 99.0), Some(3));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
