//! Leases from the controller's side: a dead-man switch for long-running commands.
//!
//! [`Held::open`] opens a lease and keeps it alive over the `KeepAlive` stream, renewing
//! every TTL/3 (falling back to unary `RenewLease` if the stream breaks), for as long as
//! the [`Held`] lives. If faultctl dies (even by SIGKILL), renewals stop and the agent
//! reverts every fault bound to the lease once the TTL runs out.

use std::time::Duration;

use faultline_proto::v1::agent_client::AgentClient;
use faultline_proto::v1::{CloseLeaseRequest, Lease, OpenLeaseRequest, RenewLeaseRequest};
use tonic::transport::Channel;

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

fn lease_json(l: &Lease) -> serde_json::Value {
    serde_json::json!({
        "id": l.id,
        "ttl_ms": l.ttl_ms,
        "expires_at_ms": l.expires_at_ms,
        "holder": l.holder,
        "fault_ids": l.fault_ids,
    })
}

/// `faultctl lease open|renew|close`.
pub async fn run(
    client: &mut AgentClient<Channel>,
    cmd: &crate::cli::LeaseCommand,
    fmt: crate::Output,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(), CtlError> {
    use crate::cli::LeaseCommand as L;
    let (json, text) = match cmd {
        L::Open { ttl } => {
            let ttl = Duration::from_millis(crate::request::duration_flag("--ttl", ttl)?);
            let l = client
                .open_lease(OpenLeaseRequest {
                    ttl_ms: ttl.as_millis() as u64,
                    holder: holder("lease open"),
                })
                .await?
                .into_inner();
            (lease_json(&l), format!("{}\n", l.id))
        }
        L::Renew { id } => {
            let l = client
                .renew_lease(RenewLeaseRequest { id: id.clone() })
                .await?
                .into_inner();
            let text = format!(
                "renewed {} until {} ({} fault{} bound)\n",
                l.id,
                crate::render::absolute(l.expires_at_ms),
                l.fault_ids.len(),
                if l.fault_ids.len() == 1 { "" } else { "s" }
            );
            (lease_json(&l), text)
        }
        L::Close { id, revert } => {
            let r = client
                .close_lease(CloseLeaseRequest {
                    id: id.clone(),
                    revert_faults: *revert,
                })
                .await?
                .into_inner();
            let mut text = format!("closed {id}\n");
            for x in &r.results {
                text.push_str(&match x.ok {
                    true => format!("  reverted {}\n", x.id),
                    false => format!("  FAILED to revert {}: {}\n", x.id, x.error),
                });
            }
            let json = serde_json::json!({
                "id": id,
                "results": r.results.iter().map(|x| serde_json::json!({"id": x.id, "ok": x.ok, "error": x.error})).collect::<Vec<_>>(),
            });
            (json, text)
        }
    };
    match fmt {
        crate::Output::Json => {
            serde_json::to_writer_pretty(&mut *out, &json).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        crate::Output::Table => out.write_all(text.as_bytes())?,
    }
    out.flush()?;
    Ok(())
}

/// `faultctl inject ... --hold`: opens a lease, injects bound to it, renews while the
/// fault lives; Ctrl-C or SIGTERM reverts it. Returns when the fault has ended.
pub async fn inject_held(
    client: &mut AgentClient<Channel>,
    mut req: faultline_proto::v1::InjectRequest,
    ttl: Duration,
    fmt: crate::Output,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(), CtlError> {
    // Signal handlers first: a Ctrl-C that lands right after the inject must revert,
    // not kill faultctl and leave the fault to the lease's TTL.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(CtlError::Output)?;
    let mut int = signal(SignalKind::interrupt()).map_err(CtlError::Output)?;
    let held = Held::open(client, ttl, holder("inject --hold")).await?;
    req.lease_id = held.id().to_string();
    let r = match client.inject(req).await {
        Ok(r) => r.into_inner(),
        Err(e) => {
            let _ = held.close(client, true).await;
            return Err(e.into());
        }
    };
    let now = crate::render::now_ms();
    match fmt {
        crate::Output::Json => {
            serde_json::to_writer(&mut *out, &crate::render::inject_json(&r))
                .map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        crate::Output::Table => {
            out.write_all(crate::render::inject_table(&r, now).as_bytes())?;
            writeln!(
                out,
                "holding lease {} (ttl {}): Ctrl-C reverts the fault",
                held.id(),
                faultline_proto::units::format_duration(ttl)
            )?;
        }
    }
    out.flush()?;
    let Some(fault) = r.fault else {
        let _ = held.close(client, false).await;
        return Ok(());
    };
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = int.recv() => break,
            _ = term.recv() => break,
            _ = poll.tick() => {
                let f = client
                    .get(faultline_proto::v1::GetRequest { id: fault.id.clone() })
                    .await?
                    .into_inner();
                let live = matches!(
                    faultline_proto::v1::FaultState::try_from(f.state),
                    Ok(faultline_proto::v1::FaultState::Active | faultline_proto::v1::FaultState::Pending)
                );
                if !live {
                    let _ = held.close(client, false).await;
                    writeln!(out, "{} ended: {} ({})", f.id, crate::render::state_name(f.state), f.end_reason)?;
                    out.flush()?;
                    return Ok(());
                }
            }
        }
    }
    let r = held.close(client, true).await?;
    for x in &r.results {
        match x.ok {
            true => writeln!(out, "reverted {}", x.id)?,
            false => writeln!(out, "FAILED to revert {}: {}", x.id, x.error)?,
        }
    }
    out.flush()?;
    Ok(())
}
