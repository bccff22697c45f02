//! `fake-faultd --socket PATH`: serves the in-process fake agent
//! (`faultline_tests::fake_agent`) on a Unix socket until SIGINT or SIGTERM. For trying
//! `faultctl` and `bench-api` without privileges; not an agent.

use anyhow::{Context, bail};
use faultline_tests::fake_agent::FakeAgent;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut it = std::env::args().skip(1);
    let socket = match (it.next().as_deref(), it.next()) {
        (Some("--socket"), Some(p)) => std::path::PathBuf::from(p),
        _ => bail!("usage: fake-faultd --socket PATH"),
    };
    let server = FakeAgent::new()
        .serve_unix(&socket)
        .await
        .with_context(|| format!("bind {}", socket.display()))?;
    eprintln!(
        "fake-faultd: serving {} (pid {})",
        server.uri,
        std::process::id()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    drop(server);
    let _ = std::fs::remove_file(&socket);
    Ok(())
}
