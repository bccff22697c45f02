//! `bench-exempt`: the added cost of protected traffic (issue #15) on a network fault's
//! inject + revert. The same fault through the agent's engine (`Engine::inject` +
//! `Engine::revert`, in process, the real rtnetlink calls) with the staging limits as
//! shipped (`protected_ports = [22]`: a prio root, 4 exemption filters, the fault's
//! filters or a match-all) and with `protected_ports = []` (no exemption: a netem root
//! for a whole-interface fault, as before). Runs alternate between the two so load
//! drifts hit both alike. Three faults: whole interface egress, `--dst` egress, whole
//! interface ingress (IFB). `--n` cycles each (default 200); p50/p99 and the ratio.
//! Needs root and netem: run it in the VM tier (`tests/vm/run -- /faultline/bin/bench-exempt`).
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

fn spec(netns: &str, iface: &str, direction: &str, dst: &[&str]) -> pb::InjectRequest {
    pb::InjectRequest {
        spec: Some(pb::FaultSpec {
            kind: Some(pb::fault_spec::Kind::Network(pb::NetworkSpec {
                iface: iface.into(),
                netns: netns.into(),
                direction: direction.into(),
                netem: Some(pb::NetemSpec {
                    delay_us: 10_000,
                    ..Default::default()
                }),
                selection: Some(pb::TrafficSelector {
                    dst: dst.iter().map(|s| s.to_string()).collect(),
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

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn cycle(engine: &Engine, req: &pb::InjectRequest) -> anyhow::Result<Duration> {
    let r = faultline_agent::api::convert::inject_request(req, "bench".into())?;
    let t = Instant::now();
    let out = engine.inject(r).await?;
    engine
        .revert(&out.fault.expect("applied").id, "bench")
        .await?;
    Ok(t.elapsed())
}

/// Protected traffic's added cost on a network fault's inject + revert.
#[derive(Debug, clap::Parser)]
#[command(
    name = "bench-exempt",
    about = "The added cost of protected traffic (exemption filters) on a network fault's inject + revert, through the engine, with protected_ports [22] against []. Needs root and sch_netem (run it in the VM tier); reports, never gates.",
    after_help = "Examples:\n  tests/vm/run -- /faultline/bin/bench-exempt --n 200\n  tests/vm/run -- /faultline/bin/bench-exempt --n 2     # a smoke run"
)]
struct Args {
    /// Inject + revert cycles of each fault, with and without protection.
    #[arg(long, default_value_t = 200)]
    n: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let Args { n } = <Args as clap::Parser>::parse();
    anyhow::ensure!(n > 0, "--n must be at least 1");
    if net_common::kernel().netem.is_err() {
        anyhow::bail!("this kernel has no sch_netem: run bench-exempt in the VM tier");
    }
    let pair = net_common::Pair::new();
    let ns = pair.ns.name.clone();
    let protected = Engine::new(Host::detect(Limits::staging()), None);
    let mut bare_limits = Limits::staging();
    bare_limits.network.protected_ports.clear();
    let bare = Engine::new(Host::detect(bare_limits), None);
    println!("netem delay 10ms inject + revert through the engine, {n} cycles each (microseconds)");
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "fault", "p50 bare", "p50 prot", "p99 bare", "p99 prot", "p50 x", "p99 x"
    );
    for (name, direction, dst) in [
        ("whole interface, egress", "egress", &[][..]),
        ("--dst 10.9.0.0/16, egress", "egress", &["10.9.0.0/16"][..]),
        ("whole interface, ingress", "ingress", &[][..]),
    ] {
        let req = spec(&ns, &pair.a, direction, dst);
        // Warm up both (first netlink socket, module autoload).
        cycle(&bare, &req).await?;
        cycle(&protected, &req).await?;
        let (mut b, mut p) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            if i % 2 == 0 {
                b.push(cycle(&bare, &req).await?);
                p.push(cycle(&protected, &req).await?);
            } else {
                p.push(cycle(&protected, &req).await?);
                b.push(cycle(&bare, &req).await?);
            }
        }
        let (b50, b99, p50, p99) = (
            pct(&mut b, 50),
            pct(&mut b, 99),
            pct(&mut p, 50),
            pct(&mut p, 99),
        );
        println!(
            "{name:<28} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>8.2} {:>8.2}",
            us(b50),
            us(p50),
            us(b99),
            us(p99),
            us(p50) / us(b50),
            us(p99) / us(b99)
        );
    }
    println!("bare: protected_ports = []; prot: protected_ports = [22] (staging as shipped)");
    Ok(())
}
