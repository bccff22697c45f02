//! Leases: a controller holds one by renewing it; when it stops, the lease lapses at
//! its deadline and every fault bound to it is reverted ("lease expired"). The watcher
//! sleeps until the deadline, not in a polling loop.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::Engine;
use super::effects::Effects;
use super::record::{LeaseInfo, RevertResult};
use super::registry::Lapse;
use crate::error::FaultError;
use crate::policy;

impl<E: Effects> Engine<E> {
    /// Opens a lease that lives `ttl` without renewal.
    pub fn open_lease(&self, ttl: Duration, holder: &str) -> Result<LeaseInfo, FaultError> {
        if ttl < Duration::from_secs(1) {
            return Err(FaultError::invalid("ttl_ms", "a lease lives at least 1s"));
        }
        policy::check_lease_ttl(ttl, self.limits())?;
        let info = self.reg().open_lease(ttl, holder, Instant::now());
        self.spawn_lease_watch(info.id.clone());
        tracing::info!(lease = %info.id, ttl = ?ttl, holder, "lease opened");
        Ok(info)
    }

    /// Pushes a lease's deadline `ttl` into the future.
    pub fn renew_lease(&self, id: &str) -> Result<LeaseInfo, FaultError> {
        self.reg().renew_lease(id, Instant::now())
    }

    /// Releases a lease; with `revert`, reverts its faults (without, they run to their
    /// own duration).
    pub async fn close_lease(
        &self,
        id: &str,
        revert: bool,
    ) -> Result<Vec<RevertResult>, FaultError> {
        let faults = self.reg().close_lease(id, revert)?;
        Ok(self.revert_ids(faults, &format!("lease {id} closed")).await)
    }

    fn spawn_lease_watch(&self, id: String) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let lapse = me.reg().lapse(&id, Instant::now());
                match lapse {
                    Lapse::Gone => return,
                    Lapse::Until(deadline) => tokio::time::sleep_until(deadline).await,
                    Lapse::Lapsed(info) => {
                        me.inner.lease_lapses.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(lease = %id, holder = %info.holder, faults = info.faults.len(), "lease expired: reverting its faults");
                        let reason = format!(
                            "lease expired ({} stopped renewing lease {id})",
                            info.holder
                        );
                        me.revert_ids(info.faults, &reason).await;
                        return;
                    }
                }
            }
        });
    }
}
