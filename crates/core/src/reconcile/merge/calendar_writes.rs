//! The calendar writes that bring the event to the merged target: a patch
//! of only what changed (so that attendees are mailed only when something
//! they see moved), a cancel, a restore, an insert, or just a fresh stamp
//! of hitosync's private properties. Kept apart from the merge because
//! building an event's attendee list and deciding whom to notify is its
//! own job, shared by the merge and by the record-level cases.

use std::collections::BTreeMap;

use super::super::ops::{CalendarOp, EventChange, EventDraft, Notify};
use super::super::view::{
    AGREED_DIGEST_PROPERTY, Fields, Presentation, Snapshot, without_meeting_url,
};
use crate::model::{Attendee, CalendarEvent, INTERVIEW_ID_PROPERTY, Interview, Response};

/// The event's ETag for a conditional write: as just seen, else as last
/// written.
pub(super) fn etag_of(snap: &Snapshot, ev: Option<&CalendarEvent>) -> Option<String> {
    let e = ev
        .map(|e| e.etag.clone())
        .unwrap_or_else(|| snap.event_etag.clone());
    (!e.is_empty()).then_some(e)
}

/// The calendar write when no HITO-Link record is at hand: the snapshot's
/// presentation stands in for the record's.
pub(super) fn calendar_op_for_known(
    snap: &Snapshot,
    g_view: &Fields,
    target: &Fields,
    ev: Option<&CalendarEvent>,
    repair_time: bool,
) -> Option<CalendarOp> {
    let private = stamp(&snap.interview_id, target);
    let event_id = snap.event_id.clone();
    let if_match = etag_of(snap, ev);
    match (target.cancelled, g_view.cancelled) {
        // Made all-day or recurring: the agreed time goes back on it.
        (false, false) if repair_time => Some(CalendarOp::Patch {
            event_id,
            if_match,
            change: EventChange {
                time: target
                    .slot
                    .map(|s| (s, snap.presentation.time_zone.clone())),
                single: true,
                private,
                ..Default::default()
            },
            notify: Notify::Attendees,
        }),
        (true, false) => Some(CalendarOp::Cancel {
            event_id,
            if_match,
            change: EventChange {
                private,
                ..Default::default()
            },
        }),
        (false, true) => {
            // Restoring needs the whole event; without the record the
            // snapshot's presentation is what was last written.
            let change = EventChange {
                summary: Some(snap.presentation.title.clone()),
                description: Some(snap.presentation.description.clone()),
                location: Some(target.location.clone()),
                time: target
                    .slot
                    .map(|s| (s, snap.presentation.time_zone.clone())),
                attendees: None,
                private,
                single: false,
            };
            Some(CalendarOp::Restore {
                event_id,
                if_match,
                change,
            })
        }
        // Answers the event shows wrong (Google reset them): set right,
        // telling nobody.
        (false, false) if ev.is_some_and(|e| answers_differ(e, snap, target)) => {
            let attendees = ev
                .map(|e| with_answers(&e.attendees, snap, target))
                .unwrap_or_default();
            Some(CalendarOp::Patch {
                event_id,
                if_match,
                change: EventChange {
                    attendees: Some(attendees),
                    private,
                    ..Default::default()
                },
                notify: Notify::Nobody,
            })
        }
        _ if ev.is_some_and(|e| needs_stamp(e, &snap.interview_id, target)) => {
            Some(CalendarOp::Stamp {
                event_id,
                if_match,
                private,
            })
        }
        _ => None,
    }
}

/// The event shows an answer other than the target's for someone hitosync
/// invited.
fn answers_differ(ev: &CalendarEvent, snap: &Snapshot, target: &Fields) -> bool {
    ev.attendees
        .iter()
        .filter(|a| a.is_guest())
        .any(|a| match target.responses.get(&a.email) {
            Some(want) => a.response != *want,
            None => {
                snap.candidate_email.as_deref() == Some(a.email.as_str())
                    && (a.response == Response::Declined) != target.candidate_declined
            }
        })
}

/// The event's attendees with the target's answers.
fn with_answers(attendees: &[Attendee], snap: &Snapshot, target: &Fields) -> Vec<Attendee> {
    attendees
        .iter()
        .cloned()
        .map(|mut a| {
            if !a.is_guest() {
                return a;
            }
            if let Some(want) = target.responses.get(&a.email) {
                a.response = *want;
            } else if snap.candidate_email.as_deref() == Some(a.email.as_str()) {
                if target.candidate_declined {
                    a.response = Response::Declined;
                } else if a.response == Response::Declined {
                    a.response = Response::NeedsAction;
                }
            }
            a
        })
        .collect()
}

/// The event does not carry the interview's ID or the current agreement.
pub(super) fn needs_stamp(ev: &CalendarEvent, interview_id: &str, target: &Fields) -> bool {
    ev.private_properties
        .get(INTERVIEW_ID_PROPERTY)
        .map(String::as_str)
        != Some(interview_id)
        || ev.private_properties.get(AGREED_DIGEST_PROPERTY) != Some(&target.digest())
}

/// What the update of a live event (neither cancelled nor restored) is
/// built from.
pub(super) struct LiveUpdate<'a> {
    pub snap: &'a Snapshot,
    pub iv: &'a Interview,
    pub pres: &'a Presentation,
    pub g_view: &'a Fields,
    pub target: &'a Fields,
    pub base_attendees: &'a [Attendee],
    pub ev: Option<&'a CalendarEvent>,
    pub if_match: Option<String>,
    pub repair_time: bool,
}

/// The patch of a live event: only what differs, mailing attendees only
/// when the time, the place, the link or the invitees change; a bare
/// stamp when only the agreement did.
pub(super) fn live_update(u: LiveUpdate<'_>) -> Option<CalendarOp> {
    let LiveUpdate {
        snap,
        iv,
        pres,
        g_view,
        target,
        base_attendees,
        ev,
        if_match,
        repair_time,
    } = u;
    let mut change = EventChange::default();
    let mut notify = false;
    if target.slot != g_view.slot || repair_time {
        change.time = target.slot.map(|s| (s, pres.time_zone.clone()));
        change.single = repair_time;
        notify = true;
    }
    if target.location != g_view.location {
        change.location = Some(target.location.clone());
        notify = true;
    }
    let link_changed = target.meeting_url != g_view.meeting_url;
    if link_changed
        || without_meeting_url(&pres.description)
            != without_meeting_url(&snap.presentation.description)
    {
        change.description = Some(pres.description.clone());
        notify |= link_changed;
    }
    if pres.title != snap.presentation.title {
        change.summary = Some(pres.title.clone());
    }
    let wanted = attendees_for(iv, pres, base_attendees, target);
    let invitees_changed = pres.invitees != snap.presentation.invitees
        || !pres
            .invitees
            .iter()
            .all(|e| base_attendees.iter().any(|a| &a.email == e));
    // What the event shows, needsAction included: the view reads a reset
    // to needsAction as no news, but the event must still be set right.
    let shown = |email: &str| {
        base_attendees
            .iter()
            .find(|a| a.is_guest() && a.email.eq_ignore_ascii_case(email))
            .map(|a| a.response)
    };
    let answers_changed = target
        .responses
        .iter()
        .any(|(email, want)| shown(email).is_some_and(|have| have != *want))
        || snap
            .candidate_email
            .as_deref()
            .and_then(shown)
            .is_some_and(|r| (r == Response::Declined) != target.candidate_declined)
        || target.candidate_declined != g_view.candidate_declined;
    if invitees_changed || answers_changed {
        change.attendees = Some(wanted);
        notify |= invitees_changed;
    }
    let changed = !change.is_empty();
    let unstamped = match ev {
        Some(e) => needs_stamp(e, &iv.id, target),
        // Not seen this cycle: it carries what was last agreed.
        None => snap.fields != *target,
    };
    if !changed && !unstamped {
        return None;
    }
    let event_id = snap.event_id.clone();
    change.private = stamp(&iv.id, target);
    Some(if changed {
        CalendarOp::Patch {
            event_id,
            if_match,
            change,
            notify: if notify {
                Notify::Attendees
            } else {
                Notify::Nobody
            },
        }
    } else {
        CalendarOp::Stamp {
            event_id,
            if_match,
            private: change.private,
        }
    })
}

/// The attendee list hitosync writes: guests the organizer added by hand,
/// rooms and the organizer's own entry are kept as they are; hitosync owns
/// only its invitees.
pub(super) fn attendees_for(
    iv: &Interview,
    pres: &Presentation,
    base: &[Attendee],
    fields: &Fields,
) -> Vec<Attendee> {
    let mut out: Vec<Attendee> = base
        .iter()
        .filter(|a| !a.is_guest() || !pres.invitees.contains(&a.email))
        .cloned()
        .collect();
    for i in &iv.interviewers {
        let email = i.email.to_ascii_lowercase();
        out.push(Attendee {
            email: email.clone(),
            display_name: Some(i.name.clone()),
            response: fields.responses.get(&email).copied().unwrap_or(i.response),
            organizer: false,
            resource: false,
            is_self: false,
        });
    }
    if let Some(e) = &iv.candidate.email {
        let email = e.to_ascii_lowercase();
        if pres.invitees.contains(&email) {
            let previous = base.iter().find(|a| a.email == email).map(|a| a.response);
            out.push(Attendee {
                email,
                display_name: Some(iv.candidate.display_name.clone()),
                response: if fields.candidate_declined {
                    Response::Declined
                } else {
                    match previous {
                        Some(Response::Declined) | None => Response::NeedsAction,
                        Some(r) => r,
                    }
                },
                organizer: false,
                resource: false,
                is_self: false,
            });
        }
    }
    out
}

/// The whole event for an insert; `None` without a time (a target without
/// one is cancelled, so no insert is ever planned for it).
pub(in crate::reconcile) fn draft(
    iv: &Interview,
    pres: &Presentation,
    fields: &Fields,
    base_attendees: &[Attendee],
) -> Option<EventDraft> {
    Some(EventDraft {
        summary: pres.title.clone(),
        description: pres.description.clone(),
        location: fields.location.clone(),
        slot: fields.slot?,
        time_zone: pres.time_zone.clone(),
        attendees: attendees_for(iv, pres, base_attendees, fields),
        private: stamp(&iv.id, fields),
    })
}

/// The whole event as a change, for a restore.
pub(super) fn full_change(
    iv: &Interview,
    pres: &Presentation,
    fields: &Fields,
    base_attendees: &[Attendee],
) -> EventChange {
    EventChange {
        summary: Some(pres.title.clone()),
        description: Some(pres.description.clone()),
        location: Some(fields.location.clone()),
        time: fields.slot.map(|s| (s, pres.time_zone.clone())),
        attendees: Some(attendees_for(iv, pres, base_attendees, fields)),
        private: stamp(&iv.id, fields),
        single: false,
    }
}

/// hitosync's private properties: the interview ID (the event's half of
/// the link) and the digest of the agreement.
pub(in crate::reconcile) fn stamp(interview_id: &str, fields: &Fields) -> BTreeMap<String, String> {
    [
        (INTERVIEW_ID_PROPERTY.to_string(), interview_id.to_string()),
        (AGREED_DIGEST_PROPERTY.to_string(), fields.digest()),
    ]
    .into()
}
