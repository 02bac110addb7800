//! The record-level cases: new on one side, gone on one side, a mapping
//! to rebuild, a booking, a shape the product cannot hold.

use super::decision::{Book, Decision, Mapping, Plan, Refusal};
use super::merge::{CalendarState, MergeInput, draft, google_wins, merge, snapshot_of, stamp};
use super::ops::{Booking, CalendarOp, Case, EventChange, LookAlike, Op};
use super::view::{
    AGREED_DIGEST_PROPERTY, EventRef, Snapshot, calendar_view, derived_event_id, hitolink_view,
    parse_meeting_url, presentation,
};
use super::{Policy, Seen};
use crate::ids::InterviewId;
use crate::model::{CalendarEvent, EventShape, EventStatus, Interview};

/// Which of the events that claim an interview is its event, and which are
/// look-alikes. The choice depends only on the events, never on the order
/// they came in: the mapped event when there is a mapping; without one, the
/// event under the derived ID, else the event the interview names (a
/// booking), provided it claims this interview or nothing yet, else the
/// first made of those that claim it. Foreign events and instances of a
/// series are never chosen.
pub(super) fn choose<'a>(
    interview_id: &InterviewId,
    snapshot: Option<&Snapshot>,
    iv: Option<&Interview>,
    calendar: Seen<&'a CalendarEvent>,
    claimants: &'a [CalendarEvent],
    organizer: &str,
) -> (Seen<&'a CalendarEvent>, Vec<LookAlike>) {
    let mut all: Vec<&'a CalendarEvent> = claimants.iter().collect();
    if let Seen::Now(ev) = calendar {
        all.push(ev);
    }
    let chosen: Option<&'a CalendarEvent> = match snapshot {
        Some(s) => all.iter().copied().find(|e| e.id == s.event_id),
        None => {
            let eligible = |e: &&'a CalendarEvent| {
                !matches!(
                    e.shape(organizer),
                    EventShape::Foreign | EventShape::Instance
                ) && e.interview_id().is_none_or(|i| i == interview_id)
            };
            let derived = derived_event_id(interview_id);
            let named = iv.and_then(|i| i.external_event_id.as_deref());
            // The event at hand is the one at the derived ID, or the one
            // this interview was just booked from; then the derived ID among
            // the rest; then the event the interview names.
            let at_hand = calendar.now().copied().filter(eligible);
            let find = |want: &str| all.iter().copied().filter(eligible).find(|e| e.id == want);
            at_hand
                .or_else(|| find(&derived))
                .or_else(|| named.and_then(find))
                // Neither (a store lost after an admin renamed the link):
                // the first made of the organizer's events that carry the
                // interview's ID is the original; a second event for the
                // interview would be a duplicate.
                .or_else(|| {
                    all.iter()
                        .copied()
                        .filter(eligible)
                        .filter(|e| e.interview_id() == Some(interview_id))
                        .min_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)))
                })
        }
    };
    let lookalikes = all
        .iter()
        .filter(|e| chosen.is_none_or(|c| c.id != e.id))
        .filter(|e| e.interview_id() == Some(interview_id))
        .map(|e| LookAlike::new(&e.id, interview_id, e.shape(organizer)))
        .collect();
    let seen = match (chosen, calendar) {
        (Some(ev), _) => Seen::Now(ev),
        // The event at hand was not this interview's: as if not seen.
        (None, Seen::Now(_)) => Seen::NoNews,
        (None, other) => other,
    };
    (seen, lookalikes)
}

/// A side compared with the snapshot.
enum Side<'a, T> {
    Same(Option<&'a T>),
    Changed(&'a T),
    Gone,
}

/// The mapped case: one exhaustive `match` over what each side did since
/// the agreement.
pub(super) fn decide_mapped(
    snap: &Snapshot,
    hitolink: Seen<&Interview>,
    calendar: Seen<&CalendarEvent>,
    policy: &Policy,
) -> Decision {
    // A shape HITO-Link cannot hold: give the event its time back, or stop.
    let mut repair_time = false;
    let live = calendar
        .now()
        .copied()
        .filter(|ev| !snap.retired && ev.status != EventStatus::Cancelled);
    if let Some(ev) = live {
        match ev.shape(&policy.organizer) {
            EventShape::Single => {}
            shape @ (EventShape::AllDay | EventShape::Recurring) => {
                let hitolink_time = hitolink.now().map(|iv| iv.updated_at);
                if google_wins(policy, hitolink_time, ev.updated) {
                    return refused(
                        snap,
                        format!(
                            "the event was made {} in the calendar, which HITO-Link cannot hold; make it a single timed event again, or let HITO-Link's time win (sync.conflict = \"hitolink-wins\")",
                            shape.describe()
                        ),
                    );
                }
                repair_time = true;
            }
            shape @ (EventShape::Instance | EventShape::Foreign) => {
                return refused(
                    snap,
                    format!(
                        "the event became {}; hitosync writes only single events the organizer organizes",
                        shape.describe()
                    ),
                );
            }
        }
    }
    let h = match hitolink {
        Seen::NoNews => Side::Same(None),
        Seen::Now(iv)
            if hitolink_view(iv, policy) == snap.fields
                && presentation(iv, policy) == snap.presentation =>
        {
            Side::Same(Some(iv))
        }
        Seen::Now(iv) => Side::Changed(iv),
        Seen::Gone => Side::Gone,
    };
    let g = match calendar {
        Seen::NoNews => Side::Same(None),
        Seen::Now(ev)
            if !repair_time
                && calendar_view(ev, &snap.fields, snap.candidate_email.as_deref())
                    == snap.fields
                && (ev.status == EventStatus::Cancelled
                    || (carries_agreement(ev, snap) && shows_agreed_answers(ev, snap))) =>
        {
            Side::Same(Some(ev))
        }
        Seen::Now(ev) => Side::Changed(ev),
        Seen::Gone => Side::Gone,
    };
    let id = || Some(snap.interview_id.clone());
    let ev_id = || Some(snap.event_id.clone());
    match (h, g) {
        (Side::Gone, Side::Gone) => Decision::quiet(
            Case::Forget,
            id(),
            ev_id(),
            Mapping::Forget,
            "gone on both sides; mapping dropped",
        ),
        // HITO-Link lost the record: the event must not outlive it.
        (Side::Gone, Side::Same(ev)) => interview_vanished(snap, ev),
        (Side::Gone, Side::Changed(ev)) => interview_vanished(snap, Some(ev)),
        (h @ (Side::Same(_) | Side::Changed(_)), g) => {
            let (iv, h_changed) = match h {
                Side::Same(iv) => (iv, false),
                Side::Changed(iv) => (Some(iv), true),
                Side::Gone => (None, false),
            };
            let (ev, calendar_state) = match g {
                Side::Same(ev) => (ev, CalendarState::Same),
                Side::Changed(ev) => (Some(ev), CalendarState::Changed),
                Side::Gone => (None, CalendarState::Vanished),
            };
            if snap.retired {
                return retired(snap, ev);
            }
            let link_written = match iv {
                Some(iv) => iv.deleted || iv.external_event_id.as_deref() == Some(&snap.event_id),
                None => snap.event_ref != EventRef::Pending,
            };
            if !h_changed && calendar_state == CalendarState::Same && link_written {
                // Echoes of our own writes land here too: the snapshot is
                // refreshed (new ETag, new version), nothing is written.
                let mut s = snap.clone();
                refresh_observed(&mut s, iv, ev);
                return Decision::quiet(
                    Case::NothingToDo,
                    id(),
                    ev_id(),
                    Mapping::Agreed(Box::new(s)),
                    "in agreement",
                );
            }
            merge(
                MergeInput {
                    snap,
                    iv,
                    ev,
                    calendar_state,
                    no_base: false,
                    repair_time,
                },
                policy,
            )
        }
    }
}

/// The event carries the interview's ID and the agreed digest: both are
/// what a rebuild and the link rely on.
fn carries_agreement(ev: &CalendarEvent, snap: &Snapshot) -> bool {
    ev.interview_id() == Some(snap.interview_id.as_str())
        && ev.private_properties.get(AGREED_DIGEST_PROPERTY) == Some(&snap.fields.digest())
}

/// The event shows the agreed answers. An answer Google reset to
/// needsAction is not news (the view ignores it), but the event is still
/// put right, once, so the calendar shows what both sides agreed.
fn shows_agreed_answers(ev: &CalendarEvent, snap: &Snapshot) -> bool {
    let shown = |email: &str| {
        ev.attendees
            .iter()
            .find(|a| a.is_guest() && a.email.eq_ignore_ascii_case(email))
            .map(|a| a.response)
    };
    snap.fields
        .responses
        .iter()
        .all(|(email, agreed)| shown(email).is_none_or(|r| r == *agreed))
}

fn refused(snap: &Snapshot, reason: String) -> Decision {
    Decision::Refused(Refusal {
        interview_id: Some(snap.interview_id.clone()),
        event_id: snap.event_id.clone(),
        reason,
    })
}

/// No mapping yet: one exhaustive `match` over what each side shows.
pub(super) fn decide_unmapped(
    hitolink: Seen<&Interview>,
    calendar: Seen<&CalendarEvent>,
    policy: &Policy,
) -> Decision {
    match (hitolink, calendar) {
        (Seen::NoNews | Seen::Gone, Seen::NoNews | Seen::Gone) => Decision::quiet(
            Case::NothingToDo,
            None,
            None,
            Mapping::Untouched,
            "nothing known",
        ),
        (Seen::NoNews | Seen::Gone, Seen::Now(ev)) => match ev.interview_id() {
            Some(iid) => Decision::quiet(
                Case::OrphanEvent,
                Some(InterviewId::from(iid)),
                Some(ev.id.clone()),
                Mapping::Untouched,
                "managed event whose interview HITO-Link has not shown; left alone",
            ),
            None => match booking_of(ev, policy) {
                Ok(Some(booking)) => Decision::Book(Book {
                    event_id: ev.id.clone(),
                    booking,
                }),
                Ok(None) => Decision::quiet(
                    Case::Unmanaged,
                    None,
                    Some(ev.id.clone()),
                    Mapping::Untouched,
                    "not managed; never touched",
                ),
                Err(shape) => {
                    let reason = format!(
                        "the booking marker is on {}; only a single timed event the organizer organizes books an interview",
                        shape.describe()
                    );
                    Decision::Refused(Refusal {
                        interview_id: None,
                        event_id: ev.id.clone(),
                        reason,
                    })
                }
            },
        },
        (Seen::Now(iv), Seen::NoNews | Seen::Gone) => create_event(iv, policy),
        (Seen::Now(iv), Seen::Now(ev)) => adopt(iv, ev, policy),
    }
}

/// `HL:<application_id>` in the title or description of an unmanaged,
/// live event. `Ok(None)`: no marker (or a cancelled event); `Err`: a
/// marker on a shape that cannot book.
pub fn booking_of(ev: &CalendarEvent, policy: &Policy) -> Result<Option<Booking>, EventShape> {
    if ev.status == EventStatus::Cancelled || ev.interview_id().is_some() {
        return Ok(None);
    }
    let marker = policy.booking_marker.as_str();
    let find = |text: &str| -> Option<String> {
        let at = text.find(marker)?;
        let rest = &text[at + marker.len()..];
        let id: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        (!id.is_empty()).then_some(id)
    };
    let Some(application_id) = ev.summary.as_deref().and_then(find).or_else(|| {
        ev.description
            .as_deref()
            .and_then(|d| find(&super::view::description_text(d)))
    }) else {
        return Ok(None);
    };
    let shape = ev.shape(&policy.organizer);
    let slot = match (shape, ev.slot) {
        (EventShape::Single, Some(slot)) => slot,
        (EventShape::Single, None) => return Err(EventShape::AllDay),
        (other, _) => return Err(other),
    };
    Ok(Some(Booking {
        application_id,
        slot,
        time_zone: ev.time_zone.clone().unwrap_or_else(|| "Asia/Tokyo".into()),
        guests: ev
            .attendees
            .iter()
            .filter(|a| a.is_guest() && a.email != policy.organizer)
            .map(|a| a.email.clone())
            .collect(),
        location: ev.location.clone(),
        meeting_url: ev.description.as_deref().and_then(parse_meeting_url),
    }))
}

fn create_event(iv: &Interview, policy: &Policy) -> Decision {
    let fields = hitolink_view(iv, policy);
    // Always the derived ID: a retry after a crash, or after the store was
    // lost, then meets 409 and adopts instead of making a second event.
    // The event the interview names (a booking's) is not taken on trust: an
    // admin may have named anything; the engine reads it and hands it in
    // among the claimants, and `choose` adopts it when it is this
    // interview's.
    let event_id = derived_event_id(&iv.id);
    let pres = presentation(iv, policy);
    let Some(draft) = draft(iv, &pres, &fields, &[]).filter(|_| !fields.cancelled) else {
        return Decision::quiet(
            Case::WaitingForTime,
            Some(iv.id.clone()),
            None,
            Mapping::Untouched,
            format!("{} in HITO-Link: no event until it is scheduled", iv.status),
        );
    };
    let attendees = draft.attendees.clone();
    Decision::Write(Box::new(Plan {
        case: Case::CreateEvent,
        interview_id: iv.id.clone(),
        event_id: event_id.clone(),
        ops: vec![Op::Calendar(CalendarOp::Insert {
            event_id: event_id.clone(),
            draft,
        })],
        conflicts: vec![],
        snapshot: snapshot_of(iv, &event_id, fields, pres, None, attendees),
        summary: "new in HITO-Link: create the event and write its ID back".into(),
    }))
}

/// Both sides hold the interview but the store does not (it was lost, a
/// crash fell between the two writes, an insert met 409, or a booking just
/// made its interview): rebuild the agreement from the digest stamped on
/// the event, then merge as usual, which writes whichever half of the link
/// is missing.
fn adopt(iv: &Interview, ev: &CalendarEvent, policy: &Policy) -> Decision {
    let h_view = hitolink_view(iv, policy);
    let stamped = ev.private_properties.get(AGREED_DIGEST_PROPERTY);
    let g_view = calendar_view(ev, &h_view, iv.candidate.email.as_deref());
    // The agreed state is whichever side still matches the stamp; failing
    // that, the HITO-Link view with every disagreement a conflict.
    let fresh_booking = ev.interview_id().is_none() && stamped.is_none();
    let (base, unknown_base) = if fresh_booking {
        // The interview was just made from this event: what the event shows
        // beyond it is the calendar's news.
        (h_view.clone(), false)
    } else if stamped == Some(&h_view.digest()) {
        (h_view.clone(), false)
    } else if stamped == Some(&g_view.digest()) {
        (g_view.clone(), false)
    } else {
        (h_view.clone(), true)
    };
    let snap = snapshot_of(
        iv,
        &ev.id,
        base,
        presentation(iv, policy),
        Some(ev),
        ev.attendees.clone(),
    );
    // An all-day or recurring event is held as the mapped one would be.
    let repair_time = matches!(
        ev.shape(&policy.organizer),
        EventShape::AllDay | EventShape::Recurring
    ) && ev.status != EventStatus::Cancelled;
    let d = merge(
        MergeInput {
            snap: &snap,
            iv: Some(iv),
            ev: Some(ev),
            calendar_state: CalendarState::Changed,
            no_base: unknown_base,
            repair_time,
        },
        policy,
    );
    let rebuilt =
        |summary: &str| format!("rebuilt the mapping from the event's properties; {summary}");
    match d {
        Decision::Write(mut p) => {
            p.case = Case::Adopt;
            p.summary = rebuilt(&p.summary);
            Decision::Write(p)
        }
        Decision::Quiet(mut q) => {
            q.case = Case::Adopt;
            q.summary = rebuilt(&q.summary);
            Decision::Quiet(q)
        }
        other @ (Decision::Refused(_) | Decision::Book(_)) => other,
    }
}

fn interview_vanished(snap: &Snapshot, ev: Option<&CalendarEvent>) -> Decision {
    let already = ev.is_none_or(|e| e.status == EventStatus::Cancelled);
    let mut s = snap.clone();
    s.retired = true;
    s.fields.cancelled = true;
    if let Some(e) = ev {
        s.event_etag = e.etag.clone();
    }
    let ops = if already {
        vec![]
    } else {
        vec![Op::Calendar(CalendarOp::Cancel {
            event_id: snap.event_id.clone(),
            if_match: ev.map(|e| e.etag.clone()),
            change: EventChange {
                private: stamp(&snap.interview_id, &s.fields),
                ..Default::default()
            },
        })]
    };
    Plan {
        case: Case::InterviewVanished,
        interview_id: snap.interview_id.clone(),
        event_id: snap.event_id.clone(),
        ops,
        conflicts: vec![],
        snapshot: s,
        summary: if already {
            "interview gone from HITO-Link; event already cancelled".into()
        } else {
            "interview gone from HITO-Link: cancel the event".into()
        },
    }
    .into_decision()
}

/// The interview was deleted in HITO-Link: the event stays cancelled, even
/// if someone brings it back in the calendar (no resurrection).
fn retired(snap: &Snapshot, ev: Option<&CalendarEvent>) -> Decision {
    let mut s = snap.clone();
    if let Some(e) = ev {
        s.event_etag = e.etag.clone();
    }
    match ev {
        Some(e) if e.status != EventStatus::Cancelled => Decision::Write(Box::new(Plan {
            case: Case::Retired,
            interview_id: snap.interview_id.clone(),
            event_id: snap.event_id.clone(),
            ops: vec![Op::Calendar(CalendarOp::Cancel {
                event_id: snap.event_id.clone(),
                if_match: Some(e.etag.clone()),
                change: EventChange {
                    private: stamp(&snap.interview_id, &snap.fields),
                    ..Default::default()
                },
            })],
            conflicts: vec![],
            snapshot: s,
            summary:
                "interview was deleted in HITO-Link; the event came back and is cancelled again"
                    .into(),
        })),
        _ => Decision::quiet(
            Case::Retired,
            Some(snap.interview_id.clone()),
            Some(snap.event_id.clone()),
            Mapping::Agreed(Box::new(s)),
            "interview was deleted in HITO-Link; nothing more to do",
        ),
    }
}

fn refresh_observed(s: &mut Snapshot, iv: Option<&Interview>, ev: Option<&CalendarEvent>) {
    if let Some(iv) = iv {
        s.hl_version = iv.version;
        s.retired |= iv.deleted;
        if iv.external_event_id.as_deref() == Some(&s.event_id) {
            s.event_ref = EventRef::Written;
        }
    }
    if let Some(ev) = ev {
        s.event_etag = ev.etag.clone();
        s.event_attendees = ev.attendees.clone();
    }
}
