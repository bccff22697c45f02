//! The gRPC service `faultline.v1.Agent`: who is calling (peer credentials), may they,
//! proto -> domain conversion, and the one mapping from [`FaultError`] to gRPC status.

pub mod convert;

use std::pin::Pin;

use faultline_proto::v1 as pb;
use futures::Stream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use crate::engine::Engine;
use crate::error::FaultError;

impl From<FaultError> for Status {
    fn from(e: FaultError) -> Status {
        let msg = e.to_string();
        match e {
            FaultError::Invalid { .. } => Status::invalid_argument(msg),
            FaultError::Limit { .. } | FaultError::Protected(_) | FaultError::Unauthorized(_) => {
                Status::permission_denied(msg)
            }
            FaultError::NotFound(_) => Status::not_found(msg),
            FaultError::Precondition(_) => Status::failed_precondition(msg),
            FaultError::TooMany { .. } => Status::resource_exhausted(msg),
            FaultError::Failed(_) => Status::internal(msg),
        }
    }
}

/// Who is on the other end of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: Option<u32>,
    pub pid: Option<i32>,
    /// For records and logs: `uid=0(root) pid=1234 via unix:/run/faultline/faultd.sock`.
    pub description: String,
    /// May call mutating RPCs.
    pub operator: bool,
}

/// Decides who may mutate: uid 0, or members of the configured groups.
#[derive(Debug, Clone)]
pub struct Authorizer {
    /// (name, gid) of each operator group that exists on this node.
    groups: Vec<(String, u32)>,
    via: String,
}

impl Authorizer {
    pub fn new(operator_groups: &[String], via: String) -> Authorizer {
        let groups = operator_groups
            .iter()
            .filter_map(|g| match nix::unistd::Group::from_name(g) {
                Ok(Some(gr)) => Some((g.clone(), gr.gid.as_raw())),
                _ => {
                    tracing::warn!(group = %g, "operator group does not exist on this node; ignoring it");
                    None
                }
            })
            .collect();
        Authorizer { groups, via }
    }

    fn caller<T>(&self, req: &Request<T>) -> Caller {
        let cred = req
            .extensions()
            .get::<tonic::transport::server::UdsConnectInfo>()
            .and_then(|i| i.peer_cred);
        let Some(cred) = cred else {
            return Caller {
                uid: None,
                pid: None,
                description: format!("unknown peer via {}", self.via),
                operator: false,
            };
        };
        let uid = cred.uid();
        let pid = cred.pid();
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| "?".into());
        let operator = uid == 0 || self.in_groups(cred.gid(), pid);
        Caller {
            uid: Some(uid),
            pid,
            description: format!(
                "uid={uid}({name}){} via {}",
                pid.map(|p| format!(" pid={p}")).unwrap_or_default(),
                self.via
            ),
            operator,
        }
    }

    fn in_groups(&self, gid: u32, pid: Option<i32>) -> bool {
        if self.groups.is_empty() {
            return false;
        }
        if self.groups.iter().any(|(_, g)| *g == gid) {
            return true;
        }
        // Supplementary groups of the calling process.
        let Some(pid) = pid else { return false };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("Groups:"))
            .map(|gs| {
                gs.split_whitespace()
                    .filter_map(|g| g.parse::<u32>().ok())
                    .any(|g| self.groups.iter().any(|(_, og)| *og == g))
            })
            .unwrap_or(false)
    }

    fn require_operator<T>(&self, req: &Request<T>, rpc: &str) -> Result<Caller, Status> {
        let c = self.caller(req);
        if c.operator {
            Ok(c)
        } else {
            let groups: Vec<&str> = self.groups.iter().map(|(n, _)| n.as_str()).collect();
            Err(FaultError::Unauthorized(format!(
                "{rpc} changes the node: only root{} may call it, and the caller is {}",
                if groups.is_empty() {
                    " (no operator_groups are configured in faultd.toml)".to_string()
                } else {
                    format!(" or members of {}", groups.join(", "))
                },
                c.description
            ))
            .into())
        }
    }
}

/// The service.
#[derive(Clone)]
pub struct AgentService {
    engine: Engine,
    auth: Authorizer,
}

impl AgentService {
    pub fn new(engine: Engine, auth: Authorizer) -> AgentService {
        AgentService { engine, auth }
    }

    pub fn into_server(self) -> pb::agent_server::AgentServer<AgentService> {
        pb::agent_server::AgentServer::new(self)
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;
type LeaseStream = Pin<Box<dyn Stream<Item = Result<pb::Lease, Status>> + Send>>;

#[tonic::async_trait]
impl pb::agent_server::Agent for AgentService {
    async fn inject(
        &self,
        req: Request<pb::InjectRequest>,
    ) -> Result<Response<pb::InjectResponse>, Status> {
        let caller = self.auth.require_operator(&req, "Inject")?;
        let r = convert::inject_request(req.get_ref(), caller.description.clone())?;
        let dry = r.dry_run;
        let out = self.engine.inject(r).await;
        match &out {
            Ok(o) => {
                tracing::info!(caller = %caller.description, dry_run = dry, fault = ?o.fault.as_ref().map(|f| &f.id), plan = %o.plan, "inject")
            }
            Err(e) => {
                tracing::info!(caller = %caller.description, dry_run = dry, error = %e, "inject refused")
            }
        }
        let out = out?;
        Ok(Response::new(pb::InjectResponse {
            fault: out.fault.as_ref().map(convert::fault),
            dry_run: dry,
            targets: out.targets.iter().map(convert::target).collect(),
            excluded: out
                .excluded
                .iter()
                .map(|(p, why)| pb::ExcludedProcess {
                    process: Some(convert::target(p)),
                    reason: why.clone(),
                })
                .collect(),
            plan: out.plan,
        }))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::Fault>, Status> {
        let id = &req.get_ref().id;
        if id.is_empty() {
            return Err(FaultError::invalid("id", "missing").into());
        }
        Ok(Response::new(convert::fault(&self.engine.get(id)?)))
    }

    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let faults = self
            .engine
            .list(req.get_ref().include_ended)
            .iter()
            .map(convert::fault)
            .collect();
        Ok(Response::new(pb::ListResponse { faults }))
    }

    async fn revert(
        &self,
        req: Request<pb::RevertRequest>,
    ) -> Result<Response<pb::RevertResponse>, Status> {
        let caller = self.auth.require_operator(&req, "Revert")?;
        let r = req.get_ref();
        if r.id.is_empty() {
            return Err(FaultError::invalid("id", "missing").into());
        }
        let reason = if r.reason.is_empty() {
            format!("reverted by {}", caller.description)
        } else {
            r.reason.clone()
        };
        let rec = self.engine.revert(&r.id, &reason).await?;
        tracing::info!(caller = %caller.description, fault = %rec.id, "revert");
        Ok(Response::new(pb::RevertResponse {
            fault: Some(convert::fault(&rec)),
        }))
    }

    async fn revert_all(
        &self,
        req: Request<pb::RevertAllRequest>,
    ) -> Result<Response<pb::RevertAllResponse>, Status> {
        let caller = self.auth.require_operator(&req, "RevertAll")?;
        let start = std::time::Instant::now();
        let reason = if req.get_ref().reason.is_empty() {
            format!("by {}", caller.description)
        } else {
            req.get_ref().reason.clone()
        };
        let results = self.engine.revert_all(&reason).await;
        tracing::info!(caller = %caller.description, faults = results.len(), "revert all");
        Ok(Response::new(pb::RevertAllResponse {
            results: results
                .into_iter()
                .map(|r| pb::RevertResult {
                    id: r.id,
                    ok: r.result.is_ok(),
                    error: r.result.err().unwrap_or_default(),
                })
                .collect(),
            elapsed_us: start.elapsed().as_micros() as u64,
        }))
    }

    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let host = self.engine.host();
        Ok(Response::new(pb::StatusResponse {
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            kernel_release: host.kernel_release.clone(),
            hostname: host.hostname.clone(),
            cgroup_mode: host.cgroup_mode(),
            kinds: crate::support::kinds(host),
            active: self.engine.list(false).iter().map(convert::fault).collect(),
            started_at_ms: self
                .engine
                .started_at()
                .duration_since(std::time::SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            pid: std::process::id(),
            limits_source: host.limits.source.clone(),
        }))
    }

    async fn get_limits(
        &self,
        _req: Request<pb::GetLimitsRequest>,
    ) -> Result<Response<pb::Limits>, Status> {
        Ok(Response::new(convert::limits(&self.engine.host().limits)))
    }

    async fn open_lease(
        &self,
        req: Request<pb::OpenLeaseRequest>,
    ) -> Result<Response<pb::Lease>, Status> {
        let caller = self.auth.require_operator(&req, "OpenLease")?;
        let r = req.get_ref();
        let holder = if r.holder.is_empty() {
            caller.description.clone()
        } else {
            format!("{} ({})", r.holder, caller.description)
        };
        let l = self
            .engine
            .open_lease(std::time::Duration::from_millis(r.ttl_ms), &holder)?;
        Ok(Response::new(convert::lease(&l)))
    }

    async fn renew_lease(
        &self,
        req: Request<pb::RenewLeaseRequest>,
    ) -> Result<Response<pb::Lease>, Status> {
        self.auth.require_operator(&req, "RenewLease")?;
        Ok(Response::new(convert::lease(
            &self.engine.renew_lease(&req.get_ref().id)?,
        )))
    }

    type KeepAliveStream = LeaseStream;

    async fn keep_alive(
        &self,
        req: Request<tonic::Streaming<pb::RenewLeaseRequest>>,
    ) -> Result<Response<Self::KeepAliveStream>, Status> {
        self.auth.require_operator(&req, "KeepAlive")?;
        let engine = self.engine.clone();
        let stream = req.into_inner().map(move |m| match m {
            Ok(r) => engine
                .renew_lease(&r.id)
                .map(|l| convert::lease(&l))
                .map_err(Status::from),
            Err(e) => Err(e),
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn close_lease(
        &self,
        req: Request<pb::CloseLeaseRequest>,
    ) -> Result<Response<pb::CloseLeaseResponse>, Status> {
        self.auth.require_operator(&req, "CloseLease")?;
        let r = req.get_ref();
        let results = self.engine.close_lease(&r.id, r.revert_faults).await?;
        Ok(Response::new(pb::CloseLeaseResponse {
            results: results
                .into_iter()
                .map(|r| pb::RevertResult {
                    id: r.id,
                    ok: r.result.is_ok(),
                    error: r.result.err().unwrap_or_default(),
                })
                .collect(),
        }))
    }

    type WatchStream = EventStream;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let rx = self.engine.subscribe();
        let replay: Vec<pb::Event> = if req.get_ref().replay_active {
            self.engine
                .list(false)
                .iter()
                .map(|f| pb::Event {
                    r#type: pb::EventType::Injected as i32,
                    at_ms: convert::fault(f).created_at_ms,
                    fault_id: f.id.clone(),
                    kind: convert::kind(f.kind()) as i32,
                    message: format!("active: {}", f.description),
                    fault: Some(convert::fault(f)),
                    requested_by: f.requested_by.clone(),
                })
                .collect()
        } else {
            Vec::new()
        };
        let live = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|r| match r {
            Ok(e) => Some(Ok(convert::event(&e))),
            Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                Some(Err(Status::data_loss(format!(
                    "watch fell behind and missed {n} events; watch again"
                ))))
            }
        });
        let stream = tokio_stream::iter(replay.into_iter().map(Ok)).chain(live);
        Ok(Response::new(Box::pin(stream)))
    }
}
