//! faultline-controller: the library behind `faultctl`.
//!
//! - [`client::connect`] opens a connection to a `faultd` (`unix:///path` or `http://`).
//! - [`request`] turns command-line arguments into API requests ([`request::kill_request`],
//!   [`request::pause_request`]).
//! - [`render`] turns API answers into tables and JSON.
//! - [`error::CtlError`] and [`error::exit_code_for`] are the one mapping from failures to
//!   exit codes.
//! - [`run`] executes a parsed [`cli::Cli`], writing to any `Write` (the binary passes
//!   stdout; tests pass a buffer).

pub mod cli;
pub mod client;
pub mod error;
pub mod fleet;
pub mod inventory;
pub mod kubectl;
pub mod lease;
pub mod probe;
pub mod render;
pub mod report;
pub mod request;
pub mod scenario;
pub mod sign;

use std::io::Write;

use faultline_proto::v1::agent_client::AgentClient;
use faultline_proto::v1::{
    GetLimitsRequest, GetRequest, ListRequest, RevertAllRequest, RevertRequest, StatusRequest,
    WatchRequest,
};
use serde_json::Value;
use tonic::transport::Channel;

pub use cli::{Cli, Command, InjectCommand, LeaseCommand, Output};
pub use client::{ConnectError, connect};
pub use error::{CtlError, ExitCode, exit_code_for};

fn emit(
    out: &mut (dyn Write + Send),
    format: Output,
    json: impl FnOnce() -> Value,
    table: impl FnOnce() -> String,
) -> Result<(), CtlError> {
    match format {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, &json()).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        Output::Table => out.write_all(table().as_bytes())?,
    }
    out.flush()?;
    Ok(())
}

fn parse_ttl(flag: &'static str, text: &str) -> Result<std::time::Duration, CtlError> {
    Ok(std::time::Duration::from_millis(request::duration_flag(
        flag, text,
    )?))
}

/// Runs one faultctl command against the agent named in `cli`, writing its output to
/// `out`. `watch` runs until the stream ends or Ctrl-C.
///
/// With `--inventory`, the command runs on every selected agent ([`fleet::run`]);
/// `run`, `keygen` and `report` are handled here without an agent connection of their own.
pub async fn run(cli: &Cli, out: &mut (dyn Write + Send)) -> Result<(), CtlError> {
    match &cli.command {
        Command::Run(args) => {
            if cli.select.is_some() || cli.max_nodes.is_some() || cli.max_percent.is_some() {
                return Err(CtlError::Usage(
                    "run takes its selections from the scenario: each step's select, \
                     max_nodes and max_percent; drop --select/--max-nodes/--max-percent"
                        .into(),
                ));
            }
            return scenario::run_command(cli, args, out).await;
        }
        Command::Keygen { file, force } => return sign::keygen_command(file, *force, out),
        Command::Inventory(cli::InventoryCommand::FromKubectl(args)) => {
            return kubectl::command(cli, args, out);
        }
        Command::Report(cli::ReportCommand::Verify {
            report,
            sig,
            public_key,
        }) => {
            return sign::verify_command(report, sig.as_deref(), public_key.as_deref(), out);
        }
        _ => {}
    }
    if cli.inventory.is_some() {
        return fleet::run(cli, out).await;
    }
    if cli.select.is_some() || cli.max_nodes.is_some() || cli.max_percent.is_some() {
        return Err(CtlError::Usage(
            "--select, --max-nodes and --max-percent need --inventory FILE".into(),
        ));
    }
    // Syntax errors are reported before any connection is attempted.
    let inject = inject_request(cli)?;
    let file = match cli::CtlConfig::default_path() {
        Some(p) => cli::CtlConfig::load(&p).map_err(|e| ConnectError::BadUri {
            uri: cli.agent.clone().unwrap_or_default(),
            reason: e,
        })?,
        None => cli::CtlConfig::default(),
    };
    let (agent, tls) = cli.endpoint(&file);
    let mut client = client::connect_with(&agent, &tls).await?;
    run_with(&mut client, cli, cli.output, inject, out).await
}

/// The request an `inject` command sends (None for other commands).
pub fn inject_request(cli: &Cli) -> Result<Option<faultline_proto::v1::InjectRequest>, CtlError> {
    Ok(match &cli.command {
        Command::Inject(InjectCommand::Kill(a)) => Some(request::kill_request(a)?),
        Command::Inject(InjectCommand::Pause(a)) => Some(request::pause_request(a)?),
        Command::Inject(InjectCommand::Net(a)) => Some(request::net_request(a)?),
        Command::Inject(InjectCommand::Cpu(a)) => Some(request::cpu_request(a)?),
        Command::Inject(InjectCommand::Mem(a)) => Some(request::mem_request(a)?),
        _ => None,
    })
}

/// Runs one single-agent command on `client`, writing in `fmt`.
pub(crate) async fn run_with(
    client: &mut AgentClient<Channel>,
    cli: &Cli,
    fmt: Output,
    inject: Option<faultline_proto::v1::InjectRequest>,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let now = render::now_ms();
    match &cli.command {
        Command::Status => {
            let s = client.status(StatusRequest {}).await?.into_inner();
            emit(
                out,
                fmt,
                || render::status_json(&s),
                || render::status_table(&s, now),
            )
        }
        Command::Limits => {
            let l = client.get_limits(GetLimitsRequest {}).await?.into_inner();
            emit(
                out,
                fmt,
                || render::limits_json(&l),
                || render::limits_table(&l),
            )
        }
        Command::List { all } => {
            let l = client
                .list(ListRequest {
                    include_ended: *all,
                })
                .await?
                .into_inner();
            emit(
                out,
                fmt,
                || render::faults_json(&l.faults),
                || render::faults_table(&l.faults, now),
            )
        }
        Command::Get { id } => {
            let f = client
                .get(GetRequest { id: id.clone() })
                .await?
                .into_inner();
            emit(
                out,
                fmt,
                || render::fault_json(&f),
                || render::fault_detail(&f, now),
            )
        }
        Command::Revert { id, reason } => {
            let r = client
                .revert(RevertRequest {
                    id: id.clone(),
                    reason: reason.clone().unwrap_or_default(),
                })
                .await?
                .into_inner();
            let f = r.fault.unwrap_or_default();
            emit(
                out,
                fmt,
                || serde_json::json!({"fault": render::fault_json(&f)}),
                || format!("reverted {}\n\n{}", f.id, render::fault_detail(&f, now)),
            )
        }
        Command::Abort { reason } => {
            let r = client
                .revert_all(RevertAllRequest {
                    reason: reason.clone().unwrap_or_default(),
                })
                .await?
                .into_inner();
            emit(
                out,
                fmt,
                || render::abort_json(&r),
                || render::abort_table(&r),
            )?;
            // A revert that failed is not "ok": something may still be in effect.
            match r.results.iter().find(|x| !x.ok) {
                Some(x) => Err(CtlError::Rpc(tonic::Status::internal(format!(
                    "{} of {} faults could not be reverted (first: {}: {}); see faultctl list",
                    r.results.iter().filter(|x| !x.ok).count(),
                    r.results.len(),
                    x.id,
                    x.error
                )))),
                None => Ok(()),
            }
        }
        Command::Watch { replay, hold, ttl } => {
            let held = match hold {
                true => {
                    let ttl = parse_ttl("--ttl", ttl)?;
                    let h = lease::Held::open(client, ttl, lease::holder("watch")).await?;
                    if fmt == Output::Table {
                        writeln!(
                            out,
                            "holding lease {} (ttl {})",
                            h.id(),
                            faultline_proto::units::format_duration(
                                std::time::Duration::from_millis(h.lease.ttl_ms)
                            )
                        )?;
                    } else {
                        serde_json::to_writer(&mut *out, &serde_json::json!({"lease": h.id()}))
                            .map_err(std::io::Error::from)?;
                        writeln!(out)?;
                    }
                    out.flush()?;
                    Some(h)
                }
                false => None,
            };
            let _held = held;
            let mut stream = client
                .watch(WatchRequest {
                    replay_active: *replay,
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
                    Output::Json => {
                        serde_json::to_writer(&mut *out, &render::event_json(&e))
                            .map_err(std::io::Error::from)?;
                        writeln!(out)?;
                    }
                    Output::Table => writeln!(out, "{}", render::event_line(&e))?,
                }
                out.flush()?;
            }
        }
        Command::Run(_) | Command::Keygen { .. } | Command::Report(_) | Command::Inventory(_) => {
            Err(CtlError::Usage(
                "run, keygen, report and inventory do not take an agent connection".into(),
            ))
        }
        Command::Inject(cmd) => {
            let req = inject.expect("built in run()");
            let common = match cmd {
                InjectCommand::Kill(a) => &a.common,
                InjectCommand::Pause(a) => &a.common,
                InjectCommand::Net(a) => &a.common,
                InjectCommand::Cpu(a) => &a.common,
                InjectCommand::Mem(a) => &a.common,
            };
            if common.hold {
                let ttl = parse_ttl("--hold-ttl", &common.hold_ttl)?;
                return lease::inject_held(client, req, ttl, fmt, out).await;
            }
            let r = client.inject(req).await?.into_inner();
            emit(
                out,
                fmt,
                || render::inject_json(&r),
                || render::inject_table(&r, now),
            )
        }
        Command::Lease(l) => lease::run(client, l, fmt, out).await,
    }
}
