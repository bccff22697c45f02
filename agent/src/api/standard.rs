//! The standard gRPC services faultd serves beside `faultline.v1.Agent`, on both
//! transports: `grpc.health.v1.Health` and server reflection (`grpc.reflection.v1` and
//! `v1alpha`). Both only read, so every caller with a role (anyone who can open the Unix
//! socket; a TLS identity in `[roles]`) may call them. [`Guarded`] puts them behind the
//! same [`Authorizer`] as the Agent service and writes one audit line and one metrics
//! sample per call, like [`super::AgentService`] does for its RPCs.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;

use super::{Authorizer, Role};
use crate::audit::{self, AuditLog, Decision};
use crate::metrics::Metrics;

/// A gRPC service behind faultd's authorization, audit log and RPC metrics. The RPC's
/// name in both is its path without the leading slash
/// (`grpc.health.v1.Health/Check`).
#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    auth: Authorizer,
    audit: Option<Arc<AuditLog>>,
    metrics: Option<Metrics>,
}

impl<S> std::fmt::Debug for Guarded<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded").finish_non_exhaustive()
    }
}

impl<S> Guarded<S> {
    pub fn new(
        inner: S,
        auth: Authorizer,
        audit: Option<Arc<AuditLog>>,
        metrics: Option<Metrics>,
    ) -> Guarded<S> {
        Guarded {
            inner,
            auth,
            audit,
            metrics,
        }
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

/// The result of a gRPC reply as the audit log writes it: `ok` while the call goes on
/// (a stream) or ended well, else the code's name from a trailers-only reply.
fn result_of(resp: &http::Response<Body>) -> String {
    match tonic::Status::from_header_map(resp.headers()) {
        Some(st) if st.code() != tonic::Code::Ok => audit::code_name(st.code()),
        _ => "ok".to_string(),
    }
}

impl<S> Service<http::Request<Body>> for Guarded<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let start = Instant::now();
        let rpc = req.uri().path().trim_start_matches('/').to_string();
        let mut probe = tonic::Request::new(());
        *probe.extensions_mut() = req.extensions().clone();
        let caller = self.auth.caller(&probe);
        let allowed = self.auth.check(&caller, &rpc, Role::Viewer);
        // The service that was polled ready serves this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (audit, metrics) = (self.audit.clone(), self.metrics.clone());
        Box::pin(async move {
            let (resp, decision, message) = match allowed {
                Ok(()) => (inner.call(req).await?, Decision::Allowed, None),
                Err(e) => {
                    let st = tonic::Status::from(e);
                    let msg = st.message().to_string();
                    (st.into_http(), Decision::Refused, Some(msg))
                }
            };
            let result = result_of(&resp);
            if let Some(log) = &audit {
                let rec = audit::Record {
                    time: audit::now(),
                    identity: caller.identity.clone(),
                    peer: caller.peer.clone(),
                    rpc: rpc.clone(),
                    request: String::new(),
                    decision,
                    limit: None,
                    fault_id: None,
                    result: result.clone(),
                    message,
                };
                if let Err(e) = log.write(&rec) {
                    tracing::error!(error = %e, rpc, "audit line not written");
                }
            }
            if let Some(m) = &metrics {
                m.rpc(&rpc, &result, start.elapsed());
            }
            if decision == Decision::Refused {
                tracing::info!(caller = %caller.description, rpc, result = %result, "refused");
            }
            Ok(resp)
        })
    }
}

/// The reflection service (v1 and v1alpha) over `faultline.v1` and
/// `grpc.health.v1`, so `grpcurl` needs no .proto file.
pub fn reflection() -> (
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
) {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(faultline_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    (
        builder()
            .build_v1()
            .expect("the embedded descriptor sets are valid"),
        builder()
            .build_v1alpha()
            .expect("the embedded descriptor sets are valid"),
    )
}
