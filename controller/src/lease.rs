//! Leases from the controller's side: a dead-man switch for long-running commands.
//!
//! [`Held::open`] opens a lease and keeps it alive over the `KeepAlive` stream, renewing
//! every TTL/3 (falling back to unary `RenewLease` if the stream breaks), for as long as
//! the [`Held`] lives. If faultctl dies (even by SIGKILL), renewals stop and the agent
//! reverts every fault bound to the lease once the TTL runs out.

use std::time::Duration;

use faultline_proto::v1::agent_client::AgentClient;
use faultline_proto::v1::{
    CloseLeaseRequest, FaultState, GetRequest, InjectRequest, InjectResponse, Lease,
    OpenLeaseRequest, RenewLeaseRequest,
};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tonic::transport::Channel;

use crate::answer::HoldEnd;
use crate::error::CtlError;

/// The default TTL of leases faultctl holds (`--hold`, `watch --hold`).
pub const DEFAULT_TTL: &str = "30s";

/// Who holds the lease, as the agent records it.
pub fn holder(what: &str) -> String {
    let host = hostname();
    format!("faultctl {what} (pid {} on {host})", std::process::id())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A lease kept alive by a background task until dropped or closed.
pub struct Held {
    pub lease: Lease,
    renewer: tokio::task::JoinHandle<()>,
}

impl Held {
    /// Opens a lease with `ttl` and starts renewing it every `ttl / 3`.
    pub async fn open(
        client: &mut AgentClient<Channel>,
        ttl: Duration,
        holder: String,
    ) -> Result<Held, CtlError> {
        let lease = client
            .open_lease(OpenLeaseRequest {
                ttl_ms: ttl.as_millis() as u64,
                holder,
            })
            .await?
            .into_inner();
        let renewer = tokio::spawn(keep_alive(client.clone(), lease.id.clone(), ttl / 3));
        Ok(Held { lease, renewer })
    }

    pub fn id(&self) -> &str {
        &self.lease.id
    }

    /// Stops renewing and closes the lease; with `revert`, the agent reverts its faults.
    pub async fn close(
        self,
        client: &mut AgentClient<Channel>,
        revert: bool,
    ) -> Result<faultline_proto::v1::CloseLeaseResponse, CtlError> {
        self.renewer.abort();
        Ok(client
            .close_lease(CloseLeaseRequest {
                id: self.lease.id.clone(),
                revert_faults: revert,
            })
            .await?
            .into_inner())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Renews `id` every `every` over a KeepAlive stream; if the stream breaks, renews by
/// unary calls and reopens the stream on the next round.
async fn keep_alive(mut client: AgentClient<Channel>, id: String, every: Duration) {
    loop {
        let (tx, rx) = tokio::sync::mpsc::channel::<RenewLeaseRequest>(1);
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut replies = match client.keep_alive(stream).await {
            Ok(r) => r.into_inner(),
            Err(_) => {
                let _ = client
                    .renew_lease(RenewLeaseRequest { id: id.clone() })
                    .await;
                tokio::time::sleep(every).await;
                continue;
            }
        };
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if tx.send(RenewLeaseRequest { id: id.clone() }).await.is_err() {
                break;
            }
            match replies.message().await {
                Ok(Some(_)) => {}
                // Unknown lease (lapsed): nothing left to keep alive.
                Err(s) if s.code() == tonic::Code::NotFound => return,
                _ => break,
            }
        }
    }
}

/// Ctrl-C and SIGTERM, caught from the moment this is made: a signal that lands right
/// after an inject must revert it, not kill faultctl and leave the fault to the TTL.
pub struct Interrupt {
    int: Signal,
    term: Signal,
}

impl Interrupt {
    pub fn catch() -> Result<Interrupt, CtlError> {
        Ok(Interrupt {
            int: signal(SignalKind::interrupt()).map_err(CtlError::Output)?,
            term: signal(SignalKind::terminate()).map_err(CtlError::Output)?,
        })
    }

    /// Waits for the next Ctrl-C or SIGTERM.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// `inject --hold`, first half: opens a lease with `ttl` and injects bound to it. If the
/// inject fails, the lease is closed (reverting anything bound to it) before the error
/// is returned.
pub async fn inject_held(
    client: &mut AgentClient<Channel>,
    mut req: InjectRequest,
    ttl: Duration,
) -> Result<(InjectResponse, Held), CtlError> {
    let held = Held::open(client, ttl, holder("inject --hold")).await?;
    req.lease_id = held.id().to_string();
    match client.inject(req).await {
        Ok(r) => Ok((r.into_inner(), held)),
        Err(e) => {
            let _ = held.close(client, true).await;
            Err(e.into())
        }
    }
}

/// `inject --hold`, second half: renews the lease while the fault `fault_id` lives.
/// Returns when it ended on its own (the lease is closed, leaving the rest alone), or on
/// Ctrl-C/SIGTERM (the lease is closed with its faults reverted).
pub async fn hold(
    client: &mut AgentClient<Channel>,
    held: Held,
    fault_id: Option<String>,
    interrupt: &mut Interrupt,
) -> Result<HoldEnd, CtlError> {
    let Some(id) = fault_id else {
        let _ = held.close(client, false).await;
        return Ok(HoldEnd::Nothing);
    };
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            () = interrupt.recv() => break,
            _ = poll.tick() => {
                let f = client.get(GetRequest { id: id.clone() }).await?.into_inner();
                let live = matches!(
                    FaultState::try_from(f.state),
                    Ok(FaultState::Active | FaultState::Pending)
                );
                if !live {
                    let _ = held.close(client, false).await;
                    return Ok(HoldEnd::Ended { fault: f });
                }
            }
        }
    }
    let r = held.close(client, true).await?;
    Ok(HoldEnd::Reverted { results: r.results })
}
