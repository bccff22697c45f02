//! What each command does: the parsed command line becomes the controller's own types,
//! runs on the agent (or on every node of the inventory), and its answer is printed.

use std::io::Write;
use std::path::Path;

use faultline_proto::v1::WatchRequest;

use super::{Cli, Command, LeaseCommand, ReportCommand, ReportFormat};
use crate::answer::Answer;
use crate::clock::now_ms;
use crate::config::CtlConfig;
use crate::error::CtlError;
use crate::op::{self, Op};
use crate::render::{self, Format, write_json, write_json_line};
use crate::request::Period;
use crate::scenario::{self, RunOptions};
use crate::{client, fleet, lease, sign};

/// Runs one faultctl command against the agent named in `cli`, writing its output to
/// `out`. `watch` runs until the stream ends or Ctrl-C.
///
/// With `--inventory`, the command runs on every selected agent ([`fleet`]);
/// `run`, `keygen` and `report` are handled without an agent connection of their own.
pub async fn run(cli: &Cli, out: &mut (dyn Write + Send)) -> Result<(), CtlError> {
    let fmt = Format::from(cli.output);
    let fleet_flags = cli.select.is_some() || cli.max_nodes.is_some() || cli.max_percent.is_some();
    match &cli.command {
        Command::Run(args) => {
            if fleet_flags {
                return Err(CtlError::Usage(
                    "run takes its selections from the scenario: each step's select, \
                     max_nodes and max_percent; drop --select/--max-nodes/--max-percent"
                        .into(),
                ));
            }
            let o = RunOptions {
                file: args.file.clone(),
                dry_run: args.dry_run,
                report_dir: args.report_dir.clone(),
                report_formats: ReportFormat::files(&args.report_format),
                sign_key: args.sign_key.clone(),
                inventory: cli.inventory.clone(),
                seed: cli.seed,
                format: fmt,
            };
            return Ok(scenario::run(&o, out).await?);
        }
        Command::Keygen { file, force } => return keygen(file, *force, out),
        Command::Report(ReportCommand::Verify {
            report,
            sig,
            public_key,
        }) => return verify(report, sig.as_deref(), public_key.as_deref(), out),
        _ => {}
    }
    if let Some(inventory) = &cli.inventory {
        if matches!(cli.command, Command::Watch { .. }) {
            return Err(CtlError::Usage(
                "watch follows one agent; give --agent instead of --inventory".into(),
            ));
        }
        // Bad input is refused before any agent is spoken to.
        let op = op_of(&cli.command)?;
        let selection = fleet::Selection {
            inventory: inventory.clone(),
            select: cli.select.clone().unwrap_or_default(),
            max_nodes: cli.max_nodes,
            max_percent: cli.max_percent,
            seed: cli.seed,
        };
        let pick = fleet::targets(&selection)?;
        eprintln!("faultctl: {}", pick.describe());
        let results = fleet::execute(&pick.nodes, &op).await;
        match fmt {
            Format::Json => write_json(out, &results)?,
            Format::Table => out.write_all(render::answer::fleet_table(&results).as_bytes())?,
        }
        out.flush()?;
        return fleet::outcome(&results);
    }
    if fleet_flags {
        return Err(CtlError::Usage(
            "--select, --max-nodes and --max-percent need --inventory FILE".into(),
        ));
    }
    if let Command::Watch { replay, hold, ttl } = &cli.command {
        let hold = match hold {
            true => Some(ttl_flag("--ttl", ttl)?),
            false => None,
        };
        let mut client = connect(cli).await?;
        return watch(&mut client, *replay, hold, fmt, out).await;
    }
    let op = op_of(&cli.command)?;
    let mut client = connect(cli).await?;
    if let Op::Inject {
        inject,
        hold: Some(ttl),
    } = &op
    {
        return inject_held(&mut client, inject, *ttl, fmt, out).await;
    }
    let answer = op::execute(&mut client, &op).await?;
    emit(out, fmt, &answer)?;
    match answer.failed_reverts() {
        Some(why) => Err(CtlError::RevertFailed(why)),
        None => Ok(()),
    }
}

/// The agent's address and TLS files: flags and environment, then the settings file.
async fn connect(
    cli: &Cli,
) -> Result<faultline_proto::v1::agent_client::AgentClient<tonic::transport::Channel>, CtlError> {
    let file = match CtlConfig::default_path() {
        Some(p) => CtlConfig::load(&p).map_err(|e| client::ConnectError::BadUri {
            uri: cli.agent.clone().unwrap_or_default(),
            reason: e,
        })?,
        None => CtlConfig::default(),
    };
    let (agent, tls) = cli.endpoint(&file);
    Ok(client::connect_with(&agent, &tls).await?)
}

/// The command as an [`Op`]; bad input is refused naming the flag.
fn op_of(cmd: &Command) -> Result<Op, CtlError> {
    Ok(match cmd {
        Command::Status => Op::Status,
        Command::Limits => Op::Limits,
        Command::List { all } => Op::List { all: *all },
        Command::Get { id } => Op::Get { id: id.clone() },
        Command::Revert { id, reason } => Op::Revert {
            id: id.clone(),
            reason: reason.clone().unwrap_or_default(),
        },
        Command::Abort { reason } => Op::Abort {
            reason: reason.clone().unwrap_or_default(),
        },
        Command::Inject(i) => {
            let call = i.request()?;
            Op::Inject {
                inject: call.inject,
                hold: call.hold,
            }
        }
        Command::Lease(LeaseCommand::Open { ttl }) => Op::OpenLease {
            ttl: ttl_flag("--ttl", ttl)?,
        },
        Command::Lease(LeaseCommand::Renew { id }) => Op::RenewLease { id: id.clone() },
        Command::Lease(LeaseCommand::Close { id, revert }) => Op::CloseLease {
            id: id.clone(),
            revert: *revert,
        },
        Command::Watch { .. } | Command::Run(_) | Command::Keygen { .. } | Command::Report(_) => {
            return Err(CtlError::Usage(
                "watch, run, keygen and report are not agent commands".into(),
            ));
        }
    })
}

/// A lease TTL flag.
fn ttl_flag(flag: &str, text: &str) -> Result<Period, CtlError> {
    Period::parse(text).map_err(|r| CtlError::Input(format!("invalid {flag}: {r}")))
}

fn emit(out: &mut (dyn Write + Send), fmt: Format, a: &Answer) -> Result<(), CtlError> {
    match fmt {
        Format::Json => write_json(out, a)?,
        Format::Table => out.write_all(render::answer_table(a, now_ms()).as_bytes())?,
    }
    out.flush()?;
    Ok(())
}

/// `faultctl inject ... --hold`: opens a lease, injects bound to it, prints the answer,
/// renews while the fault lives; Ctrl-C or SIGTERM reverts it. Returns when it ended.
async fn inject_held(
    client: &mut faultline_proto::v1::agent_client::AgentClient<tonic::transport::Channel>,
    inject: &crate::request::Inject,
    ttl: Period,
    fmt: Format,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let mut interrupt = lease::Interrupt::catch()?;
    let (r, held) = lease::inject_held(client, inject.to_proto(), ttl.as_duration()).await?;
    match fmt {
        Format::Json => write_json_line(out, &r)?,
        Format::Table => {
            out.write_all(render::answer::inject_table(&r, now_ms()).as_bytes())?;
            out.write_all(render::answer::holding_line(held.id(), ttl.as_millis()).as_bytes())?;
        }
    }
    out.flush()?;
    let end = lease::hold(client, held, r.fault.map(|f| f.id), &mut interrupt).await?;
    out.write_all(render::answer::hold_end_text(&end).as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `faultctl watch`: events as they happen, until the stream ends or Ctrl-C; with a
/// held lease (its id printed first).
async fn watch(
    client: &mut faultline_proto::v1::agent_client::AgentClient<tonic::transport::Channel>,
    replay: bool,
    hold: Option<Period>,
    fmt: Format,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let _held = match hold {
        Some(ttl) => {
            let h = lease::Held::open(client, ttl.as_duration(), lease::holder("watch")).await?;
            match fmt {
                Format::Table => {
                    out.write_all(render::answer::watch_lease_line(&h.lease).as_bytes())?
                }
                Format::Json => write_json_line(out, &serde_json::json!({"lease": h.id()}))?,
            }
            out.flush()?;
            Some(h)
        }
        None => None,
    };
    let mut stream = client
        .watch(WatchRequest {
            replay_active: replay,
        })
        .await?
        .into_inner();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let next = tokio::select! {
            m = stream.message() => m?,
            _ = &mut ctrl_c => return Ok(()),
        };
        let Some(e) = next else { return Ok(()) };
        match fmt {
            Format::Json => write_json_line(out, &e)?,
            Format::Table => writeln!(out, "{}", render::answer::event_line(&e))?,
        }
        out.flush()?;
    }
}

/// `faultctl keygen FILE`.
fn keygen(file: &Path, force: bool, out: &mut (dyn Write + Send)) -> Result<(), CtlError> {
    let vk = sign::keygen(file, force)?;
    writeln!(
        out,
        "wrote secret key {} (keep it private) and public key {}\npublic key: {}",
        file.display(),
        sign::pub_path(file).display(),
        sign::public_key_text(&vk)
    )?;
    Ok(())
}

/// `faultctl report verify REPORT`.
fn verify(
    report: &Path,
    sig: Option<&Path>,
    public_key: Option<&Path>,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let trusted = public_key.map(sign::load_public_key).transpose()?;
    let signer = sign::verify_file(report, sig, trusted.as_ref())?;
    if trusted.is_some() {
        writeln!(
            out,
            "signature OK: {} is intact and was signed by the trusted key {signer}",
            report.display()
        )?;
    } else {
        writeln!(
            out,
            "signature OK: {} is intact, signed by key {signer} \
             (pass --public-key to check who signed it)",
            report.display()
        )?;
    }
    Ok(())
}
