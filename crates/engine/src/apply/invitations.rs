//! Google's calendar usage limit on invitations (403 quotaExceeded): once
//! it is hit, writes that would mail attendees wait while every other write
//! goes on. The hold is kept in meta, so that the next cycles, `status` and
//! the metrics see it. One module so that the hold's making, its reading
//! and the parking of a record on it cannot drift apart.

use chrono::{DateTime, Utc};
use tracing::warn;

use hitosync_state::{StateError, StateStoreExt, WorkKey};

use super::Ctx;
use crate::{CycleReport, Engine};

/// How long writes that notify attendees wait once Google's calendar usage
/// limits are hit. Google publishes neither the limit nor its window ("for
/// some hours"): one try an hour neither hammers it nor waits a day.
pub const INVITATION_LIMIT_WAIT: chrono::Duration = chrono::Duration::hours(1);

/// Where the invitation hold is kept (meta), for `status` and metrics.
pub const INVITATION_HOLD: &str = "invitation_hold";

/// Writes that notify attendees are held back until `until`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InvitationHold {
    pub until: DateTime<Utc>,
    pub reason: String,
}

impl Ctx<'_> {
    /// The hold, while it lasts.
    pub(super) fn invitation_hold(&self) -> Option<InvitationHold> {
        let hold = self.invitations.lock().unwrap_or_else(|p| p.into_inner());
        hold.clone().filter(|h| h.until > self.now)
    }
}

impl Engine<'_> {
    /// Google answered that its invitation limit is hit: the hold starts
    /// now, is kept for the next cycles, and this record is the first to
    /// wait on it.
    pub(super) async fn hold_invitations(
        &self,
        ctx: &Ctx<'_>,
        key: &WorkKey,
        reason: String,
        report: &mut CycleReport,
    ) -> Result<(), StateError> {
        let hold = InvitationHold {
            until: ctx.now + INVITATION_LIMIT_WAIT,
            reason,
        };
        warn!(until = %hold.until, reason = %hold.reason, "Google's invitation limit: writes that notify attendees wait; the rest goes on");
        self.store
            .put_meta(INVITATION_HOLD, &Some(hold.clone()))
            .await?;
        self.park_for_invitations(key, &hold, ctx.now, report)
            .await?;
        *ctx.invitations.lock().unwrap_or_else(|p| p.into_inner()) = Some(hold);
        Ok(())
    }

    /// Parks a record whose write would mail attendees until the hold
    /// ends; the caller counts it as parked.
    pub(super) async fn park_for_invitations(
        &self,
        key: &WorkKey,
        hold: &InvitationHold,
        now: DateTime<Utc>,
        report: &mut CycleReport,
    ) -> Result<(), StateError> {
        self.store
            .park_until(
                key,
                &format!(
                    "waiting for Google's invitation limit to lift: {}",
                    hold.reason
                ),
                now,
                hold.until,
            )
            .await?;
        report.invitations_held += 1;
        Ok(())
    }
}
