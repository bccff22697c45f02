//! `faultd`: the faultline agent. Thin: parses flags, loads config and limits, runs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use faultline_agent::config::Config;
use faultline_agent::limits::Limits;
use faultline_agent::server;

#[derive(Parser, Debug)]
#[command(
    name = "faultd",
    version,
    about = "faultline agent: injects faults (process kill/pause; network and stress to come) into this node, within the node's own limits",
    long_about = None,
    after_help = "\
Examples:
  sudo faultd                                   # embedded defaults, socket /run/faultline/faultd.sock
  sudo faultd --socket /tmp/f.sock --state-dir /tmp/faultd-state
  sudo faultd --limits /etc/faultline/limits.toml
  faultd check-config --limits ./limits.toml    # validate both files, print the effective limits

Files:
  /etc/faultline/faultd.toml   agent config (socket, state_dir, operator_groups, limits, log)
  /etc/faultline/limits.toml   blast-radius limits; must be owned by root, not group/world-writable

On SIGTERM or SIGINT faultd reverts every active fault before it exits."
)]
struct Cli {
    /// Config file [default: /etc/faultline/faultd.toml if present, else embedded defaults].
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Limits file [default: the config's `limits`, else /etc/faultline/limits.toml if present, else embedded production profile].
    #[arg(long, global = true, value_name = "PATH")]
    limits: Option<PathBuf>,
    /// Unix socket to serve on [default: /run/faultline/faultd.sock].
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Directory for the agent's state [default: /var/lib/faultline].
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Log filter, e.g. info, debug, faultline_agent=debug [default: the config's `log`, or info].
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate the config and limits files and print the effective settings; exit 0 if valid.
    #[command(
        after_help = "Example:\n  faultd check-config --config /etc/faultline/faultd.toml --limits /etc/faultline/limits.toml"
    )]
    CheckConfig,
    /// Offline: revert every fault left in the journal (faultd must not be running); exit 0
    /// only when the journal is empty afterwards. The unit's ExecStopPost.
    #[command(
        after_help = "Example:\n  sudo faultd cleanup    # after a crash, with faultd stopped"
    )]
    Cleanup,
}

fn load(cli: &Cli) -> anyhow::Result<(Config, Limits)> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(s) = &cli.socket {
        config.socket = s.clone();
    }
    if let Some(s) = &cli.state_dir {
        config.state_dir = s.clone();
    }
    if let Some(l) = &cli.log {
        config.log = l.clone();
    }
    let limits_path = cli.limits.clone().or_else(|| config.limits.clone());
    let root = nix::unistd::Uid::effective().is_root();
    let limits = Limits::load(limits_path.as_deref(), root)?;
    Ok((config, limits))
}

fn print_effective(config: &Config, limits: &Limits) {
    use faultline_proto::units::format_duration as d;
    println!("config: {}", config.source);
    println!("  socket          {}", config.socket.display());
    println!("  state_dir       {}", config.state_dir.display());
    println!(
        "  operator_groups {}",
        if config.operator_groups.is_empty() {
            "(root only)".into()
        } else {
            config.operator_groups.join(", ")
        }
    );
    println!("limits: {} (profile {})", limits.source, limits.profile);
    println!("  max_duration               {}", d(limits.max_duration));
    println!(
        "  max_concurrent_faults      {}",
        limits.max_concurrent_faults
    );
    println!(
        "  process.max_kills_per_minute {}",
        limits.process.max_kills_per_minute
    );
    println!(
        "  process.protected_processes  {}",
        limits.process.protected_processes.join(", ")
    );
    println!(
        "  process.protected_units      {}",
        limits.process.protected_units.join(", ")
    );
    println!(
        "  process.protected_cgroups    {}",
        limits.process.protected_cgroups.join(", ")
    );
    println!(
        "  network.max_delay          {}",
        d(limits.network.max_delay)
    );
    println!(
        "  network.max_loss_percent   {}",
        limits.network.max_loss_percent
    );
    println!(
        "  cpu.max_percent            {} (for at most {})",
        limits.cpu.max_percent,
        d(limits.cpu.max_duration)
    );
    println!(
        "  memory.max_percent         {} (for at most {})",
        limits.memory.max_percent,
        d(limits.memory.max_duration)
    );
}

/// Logs to stderr (the journal under systemd) with the config's filter.
fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal: under systemd, stderr goes to the journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// `faultd cleanup`: replays the journal with the same code as crash recovery on start.
/// The limits do not matter for reverting: an unreadable limits file falls back to the
/// embedded production profile so that cleanup still runs.
fn cleanup(cli: &Cli) -> anyhow::Result<bool> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(s) = &cli.state_dir {
        config.state_dir = s.clone();
    }
    let limits = load(cli)
        .map(|(_, l)| l)
        .unwrap_or_else(|_| Limits::production());
    if !config.state_dir.exists() {
        println!(
            "faultd cleanup: no state dir {}: nothing to revert",
            config.state_dir.display()
        );
        return Ok(true);
    }
    init_logging(&config.log);
    let _lock = server::lock_state_dir(&config.state_dir)?;
    let journal = faultline_agent::engine::journal::Journal::open(&config.state_dir)?;
    let engine = faultline_agent::engine::Engine::new(
        faultline_agent::host::Host::detect(limits),
        Some(journal.clone()),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = rt.block_on(engine.recover());
    for r in &results {
        match &r.result {
            Ok(()) => println!("faultd cleanup: reverted {}", r.id),
            Err(e) => println!("faultd cleanup: cannot revert {}: {e}", r.id),
        }
    }
    let (left, bad) = journal.load();
    let clean = left.is_empty() && bad.is_empty();
    println!(
        "faultd cleanup: {} reverted, {} left in {}{}",
        results.iter().filter(|r| r.result.is_ok()).count(),
        left.len() + bad.len(),
        journal.dir().display(),
        if clean { "; node clean" } else { "" }
    );
    Ok(clean)
}

fn main() -> ExitCode {
    // Stress workers are this binary re-executed with a hidden subcommand.
    let args: Vec<String> = std::env::args().collect();
    if let Some(sub) = args.get(1)
        && (sub == faultline_agent::sys::stress::CPU_SUBCOMMAND
            || sub == faultline_agent::sys::stress::MEM_SUBCOMMAND)
    {
        match faultline_agent::sys::stress::WorkerCommand::from_args(&args[1..]) {
            Ok(w) => w.run(),
            Err(e) => {
                eprintln!("faultd: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let cli = Cli::parse();
    if let Some(Command::Cleanup) = cli.command {
        return match cleanup(&cli) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("faultd cleanup: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let (config, limits) = match load(&cli) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("faultd: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::CheckConfig) = cli.command {
        print_effective(&config, &limits);
        return ExitCode::SUCCESS;
    }
    init_logging(&config.log);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("faultd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(server::run(server::Options { config, limits })) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faultd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
