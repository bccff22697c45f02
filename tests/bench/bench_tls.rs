//! `bench-tls`: `Status` latency over mutual TLS against the Unix socket, same agent,
//! same run.
//!
//! It makes a CA, a server certificate for 127.0.0.1 and an operator client
//! certificate (rcgen, in a temp dir), starts `faultd` from `FAULTLINE_BIN_DIR` with
//! `listen = 127.0.0.1:<free port>`, opens one connection per transport, and alternates
//! `--n` (default 2000) Status calls on each after `--warmup` (default 100) untimed
//! calls, printing p50, p99 and max. Both paths go through the same audit wrapper.
//!
//! ```text
//! cargo build --release -p faultline-agent -p faultline-tests --bin faultd --bin bench-tls
//! sudo FAULTLINE_BIN_DIR=target/release target/release/bench-tls --n 2000
//! ```
//!
//! It reports; it does not gate.

use std::time::{Duration, Instant};

use faultline_controller::client::{TlsFiles, connect, connect_with};
use faultline_proto::v1::StatusRequest;
use faultline_tests::agent::{Agent, AgentOptions};
use faultline_tests::pki::{Ca, free_port, tls_config};

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |q: usize| v[(v.len() * q / 100).min(v.len() - 1)];
    format!(
        "n={}  p50={:?}  p99={:?}  max={:?}",
        v.len(),
        at(50),
        at(99),
        v[v.len() - 1]
    )
}

/// Status latency over mutual TLS next to the Unix socket, one real faultd, one run.
/// Starts faultd from FAULTLINE_BIN_DIR (default: this binary's directory) with a fresh
/// CA, server and client certificate. It reports; it does not gate.
#[derive(Debug, clap::Parser)]
#[command(
    name = "bench-tls",
    after_help = "Examples:\n  sudo FAULTLINE_BIN_DIR=target/release target/release/bench-tls --n 2000\n  target/debug/bench-tls --n 10 --warmup 1      # a smoke run"
)]
struct Args {
    /// Timed Status calls on each transport.
    #[arg(long, default_value_t = 2000)]
    n: usize,
    /// Untimed calls on each transport first.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
}

fn main() -> anyhow::Result<()> {
    let Args { n, warmup } = <Args as clap::Parser>::parse();
    anyhow::ensure!(n > 0, "--n must be at least 1");
    let pki = tempfile::tempdir()?;
    let ca = Ca::new(pki.path(), "bench-ca");
    let (scert, skey) = ca.leaf(pki.path(), "node1", false);
    let (ccert, ckey) = ca.leaf(pki.path(), "alice", false);
    let port = free_port();
    let agent = Agent::start_with(AgentOptions {
        config: Some(tls_config(
            port,
            &scert,
            &skey,
            &ca.pem,
            "operator = [\"alice\"]\n",
        )),
        ..Default::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut unix = connect(&agent.uri()).await?;
        let mut tls = connect_with(
            &format!("https://127.0.0.1:{port}"),
            &TlsFiles {
                ca: Some(ca.pem.clone()),
                cert: Some(ccert),
                key: Some(ckey),
                server_name: None,
            },
        )
        .await?;
        for _ in 0..warmup {
            unix.status(StatusRequest {}).await?;
            tls.status(StatusRequest {}).await?;
        }
        let (mut u, mut t) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let s = Instant::now();
            unix.status(StatusRequest {}).await?;
            u.push(s.elapsed());
            let s = Instant::now();
            tls.status(StatusRequest {}).await?;
            t.push(s.elapsed());
        }
        println!("Status over unix socket   {}", summary(u));
        println!("Status over mutual TLS    {}", summary(t));
        anyhow::Ok(())
    })
}
