//! Steady-state probes: an HTTP GET (expected status, latency bound), a TCP connect, or
//! a command that must exit 0. Each probe runs on its own interval for the whole
//! scenario; every sample is kept (time, ok, latency) for the report's statistics.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::request::Span;

/// A probe as written in a scenario: exactly one of `http`, `tcp`, `command`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    pub name: String,
    pub http: Option<HttpProbe>,
    pub tcp: Option<TcpProbe>,
    /// argv; run directly (no shell).
    pub command: Option<Vec<String>>,
    /// Time between samples (default 1s).
    #[serde(default = "default_interval")]
    pub interval: Span,
    /// A sample that takes longer fails (default 2s).
    #[serde(default = "default_timeout")]
    pub timeout: Span,
}

fn default_interval() -> Span {
    Span(Duration::from_secs(1))
}
fn default_timeout() -> Span {
    Span(Duration::from_secs(2))
}

/// `http: {url, expect_status, max_latency}`: plain HTTP/1.1 GET.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    /// `http://host:port/path` (https is not supported).
    pub url: String,
    #[serde(default = "default_status")]
    pub expect_status: u16,
    /// A slower answer counts as a failure.
    pub max_latency: Option<Span>,
}

fn default_status() -> u16 {
    200
}

/// `tcp: {address}`: a TCP connect to `host:port`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProbe {
    pub address: String,
}

impl ProbeSpec {
    /// Checks that exactly one kind is given and that it is well-formed.
    pub fn validate(&self) -> Result<(), String> {
        let n = [
            self.http.is_some(),
            self.tcp.is_some(),
            self.command.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n != 1 {
            return Err(format!(
                "probe {:?}: give exactly one of http, tcp, command (got {n})",
                self.name
            ));
        }
        if let Some(h) = &self.http {
            parse_url(&h.url).map_err(|e| format!("probe {:?}: {e}", self.name))?;
        }
        if let Some(c) = &self.command
            && c.is_empty()
        {
            return Err(format!("probe {:?}: command is empty", self.name));
        }
        if self.interval.0 < Duration::from_millis(10) {
            return Err(format!("probe {:?}: interval under 10ms", self.name));
        }
        Ok(())
    }

    /// What it checks, in words.
    pub fn describe(&self) -> String {
        if let Some(h) = &self.http {
            format!(
                "GET {} expects {}{}",
                h.url,
                h.expect_status,
                h.max_latency
                    .map(|d| format!(" within {}", d))
                    .unwrap_or_default()
            )
        } else if let Some(t) = &self.tcp {
            format!("TCP connect {}", t.address)
        } else {
            format!(
                "command {} exits 0",
                self.command.as_deref().unwrap_or_default().join(" ")
            )
        }
    }

    /// Takes one sample.
    pub async fn sample(&self) -> Sample {
        let at_ms = crate::clock::now_ms();
        let start = Instant::now();
        let res = tokio::time::timeout(self.timeout.0, self.check()).await;
        let latency = start.elapsed();
        let error = match res {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(format!("no answer within {}", self.timeout)),
        };
        Sample {
            at_ms,
            ok: error.is_none(),
            latency_us: latency.as_micros() as u64,
            error,
        }
    }

    async fn check(&self) -> Result<(), String> {
        if let Some(h) = &self.http {
            let start = Instant::now();
            let status = http_get(&h.url).await?;
            let took = start.elapsed();
            if status != h.expect_status {
                return Err(format!("status {status}, expected {}", h.expect_status));
            }
            if let Some(max) = h.max_latency
                && took > max.0
            {
                return Err(format!(
                    "took {}ms, over the bound of {}",
                    took.as_millis(),
                    max
                ));
            }
            Ok(())
        } else if let Some(t) = &self.tcp {
            tokio::net::TcpStream::connect(&t.address)
                .await
                .map(drop)
                .map_err(|e| format!("connect {}: {e}", t.address))
        } else {
            let argv = self.command.as_deref().unwrap_or_default();
            let st = tokio::process::Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await
                .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
            if st.success() {
                Ok(())
            } else {
                Err(format!("{} exited with {st}", argv[0]))
            }
        }
    }
}

/// Splits `http://host:port/path` into (`host:port`, `host`, `/path`).
fn parse_url(url: &str) -> Result<(String, String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("url {url:?}: only http:// is supported (a plain HTTP/1.1 GET)"))?;
    let (auth, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if auth.is_empty() {
        return Err(format!("url {url:?} has no host"));
    }
    let host = auth.to_string();
    let addr = if auth
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        auth.to_string()
    } else {
        format!("{auth}:80")
    };
    Ok((addr, host, path.to_string()))
}

/// A minimal HTTP/1.1 GET: returns the status code once the whole answer is read.
pub async fn http_get(url: &str) -> Result<u16, String> {
    let (addr, host, path) = parse_url(url)?;
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: faultctl-probe\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    // Read the whole answer (Connection: close), at most 1 MiB.
    let mut chunk = [0u8; 8192];
    loop {
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read from {addr}: {e}"))?;
        if n == 0 || buf.len() > (1 << 20) {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
        _ => Err(format!("{addr} did not answer HTTP (first line {line:?})")),
    }
}

/// One probe result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub at_ms: u64,
    pub ok: bool,
    pub latency_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
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
    let pct = |p: f64| -> Option<f64> {
        if lat.is_empty() {
            return None;
        }
        let i = ((p / 100.0) * lat.len() as f64).ceil() as usize;
        let v = lat[i.clamp(1, lat.len()) - 1];
        Some((v as f64 / 1000.0 * 100.0).round() / 100.0)
    };
    Stats {
        samples: w.len(),
        errors,
        error_rate: if w.is_empty() {
            0.0
        } else {
            ((errors as f64 / w.len() as f64) * 10_000.0).round() / 10_000.0
        },
        p50_ms: pct(50.0),
        p99_ms: pct(99.0),
    }
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
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/health").unwrap(),
            (
                "127.0.0.1:8080".into(),
                "127.0.0.1:8080".into(),
                "/health".into()
            )
        );
        assert_eq!(parse_url("http://db").unwrap().0, "db:80");
        assert!(parse_url("https://x").unwrap_err().contains("only http://"));
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
        let p = |yaml: String| -> ProbeSpec { serde_saphyr::from_str(&yaml).unwrap() };
        let http = p(format!(
            "name: h\nhttp: {{url: 'http://{addr}/x', expect_status: 503}}\n"
        ));
        http.validate().unwrap();
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
        let both = p("name: c\ncommand: [\"true\"]\ntcp: {address: 'x:1'}\n".into());
        assert!(both.validate().is_err());
    }
}
