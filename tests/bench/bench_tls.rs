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

use anyhow::Context;
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

fn main() -> anyhow::Result<()> {
    let mut n = 2000usize;
    let mut warmup = 100usize;
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let v = it.next().with_context(|| format!("{f} needs a value"))?;
        match f.as_str() {
            "--n" => n = v.parse()?,
            "--warmup" => warmup = v.parse()?,
            other => {
                anyhow::bail!("unknown argument {other:?} (usage: bench-tls [--n N] [--warmup N])")
            }
        }
    }
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
