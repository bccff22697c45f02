//! A scriptable in-process fake of `faultd`'s gRPC API, for testing `faultctl` and its
//! library without the real agent (and for running `bench-api` before it exists).
//!
//! It implements the generated `agent_server::Agent` trait and serves it on a Unix
//! socket ([`FakeAgent::serve_unix`]) or TCP ([`FakeAgent::serve_tcp`]). Process
//! selection is real but minimal: only `--pid` is resolved (from `/proc`); pid 1 is
//! excluded, as faultd excludes it. A test scripts errors with [`FakeState::fail_next`]
//! and events with [`FakeState::events`] / [`FakeState::watch_limit`]. Leases are
//! recorded, renewed and closed (closing can revert bound faults) but never lapse on
//! their own: the fake runs no timers.

use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use faultline_proto::v1::agent_server::{Agent, AgentServer};
use faultline_proto::v1::{
    CloseLeaseRequest, CloseLeaseResponse, Event, EventType, ExcludedProcess, Fault, FaultKind,
    FaultState, GetLimitsRequest, GetRequest, InjectRequest, InjectResponse, KindSupport, Lease,
    Limits, ListRequest, ListResponse, OpenLeaseRequest, ProcessTarget, RenewLeaseRequest,
    RevertAllRequest, RevertAllResponse, RevertRequest, RevertResponse, RevertResult,
    StatusRequest, StatusResponse, WatchRequest, fault_spec,
};
use tokio::sync::{broadcast, oneshot};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

/// What the fake remembers and what a test scripts.
#[derive(Debug, Default)]
pub struct FakeState {
    /// Every fault it was asked to inject (not dry runs), active or ended.
    pub faults: Vec<Fault>,
    /// Returned (once) by the next call, whatever it is.
    pub fail_next: Option<Status>,
    /// Events sent first by every `Watch`.
    pub events: Vec<Event>,
    /// `Watch` ends after this many events (None: it runs until the client leaves).
    pub watch_limit: Option<usize>,
    /// The last `InjectRequest` received (dry runs included).
    pub last_inject: Option<InjectRequest>,
    /// How many calls were served.
    pub calls: u64,
    /// Open leases.
    pub leases: Vec<Lease>,
}

/// The fake agent. Clone it freely: clones share the state.
#[derive(Clone, Debug)]
pub struct FakeAgent {
    /// The shared state; lock it to script or inspect.
    pub state: Arc<Mutex<FakeState>>,
    live: broadcast::Sender<Event>,
    started_at_ms: u64,
}

/// A running fake server; dropping it stops the server.
#[derive(Debug)]
pub struct FakeServer {
    /// The agent it serves (share its state).
    pub agent: FakeAgent,
    /// The `--agent` address: `unix:///...` or `http://...`.
    pub uri: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn process(pid: i32) -> Option<ProcessTarget> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap_or(0);
    let cmdline = String::from_utf8_lossy(&cmdline)
        .trim_end_matches('\0')
        .replace('\0', " ");
    Some(ProcessTarget {
        pid,
        comm: comm.trim_end().to_string(),
        cmdline,
        uid,
    })
}

impl Default for FakeAgent {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeAgent {
    /// A fake with no faults and nothing scripted.
    pub fn new() -> Self {
        FakeAgent {
            state: Arc::new(Mutex::new(FakeState::default())),
            live: broadcast::channel(256).0,
            started_at_ms: now_ms(),
        }
    }

    /// Serves it on a new Unix socket at `path`.
    pub async fn serve_unix(self, path: &Path) -> std::io::Result<FakeServer> {
        let listener = tokio::net::UnixListener::bind(path)?;
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let (stop, stopped) = oneshot::channel::<()>();
        let svc = AgentServer::new(self.clone());
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(FakeServer {
            agent: self,
            uri: format!("unix://{}", path.display()),
            stop: Some(stop),
        })
    }

    /// Serves it over plaintext TCP on 127.0.0.1 (a free port).
    pub async fn serve_tcp(self) -> std::io::Result<FakeServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let (stop, stopped) = oneshot::channel::<()>();
        let svc = AgentServer::new(self.clone());
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(FakeServer {
            agent: self,
            uri: format!("http://{addr}"),
            stop: Some(stop),
        })
    }

    /// Counts the call and returns the scripted failure, if any.
    fn enter(&self) -> Result<std::sync::MutexGuard<'_, FakeState>, Status> {
        let mut st = self.state.lock().expect("fake state lock");
        st.calls += 1;
        match st.fail_next.take() {
            Some(s) => Err(s),
            None => Ok(st),
        }
    }

    fn publish(&self, r#type: EventType, f: &Fault, message: String) {
        let _ = self.live.send(Event {
            r#type: r#type as i32,
            at_ms: now_ms(),
            fault_id: f.id.clone(),
            kind: f.kind,
            message,
            fault: Some(f.clone()),
            requested_by: f.requested_by.clone(),
        });
    }
}

fn end(f: &mut Fault, reason: &str) {
    f.state = FaultState::Reverted as i32;
    f.ended_at_ms = now_ms();
    f.end_reason = reason.to_string();
}

fn renew(st: &mut FakeState, id: &str) -> Result<Lease, Status> {
    let l = st
        .leases
        .iter_mut()
        .find(|l| l.id == id)
        .ok_or_else(|| Status::not_found(format!("no lease {id:?}")))?;
    l.expires_at_ms = now_ms() + l.ttl_ms;
    Ok(l.clone())
}

type LeaseStream = Pin<Box<dyn Stream<Item = Result<Lease, Status>> + Send + 'static>>;

type EventStream = Pin<Box<dyn Stream<Item = Result<Event, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Agent for FakeAgent {
    async fn inject(
        &self,
        req: Request<InjectRequest>,
    ) -> Result<Response<InjectResponse>, Status> {
        let req = req.into_inner();
        let mut st = self.enter()?;
        st.last_inject = Some(req.clone());
        let (kind, selector, verb) = match req.spec.as_ref().and_then(|s| s.kind.as_ref()) {
            Some(fault_spec::Kind::Kill(k)) => (
                FaultKind::Kill,
                k.selector.clone(),
                format!("send SIG{}", k.signal),
            ),
            Some(fault_spec::Kind::Pause(p)) => {
                (FaultKind::Pause, p.selector.clone(), "stop".to_string())
            }
            Some(
                fault_spec::Kind::Network(_)
                | fault_spec::Kind::Cpu(_)
                | fault_spec::Kind::Memory(_)
                | fault_spec::Kind::DiskFill(_)
                | fault_spec::Kind::IoLimit(_)
                | fault_spec::Kind::IoStress(_),
            ) => {
                return Err(Status::failed_precondition(
                    "the fake agent does only process faults",
                ));
            }
            None => return Err(Status::invalid_argument("spec: a fault kind is required")),
        };
        let pid = selector
            .and_then(|s| s.pid)
            .ok_or_else(|| Status::invalid_argument("selector: the fake resolves only pid"))?;
        let target = process(pid)
            .ok_or_else(|| Status::not_found(format!("no process matches pid={pid}")))?;
        if pid == 1 {
            return Err(Status::permission_denied("pid 1 (systemd) is protected"));
        }
        let excluded = match process(1) {
            Some(p) => vec![ExcludedProcess {
                process: Some(p),
                reason: "pid 1 is never selected".into(),
            }],
            None => vec![],
        };
        let plan = format!("{verb} to pid {pid} ({})", target.comm);
        if req.dry_run {
            return Ok(Response::new(InjectResponse {
                container: None,
                fault: None,
                dry_run: true,
                targets: vec![target],
                excluded,
                plan,
            }));
        }
        let now = now_ms();
        let fault = Fault {
            id: format!("f-{}", st.faults.len() + 1),
            kind: kind as i32,
            spec: req.spec.clone(),
            state: FaultState::Active as i32,
            labels: req.labels.clone(),
            requested_by: "uid=0(root) via fake".into(),
            created_at_ms: now,
            expires_at_ms: if req.duration_ms > 0 {
                now + req.duration_ms
            } else {
                0
            },
            description: plan.clone(),
            undo: "nothing (fake)".into(),
            targets: vec![target.clone()],
            duration_ms: req.duration_ms,
            lease_id: req.lease_id.clone(),
            ..Default::default()
        };
        if !req.lease_id.is_empty() {
            let lease = st
                .leases
                .iter_mut()
                .find(|l| l.id == req.lease_id)
                .ok_or_else(|| Status::not_found(format!("no lease {:?}", req.lease_id)))?;
            lease.fault_ids.push(fault.id.clone());
        }
        st.faults.push(fault.clone());
        drop(st);
        self.publish(EventType::Injected, &fault, plan.clone());
        Ok(Response::new(InjectResponse {
            container: None,
            fault: Some(fault),
            dry_run: false,
            targets: vec![target],
            excluded,
            plan,
        }))
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<Fault>, Status> {
        let id = req.into_inner().id;
        let st = self.enter()?;
        st.faults
            .iter()
            .find(|f| f.id == id)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("no fault {id:?} (see faultctl list --all)")))
    }

    async fn list(&self, req: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let all = req.into_inner().include_ended;
        let st = self.enter()?;
        let faults = st
            .faults
            .iter()
            .filter(|f| all || f.state == FaultState::Active as i32)
            .cloned()
            .collect();
        Ok(Response::new(ListResponse { faults }))
    }

    async fn revert(
        &self,
        req: Request<RevertRequest>,
    ) -> Result<Response<RevertResponse>, Status> {
        let req = req.into_inner();
        let mut st = self.enter()?;
        let f = st
            .faults
            .iter_mut()
            .find(|f| f.id == req.id && f.state == FaultState::Active as i32)
            .ok_or_else(|| Status::not_found(format!("no active fault {:?}", req.id)))?;
        end(f, &req.reason);
        let f = f.clone();
        drop(st);
        self.publish(EventType::Reverted, &f, format!("reverted: {}", req.reason));
        Ok(Response::new(RevertResponse { fault: Some(f) }))
    }

    async fn revert_all(
        &self,
        req: Request<RevertAllRequest>,
    ) -> Result<Response<RevertAllResponse>, Status> {
        let reason = req.into_inner().reason;
        let mut st = self.enter()?;
        let mut results = vec![];
        for f in st
            .faults
            .iter_mut()
            .filter(|f| f.state == FaultState::Active as i32)
        {
            end(f, &reason);
            results.push(RevertResult {
                id: f.id.clone(),
                ok: true,
                error: String::new(),
            });
        }
        Ok(Response::new(RevertAllResponse {
            results,
            elapsed_us: 1500,
        }))
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let st = self.enter()?;
        let active = st
            .faults
            .iter()
            .filter(|f| f.state == FaultState::Active as i32)
            .cloned()
            .collect();
        let kinds = [FaultKind::Kill, FaultKind::Pause, FaultKind::Network]
            .into_iter()
            .map(|k| KindSupport {
                kind: k as i32,
                supported: k != FaultKind::Network,
                detail: if k == FaultKind::Network {
                    "not in the fake".into()
                } else {
                    "pidfd".into()
                },
            })
            .collect();
        Ok(Response::new(StatusResponse {
            agent_version: "0.0.0-fake".into(),
            kernel_release: "fake".into(),
            hostname: "fakehost".into(),
            cgroup_mode: "hybrid".into(),
            kinds,
            active,
            started_at_ms: self.started_at_ms,
            pid: std::process::id(),
            limits_source: "embedded defaults".into(),
            protected_traffic: "port 22".into(),
        }))
    }

    async fn get_limits(
        &self,
        _req: Request<GetLimitsRequest>,
    ) -> Result<Response<Limits>, Status> {
        let _st = self.enter()?;
        Ok(Response::new(Limits {
            profile: "production".into(),
            source: "embedded defaults".into(),
            max_duration_ms: 300_000,
            max_concurrent_faults: 1,
            max_kills_per_minute: 6,
            protected_processes: vec!["sshd".into(), "systemd-journald".into(), "faultd".into()],
            ..Default::default()
        }))
    }

    type WatchStream = EventStream;

    async fn watch(
        &self,
        req: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let replay = req.into_inner().replay_active;
        let st = self.enter()?;
        let mut first: Vec<Event> = st.events.clone();
        if replay {
            for f in st
                .faults
                .iter()
                .filter(|f| f.state == FaultState::Active as i32)
            {
                first.push(Event {
                    r#type: EventType::Injected as i32,
                    at_ms: f.created_at_ms,
                    fault_id: f.id.clone(),
                    kind: f.kind,
                    message: "active (replay)".into(),
                    fault: Some(f.clone()),
                    requested_by: f.requested_by.clone(),
                });
            }
        }
        let limit = st.watch_limit.unwrap_or(usize::MAX);
        let live = tokio_stream::wrappers::BroadcastStream::new(self.live.subscribe())
            .filter_map(|e| e.ok());
        let stream = tokio_stream::iter(first).chain(live).take(limit).map(Ok);
        Ok(Response::new(Box::pin(stream) as EventStream))
    }

    async fn open_lease(&self, req: Request<OpenLeaseRequest>) -> Result<Response<Lease>, Status> {
        let req = req.into_inner();
        let mut st = self.enter()?;
        if req.ttl_ms < 1000 {
            return Err(Status::invalid_argument(
                "ttl_ms: a lease lives at least 1s",
            ));
        }
        let lease = Lease {
            id: format!("l-{}", st.leases.len() + 1),
            ttl_ms: req.ttl_ms,
            expires_at_ms: now_ms() + req.ttl_ms,
            holder: req.holder,
            fault_ids: vec![],
        };
        st.leases.push(lease.clone());
        Ok(Response::new(lease))
    }

    async fn renew_lease(
        &self,
        req: Request<RenewLeaseRequest>,
    ) -> Result<Response<Lease>, Status> {
        let id = req.into_inner().id;
        let mut st = self.enter()?;
        renew(&mut st, &id).map(Response::new)
    }

    type KeepAliveStream = LeaseStream;

    async fn keep_alive(
        &self,
        req: Request<tonic::Streaming<RenewLeaseRequest>>,
    ) -> Result<Response<Self::KeepAliveStream>, Status> {
        drop(self.enter()?);
        let state = self.state.clone();
        let stream = req.into_inner().map(move |r| {
            let r = r?;
            renew(&mut state.lock().expect("fake state lock"), &r.id)
        });
        Ok(Response::new(Box::pin(stream) as LeaseStream))
    }

    async fn close_lease(
        &self,
        req: Request<CloseLeaseRequest>,
    ) -> Result<Response<CloseLeaseResponse>, Status> {
        let req = req.into_inner();
        let mut st = self.enter()?;
        let i = st
            .leases
            .iter()
            .position(|l| l.id == req.id)
            .ok_or_else(|| Status::not_found(format!("no lease {:?}", req.id)))?;
        let lease = st.leases.remove(i);
        let mut results = vec![];
        if req.revert_faults {
            for f in st
                .faults
                .iter_mut()
                .filter(|f| lease.fault_ids.contains(&f.id) && f.state == FaultState::Active as i32)
            {
                end(f, "lease closed");
                results.push(RevertResult {
                    id: f.id.clone(),
                    ok: true,
                    error: String::new(),
                });
            }
        }
        Ok(Response::new(CloseLeaseResponse { results }))
    }
}
