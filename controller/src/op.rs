//! One command on one agent: an [`Op`] (what the command line asked, free of clap) and
//! its typed [`Answer`]. `faultctl` runs an op on the agent it talks to, or on every node
//! of a fleet ([`crate::fleet`]).

use faultline_proto::v1::agent_client::AgentClient;
use faultline_proto::v1::{
    CloseLeaseRequest, GetLimitsRequest, GetRequest, ListRequest, OpenLeaseRequest,
    RenewLeaseRequest, RevertAllRequest, RevertRequest, StatusRequest,
};
use tonic::transport::Channel;

use crate::answer::{Answer, Held, LeaseClosed};
use crate::error::CtlError;
use crate::lease;
use crate::request::{Inject, Period};

/// A command for one agent.
// One per command: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Status,
    Limits,
    List {
        all: bool,
    },
    Get {
        id: String,
    },
    Revert {
        id: String,
        reason: String,
    },
    /// Revert every active fault.
    Abort {
        reason: String,
    },
    /// With `hold`, a lease of that TTL is held while the fault lives, and Ctrl-C reverts it.
    Inject {
        inject: Inject,
        hold: Option<Period>,
    },
    OpenLease {
        ttl: Period,
    },
    RenewLease {
        id: String,
    },
    CloseLease {
        id: String,
        revert: bool,
    },
}

/// Runs `op` on `client`.
pub async fn execute(client: &mut AgentClient<Channel>, op: &Op) -> Result<Answer, CtlError> {
    Ok(match op {
        Op::Status => Answer::Status(client.status(StatusRequest {}).await?.into_inner()),
        Op::Limits => Answer::Limits(client.get_limits(GetLimitsRequest {}).await?.into_inner()),
        Op::List { all } => Answer::List(
            client
                .list(ListRequest {
                    include_ended: *all,
                })
                .await?
                .into_inner(),
        ),
        Op::Get { id } => Answer::Fault(
            client
                .get(GetRequest { id: id.clone() })
                .await?
                .into_inner(),
        ),
        Op::Revert { id, reason } => Answer::Reverted(
            client
                .revert(RevertRequest {
                    id: id.clone(),
                    reason: reason.clone(),
                })
                .await?
                .into_inner(),
        ),
        Op::Abort { reason } => Answer::Aborted(
            client
                .revert_all(RevertAllRequest {
                    reason: reason.clone(),
                })
                .await?
                .into_inner(),
        ),
        Op::Inject { inject, hold: None } => {
            Answer::Injected(client.inject(inject.to_proto()).await?.into_inner())
        }
        Op::Inject {
            inject,
            hold: Some(ttl),
        } => {
            let mut interrupt = lease::Interrupt::catch()?;
            let (r, held) =
                lease::inject_held(client, inject.to_proto(), ttl.as_duration()).await?;
            let lease_id = held.id().to_string();
            let fault_id = r.fault.as_ref().map(|f| f.id.clone());
            let end = lease::hold(client, held, fault_id, &mut interrupt).await?;
            Answer::Held(Held {
                inject: r,
                lease_id,
                end,
            })
        }
        Op::OpenLease { ttl } => Answer::LeaseOpened(
            client
                .open_lease(OpenLeaseRequest {
                    ttl_ms: ttl.as_millis(),
                    holder: lease::holder("lease open"),
                })
                .await?
                .into_inner(),
        ),
        Op::RenewLease { id } => Answer::LeaseRenewed(
            client
                .renew_lease(RenewLeaseRequest { id: id.clone() })
                .await?
                .into_inner(),
        ),
        Op::CloseLease { id, revert } => Answer::LeaseClosed(LeaseClosed {
            id: id.clone(),
            response: client
                .close_lease(CloseLeaseRequest {
                    id: id.clone(),
                    revert_faults: *revert,
                })
                .await?
                .into_inner(),
        }),
    })
}
