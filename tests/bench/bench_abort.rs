//! `bench-abort`: `RevertAll` with 100 active faults on a real `faultd`.
//!
//! Each run starts 100 `sleep` processes, pauses each with its own fault (100 pause
//! faults, under a limits file allowing 100 concurrent faults), then times the
//! `RevertAll` RPC until it returns, and checks the node is clean (every process running
//! again, per /proc) right after. Reports the median and worst of `--runs` (default 20)
//! runs. Needs root. It reports; it does not gate.
//!
//! Run: `cargo build --bins && target/debug/bench-abort [--runs 20] [--faults 100]`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use faultline_proto::v1 as pb;
use faultline_tests::agent::{Agent, AgentOptions, Victim, proc_state};

fn arg(name: &str, default: usize) -> usize {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pause(pid: i32) -> pb::InjectRequest {
    pb::InjectRequest {
        spec: Some(pb::FaultSpec {
            kind: Some(pb::fault_spec::Kind::Pause(pb::PauseSpec {
                selector: Some(pb::ProcessSelector {
                    pid: Some(pid),
                    ..Default::default()
                }),
                pick: None,
            })),
        }),
        duration_ms: 300_000,
        labels: HashMap::new(),
        dry_run: false,
        lease_id: String::new(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> anyhow::Result<()> {
    let runs = arg("--runs", 20);
    let n = arg("--faults", 100);
    let agent = Agent::start_with(AgentOptions {
        limits: Some(format!(
            "profile = \"staging\"\nmax_concurrent_faults = {n}\n"
        )),
        ..Default::default()
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut times = Vec::new();
    let mut clean_times = Vec::new();
    rt.block_on(async {
        let mut client = faultline_controller::connect(&agent.uri()).await?;
        for run in 0..runs {
            let victims: Vec<Victim> = (0..n)
                .map(|i| Victim::sleep(&format!("faultline-bench-abort-{i}")))
                .collect();
            for v in &victims {
                client.inject(pause(v.pid())).await?;
            }
            anyhow::ensure!(
                victims.iter().all(|v| v.state() == Some('T')),
                "run {run}: not every victim is paused"
            );
            let t0 = Instant::now();
            let r = client
                .revert_all(pb::RevertAllRequest {
                    reason: "bench-abort".into(),
                })
                .await?
                .into_inner();
            let took = t0.elapsed();
            let clean = victims
                .iter()
                .all(|v| proc_state(v.pid()).is_some_and(|s| s != 'T'));
            let clean_at = t0.elapsed();
            anyhow::ensure!(
                r.results.len() == n && r.results.iter().all(|x| x.ok),
                "run {run}: {} results, failures: {:?}",
                r.results.len(),
                r.results.iter().filter(|x| !x.ok).collect::<Vec<_>>()
            );
            anyhow::ensure!(
                clean,
                "run {run}: RevertAll returned but a victim is still stopped"
            );
            times.push(took);
            clean_times.push(clean_at);
        }
        anyhow::Ok(())
    })?;
    times.sort();
    clean_times.sort();
    println!(
        "bench-abort: RevertAll of {n} pause faults, {runs} runs: median {} (min {}, max {}); returned-and-verified-clean median {}",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        ms(clean_times[clean_times.len() / 2]),
    );
    Ok(())
}
