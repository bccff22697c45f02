//! Clients nobody here wrote and Prometheus's own tools, for the interop tests: a gRPC
//! health and reflection client (tonic's generated ones, over the Unix socket or mutual
//! TLS), the Python interpreter that has `grpcio` and `grpcio-tools`, and Prometheus's
//! `promtool` and server.
//!
//! `tests/interop-deps` puts the last two in `${XDG_CACHE_HOME:-~/.cache}/faultline/`
//! (`pyenv/`, `prometheus/`); `FAULTLINE_PYTHON` and `FAULTLINE_PROMETHEUS_DIR` point
//! elsewhere. A test that lacks one skips with [`require_tool!`] under the capability
//! `python-grpc`, `promtool` or `prometheus`, which CI's host tier requires.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint, Uri};

/// `require_tool!("promtool", interop::promtool())` at the top of a test: the tool's
/// path, or a skip (see [`crate::skip`]) naming the capability and why it is missing.
#[macro_export]
macro_rules! require_tool {
    ($cap:expr, $probe:expr) => {
        match $probe {
            Ok(v) => v,
            Err(why) => {
                $crate::skip(
                    {
                        fn f() {}
                        let name = std::any::type_name_of_val(&f);
                        name.strip_suffix("::f").unwrap_or(name)
                    },
                    $cap,
                    &why,
                );
                return;
            }
        }
    };
}

/// `${XDG_CACHE_HOME:-$HOME/.cache}/faultline`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache"))
        .join("faultline")
}

/// The repository's root (for `examples/`, `packaging/`, `proto/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A file of the source tree outside `tests/`: its path. The VM guest carries only
/// `tests/` (Err: a skip there); anywhere else a missing file is a failure.
pub fn source(rel: &str) -> Result<PathBuf, String> {
    let p = repo_root().join(rel);
    if p.exists() {
        return Ok(p);
    }
    if std::env::var_os("FAULTLINE_VM").is_some() {
        return Err(format!(
            "{rel} is not in the VM guest (it carries tests/ only)"
        ));
    }
    panic!("{} is missing from the source tree", p.display());
}

/// A Python with `grpc` and `grpc_tools`: `FAULTLINE_PYTHON`, else the venv
/// `tests/interop-deps` makes.
pub fn python() -> Result<PathBuf, String> {
    let py = std::env::var_os("FAULTLINE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("pyenv/bin/python"));
    let out = Command::new(&py)
        .args(["-c", "import grpc, grpc_tools; print(grpc.__version__)"])
        .output()
        .map_err(|e| format!("{}: {e} (run tests/interop-deps)", py.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} cannot import grpc and grpc_tools (run tests/interop-deps): {}",
            py.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(py)
}

fn prometheus_bin(name: &str) -> Result<PathBuf, String> {
    let dir = std::env::var_os("FAULTLINE_PROMETHEUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("prometheus/usr/bin"));
    let p = dir.join(name);
    if p.exists() {
        return Ok(p);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .ok_or_else(|| {
            format!(
                "no {name} in {} or on PATH (run tests/interop-deps)",
                dir.display()
            )
        })
}

/// Debian's `promtool`.
pub fn promtool() -> Result<PathBuf, String> {
    prometheus_bin("promtool")
}

/// Debian's `prometheus` server.
pub fn prometheus() -> Result<PathBuf, String> {
    prometheus_bin("prometheus")
}

/// A gRPC channel over the Unix socket at `path` (tonic sends `:authority` from the
/// placeholder URI, as faultctl does).
pub async fn unix_channel(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path = path.to_path_buf();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let s = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
            }
        }))
        .await
}

/// A gRPC channel over mutual TLS to 127.0.0.1:`port` (the agent's certificate has
/// the IP SAN 127.0.0.1).
pub async fn tls_channel(
    port: u16,
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Channel, tonic::transport::Error> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()))
        .identity(Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(key).unwrap(),
        ))
        .domain_name("127.0.0.1");
    Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

pub use tonic_health::pb::health_check_response::ServingStatus;

/// `grpc.health.v1.Health/Check` for `service` (`""`: the server).
pub async fn health(ch: Channel, service: &str) -> Result<ServingStatus, tonic::Status> {
    let mut c = tonic_health::pb::health_client::HealthClient::new(ch);
    let r = c
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.to_string(),
        })
        .await?;
    Ok(r.into_inner().status())
}

/// The services `grpc.reflection.v1` lists.
pub async fn reflection_services(ch: Channel) -> Result<Vec<String>, tonic::Status> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut c = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = c
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(r) = stream.message().await? {
        if let Some(MessageResponse::ListServicesResponse(l)) = r.message_response {
            out.extend(l.service.into_iter().map(|s| s.name));
        }
    }
    Ok(out)
}

/// Waits until the agent on `socket` reports SERVING (crash recovery done), or `t`
/// passes. Runs on a thread of its own, so it works inside or outside a runtime.
pub fn wait_serving(socket: &Path, t: Duration) -> Result<(), String> {
    let socket = socket.to_path_buf();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let deadline = Instant::now() + t;
            let mut last = String::new();
            while Instant::now() < deadline {
                match unix_channel(&socket).await {
                    Ok(ch) => match health(ch, "").await {
                        Ok(ServingStatus::Serving) => return Ok(()),
                        Ok(st) => last = format!("health says {st:?}"),
                        Err(e) => last = format!("health check failed: {e}"),
                    },
                    Err(e) => last = format!("cannot connect: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(format!(
                "not SERVING within {t:?} on {}: {last}",
                socket.display()
            ))
        })
    })
    .join()
    .map_err(|_| "the health check thread panicked".to_string())?
}
