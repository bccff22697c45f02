//! The fault registry and lifecycle.
//!
//! | file | concern |
//! |---|---|
//! | `registry.rs` | the synchronous state machine: reserve, activate, claim the end, finish; leases, kill-rate window |
//! | `effects.rs` | the seam: [`Effects`] (plan, apply, revert, journal) and [`HostEffects`], the real ones |
//! | `inject.rs` | checks, plan, reserve, journal the intent, apply, activate |
//! | `end.rs` | revert, expiry, abort and lease lapse all end a fault through one claim; recovery |
//! | `lease.rs` | leases and the watcher that reverts a lapsed lease's faults |
//! | `tasks.rs` | a fault's own tasks: its timer, a repeating kill's loop, a watcher (stress workers dead: failed; container gone: reverted) |
//! | `journal.rs` | the on-disk journal |
//! | `health.rs` | the health guard |
//! | `testing.rs` | [`testing::FakeEffects`] and the lifecycle contract both effects pass |
//!
//! Waiting is by notification: whoever claims a fault's end runs it in a task of its
//! own, and every other caller (a second revert, the timer, an abort, a lapsed lease)
//! awaits the same outcome.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::broadcast;

mod effects;
mod end;
pub mod health;
mod inject;
pub mod journal;
mod lease;
mod record;
mod registry;
mod tasks;
pub mod testing;
#[cfg(test)]
mod tests;

pub use effects::{
    Admit, Applied, CRASH_AFTER_APPLY_ENV, CRASH_AFTER_JOURNAL_ENV, Effects, HostEffects,
    PlanFacts, Planned,
};
pub use record::{
    EndReason, Event, EventType, FaultRecord, InjectOutcome, InjectRequest, LeaseInfo,
    RevertResult, State,
};
pub use registry::ENDED_KEPT;

use crate::error::FaultError;
use crate::host::Host;
use crate::limits::Limits;
use registry::Registry;

/// The engine: cheap to clone, safe to share across requests.
pub struct Engine<E: Effects = HostEffects> {
    inner: Arc<Inner<E>>,
}

impl<E: Effects> Clone for Engine<E> {
    fn clone(&self) -> Self {
        Engine {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<E: Effects> {
    effects: E,
    reg: Mutex<Registry<E::Undo>>,
    events: broadcast::Sender<Event>,
    started_at: SystemTime,
    health_aborts: AtomicU64,
    lease_lapses: AtomicU64,
}

impl Engine<HostEffects> {
    /// An engine on this host; with a journal, every fault is recorded durably while
    /// it lives.
    pub fn new(host: Host, journal: Option<journal::Journal>) -> Engine {
        Engine::with_effects(HostEffects::new(host, journal))
    }

    pub fn host(&self) -> &Host {
        self.inner.effects.host()
    }

    /// The journal, if this engine keeps one.
    pub fn journal(&self) -> Option<&journal::Journal> {
        self.inner.effects.journal()
    }
}

impl<E: Effects> Engine<E> {
    /// An engine over any [`Effects`] (the fake ones in tests).
    pub fn with_effects(effects: E) -> Engine<E> {
        Engine::with_effects_and_events(effects, 1024)
    }

    /// [`Engine::with_effects`] with room for `events` lifecycle events a slow watcher
    /// may fall behind by (the channel's slots are allocated up front: a simulator of
    /// thousands of agents in one process keeps this small).
    pub fn with_effects_and_events(effects: E, events: usize) -> Engine<E> {
        let (events, _) = broadcast::channel(events.max(1));
        Engine {
            inner: Arc::new(Inner {
                effects,
                reg: Mutex::new(Registry::default()),
                events,
                started_at: SystemTime::now(),
                health_aborts: AtomicU64::new(0),
                lease_lapses: AtomicU64::new(0),
            }),
        }
    }

    pub fn effects(&self) -> &E {
        &self.inner.effects
    }

    pub fn limits(&self) -> &Limits {
        self.inner.effects.limits()
    }

    pub fn started_at(&self) -> SystemTime {
        self.inner.started_at
    }

    fn reg(&self) -> MutexGuard<'_, Registry<E::Undo>> {
        // A panic while holding the lock leaves the registry consistent (every mutation
        // is a single step of the state machine), so a poisoned lock is still usable.
        self.inner.reg.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many times the health guard has aborted every fault since start (the
    /// metrics hook `health_abort()` reads this).
    pub fn health_aborts(&self) -> u64 {
        self.inner.health_aborts.load(Ordering::Relaxed)
    }

    fn count_health_abort(&self) {
        self.inner.health_aborts.fetch_add(1, Ordering::Relaxed);
    }

    /// How many leases have lapsed (their holder stopped renewing) since start.
    pub fn lease_lapses(&self) -> u64 {
        self.inner.lease_lapses.load(Ordering::Relaxed)
    }

    /// Lifecycle events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    fn emit(
        &self,
        kind: EventType,
        fault: Option<&FaultRecord>,
        message: String,
        requested_by: &str,
    ) {
        let _ = self.inner.events.send(Event {
            kind,
            at: SystemTime::now(),
            fault_id: fault.map(|f| f.id.clone()).unwrap_or_default(),
            fault_kind: fault.map(|f| f.kind()),
            message,
            fault: fault.cloned(),
            requested_by: requested_by.to_string(),
        });
    }

    /// One fault, live or recently ended.
    pub fn get(&self, id: &str) -> Result<FaultRecord, FaultError> {
        self.reg().get(id)
    }

    /// Live faults (oldest first), and with `include_ended` the recently ended ones.
    pub fn list(&self, include_ended: bool) -> Vec<FaultRecord> {
        self.reg().list(include_ended)
    }
}
