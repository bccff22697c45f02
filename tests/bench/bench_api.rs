//! `bench-api`: latency of the agent's API over its socket, and the agent's idle memory.
//!
//! Against a running faultd (or `fake-faultd`) at `--agent URI` it makes `--n` (default
//! 1000) `Status` calls and `--n` dry-run `Inject` calls (a kill dry run selecting this
//! process's own `sleep 600` child by pid), one at a time over one connection, after
//! `--warmup` (default 50) untimed calls of each, and prints p50, p99 and max of each,
//! then the agent's VmRSS from /proc (pid from `StatusResponse.pid`) before and after.
//!
//! The floor, measured in the same run: a bare tonic server on a Unix socket of its own
//! (in a thread with its own 2-worker runtime, as faultd has) whose `Status` returns the
//! agent's first `StatusResponse` unchanged: the same stack and the same bytes on the
//! wire, no work. The last line gives Status p50 over the floor's p50.
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
    after_help = "Examples:\n  sudo target/release/faultd --socket /tmp/f.sock --state-dir /tmp/fd-state &\n  sudo target/release/bench-api --agent unix:///tmp/f.sock\n  target/debug/fake-faultd --socket /tmp/fake.sock & target/debug/bench-api --agent unix:///tmp/fake.sock --n 10 --warmup 1"
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

/// Serves [`Echo`] on a fresh Unix socket from a thread with its own runtime; returns
/// the socket's URI (the directory lives as long as the returned guard).
fn serve_echo(reply: StatusResponse) -> anyhow::Result<(String, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("echo.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket)?;
    listener.set_nonblocking(true)?;
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("echo runtime");
        rt.block_on(async move {
            let l = tokio::net::UnixListener::from_std(listener).expect("echo listener");
            let _ = tonic::transport::Server::builder()
                .add_service(pb::agent_server::AgentServer::new(Echo(reply)))
                .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(l))
                .await;
        });
    });
    Ok((format!("unix://{}", socket.display()), dir))
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
    let (echo_uri, _echo_dir) = serve_echo(status.clone())?;
    let mut echo = faultline_controller::connect(&echo_uri).await?;
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
    // Interleaved halves, so a burst of load elsewhere hits both alike.
    let mut s = Vec::with_capacity(a.n);
    let mut f = Vec::with_capacity(a.n);
    f.extend(time_status(&mut echo, a.warmup, a.n / 2).await?);
    s.extend(time_status(&mut client, a.warmup, a.n / 2).await?);
    f.extend(time_status(&mut echo, 0, a.n - a.n / 2).await?);
    s.extend(time_status(&mut client, 0, a.n - a.n / 2).await?);
    let ratio = p50(&s).as_secs_f64() / p50(&f).as_secs_f64();
    let mut d = Vec::with_capacity(a.n);
    for _ in 0..a.n {
        let t = Instant::now();
        client.inject(inject.clone()).await?;
        d.push(t.elapsed());
    }
    drop(child);
    println!("Status          {}", summary(s));
    println!(
        "echo floor      {}  (bare tonic Status over its own Unix socket)",
        summary(f)
    );
    println!("Inject dry-run  {}", summary(d));
    println!("faultd VmRSS    idle before the calls: {rss_before}");
    println!(
        "                after the calls:       {}",
        vm_rss(status.pid)
    );
    println!("Status p50 / echo floor p50 = {ratio:.2}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(&a))
}
