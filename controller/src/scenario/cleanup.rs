//! The end of a run, after it finished or was aborted: everything the run made is ended
//! on every node it touched, and checked to be gone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use faultline_proto::v1::agent_client::AgentClient;
use faultline_proto::v1::{
    CloseLeaseRequest, FaultState, ListRequest, RevertAllRequest, RevertRequest,
};
use tonic::transport::Channel;

use super::report::NodeCleanup;
use super::runner::{ROUND_CONCURRENCY, Runner};
use crate::fanout::fan_out_with;

impl Runner {
    /// Ends everything this run made on every node it touched: reverts each fault of
    /// the run by id (retrying while one is still being applied: an inject cut short by
    /// the abort may land after it), then closes the lease with `revert_faults` as a
    /// final sweep (and calls RevertAll if `abort.revert_all` asks), then checks that
    /// nothing of the run is left.
    pub(super) async fn cleanup(&self, reason: &str) -> Vec<NodeCleanup> {
        let revert_all = self.sc.abort.revert_all && !reason.is_empty();
        let why = if reason.is_empty() {
            format!("scenario {} finished", self.sc.name)
        } else {
            format!("scenario {} aborted: {reason}", self.sc.name)
        };
        // At most ROUND_CONCURRENCY nodes at a time (a connection each, over Unix
        // sockets a new one): a node whose faults are gone takes one List.
        let held = self.held_now();
        fan_out_with(&held, ROUND_CONCURRENCY, |h| {
            let why = why.clone();
            async move {
                let mut c = NodeCleanup {
                    node: h.node.name.clone(),
                    lease_id: h.lease_id.clone(),
                    ..Default::default()
                };
                let mut client = match h.client().await {
                    Ok(c) => c,
                    Err(e) => {
                        c.detail.push(e);
                        return c;
                    }
                };
                let deadline = Instant::now() + CLEANUP_RETRY;
                let mut last_err: BTreeMap<String, String> = BTreeMap::new();
                loop {
                    let ours = match self.ours(&mut client, &h.lease_id).await {
                        Ok(v) => v,
                        Err(e) => {
                            c.detail.push(e);
                            break;
                        }
                    };
                    if ours.is_empty() || Instant::now() >= deadline {
                        break;
                    }
                    for id in ours {
                        match client
                            .revert(RevertRequest {
                                id: id.clone(),
                                reason: why.clone(),
                            })
                            .await
                        {
                            Ok(_) => {
                                c.reverted += 1;
                                last_err.remove(&id);
                            }
                            Err(s) => {
                                last_err.insert(id, s.message().to_string());
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                match client
                    .close_lease(CloseLeaseRequest {
                        id: h.lease_id.clone(),
                        revert_faults: true,
                    })
                    .await
                {
                    Ok(r) => {
                        let r = r.into_inner();
                        c.reverted += r.results.iter().filter(|x| x.ok).count();
                        for x in r.results.iter().filter(|x| !x.ok) {
                            last_err.insert(x.id.clone(), x.error.clone());
                        }
                    }
                    Err(s) => c.detail.push(format!("close lease: {}", s.message())),
                }
                if revert_all {
                    match client.revert_all(RevertAllRequest { reason: why }).await {
                        Ok(r) => {
                            c.reverted += r.into_inner().results.iter().filter(|x| x.ok).count()
                        }
                        Err(s) => c.detail.push(format!("revert all: {}", s.message())),
                    }
                }
                match self.ours(&mut client, &h.lease_id).await {
                    Ok(left) => {
                        c.clean = left.is_empty();
                        for id in &left {
                            c.detail.push(format!(
                                "{id} STILL ACTIVE: {}",
                                last_err.get(id).map_or("not reverted", String::as_str)
                            ));
                        }
                    }
                    Err(e) => c.detail.push(e),
                }
                c
            }
        })
        .await
    }

    /// The faults of this run still pending or active on a node.
    async fn ours(
        &self,
        client: &mut AgentClient<Channel>,
        lease_id: &str,
    ) -> Result<Vec<String>, String> {
        let l = client
            .list(ListRequest {
                include_ended: false,
            })
            .await
            .map_err(|s| format!("list: {}", s.message()))?;
        Ok(l.into_inner()
            .faults
            .into_iter()
            .filter(|f| {
                (f.state == FaultState::Active as i32 || f.state == FaultState::Pending as i32)
                    && (f.lease_id == lease_id || f.labels.get("run") == Some(&self.run_id))
            })
            .map(|f| f.id)
            .collect())
    }
}

/// How long the cleanup keeps retrying reverts of faults still being applied.
const CLEANUP_RETRY: Duration = Duration::from_secs(10);
