//! `fleet-sim`: the light agent simulator (`faultline_tests::sim`) as a process: N
//! simulated agents on N Unix sockets (or N loopback ports with mutual TLS), an
//! inventory naming them, until SIGINT or SIGTERM; then one line of totals (lease
//! lapses, live faults) on stdout.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use faultline_agent::limits::Limits;
use faultline_tests::pki::Ca;
use faultline_tests::sim::{Sim, SimTls};

/// Serves N simulated faultline agents from one process (faultd's engine without the
/// kernel: per-agent faults, leases, limits; dry runs and leases behave like faultd's)
/// and writes DIR/fleet.toml naming them, for driving faultctl at 1,000 or 10,000 agents.
/// With --tls, each agent listens on its own 127.0.0.1 port with mutual TLS, and DIR/pki
/// holds the CA and faultctl's client certificate and key (the inventory names them).
#[derive(Debug, clap::Parser)]
#[command(
    name = "fleet-sim",
    after_help = "Examples:\n  target/release/fleet-sim --agents 10000 --dir /tmp/sim &\n  target/release/faultctl --inventory /tmp/sim/fleet.toml status\n  target/release/fleet-sim --agents 1000 --tls --dir /tmp/sim-tls\n\nOn SIGINT or SIGTERM it prints `fleet-sim: N agents, L lease lapses, F live faults`\nand removes its sockets."
)]
struct Args {
    /// How many agents.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Where the sockets, the inventory (fleet.toml) and the TLS files go (made if
    /// missing).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Serve mutual TLS on loopback ports instead of Unix sockets.
    #[arg(long)]
    tls: bool,
    /// Number the agents from N (node-N...): several simulator processes can serve one
    /// fleet when one process may not open enough files (each agent holds a listener,
    /// each client connection another file).
    #[arg(long, default_value_t = 1, value_name = "N")]
    first: usize,
    /// A faultd limits file every agent enforces [default: the `staging` profile].
    #[arg(long, value_name = "FILE")]
    limits: Option<PathBuf>,
}

/// Each agent holds a listener, and each client connection a socket: 10,000 agents with
/// a lease each need about 20,000 files. Raises the limit to `want` where allowed (root),
/// else to the hard limit, and says so when that is short.
fn raise_nofile(want: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if setrlimit(Resource::RLIMIT_NOFILE, want.max(hard), want.max(hard)).is_err() {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        if hard < want {
            eprintln!(
                "fleet-sim: warning: open files are limited to {hard}; {want} may be needed (run as root, or raise ulimit -Hn)"
            );
        }
    }
}

fn main() -> anyhow::Result<()> {
    let a = <Args as clap::Parser>::parse();
    anyhow::ensure!(a.agents > 0, "--agents must be at least 1");
    raise_nofile(a.agents as u64 * 2 + 1024);
    std::fs::create_dir_all(&a.dir).with_context(|| format!("create {}", a.dir.display()))?;
    let limits = match &a.limits {
        Some(p) => Limits::load(Some(p), false).with_context(|| format!("{}", p.display()))?,
        None => Limits::staging(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (tls, defaults) = if a.tls {
            let pki = a.dir.join("pki");
            std::fs::create_dir_all(&pki)?;
            let ca = Ca::new(&pki, "sim-ca");
            let (cert, key) = ca.leaf(&pki, "sim-agent", false);
            let (ccert, ckey) = ca.leaf(&pki, "faultctl", false);
            let defaults = format!(
                "ca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
                ca.pem.display(),
                ccert.display(),
                ckey.display()
            );
            (
                Some(SimTls {
                    cert,
                    key,
                    client_ca: ca.pem.clone(),
                }),
                defaults,
            )
        } else {
            (None, String::new())
        };
        let sim = Sim::start_from(a.first, a.agents, &a.dir, &limits, tls.as_ref()).await?;
        let inv = a.dir.join("fleet.toml");
        std::fs::write(&inv, sim.inventory(&defaults))?;
        println!(
            "fleet-sim: serving {} agents ({}); inventory {} (pid {})",
            a.agents,
            if a.tls {
                "mutual TLS on 127.0.0.1"
            } else {
                "Unix sockets"
            },
            inv.display(),
            std::process::id()
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        // Whoever started us may have stopped reading: no panic on a closed pipe.
        let _ = writeln!(
            std::io::stdout(),
            "fleet-sim: {} agents, {} lease lapses, {} live faults",
            a.agents,
            sim.lease_lapses(),
            sim.active_faults()
        );
        for addr in &sim.addresses {
            if let Some(p) = addr.strip_prefix("unix://") {
                let _ = std::fs::remove_file(p);
            }
        }
        anyhow::Ok(())
    })
}
