//! Google's calendar usage limit on invitations (403 quotaExceeded): once
//! it is hit, writes that would mail attendees wait while every other write
//! goes on. Google publishes neither the limit nor how long it lasts, so
//! the hold probes: when its time comes, one notifying write tries; a
//! success lifts the hold for everything, a refusal doubles the wait (a
//! minute, then two, four, up to an hour). `hitosync sync` and SIGUSR1 may
//! probe at once. The hold is kept in meta, so that the next cycles,
//! `status` and the metrics see it; one module so that its making, its
//! reading and the parking of a record on it cannot drift apart.

use chrono::{DateTime, Duration, Utc};
use tracing::{info, warn};

use hitosync_state::{MetaKey, StateError, StateStoreExt, WorkKey};

use super::Ctx;
use crate::gate::Invitations;
use crate::{CycleReport, Engine};

/// The first wait after the limit is hit.
const FIRST_WAIT: Duration = Duration::minutes(1);
/// The longest wait between two probes: one try an hour neither hammers
/// Google nor leaves invitations waiting a day.
const LONGEST_WAIT: Duration = Duration::hours(1);

/// Where the invitation hold is kept, for the next cycles, `status` and
/// the metrics.
pub const INVITATION_HOLD: MetaKey<Option<InvitationHold>> = MetaKey::new("invitation_hold");

/// Writes that notify attendees wait until `until`, when one of them
/// probes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InvitationHold {
    /// The next probe.
    pub until: DateTime<Utc>,
    pub reason: String,
    /// The wait that led to `until`, in seconds; doubles at every refused
    /// probe. Holds written before probing existed read as an hour.
    #[serde(default = "longest_wait_secs")]
    pub wait_secs: i64,
}

fn longest_wait_secs() -> i64 {
    LONGEST_WAIT.num_seconds()
}

impl InvitationHold {
    /// The hold after a refusal at `now`: the first one waits a minute,
    /// each refused probe twice as long as the last, up to an hour.
    pub fn after(previous: Option<&InvitationHold>, reason: String, now: DateTime<Utc>) -> Self {
        let wait = match previous {
            None => FIRST_WAIT,
            Some(p) => (Duration::seconds(p.wait_secs) * 2).clamp(FIRST_WAIT, LONGEST_WAIT),
        };
        InvitationHold {
            until: now + wait,
            reason,
            wait_secs: wait.num_seconds(),
        }
    }
}

/// The hold as one cycle sees it.
#[derive(Debug, Default)]
pub(crate) struct InvitationState {
    pub hold: Option<InvitationHold>,
    /// This cycle may probe before the hold's time (`hitosync sync`,
    /// SIGUSR1).
    pub probe_now: bool,
    /// A probe is out: the other notifying writes wait for its answer.
    pub probing: bool,
}

impl InvitationState {
    /// What the limit says of one more notifying write; taking the probe
    /// marks it out.
    pub(crate) fn admit(&mut self, now: DateTime<Utc>) -> Invitations {
        match &self.hold {
            None => Invitations::Open,
            Some(_) if self.probing => Invitations::Held,
            Some(h) if self.probe_now || h.until <= now => {
                self.probing = true;
                Invitations::Probe
            }
            Some(_) => Invitations::Held,
        }
    }
}

impl Engine<'_> {
    /// Google answered that its invitation limit is hit (again): the hold
    /// waits longer, is kept for the next cycles, and this record is the
    /// first to wait on it.
    pub(super) async fn hold_invitations(
        &self,
        ctx: &Ctx<'_>,
        key: &WorkKey,
        reason: String,
        report: &mut CycleReport,
    ) -> Result<(), StateError> {
        let hold = {
            let mut st = ctx.invitations.lock();
            let hold = InvitationHold::after(st.hold.as_ref(), reason, ctx.now);
            st.hold = Some(hold.clone());
            st.probing = false;
            st.probe_now = false;
            hold
        };
        warn!(until = %hold.until, reason = %hold.reason, "Google's invitation limit: writes that notify attendees wait until the next probe; the rest goes on");
        self.store
            .put_meta(INVITATION_HOLD, &Some(hold.clone()))
            .await?;
        self.park_for_invitations(key, &hold, ctx.now, report).await
    }

    /// A notifying write went through: the limit has lifted.
    pub(super) async fn lift_invitations(&self, ctx: &Ctx<'_>) -> Result<(), StateError> {
        let had = ctx.invitations.lock().hold.take();
        if had.is_some() {
            info!("Google's invitation limit has lifted: writes that notify attendees go on");
            self.store.put_meta(INVITATION_HOLD, &None).await?;
        }
        ctx.invitations.lock().probing = false;
        Ok(())
    }

    /// Parks a record whose write would mail attendees until the next
    /// probe; the caller counts it as parked.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_wait_doubles_from_a_minute_to_an_hour() {
        let now = at("2026-12-03T10:00:00Z");
        let mut hold = InvitationHold::after(None, "limit".into(), now);
        let mut waits = vec![hold.wait_secs];
        for _ in 0..8 {
            hold = InvitationHold::after(Some(&hold), "limit".into(), now);
            waits.push(hold.wait_secs);
        }
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(hold.until, now + Duration::hours(1));
    }

    #[test]
    fn one_probe_at_a_time_and_only_when_due() {
        let now = at("2026-12-03T10:00:00Z");
        let mut st = InvitationState {
            hold: Some(InvitationHold::after(None, "limit".into(), now)),
            ..Default::default()
        };
        assert_eq!(st.admit(now), Invitations::Held, "not due yet");
        let due = now + Duration::minutes(1);
        assert_eq!(st.admit(due), Invitations::Probe);
        assert_eq!(st.admit(due), Invitations::Held, "the probe is out");
        st.probing = false;
        st.hold = None;
        assert_eq!(st.admit(due), Invitations::Open);
    }

    #[test]
    fn a_manual_sync_probes_at_once() {
        let now = at("2026-12-03T10:00:00Z");
        let mut st = InvitationState {
            hold: Some(InvitationHold::after(None, "limit".into(), now)),
            probe_now: true,
            probing: false,
        };
        assert_eq!(st.admit(now), Invitations::Probe);
    }

    #[test]
    fn a_hold_from_before_probing_reads_as_an_hour() {
        let old: InvitationHold =
            serde_json::from_str(r#"{"until":"2026-12-03T11:00:00Z","reason":"limit"}"#).unwrap();
        assert_eq!(old.wait_secs, 3600);
    }
}
