//! The gRPC service `faultline.v1.Agent`: who is calling (peer credentials on the Unix
//! socket, the client certificate over TLS), may they, an audit line for every call,
//! proto -> domain conversion, and the one mapping from [`FaultError`] to gRPC status.

pub mod convert;
pub mod standard;
#[cfg(test)]
mod tests;

use std::pin::Pin;

use faultline_proto::text;
use faultline_proto::v1 as pb;
use futures::Stream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use std::sync::Arc;

use crate::audit::{self, AuditLog, Decision};
use crate::engine::Engine;
use crate::error::FaultError;
use crate::metrics::Metrics;

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

/// What a caller may do: `viewer` reads (Status, GetLimits, List, Get, Watch);
/// `operator` does everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

/// Who is on the other end of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: Option<u32>,
    pub pid: Option<i32>,
    /// Who, for the audit log: `uid=0(root)` on the socket, the certificate's CN or SAN
    /// over TLS, `-` when unknown.
    pub identity: String,
    /// Where from: `unix:/run/faultline/faultd.sock pid=1234`, `tcp:10.1.2.3:50522`.
    pub peer: String,
    /// The TCP peer's address and port (None on the Unix socket): a network fault it
    /// injects steers this flow past itself.
    pub addr: Option<std::net::SocketAddr>,
    /// For records and logs: `uid=0(root) pid=1234 via unix:/run/faultline/faultd.sock`.
    pub description: String,
    /// None: may call nothing.
    pub role: Option<Role>,
}

/// Decides who may do what, for both transports, in one place:
/// - Unix socket: uid 0 or a member of the configured groups is `operator`, anyone else
///   who can open the socket is `viewer`.
/// - TCP (mutual TLS, the handshake already verified the certificate chain): the
///   certificate's subject CN or a SAN DNS name is looked up in `[roles]`; unknown
///   identities may call nothing.
#[derive(Debug, Clone)]
pub struct Authorizer {
    /// (name, gid) of each operator group that exists on this node.
    groups: Vec<(String, u32)>,
    via: String,
    /// TLS identity -> role.
    roles: std::collections::HashMap<String, Role>,
    /// uid -> user name, looked up at most once a minute per uid (a lookup reads
    /// /etc/nsswitch.conf and /etc/passwd: most of a Status call's own time).
    names: Arc<std::sync::Mutex<std::collections::HashMap<u32, (String, std::time::Instant)>>>,
}

/// How long a uid's name is reused before it is looked up again.
const NAME_TTL: std::time::Duration = std::time::Duration::from_secs(60);

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
        Authorizer {
            groups,
            via,
            roles: Default::default(),
            names: Default::default(),
        }
    }

    /// Maps TLS client identities to roles (`[roles]` of faultd.toml).
    pub fn with_roles(mut self, roles: std::collections::HashMap<String, Role>) -> Authorizer {
        self.roles = roles;
        self
    }

    /// Who is calling, and in which role.
    pub fn caller<T>(&self, req: &Request<T>) -> Caller {
        if let Some(info) = req
            .extensions()
            .get::<tonic::transport::server::UdsConnectInfo>()
        {
            return self.unix_caller(info.peer_cred);
        }
        let addr = req.remote_addr();
        let peer = addr
            .map(|a| format!("tcp:{a}"))
            .unwrap_or_else(|| "tcp:?".into());
        let names = req
            .peer_certs()
            .and_then(|certs| certs.first().map(|c| cert_identities(c.as_ref())))
            .unwrap_or_default();
        let known = names
            .iter()
            .filter_map(|n| self.roles.get(n).map(|r| (n, *r)))
            .max_by_key(|(_, r)| *r);
        let (identity, role) = match known {
            Some((n, r)) => (n.clone(), Some(r)),
            None => (names.first().cloned().unwrap_or_else(|| "-".into()), None),
        };
        Caller {
            uid: None,
            pid: None,
            description: format!("{identity} via {peer}"),
            identity,
            peer,
            addr,
            role,
        }
    }

    fn unix_caller(&self, cred: Option<tokio::net::unix::UCred>) -> Caller {
        let Some(cred) = cred else {
            return Caller {
                uid: None,
                pid: None,
                identity: "-".into(),
                peer: self.via.clone(),
                addr: None,
                description: format!("unknown peer via {}", self.via),
                role: None,
            };
        };
        let uid = cred.uid();
        let pid = cred.pid();
        let name = self.user_name(uid);
        let operator = uid == 0 || self.in_groups(cred.gid(), pid);
        let peer = format!(
            "{}{}",
            self.via,
            pid.map(|p| format!(" pid={p}")).unwrap_or_default()
        );
        Caller {
            uid: Some(uid),
            pid,
            identity: format!("uid={uid}({name})"),
            description: format!(
                "uid={uid}({name}){} via {}",
                pid.map(|p| format!(" pid={p}")).unwrap_or_default(),
                self.via
            ),
            peer,
            addr: None,
            role: Some(if operator {
                Role::Operator
            } else {
                Role::Viewer
            }),
        }
    }

    /// The user name of `uid` (`?` if it has none), from a short-lived cache.
    fn user_name(&self, uid: u32) -> String {
        let now = std::time::Instant::now();
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((name, at)) = names.get(&uid)
            && now.duration_since(*at) < NAME_TTL
        {
            return name.clone();
        }
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| "?".into());
        names.insert(uid, (name.clone(), now));
        name
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

    /// Whether `c` may call `rpc`, which needs `need`.
    pub fn check(&self, c: &Caller, rpc: &str, need: Role) -> Result<(), FaultError> {
        match c.role {
            Some(r) if r >= need => Ok(()),
            None if c.uid.is_none() && c.peer.starts_with("tcp:") => {
                Err(FaultError::Unauthorized(format!(
                    "client identity {:?} ({}) has no role: add it to [roles] in faultd.toml",
                    c.identity, c.peer
                )))
            }
            None => Err(FaultError::Unauthorized(format!(
                "{rpc}: the caller is {}, whose credentials cannot be read",
                c.description
            ))),
            Some(r) if c.uid.is_some() => {
                let groups: Vec<&str> = self.groups.iter().map(|(n, _)| n.as_str()).collect();
                Err(FaultError::Unauthorized(format!(
                    "{rpc} changes the node: only root{} may call it, and the caller is {} ({})",
                    if groups.is_empty() {
                        " (no operator_groups are configured in faultd.toml)".to_string()
                    } else {
                        format!(" or members of {}", groups.join(", "))
                    },
                    c.description,
                    r.name()
                )))
            }
            Some(r) => Err(FaultError::Unauthorized(format!(
                "{rpc} needs role {}; {:?} has role {} (see [roles] in faultd.toml)",
                need.name(),
                c.identity,
                r.name()
            ))),
        }
    }
}

/// The identities a certificate carries: its subject CN(s), then its SAN DNS names.
/// An unparseable certificate carries none.
pub fn cert_identities(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return vec![];
    };
    let mut out: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                out.push(d.to_string());
            }
        }
    }
    out
}

/// An RPC's failure before it is mapped to a gRPC status: a [`FaultError`] keeps the
/// limit that refused it for the audit log.
#[derive(Debug)]
pub enum ApiError {
    Fault(FaultError),
    Status(Status),
}

impl From<FaultError> for ApiError {
    fn from(e: FaultError) -> Self {
        ApiError::Fault(e)
    }
}

impl From<Status> for ApiError {
    fn from(s: Status) -> Self {
        ApiError::Status(s)
    }
}

/// What the audit log records of a reply: the fault (or lease) it concerned.
pub trait AuditedReply {
    fn fault_id(&self) -> Option<String> {
        None
    }
}

impl<T: AuditedReply> AuditedReply for Response<T> {
    fn fault_id(&self) -> Option<String> {
        self.get_ref().fault_id()
    }
}

impl AuditedReply for pb::InjectResponse {
    fn fault_id(&self) -> Option<String> {
        self.fault.as_ref().map(|f| f.id.clone())
    }
}
impl AuditedReply for pb::RevertResponse {
    fn fault_id(&self) -> Option<String> {
        self.fault.as_ref().map(|f| f.id.clone())
    }
}
impl AuditedReply for pb::Fault {
    fn fault_id(&self) -> Option<String> {
        Some(self.id.clone())
    }
}
impl AuditedReply for pb::Lease {
    fn fault_id(&self) -> Option<String> {
        Some(self.id.clone())
    }
}
impl AuditedReply for pb::RevertAllResponse {}
impl AuditedReply for pb::ListResponse {}
impl AuditedReply for pb::StatusResponse {}
impl AuditedReply for pb::Limits {}
impl AuditedReply for pb::CloseLeaseResponse {}
impl AuditedReply for EventStream {}
impl AuditedReply for LeaseStream {}

/// The service.
#[derive(Clone)]
pub struct AgentService {
    engine: Engine,
    auth: Authorizer,
    audit: Option<Arc<AuditLog>>,
    metrics: Option<Metrics>,
    /// What this host supports per kind, worked out on the first `Status` (it reads
    /// procfs and cgroupfs; the kernel's modules were probed at start) and kept.
    kinds: Arc<std::sync::OnceLock<Vec<pb::KindSupport>>>,
}

impl AgentService {
    pub fn new(engine: Engine, auth: Authorizer) -> AgentService {
        AgentService {
            engine,
            auth,
            audit: None,
            metrics: None,
            kinds: Default::default(),
        }
    }

    /// Records every RPC in `audit`.
    pub fn with_audit(mut self, audit: Arc<AuditLog>) -> AgentService {
        self.audit = Some(audit);
        self
    }

    /// Times every RPC into `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> AgentService {
        self.metrics = Some(metrics);
        self
    }

    /// The same service with another authorizer (one per listener: the Unix socket and
    /// the TLS port share the engine, audit log and metrics).
    pub fn with_authorizer(&self, auth: Authorizer) -> AgentService {
        AgentService {
            auth,
            ..self.clone()
        }
    }

    pub fn into_server(self) -> pb::agent_server::AgentServer<AgentService> {
        pb::agent_server::AgentServer::new(self)
    }

    /// The one path every RPC takes: who is calling, may they (`need`), run `f`, then
    /// append the audit line (before the reply goes out) and time it.
    async fn audited<T, R, F, Fut>(
        &self,
        rpc: &'static str,
        need: Role,
        req: Request<T>,
        summary: impl FnOnce(&T) -> String,
        f: F,
    ) -> Result<R, Status>
    where
        R: AuditedReply,
        F: FnOnce(Caller, Request<T>) -> Fut,
        Fut: std::future::Future<Output = Result<R, ApiError>>,
    {
        let start = std::time::Instant::now();
        let caller = self.auth.caller(&req);
        let request = summary(req.get_ref());
        let id_in_request = request
            .split_whitespace()
            .find_map(|w| w.strip_prefix("id="))
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let out = match self.auth.check(&caller, rpc, need) {
            Ok(()) => f(caller.clone(), req).await,
            Err(e) => Err(e.into()),
        };
        let (decision, limit, result, message, fault_id, out) = match out {
            Ok(r) => (
                Decision::Allowed,
                None,
                "ok".to_string(),
                None,
                r.fault_id().or(id_in_request),
                Ok(r),
            ),
            Err(e) => {
                let limit = match &e {
                    ApiError::Fault(f) => f.limit().map(str::to_string),
                    ApiError::Status(_) => None,
                };
                let st = bounded(match e {
                    ApiError::Fault(f) => Status::from(f),
                    ApiError::Status(s) => s,
                });
                let decision = match st.code() {
                    tonic::Code::PermissionDenied
                    | tonic::Code::Unauthenticated
                    | tonic::Code::InvalidArgument
                    | tonic::Code::ResourceExhausted => Decision::Refused,
                    _ => Decision::Allowed,
                };
                (
                    decision,
                    limit,
                    audit::code_name(st.code()),
                    Some(st.message().to_string()),
                    id_in_request,
                    Err(st),
                )
            }
        };
        if let Some(log) = &self.audit {
            let rec = audit::Record {
                time: audit::now(),
                identity: caller.identity.clone(),
                peer: caller.peer.clone(),
                rpc: rpc.to_string(),
                request,
                decision,
                limit,
                fault_id,
                result: result.clone(),
                message,
            };
            if let Err(e) = log.write(&rec) {
                tracing::error!(error = %e, rpc, "audit line not written");
            }
        }
        if let Some(m) = &self.metrics {
            m.rpc(rpc, &result, start.elapsed());
        }
        if decision == Decision::Refused {
            tracing::info!(caller = %caller.description, rpc, result = %result, "refused");
        }
        out
    }
}

/// The longest error message sent back. Messages quote the caller's input, and a
/// gRPC message travels in an HTTP/2 header: past the client's header list limit
/// (16 KiB in hyper) the client would see an h2 protocol error instead of the reason.
const MAX_ERROR_MESSAGE: usize = 1024;

/// How much of the caller's text an audit summary keeps (bytes, cut at a character
/// boundary by [`text::bounded`]): ids and lease holders, reasons, the spec's text.
const MAX_ID_SUMMARY: usize = 128;
const MAX_REASON_SUMMARY: usize = 256;
const MAX_SPEC_SUMMARY: usize = 512;

fn bounded(st: Status) -> Status {
    if st.message().len() <= MAX_ERROR_MESSAGE {
        return st;
    }
    Status::new(
        st.code(),
        format!(
            "{}... ({} bytes; message truncated)",
            text::prefix(st.message(), MAX_ERROR_MESSAGE),
            st.message().len()
        ),
    )
}

/// `key=value` pairs of a request, for the audit log.
fn kv(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            if v.is_empty() || v.contains(char::is_whitespace) || v.contains('"') {
                format!("{k}={v:?}")
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn inject_summary(r: &pb::InjectRequest) -> String {
    let spec = r
        .spec
        .as_ref()
        .map(|s| text::bounded(&format!("{s:?}"), MAX_SPEC_SUMMARY))
        .unwrap_or_else(|| "-".into());
    kv(&[
        ("dry_run", r.dry_run.to_string()),
        ("duration_ms", r.duration_ms.to_string()),
        ("lease", r.lease_id.clone()),
        ("labels", r.labels.len().to_string()),
        ("spec", spec),
    ])
}

fn id_summary(id: &str) -> String {
    kv(&[("id", text::bounded(id, MAX_ID_SUMMARY))])
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;
/// A `KeepAlive` reply: one lease per renewal received.
pub type LeaseStream = Pin<Box<dyn Stream<Item = Result<pb::Lease, Status>> + Send>>;

/// `KeepAlive`'s work, shared by faultd and the agent simulator: each renewal on the
/// stream renews its lease in `engine` and answers with the lease or the error.
pub fn lease_stream<E: crate::engine::Effects>(
    engine: Engine<E>,
    renewals: tonic::Streaming<pb::RenewLeaseRequest>,
) -> LeaseStream {
    Box::pin(renewals.map(move |m| {
        match m {
            Ok(r) => engine
                .renew_lease(&r.id)
                .map(|l| convert::lease(&l))
                .map_err(Status::from),
            Err(e) => Err(e),
        }
    }))
}

#[tonic::async_trait]
impl pb::agent_server::Agent for AgentService {
    async fn inject(
        &self,
        req: Request<pb::InjectRequest>,
    ) -> Result<Response<pb::InjectResponse>, Status> {
        self.audited("Inject", Role::Operator, req, inject_summary, |caller, req| async move {
            let mut r = convert::inject_request(req.get_ref(), caller.description.clone())?;
            if let Some(a) = caller.addr {
                r.fault.protect_caller(a);
            }
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
            Ok(Response::new(convert::inject_response(&out?, dry)))
        })
        .await
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::Fault>, Status> {
        self.audited(
            "Get",
            Role::Viewer,
            req,
            |r| id_summary(&r.id),
            |_, req| async move {
                let id = &req.get_ref().id;
                if id.is_empty() {
                    return Err(FaultError::invalid("id", "missing").into());
                }
                Ok(Response::new(convert::fault(&self.engine.get(id)?)))
            },
        )
        .await
    }

    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let summary = |r: &pb::ListRequest| kv(&[("include_ended", r.include_ended.to_string())]);
        self.audited("List", Role::Viewer, req, summary, |_, req| async move {
            let faults = self
                .engine
                .list(req.get_ref().include_ended)
                .iter()
                .map(convert::fault)
                .collect();
            Ok(Response::new(pb::ListResponse { faults }))
        })
        .await
    }

    async fn revert(
        &self,
        req: Request<pb::RevertRequest>,
    ) -> Result<Response<pb::RevertResponse>, Status> {
        let summary = |r: &pb::RevertRequest| {
            format!(
                "{} {}",
                id_summary(&r.id),
                kv(&[("reason", text::bounded(&r.reason, MAX_REASON_SUMMARY))])
            )
        };
        self.audited(
            "Revert",
            Role::Operator,
            req,
            summary,
            |caller, req| async move {
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
            },
        )
        .await
    }

    async fn revert_all(
        &self,
        req: Request<pb::RevertAllRequest>,
    ) -> Result<Response<pb::RevertAllResponse>, Status> {
        let summary = |r: &pb::RevertAllRequest| {
            kv(&[("reason", text::bounded(&r.reason, MAX_REASON_SUMMARY))])
        };
        self.audited(
            "RevertAll",
            Role::Operator,
            req,
            summary,
            |caller, req| async move {
                let start = std::time::Instant::now();
                let reason = if req.get_ref().reason.is_empty() {
                    format!("by {}", caller.description)
                } else {
                    req.get_ref().reason.clone()
                };
                let results = self.engine.revert_all(&reason).await;
                tracing::info!(caller = %caller.description, faults = results.len(), "revert all");
                Ok(Response::new(pb::RevertAllResponse {
                    results: convert::revert_results(results),
                    elapsed_us: start.elapsed().as_micros() as u64,
                }))
            },
        )
        .await
    }

    async fn status(
        &self,
        req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.audited(
            "Status",
            Role::Viewer,
            req,
            |_| String::new(),
            |_, _| async move {
                let host = self.engine.host();
                Ok(Response::new(pb::StatusResponse {
                    agent_version: env!("CARGO_PKG_VERSION").to_string(),
                    kernel_release: host.kernel_release.clone(),
                    hostname: host.hostname.clone(),
                    cgroup_mode: host.cgroup_mode(),
                    kinds: self
                        .kinds
                        .get_or_init(|| crate::support::kinds(host))
                        .clone(),
                    active: self.engine.list(false).iter().map(convert::fault).collect(),
                    started_at_ms: self
                        .engine
                        .started_at()
                        .duration_since(std::time::SystemTime::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0),
                    pid: std::process::id(),
                    limits_source: host.limits.source.clone(),
                    protected_traffic: crate::fault::network::host_exempt(host).to_string(),
                }))
            },
        )
        .await
    }

    async fn get_limits(
        &self,
        req: Request<pb::GetLimitsRequest>,
    ) -> Result<Response<pb::Limits>, Status> {
        self.audited(
            "GetLimits",
            Role::Viewer,
            req,
            |_| String::new(),
            |_, _| async move { Ok(Response::new(convert::limits(&self.engine.host().limits))) },
        )
        .await
    }

    async fn open_lease(
        &self,
        req: Request<pb::OpenLeaseRequest>,
    ) -> Result<Response<pb::Lease>, Status> {
        let summary = |r: &pb::OpenLeaseRequest| {
            kv(&[
                ("ttl_ms", r.ttl_ms.to_string()),
                ("holder", text::bounded(&r.holder, MAX_ID_SUMMARY)),
            ])
        };
        self.audited(
            "OpenLease",
            Role::Operator,
            req,
            summary,
            |caller, req| async move {
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
            },
        )
        .await
    }

    async fn renew_lease(
        &self,
        req: Request<pb::RenewLeaseRequest>,
    ) -> Result<Response<pb::Lease>, Status> {
        let summary = |r: &pb::RenewLeaseRequest| id_summary(&r.id);
        self.audited(
            "RenewLease",
            Role::Operator,
            req,
            summary,
            |_, req| async move {
                Ok(Response::new(convert::lease(
                    &self.engine.renew_lease(&req.get_ref().id)?,
                )))
            },
        )
        .await
    }

    type KeepAliveStream = LeaseStream;

    /// Audited once, when the stream opens (not per renewal).
    async fn keep_alive(
        &self,
        req: Request<tonic::Streaming<pb::RenewLeaseRequest>>,
    ) -> Result<Response<Self::KeepAliveStream>, Status> {
        self.audited(
            "KeepAlive",
            Role::Operator,
            req,
            |_| String::new(),
            |_, req| async move {
                Ok(Response::new(lease_stream(
                    self.engine.clone(),
                    req.into_inner(),
                )))
            },
        )
        .await
    }

    async fn close_lease(
        &self,
        req: Request<pb::CloseLeaseRequest>,
    ) -> Result<Response<pb::CloseLeaseResponse>, Status> {
        let summary = |r: &pb::CloseLeaseRequest| {
            format!(
                "{} {}",
                id_summary(&r.id),
                kv(&[("revert_faults", r.revert_faults.to_string())])
            )
        };
        self.audited(
            "CloseLease",
            Role::Operator,
            req,
            summary,
            |_, req| async move {
                let r = req.get_ref();
                let results = self.engine.close_lease(&r.id, r.revert_faults).await?;
                Ok(Response::new(pb::CloseLeaseResponse {
                    results: convert::revert_results(results),
                }))
            },
        )
        .await
    }

    type WatchStream = EventStream;

    /// Audited once, when the stream opens.
    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let summary = |r: &pb::WatchRequest| kv(&[("replay_active", r.replay_active.to_string())]);
        self.audited("Watch", Role::Viewer, req, summary, |_, req| async move {
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
            Ok(Response::new(Box::pin(stream) as EventStream))
        })
        .await
    }
}
