//! What each command does: the parsed command line becomes the controller's own types,
//! runs on the agent (or on every node of the inventory), and its answer is printed.

use std::io::{IsTerminal, Write};
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
use crate::{client, fleet, freeze, lease, sign, summary};

/// Runs one faultctl command against the agent named in `cli`, writing its output to
/// `out`. `watch` runs until the stream ends or Ctrl-C.
///
/// With `--inventory`, the command runs on every selected agent ([`fleet`]);
/// `run`, `keygen` and `report` are handled without an agent connection of their own.
pub async fn run(cli: &Cli, out: &mut (dyn Write + Send)) -> Result<(), CtlError> {
    let fmt = Format::from(cli.output);
    let page = matches!(cli.output, super::Output::Md | super::Output::Html);
    if page && !matches!(cli.command, Command::Report(ReportCommand::Summary { .. })) {
        return Err(CtlError::Usage(
            "-o md and -o html are for `report summary`; use -o table or -o json".into(),
        ));
    }
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
                sign_agent: args.sign_agent,
                sign_identity: args.sign_identity.clone(),
                inventory: cli.inventory.clone(),
                seed: cli.seed,
                format: fmt,
                freeze_file: None,
            };
            return Ok(scenario::run(&o, out).await?);
        }
        Command::Keygen {
            file,
            comment,
            force,
        } => return keygen(file, comment.as_deref(), *force, fmt, out),
        Command::Inventory(super::InventoryCommand::FromKubectl(args)) => {
            return from_kubectl(cli, args, out);
        }
        Command::Report(ReportCommand::Verify {
            report,
            sig,
            allowed_signers,
            identity,
            public_key,
        }) => {
            let trust = match (allowed_signers, public_key) {
                (Some(file), _) => sign::Trust::AllowedSigners {
                    file,
                    identity: identity.as_deref(),
                },
                (None, Some(key)) => sign::Trust::Key(key),
                (None, None) => sign::Trust::Nothing,
            };
            return verify(report, sig.as_deref(), trust, fmt, out);
        }
        Command::Report(ReportCommand::Summary {
            dirs,
            since,
            public_key,
            allowed_signers,
        }) => {
            let trust = match (public_key, allowed_signers) {
                (Some(k), _) => summary::Trust::Key(k.clone()),
                (None, Some(f)) => summary::Trust::AllowedSigners(f.clone()),
                (None, None) => summary::Trust::Integrity,
            };
            return report_summary(dirs, since.as_deref(), trust, cli.output, out);
        }
        Command::Freeze(args) => return freeze_cmd(args, fmt, out),
        Command::Thaw => return thaw_cmd(fmt, out),
        Command::Schedule(c) => return schedule_cmd(c, fmt, out).await,
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
        let how = fanout_flags(cli)?;
        let results = fleet::execute(&pick.nodes, &op, &how).await;
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
        Command::Watch { .. }
        | Command::Run(_)
        | Command::Keygen { .. }
        | Command::Report(_)
        | Command::Freeze(_)
        | Command::Thaw
        | Command::Schedule(_)
        | Command::Inventory(_) => {
            return Err(CtlError::Usage(
                "watch, run, keygen, report and inventory are not agent commands".into(),
            ));
        }
    })
}

/// `faultctl inventory from-kubectl`: reads stdin, writes the inventory to `out` (TOML,
/// or JSON with `-o json`) and each warning to stderr.
fn from_kubectl(
    cli: &Cli,
    args: &super::FromKubectlArgs,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(), crate::error::CtlError> {
    use std::io::{IsTerminal, Read};
    let usage = crate::error::CtlError::Usage;
    let pod_label = match &args.pod_label {
        None => None,
        Some(t) => match t.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Some((k.trim().to_string(), v.trim().to_string()))
            }
            _ => {
                return Err(usage(format!(
                    "--pod-label {t:?} is not KEY=VALUE (e.g. app.kubernetes.io/name=faultd)"
                )));
            }
        },
    };
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(usage(
            "inventory from-kubectl reads kubectl's JSON on stdin: pipe `kubectl get pods -n faultline -l app.kubernetes.io/name=faultd -o json` into it".into(),
        ));
    }
    let mut input = String::new();
    stdin
        .lock()
        .read_to_string(&mut input)
        .map_err(|e| usage(format!("cannot read stdin: {e}")))?;
    let opts = crate::kubectl::Options {
        port: args.port,
        ca: cli.ca.clone(),
        cert: cli.cert.clone(),
        key: cli.key.clone(),
        server_name: args.server_name.clone(),
        pod_label,
    };
    let c = crate::kubectl::convert(&input, &opts).map_err(|e| usage(e.to_string()))?;
    for w in &c.warnings {
        eprintln!("warning: {w}");
    }
    match cli.output {
        super::Output::Json => writeln!(out, "{}", c.json)?,
        _ => write!(out, "{}", c.toml)?,
    }
    out.flush()?;
    Ok(())
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
fn keygen(
    file: &Path,
    comment: Option<&str>,
    force: bool,
    fmt: Format,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let key = sign::keygen(file, force, comment)?;
    let public = key
        .to_openssh()
        .map_err(|e| CtlError::Input(e.to_string()))?;
    let fingerprint = sign::fingerprint(key.key_data());
    let comment = key.comment().as_str_lossy().to_string();
    let line = format!(
        "{} namespaces=\"{}\" {}",
        if comment.is_empty() { "WHO" } else { &comment },
        sign::NAMESPACE,
        public.trim_end_matches(&format!(" {comment}")[..]).trim()
    );
    match fmt {
        Format::Json => write_json(
            out,
            &serde_json::json!({
                "private_key": file,
                "public_key": sign::pub_path(file),
                "fingerprint": fingerprint,
                "public_key_line": public,
                "allowed_signers_line": line,
            }),
        )?,
        Format::Table => writeln!(
            out,
            "wrote private key {} (keep it private) and public key {}\n\
             fingerprint: {fingerprint}\n\
             to trust it, add this line to your allowed_signers file:\n{line}",
            file.display(),
            sign::pub_path(file).display(),
        )?,
    }
    Ok(())
}

/// `faultctl report verify REPORT`.
fn verify(
    report: &Path,
    sig: Option<&Path>,
    trust: sign::Trust<'_>,
    fmt: Format,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let s = sign::verify(report, sig, trust)?;
    if let Some(c) = s.claim_mismatch() {
        eprintln!(
            "faultctl: warning: {} says it was signed by {} ({}), but its signature is by key {}: \
             it was re-signed",
            report.display(),
            c.identity,
            c.fingerprint,
            s.fingerprint
        );
    }
    if fmt == Format::Json {
        write_json(out, &s)?;
        return Ok(());
    }
    let key = format!("{} key {}", s.key_type, s.fingerprint);
    match &s.trusted_by {
        Some(by) if matches!(trust, sign::Trust::AllowedSigners { .. }) => writeln!(
            out,
            "signature OK: {} was signed by {} with {key} (allowed by {by})",
            report.display(),
            s.identity
        )?,
        Some(by) => writeln!(
            out,
            "signature OK: {} is intact and was signed by the trusted key {} ({by})",
            report.display(),
            s.fingerprint
        )?,
        None => writeln!(
            out,
            "signature OK: {} is intact, signed by {key}; nothing says whose key that is \
             (pass --allowed-signers FILE to check who signed it)",
            report.display()
        )?,
    }
    Ok(())
}

/// `--concurrency`, `--node-timeout`, `--retries`, checked.
fn fanout_flags(cli: &Cli) -> Result<fleet::Fanout, CtlError> {
    if cli.concurrency == 0 || cli.concurrency > fleet::MAX_CONCURRENCY {
        return Err(CtlError::Usage(format!(
            "--concurrency {} is outside 1..={}",
            cli.concurrency,
            fleet::MAX_CONCURRENCY
        )));
    }
    let node_timeout = humantime::parse_duration(&cli.node_timeout).map_err(|e| {
        CtlError::Usage(format!(
            "--node-timeout {:?}: {e} (write e.g. 15s)",
            cli.node_timeout
        ))
    })?;
    if node_timeout < std::time::Duration::from_millis(100) {
        return Err(CtlError::Usage(format!(
            "--node-timeout {} is too short: give at least 100ms",
            cli.node_timeout
        )));
    }
    if cli.retries > 10 {
        return Err(CtlError::Usage(format!(
            "--retries {} is more than 10",
            cli.retries
        )));
    }
    Ok(fleet::Fanout {
        concurrency: cli.concurrency,
        node_timeout,
        retries: cli.retries,
        progress: std::io::stderr().is_terminal(),
    })
}

/// `faultctl report summary DIR...`.
fn report_summary(
    dirs: &[std::path::PathBuf],
    since: Option<&str>,
    trust: summary::Trust,
    output: super::Output,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let now = now_ms();
    let since_ms = match since {
        None => None,
        Some(t) => {
            let d = humantime::parse_duration(t).map_err(|e| {
                CtlError::Input(format!(
                    "invalid --since {t:?}: {e} (a duration back from now: 30d, 7d, 12h)"
                ))
            })?;
            Some(now.saturating_sub(d.as_millis() as u64))
        }
    };
    let o = summary::Options {
        dirs: dirs.to_vec(),
        since_ms,
        now_ms: now,
        trust,
        next_runs: crate::schedule::next_runs(),
    };
    let s = summary::summarize(&o).map_err(|e| match e {
        summary::SummaryError::Trust(v) => CtlError::Verify(v),
        e => CtlError::Input(e.to_string()),
    })?;
    for u in &s.unreadable {
        eprintln!(
            "faultctl: warning: skipped {}: {}",
            u.path.display(),
            u.error
        );
    }
    for e in &s.scenarios {
        for b in &e.signatures.failed {
            eprintln!(
                "faultctl: warning: {} FAILED verification: {}",
                b.report.display(),
                b.error
            );
        }
    }
    match output {
        super::Output::Json => write_json(out, &s)?,
        super::Output::Table => out.write_all(s.table().as_bytes())?,
        super::Output::Md => out.write_all(s.markdown().as_bytes())?,
        super::Output::Html => out.write_all(s.html().as_bytes())?,
    }
    out.flush()?;
    Ok(())
}

/// `faultctl freeze`.
fn freeze_cmd(
    args: &super::FreezeArgs,
    fmt: Format,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let path = freeze::path();
    let now = now_ms();
    let input = CtlError::Freeze;
    if args.show {
        let f = freeze::read(&path).map_err(input)?;
        let active = f.as_ref().is_some_and(|f| f.active(now));
        match fmt {
            Format::Json => write_json(
                out,
                &serde_json::json!({"file": path, "frozen": active, "freeze": f}),
            )?,
            Format::Table => match &f {
                Some(f) if active => {
                    writeln!(out, "chaos is {} ({})", f.describe(), path.display())?
                }
                Some(f) => writeln!(
                    out,
                    "not frozen: the freeze of {} ({}) ended by itself",
                    f.by, f.reason
                )?,
                None => writeln!(out, "not frozen ({} does not exist)", path.display())?,
            },
        }
        return Ok(());
    }
    let until_ms = args
        .until
        .as_deref()
        .map(|u| freeze::parse_until(u, now))
        .transpose()
        .map_err(input)?;
    let f = freeze::Freeze {
        reason: args.reason.clone().unwrap_or_default(),
        by: freeze::who(),
        at_ms: now,
        until_ms,
    };
    let before = freeze::current(&path, now).ok().flatten();
    freeze::set(&path, &f).map_err(input)?;
    match fmt {
        Format::Json => write_json(out, &serde_json::json!({"file": path, "freeze": f}))?,
        Format::Table => {
            if let Some(b) = before {
                writeln!(out, "replaced: {}", b.describe())?;
            }
            writeln!(
                out,
                "chaos is {}\nevery faultctl run on this host is skipped until then ({})",
                f.describe(),
                path.display()
            )?;
        }
    }
    Ok(())
}

/// `faultctl thaw`.
fn thaw_cmd(fmt: Format, out: &mut (dyn Write + Send)) -> Result<(), CtlError> {
    let path = freeze::path();
    let was = freeze::thaw(&path)?;
    match fmt {
        Format::Json => write_json(out, &serde_json::json!({"file": path, "thawed": was}))?,
        Format::Table => match was {
            Some(f) => writeln!(out, "thawed: chaos runs again (was {})", f.describe())?,
            None => writeln!(out, "not frozen: nothing to thaw ({})", path.display())?,
        },
    }
    Ok(())
}

/// `faultctl schedule ...`.
async fn schedule_cmd(
    c: &super::ScheduleCommand,
    fmt: Format,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    use super::ScheduleCommand as S;
    use crate::schedule;
    let now = now_ms();
    match c {
        S::Add {
            name,
            file,
            on_calendar,
            randomized_delay,
            report_dir,
            sign_key,
        } => {
            let d = schedule::add(&schedule::AddOptions {
                name: name.clone(),
                file: file.clone(),
                on_calendar: on_calendar.clone(),
                randomized_delay: randomized_delay.clone(),
                report_dir: report_dir.clone(),
                sign_key: sign_key.clone(),
                inventory: None,
            })?;
            let next = schedule::next_elapse(name);
            match fmt {
                Format::Json => write_json(
                    out,
                    &serde_json::json!({"drill": d, "timer": schedule::timer(name), "next_at_ms": next}),
                )?,
                Format::Table => writeln!(
                    out,
                    "scheduled {name}: scenario {:?} on {} (next run {}), reports to {}\n\
                     timer {} (systemctl status {}); run it now with faultctl schedule run {name}",
                    d.scenario,
                    d.on_calendar,
                    next.map_or("-".into(), |n| render::when(n, now)),
                    d.report_dir.display(),
                    schedule::timer(name),
                    schedule::timer(name),
                )?,
            }
        }
        S::List => {
            let l = schedule::list()?;
            let frozen = freeze::current(&freeze::path(), now).ok().flatten();
            match fmt {
                Format::Json => {
                    write_json(out, &serde_json::json!({"drills": l, "freeze": frozen}))?
                }
                Format::Table => {
                    if let Some(f) = &frozen {
                        writeln!(
                            out,
                            "chaos is {}: scheduled runs are skipped\n",
                            f.describe()
                        )?;
                    }
                    if l.is_empty() {
                        writeln!(out, "no drills are scheduled (faultctl schedule add)")?;
                    } else {
                        let mut t = render::Table::new(&[
                            "NAME", "SCENARIO", "CALENDAR", "NEXT RUN", "LAST RUN", "RESULT",
                        ]);
                        for d in &l {
                            t.row(vec![
                                d.drill.name.clone(),
                                d.drill.scenario.clone(),
                                d.drill.on_calendar.clone(),
                                d.next_at_ms.map_or("- (timer not active)".into(), |n| {
                                    render::when(n, now)
                                }),
                                d.last_run
                                    .as_ref()
                                    .map_or("-".into(), |r| render::when(r.started_at_ms, now)),
                                d.last_run
                                    .as_ref()
                                    .map_or("-".into(), |r| r.outcome.clone()),
                            ]);
                        }
                        out.write_all(t.render(0).as_bytes())?;
                    }
                }
            }
        }
        S::Remove { name } => {
            let d = schedule::remove(name)?;
            match fmt {
                Format::Json => write_json(out, &serde_json::json!({"removed": d}))?,
                Format::Table => writeln!(
                    out,
                    "removed {name}: {} and its copy of the scenario; the reports stay in {}",
                    schedule::timer(name),
                    d.report_dir.display()
                )?,
            }
        }
        S::Run { name } => {
            schedule::run_now(name)?;
            match fmt {
                Format::Json => write_json(out, &serde_json::json!({"ran": name}))?,
                Format::Table => writeln!(
                    out,
                    "ran {} (journalctl -u {} has its output)",
                    schedule::service(name),
                    schedule::service(name)
                )?,
            }
        }
        S::Exec { name } => {
            let o = schedule::run_options(name, fmt)?;
            return Ok(scenario::run(&o, out).await?);
        }
    }
    out.flush()?;
    Ok(())
}
