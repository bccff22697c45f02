//! The health guard: local abort conditions from the limits file's `[health]` section.
//!
//! Every `interval` it reads MemAvailable (`/proc/meminfo`), PSI `some avg10`
//! (`/proc/pressure/{cpu,memory,io}`) and runs the probes (HTTP GET expecting 2xx, TCP
//! connect, a command exiting 0, a Prometheus instant query whose value must stay within
//! bounds ([`faultline_proto::prometheus`], as faultctl's probes check it: a failed
//! query or an empty result fails too); each trips after `failures` consecutive
//! failures), so a node aborts its own faults on an SLO breach with no controller. When
//! a condition is breached while faults are active, it reverts every fault through
//! [`Engine::revert_all`] with the reason `health guard: <why>`, logs it, emits a
//! [`EventType::HealthAbort`] event, counts the abort ([`Engine::health_aborts`]) and
//! keeps guarding. It never blocks the engine: each check is bounded by its timeout.

use std::path::Path;

use super::{Engine, EventType};
use crate::limits::{HealthLimits, MemThreshold, Probe, ProbeCheck};

/// Starts the guard on the current runtime if the limits set any condition.
pub fn spawn(engine: Engine) -> Option<tokio::task::JoinHandle<()>> {
    let h = engine.host().limits.health.clone();
    if h.is_empty() {
        return None;
    }
    tracing::info!(interval = ?h.interval, conditions = ?h.describe(), "health guard on");
    Some(tokio::spawn(run(engine, h)))
}

async fn run(engine: Engine, h: HealthLimits) {
    let mut failures = vec![0u32; h.probes.len()];
    let mut tick = tokio::time::interval(h.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let why = check(&h, &mut failures).await;
        let Some(why) = why else { continue };
        if engine.list(false).is_empty() {
            tracing::debug!(why = %why, "health guard: breached, no fault active");
            continue;
        }
        abort(&engine, &why).await;
    }
}

/// Reverts everything for `why`, counts it, and says so.
pub async fn abort(engine: &Engine, why: &str) {
    tracing::error!(why, "health guard tripped: aborting every fault");
    let results = engine.revert_all(&format!("health guard: {why}")).await;
    engine.count_health_abort();
    let failed = results.iter().filter(|r| r.result.is_err()).count();
    engine.emit(
        EventType::HealthAbort,
        None,
        format!(
            "health guard: {why}; reverted {} fault{}{}",
            results.len(),
            if results.len() == 1 { "" } else { "s" },
            if failed > 0 {
                format!(" ({failed} failed to revert)")
            } else {
                String::new()
            }
        ),
        "faultd health guard",
    );
}

/// One round of checks: the first breached condition, described.
pub async fn check(h: &HealthLimits, failures: &mut [u32]) -> Option<String> {
    let mut breach = None;
    if let Some(min) = &h.min_mem_available {
        match meminfo(Path::new("/proc/meminfo")) {
            Ok((avail, total)) => {
                let floor = min.bytes(total);
                if avail < floor {
                    breach = Some(format!(
                        "MemAvailable {} MiB is below {} ({} MiB)",
                        avail >> 20,
                        describe_floor(min),
                        floor >> 20
                    ));
                }
            }
            Err(e) => tracing::warn!(error = %e, "health guard cannot read /proc/meminfo"),
        }
    }
    for (res, max) in [
        ("cpu", h.max_psi_cpu_some_avg10),
        ("memory", h.max_psi_memory_some_avg10),
        ("io", h.max_psi_io_some_avg10),
    ] {
        let Some(max) = max else { continue };
        let path = format!("/proc/pressure/{res}");
        match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| psi_some_avg10(&t).ok_or_else(|| "no `some avg10=`".into()))
        {
            Ok(v) if v > max && breach.is_none() => {
                breach = Some(format!("PSI {res} some avg10 {v} is above {max}"));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(file = %path, error = %e, "health guard cannot read PSI"),
        }
    }
    for (path, min) in &h.min_disk_free {
        match crate::fault::disk::Space::of(Path::new(path)) {
            Ok(s) => {
                let floor = min.bytes(s.used + s.avail);
                if s.avail < floor && breach.is_none() {
                    breach = Some(format!(
                        "space available on {path} {} is below {}",
                        faultline_proto::units::format_size(s.avail),
                        crate::limits::disk_floor_text(min)
                    ));
                }
            }
            Err(e) => tracing::warn!(path = %path, error = %e, "health guard cannot statvfs"),
        }
    }
    // Every probe runs every round, so its failure count stays true.
    let results = futures::future::join_all(h.probes.iter().map(run_probe)).await;
    for ((p, r), n) in h.probes.iter().zip(results).zip(failures.iter_mut()) {
        match r {
            Ok(()) => *n = 0,
            Err(e) => {
                *n += 1;
                tracing::warn!(probe = %p.check, failures = *n, of = p.failures, error = %e, "health probe failed");
                if *n >= p.failures && breach.is_none() {
                    breach = Some(format!(
                        "probe {} failed {} times in a row (last: {e})",
                        p.check, *n
                    ));
                }
            }
        }
    }
    breach
}

fn describe_floor(m: &MemThreshold) -> String {
    match m {
        MemThreshold::Bytes(b) => format!("min_mem_available {} MiB", b >> 20),
        MemThreshold::Percent(p) => format!("min_mem_available {p}% of MemTotal"),
    }
}

/// (MemAvailable, MemTotal) in bytes.
pub fn meminfo(path: &Path) -> Result<(u64, u64), String> {
    let t = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let field = |name: &str| -> Result<u64, String> {
        t.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| format!("{}: no {name}", path.display()))
    };
    Ok((field("MemAvailable:")?, field("MemTotal:")?))
}

/// `some avg10=` of a PSI file (`some avg10=1.23 avg60=... total=...`).
pub fn psi_some_avg10(text: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with("some "))?
        .split_whitespace()
        .find_map(|w| w.strip_prefix("avg10="))?
        .parse()
        .ok()
}

async fn run_probe(p: &Probe) -> Result<(), String> {
    match tokio::time::timeout(p.timeout, probe_once(&p.check)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {}",
            faultline_proto::units::format_duration(p.timeout)
        )),
    }
}

async fn probe_once(c: &ProbeCheck) -> Result<(), String> {
    match c {
        ProbeCheck::Tcp(addr) => tokio::net::TcpStream::connect(addr.as_str())
            .await
            .map(|_| ())
            .map_err(|e| format!("connect {addr}: {e}")),
        ProbeCheck::Http(url) => http_get(url).await,
        ProbeCheck::Prometheus { query, bounds } => match query.run().await {
            Ok(series) => faultline_proto::prometheus::judge(&series, bounds).1,
            Err(e) => Err(e.to_string()),
        },
        ProbeCheck::Command(argv) => faultline_proto::command::succeeds(argv).await,
    }
}

/// An HTTP GET of `url` through the probes' client ([`faultline_proto::http`]); 2xx
/// expected.
async fn http_get(url: &str) -> Result<(), String> {
    let u = faultline_proto::http::HttpUrl::parse(url)?;
    let status = faultline_proto::http::get(&u).await?.status;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("{url} answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn parses_psi_and_meminfo() {
        let t = "some avg10=12.50 avg60=3.00 avg300=1.00 total=123\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(psi_some_avg10(t), Some(12.5));
        let (a, t) = meminfo(Path::new("/proc/meminfo")).unwrap();
        assert!(a > 0 && t >= a);
    }

    #[tokio::test]
    async fn probes_count_consecutive_failures() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = HealthLimits {
            probes: vec![Probe {
                check: ProbeCheck::Tcp(addr.clone()),
                timeout: Duration::from_secs(1),
                failures: 2,
            }],
            ..Default::default()
        };
        let mut f = vec![0];
        assert_eq!(check(&h, &mut f).await, None);
        drop(l);
        assert_eq!(check(&h, &mut f).await, None, "one failure of two");
        let why = check(&h, &mut f).await.unwrap();
        assert!(
            why.starts_with(&format!("probe tcp {addr} failed 2 times in a row")),
            "{why}"
        );
    }

    #[tokio::test]
    async fn http_probe_wants_2xx() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for answer in [
                "HTTP/1.1 200 OK\r\n\r\n",
                "HTTP/1.1 503 Unavailable\r\n\r\n",
            ] {
                let (mut s, _) = l.accept().await.unwrap();
                let mut b = [0u8; 512];
                let _ = s.read(&mut b).await;
                s.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let url = format!("http://{addr}/healthz");
        http_get(&url).await.unwrap();
        let e = http_get(&url).await.unwrap_err();
        assert_eq!(e, format!("{url} answered 503"));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn memory_floor_above_memtotal_breaches() {
        let h = HealthLimits {
            min_mem_available: Some(MemThreshold::Percent(100.0)),
            ..Default::default()
        };
        let why = check(&h, &mut []).await.unwrap();
        assert!(why.starts_with("MemAvailable "), "{why}");
    }

    #[tokio::test]
    async fn disk_floor_breaches_when_less_is_available() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().display().to_string();
        let h = |m| HealthLimits {
            min_disk_free: vec![(path.clone(), m)],
            ..Default::default()
        };
        assert_eq!(check(&h(MemThreshold::Bytes(1)), &mut []).await, None);
        let why = check(&h(MemThreshold::Percent(100.0)), &mut [])
            .await
            .unwrap();
        assert!(
            why.starts_with(&format!("space available on {path} ")),
            "{why}"
        );
    }
}
