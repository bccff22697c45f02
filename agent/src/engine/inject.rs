//! Injecting: the limits, the plan (the dry run stops after the same checks a real
//! inject makes under the lock), a reserved slot, the intent journalled, the change,
//! and activation with the fault's tasks.

use std::time::SystemTime;

use tokio::time::Instant;

use super::Engine;
use super::effects::{Applied, Effects, PlanFacts};
use super::journal;
use super::record::{EventType, FaultRecord, InjectOutcome, InjectRequest, State};
use super::registry::{Activated, Ask};
use crate::error::FaultError;
use crate::fault::{FaultSpec, UndoRecord};
use crate::policy;

/// The journal's entry for a fault in `phase`.
pub(super) fn journal_entry(
    rec: &FaultRecord,
    phase: journal::Phase,
    undo: UndoRecord,
) -> journal::Entry {
    journal::Entry {
        id: rec.id.clone(),
        kind: rec.kind().name().to_string(),
        phase,
        created_at_ms: rec
            .created_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        requested_by: rec.requested_by.clone(),
        description: rec.description.clone(),
        undo,
    }
}

impl<E: Effects> Engine<E> {
    fn refused(&self, req: &InjectRequest, e: FaultError) -> FaultError {
        if !req.dry_run {
            let _ = self.inner.events.send(super::Event {
                kind: EventType::Refused,
                at: SystemTime::now(),
                fault_id: String::new(),
                fault_kind: Some(req.fault.spec().kind()),
                message: e.to_string(),
                fault: None,
                requested_by: req.requested_by.clone(),
            });
        }
        e
    }

    /// Injects a fault, or with `dry_run` says what it would do after the same checks:
    /// limits, targets and the host's ability (the plan), capacity, conflicts, kill
    /// rate and lease.
    pub async fn inject(&self, req: InjectRequest) -> Result<InjectOutcome, FaultError> {
        let limits = self.limits();
        let spec = req.fault.spec();
        if let Err(e) = policy::check(spec, req.fault.duration(), limits)
            .and_then(|()| policy::check_lease(req.lease.is_some(), limits))
        {
            return Err(self.refused(&req, e));
        }
        // A fault bound to a lease that does not exist would never lapse with it
        // (checked again under the lock when the slot is reserved).
        if let Some(l) = &req.lease
            && !self.reg().has_lease(l)
        {
            return Err(FaultError::NotFound(format!(
                "lease {l:?} is unknown or has lapsed: open one with OpenLease (faultctl lease open) and bind to its id"
            )));
        }
        let planned = match self.effects().plan(spec).await {
            Ok(p) => p,
            Err(e @ (FaultError::Protected(_) | FaultError::Limit { .. })) => {
                return Err(self.refused(&req, e));
            }
            Err(e) => return Err(e),
        };
        let facts = planned.facts;
        let ask = Ask {
            kind: Some(spec.kind()),
            kills: match spec {
                FaultSpec::Kill(_) => facts.targets.len(),
                _ => 0,
            },
            conflict_key: facts.conflict_key.as_deref(),
            share: facts.share,
            lease: req.lease.as_deref(),
        };
        if req.dry_run {
            let admitted = self.reg().admit(&ask, limits, Instant::now());
            admitted.map_err(|e| self.refused(&req, e))?;
            return Ok(InjectOutcome {
                fault: None,
                targets: facts.targets,
                excluded: facts.excluded,
                plan: facts.description,
                container: facts.container,
            });
        }
        let now = SystemTime::now();
        let record = FaultRecord {
            id: String::new(),
            spec: spec.clone(),
            state: State::Pending,
            labels: req.labels.clone(),
            requested_by: req.requested_by.clone(),
            created_at: now,
            duration: req.fault.duration(),
            expires_at: req.fault.ttl().map(|d| now + d),
            ended_at: None,
            end_reason: String::new(),
            description: facts.description.clone(),
            undo: String::new(),
            targets: facts.targets.clone(),
            lease: req.lease.clone(),
            container: facts.container.clone(),
        };
        let reserved = self.reg().reserve(&ask, record, limits, Instant::now());
        let record = reserved.map_err(|e| self.refused(&req, e))?;
        // From here on the fault runs to a filed state in a task of its own: a request
        // dropped halfway (the client went away) cannot strand it half-applied.
        let me = self.clone();
        tokio::spawn(async move { me.commit(req, record, planned.plan, facts).await })
            .await
            .map_err(|e| FaultError::Failed(format!("internal error: inject panicked: {e}")))?
    }

    /// Files a reserved fault that never took effect.
    fn abandon(&self, mut rec: FaultRecord, state: State, why: String) -> FaultRecord {
        rec.state = state;
        rec.ended_at = Some(SystemTime::now());
        rec.end_reason = why;
        let done = self.reg().finish(&rec.id, rec.clone());
        if state == State::Failed {
            self.emit(
                EventType::Failed,
                Some(&rec),
                rec.end_reason.clone(),
                &rec.requested_by,
            );
        } else {
            self.emit(
                EventType::Injected,
                Some(&rec),
                rec.description.clone(),
                &rec.requested_by,
            );
        }
        if let Some(d) = done {
            let _ = d.send(Some(Ok(rec.clone())));
        }
        rec
    }

    async fn commit(
        &self,
        req: InjectRequest,
        record: FaultRecord,
        plan: E::Plan,
        facts: PlanFacts,
    ) -> Result<InjectOutcome, FaultError> {
        let spec = req.fault.spec();
        let intent = journal_entry(&record, journal::Phase::Applying, facts.prospective);
        if let Err(e) = self.effects().journal_write(Some(spec), &intent) {
            self.abandon(record, State::Failed, e.to_string());
            return Err(e);
        }
        let applied = match self.effects().apply(spec, plan).await {
            Ok(a) => a,
            Err(e) => {
                // apply() undid its partial work before failing.
                self.effects().journal_remove(&record.id);
                self.abandon(record, State::Failed, e.to_string());
                return Err(e);
            }
        };
        let Applied {
            undo,
            description,
            undo_text,
            undo_record,
            targets,
            watch,
        } = applied;
        let mut rec = record;
        rec.description = description;
        rec.undo = undo_text;
        rec.targets = targets.clone();
        let outcome = |fault: FaultRecord| InjectOutcome {
            fault: Some(fault),
            targets: targets.clone(),
            excluded: facts.excluded.clone(),
            plan: facts.description.clone(),
            container: facts.container.clone(),
        };
        if !spec.lasts() {
            self.effects().journal_remove(&rec.id);
            let rec = self.abandon(rec, State::Completed, "one-shot: done".into());
            return Ok(outcome(rec));
        }
        rec.state = State::Active;
        if let Err(e) = self.effects().journal_write(
            None,
            &journal_entry(&rec, journal::Phase::Active, undo_record.clone()),
        ) {
            // The intent entry is still there, so a crash now is covered; say so and go on.
            tracing::warn!(fault = %rec.id, error = %e, "cannot journal the applied undo; the intent entry covers it");
        }
        let activated = self.reg().activate(&rec.id, rec.clone(), undo, undo_record);
        match activated {
            Activated::Active => {
                let tasks = self.spawn_tasks(
                    &rec.id,
                    spec,
                    req.fault.ttl(),
                    watch,
                    facts.container.clone(),
                );
                let orphaned = self.reg().attach_tasks(&rec.id, tasks);
                // Ended already (an abort raced the activation): its end stops nothing
                // of these, so stop them here.
                for t in orphaned.into_iter().flatten() {
                    t.abort();
                }
                self.emit(
                    EventType::Injected,
                    Some(&rec),
                    rec.description.clone(),
                    &rec.requested_by,
                );
                Ok(outcome(rec))
            }
            Activated::EndNow(ending, done) => {
                // Aborted (or its lease lapsed) while being applied: it is on the node
                // now, so say so, and end it at once.
                self.emit(
                    EventType::Injected,
                    Some(&rec),
                    rec.description.clone(),
                    &rec.requested_by,
                );
                self.spawn_finish(*ending);
                let ended = super::end::wait(done).await?;
                Ok(outcome(ended))
            }
            Activated::Vanished(undo) => {
                let _ = self.effects().revert(undo).await;
                self.effects().journal_remove(&rec.id);
                Err(FaultError::Failed(format!(
                    "fault {} vanished while being applied",
                    rec.id
                )))
            }
        }
    }
}
