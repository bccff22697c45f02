//! Serving: the Unix socket (directory 0750, socket 0600, or 0660 with the first
//! operator group as its group), optionally a TCP port with mutual TLS only, the
//! metrics endpoint, the audit log (reopened on SIGHUP), the engine, and a clean stop
//! that reverts everything.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::net::UnixListener;

use crate::api::{AgentService, Authorizer};
use crate::audit::{self, AuditLog};
use crate::config::{Config, TlsFiles};
use crate::engine::Engine;
use crate::host::Host;
use crate::limits::Limits;

pub mod authority;
pub mod hpack;
pub mod readiness;

use readiness::Readiness;

/// Everything `faultd` needs to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: Config,
    pub limits: Limits,
}

/// Creates the socket's directory and binds the socket with tight permissions. Refuses
/// to take over a socket another live agent is listening on.
pub fn bind(socket: &Path, group: Option<u32>) -> anyhow::Result<UnixListener> {
    let dir = socket
        .parent()
        .context("socket path has no parent directory")?;
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
            .with_context(|| format!("cannot chmod 0750 {}", dir.display()))?;
        if let Some(g) = group {
            nix::unistd::chown(dir, None, Some(nix::unistd::Gid::from_raw(g)))
                .with_context(|| format!("cannot chgrp {}", dir.display()))?;
        }
    }
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            bail!(
                "another faultd is already listening on {} (stop it first, or use --socket)",
                socket.display()
            );
        }
        std::fs::remove_file(socket)
            .with_context(|| format!("cannot remove stale socket {}", socket.display()))?;
    }
    // Bind with a restrictive umask so the socket never exists with looser permissions.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let l = UnixListener::bind(socket);
    nix::sys::stat::umask(old);
    let l = l.with_context(|| format!("cannot listen on {}", socket.display()))?;
    if let Some(g) = group {
        nix::unistd::chown(socket, None, Some(nix::unistd::Gid::from_raw(g)))
            .with_context(|| format!("cannot chgrp {}", socket.display()))?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))?;
    } else {
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(l)
}

/// Takes `<state_dir>/faultd.lock` (flock) for the life of the agent, or says which
/// other process holds it.
pub fn lock_state_dir(dir: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let path = dir.join("faultd.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // A predecessor killed a moment ago may still hold the lock through a child caught
    // between fork and exec (a stress worker: it inherits every fd until its exec closes
    // the CLOEXEC ones, and its parent-death signal kills it within milliseconds), so
    // a held lock is retried for up to 2 s before it counts as a live agent.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut f = f;
    let res = loop {
        match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(l) => break Ok(l),
            Err((back, e))
                if e == nix::errno::Errno::EAGAIN && std::time::Instant::now() < deadline =>
            {
                f = back;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err((_, e)) => break Err(e),
        }
    };
    match res {
        Ok(l) => Ok(l),
        Err(e) => bail!(
            "another faultd is using the state dir {} (it holds {}: {e}); stop it first, or use --state-dir",
            dir.display(),
            path.display()
        ),
    }
}

/// How long open streams may run on after a stop has reverted every fault.
const STREAM_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Test only: sleep this many milliseconds before crash recovery (a slow recovery, to
/// watch the health service report NOT_SERVING).
pub const SLOW_RECOVERY_ENV: &str = "FAULTLINE_TEST_SLOW_RECOVERY_MS";

/// The gRPC services one listener serves: the Agent (held until recovery is done),
/// health and reflection, all behind `auth`.
fn router(
    svc: AgentService,
    auth: Authorizer,
    readiness: &Readiness,
    audit: &Arc<AuditLog>,
    metrics: &crate::metrics::Metrics,
) -> tonic::transport::server::Router {
    use crate::api::standard::{Guarded, reflection};
    let guard = |s| Guarded::new(s, auth.clone(), Some(audit.clone()), Some(metrics.clone()));
    let (reflection_v1, reflection_v1alpha) = reflection();
    tonic::transport::Server::builder()
        .add_service(readiness.gate(svc.with_authorizer(auth.clone()).into_server()))
        .add_service(guard(readiness.health_service()))
        .add_service(Guarded::new(
            reflection_v1,
            auth.clone(),
            Some(audit.clone()),
            Some(metrics.clone()),
        ))
        .add_service(Guarded::new(
            reflection_v1alpha,
            auth.clone(),
            Some(audit.clone()),
            Some(metrics.clone()),
        ))
}

/// Runs the agent until SIGTERM or SIGINT, then reverts every fault and exits.
///
/// Order: the state dir's lock, then both listeners (health answers NOT_SERVING, Agent
/// calls wait), crash recovery, then SERVING and systemd's READY=1.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let cfg = &opts.config;
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("cannot create state dir {}", cfg.state_dir.display()))?;
    std::fs::set_permissions(&cfg.state_dir, std::fs::Permissions::from_mode(0o700)).ok();

    // One agent per state dir: the journal has one owner.
    let _lock = lock_state_dir(&cfg.state_dir)?;

    let mut host = Host::detect(opts.limits.clone());
    host.set_instance(&cfg.state_dir);
    host.net = crate::sys::tc::probe_kernel()
        .await
        .map_err(|e| e.to_string());
    let journal = crate::engine::journal::Journal::open(&cfg.state_dir)?;
    let engine = Engine::new(host, Some(journal));
    let audit = Arc::new(AuditLog::open(&cfg.state_dir, cfg.audit_fsync)?);
    let metrics = crate::metrics::Metrics::new();
    let readiness = Readiness::starting().await;

    let socket: PathBuf = cfg.socket.clone();
    let auth = Authorizer::new(&cfg.operator_groups, format!("unix:{}", socket.display()));
    let svc = AgentService::new(engine.clone(), auth.clone())
        .with_audit(audit.clone())
        .with_metrics(metrics.clone());

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel::<Option<&'static str>>(None);
    tokio::spawn(async move {
        let sig = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        let _ = stop_tx.send(Some(sig));
        // Keep the sender: both servers' shutdown futures watch it.
        std::future::pending::<()>().await;
    });
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let audit2 = audit.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match audit2.reopen() {
                Ok(()) => {
                    tracing::info!(path = %audit2.path().display(), "SIGHUP: audit log reopened")
                }
                Err(e) => tracing::error!(error = %e, "SIGHUP: cannot reopen the audit log"),
            }
        }
    });

    let tls_server = match (cfg.listen, cfg.tls_files().map_err(anyhow::Error::msg)?) {
        (Some(addr), Some(files)) => {
            let acceptor = tls_acceptor(&files)?;
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen on {addr} (listen in faultd.toml or --listen)")
            })?;
            let local = listener.local_addr()?;
            let _ = engine.host().listen_port.set(local.port());
            tracing::info!(address = %local, roles = cfg.roles.len(), "serving gRPC over mutual TLS");
            let roles = cfg.roles.iter().map(|(k, v)| (k.clone(), *v)).collect();
            let tls_auth = Authorizer::new(&[], format!("tcp:{local}")).with_roles(roles);
            let incoming = tls_incoming(listener, acceptor, audit.clone(), metrics.clone());
            let mut rx = stop_rx.clone();
            Some(tokio::spawn(
                router(svc.clone(), tls_auth, &readiness, &audit, &metrics)
                    .serve_with_incoming_shutdown(incoming, async move {
                        let _ = rx.wait_for(|s| s.is_some()).await;
                    }),
            ))
        }
        _ => None,
    };

    // The socket last: once it exists, the TLS port (if any) is listening too.
    let group = cfg
        .operator_groups
        .first()
        .and_then(|g| nix::unistd::Group::from_name(g).ok().flatten());
    let listener = bind(&cfg.socket, group.as_ref().map(|g| g.gid.as_raw()))?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        socket = %socket.display(),
        "faultd listening (not serving until crash recovery is done)"
    );
    let incoming = unix_incoming(listener);
    let engine2 = engine.clone();
    let readiness2 = readiness.clone();
    // Set once every fault is reverted and the servers start to drain.
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        let sig = stop_rx
            .wait_for(|s| s.is_some())
            .await
            .ok()
            .and_then(|s| *s)
            .unwrap_or("shutdown");
        readiness2.stopping().await;
        crate::notify::stopping();
        tracing::info!(signal = sig, "stopping: reverting every active fault");
        let results = engine2
            .revert_all(&format!("faultd stopping ({sig})"))
            .await;
        for r in &results {
            match &r.result {
                Ok(()) => tracing::info!(fault = %r.id, "reverted"),
                Err(e) => tracing::error!(fault = %r.id, error = %e, "revert failed"),
            }
        }
        let _ = drain_tx.send(true);
    };
    let unix_server = tokio::spawn(
        router(svc, auth, &readiness, &audit, &metrics)
            .serve_with_incoming_shutdown(incoming, shutdown),
    );

    if let Some(ms) = std::env::var(SLOW_RECOVERY_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        tracing::warn!(
            ms,
            "{SLOW_RECOVERY_ENV} is set (tests only): recovery starts late"
        );
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    // Put the node back from any previous run before serving requests: until this is
    // done, health says NOT_SERVING and Agent calls wait.
    let recovered = engine.recover().await;
    if !recovered.is_empty() {
        let failed = recovered.iter().filter(|r| r.result.is_err()).count();
        tracing::warn!(
            faults = recovered.len(),
            failed,
            "crash recovery: reverted faults left by a previous run"
        );
    }
    metrics.watch(&engine);
    if let Some(addr) = cfg.metrics_listen {
        let local = crate::metrics::spawn(metrics.clone(), addr)
            .await
            .with_context(|| {
                format!("cannot serve metrics on {addr} (set metrics_listen in faultd.toml or --metrics; \"\" turns them off)")
            })?;
        tracing::info!(address = %local, "metrics on http://{local}/metrics");
    }

    // Stress groups of a previous run that the journal did not know (a crash between
    // creating a group and journalling it): faultline owns them, so remove them.
    match engine.host().sweep_stress_groups() {
        Ok(swept) if !swept.is_empty() => {
            tracing::warn!(groups = ?swept, "removed stress cgroups left by a previous run")
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "cannot sweep stress cgroups left by a previous run"),
    }

    // Disk fill files of a previous run that the journal did not know: faultline owns
    // them (by name, in the directories fills noted), so remove them.
    match engine.host().sweep_fill_files() {
        Ok(swept) if !swept.is_empty() => {
            tracing::warn!(files = ?swept, "removed disk fill files left by a previous run")
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot sweep disk fill files left by a previous run")
        }
    }

    // The health guard (if the limits set a [health] section) aborts every fault on a breach.
    let _guard = crate::engine::health::spawn(engine.clone());

    readiness.serving().await;
    let host = engine.host();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        socket = %socket.display(),
        limits = %host.limits.source,
        profile = %host.limits.profile,
        cgroups = %host.cgroup_mode(),
        "faultd serving"
    );
    // systemd: READY=1 now (listening, recovered), watchdog pings, STOPPING=1 on stop.
    let _watchdog = crate::notify::ready(&engine);

    // A graceful drain waits for every open stream (a Watch, a KeepAlive, a health
    // Watch) to end, which their clients may never do: past STREAM_GRACE after the
    // faults are reverted, the servers are dropped and such streams cut.
    let drain_deadline = async move {
        let mut rx = drain_rx;
        if rx.wait_for(|d| *d).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(STREAM_GRACE).await;
    };
    let aborts: Vec<tokio::task::AbortHandle> = std::iter::once(unix_server.abort_handle())
        .chain(tls_server.as_ref().map(|t| t.abort_handle()))
        .collect();
    let servers = async {
        let unix = unix_server.await;
        if let Some(t) = tls_server {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "TLS gRPC server failed"),
                Err(e) => tracing::error!(error = %e, "TLS gRPC server panicked"),
            }
        }
        unix
    };
    tokio::select! {
        unix = servers => match unix {
            Ok(r) => r.context("gRPC server failed")?,
            Err(e) => anyhow::bail!("gRPC server panicked: {e}"),
        },
        _ = drain_deadline => {
            tracing::info!(
                grace_ms = STREAM_GRACE.as_millis() as u64,
                "closing the streams still open (Watch, KeepAlive, health Watch)"
            );
            aborts.iter().for_each(|a| a.abort());
        }
    }
    // Anything injected while shutting down is reverted too.
    engine.revert_all("faultd stopped").await;
    let _ = std::fs::remove_file(&socket);
    tracing::info!("faultd stopped; node clean");
    Ok(())
}

/// Accepted Unix-socket connections, each behind the `:authority` fix for grpc-core
/// clients ([`authority::AuthorityFix`]).
fn unix_incoming(
    listener: UnixListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<authority::AuthorityFix<tokio::net::UnixStream>>>
{
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::UnixListenerStream::new(listener).map(|conn| {
        conn.map(|s| {
            let peer = s
                .peer_cred()
                .ok()
                .and_then(|c| c.pid())
                .map(|p| format!("pid={p}"))
                .unwrap_or_else(|| "pid=?".into());
            authority::AuthorityFix::new(s, peer)
        })
    })
}

/// The rustls server config: our certificate, and a client certificate that chains to
/// `tls_client_ca` is required (no certificate, another CA, expired: the handshake fails).
pub fn tls_acceptor(files: &TlsFiles) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read tls_cert {}", files.cert.display()))?;
    if certs.is_empty() {
        bail!("tls_cert {} holds no certificate", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read tls_key {}", files.key.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(&files.client_ca)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read tls_client_ca {}", files.client_ca.display()))?;
    for c in cas {
        roots.add(c).with_context(|| {
            format!(
                "tls_client_ca {}: bad CA certificate",
                files.client_ca.display()
            )
        })?;
    }
    if roots.is_empty() {
        bail!(
            "tls_client_ca {} holds no CA certificate",
            files.client_ca.display()
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .context("cannot build the client certificate verifier")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "tls_key {} does not match tls_cert {}",
                files.key.display(),
                files.cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Accepts TCP connections and runs each TLS handshake in its own task (a slow client
/// cannot hold up others). A failed handshake is refused and audited as `TlsHandshake`.
fn tls_incoming(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    audit: Arc<AuditLog>,
    metrics: crate::metrics::Metrics,
) -> tokio_stream::wrappers::ReceiverStream<
    Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, std::io::Error>,
> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Small request/response messages: without this, Nagle and delayed ACKs
            // add ~40 ms to a call.
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx, audit, metrics) =
                (acceptor.clone(), tx.clone(), audit.clone(), metrics.clone());
            tokio::spawn(async move {
                let start = std::time::Instant::now();
                let res =
                    tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                        .await;
                let err = match res {
                    Ok(Ok(s)) => {
                        let _ = tx.send(Ok(s)).await;
                        return;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "no TLS handshake within 10s".to_string(),
                };
                tracing::info!(%peer, error = %err, "TLS handshake refused");
                let rec = audit::Record {
                    time: audit::now(),
                    identity: "-".into(),
                    peer: format!("tcp:{peer}"),
                    rpc: "TlsHandshake".into(),
                    request: String::new(),
                    decision: audit::Decision::Refused,
                    limit: None,
                    fault_id: None,
                    result: audit::code_name(tonic::Code::Unauthenticated),
                    message: Some(err),
                };
                if let Err(e) = audit.write(&rec) {
                    tracing::error!(error = %e, "audit line not written");
                }
                metrics.rpc("TlsHandshake", "Unauthenticated", start.elapsed());
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
