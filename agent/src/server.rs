//! Serving: the Unix socket (directory 0750, socket 0600, or 0660 with the first
//! operator group as its group), the engine, and a clean stop that reverts everything.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tokio::net::UnixListener;

use crate::api::{AgentService, Authorizer};
use crate::config::Config;
use crate::engine::Engine;
use crate::host::Host;
use crate::limits::Limits;

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

/// Runs the agent until SIGTERM or SIGINT, then reverts every fault and exits.
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
    // Put the node back from any previous run before accepting requests: the socket
    // does not exist until this is done.
    let recovered = engine.recover().await;
    if !recovered.is_empty() {
        let failed = recovered.iter().filter(|r| r.result.is_err()).count();
        tracing::warn!(
            faults = recovered.len(),
            failed,
            "crash recovery: reverted faults left by a previous run"
        );
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

    // The health guard (if the limits set a [health] section) aborts every fault on a breach.
    let _guard = crate::engine::health::spawn(engine.clone());

    let group = cfg
        .operator_groups
        .first()
        .and_then(|g| nix::unistd::Group::from_name(g).ok().flatten());
    let listener = bind(&cfg.socket, group.as_ref().map(|g| g.gid.as_raw()))?;
    let socket: PathBuf = cfg.socket.clone();
    let host = engine.host();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        socket = %socket.display(),
        limits = %host.limits.source,
        profile = %host.limits.profile,
        cgroups = %host.cgroup_mode(),
        "faultd listening"
    );
    let auth = Authorizer::new(&cfg.operator_groups, format!("unix:{}", socket.display()));
    let svc = AgentService::new(engine.clone(), auth);

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<&'static str>();
    tokio::spawn(async move {
        let sig = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        let _ = stop_tx.send(sig);
    });

    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let engine2 = engine.clone();
    // systemd: READY=1 now (listening, recovered), watchdog pings, STOPPING=1 on stop.
    let _watchdog = crate::notify::ready(&engine);
    let shutdown = async move {
        let sig = stop_rx.await.unwrap_or("shutdown");
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
    };
    tonic::transport::Server::builder()
        .add_service(svc.into_server())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .context("gRPC server failed")?;
    // Anything injected while shutting down is reverted too.
    engine.revert_all("faultd stopped").await;
    let _ = std::fs::remove_file(&socket);
    tracing::info!("faultd stopped; node clean");
    Ok(())
}
