//! What faultd tells clients about itself while it starts and stops.
//!
//! faultd listens before crash recovery so that health checks can see it recovering:
//! `grpc.health.v1.Health` answers NOT_SERVING (for `""` and `faultline.v1.Agent`)
//! until recovery has put the node back, SERVING after, and NOT_SERVING again from the
//! moment a stop begins (SIGTERM/SIGINT, before the faults are reverted). Calls to the
//! Agent service that arrive during recovery wait behind a [`Gated`] service until it is
//! done, so no client ever sees a half-recovered node.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::watch;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// The service names whose health is reported: the server as a whole and the Agent.
const SERVICES: [&str; 2] = ["", "faultline.v1.Agent"];

/// The agent's phase as the health service reports it.
#[derive(Debug, Clone)]
pub struct Readiness {
    reporter: HealthReporter,
    recovered: watch::Sender<bool>,
    /// Whether a stop has begun; held while the status changes, so the last word is
    /// the stop's.
    stopping: Arc<tokio::sync::Mutex<bool>>,
}

impl Readiness {
    /// NOT_SERVING for every service, Agent calls held: the state at start.
    pub async fn starting() -> Readiness {
        let reporter = HealthReporter::new();
        for s in SERVICES {
            reporter
                .set_service_status(s, ServingStatus::NotServing)
                .await;
        }
        Readiness {
            reporter,
            recovered: watch::channel(false).0,
            stopping: Arc::new(tokio::sync::Mutex::new(false)),
        }
    }

    /// The `grpc.health.v1.Health` service reporting this state.
    pub fn health_service(
        &self,
    ) -> tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService> {
        tonic_health::pb::health_server::HealthServer::new(
            tonic_health::server::HealthService::from_health_reporter(self.reporter.clone()),
        )
    }

    /// Recovery is done: SERVING (unless a stop began meanwhile), and held Agent calls
    /// go ahead.
    pub async fn serving(&self) {
        let stopping = self.stopping.lock().await;
        self.recovered.send_replace(true);
        if !*stopping {
            self.set(ServingStatus::Serving).await;
        }
    }

    /// A stop has begun: NOT_SERVING (Agent calls are still answered until the server
    /// closes).
    pub async fn stopping(&self) {
        let mut stopping = self.stopping.lock().await;
        *stopping = true;
        self.recovered.send_replace(true);
        self.set(ServingStatus::NotServing).await;
    }

    async fn set(&self, st: ServingStatus) {
        for s in SERVICES {
            self.reporter.set_service_status(s, st).await;
        }
    }

    /// `inner`, with calls held until recovery is done.
    pub fn gate<S>(&self, inner: S) -> Gated<S> {
        Gated {
            inner,
            recovered: self.recovered.subscribe(),
        }
    }
}

/// A service whose calls wait until crash recovery has finished.
#[derive(Debug, Clone)]
pub struct Gated<S> {
    inner: S,
    recovered: watch::Receiver<bool>,
}

impl<S: NamedService> NamedService for Gated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Gated<S>
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
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let mut recovered = self.recovered.clone();
        Box::pin(async move {
            // The sender lives as long as the server; if it is gone, so is the wait.
            let _ = recovered.wait_for(|r| *r).await;
            inner.call(req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_health::pb::health_server::Health;

    async fn status(r: &Readiness, service: &str) -> i32 {
        let svc = tonic_health::server::HealthService::from_health_reporter(r.reporter.clone());
        svc.check(tonic::Request::new(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .status
    }

    const SERVING: i32 = 1;
    const NOT_SERVING: i32 = 2;

    #[tokio::test]
    async fn not_serving_then_serving_then_not_serving_and_the_gate_opens_once() {
        let r = Readiness::starting().await;
        for s in SERVICES {
            assert_eq!(status(&r, s).await, NOT_SERVING, "{s:?} at start");
        }
        let mut rx = r.recovered.subscribe();
        assert!(!*rx.borrow_and_update());
        r.serving().await;
        assert!(*rx.borrow_and_update(), "the gate opens");
        for s in SERVICES {
            assert_eq!(status(&r, s).await, SERVING, "{s:?} once recovered");
        }
        r.stopping().await;
        for s in SERVICES {
            assert_eq!(status(&r, s).await, NOT_SERVING, "{s:?} while stopping");
        }
    }

    #[tokio::test]
    async fn a_stop_during_recovery_is_the_last_word() {
        let r = Readiness::starting().await;
        r.stopping().await;
        r.serving().await;
        assert_eq!(status(&r, "").await, NOT_SERVING);
        assert!(
            *r.recovered.subscribe().borrow(),
            "held calls still go ahead"
        );
    }
}
