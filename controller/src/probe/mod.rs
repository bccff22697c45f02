//! Steady-state probes: an HTTP GET (expected status, latency bound), a TCP connect, a
//! command that must exit 0, or a Prometheus instant query whose value must stay within
//! bounds. Each probe runs on its own interval for the whole scenario; every sample is
//! kept (time, ok, latency, the value for prometheus) for the report and for the probe's
//! SLO abort conditions ([`slo`]).
//!
//! A probe entry of a scenario ([`ProbeDoc`]) becomes a checked [`Probe`] when the
//! document is read: a malformed entry is refused then, naming the probe and the key.

pub mod slo;
pub mod stats;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_proto::http::{self, HttpUrl};
use faultline_proto::prometheus::{self, Bounds, InstantQuery, QueryError};
use serde::{Deserialize, Serialize};

use crate::request::Span;
pub use slo::{Breach, Slo};
pub use stats::{Stats, recovered_at, stats};

/// A probe as written in a scenario: exactly one of `http`, `tcp`, `command`,
/// `prometheus`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeDoc {
    pub name: String,
    pub http: Option<HttpDoc>,
    pub tcp: Option<TcpDoc>,
    /// argv; run directly (no shell).
    pub command: Option<Vec<String>>,
    pub prometheus: Option<PrometheusDoc>,
    /// Time between samples (default 1s).
    pub interval: Option<Span>,
    /// A sample that takes longer fails (default 2s).
    pub timeout: Option<Span>,
    /// SLO abort conditions over a sliding window of this probe's samples.
    pub abort: Option<slo::SloDoc>,
}

/// `http: {url, expect_status, max_latency}`: plain HTTP/1.1 GET.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpDoc {
    /// `http://host:port/path` (https is not supported).
    pub url: String,
    pub expect_status: Option<u16>,
    /// A slower answer counts as a failure.
    pub max_latency: Option<Span>,
}

/// `tcp: {address}`: a TCP connect to `host:port`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpDoc {
    pub address: String,
}

/// `prometheus: {url, query, max, min}`: an instant query whose value must stay within
/// `min..=max` (at least one of them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusDoc {
    /// The server: `http://prom:9090` (a path prefix is kept).
    pub url: String,
    /// PromQL; an instant vector (every series is checked) or a scalar.
    pub query: String,
    pub max: Option<f64>,
    pub min: Option<f64>,
}

/// A checked probe.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "ProbeDoc")]
pub struct Probe {
    pub name: String,
    pub check: Check,
    pub interval: Span,
    pub timeout: Span,
    /// Its SLO abort conditions, if it has any.
    pub slo: Option<Slo>,
}

/// What a probe checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Http {
        url: HttpUrl,
        expect_status: u16,
        max_latency: Option<Span>,
    },
    Tcp {
        address: String,
    },
    /// argv, run directly.
    Command(Vec<String>),
    Prometheus {
        query: InstantQuery,
        bounds: Bounds,
    },
}

impl Check {
    /// `http`, `tcp`, `command` or `prometheus`: the document's key.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Http { .. } => "http",
            Check::Tcp { .. } => "tcp",
            Check::Command(_) => "command",
            Check::Prometheus { .. } => "prometheus",
        }
    }
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_INTERVAL: Duration = Duration::from_millis(10);

impl TryFrom<ProbeDoc> for Probe {
    type Error = String;

    /// Checks the entry; errors start with `probe "NAME": ` and name the key.
    fn try_from(d: ProbeDoc) -> Result<Probe, String> {
        let name = d.name.clone();
        Probe::check_doc(d).map_err(|e| format!("probe {name:?}: {e}"))
    }
}

impl Probe {
    fn check_doc(d: ProbeDoc) -> Result<Probe, String> {
        if d.name.trim().is_empty() {
            return Err("name is empty".into());
        }
        let given = [
            d.http.is_some(),
            d.tcp.is_some(),
            d.command.is_some(),
            d.prometheus.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            return Err(format!(
                "give exactly one of http, tcp, command, prometheus (got {given})"
            ));
        }
        let check = if let Some(h) = d.http {
            Check::Http {
                url: HttpUrl::parse(&h.url).map_err(|e| format!("http.url: {e}"))?,
                expect_status: h.expect_status.unwrap_or(200),
                max_latency: h.max_latency,
            }
        } else if let Some(t) = d.tcp {
            if t.address.trim().is_empty() {
                return Err("tcp.address is empty".into());
            }
            Check::Tcp { address: t.address }
        } else if let Some(c) = d.command {
            if c.is_empty() || c[0].is_empty() {
                return Err("command is empty".into());
            }
            Check::Command(c)
        } else {
            let p = d.prometheus.expect("one kind is given");
            Check::Prometheus {
                query: InstantQuery::new(&p.url, &p.query)
                    .map_err(|e| format!("prometheus.{e}"))?,
                bounds: Bounds::new(p.min, p.max).map_err(|e| format!("prometheus: {e}"))?,
            }
        };
        let interval = d.interval.unwrap_or(Span(DEFAULT_INTERVAL));
        if interval.0 < MIN_INTERVAL {
            return Err(format!(
                "interval {interval} is under the minimum of {}",
                Span(MIN_INTERVAL)
            ));
        }
        let timeout = d.timeout.unwrap_or(Span(DEFAULT_TIMEOUT));
        if timeout.0.is_zero() {
            return Err("timeout must be more than 0s".into());
        }
        let latency = !matches!(check, Check::Prometheus { .. });
        let slo = d
            .abort
            .as_ref()
            .map(|a| Slo::from_doc(a, interval, latency))
            .transpose()?;
        Ok(Probe {
            name: d.name,
            check,
            interval,
            timeout,
            slo,
        })
    }

    /// What it checks, in words.
    pub fn describe(&self) -> String {
        match &self.check {
            Check::Http {
                url,
                expect_status,
                max_latency,
            } => format!(
                "GET {url} expects {expect_status}{}",
                max_latency
                    .map(|d| format!(" within {d}"))
                    .unwrap_or_default()
            ),
            Check::Tcp { address } => format!("TCP connect {address}"),
            Check::Command(argv) => format!("command {} exits 0", argv.join(" ")),
            Check::Prometheus { query, bounds } => format!(
                "Prometheus {} query {} {bounds}",
                query.server(),
                query.query()
            ),
        }
    }

    /// The bounds of a prometheus probe.
    pub fn bounds(&self) -> Option<Bounds> {
        match &self.check {
            Check::Prometheus { bounds, .. } => Some(*bounds),
            _ => None,
        }
    }

    /// Takes one sample.
    pub async fn sample(&self) -> Sample {
        let at_ms = crate::clock::now_ms();
        let start = Instant::now();
        let res = tokio::time::timeout(self.timeout.0, self.check()).await;
        let latency = start.elapsed();
        let (value, error) = match res {
            Ok((v, r)) => (v, r.err()),
            Err(_) => (None, Some(format!("no answer within {}", self.timeout))),
        };
        Sample {
            at_ms,
            ok: error.is_none(),
            latency_us: latency.as_micros() as u64,
            value,
            error,
        }
    }

    /// Sends a prometheus probe's query once and says whether Prometheus refused it as
    /// malformed: `Some(error)` then, in Prometheus's words. `None` for other probes and
    /// for answers that are not a refusal (a Prometheus that is down is not bad input).
    pub async fn rejected_query(&self) -> Option<QueryError> {
        let Check::Prometheus { query, .. } = &self.check else {
            return None;
        };
        match tokio::time::timeout(self.timeout.0, query.run()).await {
            Ok(Err(e)) if e.is_bad_query() => Some(e),
            _ => None,
        }
    }

    /// One check: the value seen (prometheus) and whether it passed.
    async fn check(&self) -> (Option<f64>, Result<(), String>) {
        match &self.check {
            Check::Http {
                url,
                expect_status,
                max_latency,
            } => (None, http_check(url, *expect_status, *max_latency).await),
            Check::Tcp { address } => (
                None,
                tokio::net::TcpStream::connect(address)
                    .await
                    .map(drop)
                    .map_err(|e| format!("connect {address}: {e}")),
            ),
            Check::Command(argv) => (None, faultline_proto::command::succeeds(argv).await),
            Check::Prometheus { query, bounds } => match query.run().await {
                Ok(series) => prometheus::judge(&series, bounds),
                Err(e) => (None, Err(e.to_string())),
            },
        }
    }
}

async fn http_check(url: &HttpUrl, expect: u16, max_latency: Option<Span>) -> Result<(), String> {
    let start = Instant::now();
    let status = http::get(url).await?.status;
    let took = start.elapsed();
    if status != expect {
        return Err(format!("status {status}, expected {expect}"));
    }
    if let Some(max) = max_latency
        && took > max.0
    {
        return Err(format!(
            "took {}ms, over the bound of {max}",
            took.as_millis()
        ));
    }
    Ok(())
}

/// One probe result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at_ms: u64,
    pub ok: bool,
    pub latency_us: u64,
    /// The value a prometheus probe saw (absent for other probes and failed queries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A running probe's record, shared with the scenario runner.
#[derive(Debug, Default)]
pub struct ProbeState {
    pub samples: Vec<Sample>,
    /// Failures in a row, right now.
    pub failing_streak: u32,
}

/// Shared handle on a probe's state.
pub type Shared = Arc<Mutex<ProbeState>>;

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn probe(yaml: &str) -> Result<Probe, String> {
        serde_saphyr::from_str::<Probe>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn entries_are_checked_when_read() {
        let e = probe("name: c\ncommand: [\"true\"]\ntcp: {address: 'x:1'}\n").unwrap_err();
        assert!(
            e.starts_with(
                "probe \"c\": give exactly one of http, tcp, command, prometheus (got 2)"
            ),
            "{e}"
        );
        let e =
            probe("name: p\nprometheus: {url: 'http://127.0.0.1:9090', query: up}\n").unwrap_err();
        assert!(
            e.starts_with("probe \"p\": prometheus: give max, min or both"),
            "{e}"
        );
        let e =
            probe("name: api\nhttp: {url: 'http://a/'}\ninterval: 1s\nabort: {error_rate: 150%}\n")
                .unwrap_err();
        assert!(
            e.starts_with("probe \"api\": abort.error_rate: \"150%\" is not in 0..=100%"),
            "{e}"
        );
        let e = probe(
            "name: api\nhttp: {url: 'http://a/'}\ninterval: 1s\nabort: {p99: 1s, window: 1s}\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with(
                "probe \"api\": abort.window 1s is shorter than two probe intervals (2 × 1s = 2s)"
            ),
            "{e}"
        );
        let e = probe("name: api\nhttp: {url: 'https://a/'}\n").unwrap_err();
        assert!(e.contains("http.url: \"https://a/\": only http://"), "{e}");
        let p = probe(
            "name: errors\nprometheus: {url: 'http://prom:9090', query: 'sum(rate(x[1m]))', max: 0.005}\n\
             abort: {error_rate: 50%, window: 10s}\n",
        )
        .unwrap();
        assert_eq!(
            p.describe(),
            "Prometheus http://prom:9090/ query sum(rate(x[1m])) <= 0.005"
        );
        assert_eq!(p.check.kind(), "prometheus");
        assert_eq!(p.slo.unwrap().min_samples, 5);
    }

    #[tokio::test]
    async fn probes_against_a_real_listener() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut c, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    let _ = c.read(&mut b).await;
                    let _ = c
                        .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                        .await;
                });
            }
        });
        let p = |yaml: String| -> Probe { probe(&yaml).unwrap() };
        let http = p(format!(
            "name: h\nhttp: {{url: 'http://{addr}/x', expect_status: 503}}\n"
        ));
        assert!(http.sample().await.ok);
        let http = p(format!("name: h\nhttp: {{url: 'http://{addr}/x'}}\n"));
        let smp = http.sample().await;
        assert_eq!(smp.error.as_deref(), Some("status 503, expected 200"));
        let tcp = p(format!("name: t\ntcp: {{address: '{addr}'}}\n"));
        assert!(tcp.sample().await.ok);
        let cmd = p("name: c\ncommand: [\"false\"]\n".into());
        assert!(!cmd.sample().await.ok);
        let cmd = p("name: c\ncommand: [\"true\"]\n".into());
        assert!(cmd.sample().await.ok);
        // A Prometheus that is not there: a failed sample with the reason.
        let prom =
            p("name: p\nprometheus: {url: 'http://127.0.0.1:1', query: up, min: 1}\n".into());
        let smp = prom.sample().await;
        assert!(!smp.ok);
        assert!(
            smp.error.as_deref().unwrap().starts_with(
                "cannot reach Prometheus at http://127.0.0.1:1/: connect 127.0.0.1:1:"
            ),
            "{smp:?}"
        );
        assert_eq!(prom.rejected_query().await, None);
    }
}
