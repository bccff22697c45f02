//! Ending faults. A revert, the timer, an abort, a lapsed lease and the health guard
//! all claim the end in the registry; the one claim that wins runs the end in a task
//! of its own (a caller that goes away cannot cut it short), and every claimant waits
//! for the same filed outcome. Also crash recovery from the journal.

use std::time::SystemTime;

use super::Engine;
use super::effects::Effects;
use super::inject::journal_entry;
use super::journal;
use super::record::{EndReason, EventType, FaultRecord, RevertResult, State};
use super::registry::{Claim, Done, Ending, Outcome};
use crate::error::FaultError;

/// Waits for a fault's end to be filed.
pub(super) async fn wait(mut done: Done) -> Outcome {
    match done.wait_for(Option::is_some).await {
        Ok(v) => v.clone().expect("waited for Some"),
        Err(_) => Err(FaultError::Failed(
            "internal error: a fault's end was dropped before it was filed".into(),
        )),
    }
}

fn revert_result(id: String, r: Outcome) -> RevertResult {
    RevertResult {
        id,
        result: r.map(|_| ()).map_err(|e| e.to_string()),
    }
}

impl<E: Effects> Engine<E> {
    /// Ends fault `id` for `why`: runs its end if this call wins the claim, and in any
    /// case returns the filed outcome. With `doom_pending`, a fault still being applied
    /// ends as soon as it is; without, that is refused ("retry in a moment").
    pub(super) async fn end(&self, id: &str, why: EndReason, doom_pending: bool) -> Outcome {
        let claim = self.reg().claim(id, &why, doom_pending)?;
        self.settle(claim).await
    }

    async fn settle(&self, claim: Claim<E::Undo>) -> Outcome {
        match claim {
            Claim::Ended(r) => Ok(*r),
            Claim::Wait(done) => wait(done).await,
            Claim::Own(ending, done) => {
                self.spawn_finish(*ending);
                wait(done).await
            }
        }
    }

    pub(super) fn spawn_finish(&self, ending: Ending<E::Undo>) {
        let me = self.clone();
        tokio::spawn(async move { me.finish(ending).await });
    }

    /// Runs many ends concurrently in one task of their own (an abort of a hundred
    /// faults spawns one task, not a hundred).
    fn spawn_finishes(&self, endings: Vec<Ending<E::Undo>>) {
        if endings.is_empty() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            futures::future::join_all(endings.into_iter().map(|e| me.finish(e))).await;
        });
    }

    /// Stops the fault's tasks, reverts it, files the ended record, emits the event,
    /// then tells every waiter.
    async fn finish(&self, ending: Ending<E::Undo>) {
        let Ending {
            record: mut rec,
            undo,
            undo_record,
            tasks,
            why,
        } = ending;
        for t in &tasks {
            t.abort();
        }
        let result = self.effects().revert(undo).await;
        rec.ended_at = Some(SystemTime::now());
        let (state, event, mut reason) = match (&result, &why) {
            (Err(e), _) => (
                State::Failed,
                EventType::Failed,
                format!("revert failed: {e}"),
            ),
            (Ok(_), EndReason::Expired) => (
                State::Expired,
                EventType::Expired,
                "duration ran out".to_string(),
            ),
            (Ok(_), EndReason::Reverted(r)) => (State::Reverted, EventType::Reverted, r.clone()),
            (Ok(_), EndReason::Failed(r)) => (State::Failed, EventType::Failed, r.clone()),
        };
        if let Ok(Some(gone)) = &result {
            reason = format!("{reason} (nothing left to undo: {gone})");
        }
        rec.state = state;
        rec.end_reason = reason.clone();
        match &result {
            Ok(_) => self.effects().journal_remove(&rec.id),
            Err(_) => {
                let _ = self.effects().journal_write(
                    None,
                    &journal_entry(&rec, journal::Phase::RevertFailed, undo_record),
                );
            }
        }
        let done = self.reg().finish(&rec.id, rec.clone());
        self.emit(event, Some(&rec), reason, &rec.requested_by);
        if let Some(d) = done {
            let _ = d.send(Some(result.map(|_| rec)));
        }
    }

    /// Reverts one fault now (refused while it is still being applied).
    pub async fn revert(&self, id: &str, reason: &str) -> Result<FaultRecord, FaultError> {
        let reason = if reason.is_empty() {
            "reverted on request".to_string()
        } else {
            reason.to_string()
        };
        self.end(id, EndReason::Reverted(reason), false).await
    }

    /// Reverts every live fault concurrently (one still being applied ends as soon as
    /// it is); returns when all are filed.
    pub async fn revert_all(&self, reason: &str) -> Vec<RevertResult> {
        let why = EndReason::Reverted(if reason.is_empty() {
            "abort".to_string()
        } else {
            format!("abort: {reason}")
        });
        let claims = self.reg().claim_all(&why);
        let mut owned = Vec::new();
        let mut waits = Vec::new();
        for (id, claim) in claims {
            match claim {
                Claim::Own(ending, done) => {
                    owned.push(*ending);
                    waits.push((id, Claim::Wait(done)));
                }
                other => waits.push((id, other)),
            }
        }
        self.spawn_finishes(owned);
        let ends = waits
            .into_iter()
            .map(|(id, claim)| async move { revert_result(id, self.settle(claim).await) });
        futures::future::join_all(ends).await
    }

    /// Ends these faults concurrently for `reason` (a lease's faults).
    pub(super) async fn revert_ids(&self, ids: Vec<String>, reason: &str) -> Vec<RevertResult> {
        let why = EndReason::Reverted(reason.to_string());
        let ends = ids.into_iter().map(|id| {
            let why = why.clone();
            async move {
                let r = self.end(&id, why, true).await;
                revert_result(id, r)
            }
        });
        futures::future::join_all(ends).await
    }

    /// Reverts every fault a previous run left in the journal, oldest first. Call
    /// before serving. An entry is forgotten once its undo ran; one whose revert
    /// failed is kept (phase `revert_failed`) for the next start or `faultd cleanup`.
    pub async fn recover(&self) -> Vec<RevertResult> {
        let mut out = Vec::new();
        for e in self.effects().journal_load() {
            let r = self.effects().revert_record(&e.undo).await;
            match &r {
                Ok(()) => {
                    tracing::info!(fault = %e.id, kind = %e.kind, phase = ?e.phase, undo = ?e.undo, "recovered: reverted a fault left by a previous run");
                    self.effects().journal_remove(&e.id);
                }
                Err(err) => {
                    tracing::error!(fault = %e.id, error = %err, "recovery could not revert a fault left by a previous run");
                    let mut kept = e.clone();
                    kept.phase = journal::Phase::RevertFailed;
                    let _ = self.effects().journal_write(None, &kept);
                }
            }
            out.push(RevertResult {
                id: e.id,
                result: r.map_err(|e| e.to_string()),
            });
        }
        out
    }
}
