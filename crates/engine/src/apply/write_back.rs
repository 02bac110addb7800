//! The write-back lane: the interviews' half of the link
//! (`external_event_id`) in a queue of its own, drained beside the passes
//! within HITO-Link's budget, so that a slow HITO-Link never holds a
//! calendar write back.

use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tracing::{Instrument, info_span, warn};

use hitosync_core::ids::InterviewId;
use hitosync_hitolink::{HitolinkError, InterviewPatch};
use hitosync_net::disposition::{Disposed, Disposition};
use hitosync_state::{StateStoreExt, WorkKey};

use super::Ctx;
use crate::{Engine, EngineError};

impl Engine<'_> {
    /// Drains the write-back queue: each interview waiting for its
    /// `external_event_id` gets it, oldest-queued soonest interview first,
    /// while the passes run and, after them, until the queue is empty or
    /// the cycle's write-back budget is spent.
    pub(crate) async fn write_back_lane(&self, ctx: &Ctx<'_>) -> Result<LaneReport, EngineError> {
        let mut out = LaneReport::default();
        let mut budget_ends: Option<Instant> = None;
        // Sweeps the queue from its head (the soonest interviews); a sweep
        // that wrote nothing waits for the passes to queue more.
        loop {
            let mut after: Option<Vec<u8>> = None;
            let mut progress = false;
            loop {
                if self.stopping() {
                    return Ok(out);
                }
                if ctx.passes_done.load(Ordering::SeqCst) && budget_ends.is_none() {
                    budget_ends = ctx.opts.write_back_budget.map(|b| Instant::now() + b);
                }
                if budget_ends.is_some_and(|t| Instant::now() >= t) {
                    return Ok(out);
                }
                let batch = self.store.pending_links(after.as_deref(), 50).await?;
                let Some((last, _)) = batch.last() else { break };
                after = Some(last.clone());
                for (_, iid) in batch {
                    if self.stopping() {
                        return Ok(out);
                    }
                    // A record with work pending is the passes' to decide.
                    if ctx
                        .work
                        .get(&WorkKey::Interview(iid.clone()))
                        .await?
                        .is_some()
                    {
                        continue;
                    }
                    match self.write_back(&iid, ctx.now).await {
                        Ok(wrote) => {
                            progress = true;
                            out.written += usize::from(wrote);
                        }
                        Err(e) if e.is_stop() => return Ok(out),
                        Err(e) if e.disposition().ends_cycle() => return Err(e),
                        Err(e) => {
                            // The side is struggling: the queue waits for
                            // the next cycle rather than hammer it.
                            warn!(interview = %iid, error = %e, "write-back of the link failed; retried next cycle");
                            return Ok(out);
                        }
                    }
                }
            }
            if !progress {
                if ctx.passes_done.load(Ordering::SeqCst) {
                    return Ok(out);
                }
                let _ = tokio::time::timeout(
                    std::time::Duration::from_millis(200),
                    ctx.queued.notified(),
                )
                .await;
            }
        }
    }

    /// Writes one interview's `external_event_id`; `false` when nothing was
    /// left to write.
    async fn write_back(&self, iid: &InterviewId, now: DateTime<Utc>) -> Result<bool, EngineError> {
        let Some(rec) = self.store.record(iid).await? else {
            self.store.drop_pending_link(iid).await?;
            return Ok(false);
        };
        // The write the agreement says is pending, as the core builds it.
        let Some(write) = rec.snapshot.event_ref_write() else {
            self.store.drop_pending_link(iid).await?;
            return Ok(false);
        };
        let mut version = write.if_match;
        for _ in 0..2 {
            let span =
                info_span!("record", key = %WorkKey::Interview(iid.clone()), case = "write_back");
            let e = match self
                .hitolink
                .patch(
                    &write.interview_id,
                    InterviewPatch::ExternalEventId(&write.event_id),
                    version,
                )
                .instrument(span)
                .await
            {
                Ok(iv) => {
                    self.store
                        .link_written(iid, &write.event_id, iv.version, now)
                        .await?;
                    return Ok(true);
                }
                Err(e) => e,
            };
            match e.disposition() {
                Disposition::ReadAgain => {
                    let HitolinkError::PreconditionFailed {
                        current: Some(cur), ..
                    } = &e
                    else {
                        return Err(EngineError::Hitolink(e));
                    };
                    if cur.external_event_id.as_deref() == Some(write.event_id.as_str()) {
                        self.store
                            .link_written(iid, &write.event_id, cur.version, now)
                            .await?;
                        return Ok(false);
                    }
                    // Changed meanwhile: the field is ours alone to set.
                    version = cur.version;
                }
                Disposition::Gone => {
                    // Gone: the feed will say so, and the record with it.
                    self.store.drop_pending_link(iid).await?;
                    return Ok(false);
                }
                Disposition::Rejected => {
                    self.store.drop_pending_link(iid).await?;
                    let key = WorkKey::Interview(iid.clone());
                    self.store
                        .park(
                            &key,
                            &format!("writing back the link was refused: {e}"),
                            now,
                        )
                        .await?;
                    return Ok(false);
                }
                Disposition::RetryLater
                | Disposition::HoldNotifications
                | Disposition::StartOver
                | Disposition::EndCycle
                | Disposition::Stopped => return Err(EngineError::Hitolink(e)),
            }
        }
        Ok(false)
    }
}

/// What the write-back lane did.
#[derive(Debug, Default)]
pub(crate) struct LaneReport {
    pub written: usize,
}
