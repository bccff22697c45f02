//! The light agent simulator: one process serving N agents, each on its own Unix socket
//! or its own loopback TCP port with mutual TLS, for driving `faultctl` at fleets of
//! 1,000 and 10,000 without 10,000 `faultd` processes.
//!
//! Each simulated agent is a real `faultline.v1.Agent` server over faultd's own engine
//! ([`Engine`] with [`FakeEffects`]): its faults, leases and limits are its own, and the
//! engine's code decides what faultd's would (the limits and policy checks, dry runs that
//! stop after the same checks, capacity, conflicts, leases that lapse at their deadline
//! and revert their faults, abort). What it does not model: the kernel (no change is
//! made; a process fault "targets" one fake process whatever its selector says), the
//! journal and crash recovery, the health guard, roles (any client certificate the CA
//! signed is an operator; on a socket every caller is), the audit log and metrics. See
//! docs/testing.md.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use faultline_agent::api::convert;
use faultline_agent::engine::Engine;
use faultline_agent::engine::testing::FakeEffects;
use faultline_agent::error::FaultError;
use faultline_agent::limits::Limits;
use faultline_proto::v1 as pb;
use faultline_proto::v1::agent_server::{Agent, AgentServer};
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

/// How many lifecycle events a simulated agent's `Watch` may fall behind by (faultd keeps
/// 1024; the channel's slots are allocated up front, per agent).
const SIM_EVENTS: usize = 16;

/// One simulated agent: its own engine (faults, leases, limits).
#[derive(Clone)]
pub struct SimAgent {
    pub name: String,
    pub engine: Engine<FakeEffects>,
}

impl SimAgent {
    pub fn new(name: String, limits: Limits) -> SimAgent {
        SimAgent {
            name,
            engine: Engine::with_effects_and_events(FakeEffects::new(limits), SIM_EVENTS),
        }
    }
}

/// The files a TLS agent serves with: its certificate and key, and the CA its clients'
/// certificates must be signed by.
#[derive(Debug, Clone)]
pub struct SimTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

/// A running simulated fleet; dropping it stops every server.
pub struct Sim {
    pub agents: Vec<SimAgent>,
    /// Each agent's address, in order: `unix:///DIR/sim-N.sock` or `https://127.0.0.1:P`.
    pub addresses: Vec<String>,
    stop: watch::Sender<bool>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Sim {
    /// Starts `n` agents named `node-00001`.. with `limits` each: on Unix sockets in `dir`,
    /// or with `tls`, on ports of 127.0.0.1. Must run inside a Tokio runtime.
    pub async fn start(
        n: usize,
        dir: &Path,
        limits: &Limits,
        tls: Option<&SimTls>,
    ) -> anyhow::Result<Sim> {
        Sim::start_from(1, n, dir, limits, tls).await
    }

    /// [`Sim::start`] with agents numbered from `first` (several simulator processes can
    /// share one fleet when one process may not hold enough open files).
    pub async fn start_from(
        first: usize,
        n: usize,
        dir: &Path,
        limits: &Limits,
        tls: Option<&SimTls>,
    ) -> anyhow::Result<Sim> {
        let (stop, rx) = watch::channel(false);
        let tls_config = match tls {
            Some(t) => {
                let read =
                    |p: &PathBuf| std::fs::read(p).with_context(|| format!("read {}", p.display()));
                Some(
                    ServerTlsConfig::new()
                        .identity(Identity::from_pem(read(&t.cert)?, read(&t.key)?))
                        .client_ca_root(Certificate::from_pem(read(&t.client_ca)?)),
                )
            }
            None => None,
        };
        let width = (first + n).to_string().len().max(5);
        let mut sim = Sim {
            agents: Vec::with_capacity(n),
            addresses: Vec::with_capacity(n),
            stop,
        };
        for i in first..first + n {
            let agent = SimAgent::new(format!("node-{i:0width$}"), limits.clone());
            let svc = AgentServer::new(agent.clone());
            let mut rx = rx.clone();
            let shutdown = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            let address = match &tls_config {
                None => {
                    let path = dir.join(format!("sim-{i}.sock"));
                    let _ = std::fs::remove_file(&path);
                    let l = tokio::net::UnixListener::bind(&path)
                        .with_context(|| format!("bind {}", path.display()))?;
                    let incoming = tokio_stream::wrappers::UnixListenerStream::new(l);
                    tokio::spawn(
                        Server::builder()
                            .add_service(svc)
                            .serve_with_incoming_shutdown(incoming, shutdown),
                    );
                    format!("unix://{}", path.display())
                }
                Some(cfg) => {
                    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .context("bind 127.0.0.1:0")?;
                    let port = l.local_addr()?.port();
                    let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
                    tokio::spawn(
                        Server::builder()
                            .tls_config(cfg.clone())?
                            .add_service(svc)
                            .serve_with_incoming_shutdown(incoming, shutdown),
                    );
                    format!("https://127.0.0.1:{port}")
                }
            };
            sim.agents.push(agent);
            sim.addresses.push(address);
        }
        Ok(sim)
    }

    /// An inventory naming every agent (`role=sim`, zones a/b/c by turn); `defaults` is
    /// the body of its `[defaults]` table (TLS files), or empty.
    pub fn inventory(&self, defaults: &str) -> String {
        let mut s = String::with_capacity(self.agents.len() * 120);
        if !defaults.is_empty() {
            s += "[defaults]\n";
            s += defaults;
            s += "\n";
        }
        for (i, (a, addr)) in self.agents.iter().zip(&self.addresses).enumerate() {
            s += &format!(
                "[[agents]]\nname = \"{}\"\naddress = \"{addr}\"\nlabels = {{ role = \"sim\", zone = \"{}\" }}\n",
                a.name,
                ["a", "b", "c"][i % 3]
            );
        }
        s
    }

    /// Leases that lapsed, over every agent.
    pub fn lease_lapses(&self) -> u64 {
        self.agents.iter().map(|a| a.engine.lease_lapses()).sum()
    }

    /// Live faults, over every agent.
    pub fn active_faults(&self) -> usize {
        self.agents.iter().map(|a| a.engine.list(false).len()).sum()
    }
}

fn now_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn caller<T>(req: &Request<T>) -> String {
    match req.remote_addr() {
        Some(a) => format!("simulated client {a}"),
        None => "simulated client on the socket".to_string(),
    }
}

fn invalid(field: &str) -> Status {
    Status::from(FaultError::invalid(field, "missing"))
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl Agent for SimAgent {
    async fn inject(
        &self,
        req: Request<pb::InjectRequest>,
    ) -> Result<Response<pb::InjectResponse>, Status> {
        let who = caller(&req);
        let r = convert::inject_request(req.get_ref(), who)?;
        let dry = r.dry_run;
        let out = self.engine.inject(r).await?;
        Ok(Response::new(convert::inject_response(&out, dry)))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::Fault>, Status> {
        let id = &req.get_ref().id;
        if id.is_empty() {
            return Err(invalid("id"));
        }
        Ok(Response::new(convert::fault(&self.engine.get(id)?)))
    }

    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let faults = self.engine.list(req.get_ref().include_ended);
        Ok(Response::new(pb::ListResponse {
            faults: faults.iter().map(convert::fault).collect(),
        }))
    }

    async fn revert(
        &self,
        req: Request<pb::RevertRequest>,
    ) -> Result<Response<pb::RevertResponse>, Status> {
        let r = req.get_ref();
        if r.id.is_empty() {
            return Err(invalid("id"));
        }
        let reason = if r.reason.is_empty() {
            format!("reverted by {}", caller(&req))
        } else {
            r.reason.clone()
        };
        let rec = self.engine.revert(&r.id, &reason).await?;
        Ok(Response::new(pb::RevertResponse {
            fault: Some(convert::fault(&rec)),
        }))
    }

    async fn revert_all(
        &self,
        req: Request<pb::RevertAllRequest>,
    ) -> Result<Response<pb::RevertAllResponse>, Status> {
        let start = std::time::Instant::now();
        let reason = if req.get_ref().reason.is_empty() {
            format!("by {}", caller(&req))
        } else {
            req.get_ref().reason.clone()
        };
        let r = self.engine.revert_all(&reason).await;
        Ok(Response::new(pb::RevertAllResponse {
            results: convert::revert_results(r),
            elapsed_us: start.elapsed().as_micros() as u64,
        }))
    }

    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let kinds = (1..)
            .map_while(|k| pb::FaultKind::try_from(k).ok())
            .map(|k| pb::KindSupport {
                kind: k as i32,
                supported: true,
                detail: "simulated (no kernel change is made)".into(),
            })
            .collect();
        Ok(Response::new(pb::StatusResponse {
            agent_version: format!("{} (simulated)", env!("CARGO_PKG_VERSION")),
            kernel_release: "simulated".into(),
            hostname: self.name.clone(),
            cgroup_mode: "none".into(),
            kinds,
            active: self.engine.list(false).iter().map(convert::fault).collect(),
            started_at_ms: now_ms(self.engine.started_at()),
            pid: std::process::id(),
            limits_source: self.engine.limits().source.clone(),
            // What faultd would spare, from this agent's limits (a simulated agent has
            // no TCP listen port of its own to add).
            protected_traffic: faultline_agent::sys::tc::Exempt {
                ports: self.engine.limits().network.protected_ports.clone(),
                cidrs: self.engine.limits().network.protected_cidrs.clone(),
                flows: Vec::new(),
            }
            .to_string(),
        }))
    }

    async fn get_limits(
        &self,
        _req: Request<pb::GetLimitsRequest>,
    ) -> Result<Response<pb::Limits>, Status> {
        Ok(Response::new(convert::limits(self.engine.limits())))
    }

    async fn open_lease(
        &self,
        req: Request<pb::OpenLeaseRequest>,
    ) -> Result<Response<pb::Lease>, Status> {
        let r = req.get_ref();
        let holder = if r.holder.is_empty() {
            caller(&req)
        } else {
            format!("{} ({})", r.holder, caller(&req))
        };
        let l = self
            .engine
            .open_lease(Duration::from_millis(r.ttl_ms), &holder)?;
        Ok(Response::new(convert::lease(&l)))
    }

    async fn renew_lease(
        &self,
        req: Request<pb::RenewLeaseRequest>,
    ) -> Result<Response<pb::Lease>, Status> {
        let l = self.engine.renew_lease(&req.get_ref().id)?;
        Ok(Response::new(convert::lease(&l)))
    }

    type KeepAliveStream = faultline_agent::api::LeaseStream;

    async fn keep_alive(
        &self,
        req: Request<tonic::Streaming<pb::RenewLeaseRequest>>,
    ) -> Result<Response<Self::KeepAliveStream>, Status> {
        Ok(Response::new(faultline_agent::api::lease_stream(
            self.engine.clone(),
            req.into_inner(),
        )))
    }

    async fn close_lease(
        &self,
        req: Request<pb::CloseLeaseRequest>,
    ) -> Result<Response<pb::CloseLeaseResponse>, Status> {
        let r = req.get_ref();
        let out = self.engine.close_lease(&r.id, r.revert_faults).await?;
        Ok(Response::new(pb::CloseLeaseResponse {
            results: convert::revert_results(out),
        }))
    }

    type WatchStream = EventStream;

    async fn watch(
        &self,
        _req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let rx = self.engine.subscribe();
        let live = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|r| match r {
            Ok(e) => Some(Ok(convert::event(&e))),
            Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => Some(Err(
                Status::data_loss(format!("watch fell behind and missed {n} events")),
            )),
        });
        Ok(Response::new(Box::pin(live) as EventStream))
    }
}
