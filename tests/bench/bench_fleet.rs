//! `bench-fleet`: faultctl's fan-out to many real agents.
//!
//! Starts `--agents N` (default 100) real `faultd` processes on this machine, each with
//! its own socket and state dir under a temp dir and its metrics endpoint off
//! (`--metrics ""`: N agents cannot all bind the default port), writes an inventory
//! naming them, and times (wall clock) `--rounds R` (default 5) rounds of:
//!
//! - `faultctl --inventory INV -o json status` (in process, through the library, on the
//!   same current-thread runtime the binary uses),
//! - `faultctl --inventory INV -o json inject kill --pid P --dry-run` (P: a `sleep 600`
//!   child of this process),
//! - the same `status` through the real `faultctl` binary (process start included).
//!
//! It prints each figure, the agents' total and mean VmRSS, and exits non-zero only if a
//! fan-out failed on some node. It reports; it does not gate.
//!
//! With `--sim`, the agents are one `fleet-sim` process (the light simulator, for 1,000
//! and 10,000 agents; `--tls` for mutual TLS on loopback ports) instead of faultd's.
//!
//! ```text
//! cargo build --bins && cargo build -p faultline-tests --bins   # faultd, faultctl, bench-fleet
//! sudo target/debug/bench-fleet --agents 100
//! ```
//! `FAULTLINE_BIN_DIR` names the directory holding `faultd` and `faultctl` (default: the
//! directory of this binary).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser as _;
use faultline_controller::Cli;

struct Agents {
    children: Vec<Child>,
}

impl Drop for Agents {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn fanout(rt: &tokio::runtime::Runtime, args: &[&str]) -> anyhow::Result<Duration> {
    let cli = Cli::try_parse_from(args).context("parse")?;
    let mut out: Vec<u8> = Vec::new();
    let t = Instant::now();
    let r = rt.block_on(faultline_controller::run(&cli, &mut out));
    let took = t.elapsed();
    if let Err(e) = r {
        bail!("{args:?}: {e}\n{}", String::from_utf8_lossy(&out));
    }
    let v: serde_json::Value = serde_json::from_slice(&out)?;
    let n = v.as_array().map_or(0, Vec::len);
    if v.as_array()
        .is_none_or(|a| a.iter().any(|r| r["ok"] != true))
    {
        bail!("{args:?}: some node failed");
    }
    eprintln!("  {n} nodes ok");
    Ok(took)
}

/// faultctl's fan-out to many agents on this machine: status and dry-run inject through
/// the library, and status through the faultctl binary, R rounds each (min, median,
/// max). Real faultd agents (root), or with --sim the light simulator (fleet-sim).
/// FAULTLINE_BIN_DIR names the directory of faultd, faultctl and fleet-sim (default:
/// this binary's). It reports; it does not gate.
#[derive(Debug, clap::Parser)]
#[command(
    name = "bench-fleet",
    after_help = "Examples:\n  sudo FAULTLINE_BIN_DIR=target/release target/release/bench-fleet --agents 100\n  target/release/bench-fleet --sim --agents 10000 --rounds 3\n  target/release/bench-fleet --sim --tls --agents 1000\n  target/debug/bench-fleet --agents 2 --rounds 1       # a smoke run"
)]
struct Args {
    /// How many agents.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Timed rounds of each fan-out.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Simulated agents (one fleet-sim process) instead of real faultd processes.
    #[arg(long)]
    sim: bool,
    /// With --sim: mutual TLS on loopback ports instead of Unix sockets.
    #[arg(long, requires = "sim")]
    tls: bool,
}

/// Starts fleet-sim and waits for its inventory.
fn start_sim(
    bin_dir: &std::path::Path,
    dir: &std::path::Path,
    n: usize,
    tls: bool,
) -> anyhow::Result<Child> {
    use std::io::BufRead;
    let mut cmd = Command::new(bin_dir.join("fleet-sim"));
    cmd.arg("--agents").arg(n.to_string()).arg("--dir").arg(dir);
    if tls {
        cmd.arg("--tls");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {}", bin_dir.join("fleet-sim").display()))?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    if !line.starts_with("fleet-sim: serving") {
        let _ = child.kill();
        bail!("fleet-sim did not start: {line:?}");
    }
    Ok(child)
}

fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let (n, rounds) = (args.agents, args.rounds);
    anyhow::ensure!(
        n > 0 && rounds > 0,
        "--agents and --rounds must be at least 1"
    );
    let bin_dir = std::env::var("FAULTLINE_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::current_exe()
                .expect("current_exe")
                .parent()
                .expect("dir")
                .to_path_buf()
        });
    let dir = tempfile::Builder::new().prefix("bench-fleet-").tempdir()?;
    let mut agents = Agents {
        children: Vec::new(),
    };
    let mut inv = String::new();
    let t = Instant::now();
    let inv_path = dir.path().join("fleet.toml");
    if args.sim {
        agents
            .children
            .push(start_sim(&bin_dir, dir.path(), n, args.tls)?);
        println!("started {n} simulated agents in {:?}", t.elapsed());
    }
    for i in (0..n).filter(|_| !args.sim) {
        let d = dir.path().join(format!("a{i}"));
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join("faultd.toml"), "log = \"warn\"\n")?;
        let sock = d.join("faultd.sock");
        let child = Command::new(bin_dir.join("faultd"))
            .arg("--socket")
            .arg(&sock)
            .arg("--state-dir")
            .arg(d.join("state"))
            .arg("--config")
            .arg(d.join("faultd.toml"))
            .arg("--metrics")
            .arg("")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn {}", bin_dir.join("faultd").display()))?;
        agents.children.push(child);
        inv += &format!(
            "[[agents]]\nname = \"node-{i:03}\"\naddress = \"unix://{}\"\nlabels = {{ role = \"bench\" }}\n",
            sock.display()
        );
    }
    for i in (0..n).filter(|_| !args.sim) {
        let sock = dir.path().join(format!("a{i}/faultd.sock"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            if Instant::now() > deadline {
                bail!("agent {i} did not listen within 60s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if !args.sim {
        println!("started {n} faultd agents in {:?}", t.elapsed());
        std::fs::write(&inv_path, inv)?;
    }
    let inv_s = inv_path.to_str().context("utf-8 path")?.to_string();

    let mut victim = Command::new("sleep").arg("600").spawn()?;
    let pid = victim.id().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status_args = ["faultctl", "--inventory", &inv_s, "-o", "json", "status"];
    let dry_args = [
        "faultctl",
        "--inventory",
        &inv_s,
        "-o",
        "json",
        "inject",
        "kill",
        "--pid",
        &pid,
        "--dry-run",
    ];
    let report = |name: &str, f: &mut dyn FnMut() -> anyhow::Result<Duration>| {
        let mut v = Vec::new();
        for _ in 0..rounds {
            v.push(f()?);
        }
        v.sort();
        println!(
            "{name:<42} min {:>7.1} ms  median {:>7.1} ms  max {:>7.1} ms  ({rounds} rounds)",
            v[0].as_secs_f64() * 1e3,
            v[v.len() / 2].as_secs_f64() * 1e3,
            v[v.len() - 1].as_secs_f64() * 1e3
        );
        anyhow::Ok(())
    };
    let r = (|| {
        report(
            &format!("status fan-out to {n} agents (library)"),
            &mut || fanout(&rt, &status_args),
        )?;
        report(
            &format!("dry-run inject fan-out to {n} agents (library)"),
            &mut || fanout(&rt, &dry_args),
        )?;
        report(
            &format!("status fan-out to {n} agents (faultctl binary)"),
            &mut || {
                let t = Instant::now();
                let o = Command::new(bin_dir.join("faultctl"))
                    .args(&status_args[1..])
                    .stderr(Stdio::null())
                    .output()?;
                let took = t.elapsed();
                if !o.status.success() {
                    bail!("faultctl status failed: {}", o.status);
                }
                Ok(took)
            },
        )
    })();
    let _ = victim.kill();
    let _ = victim.wait();
    let rss: Vec<u64> = agents.children.iter().map(|c| rss_kib(c.id())).collect();
    let total: u64 = rss.iter().sum();
    if args.sim {
        println!("fleet-sim's VmRSS: {:.1} MiB", total as f64 / 1024.0);
        return r;
    }
    println!(
        "agents' VmRSS: total {:.1} MiB, mean {:.1} MiB, max {:.1} MiB",
        total as f64 / 1024.0,
        total as f64 / 1024.0 / n as f64,
        *rss.iter().max().unwrap_or(&0) as f64 / 1024.0
    );
    r
}
