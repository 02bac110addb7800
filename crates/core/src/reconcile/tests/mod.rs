//! One test per row of the SPEC's decision table and per policy value
//! (`rows`), the two halves of the link and look-alikes (`link`), and the
//! shapes real calendars hold (`shapes`).

use chrono::{DateTime, Utc};

use std::collections::BTreeSet;

use super::*;
use crate::ids::EventId;
use crate::model::{
    Attendee, CalendarEvent, EventStatus, INTERVIEW_ID_PROPERTY, Interview, InterviewStatus,
    Interviewer, Named, Organizer, Person, Response, Slot,
};
use crate::policy::{ConflictPolicy, OnDecline, OnEventDeleted};

mod link;
mod rows;
mod shapes;

const ORGANIZER: &str = "recruit@example.co.jp";

fn policy() -> Policy {
    Policy::new(ORGANIZER)
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn slot(h: u32) -> Slot {
    Slot {
        start: t(&format!("2026-12-01T{h:02}:00:00+09:00")),
        end: t(&format!("2026-12-01T{:02}:00:00+09:00", h + 1)),
    }
}

fn interview() -> Interview {
    Interview {
        id: "iv_000123".into(),
        version: 1,
        application_id: "ap_456".into(),
        candidate: Person {
            id: "cd_789".into(),
            display_name: "山田 太郎".into(),
            email: Some("taro@example.com".into()),
        },
        job: Named {
            id: "jb_12".into(),
            name: "カスタマーサクセス".into(),
        },
        selection_step: Some(Named {
            id: "st_2".into(),
            name: "一次面接".into(),
        }),
        status: InterviewStatus::Scheduled,
        slot: Some(slot(10)),
        time_zone: chrono_tz::Asia::Tokyo,
        format: crate::model::Format::Online,
        location: None,
        meeting_url: Some("https://meet.example/abc".into()),
        interviewers: vec![Interviewer {
            id: "us_2".into(),
            name: "鈴木 一郎".into(),
            email: "suzuki@example.co.jp".into(),
            response: Response::NeedsAction,
        }],
        candidate_response: Response::NeedsAction,
        decline: None,
        external_event_id: None,
        updated_at: t("2026-11-20T09:00:00+09:00"),
        deleted: false,
    }
}

/// The event as Google would hold it after a draft was inserted.
fn event_from(id: &str, draft: &EventDraft, etag: &str) -> CalendarEvent {
    CalendarEvent {
        id: id.into(),
        etag: etag.into(),
        status: EventStatus::Confirmed,
        summary: Some(draft.summary.clone()),
        description: Some(draft.description.clone()),
        location: draft.location.clone(),
        slot: Some(draft.slot),
        time_zone: Some(draft.time_zone.clone()),
        attendees: draft.attendees.clone(),
        private_properties: draft.private.clone(),
        updated: Some(t("2026-11-20T10:00:00+09:00")),
        organizer: Some(Organizer {
            email: Some(ORGANIZER.into()),
            is_self: true,
        }),
        ..Default::default()
    }
}

/// A mapped, agreed pair: the snapshot, the interview and the event.
fn agreed(p: &Policy) -> (Snapshot, Interview, CalendarEvent) {
    let mut iv = interview();
    let d = decide(None, Seen::Now(&iv), Seen::NoNews, p);
    let Some(CalendarOp::Insert { event_id, draft }) = d.calendar_op() else {
        panic!("{d:?}")
    };
    let ev = event_from(event_id, draft, "\"e1\"");
    iv.external_event_id = Some(ev.id.clone());
    iv.version = 2;
    let mut snap = d.snapshot().unwrap().clone();
    // The write-back of the event's ID was made: the interview names it.
    snap.event_ref = EventRef::Written;
    snap.event_etag = ev.etag.clone();
    snap.hl_version = 2;
    (snap, iv, ev)
}

fn patch_of(d: &Decision) -> &InterviewChange {
    d.hitolink_ops()
        .find_map(|w| {
            if let HitolinkOp::Patch { change, .. } = w {
                Some(change)
            } else {
                None
            }
        })
        .unwrap_or_else(|| panic!("no patch in {d:?}"))
}

/// The HITO-Link writes of the plan (the link's write-back is queued, not
/// one of them).
fn hl(d: &Decision) -> Vec<&HitolinkOp> {
    d.hitolink_ops().collect()
}

fn declines(d: &Decision) -> Vec<Decliner> {
    d.hitolink_ops()
        .filter_map(|o| {
            if let HitolinkOp::Decline { by, .. } = o {
                Some(by.clone())
            } else {
                None
            }
        })
        .collect()
}

fn change_of(d: &Decision) -> (&EventChange, Option<Notify>) {
    match d.calendar_op() {
        Some(CalendarOp::Patch { change, notify, .. }) => (change, Some(*notify)),
        Some(CalendarOp::Cancel { change, .. } | CalendarOp::Restore { change, .. }) => {
            (change, None)
        }
        other => panic!("no change in {other:?} of {d:?}"),
    }
}

fn attendee(email: &str, r: Response) -> Attendee {
    Attendee {
        email: email.into(),
        display_name: None,
        response: r,
        organizer: false,
        resource: false,
        is_self: false,
    }
}

/// Google's rule for client-chosen event IDs (Events: insert, `id`):
/// base32hex characters, lowercase, 5 to 1024 of them.
fn valid_event_id(id: &str) -> bool {
    (5..=1024).contains(&id.len()) && id.bytes().all(|b| matches!(b, b'a'..=b'v' | b'0'..=b'9'))
}

/// An event made in the web UI with the booking marker: the organizer is
/// listed among its attendees, as Google does for UI-made events.
fn booking_event() -> CalendarEvent {
    CalendarEvent {
        id: "ui00000001abc".into(),
        etag: "\"1\"".into(),
        summary: Some("一次面接 HL:ap_456".into()),
        location: Some("本社".into()),
        slot: Some(slot(14)),
        time_zone: Some("Asia/Tokyo".into()),
        attendees: vec![
            Attendee {
                organizer: true,
                is_self: true,
                ..attendee(ORGANIZER, Response::Accepted)
            },
            attendee("suzuki@example.co.jp", Response::NeedsAction),
            Attendee {
                resource: true,
                ..attendee("room-5f@resource.calendar.google.com", Response::Accepted)
            },
        ],
        organizer: Some(Organizer {
            email: Some(ORGANIZER.into()),
            is_self: true,
        }),
        ..Default::default()
    }
}
