//! The decisions: what one interview needs, given what each side shows and
//! what both last agreed on. Pure: no I/O, no clock, no randomness, so that
//! every row of the SPEC's table is a unit test and property tests can run
//! thousands of histories.
//!
//! Each side is reduced to the same [`Fields`] (its *view*), compared with
//! the agreed snapshot field by field, and merged: a field changed on one
//! side travels to the other; the same field changed differently on both is
//! a conflict settled by policy. The merged target then says what to write
//! where. The record-level cases (new on one side, gone on one side, ...)
//! are one exhaustive `match` in [`decide`], so the compiler checks that no
//! combination is forgotten.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{
    Attendee, CalendarEvent, EventStatus, INTERVIEW_ID_PROPERTY, Interview, InterviewStatus,
    Response, Slot,
};
use crate::policy::{ConflictPolicy, OnDecline, OnEventDeleted};

/// The private property holding a digest of the agreed fields. After the
/// store is lost it tells which side, if any, changed since the last
/// agreement, so rebuilding the mapping loses no change.
pub const AGREED_DIGEST_PROPERTY: &str = "hitolinkAgreed";

/// The line of an event's description that carries the meeting link.
pub const LINK_LABEL: &str = "Web会議: ";

/// The synced state of one interview, as either side shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields {
    /// Off the calendar: cancelled, deleted, declined (with `cancel-event`),
    /// or back to needs-scheduling.
    pub cancelled: bool,
    pub slot: Option<Slot>,
    pub location: Option<String>,
    pub link: Option<String>,
    pub candidate_declined: bool,
    /// Each interviewer's answer, by lowercase email.
    pub responses: BTreeMap<String, Response>,
}

impl Fields {
    /// A short digest, stored on the event as [`AGREED_DIGEST_PROPERTY`].
    pub fn digest(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let hash = Sha256::digest(&json);
        hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// What HITO-Link owns alone: the event's title, its description and who is
/// invited. Calendar-side edits to these are not synced back (HITO-Link's
/// API cannot take them), so they are compared with what was last written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presentation {
    pub title: String,
    pub description: String,
    /// Lowercase emails: the interviewers, and the candidate when invited.
    pub invitees: BTreeSet<String>,
    pub time_zone: String,
}

/// What both sides last agreed on, per mapped interview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub interview_id: String,
    pub event_id: String,
    pub fields: Fields,
    pub presentation: Presentation,
    pub candidate_email: Option<String>,
    /// Interviewer id by email, for `decline {by: interviewer}`.
    pub interviewer_ids: BTreeMap<String, String>,
    pub hl_version: u64,
    pub event_etag: String,
    /// The attendees as last seen on the event, so that guests the
    /// organizer added by hand survive hitosync's attendee writes.
    pub event_attendees: Vec<Attendee>,
    /// HITO-Link deleted the interview: the mapping is kept only so that
    /// the event is never brought back.
    pub retired: bool,
}

/// Everything a decision needs to know about policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub conflict: ConflictPolicy,
    pub on_decline: OnDecline,
    pub on_event_deleted: OnEventDeleted,
    pub invite_candidate: bool,
    pub booking_marker: String,
    pub title_template: String,
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

/// The event ID of an interview: base32hex of its ID, so that a create
/// retried after a crash or a lost store meets `409` instead of making a
/// second event.
pub fn derived_event_id(interview_id: &str) -> String {
    let mut id = data_encoding::BASE32HEX_NOPAD
        .encode(interview_id.as_bytes())
        .to_ascii_lowercase();
    while id.len() < 5 {
        id.push('0');
    }
    id.truncate(1024);
    id
}

// ---------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------

/// HITO-Link's view of the synced fields.
pub fn hitolink_view(iv: &Interview, policy: &Policy) -> Fields {
    let declined = iv.status == InterviewStatus::CandidateDeclined;
    Fields {
        cancelled: iv.deleted
            || iv.status == InterviewStatus::Canceled
            || iv.status == InterviewStatus::NeedsScheduling
            || iv.slot.is_none()
            || (declined && policy.on_decline == OnDecline::CancelEvent),
        slot: iv.slot,
        location: iv.location.clone(),
        link: iv.meeting_url.clone(),
        candidate_declined: declined,
        responses: iv
            .interviewers
            .iter()
            .map(|i| (i.email.to_ascii_lowercase(), i.response))
            .collect(),
    }
}

/// The calendar's view, read against `base` (the agreed fields, or the
/// HITO-Link view when there is no agreement yet): what the event does not
/// show is taken as unchanged, and a cancelled event shows only that.
pub fn calendar_view(ev: &CalendarEvent, base: &Fields, candidate_email: Option<&str>) -> Fields {
    if ev.status == EventStatus::Cancelled {
        return Fields {
            cancelled: true,
            ..base.clone()
        };
    }
    let response_of = |email: &str| {
        ev.attendees
            .iter()
            .find(|a| a.email.eq_ignore_ascii_case(email))
            .map(|a| a.response)
    };
    Fields {
        cancelled: false,
        slot: ev.slot.or(base.slot),
        location: ev.location.clone().filter(|l| !l.trim().is_empty()),
        link: ev.description.as_deref().and_then(parse_link),
        candidate_declined: match candidate_email.and_then(response_of) {
            Some(r) => r == Response::Declined,
            None => base.candidate_declined,
        },
        responses: base
            .responses
            .iter()
            .map(|(email, r)| (email.clone(), response_of(email).unwrap_or(*r)))
            .collect(),
    }
}

/// The meeting link in a description: the line starting with [`LINK_LABEL`].
pub fn parse_link(description: &str) -> Option<String> {
    description
        .lines()
        .find_map(|l| l.trim().strip_prefix(LINK_LABEL.trim_end()))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Title, description and invitees as HITO-Link says they should be.
pub fn presentation(iv: &Interview, policy: &Policy) -> Presentation {
    let step = iv
        .selection_step
        .as_ref()
        .map(|s| s.name.as_str())
        .unwrap_or("");
    let title = policy
        .title_template
        .replace("{candidate}", &iv.candidate.display_name)
        .replace("{step}", step)
        .replace("{job}", &iv.job.name)
        .trim()
        .to_string();
    let mut description = format!(
        "HITO-Link 面接 {}\n応募者: {}\n求人: {}\n",
        iv.id, iv.candidate.display_name, iv.job.name
    );
    if !step.is_empty() {
        description.push_str(&format!("選考ステップ: {step}\n"));
    }
    if let Some(link) = &iv.meeting_url {
        description.push_str(&format!("{LINK_LABEL}{link}\n"));
    }
    let mut invitees: BTreeSet<String> = iv
        .interviewers
        .iter()
        .map(|i| i.email.to_ascii_lowercase())
        .collect();
    if policy.invite_candidate
        && let Some(e) = &iv.candidate.email
    {
        invitees.insert(e.to_ascii_lowercase());
    }
    Presentation {
        title,
        description,
        invitees,
        time_zone: iv.time_zone.name().to_string(),
    }
}

// ---------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------

/// What happens to the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CalendarWrite {
    /// Insert under the derived ID (`409` means adopt).
    Create(EventBody),
    /// Patch a live event; `notify` when attendees see the change.
    Update { body: EventBody, notify: bool },
    /// Cancel (attendees are told).
    Cancel { body: EventBody },
    /// Bring a cancelled event back (`status: confirmed` plus `body`).
    Restore { body: EventBody },
    /// Write bookkeeping only (the agreed digest, the interview ID); nobody
    /// is notified.
    Stamp { body: EventBody },
}

/// The fields of an event write; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventBody {
    pub summary: Option<String>,
    pub description: Option<String>,
    /// `Some(None)` clears the location.
    pub location: Option<Option<String>>,
    pub slot: Option<Slot>,
    pub time_zone: Option<String>,
    pub attendees: Option<Vec<Attendee>>,
    pub private: BTreeMap<String, String>,
}

/// What happens in HITO-Link, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum HitolinkWrite {
    /// A booking made in the calendar becomes an interview.
    Book(Booking),
    /// `POST decline {by: candidate}`.
    DeclineCandidate,
    /// `POST decline {by: interviewer}`.
    DeclineInterviewer { interviewer_id: String },
    /// `PATCH` of the writable fields.
    Patch(InterviewPatch),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Booking {
    pub application_id: String,
    pub slot: Slot,
    pub time_zone: String,
    /// The event's guests; the candidate among them is dropped once the
    /// application says who the candidate is.
    pub guests: Vec<String>,
    pub location: Option<String>,
    pub link: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InterviewPatch {
    pub slot: Option<Slot>,
    pub location: Option<Option<String>>,
    pub link: Option<Option<String>>,
    /// `scheduled` or `canceled`.
    pub status: Option<InterviewStatus>,
    /// (interviewer id, answer) for answers other than declines.
    pub responses: Vec<(String, Response)>,
    pub external_event_id: Option<String>,
}

impl InterviewPatch {
    pub fn is_empty(&self) -> bool {
        *self == InterviewPatch::default()
    }
}

/// Which side won a field both changed, and what the loser said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub field: String,
    pub hitolink: String,
    pub google: String,
    pub winner: String,
}

/// The row of the SPEC table a decision came from; printed by `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    NothingToDo,
    WaitingForTime,
    CreateEvent,
    Booking,
    Adopt,
    Merge,
    EventVanished,
    InterviewVanished,
    Forget,
    Unmanaged,
    OrphanEvent,
    Retired,
}

/// One interview's plan: writes on each side, then the snapshot to store
/// once they succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub case: Case,
    pub interview_id: Option<String>,
    pub event_id: Option<String>,
    pub calendar: Option<CalendarWrite>,
    pub hitolink: Vec<HitolinkWrite>,
    pub conflicts: Vec<Conflict>,
    /// `None`: drop the mapping (both sides are gone).
    pub snapshot: Option<Snapshot>,
    /// What changed, in words, for logs, `plan` and `inspect`.
    pub summary: String,
}

impl Decision {
    fn nothing(
        case: Case,
        interview_id: Option<String>,
        event_id: Option<String>,
        snapshot: Option<Snapshot>,
        summary: &str,
    ) -> Decision {
        Decision {
            case,
            interview_id,
            event_id,
            calendar: None,
            hitolink: vec![],
            conflicts: vec![],
            snapshot,
            summary: summary.to_string(),
        }
    }

    /// Writes nothing anywhere.
    pub fn is_quiet(&self) -> bool {
        self.calendar.is_none() && self.hitolink.is_empty()
    }

    /// Cancels an event or an interview: counted by the mass-deletion breaker.
    pub fn is_destructive(&self) -> bool {
        matches!(self.calendar, Some(CalendarWrite::Cancel { .. }))
            || self.hitolink.iter().any(|w| {
                matches!(
                    w,
                    HitolinkWrite::DeclineCandidate
                        | HitolinkWrite::Patch(InterviewPatch {
                            status: Some(InterviewStatus::Canceled),
                            ..
                        })
                )
            })
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

/// A side compared with the snapshot.
enum Side<'a, T> {
    Same(Option<&'a T>),
    Changed(&'a T),
    Gone,
}

/// The one entry point: decide for one interview (or one unmanaged event).
pub fn decide(
    snapshot: Option<&Snapshot>,
    hitolink: Seen<'_, Interview>,
    calendar: Seen<'_, CalendarEvent>,
    policy: &Policy,
) -> Decision {
    let Some(snap) = snapshot else {
        return decide_unmapped(hitolink, calendar, policy);
    };
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
            if calendar_view(ev, &snap.fields, snap.candidate_email.as_deref()) == snap.fields =>
        {
            Side::Same(Some(ev))
        }
        Seen::Now(ev) => Side::Changed(ev),
        Seen::Gone => Side::Gone,
    };
    let id = || Some(snap.interview_id.clone());
    let ev_id = || Some(snap.event_id.clone());
    match (h, g) {
        (Side::Gone, Side::Gone) => Decision::nothing(
            Case::Forget,
            id(),
            ev_id(),
            None,
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
            let (ev, g_state) = match g {
                Side::Same(ev) => (ev, GState::Same),
                Side::Changed(ev) => (Some(ev), GState::Changed),
                Side::Gone => (None, GState::Vanished),
            };
            if snap.retired {
                return retired(snap, ev);
            }
            if !h_changed && g_state == GState::Same {
                // Echoes of our own writes land here too: the snapshot is
                // refreshed (new ETag, new version), nothing is written.
                let mut s = snap.clone();
                refresh_observed(&mut s, iv, ev);
                return Decision::nothing(
                    Case::NothingToDo,
                    id(),
                    ev_id(),
                    Some(s),
                    "in agreement",
                );
            }
            merge(snap, iv, ev, g_state, false, policy)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GState {
    Same,
    Changed,
    /// The event is not there at all (not even a tombstone).
    Vanished,
}

fn decide_unmapped(
    hitolink: Seen<'_, Interview>,
    calendar: Seen<'_, CalendarEvent>,
    policy: &Policy,
) -> Decision {
    match (hitolink, calendar) {
        (Seen::NoNews | Seen::Gone, Seen::NoNews | Seen::Gone) => {
            Decision::nothing(Case::NothingToDo, None, None, None, "nothing known")
        }
        (Seen::NoNews | Seen::Gone, Seen::Now(ev)) => match ev.interview_id() {
            Some(iid) => Decision::nothing(
                Case::OrphanEvent,
                Some(iid.to_string()),
                Some(ev.id.clone()),
                None,
                "managed event whose interview HITO-Link has not shown; left alone",
            ),
            None => match booking_of(ev, policy) {
                Some(booking) => book(ev, booking),
                None => Decision::nothing(
                    Case::Unmanaged,
                    None,
                    Some(ev.id.clone()),
                    None,
                    "not managed; never touched",
                ),
            },
        },
        (Seen::Now(iv), Seen::NoNews | Seen::Gone) => create_event(iv, policy),
        (Seen::Now(iv), Seen::Now(ev)) => adopt(iv, ev, policy),
    }
}

/// `HL:<application_id>` in the title or description of an unmanaged,
/// live, timed event.
pub fn booking_of(ev: &CalendarEvent, policy: &Policy) -> Option<Booking> {
    if ev.status == EventStatus::Cancelled || ev.interview_id().is_some() {
        return None;
    }
    let slot = ev.slot?;
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
    let application_id = ev
        .summary
        .as_deref()
        .and_then(find)
        .or_else(|| ev.description.as_deref().and_then(find))?;
    Some(Booking {
        application_id,
        slot,
        time_zone: ev.time_zone.clone().unwrap_or_else(|| "Asia/Tokyo".into()),
        guests: ev
            .attendees
            .iter()
            .filter(|a| !a.organizer && a.email != policy.organizer)
            .map(|a| a.email.clone())
            .collect(),
        location: ev.location.clone(),
        link: ev.description.as_deref().and_then(parse_link),
    })
}

fn book(ev: &CalendarEvent, booking: Booking) -> Decision {
    Decision {
        case: Case::Booking,
        interview_id: None,
        event_id: Some(ev.id.clone()),
        calendar: None,
        hitolink: vec![HitolinkWrite::Book(booking.clone())],
        conflicts: vec![],
        // The engine builds the snapshot from the created interview.
        snapshot: None,
        summary: format!(
            "booking {} in the calendar: create the interview for application {}, then stamp the event",
            ev.id, booking.application_id
        ),
    }
}

fn attendees_for(
    iv: &Interview,
    pres: &Presentation,
    base: &[Attendee],
    fields: &Fields,
) -> Vec<Attendee> {
    // Keep guests the organizer added; hitosync owns only its invitees.
    let mut out: Vec<Attendee> = base
        .iter()
        .filter(|a| !pres.invitees.contains(&a.email))
        .cloned()
        .collect();
    for i in &iv.interviewers {
        let email = i.email.to_ascii_lowercase();
        out.push(Attendee {
            email: email.clone(),
            display_name: Some(i.name.clone()),
            response: fields.responses.get(&email).copied().unwrap_or(i.response),
            organizer: false,
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
            });
        }
    }
    out
}

fn full_body(
    iv: &Interview,
    pres: &Presentation,
    fields: &Fields,
    base_attendees: &[Attendee],
) -> EventBody {
    EventBody {
        summary: Some(pres.title.clone()),
        description: Some(pres.description.clone()),
        location: Some(fields.location.clone()),
        slot: fields.slot,
        time_zone: Some(pres.time_zone.clone()),
        attendees: Some(attendees_for(iv, pres, base_attendees, fields)),
        private: stamp(&iv.id, fields),
    }
}

fn stamp(interview_id: &str, fields: &Fields) -> BTreeMap<String, String> {
    [
        (INTERVIEW_ID_PROPERTY.to_string(), interview_id.to_string()),
        (AGREED_DIGEST_PROPERTY.to_string(), fields.digest()),
    ]
    .into()
}

fn snapshot_of(
    iv: &Interview,
    event_id: &str,
    fields: Fields,
    pres: Presentation,
    event: Option<&CalendarEvent>,
    attendees: Vec<Attendee>,
) -> Snapshot {
    Snapshot {
        interview_id: iv.id.clone(),
        event_id: event_id.to_string(),
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
    }
}

fn create_event(iv: &Interview, policy: &Policy) -> Decision {
    let fields = hitolink_view(iv, policy);
    let event_id = iv
        .external_event_id
        .clone()
        .unwrap_or_else(|| derived_event_id(&iv.id));
    if fields.cancelled {
        return Decision::nothing(
            Case::WaitingForTime,
            Some(iv.id.clone()),
            None,
            None,
            &format!("{} in HITO-Link: no event until it is scheduled", iv.status),
        );
    }
    let pres = presentation(iv, policy);
    let body = full_body(iv, &pres, &fields, &[]);
    let attendees = body.attendees.clone().unwrap_or_default();
    let mut hitolink = vec![];
    if iv.external_event_id.as_deref() != Some(event_id.as_str()) {
        hitolink.push(HitolinkWrite::Patch(InterviewPatch {
            external_event_id: Some(event_id.clone()),
            ..Default::default()
        }));
    }
    Decision {
        case: Case::CreateEvent,
        interview_id: Some(iv.id.clone()),
        event_id: Some(event_id.clone()),
        calendar: Some(CalendarWrite::Create(body)),
        hitolink,
        conflicts: vec![],
        snapshot: Some(snapshot_of(iv, &event_id, fields, pres, None, attendees)),
        summary: "new in HITO-Link: create the event and write its ID back".into(),
    }
}

/// Both sides hold the interview but the store does not (it was lost, or a
/// crash fell between the two writes): rebuild the agreement from the
/// digest stamped on the event, then merge as usual.
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
    let snap = Snapshot {
        event_etag: ev.etag.clone(),
        event_attendees: ev.attendees.clone(),
        ..snapshot_of(
            iv,
            &ev.id,
            base,
            presentation(iv, policy),
            Some(ev),
            ev.attendees.clone(),
        )
    };
    let mut d = merge(
        &snap,
        Some(iv),
        Some(ev),
        GState::Changed,
        unknown_base,
        policy,
    );
    d.case = Case::Adopt;
    d.summary = format!(
        "rebuilt the mapping from the event's properties; {}",
        d.summary
    );
    if d.calendar.is_none() && ev.private_properties.get(INTERVIEW_ID_PROPERTY) != Some(&iv.id) {
        d.calendar = Some(CalendarWrite::Stamp {
            body: EventBody {
                private: stamp(
                    &iv.id,
                    &d.snapshot
                        .as_ref()
                        .map(|s| s.fields.clone())
                        .unwrap_or(h_view),
                ),
                ..Default::default()
            },
        });
    }
    d
}

fn interview_vanished(snap: &Snapshot, ev: Option<&CalendarEvent>) -> Decision {
    let already = ev.is_none_or(|e| e.status == EventStatus::Cancelled);
    let mut s = snap.clone();
    s.retired = true;
    s.fields.cancelled = true;
    if let Some(e) = ev {
        s.event_etag = e.etag.clone();
    }
    Decision {
        case: Case::InterviewVanished,
        interview_id: Some(snap.interview_id.clone()),
        event_id: Some(snap.event_id.clone()),
        calendar: (!already).then(|| CalendarWrite::Cancel {
            body: EventBody {
                private: stamp(&snap.interview_id, &s.fields),
                ..Default::default()
            },
        }),
        hitolink: vec![],
        conflicts: vec![],
        snapshot: Some(s),
        summary: if already {
            "interview gone from HITO-Link; event already cancelled".into()
        } else {
            "interview gone from HITO-Link: cancel the event".into()
        },
    }
}

/// The interview was deleted in HITO-Link: the event stays cancelled, even
/// if someone brings it back in the calendar (no resurrection).
fn retired(snap: &Snapshot, ev: Option<&CalendarEvent>) -> Decision {
    match ev {
        Some(e) if e.status != EventStatus::Cancelled => {
            let mut s = snap.clone();
            s.event_etag = e.etag.clone();
            Decision {
                case: Case::Retired,
                interview_id: Some(snap.interview_id.clone()),
                event_id: Some(snap.event_id.clone()),
                calendar: Some(CalendarWrite::Cancel {
                    body: EventBody {
                        private: stamp(&snap.interview_id, &snap.fields),
                        ..Default::default()
                    },
                }),
                hitolink: vec![],
                conflicts: vec![],
                snapshot: Some(s),
                summary:
                    "interview was deleted in HITO-Link; the event came back and is cancelled again"
                        .into(),
            }
        }
        _ => {
            let mut s = snap.clone();
            if let Some(e) = ev {
                s.event_etag = e.etag.clone();
            }
            Decision::nothing(
                Case::Retired,
                Some(snap.interview_id.clone()),
                Some(snap.event_id.clone()),
                Some(s),
                "interview was deleted in HITO-Link; nothing more to do",
            )
        }
    }
}

fn refresh_observed(s: &mut Snapshot, iv: Option<&Interview>, ev: Option<&CalendarEvent>) {
    if let Some(iv) = iv {
        s.hl_version = iv.version;
        s.retired |= iv.deleted;
    }
    if let Some(ev) = ev {
        s.event_etag = ev.etag.clone();
        s.event_attendees = ev.attendees.clone();
    }
}

/// Per-field three-way merge. `h`/`g` are the views, `base` the agreement.
struct Merger<'a> {
    policy: &'a Policy,
    /// No agreed state is known: every difference is a conflict.
    no_base: bool,
    h_time: Option<DateTime<Utc>>,
    g_time: Option<DateTime<Utc>>,
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
                let google_wins = match self.policy.conflict {
                    ConflictPolicy::HitolinkWins => false,
                    ConflictPolicy::GoogleWins => true,
                    ConflictPolicy::LatestWins => match (self.h_time, self.g_time) {
                        (Some(h), Some(g)) => g > h,
                        _ => false,
                    },
                };
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

fn merge(
    snap: &Snapshot,
    iv: Option<&Interview>,
    ev: Option<&CalendarEvent>,
    g_state: GState,
    no_base: bool,
    policy: &Policy,
) -> Decision {
    let base = &snap.fields;
    // Without news from HITO-Link its view is the agreement itself.
    let h_view = iv
        .map(|iv| hitolink_view(iv, policy))
        .unwrap_or_else(|| base.clone());
    let h_deleted = iv.is_some_and(|i| i.deleted);
    let g_view = match (ev, g_state) {
        (Some(ev), _) => calendar_view(ev, base, snap.candidate_email.as_deref()),
        (None, GState::Vanished) => Fields {
            cancelled: true,
            ..base.clone()
        },
        (None, _) => base.clone(),
    };
    let mut m = Merger {
        policy,
        no_base,
        h_time: iv.map(|i| i.updated_at),
        g_time: ev.and_then(|e| e.updated),
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
        slot: m.field("time", &base.slot, &h_view.slot, &g_view.slot),
        location: m.field(
            "location",
            &base.location,
            &h_view.location,
            &g_view.location,
        ),
        link: m.field("link", &base.link, &h_view.link, &g_view.link),
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

    let Some(iv) = iv else {
        // No HITO-Link record at hand: only the calendar side changed, and
        // its change goes to HITO-Link from the agreement's knowledge.
        return merge_without_record(snap, g_view, ev, target, m.conflicts, policy);
    };
    plan_writes(
        snap,
        iv,
        h_view,
        g_view,
        ev,
        g_state,
        target,
        m.conflicts,
        policy,
    )
}

/// The calendar changed and HITO-Link did not (so no record was fetched):
/// the writes to HITO-Link are planned from the snapshot, and the engine
/// fetches the record before applying them.
fn merge_without_record(
    snap: &Snapshot,
    g_view: Fields,
    ev: Option<&CalendarEvent>,
    target: Fields,
    conflicts: Vec<Conflict>,
    policy: &Policy,
) -> Decision {
    let h_view = snap.fields.clone();
    let hitolink = hitolink_writes(snap, &h_view, &target, policy);
    let mut s = snap.clone();
    s.fields = target.clone();
    if let Some(e) = ev {
        s.event_etag = e.etag.clone();
        s.event_attendees = e.attendees.clone();
    }
    // The event must carry the new agreement (its digest), and be put back
    // in line where the policy overrode what the calendar did.
    let calendar = calendar_writes_for_known(snap, &g_view, &target, ev);
    let summary = describe(&h_view, &g_view, &target, calendar.as_ref(), &hitolink);
    Decision {
        case: if ev.is_none() {
            Case::EventVanished
        } else {
            Case::Merge
        },
        interview_id: Some(snap.interview_id.clone()),
        event_id: Some(snap.event_id.clone()),
        calendar,
        hitolink,
        conflicts,
        snapshot: Some(s),
        summary,
    }
}

fn calendar_writes_for_known(
    snap: &Snapshot,
    g_view: &Fields,
    target: &Fields,
    ev: Option<&CalendarEvent>,
) -> Option<CalendarWrite> {
    let private = stamp(&snap.interview_id, target);
    let stamped = ev.and_then(|e| e.private_properties.get(AGREED_DIGEST_PROPERTY));
    match (target.cancelled, g_view.cancelled) {
        (true, false) => Some(CalendarWrite::Cancel {
            body: EventBody {
                private,
                ..Default::default()
            },
        }),
        (false, true) => {
            // Restoring needs the whole event; without the record the
            // snapshot's presentation is what was last written.
            let body = EventBody {
                summary: Some(snap.presentation.title.clone()),
                description: Some(snap.presentation.description.clone()),
                location: Some(target.location.clone()),
                slot: target.slot,
                time_zone: Some(snap.presentation.time_zone.clone()),
                attendees: None,
                private,
            };
            Some(CalendarWrite::Restore { body })
        }
        _ if stamped != Some(&target.digest()) && ev.is_some() => Some(CalendarWrite::Stamp {
            body: EventBody {
                private,
                ..Default::default()
            },
        }),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn plan_writes(
    snap: &Snapshot,
    iv: &Interview,
    h_view: Fields,
    g_view: Fields,
    ev: Option<&CalendarEvent>,
    g_state: GState,
    target: Fields,
    conflicts: Vec<Conflict>,
    policy: &Policy,
) -> Decision {
    let pres = presentation(iv, policy);
    let base_attendees = ev
        .map(|e| e.attendees.clone())
        .unwrap_or_else(|| snap.event_attendees.clone());
    let private = stamp(&iv.id, &target);
    let stamped = ev
        .map(|e| e.private_properties.get(AGREED_DIGEST_PROPERTY).cloned())
        .unwrap_or_else(|| Some(snap.fields.digest()));
    let calendar = if g_state == GState::Vanished && !target.cancelled {
        // Gone without a trace (not even a tombstone): the derived ID may
        // still be taken, so the engine restores on 409.
        Some(CalendarWrite::Create(full_body(iv, &pres, &target, &[])))
    } else if g_state == GState::Vanished {
        None
    } else {
        match (target.cancelled, g_view.cancelled) {
            (true, false) => {
                let mut body = EventBody {
                    private,
                    ..Default::default()
                };
                if target.candidate_declined && !g_view.candidate_declined {
                    body.attendees = Some(attendees_for(iv, &pres, &base_attendees, &target));
                }
                Some(CalendarWrite::Cancel { body })
            }
            (false, true) => Some(CalendarWrite::Restore {
                body: full_body(iv, &pres, &target, &base_attendees),
            }),
            (true, true) => {
                (stamped.as_ref() != Some(&target.digest())).then(|| CalendarWrite::Stamp {
                    body: EventBody {
                        private,
                        ..Default::default()
                    },
                })
            }
            (false, false) => live_update(
                snap,
                iv,
                &pres,
                &g_view,
                &target,
                &base_attendees,
                stamped.as_deref(),
            ),
        }
    };
    let hitolink = if iv.deleted {
        vec![]
    } else {
        hitolink_writes(snap, &h_view, &target, policy)
    };
    let mut s = snapshot_of(iv, &snap.event_id, target.clone(), pres, ev, base_attendees);
    if ev.is_none() {
        s.event_etag = snap.event_etag.clone();
    }
    let summary = describe(&h_view, &g_view, &target, calendar.as_ref(), &hitolink);
    Decision {
        case: if g_state == GState::Vanished {
            Case::EventVanished
        } else {
            Case::Merge
        },
        interview_id: Some(iv.id.clone()),
        event_id: Some(snap.event_id.clone()),
        calendar,
        hitolink,
        conflicts,
        snapshot: Some(s),
        summary,
    }
}

fn live_update(
    snap: &Snapshot,
    iv: &Interview,
    pres: &Presentation,
    g_view: &Fields,
    target: &Fields,
    base_attendees: &[Attendee],
    stamped: Option<&str>,
) -> Option<CalendarWrite> {
    let mut body = EventBody::default();
    let mut notify = false;
    if target.slot != g_view.slot {
        body.slot = target.slot;
        body.time_zone = Some(pres.time_zone.clone());
        notify = true;
    }
    if target.location != g_view.location {
        body.location = Some(target.location.clone());
        notify = true;
    }
    let link_changed = target.link != g_view.link;
    if link_changed
        || without_link(&pres.description) != without_link(&snap.presentation.description)
    {
        body.description = Some(pres.description.clone());
        notify |= link_changed;
    }
    if pres.title != snap.presentation.title {
        body.summary = Some(pres.title.clone());
    }
    let wanted = attendees_for(iv, pres, base_attendees, target);
    let invitees_changed = pres.invitees != snap.presentation.invitees
        || !pres
            .invitees
            .iter()
            .all(|e| base_attendees.iter().any(|a| &a.email == e));
    let answers_changed = target.responses != g_view.responses
        || target.candidate_declined != g_view.candidate_declined;
    if invitees_changed || answers_changed {
        body.attendees = Some(wanted);
        notify |= invitees_changed;
    }
    let digest = target.digest();
    let changed = body != EventBody::default();
    if !changed && stamped == Some(digest.as_str()) {
        return None;
    }
    body.private = stamp(&iv.id, target);
    if changed {
        Some(CalendarWrite::Update { body, notify })
    } else {
        Some(CalendarWrite::Stamp { body })
    }
}

/// A description less its link line: what HITO-Link owns in it.
fn without_link(description: &str) -> String {
    description
        .lines()
        .filter(|l| !l.trim().starts_with(LINK_LABEL.trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn hitolink_writes(
    snap: &Snapshot,
    h_view: &Fields,
    target: &Fields,
    policy: &Policy,
) -> Vec<HitolinkWrite> {
    let mut writes = vec![];
    let mut cancelled_after = h_view.cancelled;
    if target.candidate_declined && !h_view.candidate_declined {
        writes.push(HitolinkWrite::DeclineCandidate);
        if policy.on_decline == OnDecline::CancelEvent {
            cancelled_after = true;
        }
    }
    let mut patch = InterviewPatch::default();
    for (email, want) in &target.responses {
        let have = h_view.responses.get(email);
        if have == Some(want) {
            continue;
        }
        let Some(id) = snap.interviewer_ids.get(email) else {
            continue;
        };
        if *want == Response::Declined {
            writes.push(HitolinkWrite::DeclineInterviewer {
                interviewer_id: id.clone(),
            });
        } else {
            patch.responses.push((id.clone(), *want));
        }
    }
    if target.slot != h_view.slot && target.slot.is_some() {
        patch.slot = target.slot;
    }
    if target.location != h_view.location {
        patch.location = Some(target.location.clone());
    }
    if target.link != h_view.link {
        patch.link = Some(target.link.clone());
    }
    if target.cancelled && !cancelled_after {
        patch.status = Some(InterviewStatus::Canceled);
    } else if !target.cancelled && cancelled_after && !target.candidate_declined {
        patch.status = Some(InterviewStatus::Scheduled);
    }
    if !patch.is_empty() {
        writes.push(HitolinkWrite::Patch(patch));
    }
    writes
}

fn describe(
    h: &Fields,
    g: &Fields,
    t: &Fields,
    cal: Option<&CalendarWrite>,
    hl: &[HitolinkWrite],
) -> String {
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
    if t.link != h.link || t.link != g.link {
        parts.push("link".into());
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
    let cal_word = match cal {
        None => "calendar: no write",
        Some(CalendarWrite::Create(_)) => "calendar: create",
        Some(CalendarWrite::Update { notify: true, .. }) => "calendar: update (attendees notified)",
        Some(CalendarWrite::Update { notify: false, .. }) => "calendar: update (nobody notified)",
        Some(CalendarWrite::Cancel { .. }) => "calendar: cancel",
        Some(CalendarWrite::Restore { .. }) => "calendar: restore",
        Some(CalendarWrite::Stamp { .. }) => "calendar: bookkeeping only",
    };
    let hl_words: Vec<&str> = hl
        .iter()
        .map(|w| match w {
            HitolinkWrite::Book(_) => "book",
            HitolinkWrite::DeclineCandidate => "decline by candidate",
            HitolinkWrite::DeclineInterviewer { .. } => "decline by interviewer",
            HitolinkWrite::Patch(_) => "patch",
        })
        .collect();
    format!(
        "{}; {}; HITO-Link: {}",
        if parts.is_empty() {
            "bookkeeping".to_string()
        } else {
            parts.join(", ")
        },
        cal_word,
        if hl_words.is_empty() {
            "no write".to_string()
        } else {
            hl_words.join(", ")
        }
    )
}

#[cfg(test)]
mod tests;
