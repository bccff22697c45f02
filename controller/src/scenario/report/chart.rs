//! One probe's chart as inline SVG: its latency (a prometheus probe: its value) over the
//! run, each fault's window shaded and labelled, failed samples marked, the SLO or
//! bounds drawn as dashed lines and the abort moment as a red line. No script, no font
//! and no link: the page that holds it reads offline.
//!
//! Classes are the contract tests read: `fault-window` (one `rect` per fault),
//! `series` (the one `polyline`), `failed-sample`, `abort-line`, `limit`.

use std::fmt::Write;

use super::ProbeReport;
use super::html::esc;
use crate::probe::Sample;
use crate::probe::slo::number;

/// A fault's window on the chart.
pub(super) struct Window {
    pub from_ms: u64,
    pub to_ms: u64,
    pub label: String,
}

/// What is drawn besides the probe.
pub(super) struct Frame<'a> {
    pub t0: u64,
    pub t1: u64,
    pub windows: &'a [Window],
    /// The abort moment and why.
    pub abort: Option<(u64, &'a str)>,
}

const W: f64 = 960.0;
const H: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 34.0;
/// More samples than this are thinned to one per pixel column for the line.
const MAX_POINTS: usize = 1800;
/// At most this many failed samples are marked.
const MAX_MARKS: usize = 600;

/// The SVG of `p`'s chart.
pub(super) fn svg(p: &ProbeReport, f: &Frame) -> String {
    let value_chart = p.kind == "prometheus";
    let y_of = |s: &Sample| -> Option<f64> {
        if value_chart {
            s.value.filter(|v| v.is_finite())
        } else {
            Some(s.latency_us as f64 / 1000.0)
        }
    };
    // Y range: the samples and the limits drawn.
    let mut limits: Vec<(f64, String)> = Vec::new();
    if let Some(b) = p.bounds {
        if let Some(m) = b.max {
            limits.push((m, format!("max {m}")));
        }
        if let Some(m) = b.min {
            limits.push((m, format!("min {m}")));
        }
    }
    if let Some(ms) = p.slo.as_ref().and_then(|s| s.p99_ms) {
        limits.push((ms, format!("p99 limit {} ms", number(ms))));
    }
    let ys: Vec<f64> = p.samples.iter().filter_map(y_of).collect();
    let mut lo = ys
        .iter()
        .chain(limits.iter().map(|(v, _)| v))
        .fold(f64::INFINITY, |a, b| a.min(*b));
    let mut hi = ys
        .iter()
        .chain(limits.iter().map(|(v, _)| v))
        .fold(f64::NEG_INFINITY, |a, b| a.max(*b));
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if !value_chart || lo > 0.0 {
        lo = lo.min(0.0);
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let (lo, hi, step) = nice_range(lo, hi + (hi - lo) * 0.08);
    let t0 = f.t0;
    let span = f.t1.saturating_sub(t0).max(1) as f64;
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |t: u64| LEFT + (t.saturating_sub(t0) as f64 / span).min(1.0) * pw;
    let y = |v: f64| TOP + ph - ((v - lo) / (hi - lo)).clamp(0.0, 1.0) * ph;

    let mut s = String::new();
    let unit = if value_chart { "value" } else { "latency ms" };
    let _ = write!(
        s,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}: {unit} over time">"#,
        esc(&p.name)
    );
    let _ = write!(
        s,
        r#"<rect class="plot" x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/>"#
    );
    // Y grid and labels.
    let ticks = ((hi - lo) / step).round() as usize;
    for i in 0..=ticks {
        let v = lo + i as f64 * step;
        let yy = y(v);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            tick(v, step)
        );
    }
    let _ = write!(
        s,
        r#"<text class="axis-title" x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">{unit}</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    // X ticks: seconds from the start of the run.
    let secs = span / 1000.0;
    let (_, _, xstep) = nice_range(0.0, secs);
    for i in 0..=((secs / xstep).floor() as usize) {
        let t = i as f64 * xstep;
        let xx = x(t0 + (t * 1000.0) as u64);
        let _ = write!(
            s,
            r#"<line class="xtick" x1="{xx:.1}" x2="{xx:.1}" y1="{:.1}" y2="{:.1}"/><text class="tick" x="{xx:.1}" y="{:.1}" text-anchor="middle">+{}s</text>"#,
            TOP + ph,
            TOP + ph + 4.0,
            TOP + ph + 16.0,
            tick(t, xstep)
        );
    }
    let _ = write!(
        s,
        r#"<text class="axis-title" x="{:.1}" y="{:.1}" text-anchor="middle">seconds since the start of the run</text>"#,
        LEFT + pw / 2.0,
        H - 4.0
    );
    // Fault windows, labels on two alternating rows above the plot.
    s.push_str(r#"<g class="faults">"#);
    for (i, w) in f.windows.iter().enumerate() {
        let x0 = x(w.from_ms);
        let width = (x(w.to_ms) - x0).max(2.0);
        let ly = TOP - 6.0 - (i % 2) as f64 * 14.0;
        let _ = write!(
            s,
            r#"<rect class="fault-window" x="{x0:.1}" y="{TOP}" width="{width:.1}" height="{ph}"><title>{} (+{}s to +{}s)</title></rect><text class="fault-label" x="{x0:.1}" y="{ly:.1}">{}</text>"#,
            esc(&w.label),
            number(w.from_ms.saturating_sub(t0) as f64 / 1000.0),
            number(w.to_ms.saturating_sub(t0) as f64 / 1000.0),
            esc(&w.label)
        );
    }
    s.push_str("</g>");
    // Limits.
    for (v, label) in &limits {
        let yy = y(*v);
        let _ = write!(
            s,
            r#"<line class="limit" x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}"/><text class="limit-label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - RIGHT,
            W - RIGHT - 4.0,
            yy - 4.0,
            esc(label)
        );
    }
    // The line: every sample with a y value, thinned to the highest per pixel column.
    let pts: Vec<(f64, f64)> = thin(&p.samples, &y_of, x);
    s.push_str(r#"<polyline class="series" points=""#);
    for (i, (px, v)) in pts.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{px:.1},{:.1}", y(*v));
    }
    s.push_str(r#""/>"#);
    // Failed samples.
    let failed: Vec<&Sample> = p.samples.iter().filter(|s| !s.ok).collect();
    let every = failed.len().div_ceil(MAX_MARKS).max(1);
    s.push_str(r#"<g class="failures">"#);
    for smp in failed.iter().step_by(every) {
        let cy = y_of(smp).map_or(TOP + ph, y);
        let _ = write!(
            s,
            r#"<circle class="failed-sample" cx="{:.1}" cy="{cy:.1}" r="3.5"><title>+{}s: {}</title></circle>"#,
            x(smp.at_ms),
            number(smp.at_ms.saturating_sub(t0) as f64 / 1000.0),
            esc(smp.error.as_deref().unwrap_or("failed"))
        );
    }
    s.push_str("</g>");
    // The abort moment.
    if let Some((at, why)) = f.abort {
        let xx = x(at);
        let _ = write!(
            s,
            r#"<line class="abort-line" x1="{xx:.1}" x2="{xx:.1}" y1="{:.1}" y2="{:.1}"><title>abort: {}</title></line><text class="abort-label" x="{:.1}" y="{:.1}" text-anchor="end">abort</text>"#,
            TOP - 2.0,
            TOP + ph,
            esc(why),
            xx - 3.0,
            TOP + 12.0
        );
    }
    s.push_str("</svg>");
    s
}

/// The points of the line: `(x, y)` of every sample with a y value, or with more than
/// [`MAX_POINTS`] samples the highest per pixel column (a spike stays visible).
fn thin(
    samples: &[Sample],
    y_of: &dyn Fn(&Sample) -> Option<f64>,
    x: impl Fn(u64) -> f64,
) -> Vec<(f64, f64)> {
    let all = samples
        .iter()
        .filter_map(|s| y_of(s).map(|v| (x(s.at_ms), v)));
    if samples.len() <= MAX_POINTS {
        return all.collect();
    }
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (px, v) in all {
        let col = px.round();
        match out.last_mut() {
            Some(last) if last.0 == col => last.1 = last.1.max(v),
            _ => out.push((col, v)),
        }
    }
    out
}

/// A tick's label with as many decimals as its step needs.
fn tick(v: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

/// A range covering `lo..hi` in round steps (1, 2 or 5 times a power of ten), about
/// five of them: `(lo, hi, step)`.
fn nice_range(lo: f64, hi: f64) -> (f64, f64, f64) {
    let raw = ((hi - lo) / 5.0).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((lo / step).floor() * step, (hi / step).ceil() * step, step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ranges() {
        assert_eq!(nice_range(0.0, 9.3), (0.0, 10.0, 2.0));
        assert_eq!(nice_range(0.0, 212.0), (0.0, 250.0, 50.0));
        assert_eq!(nice_range(0.0, 1.0), (0.0, 1.0, 0.2));
        assert_eq!(tick(0.004, 0.002), "0.004");
        assert_eq!(tick(150.0, 50.0), "150");
    }

    #[test]
    fn thinning_keeps_the_spike() {
        let samples: Vec<Sample> = (0..5000u64)
            .map(|i| Sample {
                at_ms: i,
                ok: true,
                latency_us: if i == 2500 { 900_000 } else { 1000 },
                value: None,
                error: None,
            })
            .collect();
        let y = |s: &Sample| Some(s.latency_us as f64 / 1000.0);
        let pts = thin(&samples, &y, |t| t as f64 / 5000.0 * 880.0);
        assert!(pts.len() <= 882, "{}", pts.len());
        assert!(pts.iter().any(|(_, v)| *v == 900.0));
    }
}
