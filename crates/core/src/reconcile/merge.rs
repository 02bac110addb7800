//! The per-field three-way merge of a mapped interview: each field comes
//! from the side that changed it, a field changed differently on both is
//! a conflict settled by policy, and the policies' terminal states apply
//! on top. The merged target is then planned into writes; what each write
//! carries is built in `calendar_writes` and `hitolink_writes`, so that
//! this module reads as the decision alone.

mod calendar_writes;
mod hitolink_writes;

use chrono::{DateTime, Utc};

use super::Policy;
use super::decision::{Decision, Plan};
use super::ops::{CalendarOp, Case, Conflict, EventChange, Op};
use super::view::{
    EventRef, Fields, Presentation, Snapshot, calendar_view, hitolink_view, presentation,
};
use crate::ids::EventId;
use crate::model::{Attendee, CalendarEvent, Interview};
use crate::policy::{ConflictPolicy, OnDecline, OnEventDeleted};

use calendar_writes::{
    LiveUpdate, attendees_for, calendar_op_for_known, etag_of, full_change, live_update,
    needs_stamp,
};
pub(super) use calendar_writes::{draft, stamp};
use hitolink_writes::{decline_key_base, hitolink_ops};

/// How the calendar side stands against the agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CalendarState {
    Same,
    Changed,
    /// The event is not there at all (not even a tombstone).
    Vanished,
}

/// Per-field three-way merge. `h`/`g` are the views, `base` the agreement.
struct Merger<'a> {
    policy: &'a Policy,
    /// No agreed state is known: every difference is a conflict.
    no_base: bool,
    hitolink_time: Option<DateTime<Utc>>,
    calendar_time: Option<DateTime<Utc>>,
    conflicts: Vec<Conflict>,
}

impl Merger<'_> {
    fn field<T: PartialEq + Clone + std::fmt::Debug>(
        &mut self,
        name: &str,
        base: &T,
        h: &T,
        g: &T,
    ) -> T {
        let (h_changed, g_changed) = if self.no_base {
            (h != g, h != g)
        } else {
            (h != base, g != base)
        };
        match (h_changed, g_changed) {
            (false, false) if self.no_base => h.clone(),
            (false, false) => base.clone(),
            (true, false) => h.clone(),
            (false, true) => g.clone(),
            (true, true) if h == g => h.clone(),
            (true, true) => {
                let google_wins = google_wins(self.policy, self.hitolink_time, self.calendar_time);
                self.conflicts.push(Conflict {
                    field: name.to_string(),
                    hitolink: format!("{h:?}"),
                    google: format!("{g:?}"),
                    winner: if google_wins { "google" } else { "hitolink" }.into(),
                });
                if google_wins { g.clone() } else { h.clone() }
            }
        }
    }
}

/// Who wins a conflict under `sync.conflict`.
pub(super) fn google_wins(
    policy: &Policy,
    hitolink_time: Option<DateTime<Utc>>,
    calendar_time: Option<DateTime<Utc>>,
) -> bool {
    match policy.conflict {
        ConflictPolicy::HitolinkWins => false,
        ConflictPolicy::GoogleWins => true,
        ConflictPolicy::LatestWins => match (hitolink_time, calendar_time) {
            (Some(h), Some(g)) => g > h,
            _ => false,
        },
    }
}

/// What the merge is given besides the two sides.
pub(super) struct MergeInput<'a> {
    pub snap: &'a Snapshot,
    pub iv: Option<&'a Interview>,
    pub ev: Option<&'a CalendarEvent>,
    pub calendar_state: CalendarState,
    /// No agreement is known (a rebuilt store whose digest matches neither
    /// side): every difference is a conflict.
    pub no_base: bool,
    /// The event's time cannot be held by HITO-Link (made all-day or
    /// recurring) and the policy gave it back: write the time again.
    pub repair_time: bool,
}

pub(super) fn merge(input: MergeInput<'_>, policy: &Policy) -> Decision {
    let MergeInput {
        snap,
        iv,
        ev,
        calendar_state,
        no_base,
        repair_time,
    } = input;
    let base = &snap.fields;
    // Without news from HITO-Link its view is the agreement itself.
    let h_view = iv
        .map(|iv| hitolink_view(iv, policy))
        .unwrap_or_else(|| base.clone());
    let h_deleted = iv.is_some_and(|i| i.deleted);
    let g_view = match (ev, calendar_state) {
        (Some(ev), _) => calendar_view(ev, base, snap.candidate_email.as_deref()),
        (None, CalendarState::Vanished) => Fields {
            cancelled: true,
            ..base.clone()
        },
        (None, _) => base.clone(),
    };
    let mut m = Merger {
        policy,
        no_base,
        hitolink_time: iv.map(|i| i.updated_at),
        calendar_time: ev.and_then(|e| e.updated),
        conflicts: vec![],
    };
    // The key set of answers is HITO-Link's interviewer list.
    let responses = h_view
        .responses
        .iter()
        .map(|(email, h)| {
            let b = base.responses.get(email).unwrap_or(h);
            let g = g_view.responses.get(email).unwrap_or(b);
            (
                email.clone(),
                m.field(&format!("response:{email}"), b, h, g),
            )
        })
        .collect();
    let mut target = Fields {
        cancelled: m.field(
            "cancelled",
            &base.cancelled,
            &h_view.cancelled,
            &g_view.cancelled,
        ),
        slot: if repair_time {
            h_view.slot
        } else {
            m.field("time", &base.slot, &h_view.slot, &g_view.slot)
        },
        location: m.field(
            "location",
            &base.location,
            &h_view.location,
            &g_view.location,
        ),
        meeting_url: m.field(
            "meeting_url",
            &base.meeting_url,
            &h_view.meeting_url,
            &g_view.meeting_url,
        ),
        candidate_declined: m.field(
            "candidate_declined",
            &base.candidate_declined,
            &h_view.candidate_declined,
            &g_view.candidate_declined,
        ),
        responses,
    };
    // Policies and terminal states.
    let event_cancelled_by_google =
        g_view.cancelled && !base.cancelled && h_view.cancelled == base.cancelled;
    if event_cancelled_by_google
        && policy.on_event_deleted == OnEventDeleted::Recreate
        && !h_deleted
    {
        target.cancelled = false;
    }
    if target.candidate_declined && policy.on_decline == OnDecline::CancelEvent {
        target.cancelled = true;
    }
    if target.slot.is_none() || h_deleted {
        target.cancelled = true;
    }
    let conflicts = m.conflicts;
    match iv {
        Some(iv) => plan_writes(
            snap,
            iv,
            Views {
                hitolink: h_view,
                calendar: g_view,
                target,
            },
            ev,
            calendar_state,
            conflicts,
            repair_time,
            policy,
        ),
        // No HITO-Link record at hand: only the calendar side changed, and
        // its change goes to HITO-Link from the agreement's knowledge.
        None => merge_without_record(snap, g_view, ev, target, conflicts, repair_time, policy),
    }
}

/// Each side's fields and the merged target.
struct Views {
    hitolink: Fields,
    calendar: Fields,
    target: Fields,
}

/// The calendar changed and HITO-Link did not (so no record was fetched):
/// the writes to HITO-Link are planned from the snapshot, against the
/// version the snapshot remembers.
fn merge_without_record(
    snap: &Snapshot,
    g_view: Fields,
    ev: Option<&CalendarEvent>,
    target: Fields,
    conflicts: Vec<Conflict>,
    repair_time: bool,
    policy: &Policy,
) -> Decision {
    let h_view = snap.fields.clone();
    let mut ops: Vec<Op> = vec![];
    // The event must carry the new agreement (its digest), and be put back
    // in line where the policy overrode what the calendar did.
    if let Some(c) = calendar_op_for_known(snap, &g_view, &target, ev, repair_time) {
        ops.push(Op::Calendar(c));
    }
    let key_base = decline_key_base(&snap.event_id, ev);
    ops.extend(
        hitolink_ops(
            &snap.interview_id,
            snap.hl_version,
            snap,
            &h_view,
            &target,
            &key_base,
            policy,
        )
        .into_iter()
        .map(Op::Hitolink),
    );
    let mut s = snap.clone();
    s.fields = target.clone();
    if let Some(e) = ev {
        s.event_etag = e.etag.clone();
        s.event_attendees = e.attendees.clone();
    }
    // A write-back still pending stays queued: the agreement says so.
    let summary = describe(&h_view, &g_view, &target, &s);
    Plan {
        case: if ev.is_none() {
            Case::EventVanished
        } else {
            Case::Merge
        },
        interview_id: snap.interview_id.clone(),
        event_id: snap.event_id.clone(),
        ops,
        conflicts,
        snapshot: s,
        summary,
    }
    .into_decision()
}

#[allow(clippy::too_many_arguments)]
fn plan_writes(
    snap: &Snapshot,
    iv: &Interview,
    views: Views,
    ev: Option<&CalendarEvent>,
    calendar_state: CalendarState,
    conflicts: Vec<Conflict>,
    repair_time: bool,
    policy: &Policy,
) -> Decision {
    let Views {
        hitolink: h_view,
        calendar: g_view,
        target,
    } = views;
    let pres = presentation(iv, policy);
    let base_attendees = ev
        .map(|e| e.attendees.clone())
        .unwrap_or_else(|| snap.event_attendees.clone());
    let private = stamp(&iv.id, &target);
    let event_id = snap.event_id.clone();
    let if_match = etag_of(snap, ev);
    let calendar = if calendar_state == CalendarState::Vanished && !target.cancelled {
        // Gone without a trace (not even a tombstone): the derived ID may
        // still be taken, so the engine restores on 409.
        draft(iv, &pres, &target, &[]).map(|draft| CalendarOp::Insert {
            event_id: event_id.clone(),
            draft,
        })
    } else if calendar_state == CalendarState::Vanished {
        None
    } else {
        match (target.cancelled, g_view.cancelled) {
            (true, false) => {
                let mut change = EventChange {
                    private,
                    ..Default::default()
                };
                if target.candidate_declined && !g_view.candidate_declined {
                    change.attendees = Some(attendees_for(iv, &pres, &base_attendees, &target));
                }
                Some(CalendarOp::Cancel {
                    event_id: event_id.clone(),
                    if_match,
                    change,
                })
            }
            (false, true) => Some(CalendarOp::Restore {
                event_id: event_id.clone(),
                if_match,
                change: full_change(iv, &pres, &target, &base_attendees),
            }),
            (true, true) => ev
                .is_none_or(|e| needs_stamp(e, &iv.id, &target))
                .then(|| CalendarOp::Stamp {
                    event_id: event_id.clone(),
                    if_match,
                    private,
                })
                // Without the event at hand, a cancelled one is stamped only
                // when the agreement changed.
                .filter(|_| ev.is_some() || snap.fields != target),
            (false, false) => live_update(LiveUpdate {
                snap,
                iv,
                pres: &pres,
                g_view: &g_view,
                target: &target,
                base_attendees: &base_attendees,
                ev,
                if_match,
                repair_time,
            }),
        }
    };
    let mut ops: Vec<Op> = calendar.into_iter().map(Op::Calendar).collect();
    if !iv.deleted {
        let key_base = decline_key_base(&snap.event_id, ev);
        ops.extend(
            hitolink_ops(
                &iv.id, iv.version, snap, &h_view, &target, &key_base, policy,
            )
            .into_iter()
            .map(Op::Hitolink),
        );
    }
    let mut s = snapshot_of(iv, &snap.event_id, target.clone(), pres, ev, base_attendees);
    if ev.is_none() {
        s.event_etag = snap.event_etag.clone();
    }
    let summary = describe(&h_view, &g_view, &target, &s);
    Plan {
        case: if calendar_state == CalendarState::Vanished {
            Case::EventVanished
        } else {
            Case::Merge
        },
        interview_id: iv.id.clone(),
        event_id: snap.event_id.clone(),
        ops,
        conflicts,
        snapshot: s,
        summary,
    }
    .into_decision()
}

pub(super) fn snapshot_of(
    iv: &Interview,
    event_id: &EventId,
    fields: Fields,
    pres: Presentation,
    event: Option<&CalendarEvent>,
    attendees: Vec<Attendee>,
) -> Snapshot {
    Snapshot {
        interview_id: iv.id.clone(),
        event_id: event_id.clone(),
        fields,
        presentation: pres,
        candidate_email: iv.candidate.email.as_ref().map(|e| e.to_ascii_lowercase()),
        interviewer_ids: iv
            .interviewers
            .iter()
            .map(|i| (i.email.to_ascii_lowercase(), i.id.clone()))
            .collect(),
        hl_version: iv.version,
        event_etag: event.map(|e| e.etag.clone()).unwrap_or_default(),
        event_attendees: attendees,
        retired: iv.deleted,
        // The interview names its event, or the write-back queue will make
        // it so.
        event_ref: if iv.deleted || iv.external_event_id.as_deref() == Some(event_id) {
            EventRef::Written
        } else {
            EventRef::Pending
        },
    }
}

/// What a plan changes, in words, for logs, `plan` and `inspect`.
pub(super) fn describe(h: &Fields, g: &Fields, t: &Fields, s: &Snapshot) -> String {
    let mut parts: Vec<String> = vec![];
    if t.slot != h.slot || t.slot != g.slot {
        parts.push(format!(
            "time from {}",
            if t.slot == h.slot {
                "HITO-Link"
            } else {
                "calendar"
            }
        ));
    }
    if t.location != h.location || t.location != g.location {
        parts.push("place".into());
    }
    if t.meeting_url != h.meeting_url || t.meeting_url != g.meeting_url {
        parts.push("meeting URL".into());
    }
    if t.candidate_declined != h.candidate_declined || t.candidate_declined != g.candidate_declined
    {
        parts.push("candidate declined".into());
    }
    if t.responses != h.responses || t.responses != g.responses {
        parts.push("answers".into());
    }
    if t.cancelled != h.cancelled || t.cancelled != g.cancelled {
        parts.push(if t.cancelled {
            "cancelled".into()
        } else {
            "back on".into()
        });
    }
    if s.event_ref_write().is_some() {
        parts.push("link to the event written back".into());
    }
    if parts.is_empty() {
        "bookkeeping".to_string()
    } else {
        parts.join(", ")
    }
}
