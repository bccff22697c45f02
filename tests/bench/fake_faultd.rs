//! `fake-faultd --socket PATH`: serves the in-process fake agent
//! (`faultline_tests::fake_agent`) on a Unix socket until SIGINT or SIGTERM. For trying
//! `faultctl` and `bench-api` without privileges; not an agent.

use anyhow::Context;
use faultline_tests::fake_agent::FakeAgent;

/// Serves an in-process fake of faultd's API on a Unix socket until SIGINT or SIGTERM,
/// for trying faultctl and bench-api without privileges. Not an agent.
#[derive(Debug, clap::Parser)]
#[command(
    name = "fake-faultd",
    after_help = "Example:\n  target/debug/fake-faultd --socket /tmp/fake.sock &\n  target/debug/faultctl --agent unix:///tmp/fake.sock status"
)]
struct Args {
    /// Where to listen (the socket file is made, and removed on exit).
    #[arg(long, value_name = "PATH")]
    socket: std::path::PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let Args { socket } = <Args as clap::Parser>::parse();
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
