//! Applying the work set: what attendees see first, the soonest interviews
//! first; bookkeeping after. The interviews' half of the link has a queue
//! of its own (`write_back`), and Google's invitation limit its own hold
//! (`invitations`).

mod invitations;
mod write_back;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use tracing::{Instrument, info, info_span, warn};

use hitosync_core::reconcile::{Case, Decision, decide_among, derived_event_id};
use hitosync_google::GoogleError;
use hitosync_hitolink::HitolinkError;
use hitosync_state::{Commit, HistoryEntry, Intent, StateError, StateStoreExt, WorkKey};

use crate::execute::{Step, Writes};
use crate::work::{WorkItem, WorkSet, order_key};
use crate::{CycleOptions, CycleReport, Engine, EngineError, PlanItem};

pub use invitations::{INVITATION_HOLD, INVITATION_LIMIT_WAIT, InvitationHold};

/// How many times one record is decided again in one cycle when the other
/// side moves under it (412) before it is parked until the next.
const MAX_ATTEMPTS: usize = 4;

/// Keys read from the work set at a time.
const BATCH: usize = 200;

/// A real cycle keeps this many plan lines for its report (a dry run
/// keeps them all: the plan is what it is for).
const REPORTED_LINES: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Writes someone sees: inserts, moves, cancellations, HITO-Link's
    /// changes. Bookkeeping-only records wait for the next pass.
    Visible,
    /// Whatever is left.
    Rest,
}

/// What the passes of one cycle share.
pub(crate) struct Ctx<'a> {
    pub work: &'a WorkSet<'a>,
    pub opts: &'a CycleOptions,
    pub now: DateTime<Utc>,
    /// Cancellations are held back (the breaker tripped).
    pub hold: bool,
    /// Destructive decisions so far, re-decisions included.
    pub destructive: AtomicUsize,
    /// The passes are over: the write-back queue may drain and stop.
    pub passes_done: AtomicBool,
    /// A record's link was queued: wakes the write-back lane.
    pub queued: tokio::sync::Notify,
    /// Google's invitation limit, while it holds.
    pub invitations: std::sync::Mutex<Option<InvitationHold>>,
}

impl Engine<'_> {
    fn stopping(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::SeqCst))
    }

    async fn decide_item(&self, key: &WorkKey, item: &WorkItem) -> Result<Decision, StateError> {
        let snapshot = match key {
            WorkKey::Interview(id) => self.store.record(id).await?.map(|r| r.snapshot),
            WorkKey::Event(_) => None,
        };
        Ok(decide_among(
            snapshot.as_ref(),
            item.h.seen(),
            item.g.seen(),
            &item.claimants,
            &self.policy,
        ))
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
                Err(e) if e.is_cycle_ending() => return Err(e),
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

    /// Counts the cancellations the work would make, for the breaker.
    pub(crate) async fn count_destructive(&self, work: &WorkSet<'_>) -> Result<usize, EngineError> {
        let mut n = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let batch = work.batch(after.as_deref(), BATCH).await?;
            let Some((last, _)) = batch.last() else {
                return Ok(n);
            };
            after = Some(last.clone());
            for (_, key) in batch {
                let Some(item) = work.get(&key).await? else {
                    continue;
                };
                if item.invalid.is_none()
                    && !item.refetch
                    && self.decide_item(&key, &item).await?.is_destructive()
                {
                    n += 1;
                }
            }
        }
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
                match self.process(ctx, &key, pass, report).await {
                    Ok(()) => {}
                    // Stopped in the middle of a record (a deadline, a
                    // shutdown): its intent stays, so it is read again.
                    Err(e) if e.is_stop() => {
                        report.interrupted = true;
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    async fn process(
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
        if item.refetch {
            // its re-read failed: parked, tried again when due
            return Ok(());
        }
        if let Some(reason) = &item.invalid {
            if pass == Pass::Visible {
                if !dry {
                    let p = self.store.park(key, reason, ctx.now).await?;
                    warn!(%key, %reason, attempts = p.attempts, "record cannot be synced; parked");
                }
                report.parked += 1;
                push_line(report, dry, PlanItem::parked(key, reason));
            }
            return Ok(());
        }
        let item = match self.with_named_event(key, item).await {
            Ok(item) => item,
            Err(e) if !e.is_cycle_ending() => {
                if !dry {
                    let reason = format!("reading the event the interview names failed: {e}");
                    self.store.park(key, &reason, ctx.now).await?;
                }
                report.parked += 1;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let d = self.decide_item(key, &item).await?;
        let bookkeeping = d.is_bookkeeping();
        match pass {
            Pass::Visible if bookkeeping => return Ok(()),
            Pass::Rest if dry && !bookkeeping => return Ok(()),
            _ => {}
        }
        self.report_lookalikes(&d, ctx, report).await?;
        if let Some(reason) = &d.refusal {
            push_line(report, dry, PlanItem::of(key, &d, false));
            report.refused += 1;
            if !dry {
                match key {
                    WorkKey::Interview(_) => {
                        let p = self.store.park(key, reason, ctx.now).await?;
                        warn!(%key, %reason, attempts = p.attempts, "refused; parked until the calendar changes");
                        report.parked += 1;
                    }
                    WorkKey::Event(ev) => {
                        if self.store.report(ev, None, reason, ctx.now).await? {
                            warn!(event = %ev, %reason, "booking refused; reported in status");
                        }
                        self.store.settle(key).await?;
                    }
                }
            }
            return Ok(());
        }
        if d.is_quiet() {
            if d.case != Case::Unmanaged && d.case != Case::NothingToDo {
                push_line(report, dry, PlanItem::of(key, &d, false));
            }
            if !dry {
                self.store_quiet(key, &d, ctx.now).await?;
            }
            return Ok(());
        }
        report.decisions += 1;
        let held = ctx.hold && d.is_destructive();
        push_line(report, dry, PlanItem::of(key, &d, held));
        if dry {
            return Ok(());
        }
        if held {
            self.store
                .park_held(
                    key,
                    report.breaker.as_deref().unwrap_or("mass deletion"),
                    ctx.now,
                )
                .await?;
            report.parked += 1;
            return Ok(());
        }
        if let Some(hold) = ctx.invitation_hold()
            && d.calendar_op().is_some_and(|c| c.notifies())
        {
            // Writes that mail attendees wait; the rest of the cycle goes on.
            self.park_for_invitations(key, &hold, ctx.now, report)
                .await?;
            report.parked += 1;
            return Ok(());
        }
        let span = info_span!("record", key = %key, case = ?d.case);
        let outcome = self
            .apply_record(ctx, key, item, d, report)
            .instrument(span)
            .await?;
        report.calendar_writes += outcome.writes.calendar;
        report.hitolink_writes += outcome.writes.hitolink;
        report.conflicts += outcome.conflicts;
        if outcome.parked {
            report.parked += 1;
        } else {
            report.applied += 1;
        }
        Ok(())
    }

    /// An interview hitosync does not map yet may name an event that is not
    /// under its derived ID: a booking's event whose answer was lost, or
    /// whatever an admin typed. That event is read (one request, only in
    /// this case) and handed to the decision among the claimants, which
    /// adopts it only if it is this interview's.
    async fn with_named_event(
        &self,
        key: &WorkKey,
        mut item: WorkItem,
    ) -> Result<WorkItem, EngineError> {
        let (WorkKey::Interview(id), Some(iv)) = (key, item.h.now()) else {
            return Ok(item);
        };
        let Some(named) = iv.external_event_id.clone() else {
            return Ok(item);
        };
        let known = named == derived_event_id(id)
            || item.g.now().is_some_and(|e| e.id == named)
            || item.claimants.iter().any(|e| e.id == named);
        if known || self.store.record(id).await?.is_some() {
            return Ok(item);
        }
        match self.calendar.get(&named).await {
            Ok(ev) => item.claimants.push(ev),
            Err(GoogleError::NotFound { .. } | GoogleError::Gone { .. }) => {}
            // A name Google rejects (not an event ID at all) is no event.
            Err(GoogleError::Rejected { .. }) => {}
            Err(e) => return Err(EngineError::Google(e)),
        }
        Ok(item)
    }

    /// Look-alikes are reported once (and kept for `status` and `inspect`).
    async fn report_lookalikes(
        &self,
        d: &Decision,
        ctx: &Ctx<'_>,
        report: &mut CycleReport,
    ) -> Result<(), EngineError> {
        for l in &d.lookalikes {
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

    /// A decision that writes nothing remotely: store the refreshed
    /// agreement if it changed, and settle the record's work.
    async fn store_quiet(
        &self,
        key: &WorkKey,
        d: &Decision,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let old = match &d.interview_id {
            Some(iid) => self.store.record(iid).await?.map(|r| r.snapshot),
            None => None,
        };
        // Only a decision that knows the record (or knows it is gone on
        // both sides) may change its mapping; an orphan or a booking seen
        // without the store's knowledge must not erase one.
        let changes_mapping = d.case == Case::Forget || (d.snapshot.is_some() && d.snapshot != old);
        match &d.interview_id {
            Some(iid) if changes_mapping => {
                self.store
                    .commit(Commit {
                        key,
                        interview_id: iid,
                        snapshot: d.snapshot.as_ref(),
                        entry: HistoryEntry {
                            at: now,
                            case: d.case,
                            summary: d.log_line(),
                        },
                        conflicts: &d.conflicts,
                        pending_link_at: None,
                    })
                    .await
            }
            _ => self.store.settle(key).await,
        }
    }

    async fn apply_record(
        &self,
        ctx: &Ctx<'_>,
        key: &WorkKey,
        item: WorkItem,
        first: Decision,
        report: &mut CycleReport,
    ) -> Result<Outcome, EngineError> {
        let order = order_key(key, &item, ctx.now);
        let WorkItem {
            mut h,
            mut g,
            claimants,
            ..
        } = item;
        let mut decision = first;
        let mut outcome = Outcome::default();
        let mut interview_id = decision.interview_id.clone();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                let snapshot = match &interview_id {
                    Some(id) => self.store.record(id).await?.map(|r| r.snapshot),
                    None => None,
                };
                decision = decide_among(
                    snapshot.as_ref(),
                    h.seen(),
                    g.seen(),
                    &claimants,
                    &self.policy,
                );
                // The breaker holds on every re-decision, and counts it.
                if decision.is_destructive() {
                    let n = ctx.destructive.fetch_add(1, Ordering::SeqCst) + 1;
                    if (ctx.hold || n > self.max_deletions as usize) && !ctx.opts.allow_mass_delete
                    {
                        let why = format!(
                            "{n} cancellations in one cycle, more than sync.max_deletions = {}",
                            self.max_deletions
                        );
                        report.breaker.get_or_insert(why.clone());
                        self.store.park_held(key, &why, ctx.now).await?;
                        outcome.parked = true;
                        return Ok(outcome);
                    }
                }
                if let Some(reason) = &decision.refusal {
                    self.store.park(key, reason, ctx.now).await?;
                    outcome.parked = true;
                    return Ok(outcome);
                }
                if decision.is_quiet() {
                    self.store_quiet(key, &decision, ctx.now).await?;
                    return Ok(outcome);
                }
            }
            self.store
                .put_intent(&Intent {
                    key: key.clone(),
                    summary: decision.log_line(),
                    at: ctx.now,
                })
                .await?;
            info!(plan = %decision.log_line(), "applying");
            match self.execute(&decision, &h, &g).await? {
                Step::Done {
                    snapshot,
                    link_deferred,
                    writes,
                } => {
                    outcome.add(writes);
                    outcome.conflicts += decision.conflicts.len();
                    for c in &decision.conflicts {
                        warn!(field = %c.field, hitolink = %c.hitolink, google = %c.google, winner = %c.winner, "conflict");
                    }
                    let iid = decision
                        .interview_id
                        .clone()
                        .or(interview_id.clone())
                        .unwrap_or_default();
                    self.store
                        .commit(Commit {
                            key,
                            interview_id: &iid,
                            snapshot: snapshot.as_ref().as_ref(),
                            entry: HistoryEntry {
                                at: ctx.now,
                                case: decision.case,
                                summary: decision.log_line(),
                            },
                            conflicts: &decision.conflicts,
                            pending_link_at: link_deferred.then_some(order.as_slice()),
                        })
                        .await?;
                    if link_deferred {
                        ctx.queued.notify_one();
                    }
                    return Ok(outcome);
                }
                Step::Again {
                    h: nh,
                    g: ng,
                    interview_id: iid,
                    writes,
                } => {
                    outcome.add(writes);
                    h = *nh;
                    g = *ng;
                    if iid.is_some() {
                        interview_id = iid;
                    }
                }
                Step::Park(reason) => {
                    let p = self.store.park(key, &reason, ctx.now).await?;
                    warn!(%reason, attempts = p.attempts, "parked");
                    outcome.parked = true;
                    return Ok(outcome);
                }
                Step::HoldInvitations(reason) => {
                    self.hold_invitations(ctx, key, reason, report).await?;
                    outcome.parked = true;
                    return Ok(outcome);
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
        warn!(attempts = p.attempts, "parked after repeated conflicts");
        outcome.parked = true;
        Ok(outcome)
    }
}

fn push_line(report: &mut CycleReport, dry: bool, item: PlanItem) {
    if dry || report.plan.len() < REPORTED_LINES {
        report.plan.push(item);
    } else {
        report.lines_not_kept += 1;
    }
}

#[derive(Debug, Default)]
struct Outcome {
    writes: Writes,
    conflicts: usize,
    parked: bool,
}

impl Outcome {
    fn add(&mut self, w: Writes) {
        self.writes.calendar += w.calendar;
        self.writes.hitolink += w.hitolink;
    }
}

impl EngineError {
    /// A call ended by the cycle's stop token (a deadline, a shutdown).
    pub fn is_stop(&self) -> bool {
        matches!(
            self,
            EngineError::Google(GoogleError::Stopped)
                | EngineError::Hitolink(HitolinkError::Stopped)
        )
    }

    /// Ends the cycle (auth, a side misconfigured, the store) rather than
    /// one record.
    pub(crate) fn is_cycle_ending(&self) -> bool {
        match self {
            EngineError::State(_) | EngineError::Paging { .. } => true,
            EngineError::Google(e) => !matches!(
                e,
                GoogleError::Transient(_)
                    | GoogleError::RateLimited { .. }
                    | GoogleError::Protocol(_)
                    | GoogleError::Rejected { .. }
                    | GoogleError::NotFound { .. }
                    | GoogleError::Gone { .. }
            ),
            EngineError::Hitolink(e) => !matches!(
                e,
                HitolinkError::Transient(_)
                    | HitolinkError::RateLimited { .. }
                    | HitolinkError::Protocol(_)
                    | HitolinkError::Rejected { .. }
                    | HitolinkError::Invalid { .. }
                    | HitolinkError::Unsyncable(_)
                    | HitolinkError::NotFound { .. }
            ),
        }
    }
}
