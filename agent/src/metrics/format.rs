//! The two exposition formats Prometheus scrapes, chosen by the request's `Accept`
//! header as Prometheus expects:
//!
//! - OpenMetrics 1.0 (`application/openmetrics-text; version=1.0.0`), what
//!   `prometheus-client` writes: counter families are named without `_total` (their
//!   samples carry it) and the text ends with `# EOF`. Prometheus asks for it first.
//! - The classic text format 0.0.4 (`text/plain; version=0.0.4`), for every other
//!   client (`curl`, `promtool check metrics`, older scrapers): the same samples, with
//!   each counter's `# HELP`/`# TYPE` named like its samples (`..._total`), no `# UNIT`
//!   and no `# EOF`.
//!
//! The classic text is derived from the OpenMetrics text by [`classic`], which knows
//! the three metric types faultd exports (counter, gauge, histogram), whose sample lines
//! are the same in both formats.

use std::collections::HashSet;

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Classic,
}

impl Format {
    /// The `Content-Type` of a reply in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The format for a request's `Accept` header: OpenMetrics when the client accepts
    /// it at least as much as the classic text, else (no header, `*/*`, `text/plain`)
    /// the classic text.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut om, mut classic) = (0.0f32, 0.0f32);
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let (mut q, mut version) = (1.0f32, None);
            for p in parts {
                if let Some((k, v)) = p.split_once('=') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "q" => q = v.trim().parse().unwrap_or(0.0),
                        "version" => version = Some(v.trim().to_string()),
                        _ => {}
                    }
                }
            }
            match media.as_str() {
                "application/openmetrics-text"
                    if version
                        .as_deref()
                        .is_none_or(|v| v == "1.0.0" || v == "0.0.1") =>
                {
                    om = om.max(q)
                }
                "text/plain" if version.as_deref().is_none_or(|v| v == "0.0.4") => {
                    classic = classic.max(q)
                }
                "text/*" | "*/*" => classic = classic.max(q),
                _ => {}
            }
        }
        if om > 0.0 && om >= classic {
            Format::OpenMetrics
        } else {
            Format::Classic
        }
    }
}

/// The classic text format (0.0.4) of an OpenMetrics text of counters, gauges and
/// histograms.
pub fn classic(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            // OpenMetrics escapes `"` in help text; the classic format does not.
            let help = help.replace("\\\"", "\"");
            let suffix = if counters.contains(name) {
                "_total"
            } else {
                ""
            };
            out.push_str(&format!("# HELP {name}{suffix} {help}\n"));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            match kind {
                "counter" => out.push_str(&format!("# TYPE {name}_total counter\n")),
                "unknown" => out.push_str(&format!("# TYPE {name} untyped\n")),
                _ => out.push_str(&format!("# TYPE {name} {kind}\n")),
            }
            continue;
        }
        // A counter's `_created` sample has no place in the classic format.
        let sample = line.split(['{', ' ']).next().unwrap_or("");
        if sample
            .strip_suffix("_created")
            .is_some_and(|base| counters.contains(base))
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_as_prometheus_and_curl_ask() {
        // What Prometheus 2.x sends.
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
        // Prometheus with the classic format preferred.
        let classic_first =
            "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5";
        assert_eq!(Format::negotiate(Some(classic_first)), Format::Classic);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Classic);
        assert_eq!(Format::negotiate(None), Format::Classic);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Classic);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
        // A version we do not write is not taken.
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; version=2.0.0")),
            Format::Classic
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Format::Classic
        );
    }

    #[test]
    fn classic_names_counters_like_their_samples() {
        let om = "\
# HELP x_faults Fault \\\"events\\\".
# TYPE x_faults counter
x_faults_total{kind=\"pause\"} 2
x_faults_created{kind=\"pause\"} 1.7e9
# HELP x_active Active now.
# TYPE x_active gauge
x_active{kind=\"kill\"} 0
# HELP x_rpc_duration_seconds Latency.
# TYPE x_rpc_duration_seconds histogram
# UNIT x_rpc_duration_seconds seconds
x_rpc_duration_seconds_sum{method=\"Status\"} 0.0003
x_rpc_duration_seconds_count{method=\"Status\"} 1
x_rpc_duration_seconds_bucket{le=\"+Inf\",method=\"Status\"} 1
# EOF
";
        assert_eq!(
            classic(om),
            "\
# HELP x_faults_total Fault \"events\".
# TYPE x_faults_total counter
x_faults_total{kind=\"pause\"} 2
# HELP x_active Active now.
# TYPE x_active gauge
x_active{kind=\"kill\"} 0
# HELP x_rpc_duration_seconds Latency.
# TYPE x_rpc_duration_seconds histogram
x_rpc_duration_seconds_sum{method=\"Status\"} 0.0003
x_rpc_duration_seconds_count{method=\"Status\"} 1
x_rpc_duration_seconds_bucket{le=\"+Inf\",method=\"Status\"} 1
"
        );
    }
}
