//! A fault's own tasks, started when it becomes active and aborted when it ends: the
//! timer that expires it, a repeating kill's loop, and the watcher that ends a stress
//! fault whose workers died, or a fault whose container is gone.

use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::Engine;
use super::effects::Effects;
use super::record::{EndReason, EventType};
use super::registry::Lookup;
use crate::fault::FaultSpec;
use crate::sys::container::Container;

/// How often a watched fault (stress workers, a container) is checked.
const WATCH_EVERY: Duration = Duration::from_millis(250);

impl<E: Effects> Engine<E> {
    pub(super) fn spawn_tasks(
        &self,
        id: &str,
        spec: &FaultSpec,
        ttl: Option<Duration>,
        watch: bool,
        container: Option<Container>,
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
        if watch || container.is_some() {
            tasks.push(self.spawn_watch(id.to_string(), watch, container));
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

    /// Ends the fault as reverted once [`Effects::target_gone`] reports its container
    /// gone (checked first: a container's stop may take stress workers inside it along),
    /// or as failed, with why, once [`Effects::failure`] reports it (`workers`). Either
    /// way through [`Engine::end`], so exactly one ending wins and the undo runs.
    fn spawn_watch(&self, id: String, workers: bool, container: Option<Container>) -> AbortHandle {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                match me.reg().active_undo(&id) {
                    Lookup::Gone => return,
                    Lookup::NotActive => continue,
                    Lookup::Active(_) => {}
                }
                let gone = container.as_ref().and_then(|c| me.effects().target_gone(c));
                let why = match gone {
                    Some(why) => EndReason::Reverted(why),
                    None if workers => {
                        let failed = match me.reg().active_undo(&id) {
                            Lookup::Active(undo) => me.effects().failure(undo),
                            Lookup::Gone => return,
                            Lookup::NotActive => None,
                        };
                        match (failed, &container) {
                            (None, _) => continue,
                            (Some(why), None) => EndReason::Failed(why),
                            // Workers that die with their container die a moment
                            // before it is seen gone: one more look decides.
                            (Some(why), Some(c)) => {
                                tokio::time::sleep(WATCH_EVERY).await;
                                match me.effects().target_gone(c) {
                                    Some(gone) => EndReason::Reverted(gone),
                                    None => EndReason::Failed(why),
                                }
                            }
                        }
                    }
                    None => continue,
                };
                let _ = me.end(&id, why, true).await;
                return;
            }
        })
        .abort_handle()
    }
}
