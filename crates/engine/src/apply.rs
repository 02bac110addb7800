//! Applying the work set: each record decided once, in the work set's
//! order (bookings, then the soonest interviews), its fate given by the one
//! gate (`gate::fate`), first decision and every decision made again alike.
//! What people see is written in the first pass; bookkeeping, and
//! cancellations the breaker cannot clear yet, keep their decision in the
//! work set for the passes after. The interviews' half of the link has a
//! queue of its own (`write_back`), and Google's invitation limit its own
//! hold (`invitations`).

mod invitations;
mod record;
mod write_back;

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tracing::{info, warn};

use hitosync_core::ids::InterviewId;
use hitosync_core::reconcile::{LookAlike, Seen, Snapshot, derived_event_id};
use hitosync_net::disposition::{Disposed, Disposition};
use hitosync_state::{StateError, StateStoreExt, WorkKey};

use crate::breaker::MassDeletion;
use crate::gate::Pass;
use crate::work::{WorkItem, WorkSet};
use crate::{CycleOptions, CycleReport, Engine, EngineError, PlanItem};

pub(crate) use invitations::InvitationState;
pub use invitations::{INVITATION_HOLD, InvitationHold};

/// Keys read from the work set at a time.
const BATCH: usize = 200;

/// A real cycle keeps this many plan lines for its report (a dry run
/// keeps them all: the plan is what it is for).
const REPORTED_LINES: usize = 1_000;

/// What the passes of one cycle share.
pub(crate) struct Ctx<'a> {
    pub work: &'a WorkSet<'a>,
    pub opts: &'a CycleOptions,
    /// The cycle's clock; also the name of the decisions it keeps.
    pub now: DateTime<Utc>,
    pub breaker: Mutex<MassDeletion>,
    /// The passes are over: the write-back queue may drain and stop.
    pub passes_done: AtomicBool,
    /// A record's link was queued: wakes the write-back lane.
    pub queued: tokio::sync::Notify,
    /// Google's invitation limit, while it holds.
    pub invitations: Mutex<InvitationState>,
}

impl Engine<'_> {
    fn stopping(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// The agreement kept for a record, if it is a mapped interview.
    pub(crate) async fn agreement(&self, key: &WorkKey) -> Result<Option<Snapshot>, StateError> {
        match key {
            WorkKey::Interview(id) => Ok(self.store.record(id).await?.map(|r| r.snapshot)),
            WorkKey::Event(_) => Ok(None),
        }
    }

    /// Reads again, on both sides, what a crash or a parking left open. A
    /// record whose re-read fails stays parked with the new reason; the
    /// cycle goes on.
    pub(crate) async fn refetch_all(
        &self,
        ctx: &Ctx<'_>,
        keys: &[WorkKey],
    ) -> Result<(), EngineError> {
        for key in keys {
            match self.refetch(ctx.work, key, ctx.now).await {
                Ok(()) => {}
                Err(e) if e.disposition().ends_cycle() => return Err(e),
                Err(e) => {
                    if !ctx.opts.dry_run {
                        let p = self
                            .store
                            .park(key, &format!("reading it again failed: {e}"), ctx.now)
                            .await?;
                        warn!(%key, error = %e, attempts = p.attempts, "re-reading a record failed; it stays parked");
                    }
                }
            }
        }
        Ok(())
    }

    /// One pass over the work set, in its order.
    pub(crate) async fn pass(
        &self,
        ctx: &Ctx<'_>,
        pass: Pass,
        report: &mut CycleReport,
    ) -> Result<(), EngineError> {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let batch = ctx.work.batch(after.as_deref(), BATCH).await?;
            let Some((last, _)) = batch.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            for (_, key) in batch {
                if self.stopping() {
                    report.interrupted = true;
                    info!(
                        "stopping: what is left of the work is applied next time, in the same order"
                    );
                    return Ok(());
                }
                match self.take_up(ctx, &key, pass, report).await {
                    Ok(()) => {}
                    // Stopped in the middle of a record (a deadline, a
                    // shutdown): its intent stays, so it is read again.
                    Err(e) if e.disposition() == Disposition::Stopped => {
                        report.interrupted = true;
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Takes up one record in a pass: in the first, reads it (once) and
    /// decides it (once); in the others, takes the decision the first kept.
    async fn take_up(
        &self,
        ctx: &Ctx<'_>,
        key: &WorkKey,
        pass: Pass,
        report: &mut CycleReport,
    ) -> Result<(), EngineError> {
        let dry = ctx.opts.dry_run;
        let Some(item) = ctx.work.get(key).await? else {
            return Ok(());
        };
        match pass {
            Pass::Visible => {
                ctx.breaker.lock().take_up();
                if item.refetch {
                    // its re-read failed: parked, tried again when due
                    return Ok(());
                }
                if let Some(reason) = &item.invalid {
                    if !dry {
                        let p = self.store.park(key, reason, ctx.now).await?;
                        warn!(%key, %reason, attempts = p.attempts, "record cannot be synced; parked");
                    }
                    report.parked += 1;
                    push_line(report, dry, PlanItem::parked(key, reason));
                    return Ok(());
                }
                let order = crate::work::order_key(key, &item, ctx.now);
                let item = match self.with_named_event(key, item).await {
                    Ok(item) => item,
                    Err(e) if !e.disposition().ends_cycle() => {
                        if !dry {
                            let reason =
                                format!("reading the other side this record names failed: {e}");
                            self.store.park(key, &reason, ctx.now).await?;
                        }
                        report.parked += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                };
                let agreement = self.agreement(key).await?;
                let decided = hitosync_core::reconcile::decide_among(
                    agreement.as_ref(),
                    item.hitolink.as_ref(),
                    item.calendar.as_ref(),
                    &item.claimants,
                    &self.policy,
                );
                self.report_lookalikes(&decided.lookalikes, ctx, report)
                    .await?;
                self.run_record(
                    ctx,
                    record::Taken {
                        key,
                        order,
                        item,
                        agreement,
                        decision: decided.decision,
                        pass,
                    },
                    report,
                )
                .await
            }
            Pass::Rest | Pass::Last => {
                let Some(decision) = item.later_of(ctx.now).cloned() else {
                    return Ok(());
                };
                if pass == Pass::Rest && decision.is_bookkeeping() {
                    ctx.breaker.lock().take_up_bookkeeping();
                }
                let order = crate::work::order_key(key, &item, ctx.now);
                let agreement = self.agreement(key).await?;
                self.run_record(
                    ctx,
                    record::Taken {
                        key,
                        order,
                        item,
                        agreement,
                        decision,
                        pass,
                    },
                    report,
                )
                .await
            }
        }
    }

    /// An interview hitosync does not map yet may name an event that is not
    /// under its derived ID: a booking's event whose answer was lost, or
    /// whatever an admin typed. That event is read (one request, only in
    /// this case) and handed to the decision among the claimants, which
    /// adopts it only if it is this interview's.
    ///
    /// The other way round, an unmapped event may carry the ID of an
    /// interview this cycle did not hear of: the store was lost, and the
    /// full listing missed the event while it was being edited, so the
    /// interview went by alone (a cancelled one makes no event and leaves
    /// no record). The interview is read (one request, only in this case)
    /// so the event is decided against what HITO-Link says now instead of
    /// being left live beside a cancelled interview.
    async fn with_named_event(
        &self,
        key: &WorkKey,
        mut item: WorkItem,
    ) -> Result<WorkItem, EngineError> {
        let WorkKey::Interview(id) = key else {
            return Ok(item);
        };
        let Some(iv) = item.hitolink.now() else {
            return self.with_named_interview(id, item).await;
        };
        let Some(named) = iv.external_event_id.clone() else {
            return Ok(item);
        };
        let known = named == derived_event_id(id)
            || item.calendar.now().is_some_and(|e| e.id == named)
            || item.claimants.iter().any(|e| e.id == named);
        if known || self.store.record(id).await?.is_some() {
            return Ok(item);
        }
        match self.calendar.get(&named).await {
            Ok(ev) => item.claimants.push(ev),
            Err(e) => match e.disposition() {
                // No such event; a name Google rejects (not an event ID at
                // all) is no event either.
                Disposition::Gone | Disposition::Rejected => {}
                Disposition::ReadAgain
                | Disposition::RetryLater
                | Disposition::HoldNotifications
                | Disposition::StartOver
                | Disposition::EndCycle
                | Disposition::Stopped => return Err(EngineError::Google(e)),
            },
        }
        Ok(item)
    }

    /// See [`Self::with_named_event`]: an event names an interview that
    /// HITO-Link did not show this cycle and the store does not know.
    async fn with_named_interview(
        &self,
        id: &InterviewId,
        mut item: WorkItem,
    ) -> Result<WorkItem, EngineError> {
        let named = matches!(&item.hitolink, Seen::NoNews)
            && item
                .calendar
                .now()
                .is_some_and(|ev| ev.interview_id() == Some(id.as_str()));
        if !named || self.store.record(id).await?.is_some() {
            return Ok(item);
        }
        match self.hitolink.get(id).await {
            Ok(iv) => item.hitolink = Seen::Now(iv),
            Err(e) => match e.disposition() {
                // Never existed (or an ID HITO-Link refuses): the event
                // stays an orphan, left alone.
                Disposition::Gone | Disposition::Rejected => {}
                Disposition::ReadAgain
                | Disposition::RetryLater
                | Disposition::HoldNotifications
                | Disposition::StartOver
                | Disposition::EndCycle
                | Disposition::Stopped => return Err(EngineError::Hitolink(e)),
            },
        }
        Ok(item)
    }

    /// Look-alikes are reported once (and kept for `status` and `inspect`).
    async fn report_lookalikes(
        &self,
        lookalikes: &[LookAlike],
        ctx: &Ctx<'_>,
        report: &mut CycleReport,
    ) -> Result<(), EngineError> {
        for l in lookalikes {
            report.lookalikes += 1;
            if !ctx.opts.dry_run
                && self
                    .store
                    .report(&l.event_id, Some(&l.interview_id), &l.why, ctx.now)
                    .await?
            {
                warn!(event = %l.event_id, interview = %l.interview_id, why = %l.why, "an event claims an interview it is not the event of; left alone");
            }
        }
        Ok(())
    }
}

pub(crate) fn push_line(report: &mut CycleReport, dry: bool, item: PlanItem) {
    if dry || report.plan.len() < REPORTED_LINES {
        report.plan.push(item);
    } else {
        report.lines_not_kept += 1;
    }
}

impl Disposed for EngineError {
    fn disposition(&self) -> Disposition {
        match self {
            EngineError::Google(e) => e.disposition(),
            EngineError::Hitolink(e) => e.disposition(),
            // The store or a feed that does not end: nothing more of this
            // cycle can be trusted to land.
            EngineError::State(_) | EngineError::Paging { .. } => Disposition::EndCycle,
        }
    }
}

impl EngineError {
    /// A call ended by the cycle's stop token (a deadline, a shutdown).
    pub fn is_stop(&self) -> bool {
        self.disposition() == Disposition::Stopped
    }
}
