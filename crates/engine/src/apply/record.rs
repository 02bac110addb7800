//! One record taken up in a pass: its decision through the gate, then
//! written, kept for later, parked or stored; decided again (and through
//! the gate again) when a write meets a 409, a 412 or a booking's new
//! interview. The one place a record's fate is carried out.

use tracing::{Instrument, info, info_span, warn};

use hitosync_core::reconcile::{Case, Decision, Mapping, Quiet, Refusal, Snapshot, decide_among};
use hitosync_state::{Commit, HistoryEntry, Intent, StateError, StateStoreExt, WorkKey};

use super::{Ctx, push_line};
use crate::execute::{Step, Writes};
use crate::gate::{self, Attempt, Conditions, Fate, Pass, Work};
use crate::work::{Later, WorkItem};
use crate::{CycleReport, Engine, EngineError, PlanItem};

/// How many times one record is decided again in one cycle when the other
/// side moves under it (412) before it is parked until the next.
const MAX_ATTEMPTS: usize = 4;

/// What one record came to, for the cycle's report.
enum Outcome {
    /// Written (or decided again after a write and found settled).
    Applied,
    Parked,
    /// Nothing needed writing.
    Untouched,
}

/// A record as a pass takes it up.
pub(super) struct Taken<'k> {
    pub key: &'k WorkKey,
    /// Where it stands in the work set (kept when its decision is kept).
    pub order: Vec<u8>,
    pub item: WorkItem,
    /// The agreement as read when it was taken up.
    pub agreement: Option<Snapshot>,
    pub decision: Decision,
    pub pass: Pass,
}

impl Engine<'_> {
    pub(super) async fn run_record(
        &self,
        ctx: &Ctx<'_>,
        taken: Taken<'_>,
        report: &mut CycleReport,
    ) -> Result<(), EngineError> {
        let Taken {
            key,
            order,
            mut item,
            mut agreement,
            mut decision,
            pass,
        } = taken;
        let dry = ctx.opts.dry_run;
        // A decision kept by the first pass was counted there.
        let mut counted = pass != Pass::Visible && decision.is_destructive();
        let mut attempt = Attempt::First;
        let mut interview_id = decision.interview_id().cloned();
        let mut writes = Writes::default();
        for _ in 0..MAX_ATTEMPTS {
            if decision.is_destructive() && !counted {
                ctx.breaker.lock().count(true);
                counted = true;
            }
            let conditions = Conditions {
                pass,
                attempt,
                breaker: ctx.breaker.lock().verdict(),
                invitations: if decision.notifies() {
                    ctx.invitations.lock().admit(ctx.now)
                } else {
                    gate::Invitations::Open
                },
            };
            let fate = gate::fate(&decision, conditions);
            let first = attempt == Attempt::First;
            match fate {
                Fate::Refused(refusal) => {
                    if first {
                        push_line(report, dry, PlanItem::of(key, &decision, false));
                    }
                    report.refused += 1;
                    if !dry {
                        self.refuse(ctx, key, refusal, report).await?;
                    }
                    return Ok(());
                }
                Fate::Quiet(quiet) => {
                    let interesting = !matches!(quiet.case, Case::Unmanaged | Case::NothingToDo);
                    if first && interesting {
                        push_line(report, dry, PlanItem::of(key, &decision, false));
                    }
                    if !dry {
                        self.store_quiet(ctx, key, quiet, agreement.as_ref())
                            .await?;
                    }
                    let outcome = if first {
                        Outcome::Untouched
                    } else {
                        Outcome::Applied
                    };
                    return self.done(report, writes, 0, outcome);
                }
                Fate::Later => {
                    if decision.is_bookkeeping() && pass == Pass::Visible && first {
                        ctx.breaker.lock().keep_bookkeeping();
                    }
                    // Kept where it stands, with what it was decided from.
                    item.later = Some(Later {
                        cycle: ctx.now,
                        decision,
                    });
                    ctx.work.put_at(key, &item, &order).await?;
                    return Ok(());
                }
                Fate::Held => {
                    if first {
                        report.decisions += 1;
                        push_line(report, dry, PlanItem::of(key, &decision, true));
                    }
                    if !dry {
                        let why = ctx
                            .breaker
                            .lock()
                            .tripped()
                            .unwrap_or("mass deletion")
                            .to_string();
                        self.store.park_held(key, &why, ctx.now).await?;
                    }
                    return self.done(report, writes, 0, Outcome::Parked);
                }
                Fate::WaitForInvitations => {
                    if first {
                        report.decisions += 1;
                        push_line(report, dry, PlanItem::of(key, &decision, false));
                    }
                    if !dry {
                        let hold = ctx.invitations.lock().hold.clone();
                        if let Some(hold) = hold {
                            self.park_for_invitations(key, &hold, ctx.now, report)
                                .await?;
                        }
                    }
                    return self.done(report, writes, 0, Outcome::Parked);
                }
                Fate::Apply { work, probe } => {
                    if first {
                        report.decisions += 1;
                        push_line(report, dry, PlanItem::of(key, &decision, false));
                    }
                    if dry {
                        return Ok(());
                    }
                    self.store
                        .put_intent(&Intent {
                            key: key.clone(),
                            summary: decision.log_line(),
                            at: ctx.now,
                        })
                        .await?;
                    let span = info_span!("record", key = %key, case = ?decision.case());
                    info!(parent: &span, plan = %decision.log_line(), "applying");
                    let step = match work {
                        Work::Book(b) => self.book(b, &item).instrument(span).await?,
                        Work::Write(p) => self.execute(p, &item).instrument(span).await?,
                    };
                    match step {
                        Step::Done {
                            snapshot,
                            writes: w,
                        } => {
                            writes.add(w);
                            for c in decision.conflicts() {
                                warn!(%key, field = %c.field, hitolink = %c.hitolink, google = %c.google, winner = %c.winner, "conflict");
                            }
                            let iid = decision
                                .interview_id()
                                .cloned()
                                .or(interview_id)
                                .unwrap_or_default();
                            let queued = snapshot.event_ref_write().is_some();
                            self.store
                                .commit(Commit {
                                    key,
                                    interview_id: &iid,
                                    snapshot: Some(&snapshot),
                                    entry: HistoryEntry {
                                        at: ctx.now,
                                        case: decision.case(),
                                        summary: decision.log_line(),
                                    },
                                    conflicts: decision.conflicts(),
                                    pending_link_at: queued.then_some(order.as_slice()),
                                })
                                .await?;
                            if queued {
                                ctx.queued.notify_one();
                            }
                            if probe {
                                self.lift_invitations(ctx).await?;
                            }
                            return self.done(
                                report,
                                writes,
                                decision.conflicts().len(),
                                Outcome::Applied,
                            );
                        }
                        Step::Again {
                            hitolink,
                            calendar,
                            interview_id: iid,
                            writes: w,
                        } => {
                            writes.add(w);
                            if probe && w.calendar > 0 {
                                // A notifying write went through before
                                // the other side moved: the limit lifted.
                                self.lift_invitations(ctx).await?;
                            } else if probe {
                                ctx.invitations.lock().probing = false;
                            }
                            item.hitolink = *hitolink;
                            item.calendar = *calendar;
                            if iid.is_some() {
                                interview_id = iid;
                            }
                            agreement = match &interview_id {
                                Some(id) => self.store.record(id).await?.map(|r| r.snapshot),
                                None => None,
                            };
                            decision = decide_among(
                                agreement.as_ref(),
                                item.hitolink.as_ref(),
                                item.calendar.as_ref(),
                                &item.claimants,
                                &self.policy,
                            )
                            .decision;
                            attempt = Attempt::Again;
                        }
                        Step::Park(reason) => {
                            if probe {
                                ctx.invitations.lock().probing = false;
                            }
                            let p = self.store.park(key, &reason, ctx.now).await?;
                            warn!(%key, %reason, attempts = p.attempts, "parked");
                            return self.done(report, writes, 0, Outcome::Parked);
                        }
                        Step::HoldInvitations(reason) => {
                            self.hold_invitations(ctx, key, reason, report).await?;
                            return self.done(report, writes, 0, Outcome::Parked);
                        }
                    }
                }
            }
        }
        let p = self
            .store
            .park(
                key,
                "kept changing while being written; retried next cycle",
                ctx.now,
            )
            .await?;
        warn!(%key, attempts = p.attempts, "parked after repeated conflicts");
        self.done(report, writes, 0, Outcome::Parked)
    }

    /// Counts what one record came to.
    fn done(
        &self,
        report: &mut CycleReport,
        writes: Writes,
        conflicts: usize,
        outcome: Outcome,
    ) -> Result<(), EngineError> {
        report.calendar_writes += writes.calendar;
        report.hitolink_writes += writes.hitolink;
        report.conflicts += conflicts;
        match outcome {
            Outcome::Parked => report.parked += 1,
            Outcome::Applied => report.applied += 1,
            Outcome::Untouched => {}
        }
        Ok(())
    }

    /// Nothing can be written: an interview waits parked until the calendar
    /// changes; a booking that cannot book is reported once and settled.
    async fn refuse(
        &self,
        ctx: &Ctx<'_>,
        key: &WorkKey,
        refusal: &Refusal,
        report: &mut CycleReport,
    ) -> Result<(), StateError> {
        match key {
            WorkKey::Interview(_) => {
                let p = self.store.park(key, &refusal.reason, ctx.now).await?;
                warn!(%key, reason = %refusal.reason, attempts = p.attempts, "refused; parked until the calendar changes");
                report.parked += 1;
            }
            WorkKey::Event(ev) => {
                if self
                    .store
                    .report(ev, None, &refusal.reason, ctx.now)
                    .await?
                {
                    warn!(event = %ev, reason = %refusal.reason, "booking refused; reported in status");
                }
                self.store.settle(key).await?;
            }
        }
        Ok(())
    }

    /// A decision that writes nothing remotely: store the refreshed
    /// agreement if it changed, and settle the record's work.
    async fn store_quiet(
        &self,
        ctx: &Ctx<'_>,
        key: &WorkKey,
        quiet: &Quiet,
        agreement: Option<&Snapshot>,
    ) -> Result<(), StateError> {
        // Only a decision that knows the record (or knows it is gone on
        // both sides) may change its mapping; an orphan or a booking seen
        // without the store's knowledge must not erase one.
        let snapshot = match (&quiet.mapping, &quiet.interview_id) {
            (Mapping::Forget, Some(iid)) => Some((iid, None)),
            (Mapping::Agreed(s), Some(iid)) if Some(&**s) != agreement => Some((iid, Some(&**s))),
            (Mapping::Agreed(_) | Mapping::Forget | Mapping::Untouched, _) => None,
        };
        match snapshot {
            Some((iid, snapshot)) => {
                self.store
                    .commit(Commit {
                        key,
                        interview_id: iid,
                        snapshot,
                        entry: HistoryEntry {
                            at: ctx.now,
                            case: quiet.case,
                            summary: format!("{}; no write", quiet.summary),
                        },
                        conflicts: &[],
                        pending_link_at: None,
                    })
                    .await
            }
            None => self.store.settle(key).await,
        }
    }
}
