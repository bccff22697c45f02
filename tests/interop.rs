//! faultd with clients nobody here wrote and Prometheus's own tools: the standard
//! health and reflection services on both transports (through a slow crash recovery),
//! the Python example and a stock Python client over the Unix socket and mutual TLS,
//! `promtool check metrics`, a real Prometheus server scraping faultd, and the Grafana
//! dashboard against the metrics faultd really exports, and docs/api.md's examples.
//!
//! Python and Prometheus come from `tests/interop-deps` (CI requires them:
//! `python-grpc`, `promtool`, `prometheus`); the VM guest has neither, so there those
//! tests skip.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultline_proto::v1 as pb;
use faultline_tests::agent::{Agent, AgentOptions, Victim, eventually, fault_id};
use faultline_tests::interop::{self, ServingStatus};
use faultline_tests::pki::{Ca, free_port, tls_config};
use faultline_tests::{require, require_tool};

/// An agent serving mutual TLS too: `ctl` is operator, `viewer` viewer, `stranger`
/// has a certificate from the right CA and no role.
struct TlsAgent {
    agent: Agent,
    port: u16,
    pki: tempfile::TempDir,
    ca: Ca,
}

impl TlsAgent {
    fn start(mut opts: AgentOptions) -> TlsAgent {
        let pki = tempfile::tempdir().unwrap();
        let ca = Ca::new(pki.path(), "interop-ca");
        let (cert, key) = ca.leaf(pki.path(), "node1", false);
        for who in ["ctl", "viewer", "stranger"] {
            ca.leaf(pki.path(), who, false);
        }
        let port = free_port();
        let extra = opts.config.take().unwrap_or_default();
        opts.config = Some(format!(
            "{extra}{}",
            tls_config(
                port,
                &cert,
                &key,
                &ca.pem,
                "operator = [\"ctl\"]\nviewer = [\"viewer\"]\n",
            )
        ));
        let agent = Agent::start_with(opts);
        TlsAgent {
            agent,
            port,
            pki,
            ca,
        }
    }

    fn cert(&self, who: &str) -> (PathBuf, PathBuf) {
        (
            self.pki.path().join(format!("{who}.pem")),
            self.pki.path().join(format!("{who}.key")),
        )
    }

    async fn channel(&self, who: &str) -> tonic::transport::Channel {
        let (c, k) = self.cert(who);
        interop::tls_channel(self.port, &self.ca.pem, &c, &k)
            .await
            .expect("TLS channel")
    }
}

fn audit_lines(state_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(state_dir.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Health says NOT_SERVING on both transports while a (test-stretched) crash recovery
/// runs, and an Agent call made meanwhile waits for it; then SERVING, and reflection
/// lists the services. Viewers may call both; an identity without a role may not. Every
/// call is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_on_both_transports_through_a_slow_recovery() {
    require!("root");
    let t = TlsAgent::start(AgentOptions {
        env: vec![(
            faultline_agent::server::SLOW_RECOVERY_ENV.into(),
            "3000".into(),
        )],
        listening_only: true,
        ..Default::default()
    });
    let started = Instant::now();
    let unix = interop::unix_channel(&t.agent.socket).await.unwrap();
    let viewer = t.channel("viewer").await;

    for (name, ch) in [("unix", unix.clone()), ("tls", viewer.clone())] {
        for service in ["", "faultline.v1.Agent"] {
            let st = interop::health(ch.clone(), service).await.unwrap();
            assert_eq!(
                st,
                ServingStatus::NotServing,
                "{name} {service:?} during recovery"
            );
        }
    }
    // An Agent call during recovery is held, not refused.
    let status = {
        let ch = unix.clone();
        tokio::spawn(async move {
            let r = pb::agent_client::AgentClient::new(ch)
                .status(pb::StatusRequest {})
                .await;
            // When it was answered, from the agent's start (the health calls before it
            // take a while in an emulated guest, so its own wait can be short).
            (r.map(|r| r.into_inner().agent_version), started.elapsed())
        })
    };
    let mut serving_after = None;
    while started.elapsed() < Duration::from_secs(15) {
        if interop::health(unix.clone(), "").await.unwrap() == ServingStatus::Serving {
            serving_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let serving_after = serving_after.expect("SERVING after recovery");
    assert!(
        serving_after >= Duration::from_millis(2500),
        "SERVING only after the 3 s recovery: {serving_after:?}"
    );
    let (version, answered) = status.await.unwrap();
    assert_eq!(version.unwrap(), env!("CARGO_PKG_VERSION"));
    assert!(
        answered >= Duration::from_millis(2500),
        "the Status call is answered only after the 3 s recovery: {answered:?}"
    );
    for (name, ch) in [("unix", unix.clone()), ("tls", viewer.clone())] {
        assert_eq!(
            interop::health(ch.clone(), "faultline.v1.Agent")
                .await
                .unwrap(),
            ServingStatus::Serving,
            "{name}"
        );
        let unknown = interop::health(ch.clone(), "no.such.Service")
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::NotFound, "{name}");
        let services = interop::reflection_services(ch).await.unwrap();
        for s in ["faultline.v1.Agent", "grpc.health.v1.Health"] {
            assert!(services.iter().any(|x| x == s), "{name}: {services:?}");
        }
    }
    // A certificate without a role reads nothing, health and reflection included.
    let stranger = t.channel("stranger").await;
    let e = interop::health(stranger.clone(), "").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("[roles]"), "{e:?}");
    let e = interop::reflection_services(stranger).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");

    let lines = audit_lines(&t.agent.state_dir());
    let find = |rpc: &str, identity: &str, result: &str| {
        lines.iter().any(|l| {
            l["rpc"] == rpc
                && l["identity"].as_str().unwrap_or("").contains(identity)
                && l["result"] == result
        })
    };
    assert!(
        find("grpc.health.v1.Health/Check", "uid=0", "ok"),
        "{lines:#?}"
    );
    assert!(
        find("grpc.health.v1.Health/Check", "viewer", "ok"),
        "{lines:#?}"
    );
    assert!(
        find("grpc.health.v1.Health/Check", "viewer", "NotFound"),
        "{lines:#?}"
    );
    assert!(
        find(
            "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "viewer",
            "ok"
        ),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["rpc"] == "grpc.health.v1.Health/Check"
                && l["identity"] == "stranger"
                && l["decision"] == "refused"
                && l["result"] == "PermissionDenied"),
        "{lines:#?}"
    );
}

/// A stop says NOT_SERVING to health watchers first, reverts, and then ends the streams
/// clients keep open (a health Watch, an Agent Watch) instead of waiting for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_says_not_serving_and_ends_open_streams() {
    require!("root");
    let mut agent = Agent::start();
    let ch = interop::unix_channel(&agent.socket).await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone())
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = health.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    let mut events = pb::agent_client::AgentClient::new(ch)
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let t0 = Instant::now();
    let stop = tokio::task::spawn_blocking(move || {
        let st = agent.stop();
        (st, agent.log_text())
    });
    let next = health.message().await.unwrap().unwrap();
    assert_eq!(
        next.status(),
        ServingStatus::NotServing,
        "said before the end"
    );
    let end = tokio::time::timeout(Duration::from_secs(10), health.message()).await;
    assert!(
        matches!(end, Ok(Err(_)) | Ok(Ok(None))),
        "the health stream ended: {end:?}"
    );
    let end = tokio::time::timeout(Duration::from_secs(10), events.message()).await;
    assert!(
        matches!(end, Ok(Err(_)) | Ok(Ok(None))),
        "the Watch stream ended: {end:?}"
    );
    let (st, log) = stop.await.unwrap();
    assert!(st.success(), "{st}\n{log}");
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "stopped in {:?}\n{log}",
        t0.elapsed()
    );
    assert!(log.contains("closing the streams still open"), "{log}");
}

/// The Python interpreter with grpcio, and stubs generated from the shipped .proto into
/// a temp dir (as examples/python/README.md says).
struct Py {
    python: PathBuf,
    stubs: tempfile::TempDir,
}

impl Py {
    fn new(python: PathBuf) -> Py {
        let stubs = tempfile::Builder::new()
            .prefix("faultline-pygen-")
            .tempdir()
            .unwrap();
        let proto = interop::source("proto/proto").unwrap();
        let out = Command::new(&python)
            .args(["-m", "grpc_tools.protoc", "-I"])
            .arg(&proto)
            .arg(format!("--python_out={}", stubs.path().display()))
            .arg(format!("--grpc_python_out={}", stubs.path().display()))
            .arg("faultline/v1/agent.proto")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "grpc_tools.protoc: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Py { python, stubs }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.python);
        c.env("PYTHONPATH", self.stubs.path())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null());
        c
    }
}

/// Runs the example against `agent`, pausing a victim; checks the victim really was
/// stopped while the example held it and runs again after.
fn run_example(py: &Py, agent: &Agent, transport: &[String]) {
    let v = Victim::sleep("faultline-pyexample");
    let example = interop::source("examples/python/faultline_example.py").unwrap();
    let child = py
        .cmd()
        .arg(&example)
        .args(["--pid", &v.pid().to_string(), "--hold", "1.5"])
        .args(transport)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stopped = eventually(Duration::from_secs(20), || v.state() == Some('T'));
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "example failed ({}):\n{stdout}\n{}\nagent log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        agent.log_text()
    );
    assert!(stopped, "the victim was paused while the example held it");
    assert_eq!(v.state(), Some('S'), "running again after the revert");
    for step in [
        "dry run:",
        "injected f-",
        "event: injected",
        "FAULT_STATE_REVERTED",
        "event: reverted",
        "closed",
        "done",
    ] {
        assert!(stdout.contains(step), "{step:?} in:\n{stdout}");
    }
    let lines = audit_lines(&agent.state_dir());
    for rpc in ["OpenLease", "Inject", "Watch", "Revert", "CloseLease"] {
        assert!(
            lines.iter().any(|l| l["rpc"] == rpc && l["result"] == "ok"),
            "{rpc} audited: {lines:#?}"
        );
    }
}

#[test]
fn python_example_over_the_unix_socket() {
    require!("root");
    let py = Py::new(require_tool!("python-grpc", interop::python()));
    let agent = Agent::start();
    run_example(
        &py,
        &agent,
        &["--socket".into(), agent.socket.display().to_string()],
    );
}

#[test]
fn python_example_over_mutual_tls() {
    require!("root");
    let py = Py::new(require_tool!("python-grpc", interop::python()));
    let t = TlsAgent::start(AgentOptions::default());
    let (cert, key) = t.cert("ctl");
    run_example(
        &py,
        &t.agent,
        &[
            "--target".into(),
            format!("127.0.0.1:{}", t.port),
            "--ca".into(),
            t.ca.pem.display().to_string(),
            "--cert".into(),
            cert.display().to_string(),
            "--key".into(),
            key.display().to_string(),
        ],
    );
    let lines = audit_lines(&t.agent.state_dir());
    assert!(
        lines
            .iter()
            .any(|l| l["rpc"] == "Inject" && l["identity"] == "ctl" && l["result"] == "ok"),
        "{lines:#?}"
    );
}

/// What docs/api.md promises: a stock grpc-core client (Python `grpcio`, no channel
/// options) works over the Unix socket, though it sends the socket path as `:authority`;
/// so does one with `grpc.default_authority`; health answers it too.
#[test]
fn stock_python_client_needs_no_authority_option() {
    require!("root");
    let py = Py::new(require_tool!("python-grpc", interop::python()));
    let agent = Agent::start();
    let script = r#"
import sys, grpc
from faultline.v1 import agent_pb2 as pb, agent_pb2_grpc as rpc
sock = sys.argv[1]
for opts in ([], [("grpc.default_authority", "localhost")]):
    with grpc.insecure_channel("unix://" + sock, options=opts) as ch:
        st = rpc.AgentStub(ch).Status(pb.StatusRequest(), timeout=10)
        health = ch.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=10)
        print(f"options={opts} version={st.agent_version} health={health.hex()}")
"#;
    let out = py
        .cmd()
        .args(["-c", script])
        .arg(&agent.socket)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        agent.log_text()
    );
    let version = env!("CARGO_PKG_VERSION");
    // HealthCheckResponse{status: SERVING} is the two bytes 08 01.
    assert!(
        stdout.contains(&format!("options=[] version={version} health=0801")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "options=[('grpc.default_authority', 'localhost')] version={version} health=0801"
        )),
        "{stdout}"
    );
    // The first channel really sent a socket path (grpc-core >= 1.57 %-encodes it)
    // and faultd served it as localhost.
    let log = agent.log_text();
    assert!(log.contains("serving it as localhost"), "{log}");
    assert!(log.contains("authority=") && log.contains("%2F"), "{log}");
}

/// `GET /metrics` with `accept` (None: no Accept header): (content type, body).
fn scrape(port: u16, accept: Option<&str>) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .expect("a Content-Type")
        .to_string();
    (ctype, body.to_string())
}

/// What Prometheus sends.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn metrics_agent() -> (Agent, u16) {
    let port = free_port();
    let agent = Agent::start_with(AgentOptions {
        limits: Some("profile = \"staging\"\n".into()),
        config: Some(format!("metrics_listen = \"127.0.0.1:{port}\"\n")),
        ..Default::default()
    });
    (agent, port)
}

/// Runs `promtool check metrics` on `text`; returns its exit status and output.
fn promtool_check(promtool: &Path, text: &str) -> (bool, String) {
    let mut c = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Puts some of everything in the metrics: a pause (active), a refusal, RPCs.
fn exercise(agent: &Agent, v: &Victim) -> String {
    let out = agent.ctl_json(&[
        "inject",
        "pause",
        "--pid",
        &v.pid().to_string(),
        "--for",
        "5m",
    ]);
    let refused = agent.ctl(&[
        "inject",
        "pause",
        "--pid",
        &v.pid().to_string(),
        "--for",
        "99h",
    ]);
    assert!(!refused.status.success());
    fault_id(&out)
}

#[test]
fn metrics_pass_promtool_with_faults_active_and_after() {
    require!("root");
    let promtool = require_tool!("promtool", interop::promtool());
    let (agent, port) = metrics_agent();
    let v = Victim::sleep("faultline-promtool");
    let id = exercise(&agent, &v);
    assert_eq!(v.state(), Some('T'));

    for phase in ["active", "after revert"] {
        let (ctype, text) = scrape(port, None);
        assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8", "{phase}");
        assert!(!text.contains("# EOF"), "{phase}: {text}");
        assert!(
            text.contains("# TYPE faultline_faults_total counter"),
            "{phase}: {text}"
        );
        let (ok, lint) = promtool_check(&promtool, &text);
        assert!(
            ok && lint.trim().is_empty(),
            "{phase}: promtool:\n{lint}\n{text}"
        );
        let active = if phase == "active" { 1 } else { 0 };
        assert!(
            text.contains(&format!(
                "faultline_active_faults{{kind=\"pause\"}} {active}"
            )),
            "{phase}: {text}"
        );

        // What Prometheus asks for: OpenMetrics, labelled as such.
        let (ctype, om) = scrape(port, Some(PROMETHEUS_ACCEPT));
        assert_eq!(
            ctype, "application/openmetrics-text; version=1.0.0; charset=utf-8",
            "{phase}"
        );
        assert!(om.ends_with("# EOF\n"), "{phase}: {om}");
        assert!(om.contains("# TYPE faultline_faults counter"), "{phase}");
        // Plain text when the scraper prefers it.
        let (ctype, _) = scrape(port, Some("text/plain;version=0.0.4"));
        assert!(ctype.starts_with("text/plain; version=0.0.4"), "{phase}");

        if phase == "active" {
            agent.ctl_json(&["revert", &id]);
            assert_eq!(v.state(), Some('S'));
        }
    }
    // Breaking the format is caught: the OpenMetrics body as classic text is what the
    // issue saw promtool reject.
    let (_, om) = scrape(port, Some(PROMETHEUS_ACCEPT));
    let (ok, lint) = promtool_check(&promtool, &om);
    assert!(!ok, "promtool takes OpenMetrics as classic text?\n{lint}");
}

/// A real Prometheus server scrapes faultd (it asks for OpenMetrics) and keeps every
/// counter a counter; the samples are queryable.
#[test]
fn prometheus_server_keeps_the_counters_typed() {
    require!("root");
    let prometheus = require_tool!("prometheus", interop::prometheus());
    let (agent, port) = metrics_agent();
    let v = Victim::sleep("faultline-prometheus");
    exercise(&agent, &v);

    let dir = tempfile::Builder::new()
        .prefix("faultline-prom-")
        .tempdir()
        .unwrap();
    let web = free_port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: faultd\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = Command::new(&prometheus)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _server = KillOnDrop(child);
    let api = |path: &str| -> Option<serde_json::Value> {
        let mut s = TcpStream::connect(("127.0.0.1", web)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).ok()?;
        let body = reply.split_once("\r\n\r\n")?.1;
        // Chunked or not: the JSON object is between the first '{' and the last '}'.
        let json = &body[body.find('{')?..=body.rfind('}')?];
        serde_json::from_str(json).ok()
    };
    let prom_log =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    // Two successful scrapes.
    let up = eventually(Duration::from_secs(60), || {
        api("/api/v1/query?query=count_over_time(up%7Bjob%3D%22faultd%22%7D%5B1m%5D)")
            .and_then(|v| {
                v["data"]["result"][0]["value"][1]
                    .as_str()
                    .map(String::from)
            })
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 2)
            && api("/api/v1/query?query=up%7Bjob%3D%22faultd%22%7D")
                .is_some_and(|v| v["data"]["result"][0]["value"][1] == "1")
    });
    assert!(up, "faultd scraped and up:\n{}", prom_log());

    let meta = api("/api/v1/targets/metadata?match_target=%7Bjob%3D%22faultd%22%7D")
        .expect("target metadata");
    let types: Vec<(String, String)> = meta["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["metric"].as_str().unwrap().to_string(),
                m["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for counter in [
        "faultline_faults",
        "faultline_rpc_requests",
        "faultline_lease_lapses",
        "faultline_health_aborts",
        "faultline_revert_failures",
    ] {
        let total = format!("{counter}_total");
        let t: Vec<&String> = types
            .iter()
            .filter(|(m, _)| *m == counter || *m == total)
            .map(|(_, t)| t)
            .collect();
        assert!(
            !t.is_empty() && t.iter().all(|t| *t == "counter"),
            "{counter}: {t:?} in {types:?}"
        );
    }
    assert!(
        types
            .iter()
            .any(|(m, t)| m == "faultline_active_faults" && t == "gauge"),
        "{types:?}"
    );
    assert!(types.iter().all(|(_, t)| t != "unknown"), "{types:?}");
    // Prometheus read the OpenMetrics text as OpenMetrics (the Content-Type said so):
    // only that parser keeps `# UNIT` (the classic one takes it for a comment).
    let latency = meta["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "faultline_rpc_duration_seconds")
        .unwrap_or_else(|| panic!("the latency histogram in {meta}"));
    assert_eq!(latency["type"], "histogram", "{latency}");
    assert_eq!(
        latency["unit"], "seconds",
        "parsed as OpenMetrics: {latency}"
    );

    let injected =
        api("/api/v1/query?query=sum(faultline_faults_total%7Bevent%3D%22injected%22%7D)")
            .expect("query");
    assert_eq!(injected["data"]["result"][0]["value"][1], "1", "{injected}");
    let rate =
        api("/api/v1/query?query=sum(rate(faultline_rpc_requests_total%5B1m%5D))").expect("query");
    assert_eq!(rate["status"], "success", "{rate}");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Grafana dashboard is valid JSON, shows what the issue asks for, and refers only
/// to metric and label names a real faultd exports.
#[test]
fn grafana_dashboard_refers_only_to_exported_metrics() {
    require!("root");
    let path = require_tool!(
        "source-tree",
        interop::source("packaging/grafana/faultline-agent.json")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let dash: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut exprs = Vec::new();
    collect_exprs(&dash, &mut exprs);
    assert!(exprs.len() >= 5, "{exprs:?}");

    let (agent, port) = metrics_agent();
    let v = Victim::sleep("faultline-grafana");
    exercise(&agent, &v);
    let (_, text) = scrape(port, None);
    let mut names = std::collections::BTreeSet::new();
    let mut labels = std::collections::BTreeSet::new();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, rest) = l.split_at(l.find(['{', ' ']).unwrap());
        names.insert(name.to_string());
        if let Some(ls) = rest.strip_prefix('{').and_then(|r| r.split_once('}')) {
            for kv in ls.0.split(',') {
                labels.insert(kv.split('=').next().unwrap().to_string());
            }
        }
    }
    let mut used = std::collections::BTreeSet::new();
    for e in &exprs {
        for word in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("faultline_") {
                assert!(
                    names.contains(word),
                    "{word} in {e:?} is not exported: {names:?}"
                );
                used.insert(word.to_string());
            }
        }
        // Label names in matchers and by/without clauses.
        for (i, _) in e.match_indices(['=', '~']) {
            let before = &e[..i];
            let label: String = before
                .trim_end_matches(['!', '=', '~'])
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if !label.is_empty() && label != "job" && label != "instance" {
                assert!(
                    labels.contains(&label),
                    "label {label} in {e:?}: {labels:?}"
                );
            }
        }
    }
    for needed in [
        "faultline_active_faults",
        "faultline_faults_total",
        "faultline_lease_lapses_total",
        "faultline_health_aborts_total",
    ] {
        assert!(
            used.contains(needed),
            "the dashboard shows {needed}: {used:?}"
        );
    }
    for event in ["injected", "reverted", "refused"] {
        assert!(
            exprs.iter().any(|e| e.contains(event)),
            "the dashboard shows {event} faults"
        );
    }
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x.as_str()) {
                    // Panel queries, and the node variable's label_values().
                    ("expr" | "definition" | "query", Some(q)) => out.push(q.to_string()),
                    _ => collect_exprs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_exprs(x, out)),
        _ => {}
    }
}

/// Every `grpcurl ... -d '{...}' faultline.v1.Agent/X` example of docs/api.md is a
/// request a real faultd takes: the JSON parses into X's request type (protobuf's own
/// JSON mapping) and the agent's validation finds nothing malformed (Injects are sent as
/// dry runs; ids and pids are placeholders, so NotFound and PermissionDenied are fine).
#[test]
fn api_doc_examples_are_requests_faultd_takes() {
    require!("root");
    let py = Py::new(require_tool!("python-grpc", interop::python()));
    let doc = require_tool!("source-tree", interop::source("docs/api.md"));
    let agent = Agent::start();
    let script = r#"
import re, sys, grpc
from google.protobuf import json_format
from faultline.v1 import agent_pb2 as pb
text = open(sys.argv[1]).read().replace("\\\n", " ")
svc = pb.DESCRIPTOR.services_by_name["Agent"]
n = 0
with grpc.insecure_channel("unix://" + sys.argv[2]) as ch:
    for m in re.finditer(r"grpcurl [^\n]*?-d '([^']*)' faultline\.v1\.Agent/(\w+)", text):
        body, method = m.group(1), m.group(2)
        md = svc.methods_by_name[method]
        req = json_format.Parse(body, getattr(pb, md.input_type.name)())
        if method == "Inject":
            req.dry_run = True
        out = getattr(pb, md.output_type.name)
        kw = dict(request_serializer=lambda r: r.SerializeToString(), response_deserializer=out.FromString)
        path = "/faultline.v1.Agent/" + method
        try:
            if md.server_streaming:
                for _ in ch.unary_stream(path, **kw)(req, timeout=0.5):
                    pass
            else:
                ch.unary_unary(path, **kw)(req, timeout=10)
            code = "OK"
        except grpc.RpcError as e:
            code = e.code().name
            if code == "INVALID_ARGUMENT":
                sys.exit(f"{method} {body}: {e.details()}")
        n += 1
        print(method, code)
print("examples", n)
"#;
    let out = py
        .cmd()
        .args(["-c", script])
        .arg(&doc)
        .arg(&agent.socket)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("examples "))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(n >= 15, "{n} examples:\n{stdout}");
    for rpc in [
        "Status",
        "GetLimits",
        "Inject",
        "Get",
        "List",
        "Revert",
        "RevertAll",
        "OpenLease",
        "RenewLease",
        "CloseLease",
        "Watch",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("{rpc} "))),
            "an example of {rpc}:\n{stdout}"
        );
    }
    assert!(stdout.contains("OpenLease OK"), "{stdout}");
}
