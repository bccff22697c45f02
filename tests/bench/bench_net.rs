//! `bench-net`: apply + revert of a netem fault, three ways, side by side in one run:
//!
//! 1. the agent's engine call (`Engine::inject` + `Engine::revert`, in process),
//! 2. the full gRPC round trip to a real `faultd` through faultctl's client library,
//! 3. spawning `tc qdisc replace ... netem delay 10ms` + `tc qdisc del ... root`.
//!
//! Path 2's client runs on a current-thread tokio runtime, as faultctl's does (its
//! `main`); one more row times the same calls from a two-worker runtime, whose
//! cross-thread wake-ups cost the client about a millisecond per call under TCG.
//!
//! Paths 1 and 2 run under the staging limits with nothing protected
//! (`[network] protected_ports = []`), so faultd makes the same change as `tc` (a netem
//! root qdisc); path 2 runs again with the default protection of port 22, where faultd
//! installs a prio root, the netem child and u32 filters steering port 22, ARP and IPv6
//! neighbour discovery past it (docs/faultctl.md, "Protected traffic").
//!
//! Each on its own veth in a scratch network namespace, `--n` cycles (default 200),
//! p50/p99 and the ratios against one `tc` spawn pair. Needs root and a kernel with
//! netem (run it in the VM tier: `tests/vm/run -- /faultline/bin/bench-net`).
//! It reports; it does not gate.

#[path = "../net_common/mod.rs"]
mod net_common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use faultline_agent::engine::Engine;
use faultline_agent::host::Host;
use faultline_agent::limits::Limits;
use faultline_proto::v1 as pb;
use faultline_tests::quantile as pct;

fn spec(netns: &str, iface: &str) -> pb::InjectRequest {
    pb::InjectRequest {
        spec: Some(pb::FaultSpec {
            kind: Some(pb::fault_spec::Kind::Network(pb::NetworkSpec {
                iface: iface.into(),
                netns: netns.into(),
                netem: Some(pb::NetemSpec {
                    delay_us: 10_000,
                    ..Default::default()
                }),
                ..Default::default()
            })),
        }),
        duration_ms: 60_000,
        labels: HashMap::new(),
        dry_run: false,
        lease_id: String::new(),
    }
}

/// The staging profile with no protected port: faultd then installs a netem root
/// qdisc, as `tc qdisc replace ... root netem` does.
const UNPROTECTED: &str = "profile = \"staging\"\n[network]\nprotected_ports = []\n";

/// [`grpc_cycles`] with the client on a current-thread runtime of its own thread, as
/// faultctl runs it.
fn grpc_cycles_as_faultctl(
    limits: Option<&str>,
    ns: &str,
    iface: &str,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(grpc_cycles(limits, ns, iface, n))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the gRPC client thread panicked"))?
    })
}

/// `n` inject + revert cycles over gRPC against a fresh faultd with `limits` (None: the
/// staging profile, whose network limits protect port 22).
async fn grpc_cycles(
    limits: Option<&str>,
    ns: &str,
    iface: &str,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let agent = match limits {
        None => faultline_tests::agent::Agent::start_staging(),
        Some(l) => {
            faultline_tests::agent::Agent::start_with(faultline_tests::agent::AgentOptions {
                limits: Some(l.into()),
                ..Default::default()
            })
        }
    };
    let mut client = faultline_controller::client::connect(&agent.uri()).await?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = client.inject(spec(ns, iface)).await?.into_inner();
        let id = r.fault.expect("applied").id;
        client
            .revert(pb::RevertRequest {
                id,
                reason: String::new(),
            })
            .await?;
        out.push(t.elapsed());
    }
    Ok(out)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// netem apply + revert three ways (engine call, gRPC to faultd, spawning tc), on veths
/// in a scratch network namespace. Needs root and sch_netem (the VM tier). It reports;
/// it does not gate.
#[derive(Debug, clap::Parser)]
#[command(
    name = "bench-net",
    after_help = "Examples:\n  tests/vm/run -- /faultline/bin/bench-net --n 200\n  tests/vm/run -- /faultline/bin/bench-net --n 2     # a smoke run"
)]
struct Args {
    /// Apply + revert cycles on each path.
    #[arg(long, default_value_t = 200)]
    n: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let Args { n } = <Args as clap::Parser>::parse();
    anyhow::ensure!(n > 0, "--n must be at least 1");
    if net_common::kernel().netem.is_err() {
        anyhow::bail!("this kernel has no sch_netem: run bench-net in the VM tier");
    }
    let pair = net_common::Pair::new();
    let ns = pair.ns.name.clone();

    // 1. The engine, in process.
    let unprotected = Limits::parse(UNPROTECTED, std::path::Path::new("bench-net limits"))?;
    let engine = Engine::new(Host::detect(unprotected), None);
    let mut engine_t = Vec::with_capacity(n);
    for _ in 0..n {
        let req =
            faultline_agent::api::convert::inject_request(&spec(&ns, &pair.a), "bench".into())?;
        let t = Instant::now();
        let out = engine.inject(req).await?;
        engine
            .revert(&out.fault.expect("applied").id, "bench")
            .await?;
        engine_t.push(t.elapsed());
    }

    // 2. The full gRPC round trip to a real faultd: the same change as tc, then with
    // port 22 protected (the default).
    let grpc_t = grpc_cycles_as_faultctl(Some(UNPROTECTED), &ns, &pair.b, n)?;
    let grpc_protected_t = grpc_cycles_as_faultctl(None, &ns, &pair.b, n)?;
    let mut grpc_mt_t = grpc_cycles(Some(UNPROTECTED), &ns, &pair.b, n).await?;

    // 3. Spawning tc for the same change.
    let tc = net_common::program("tc");
    let mut tc_t = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        for args in [
            vec![
                "-n",
                ns.as_str(),
                "qdisc",
                "replace",
                "dev",
                pair.a.as_str(),
                "root",
                "netem",
                "delay",
                "10ms",
            ],
            vec![
                "-n",
                ns.as_str(),
                "qdisc",
                "del",
                "dev",
                pair.a.as_str(),
                "root",
            ],
        ] {
            let st = std::process::Command::new(tc).args(&args).status()?;
            anyhow::ensure!(st.success(), "tc {args:?} failed");
        }
        tc_t.push(t.elapsed());
    }

    let (tc50, tc99) = (pct(&mut tc_t, 50), pct(&mut tc_t, 99));
    println!("netem delay 10ms apply + revert, {n} cycles each (microseconds)");
    println!(
        "{:<34} {:>10} {:>10} {:>12} {:>12}",
        "path", "p50", "p99", "p50/tc", "p99/tc"
    );
    let mut grpc_t = grpc_t;
    let mut grpc_protected_t = grpc_protected_t;
    for (name, v) in [
        ("engine call (in process)", &mut engine_t),
        ("gRPC via faultctl's client", &mut grpc_t),
        ("gRPC, port 22 protected", &mut grpc_protected_t),
        ("gRPC, client on 2 worker threads", &mut grpc_mt_t),
        ("spawning tc (2 processes)", &mut tc_t),
    ] {
        let (a, b) = (pct(v, 50), pct(v, 99));
        println!(
            "{name:<34} {:>10.1} {:>10.1} {:>12.3} {:>12.3}",
            us(a),
            us(b),
            us(a) / us(tc50),
            us(b) / us(tc99)
        );
    }
    let (one_tc, one_tc99) = (us(tc50) / 2.0, us(tc99) / 2.0);
    println!(
        "one tc spawn ~{one_tc:.1} us; gRPC inject+revert p50 / one tc spawn = {:.3} (the same change), {:.3} (port 22 protected)",
        us(pct(&mut grpc_t, 50)) / one_tc,
        us(pct(&mut grpc_protected_t, 50)) / one_tc
    );
    println!(
        "p99: one tc spawn ~{one_tc99:.1} us; gRPC inject+revert p99 / one tc spawn p99 = {:.3} (the same change), {:.3} (port 22 protected)",
        us(pct(&mut grpc_t, 99)) / one_tc99,
        us(pct(&mut grpc_protected_t, 99)) / one_tc99
    );
    Ok(())
}
