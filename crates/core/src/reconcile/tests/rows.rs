//! One test per row of the SPEC's decision table and per policy value.

use super::*;

#[test]
fn row_new_scheduled_creates_the_event_and_writes_its_id_back() {
    let p = policy();
    let iv = interview();
    let d = decide(None, Seen::Now(&iv), Seen::NoNews, &p);
    assert_eq!(d.case(), Case::CreateEvent);
    let Some(CalendarOp::Insert { event_id, draft }) = d.calendar_op() else {
        panic!()
    };
    assert_eq!(draft.slot, slot(10));
    assert_eq!(draft.summary, "【面接】山田 太郎様 一次面接");
    assert!(
        draft
            .description
            .contains("Web会議: https://meet.example/abc")
    );
    let emails: Vec<_> = draft.attendees.iter().map(|a| a.email.as_str()).collect();
    assert_eq!(emails, ["suzuki@example.co.jp", "taro@example.com"]);
    assert_eq!(draft.private[INTERVIEW_ID_PROPERTY], "iv_000123");
    let id = derived_event_id("iv_000123");
    assert_eq!(event_id, &id);
    assert_eq!(d.event_id().map(EventId::as_str), Some(id.as_str()));
    // the insert is the plan; the write-back of its ID is queued after it
    assert_eq!(d.ops().len(), 1, "{d:?}");
    let queued = d.snapshot().and_then(Snapshot::event_ref_write).unwrap();
    assert_eq!(
        (queued.event_id.as_str(), queued.if_match),
        (id.as_str(), 1)
    );
    assert!(valid_event_id(&id));
}

#[test]
fn candidate_is_not_invited_when_configured_off() {
    let p = Policy {
        invite_candidate: false,
        ..policy()
    };
    let d = decide(None, Seen::Now(&interview()), Seen::NoNews, &p);
    let Some(CalendarOp::Insert { draft, .. }) = d.calendar_op() else {
        panic!()
    };
    assert_eq!(draft.attendees.len(), 1);
}

#[test]
fn row_new_needs_scheduling_waits() {
    let mut iv = interview();
    iv.status = InterviewStatus::NeedsScheduling;
    iv.slot = None;
    let d = decide(None, Seen::Now(&iv), Seen::NoNews, &policy());
    assert_eq!(d.case(), Case::WaitingForTime);
    assert!(d.is_quiet());
    assert!(d.snapshot().is_none());
}

#[test]
fn row_booking_marker_creates_the_interview() {
    let p = policy();
    let ev = booking_event();
    let d = decide(None, Seen::NoNews, Seen::Now(&ev), &p);
    assert_eq!(d.case(), Case::Booking);
    let Decision::Book(Book {
        booking: b,
        event_id,
    }) = &d
    else {
        panic!("{d:?}")
    };
    assert_eq!(event_id, &ev.id);
    assert_eq!(b.application_id, "ap_456");
    assert_eq!(b.guests, ["suzuki@example.co.jp"]);
    assert_eq!(b.slot, slot(14));
    // without the marker the event is never touched
    let plain = CalendarEvent {
        summary: Some("ランチ".into()),
        ..ev.clone()
    };
    let d = decide(None, Seen::NoNews, Seen::Now(&plain), &p);
    assert_eq!(d.case(), Case::Unmanaged);
    assert!(d.is_quiet());
    // another marker when configured
    let p2 = Policy {
        booking_marker: "面接予約#".into(),
        ..policy()
    };
    let marked = CalendarEvent {
        summary: Some("面接予約#ap_9".into()),
        ..ev
    };
    let d = decide(None, Seen::NoNews, Seen::Now(&marked), &p2);
    assert_eq!(d.case(), Case::Booking);
}

#[test]
fn row_time_changed_in_hitolink_moves_the_event() {
    let p = policy();
    let (snap, mut iv, ev) = agreed(&p);
    iv.slot = Some(slot(15));
    iv.version = 3;
    let d = decide(Some(&snap), Seen::Now(&iv), Seen::NoNews, &p);
    let (change, notify) = change_of(&d);
    assert_eq!(change.time.as_ref().map(|t| t.0), Some(slot(15)));
    assert_eq!(
        notify,
        Some(Notify::Attendees),
        "a move is seen by attendees"
    );
    assert!(change.attendees.is_none() && change.location.is_none());
    assert!(hl(&d).is_empty(), "{d:?}");
    assert_eq!(d.snapshot().unwrap().fields.slot, Some(slot(15)));
    let _ = ev;
}

#[test]
fn row_time_changed_in_calendar_reschedules_the_interview() {
    let p = policy();
    let (snap, _iv, mut ev) = agreed(&p);
    ev.slot = Some(slot(16));
    ev.etag = "\"e2\"".into();
    let d = decide(Some(&snap), Seen::NoNews, Seen::Now(&ev), &p);
    assert_eq!(patch_of(&d).slot, Some(slot(16)));
    // the event only gets the new agreement's digest, nobody notified
    assert!(
        matches!(d.calendar_op(), Some(CalendarOp::Stamp { .. })),
        "{d:?}"
    );
    assert_eq!(d.snapshot().unwrap().event_etag, "\"e2\"");
}

#[test]
fn different_fields_changed_on_each_side_are_both_kept() {
    let p = policy();
    let (snap, mut iv, mut ev) = agreed(&p);
    iv.slot = Some(slot(15));
    ev.location = Some("会議室B".into());
    let d = decide(Some(&snap), Seen::Now(&iv), Seen::Now(&ev), &p);
    assert!(d.conflicts().is_empty());
    let (change, _) = change_of(&d);
    assert_eq!(change.time.as_ref().map(|t| t.0), Some(slot(15)));
    assert!(
        change.location.is_none(),
        "the calendar's place is kept as it is"
    );
    let patch = patch_of(&d);
    assert_eq!(patch.location, Some(Some("会議室B".into())));
    assert!(patch.slot.is_none());
    let f = &d.snapshot().unwrap().fields;
    assert_eq!(
        (f.slot, f.location.as_deref()),
        (Some(slot(15)), Some("会議室B"))
    );
}

fn conflicting(p: &Policy) -> Decision {
    let (snap, mut iv, mut ev) = agreed(p);
    iv.slot = Some(slot(15));
    iv.updated_at = t("2026-11-21T09:00:00+09:00");
    ev.slot = Some(slot(17));
    ev.updated = Some(t("2026-11-21T10:00:00+09:00"));
    decide(Some(&snap), Seen::Now(&iv), Seen::Now(&ev), p)
}

#[test]
fn row_conflict_hitolink_wins_by_default() {
    let d = conflicting(&policy());
    assert_eq!(d.conflicts().len(), 1);
    assert_eq!(d.conflicts()[0].winner, "hitolink");
    assert_eq!(d.conflicts()[0].field, "time");
    let (change, _) = change_of(&d);
    assert_eq!(change.time.as_ref().map(|t| t.0), Some(slot(15)));
}

#[test]
fn row_conflict_google_wins() {
    let p = Policy {
        conflict: ConflictPolicy::GoogleWins,
        ..policy()
    };
    let d = conflicting(&p);
    assert_eq!(d.conflicts()[0].winner, "google");
    assert_eq!(patch_of(&d).slot, Some(slot(17)));
}

#[test]
fn row_conflict_latest_wins() {
    let p = Policy {
        conflict: ConflictPolicy::LatestWins,
        ..policy()
    };
    let d = conflicting(&p);
    assert_eq!(
        d.conflicts()[0].winner,
        "google",
        "the calendar edit was later"
    );
    assert_eq!(patch_of(&d).slot, Some(slot(17)));
}

#[test]
fn row_candidate_declined_in_hitolink_cancels_the_event() {
    let p = policy();
    let (snap, mut iv, _ev) = agreed(&p);
    iv.status = InterviewStatus::CandidateDeclined;
    iv.candidate_response = Response::Declined;
    let d = decide(Some(&snap), Seen::Now(&iv), Seen::NoNews, &p);
    let Some(CalendarOp::Cancel { change, .. }) = d.calendar_op() else {
        panic!("{d:?}")
    };
    let cand = change
        .attendees
        .as_ref()
        .unwrap()
        .iter()
        .find(|a| a.email == "taro@example.com")
        .unwrap();
    assert_eq!(cand.response, Response::Declined);
    assert!(hl(&d).is_empty());
    assert!(d.is_destructive());
}

#[test]
fn row_candidate_declined_in_hitolink_only_marks_with_mark_declined() {
    let p = Policy {
        on_decline: OnDecline::MarkDeclined,
        ..policy()
    };
    let (snap, mut iv, _ev) = agreed(&p);
    iv.status = InterviewStatus::CandidateDeclined;
    let d = decide(Some(&snap), Seen::Now(&iv), Seen::NoNews, &p);
    let (change, notify) = change_of(&d);
    assert_eq!(notify, Some(Notify::Nobody));
    let cand = change
        .attendees
        .as_ref()
        .unwrap()
        .iter()
        .find(|a| a.email == "taro@example.com")
        .unwrap();
    assert_eq!(cand.response, Response::Declined);
}

fn reply(ev: &mut CalendarEvent, email: &str, r: Response) {
    ev.attendees
        .iter_mut()
        .find(|a| a.email == email)
        .unwrap()
        .response = r;
    ev.etag = "\"e2\"".into();
}

#[test]
fn row_candidate_declines_in_the_calendar() {
    let p = policy();
    let (snap, _iv, mut ev) = agreed(&p);
    reply(&mut ev, "taro@example.com", Response::Declined);
    let d = decide(Some(&snap), Seen::NoNews, Seen::Now(&ev), &p);
    assert_eq!(declines(&d), vec![Decliner::Candidate]);
    assert_eq!(hl(&d).len(), 1, "{d:?}");
    // with cancel-event, the declined interview takes the event off the calendar
    assert!(
        matches!(d.calendar_op(), Some(CalendarOp::Cancel { .. })),
        "{d:?}"
    );
    let p2 = Policy {
        on_decline: OnDecline::MarkDeclined,
        ..policy()
    };
    let (snap, _iv, mut ev) = agreed(&p2);
    reply(&mut ev, "taro@example.com", Response::Declined);
    let d = decide(Some(&snap), Seen::NoNews, Seen::Now(&ev), &p2);
    assert_eq!(declines(&d), vec![Decliner::Candidate]);
    assert!(
        matches!(d.calendar_op(), Some(CalendarOp::Stamp { .. })),
        "{d:?}"
    );
}

#[test]
fn row_interviewer_declines_in_the_calendar() {
    let p = policy();
    let (snap, _iv, mut ev) = agreed(&p);
    reply(&mut ev, "suzuki@example.co.jp", Response::Declined);
    let d = decide(Some(&snap), Seen::NoNews, Seen::Now(&ev), &p);
    assert_eq!(
        declines(&d),
        vec![Decliner::Interviewer {
            interviewer_id: "us_2".into()
        }]
    );
    assert!(!d.is_destructive());
    // an acceptance is a plain answer
    let (snap, _iv, mut ev) = agreed(&p);
    reply(&mut ev, "suzuki@example.co.jp", Response::Accepted);
    let d = decide(Some(&snap), Seen::NoNews, Seen::Now(&ev), &p);
    assert_eq!(
        patch_of(&d).responses,
        vec![("us_2".to_string(), Response::Accepted)]
    );
}

#[test]
fn row_canceled_or_deleted_in_hitolink_cancels_the_event() {
    let p = policy();
    for deleted in [false, true] {
        let (snap, mut iv, _ev) = agreed(&p);
        if deleted {
            iv.deleted = true;
        } else {
            iv.status = InterviewStatus::Canceled;
        }
        let d = decide(Some(&snap), Seen::Now(&iv), Seen::NoNews, &p);
        assert!(
            matches!(d.calendar_op(), Some(CalendarOp::Cancel { .. })),
            "{d:?}"
        );
        assert!(hl(&d).is_empty());
        assert_eq!(d.snapshot().unwrap().retired, deleted);
    }
}

#[test]
fn row_event_deleted_cancels_the_interview() {
    let p = policy();
    let (snap, _iv, mut ev) = agreed(&p);
    ev.status = EventStatus::Cancelled;
    let cancels = |d: &Decision| {
        d.hitolink_ops()
            .filter(|o| matches!(o, HitolinkOp::Cancel { .. }))
            .count()
    };
    let d = decide(Some(&snap), Seen::NoNews, Seen::Now(&ev), &p);
    assert_eq!(cancels(&d), 1, "{d:?}");
    assert!(d.is_destructive());
    // vanished without a tombstone counts the same
    let d = decide(Some(&snap), Seen::NoNews, Seen::Gone, &p);
    assert_eq!(cancels(&d), 1, "{d:?}");
}

#[test]
fn row_event_deleted_is_recreated_when_configured() {
    let p = Policy {
        on_event_deleted: OnEventDeleted::Recreate,
        ..policy()
    };
    let (snap, iv, mut ev) = agreed(&p);
    ev.status = EventStatus::Cancelled;
    let d = decide(Some(&snap), Seen::Now(&iv), Seen::Now(&ev), &p);
    assert!(
        matches!(d.calendar_op(), Some(CalendarOp::Restore { .. })),
        "{d:?}"
    );
    assert!(hl(&d).is_empty());
}

#[test]
fn row_both_reached_the_same_state_writes_nothing() {
    let p = policy();
    let (snap, mut iv, mut ev) = agreed(&p);
    iv.slot = Some(slot(15));
    iv.version = 5;
    ev.slot = Some(slot(15));
    ev.private_properties.insert(
        AGREED_DIGEST_PROPERTY.into(),
        Fields {
            slot: Some(slot(15)),
            ..snap.fields.clone()
        }
        .digest(),
    );
    ev.etag = "\"e9\"".into();
    let d = decide(Some(&snap), Seen::Now(&iv), Seen::Now(&ev), &p);
    assert!(d.is_quiet(), "{d:?}");
    let s = d.snapshot().unwrap();
    assert_eq!(
        (s.fields.slot, s.hl_version, s.event_etag.as_str()),
        (Some(slot(15)), 5, "\"e9\"")
    );
}

#[test]
fn echoes_of_our_own_writes_are_quiet() {
    let p = policy();
    let (snap, iv, ev) = agreed(&p);
    let d = decide(Some(&snap), Seen::Now(&iv), Seen::Now(&ev), &p);
    assert!(d.is_quiet(), "{d:?}");
    assert_eq!(d.case(), Case::NothingToDo);
}

#[test]
fn a_deleted_interview_never_brings_its_event_back() {
    let p = policy();
    let (snap, mut iv, mut ev) = agreed(&p);
    iv.deleted = true;
    let d = decide(Some(&snap), Seen::Now(&iv), Seen::NoNews, &p);
    let snap = d.snapshot().unwrap();
    assert!(snap.retired);
    // someone restores the event in the calendar: it is cancelled again
    ev.status = EventStatus::Confirmed;
    ev.etag = "\"e5\"".into();
    let d = decide(Some(snap), Seen::NoNews, Seen::Now(&ev), &p);
    assert_eq!(d.case(), Case::Retired);
    assert!(matches!(d.calendar_op(), Some(CalendarOp::Cancel { .. })));
    assert!(hl(&d).is_empty());
}

#[test]
fn rescheduling_a_canceled_interview_restores_its_event() {
    let p = policy();
    let (snap, mut iv, mut ev) = agreed(&p);
    iv.status = InterviewStatus::Canceled;
    let d = decide(Some(&snap), Seen::Now(&iv), Seen::NoNews, &p);
    let snap = d.snapshot().unwrap();
    ev.status = EventStatus::Cancelled;
    iv.status = InterviewStatus::Scheduled;
    iv.slot = Some(slot(13));
    let d = decide(Some(snap), Seen::Now(&iv), Seen::Now(&ev), &p);
    let Some(CalendarOp::Restore { change, .. }) = d.calendar_op() else {
        panic!("{d:?}")
    };
    assert_eq!(change.time.as_ref().map(|t| t.0), Some(slot(13)));
}

#[test]
fn lost_store_is_rebuilt_from_the_digest_without_losing_a_change() {
    let p = policy();
    let (_snap, iv, mut ev) = agreed(&p);
    // the calendar changed after the last agreement; the store is gone
    reply(&mut ev, "suzuki@example.co.jp", Response::Declined);
    let d = decide(None, Seen::Now(&iv), Seen::Now(&ev), &p);
    assert_eq!(d.case(), Case::Adopt);
    assert!(d.conflicts().is_empty(), "{:?}", d.conflicts());
    assert_eq!(
        declines(&d),
        vec![Decliner::Interviewer {
            interviewer_id: "us_2".into()
        }]
    );
    // nothing changed anywhere: adopting writes nothing
    let (_snap, iv, ev) = agreed(&p);
    let d = decide(None, Seen::Now(&iv), Seen::Now(&ev), &p);
    assert!(d.is_quiet(), "{d:?}");
}

#[test]
fn a_vanished_interview_takes_its_event_down() {
    let p = policy();
    let (snap, _iv, ev) = agreed(&p);
    let d = decide(Some(&snap), Seen::Gone, Seen::Now(&ev), &p);
    assert_eq!(d.case(), Case::InterviewVanished);
    assert!(matches!(d.calendar_op(), Some(CalendarOp::Cancel { .. })));
    let d = decide(Some(&snap), Seen::Gone, Seen::Gone, &p);
    assert_eq!(d.case(), Case::Forget);
    assert!(d.snapshot().is_none());
}

#[test]
fn guests_added_by_hand_are_kept() {
    let p = policy();
    let (snap, mut iv, mut ev) = agreed(&p);
    ev.attendees
        .push(attendee("observer@example.co.jp", Response::Accepted));
    let d = decide(Some(&snap), Seen::NoNews, Seen::Now(&ev), &p);
    let snap = d.snapshot().unwrap();
    iv.interviewers.push(Interviewer {
        id: "us_3".into(),
        name: "田中 三郎".into(),
        email: "tanaka@example.co.jp".into(),
        response: Response::NeedsAction,
    });
    let d = decide(Some(snap), Seen::Now(&iv), Seen::NoNews, &p);
    let (change, notify) = change_of(&d);
    assert_eq!(notify, Some(Notify::Attendees));
    let emails: BTreeSet<_> = change
        .attendees
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| a.email.as_str())
        .collect();
    assert!(emails.contains("observer@example.co.jp") && emails.contains("tanaka@example.co.jp"));
}

#[test]
fn derived_ids_are_valid_and_distinct() {
    let a = derived_event_id("iv_000123");
    let b = derived_event_id("iv_000124");
    assert_ne!(a, b);
    assert!(valid_event_id(&a));
    assert!(valid_event_id(&derived_event_id("a")));
}
