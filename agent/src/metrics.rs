//! Prometheus metrics on their own address, `GET /metrics`: OpenMetrics when the
//! scraper asks for it (Prometheus does), the classic text format otherwise (see
//! [`format`]).
//!
//! Fed from the engine's event broadcast (injected/reverted/expired/failed/refused),
//! from the RPC wrapper in [`crate::api`] (latency by method), and read from the engine
//! at scrape time (active faults by kind, lease lapses). The server is a few lines of
//! tokio: one request per connection, `GET /metrics` only, no framework.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::engine::{Engine, Event, EventType};
use crate::fault::Kind;

pub mod format;

pub use format::Format;

/// The default address of the metrics endpoint.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    event: String,
    kind: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: String,
    code: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~3.3 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

struct Inner {
    registry: Registry,
    active: Family<KindLabels, Gauge>,
    faults: Family<FaultLabels, Counter>,
    rpc_latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    rpcs: Family<RpcLabels, Counter>,
    lease_lapses: Counter,
    health_aborts: Counter,
    revert_failures: Counter,
    engine: Mutex<Option<Engine>>,
}

/// The agent's metrics: cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Why a refusal happened, as a short label: the limit's name, or a class.
fn refusal_reason(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("refused by limit ") {
        return rest
            .split_whitespace()
            .next()
            .unwrap_or("limit")
            .to_string();
    }
    if message.starts_with("refused:") {
        return "protected".into();
    }
    if message.starts_with("invalid ") {
        return "invalid".into();
    }
    "other".into()
}

/// Who ended a fault, as a short label.
fn revert_reason(message: &str) -> &'static str {
    if message.starts_with("lease expired") {
        "lease"
    } else if message.starts_with("faultd stop") {
        "shutdown"
    } else if message.starts_with("health") {
        "health"
    } else {
        "request"
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("faultline");
        let active = Family::<KindLabels, Gauge>::default();
        registry.register(
            "active_faults",
            "Faults active now, by kind",
            active.clone(),
        );
        let faults = Family::<FaultLabels, Counter>::default();
        registry.register(
            "faults",
            "Fault lifecycle events (injected, reverted, expired, failed, refused) by kind and reason",
            faults.clone(),
        );
        let rpc_latency: Family<MethodLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "rpc_duration",
            "gRPC request latency by method (authorization, work and audit line included)",
            prometheus_client::registry::Unit::Seconds,
            rpc_latency.clone(),
        );
        let rpcs = Family::<RpcLabels, Counter>::default();
        registry.register(
            "rpc_requests",
            "gRPC requests by method and result code",
            rpcs.clone(),
        );
        let lease_lapses = Counter::default();
        registry.register(
            "lease_lapses",
            "Leases that lapsed because their holder stopped renewing them",
            lease_lapses.clone(),
        );
        let health_aborts = Counter::default();
        registry.register(
            "health_aborts",
            "Times the health guard aborted faults",
            health_aborts.clone(),
        );
        let revert_failures = Counter::default();
        registry.register(
            "revert_failures",
            "Reverts that failed (the fault's undo could not be applied)",
            revert_failures.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                active,
                faults,
                rpc_latency,
                rpcs,
                lease_lapses,
                health_aborts,
                revert_failures,
                engine: Mutex::new(None),
            }),
        }
    }

    /// Follows `engine`'s events from now on (in a task), and reads its active faults
    /// and lease lapses at each scrape.
    pub fn watch(&self, engine: &Engine) {
        *self.inner.engine.lock().unwrap_or_else(|p| p.into_inner()) = Some(engine.clone());
        let mut rx = engine.subscribe();
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(e) => me.event(&e),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "metrics fell behind the engine's events");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// Counts one lifecycle event.
    pub fn event(&self, e: &Event) {
        let kind = e
            .fault_kind
            .map(Kind::name)
            .unwrap_or("unknown")
            .to_string();
        let (event, reason) = match e.kind {
            EventType::Injected => ("injected", String::new()),
            EventType::Reverted => ("reverted", revert_reason(&e.message).to_string()),
            EventType::Expired => ("expired", "ttl".to_string()),
            EventType::Failed => {
                if e.message.starts_with("revert failed") {
                    self.inner.revert_failures.inc();
                    ("failed", "revert".to_string())
                } else {
                    ("failed", "apply".to_string())
                }
            }
            EventType::Refused => ("refused", refusal_reason(&e.message)),
            EventType::Tick => return,
            EventType::HealthAbort => {
                self.health_abort();
                return;
            }
        };
        self.inner
            .faults
            .get_or_create(&FaultLabels {
                event: event.into(),
                kind,
                reason,
            })
            .inc();
    }

    /// Times one RPC; `code` is `ok` or the gRPC code's name.
    pub fn rpc(&self, method: &str, code: &str, took: Duration) {
        self.inner
            .rpc_latency
            .get_or_create(&MethodLabels {
                method: method.into(),
            })
            .observe(took.as_secs_f64());
        self.inner
            .rpcs
            .get_or_create(&RpcLabels {
                method: method.into(),
                code: code.into(),
            })
            .inc();
    }

    /// The health guard aborted faults.
    pub fn health_abort(&self) {
        self.inner.health_aborts.inc();
    }

    /// Every metric, as of now, in `format`.
    pub fn render_as(&self, format: Format) -> String {
        let om = self.render();
        match format {
            Format::OpenMetrics => om,
            Format::Classic => format::classic(&om),
        }
    }

    /// The OpenMetrics text of every metric, as of now.
    pub fn render(&self) -> String {
        let engine = self
            .inner
            .engine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(engine) = engine {
            let mut by_kind: std::collections::HashMap<&'static str, i64> = [
                Kind::Kill,
                Kind::Pause,
                Kind::Network,
                Kind::Cpu,
                Kind::Memory,
                Kind::DiskFill,
                Kind::IoLimit,
                Kind::IoStress,
            ]
            .iter()
            .map(|k| (k.name(), 0))
            .collect();
            for f in engine.list(false) {
                *by_kind.entry(f.kind().name()).or_default() += 1;
            }
            for (k, n) in by_kind {
                self.inner
                    .active
                    .get_or_create(&KindLabels { kind: k.into() })
                    .set(n);
            }
            let lapses = engine.lease_lapses();
            let seen = self.inner.lease_lapses.get();
            if lapses > seen {
                self.inner.lease_lapses.inc_by(lapses - seen);
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Serves `GET /metrics` on `listener` until the task is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        loop {
            let (conn, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = tokio::time::timeout(Duration::from_secs(10), me.answer(conn)).await
                {
                    tracing::debug!(%peer, error = %e, "metrics: slow client dropped");
                }
            });
        }
    }

    async fn answer(&self, mut conn: tokio::net::TcpStream) {
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf);
        let mut words = head.lines().next().unwrap_or("").split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let path = path.split('?').next().unwrap_or("");
        let accept = head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case("accept").then(|| v.trim())
        });
        let format = Format::negotiate(accept);
        let (status, ctype, body) = match (method, path) {
            ("GET", "/metrics") => ("200 OK", format.content_type(), self.render_as(format)),
            ("GET", _) => (
                "404 Not Found",
                "text/plain",
                "not found: metrics are at /metrics\n".to_string(),
            ),
            _ => (
                "405 Method Not Allowed",
                "text/plain",
                "only GET /metrics\n".to_string(),
            ),
        };
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = conn.write_all(reply.as_bytes()).await;
        let _ = conn.shutdown().await;
    }
}

/// Binds the metrics address and serves it in a task.
pub async fn spawn(metrics: Metrics, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let l = tokio::net::TcpListener::bind(addr).await?;
    let local = l.local_addr()?;
    tokio::spawn(metrics.serve(l));
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn ev(kind: EventType, fk: Kind, msg: &str) -> Event {
        Event {
            kind,
            at: SystemTime::now(),
            fault_id: "f1".into(),
            fault_kind: Some(fk),
            message: msg.into(),
            fault: None,
            requested_by: "t".into(),
        }
    }

    #[test]
    fn counts_events_by_kind_and_reason() {
        let m = Metrics::new();
        m.event(&ev(EventType::Injected, Kind::Pause, "paused"));
        m.event(&ev(EventType::Injected, Kind::Pause, "paused"));
        m.event(&ev(EventType::Reverted, Kind::Pause, "lease expired (x)"));
        m.event(&ev(
            EventType::Refused,
            Kind::Kill,
            "refused by limit max_duration = 10m: requested 1h",
        ));
        m.event(&ev(EventType::Failed, Kind::Pause, "revert failed: ESRCH"));
        m.rpc("Status", "ok", Duration::from_micros(300));
        m.health_abort();
        let t = m.render();
        assert!(
            t.contains(r#"faultline_faults_total{event="injected",kind="pause",reason=""} 2"#),
            "{t}"
        );
        assert!(
            t.contains(r#"faultline_faults_total{event="reverted",kind="pause",reason="lease"} 1"#),
            "{t}"
        );
        assert!(
            t.contains(
                r#"faultline_faults_total{event="refused",kind="kill",reason="max_duration"} 1"#
            ),
            "{t}"
        );
        assert!(t.contains("faultline_revert_failures_total 1"), "{t}");
        assert!(t.contains("faultline_health_aborts_total 1"), "{t}");
        assert!(
            t.contains(r#"faultline_rpc_duration_seconds_count{method="Status"} 1"#),
            "{t}"
        );
        assert!(t.ends_with("# EOF\n"), "{t}");
    }

    #[test]
    fn classic_text_covers_every_family() {
        let m = Metrics::new();
        m.event(&ev(EventType::Injected, Kind::Pause, "paused"));
        m.rpc("Status", "ok", Duration::from_micros(300));
        let om = m.render();
        // format::classic knows these three types (their samples are the same in both
        // formats); a new type needs it taught first.
        for t in om.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let kind = t.rsplit(' ').next().unwrap();
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "{t}: teach format::classic this type"
            );
        }
        let c = m.render_as(Format::Classic);
        assert!(!c.contains("# EOF"), "{c}");
        assert!(c.contains("# TYPE faultline_faults_total counter"), "{c}");
        assert!(c.contains("# HELP faultline_lease_lapses_total "), "{c}");
    }
}
