//! `bench-api`: latency of the agent's API over its socket, and the agent's idle memory.
//!
//! Against a running faultd (or `fake-faultd`) at `--agent URI` it makes `--n` (default
//! 1000) `Status` calls and `--n` dry-run `Inject` calls (a kill dry run selecting this
//! process's own `sleep 600` child by pid), one at a time over one connection, after
//! `--warmup` (default 50) untimed calls of each, and prints p50, p99 and max of each,
//! then the agent's VmRSS from /proc (pid from `StatusResponse.pid`) before and after.
//!
//! ```text
//! cargo build --release -p faultline-agent -p faultline-tests --bin faultd --bin bench-api
//! sudo target/release/faultd --socket /tmp/f.sock --state-dir /tmp/fd-state &
//! sudo target/release/bench-api --agent unix:///tmp/f.sock
//! ```
//!
//! It reports; it does not gate.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use faultline_proto::v1::{
    FaultSpec, InjectRequest, KillSpec, Pick, ProcessSelector, StatusRequest, fault_spec, pick,
};

struct Args {
    agent: String,
    n: usize,
    warmup: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        agent: std::env::var("FAULTLINE_AGENT")
            .unwrap_or_else(|_| faultline_controller::client::DEFAULT_AGENT.to_string()),
        n: 1000,
        warmup: 50,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--agent" => a.agent = value()?,
            "--n" => a.n = value()?.parse().context("--n")?,
            "--warmup" => a.warmup = value()?.parse().context("--warmup")?,
            "-h" | "--help" => {
                println!("usage: bench-api [--agent URI] [--n 1000] [--warmup 50]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if a.n == 0 {
        bail!("--n must be at least 1");
    }
    Ok(a)
}

/// p50, p99, max of the samples.
fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |q: usize| v[(v.len() * q / 100).min(v.len() - 1)];
    let us = |d: Duration| format!("{:>7.1}us", d.as_secs_f64() * 1e6);
    format!(
        "n={}  p50={}  p99={}  max={}",
        v.len(),
        us(at(50)),
        us(at(99)),
        us(*v.last().expect("at least one sample"))
    )
}

fn vm_rss(pid: u32) -> String {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => s
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| format!("{:.1} MiB ({kib} KiB)", kib as f64 / 1024.0))
            .unwrap_or_else(|| "unknown (no VmRSS line)".into()),
        Err(e) => format!("unavailable ({e}; is the agent in another pid namespace?)"),
    }
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_sleep() -> anyhow::Result<Child> {
    let child = Child(
        std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .context("spawn sleep")?,
    );
    let comm = format!("/proc/{}/comm", child.0.id());
    for _ in 0..400 {
        if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim_end() == "sleep") {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    bail!("the sleep child never exec'd")
}

async fn bench(a: &Args) -> anyhow::Result<()> {
    let mut client = faultline_controller::connect(&a.agent).await?;
    let status = client.status(StatusRequest {}).await?.into_inner();
    println!(
        "bench-api: agent {} (faultd {}, pid {}, kernel {})",
        a.agent, status.agent_version, status.pid, status.kernel_release
    );
    let rss_before = vm_rss(status.pid);

    let child = spawn_sleep()?;
    let inject = InjectRequest {
        spec: Some(FaultSpec {
            kind: Some(fault_spec::Kind::Kill(KillSpec {
                selector: Some(ProcessSelector {
                    pid: Some(child.0.id() as i32),
                    ..Default::default()
                }),
                pick: Some(Pick {
                    mode: Some(pick::Mode::All(true)),
                }),
                signal: "KILL".into(),
                every_ms: 0,
            })),
        }),
        dry_run: true,
        ..Default::default()
    };
    // One check that the dry run really resolves our child, so we time the real path.
    let r = client.inject(inject.clone()).await?.into_inner();
    if !r.dry_run || r.targets.iter().all(|t| t.pid != child.0.id() as i32) {
        bail!("the dry run did not select the sleep child: {r:?}");
    }

    for _ in 0..a.warmup {
        client.status(StatusRequest {}).await?;
        client.inject(inject.clone()).await?;
    }
    let mut s = Vec::with_capacity(a.n);
    for _ in 0..a.n {
        let t = Instant::now();
        client.status(StatusRequest {}).await?;
        s.push(t.elapsed());
    }
    let mut d = Vec::with_capacity(a.n);
    for _ in 0..a.n {
        let t = Instant::now();
        client.inject(inject.clone()).await?;
        d.push(t.elapsed());
    }
    drop(child);
    println!("Status          {}", summary(s));
    println!("Inject dry-run  {}", summary(d));
    println!("faultd VmRSS    idle before the calls: {rss_before}");
    println!(
        "                after the calls:       {}",
        vm_rss(status.pid)
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(&a))
}
