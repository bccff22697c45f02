//! `faultd`: the faultline agent. Thin: parses flags, loads config and limits, runs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use faultline_agent::config::Config;
use faultline_agent::limits::Limits;
use faultline_agent::server;

/// Examples and files, every line shorter than 80 columns so that no command wraps.
const HELP_AFTER: &str = "\
Examples:
  # embedded defaults, socket /run/faultline/faultd.sock:
  sudo faultd
  sudo faultd --socket /tmp/f.sock --state-dir /tmp/faultd-state
  sudo faultd --limits /etc/faultline/limits.toml
  # validate both files and print every setting in force:
  faultd check-config --limits ./limits.toml
  # no faultd running: revert what the journal holds, sweep leftovers:
  sudo faultd cleanup --state-dir /var/lib/faultline

Files:
  /etc/faultline/faultd.toml  config: socket, state_dir, operator_groups,
                              limits, log, listen (mutual TLS), roles
  /etc/faultline/limits.toml  blast-radius limits; owned by root and not
                              writable by group or others

On SIGTERM or SIGINT faultd reverts every active fault before it exits.";

#[derive(Parser, Debug)]
#[command(
    name = "faultd",
    version,
    about = "faultline agent: injects faults into this node (process kill and pause, network \
             delay/loss/corruption with netem, CPU and memory stress in cgroups), within the \
             node's own limits",
    long_about = None,
    after_help = HELP_AFTER
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
    /// Also serve gRPC on this TCP address (IP:PORT), mutual TLS only: needs tls_cert,
    /// tls_key and tls_client_ca in the config [default: the config's `listen`, or none].
    #[arg(long, global = true, value_name = "ADDR")]
    listen: Option<String>,
    /// Prometheus metrics address, IP:PORT; "" turns them off [default: the config's
    /// `metrics_listen`, or 127.0.0.1:9464].
    #[arg(long, global = true, value_name = "ADDR")]
    metrics: Option<String>,
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
    /// Offline: with no faultd running, revert every fault in the journal and sweep
    /// faultline's tagged leftovers; exit 0 only when the node is clean.
    #[command(
        after_help = "Refuses (exit 2) while a live faultd holds the state dir's lock.\n\
Exit 0: node clean. Exit 1: something is left (listed).\n\
systemd runs it as ExecStopPost.\n\n\
Example:\n  faultd cleanup --state-dir /var/lib/faultline"
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
    let addr = |s: &str, flag: &str| -> anyhow::Result<Option<std::net::SocketAddr>> {
        if s.is_empty() {
            return Ok(None);
        }
        faultline_agent::config::parse_addr(s)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
    };
    if let Some(m) = &cli.metrics {
        config.metrics_listen = addr(m, "--metrics")?;
    }
    if let Some(l) = &cli.listen {
        config.listen = addr(l, "--listen")?;
    }
    // Plain TCP is never served: refuse now, naming what is missing.
    config.tls_files().map_err(anyhow::Error::msg)?;
    let limits_path = cli.limits.clone().or_else(|| config.limits.clone());
    let root = nix::unistd::Uid::effective().is_root();
    let limits = Limits::load(limits_path.as_deref(), root)?;
    Ok((config, limits))
}

fn print_effective(config: &Config, limits: &Limits) {
    println!("config: {}", config.source);
    println!("  socket          {}", config.socket.display());
    println!("  state_dir       {}", config.state_dir.display());
    let or_none = |a: Option<std::net::SocketAddr>| {
        a.map(|a| a.to_string()).unwrap_or_else(|| "(off)".into())
    };
    println!("  listen          {} (mutual TLS)", or_none(config.listen));
    println!("  metrics_listen  {}", or_none(config.metrics_listen));
    for (who, role) in &config.roles {
        println!("  role            {who} = {}", role.name());
    }
    println!(
        "  operator_groups {}",
        if config.operator_groups.is_empty() {
            "(root only)".into()
        } else {
            config.operator_groups.join(", ")
        }
    );
    println!("limits: {} (profile {})", limits.source, limits.profile);
    let rows = limits.settings();
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in rows {
        println!("  {key:<width$}  {value}");
    }
}

fn cleanup(config: Config, limits: Limits) -> ExitCode {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&config.log).unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal: under systemd, stderr goes to the journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("faultd cleanup: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match rt.block_on(faultline_agent::cleanup::run(&config.state_dir, limits)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("faultd cleanup: {e:#}");
            return ExitCode::from(2);
        }
    };
    for l in &report.done {
        println!("{l}");
    }
    for l in &report.notes {
        println!("note: {l}");
    }
    if report.clean() {
        println!(
            "node clean ({} action{})",
            report.done.len(),
            if report.done.len() == 1 { "" } else { "s" }
        );
        ExitCode::SUCCESS
    } else {
        for l in &report.left {
            eprintln!("faultd cleanup: left: {l}");
        }
        eprintln!(
            "faultd cleanup: the node is NOT clean ({} problem{})",
            report.left.len(),
            if report.left.len() == 1 { "" } else { "s" }
        );
        ExitCode::FAILURE
    }
}

/// Structured logs (`tracing`) on stderr. Under systemd (`JOURNAL_STREAM` set) or when
/// stderr is not a terminal: plain `LEVEL target: message key=value` lines, no timestamp
/// (journald adds its own) and no colours. On a terminal: the human format with time
/// and colours.
fn init_logs(filter: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    let terminal = std::env::var_os("JOURNAL_STREAM").is_none() && std::io::stderr().is_terminal();
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if terminal {
        fmt.init();
    } else {
        fmt.without_time().with_ansi(false).init();
    }
}

fn main() -> ExitCode {
    // Stress workers are this binary re-executed with a hidden subcommand.
    let args: Vec<String> = std::env::args().collect();
    if let Some(sub) = args.get(1)
        && (sub == faultline_agent::sys::stress::CPU_SUBCOMMAND
            || sub == faultline_agent::sys::stress::MEM_SUBCOMMAND
            || sub == faultline_agent::sys::stress::IO_SUBCOMMAND)
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
    if let Some(Command::Cleanup) = cli.command {
        return cleanup(config, limits);
    }
    // Before any thread exists: setns(CLONE_NEWCGROUP) moves only the calling thread.
    let cgroupns = faultline_agent::sys::cgroup::join_node_namespace(std::path::Path::new("/proc"));
    init_logs(&config.log);
    match cgroupns {
        Ok(faultline_agent::sys::cgroup::CgroupNs::Node) => {}
        Ok(faultline_agent::sys::cgroup::CgroupNs::Joined { from, to }) => tracing::info!(
            from,
            to,
            "joined the node's cgroup namespace (pid 1's): cgroup paths now read as on the node"
        ),
        Err(e) => tracing::warn!(
            "cannot check or join the node's cgroup namespace ({e}); if faultd runs in a cgroup namespace of its own, containers outside it cannot be resolved"
        ),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// At 80 columns nothing wraps: every example command stays on one line, and the
    /// summary names every fault kind faultd has (no "to come").
    #[test]
    fn help_is_current_and_examples_do_not_wrap() {
        for line in HELP_AFTER.lines() {
            assert!(line.len() < 80, "{} columns: {line:?}", line.len());
        }
        let help = Cli::command().term_width(80).render_help().to_string();
        for cmd in [
            "  sudo faultd --socket /tmp/f.sock --state-dir /tmp/faultd-state\n",
            "  faultd check-config --limits ./limits.toml\n",
            "  sudo faultd cleanup --state-dir /var/lib/faultline\n",
        ] {
            assert!(help.contains(cmd), "{cmd:?} is cut in:\n{help}");
        }
        assert!(!help.contains("to come"), "{help}");
        for kind in ["kill", "pause", "network", "CPU", "memory"] {
            assert!(help.contains(kind), "{kind} missing:\n{help}");
        }
    }
}
