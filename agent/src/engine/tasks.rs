//! A fault's own tasks, started when it becomes active and aborted when it ends: the
//! timer that expires it, a repeating kill's loop, and the watcher that ends a stress
//! fault whose workers died.

use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::Engine;
use super::effects::Effects;
use super::record::{EndReason, EventType};
use super::registry::Lookup;
use crate::fault::FaultSpec;

/// How often a watched fault (stress workers) is checked.
const WATCH_EVERY: Duration = Duration::from_millis(250);

impl<E: Effects> Engine<E> {
    pub(super) fn spawn_tasks(
        &self,
        id: &str,
        spec: &FaultSpec,
        ttl: Option<Duration>,
        watch: bool,
    ) -> Vec<AbortHandle> {
        let mut tasks = Vec::new();
        if let Some(d) = ttl {
            let (me, id) = (self.clone(), id.to_string());
            tasks.push(
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    // The end runs in a task of its own, so aborting this timer (the end
                    // stops the fault's tasks) never cuts it short.
                    let _ = me.end(&id, EndReason::Expired, true).await;
                })
                .abort_handle(),
            );
        }
        if let FaultSpec::Kill(k) = spec
            && let Some(every) = k.every
        {
            tasks.push(self.spawn_kill_loop(id.to_string(), k.clone(), every));
        }
        if watch {
            tasks.push(self.spawn_watch(id.to_string()));
        }
        tasks
    }

    fn spawn_kill_loop(
        &self,
        id: String,
        spec: crate::fault::KillSpec,
        every: Duration,
    ) -> AbortHandle {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(Instant::now() + every, every);
            loop {
                tick.tick().await;
                let m2 = me.clone();
                let admit =
                    Box::new(move |n: usize| m2.reg().admit_kills(n, m2.limits(), Instant::now()));
                let msg = match me.effects().kill_round(&spec, admit).await {
                    Ok(d) => d,
                    Err(e) => format!("round skipped: {e}"),
                };
                let Ok(rec) = me.get(&id) else { return };
                me.emit(EventType::Tick, Some(&rec), msg, &rec.requested_by);
            }
        })
        .abort_handle()
    }

    /// Ends the fault as failed, with why, once [`Effects::failure`] reports it.
    fn spawn_watch(&self, id: String) -> AbortHandle {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                let why = match me.reg().active_undo(&id) {
                    Lookup::Gone => return,
                    Lookup::NotActive => None,
                    Lookup::Active(undo) => me.effects().failure(undo),
                };
                if let Some(why) = why {
                    let _ = me.end(&id, EndReason::Failed(why), true).await;
                    return;
                }
            }
        })
        .abort_handle()
    }
}
