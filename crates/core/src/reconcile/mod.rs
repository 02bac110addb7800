//! The decisions: what one interview needs, given what each side shows and
//! what both last agreed on. Pure: no I/O, no clock, no randomness, so that
//! every row of the SPEC's table is a unit test and property tests can run
//! thousands of histories.
//!
//! Each side is reduced to the same [`Fields`] (its *view*, in `view`),
//! compared with the agreed snapshot field by field, and merged (`merge`):
//! a field changed on one side travels to the other; the same field
//! changed differently on both is a conflict settled by policy. The merged
//! target then says what to write where, as typed operations (`ops`). The
//! record-level cases (new on one side, gone on one side, a mapping to
//! rebuild, a shape the product cannot hold) are exhaustive `match`es in
//! `cases`, so the compiler checks that no combination is forgotten.
//!
//! Every decision also checks both halves of the link (the interview's
//! `external_event_id` and the event's `hitolinkInterviewId`): whatever
//! path a record comes in by, a missing or wrong half is written.

mod cases;
mod decision;
mod merge;
mod ops;
mod view;

#[cfg(test)]
mod tests;

pub use cases::booking_of;
pub use decision::{Book, Decided, Decision, EventRefWrite, Mapping, Plan, Quiet, Refusal};
pub use ops::{
    Booking, CalendarOp, Case, Conflict, Decliner, EventChange, EventDraft, HitolinkOp,
    InterviewChange, LookAlike, Notify, Op,
};
pub use view::{
    AGREED_DIGEST_PROPERTY, EventRef, Fields, MEETING_URL_LABEL, Presentation, Snapshot,
    calendar_view, derived_event_id, description_text, hitolink_view, parse_meeting_url,
    presentation,
};

use serde::{Deserialize, Serialize};

use crate::ids::InterviewId;
use crate::model::{CalendarEvent, Interview};
use crate::policy::{ConflictPolicy, OnDecline, OnEventDeleted};

/// Everything a decision needs to know about policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub conflict: ConflictPolicy,
    pub on_decline: OnDecline,
    pub on_event_deleted: OnEventDeleted,
    pub invite_candidate: bool,
    pub booking_marker: String,
    pub title_template: String,
    /// The organizer (予約元) address, lowercase.
    pub organizer: String,
}

impl Policy {
    /// The defaults of `[sync]`, for one organizer.
    pub fn new(organizer: &str) -> Policy {
        Policy {
            conflict: ConflictPolicy::default(),
            on_decline: OnDecline::default(),
            on_event_deleted: OnEventDeleted::default(),
            invite_candidate: true,
            booking_marker: crate::policy::DEFAULT_BOOKING_MARKER.into(),
            title_template: crate::policy::DEFAULT_TITLE_TEMPLATE.into(),
            organizer: organizer.to_ascii_lowercase(),
        }
    }
}

/// What is known about one side of one record in this cycle. Owned in the
/// work set; the decisions read it borrowed (`Seen<&Interview>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "seen", content = "record", rename_all = "snake_case")]
pub enum Seen<T> {
    /// Nothing new: as in the snapshot (or nothing at all without one).
    #[default]
    NoNews,
    /// The current record.
    Now(T),
    /// Known to be absent (404, or missing from a full listing).
    Gone,
}

impl<T> Seen<T> {
    pub fn as_ref(&self) -> Seen<&T> {
        match self {
            Seen::NoNews => Seen::NoNews,
            Seen::Now(t) => Seen::Now(t),
            Seen::Gone => Seen::Gone,
        }
    }

    pub fn now(&self) -> Option<&T> {
        match self {
            Seen::Now(t) => Some(t),
            Seen::NoNews | Seen::Gone => None,
        }
    }
}

/// Decides for one interview (or one unmanaged event) when no other event
/// claims it.
pub fn decide(
    snapshot: Option<&Snapshot>,
    hitolink: Seen<&Interview>,
    calendar: Seen<&CalendarEvent>,
    policy: &Policy,
) -> Decision {
    decide_among(snapshot, hitolink, calendar, &[], policy).decision
}

/// The one entry point. `calendar` is the event at the mapped ID (or, with
/// no mapping, the derived one); `claimants` are other events that carry
/// the interview's ID. Which of them is the interview's event is chosen by
/// ID alone; the rest are look-alikes, reported and never written.
pub fn decide_among(
    snapshot: Option<&Snapshot>,
    hitolink: Seen<&Interview>,
    calendar: Seen<&CalendarEvent>,
    claimants: &[CalendarEvent],
    policy: &Policy,
) -> Decided {
    let interview_id = snapshot
        .map(|s| s.interview_id.clone())
        .or_else(|| hitolink.now().map(|iv| iv.id.clone()))
        .or_else(|| {
            calendar
                .now()
                .and_then(|ev| ev.interview_id())
                .map(InterviewId::from)
        })
        .or_else(|| {
            claimants
                .iter()
                .find_map(|e| e.interview_id().map(InterviewId::from))
        });
    let (calendar, lookalikes) = match &interview_id {
        Some(iid) => cases::choose(
            iid,
            snapshot,
            hitolink.now().copied(),
            calendar,
            claimants,
            &policy.organizer,
        ),
        None => (calendar, vec![]),
    };
    let decision = match snapshot {
        Some(snap) => cases::decide_mapped(snap, hitolink, calendar, policy),
        None => cases::decide_unmapped(hitolink, calendar, policy),
    };
    Decided {
        decision,
        lookalikes,
    }
}
