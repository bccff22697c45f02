//! netem delay distribution tables, computed the way iproute2's generators
//! (`netem/normal.c`, `netem/pareto.c`, `netem/paretonormal.c`) compute the
//! `/usr/lib/tc/*.dist` files it ships, so the agent never needs those files.
//!
//! Each table has 4096 signed 16-bit entries: the inverse CDF of the distribution,
//! sampled uniformly and scaled by NETEM_DIST_SCALE (8192), clamped to i16.
#![allow(unsafe_code)]

use std::sync::OnceLock;

/// NETEM_DIST_SCALE in include/uapi/linux/pkt_sched.h.
const SCALE: f64 = 8192.0;
/// The generators' internal resolution.
const TABLESIZE: usize = 16384;
/// Entries in a table (what the kernel accepts as TCA_NETEM_DELAY_DIST).
pub const TABLE_LEN: usize = 4096;

/// The shape of the delay jitter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Distribution {
    /// The kernel's built-in uniform jitter (no table sent).
    #[default]
    Uniform,
    Normal,
    Pareto,
    ParetoNormal,
}

impl Distribution {
    /// The name tc uses (`distribution normal`).
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Normal => "normal",
            Distribution::Pareto => "pareto",
            Distribution::ParetoNormal => "paretonormal",
        }
    }

    /// Parses tc's name.
    pub fn from_name(name: &str) -> Option<Distribution> {
        Some(match name {
            "uniform" => Distribution::Uniform,
            "normal" => Distribution::Normal,
            "pareto" => Distribution::Pareto,
            "paretonormal" => Distribution::ParetoNormal,
            _ => return None,
        })
    }

    /// The table to send, `None` for uniform. Computed once per process.
    pub fn table(self) -> Option<&'static [i16]> {
        static NORMAL: OnceLock<Vec<i16>> = OnceLock::new();
        static PARETO: OnceLock<Vec<i16>> = OnceLock::new();
        static PARETONORMAL: OnceLock<Vec<i16>> = OnceLock::new();
        Some(match self {
            Distribution::Uniform => return None,
            Distribution::Normal => NORMAL.get_or_init(normal_table),
            Distribution::Pareto => PARETO.get_or_init(pareto_table),
            Distribution::ParetoNormal => PARETONORMAL.get_or_init(paretonormal_table),
        })
    }
}

unsafe extern "C" {
    /// C99 `erf` from the C math library the Rust standard library already links on
    /// Linux; iproute2's generator uses the same function.
    fn erf(x: f64) -> f64;
}

fn normal_cdf(x: f64) -> f64 {
    // SAFETY: erf is a pure function of one double with no preconditions.
    0.5 + 0.5 * unsafe { erf(x / std::f64::consts::SQRT_2) }
}

/// `table[i] = x` for the last x (stepping -10..10.05 by 0.00005, as normal.c does)
/// whose CDF rounds to i/TABLESIZE.
fn inverse_normal() -> Vec<f64> {
    let mut table = vec![0.0f64; TABLESIZE + 1];
    let mut x = -10.0f64;
    while x < 10.05 {
        let i = (TABLESIZE as f64 * normal_cdf(x)).round_ties_even() as usize;
        table[i] = x;
        x += 0.00005;
    }
    table
}

fn clamp_i16(v: i32) -> i16 {
    v.clamp(i16::MIN as i32, i16::MAX as i32) as i16
}

fn normal_table() -> Vec<i16> {
    let t = inverse_normal();
    (0..TABLESIZE)
        .step_by(4)
        .map(|i| clamp_i16((t[i] * SCALE).round_ties_even() as i32))
        .collect()
}

/// pareto.c / paretonormal.c's `paretovalue`, with `i` running 65536 down by 16.
fn pareto_value(i: i32) -> i32 {
    const A: f64 = 3.0;
    let mut d = i as f64 / 65536.0;
    d = 1.0 / d.powf(1.0 / A);
    d -= 1.5;
    d *= (4.0 / 3.0) * SCALE;
    if d > 32767.0 {
        d = 32767.0;
    }
    d.round_ties_even() as i32
}

fn pareto_table() -> Vec<i16> {
    (0..TABLE_LEN as i32)
        .map(|n| pareto_value(65536 - 16 * n) as i16)
        .collect()
}

fn paretonormal_table() -> Vec<i16> {
    let t = inverse_normal();
    (0..TABLESIZE)
        .step_by(4)
        .map(|i| {
            let normal = (t[i] * SCALE).round_ties_even() as i32;
            let pareto = pareto_value(65536 - 4 * i as i32);
            clamp_i16((normal + 3 * pareto) / 4)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where Debian and upstream install iproute2's tables.
    const DIRS: &[&str] = &[
        "/usr/lib/tc",
        "/usr/lib/x86_64-linux-gnu/tc",
        "/usr/lib64/tc",
        "/usr/share/tc",
    ];

    fn shipped(name: &str) -> Option<(String, Vec<i16>)> {
        for d in DIRS {
            let p = format!("{d}/{name}.dist");
            if let Ok(text) = std::fs::read_to_string(&p) {
                let v = text
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .flat_map(|l| l.split_whitespace())
                    .map(|t| t.parse::<i16>().expect("a number in the .dist file"))
                    .collect();
                return Some((p, v));
            }
        }
        None
    }

    fn compare(d: Distribution) {
        let Some((path, want)) = shipped(d.name()) else {
            eprintln!(
                "SKIP dist::{}: iproute2's {}.dist is not installed in any of {DIRS:?}",
                d.name(),
                d.name()
            );
            return;
        };
        let got = d.table().unwrap();
        assert_eq!(got.len(), TABLE_LEN);
        assert_eq!(want.len(), TABLE_LEN, "{path} length");
        let diffs: Vec<(usize, i16, i16)> = (0..TABLE_LEN)
            .filter(|&i| got[i] != want[i])
            .map(|i| (i, got[i], want[i]))
            .collect();
        assert!(
            diffs.is_empty(),
            "{} entries differ from {path} (index, ours, iproute2's), first: {:?}",
            diffs.len(),
            &diffs[..diffs.len().min(10)]
        );
    }

    #[test]
    fn normal_matches_iproute2() {
        compare(Distribution::Normal);
    }

    #[test]
    fn pareto_matches_iproute2() {
        compare(Distribution::Pareto);
    }

    #[test]
    fn paretonormal_matches_iproute2() {
        compare(Distribution::ParetoNormal);
    }

    #[test]
    fn tables_have_known_shape() {
        let n = Distribution::Normal.table().unwrap();
        assert_eq!(n[0], i16::MIN);
        assert!(
            n.windows(2).all(|w| w[0] <= w[1]),
            "normal table is monotonic"
        );
        // The median of a standard normal is 0.
        assert!(n[TABLE_LEN / 2].abs() < 10);
        assert!(Distribution::Uniform.table().is_none());
        for d in ["uniform", "normal", "pareto", "paretonormal"] {
            assert_eq!(Distribution::from_name(d).unwrap().name(), d);
        }
    }
}
