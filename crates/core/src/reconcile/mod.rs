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
mod merge;
mod ops;
mod view;

#[cfg(test)]
mod tests;

pub use cases::booking_of;
pub use ops::{
    Booking, CalendarOp, Case, Conflict, Decision, Decliner, EventChange, EventDraft, HitolinkOp,
    InterviewChange, LookAlike, Notify, Op,
};
pub use view::{
    AGREED_DIGEST_PROPERTY, Fields, LINK_LABEL, LinkHalf, Presentation, Snapshot, calendar_view,
    derived_event_id, description_text, hitolink_view, parse_link, presentation,
};

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

/// What is known about one side of one interview in this cycle.
#[derive(Debug, Clone, Copy)]
pub enum Seen<'a, T> {
    /// Nothing new: as in the snapshot (or nothing at all without one).
    NoNews,
    /// The current record.
    Now(&'a T),
    /// Known to be absent (404, or missing from a full listing).
    Gone,
}

/// Decides for one interview (or one unmanaged event) when no other event
/// claims it.
pub fn decide(
    snapshot: Option<&Snapshot>,
    hitolink: Seen<'_, Interview>,
    calendar: Seen<'_, CalendarEvent>,
    policy: &Policy,
) -> Decision {
    decide_among(snapshot, hitolink, calendar, &[], policy)
}

/// The one entry point. `calendar` is the event at the mapped ID (or, with
/// no mapping, the derived one); `claimants` are other events that carry
/// the interview's ID. Which of them is the interview's event is chosen by
/// ID alone; the rest are look-alikes, reported and never written.
pub fn decide_among(
    snapshot: Option<&Snapshot>,
    hitolink: Seen<'_, Interview>,
    calendar: Seen<'_, CalendarEvent>,
    claimants: &[CalendarEvent],
    policy: &Policy,
) -> Decision {
    let interview_id = snapshot
        .map(|s| s.interview_id.clone())
        .or_else(|| match hitolink {
            Seen::Now(iv) => Some(iv.id.clone()),
            _ => None,
        })
        .or_else(|| match calendar {
            Seen::Now(ev) => ev.interview_id().map(str::to_string),
            _ => None,
        })
        .or_else(|| {
            claimants
                .iter()
                .find_map(|e| e.interview_id().map(str::to_string))
        });
    let (calendar, lookalikes) = match &interview_id {
        Some(iid) => {
            let iv = match hitolink {
                Seen::Now(iv) => Some(iv),
                _ => None,
            };
            cases::choose(iid, snapshot, iv, calendar, claimants, &policy.organizer)
        }
        None => (calendar, vec![]),
    };
    let mut d = match snapshot {
        Some(snap) => cases::decide_mapped(snap, hitolink, calendar, policy),
        None => cases::decide_unmapped(hitolink, calendar, policy),
    };
    d.lookalikes = lookalikes;
    d
}
