//! The shapes real calendars hold: all-day and recurring events, bookings
//! on events that cannot book, rooms and the organizer among attendees,
//! descriptions the web editor rewrote as HTML, and answers Google reset.

use super::*;

fn all_day(ev: &CalendarEvent) -> CalendarEvent {
    CalendarEvent {
        slot: None,
        all_day: true,
        etag: "\"e3\"".into(),
        updated: Some(t("2026-11-22T09:00:00+09:00")),
        ..ev.clone()
    }
}

#[test]
fn a_managed_event_dragged_to_all_day_gets_its_time_back() {
    let p = policy();
    let (snap, _iv, ev) = agreed(&p);
    let d = decide(Some(&snap), Seen::NoNews, Seen::Now(&all_day(&ev)), &p);
    let (change, notify) = change_of(&d);
    assert_eq!(
        change.time,
        Some((slot(10), "Asia/Tokyo".to_string())),
        "{d:?}"
    );
    assert_eq!(notify, Some(Notify::Attendees));
    assert!(hl(&d).is_empty(), "HITO-Link cannot hold an all-day time");
}

#[test]
fn a_managed_event_made_recurring_is_made_single_again() {
    let p = policy();
    let (snap, _iv, ev) = agreed(&p);
    let series = CalendarEvent {
        recurring: true,
        etag: "\"e3\"".into(),
        ..ev.clone()
    };
    let d = decide(Some(&snap), Seen::NoNews, Seen::Now(&series), &p);
    let (change, notify) = change_of(&d);
    assert!(change.single, "{d:?}");
    assert_eq!(notify, Some(Notify::Attendees));
}

#[test]
fn google_wins_refuses_a_time_hitolink_cannot_hold() {
    for conflict in [ConflictPolicy::GoogleWins, ConflictPolicy::LatestWins] {
        let p = Policy {
            conflict,
            ..policy()
        };
        let (snap, iv, ev) = agreed(&p);
        let d = decide(Some(&snap), Seen::Now(&iv), Seen::Now(&all_day(&ev)), &p);
        assert_eq!(d.case(), Case::Refused, "{conflict:?}: {d:?}");
        assert!(d.is_quiet());
        assert!(d.refusal().unwrap().contains("all-day"));
        // A refusal stores nothing: the agreement stands as it was.
        assert_eq!(d.snapshot(), None);
    }
}

#[test]
fn a_booking_marker_on_a_shape_that_cannot_book_is_refused() {
    let p = policy();
    let ev = booking_event();
    let shapes = [
        CalendarEvent {
            recurring: true,
            ..ev.clone()
        },
        CalendarEvent {
            recurring_event_id: Some("series1".into()),
            ..ev.clone()
        },
        CalendarEvent {
            all_day: true,
            slot: None,
            ..ev.clone()
        },
        CalendarEvent {
            organizer: Some(Organizer {
                email: Some("colleague@example.co.jp".into()),
                is_self: false,
            }),
            ..ev.clone()
        },
    ];
    for shaped in shapes {
        let d = decide(None, Seen::NoNews, Seen::Now(&shaped), &p);
        assert_eq!(d.case(), Case::Refused, "{d:?}");
        assert!(d.is_quiet());
        assert!(d.refusal().is_some());
    }
}

#[test]
fn rooms_and_the_organizer_are_never_interviewers() {
    let p = policy();
    let d = decide(None, Seen::NoNews, Seen::Now(&booking_event()), &p);
    let Decision::Book(Book { booking, .. }) = &d else {
        panic!("{d:?}")
    };
    assert_eq!(booking.guests, ["suzuki@example.co.jp"]);
}

#[test]
fn a_room_survives_hitosyncs_attendee_writes() {
    let p = policy();
    let (snap, mut iv, mut ev) = agreed(&p);
    ev.attendees.push(Attendee {
        resource: true,
        ..attendee("room-5f@resource.calendar.google.com", Response::Accepted)
    });
    let d = decide(Some(&snap), Seen::NoNews, Seen::Now(&ev), &p);
    assert!(
        !matches!(d.calendar_op(), Some(CalendarOp::Patch { .. })),
        "{d:?}"
    );
    let snap = d.snapshot().unwrap();
    iv.interviewers[0].email = "tanaka@example.co.jp".into();
    let d = decide(Some(snap), Seen::Now(&iv), Seen::NoNews, &p);
    let (change, _) = change_of(&d);
    let rooms: Vec<_> = change
        .attendees
        .as_ref()
        .unwrap()
        .iter()
        .filter(|a| a.resource)
        .collect();
    assert_eq!(rooms.len(), 1, "{d:?}");
}

/// What Google's web editor saves for a description a person edited: each
/// line ends in `<br>`, URLs become links.
fn as_web_editor_saves(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("https://") {
            Some(at) => {
                let url = &l[at..];
                format!("{}<a href=\"{url}\">{url}</a>", &l[..at])
            }
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

#[test]
fn a_link_reads_the_same_from_html() {
    let text = "HITO-Link 面接 iv_1\nWeb会議: https://meet.example/abc?x=1&y=2\n";
    let html = as_web_editor_saves(text).replace('&', "&amp;");
    assert_eq!(
        parse_meeting_url(&html).as_deref(),
        Some("https://meet.example/abc?x=1&y=2")
    );
    assert_eq!(parse_meeting_url(text), parse_meeting_url(&html));
    // plain text keeps its lines, and a stray '<' is not markup
    assert_eq!(
        parse_meeting_url("面接 <3\nWeb会議: https://m.example/q").as_deref(),
        Some("https://m.example/q")
    );
}

#[test]
fn a_round_trip_through_the_web_editor_is_not_a_change() {
    let p = policy();
    let (snap, iv, mut ev) = agreed(&p);
    ev.description = ev.description.as_deref().map(as_web_editor_saves);
    ev.etag = "\"e4\"".into();
    let d = decide(Some(&snap), Seen::Now(&iv), Seen::Now(&ev), &p);
    assert!(d.is_quiet(), "{d:?}");
}

#[test]
fn answers_google_reset_to_needs_action_are_not_news() {
    let p = policy();
    let (snap, mut iv, mut ev) = agreed(&p);
    // both answered; the agreement holds their answers
    iv.interviewers[0].response = Response::Accepted;
    let d = decide(Some(&snap), Seen::Now(&iv), Seen::NoNews, &p);
    let snap = d.snapshot().unwrap();
    // Google moved the event's answers back to needsAction (a time change)
    for a in &mut ev.attendees {
        a.response = Response::NeedsAction;
    }
    ev.private_properties = match d.ops().first() {
        Some(Op::Calendar(CalendarOp::Patch { change, .. })) => change.private.clone(),
        other => panic!("{other:?}"),
    };
    ev.etag = "\"e8\"".into();
    let d = decide(Some(snap), Seen::NoNews, Seen::Now(&ev), &p);
    assert!(hl(&d).is_empty(), "a reset is not a decline: {d:?}");
    assert!(
        d.calendar_op().is_none_or(|c| !c.notifies()),
        "and no loop of attendee writes: {d:?}"
    );
}

#[test]
fn a_moved_event_counts_as_deleted() {
    // Moved to another calendar, it shows in this one's incremental sync as
    // a cancelled event carrying only its id.
    let p = policy();
    let (snap, _iv, ev) = agreed(&p);
    let tombstone = CalendarEvent {
        id: ev.id.clone(),
        etag: "\"e9\"".into(),
        status: EventStatus::Cancelled,
        ..Default::default()
    };
    let d = decide(Some(&snap), Seen::NoNews, Seen::Now(&tombstone), &p);
    assert!(
        d.hitolink_ops()
            .any(|o| matches!(o, HitolinkOp::Cancel { .. })),
        "{d:?}"
    );
}
