//! A real Prometheus server (Debian's `prometheus`, unpacked by tests/interop-deps) for
//! the tests: its own loopback port,
//! its own temporary config and storage directory, scraping the targets the test names.
//! Killed (and reaped) when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `prometheus` binary: Debian's, unpacked by tests/interop-deps (see
/// [`crate::interop::prometheus`]).
pub fn binary() -> PathBuf {
    crate::interop::prometheus().unwrap_or_else(|e| panic!("{e}"))
}

/// A running Prometheus.
pub struct PromServer {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl PromServer {
    /// Starts Prometheus scraping each `(job, "127.0.0.1:PORT")` every `interval`
    /// (`"500ms"`), and waits until it is ready.
    pub fn start(targets: &[(&str, String)], interval: &str) -> PromServer {
        let dir = tempfile::Builder::new()
            .prefix("faultline-prom-")
            .tempdir()
            .unwrap();
        let mut cfg = format!(
            "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  evaluation_interval: {interval}\nscrape_configs:\n"
        );
        for (job, target) in targets {
            cfg += &format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            );
        }
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, cfg).unwrap();
        let port = crate::pki::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let mut p = PromServer {
            child: Some(child),
            dir,
            port,
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(a) = get(&format!("{}/-/ready", self.url()))
                && a.0 == 200
            {
                return;
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("prometheus exited with {st}:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("prometheus not ready within 30 s:\n{}", self.log_text());
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The values of an instant query's series (empty on an error or no series).
    pub fn values(&self, query: &str) -> Vec<f64> {
        let q = faultline_proto::prometheus::InstantQuery::new(&self.url(), query).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(q.run())
            .map(|s| s.into_iter().map(|s| s.value).collect())
            .unwrap_or_default()
    }

    /// Waits until `query` has a series with value `want` (the targets scraped).
    pub fn wait_for(&self, query: &str, want: f64, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.values(query).contains(&want) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "prometheus: {query} never showed {want} within {within:?} (now {:?}):\n{}",
            self.values(query),
            self.log_text()
        );
    }

    /// SIGKILL and reap: Prometheus is down from now on.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PromServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A GET through the probes' own client: `(status, body)`, or None if nothing answered.
fn get(url: &str) -> Option<(u16, Vec<u8>)> {
    let u = faultline_proto::http::HttpUrl::parse(url).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), faultline_proto::http::get(&u))
            .await
            .ok()?
            .ok()
            .map(|a| (a.status, a.body.to_vec()))
    })
}
