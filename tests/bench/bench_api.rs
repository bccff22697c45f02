//! `bench-api`: latency of the agent's API over its socket, and the agent's idle memory.
//!
//! Against a running faultd (or `fake-faultd`) at `--agent URI` it makes `--n` (default
//! 1000) `Status` calls and `--n` dry-run `Inject` calls (a kill dry run selecting this
//! process's own `sleep 600` child by pid), one at a time over one connection, after
//! `--warmup` (default 50) untimed calls of each, and prints p50, p99 and max of each,
//! then the agent's VmRSS from /proc (pid from `StatusResponse.pid`) before and after.
//!
//! The floor, measured in the same run: a bare tonic server on a Unix socket of its own
//! (a 2-worker runtime, as faultd has) whose `Status` returns the agent's first
//! `StatusResponse` unchanged: the same stack and the same bytes on the wire, no work.
//! It runs in a process of its own (bench-api re-executed) allowed on the same CPUs as
//! the agent, so a call crosses processes and CPUs as a call to the agent does; the
//! same server on a thread of bench-api itself is timed too (the floor before
//! 2026-12: cheaper whenever the scheduler keeps client and server on one CPU). The
//! three are timed in interleaved rounds, so drift and bursts of load hit them alike.
//! The last line gives Status p50 over each floor's p50.
//!
//! Where the kernel puts the threads moves every figure by 2x or more on a small VM;
//! pin both sides to see each case alone (docs/testing.md, "bench-api"):
//! `taskset -c 0` for faultd and bench-api (one CPU), or `-c 0` and `-c 1` (two).
//!
//! ```text
//! cargo build --release -p faultline-agent -p faultline-tests --bin faultd --bin bench-api
//! sudo target/release/faultd --socket /tmp/f.sock --state-dir /tmp/fd-state &
//! sudo target/release/bench-api --agent unix:///tmp/f.sock
//! ```
//!
//! It reports; it does not gate.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use faultline_proto::v1::{
    self as pb, FaultSpec, InjectRequest, KillSpec, Pick, ProcessSelector, StatusRequest,
    StatusResponse, fault_spec, pick,
};

/// Latency of faultd's API over its socket (Status and dry-run Inject, one at a time
/// over one connection), next to a bare tonic server's floor, and faultd's VmRSS.
/// It reports; it does not gate.
#[derive(Debug, clap::Parser)]
#[command(
    name = "bench-api",
    after_help = "The floor: the same tonic server with no work, in a process of its own on the agent's CPUs (and on a thread of bench-api); all three timed in interleaved rounds. Thread placement moves every figure 2x on a small VM: pin with taskset to compare like with like.\n\nExamples:\n  sudo target/release/faultd --socket /tmp/f.sock --state-dir /tmp/fd-state &\n  sudo target/release/bench-api --agent unix:///tmp/f.sock\n  sudo taskset -c 0 target/release/faultd --socket /tmp/f.sock --state-dir /tmp/fd-state &\n  sudo taskset -c 0 target/release/bench-api --agent unix:///tmp/f.sock   # one CPU\n  sudo taskset -c 1 target/release/bench-api --agent unix:///tmp/f.sock   # two CPUs\n  target/debug/fake-faultd --socket /tmp/fake.sock & target/debug/bench-api --agent unix:///tmp/fake.sock --n 10 --warmup 1"
)]
struct Args {
    /// The agent (faultd or fake-faultd): unix:///path/to/faultd.sock.
    #[arg(long, env = "FAULTLINE_AGENT", default_value = faultline_controller::client::DEFAULT_AGENT, value_name = "URI")]
    agent: String,
    /// Timed calls of each kind.
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// Untimed calls of each kind first.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// (Internal) serve the echo floor on this socket: the reply, an encoded
    /// StatusResponse, comes on stdin; "ready" goes to stdout once listening.
    #[arg(long, hide = true, value_name = "PATH")]
    serve_echo: Option<std::path::PathBuf>,
    /// (Internal) with --serve-echo: run on the CPUs this pid may run on.
    #[arg(long, hide = true, value_name = "PID")]
    cpus_of: Option<i32>,
}

fn args() -> anyhow::Result<Args> {
    let a = <Args as clap::Parser>::parse();
    if a.n == 0 {
        bail!("--n must be at least 1");
    }
    Ok(a)
}

/// p50, p99, max of the samples.
fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |q: usize| v[(v.len() * q / 100).min(v.len() - 1)];
    let us = |d: Duration| format!("{:>7.1}us", d.as_secs_f64() * 1e6);
    format!(
        "n={}  p50={}  p99={}  max={}",
        v.len(),
        us(at(50)),
        us(at(99)),
        us(*v.last().expect("at least one sample"))
    )
}

fn vm_rss(pid: u32) -> String {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => s
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| format!("{:.1} MiB ({kib} KiB)", kib as f64 / 1024.0))
            .unwrap_or_else(|| "unknown (no VmRSS line)".into()),
        Err(e) => format!("unavailable ({e}; is the agent in another pid namespace?)"),
    }
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_sleep() -> anyhow::Result<Child> {
    let child = Child(
        std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .context("spawn sleep")?,
    );
    let comm = format!("/proc/{}/comm", child.0.id());
    for _ in 0..400 {
        if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim_end() == "sleep") {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    bail!("the sleep child never exec'd")
}

/// The floor: answers `Status` with a fixed reply, refuses the rest.
struct Echo(StatusResponse);

type Stream<T> =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, tonic::Status>> + Send>>;

fn no<T>() -> Result<tonic::Response<T>, tonic::Status> {
    Err(tonic::Status::unimplemented("echo floor: Status only"))
}

#[tonic::async_trait]
impl pb::agent_server::Agent for Echo {
    async fn status(
        &self,
        _: tonic::Request<StatusRequest>,
    ) -> Result<tonic::Response<StatusResponse>, tonic::Status> {
        Ok(tonic::Response::new(self.0.clone()))
    }
    async fn inject(
        &self,
        _: tonic::Request<InjectRequest>,
    ) -> Result<tonic::Response<pb::InjectResponse>, tonic::Status> {
        no()
    }
    async fn get(
        &self,
        _: tonic::Request<pb::GetRequest>,
    ) -> Result<tonic::Response<pb::Fault>, tonic::Status> {
        no()
    }
    async fn list(
        &self,
        _: tonic::Request<pb::ListRequest>,
    ) -> Result<tonic::Response<pb::ListResponse>, tonic::Status> {
        no()
    }
    async fn revert(
        &self,
        _: tonic::Request<pb::RevertRequest>,
    ) -> Result<tonic::Response<pb::RevertResponse>, tonic::Status> {
        no()
    }
    async fn revert_all(
        &self,
        _: tonic::Request<pb::RevertAllRequest>,
    ) -> Result<tonic::Response<pb::RevertAllResponse>, tonic::Status> {
        no()
    }
    async fn get_limits(
        &self,
        _: tonic::Request<pb::GetLimitsRequest>,
    ) -> Result<tonic::Response<pb::Limits>, tonic::Status> {
        no()
    }
    type WatchStream = Stream<pb::Event>;
    async fn watch(
        &self,
        _: tonic::Request<pb::WatchRequest>,
    ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
        no()
    }
    async fn open_lease(
        &self,
        _: tonic::Request<pb::OpenLeaseRequest>,
    ) -> Result<tonic::Response<pb::Lease>, tonic::Status> {
        no()
    }
    async fn renew_lease(
        &self,
        _: tonic::Request<pb::RenewLeaseRequest>,
    ) -> Result<tonic::Response<pb::Lease>, tonic::Status> {
        no()
    }
    type KeepAliveStream = Stream<pb::Lease>;
    async fn keep_alive(
        &self,
        _: tonic::Request<tonic::Streaming<pb::RenewLeaseRequest>>,
    ) -> Result<tonic::Response<Self::KeepAliveStream>, tonic::Status> {
        no()
    }
    async fn close_lease(
        &self,
        _: tonic::Request<pb::CloseLeaseRequest>,
    ) -> Result<tonic::Response<pb::CloseLeaseResponse>, tonic::Status> {
        no()
    }
}

/// The echo's runtime: two workers, as faultd has.
fn echo_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("echo runtime")
}

async fn serve(listener: std::os::unix::net::UnixListener, reply: StatusResponse) {
    let l = tokio::net::UnixListener::from_std(listener).expect("echo listener");
    let _ = tonic::transport::Server::builder()
        .add_service(pb::agent_server::AgentServer::new(Echo(reply)))
        .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(l))
        .await;
}

fn bind(socket: &std::path::Path) -> anyhow::Result<std::os::unix::net::UnixListener> {
    let listener = std::os::unix::net::UnixListener::bind(socket)
        .with_context(|| format!("bind {}", socket.display()))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves [`Echo`] on a fresh Unix socket from a thread with its own runtime; returns
/// the socket's URI (the directory lives as long as the returned guard).
fn serve_echo_thread(reply: StatusResponse) -> anyhow::Result<(String, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("echo.sock");
    let listener = bind(&socket)?;
    std::thread::spawn(move || echo_runtime().block_on(serve(listener, reply)));
    Ok((format!("unix://{}", socket.display()), dir))
}

/// The `--serve-echo` side: pinned like `cpus_of`, serving until killed.
fn serve_echo_process(socket: &std::path::Path, cpus_of: Option<i32>) -> anyhow::Result<()> {
    use prost::Message;
    use std::io::{Read, Write};
    if let Some(pid) = cpus_of {
        let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(pid))
            .with_context(|| format!("the CPUs of pid {pid}"))?;
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
            .context("sched_setaffinity")?;
    }
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes)?;
    let reply = StatusResponse::decode(&bytes[..]).context("the reply on stdin")?;
    let listener = bind(socket)?;
    println!("ready");
    std::io::stdout().flush()?;
    echo_runtime().block_on(serve(listener, reply));
    Ok(())
}

/// Starts the echo in a process of its own on the agent's CPUs (where they can be read);
/// returns its URI and the guards that stop it and remove its socket.
fn spawn_echo_process(
    reply: &StatusResponse,
) -> anyhow::Result<(String, Child, tempfile::TempDir, String)> {
    use prost::Message;
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("echo.sock");
    let pinned = match reply.pid {
        0 => Err("the agent gave no pid".to_string()),
        pid => nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(pid as i32))
            .map_err(|e| e.to_string()),
    };
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("--serve-echo").arg(&socket);
    let placement = match &pinned {
        Ok(_) => {
            cmd.arg("--cpus-of").arg(reply.pid.to_string());
            "on the agent's CPUs".to_string()
        }
        Err(e) => format!("CPUs not matched: the agent's are unreadable ({e})"),
    };
    let mut child = Child(
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("start the echo process")?,
    );
    let mut stdin = child.0.stdin.take().expect("piped");
    stdin.write_all(&reply.encode_to_vec())?;
    drop(stdin);
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().expect("piped")).read_line(&mut line)?;
    if line.trim() != "ready" {
        bail!("the echo process did not start (said {line:?})");
    }
    Ok((
        format!("unix://{}", socket.display()),
        child,
        dir,
        placement,
    ))
}

async fn time_status(
    client: &mut pb::agent_client::AgentClient<tonic::transport::Channel>,
    warmup: usize,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    for _ in 0..warmup {
        client.status(StatusRequest {}).await?;
    }
    let mut s = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client.status(StatusRequest {}).await?;
        s.push(t.elapsed());
    }
    Ok(s)
}

fn p50(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

async fn bench(a: &Args) -> anyhow::Result<()> {
    let mut client = faultline_controller::connect(&a.agent).await?;
    let status = client.status(StatusRequest {}).await?.into_inner();
    let (echo_uri, _echo_proc, _echo_proc_dir, placement) = spawn_echo_process(&status)?;
    let mut echo = faultline_controller::connect(&echo_uri).await?;
    let (thread_uri, _echo_dir) = serve_echo_thread(status.clone())?;
    let mut echo_thread = faultline_controller::connect(&thread_uri).await?;
    println!(
        "bench-api: agent {} (faultd {}, pid {}, kernel {})",
        a.agent, status.agent_version, status.pid, status.kernel_release
    );
    let rss_before = vm_rss(status.pid);

    let child = spawn_sleep()?;
    let inject = InjectRequest {
        spec: Some(FaultSpec {
            kind: Some(fault_spec::Kind::Kill(KillSpec {
                selector: Some(ProcessSelector {
                    pid: Some(child.0.id() as i32),
                    ..Default::default()
                }),
                pick: Some(Pick {
                    mode: Some(pick::Mode::All(true)),
                }),
                signal: "KILL".into(),
                every_ms: 0,
            })),
        }),
        dry_run: true,
        ..Default::default()
    };
    // One check that the dry run really resolves our child, so we time the real path.
    let r = client.inject(inject.clone()).await?.into_inner();
    if !r.dry_run || r.targets.iter().all(|t| t.pid != child.0.id() as i32) {
        bail!("the dry run did not select the sleep child: {r:?}");
    }

    for _ in 0..a.warmup {
        client.inject(inject.clone()).await?;
    }
    // Interleaved rounds, so drift and bursts of load elsewhere hit all three alike.
    let mut s = Vec::with_capacity(a.n);
    let mut f = Vec::with_capacity(a.n);
    let mut t = Vec::with_capacity(a.n);
    time_status(&mut echo, a.warmup, 0).await?;
    time_status(&mut echo_thread, a.warmup, 0).await?;
    time_status(&mut client, a.warmup, 0).await?;
    const ROUNDS: usize = 10;
    for r in 0..ROUNDS {
        let k = a.n * (r + 1) / ROUNDS - a.n * r / ROUNDS;
        f.extend(time_status(&mut echo, 0, k).await?);
        s.extend(time_status(&mut client, 0, k).await?);
        t.extend(time_status(&mut echo_thread, 0, k).await?);
    }
    let ratio = p50(&s).as_secs_f64() / p50(&f).as_secs_f64();
    let ratio_thread = p50(&s).as_secs_f64() / p50(&t).as_secs_f64();
    let mut d = Vec::with_capacity(a.n);
    for _ in 0..a.n {
        let t = Instant::now();
        client.inject(inject.clone()).await?;
        d.push(t.elapsed());
    }
    drop(child);
    println!("Status          {}", summary(s));
    println!(
        "echo floor      {}  (bare tonic Status, a process of its own, {placement})",
        summary(f)
    );
    println!(
        "echo in-process {}  (the same server on a thread of bench-api)",
        summary(t)
    );
    println!("Inject dry-run  {}", summary(d));
    println!("faultd VmRSS    idle before the calls: {rss_before}");
    println!(
        "                after the calls:       {}",
        vm_rss(status.pid)
    );
    println!(
        "Status p50 / echo floor p50 = {ratio:.2}  (over the in-process echo: {ratio_thread:.2})"
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    if let Some(socket) = &a.serve_echo {
        return serve_echo_process(socket, a.cpus_of);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(&a))
}
