//! `bench-abort`: `RevertAll` with 100 active faults on a real `faultd`.
//!
//! Each run starts 100 `sleep` processes, pauses each with its own fault (100 pause
//! faults, under a limits file allowing 100 concurrent faults), then times the
//! `RevertAll` RPC until it returns, and checks the node is clean (every process running
//! again, per /proc) right after. Reports the median and worst of `--runs` (default 20)
//! runs, as the client sees them and agent-side (the reply's `elapsed_us`: the engine's
//! revert of every fault, without the RPC around it), and what the agent's threads
//! spent meanwhile on a CPU and waiting for one (`/proc/PID/task/*/schedstat`): on a
//! loaded machine the wait tells how much of the time was other work's. Needs root.
//! It reports; it does not gate.
//!
//! Run: `cargo build --bins && target/debug/bench-abort [--runs 20] [--faults 100]`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use faultline_proto::v1 as pb;
use faultline_tests::agent::{Agent, AgentOptions, Victim, proc_state};

/// RevertAll with many active pause faults on a real faultd (root): time to return,
/// time until every victim runs again, agent-side time and faultd's CPU meanwhile.
/// It reports; it does not gate.
#[derive(Debug, clap::Parser)]
#[command(
    name = "bench-abort",
    after_help = "Examples:\n  sudo target/debug/bench-abort --runs 20 --faults 100\n  sudo target/debug/bench-abort --runs 1 --faults 3     # a smoke run"
)]
struct Args {
    /// Runs (each injects --faults pauses, then one RevertAll).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Pause faults (and sleep victims) per run.
    #[arg(long, default_value_t = 100)]
    faults: usize,
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

/// (on-CPU, waiting-for-a-CPU) nanoseconds summed over the threads of `pid`.
fn sched_ns(pid: i32) -> (u64, u64) {
    let mut sum = (0, 0);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return sum;
    };
    for t in tasks.flatten() {
        let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        let mut f = s.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
        sum.0 += f.next().unwrap_or(0);
        sum.1 += f.next().unwrap_or(0);
    }
    sum
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> anyhow::Result<()> {
    let Args { runs, faults: n } = <Args as clap::Parser>::parse();
    anyhow::ensure!(runs > 0 && n > 0, "--runs and --faults must be at least 1");
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
    let mut agent_times = Vec::new();
    let mut on_cpu = Vec::new();
    let mut waiting = Vec::new();
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
            let s0 = sched_ns(agent.pid());
            let t0 = Instant::now();
            let r = client
                .revert_all(pb::RevertAllRequest {
                    reason: "bench-abort".into(),
                })
                .await?
                .into_inner();
            let took = t0.elapsed();
            let s1 = sched_ns(agent.pid());
            on_cpu.push(Duration::from_nanos(s1.0.saturating_sub(s0.0)));
            waiting.push(Duration::from_nanos(s1.1.saturating_sub(s0.1)));
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
            agent_times.push(Duration::from_micros(r.elapsed_us));
            clean_times.push(clean_at);
        }
        anyhow::Ok(())
    })?;
    times.sort();
    clean_times.sort();
    agent_times.sort();
    on_cpu.sort();
    waiting.sort();
    println!(
        "bench-abort: RevertAll of {n} pause faults, {runs} runs: median {} (min {}, max {}); returned-and-verified-clean median {}",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        ms(clean_times[clean_times.len() / 2]),
    );
    println!(
        "bench-abort: agent-side (RevertAll elapsed_us) median {} (min {}, max {})",
        ms(agent_times[agent_times.len() / 2]),
        ms(agent_times[0]),
        ms(agent_times[agent_times.len() - 1]),
    );
    println!(
        "bench-abort: faultd's threads during the RPC: on a CPU median {}, waiting for one median {}",
        ms(on_cpu[on_cpu.len() / 2]),
        ms(waiting[waiting.len() / 2]),
    );
    Ok(())
}
