//! Both halves of the link on every path, and events that only look like
//! an interview's event.

use super::*;

/// The interview's half of the link the decision leaves queued: the
/// event it names and the version it is written against.
fn write_back(d: &Decision) -> Option<(EventId, u64)> {
    d.snapshot()
        .and_then(Snapshot::event_ref_write)
        .map(|w| (w.event_id, w.if_match))
}

#[test]
fn adopting_after_a_lost_answer_writes_the_interviews_half() {
    // The insert was applied, its answer lost, the store never learned of
    // it: the interview still has no external_event_id.
    let p = policy();
    let (_snap, mut iv, ev) = agreed(&p);
    iv.external_event_id = None;
    let d = decide(None, Seen::Now(&iv), Seen::Now(&ev), &p);
    assert_eq!(d.case(), Case::Adopt);
    assert_eq!(write_back(&d), Some((ev.id.clone(), iv.version)), "{d:?}");
    assert!(d.calendar_op().is_none(), "the event is fine: {d:?}");
    // The agreement says the half is still to write: the write-back queue's.
    assert_eq!(d.snapshot().unwrap().event_ref, EventRef::Pending);
}

#[test]
fn an_admin_clearing_or_changing_the_link_sees_it_repaired() {
    let p = policy();
    for changed in [None, Some(EventId::new("somethingelse0"))] {
        let (snap, mut iv, ev) = agreed(&p);
        iv.external_event_id = changed;
        iv.version = 9;
        let d = decide(Some(&snap), Seen::Now(&iv), Seen::NoNews, &p);
        assert_eq!(write_back(&d), Some((ev.id.clone(), 9)), "{d:?}");
        assert!(d.calendar_op().is_none(), "{d:?}");
        assert!(!d.is_destructive());
        // and once written, its echo is quiet
        let s = d.snapshot().unwrap();
        iv.external_event_id = Some(ev.id.clone());
        iv.version = 10;
        let d = decide(Some(s), Seen::Now(&iv), Seen::NoNews, &p);
        assert!(d.is_quiet(), "{d:?}");
    }
}

#[test]
fn a_pending_half_is_written_even_when_hitolink_is_quiet() {
    let p = policy();
    let (mut snap, _iv, _ev) = agreed(&p);
    snap.event_ref = EventRef::Pending;
    let d = decide(Some(&snap), Seen::NoNews, Seen::NoNews, &p);
    assert_eq!(
        write_back(&d),
        Some((snap.event_id.clone(), snap.hl_version)),
        "{d:?}"
    );
    assert_eq!(d.snapshot().unwrap().event_ref, EventRef::Pending);
    // a store from before the link was remembered writes nothing until
    // the interview is seen
    snap.event_ref = EventRef::Unknown;
    assert!(decide(Some(&snap), Seen::NoNews, Seen::NoNews, &p).is_quiet());
}

#[test]
fn an_event_that_lost_its_half_is_stamped_without_notifying() {
    let p = policy();
    let (snap, _iv, mut ev) = agreed(&p);
    ev.private_properties.remove(INTERVIEW_ID_PROPERTY);
    ev.etag = "\"e7\"".into();
    let d = decide(Some(&snap), Seen::NoNews, Seen::Now(&ev), &p);
    let Some(CalendarOp::Stamp {
        private, if_match, ..
    }) = d.calendar_op()
    else {
        panic!("{d:?}")
    };
    assert_eq!(private[INTERVIEW_ID_PROPERTY], "iv_000123");
    assert_eq!(if_match.as_deref(), Some("\"e7\""));
    assert!(hl(&d).is_empty());
}

fn copy_of(ev: &CalendarEvent, id: &str) -> CalendarEvent {
    CalendarEvent {
        id: id.into(),
        etag: "\"c1\"".into(),
        ..ev.clone()
    }
}

#[test]
fn the_derived_event_wins_over_a_copy_whatever_the_order() {
    let p = policy();
    let (_snap, iv, ev) = agreed(&p);
    let copy = copy_of(&ev, "copyofthemanagedevent");
    let invitation = CalendarEvent {
        organizer: Some(Organizer {
            email: Some("colleague@example.co.jp".into()),
            is_self: false,
        }),
        ..copy_of(&ev, "invitationfromacolleague")
    };
    let orders = [
        vec![copy.clone(), ev.clone(), invitation.clone()],
        vec![invitation.clone(), copy.clone(), ev.clone()],
        vec![ev.clone(), invitation.clone(), copy.clone()],
    ];
    let mut seen = vec![];
    for claimants in orders {
        let d = decide_among(None, Seen::Now(&iv), Seen::NoNews, &claimants, &p);
        assert_eq!(d.decision.case(), Case::Adopt, "{d:?}");
        assert_eq!(
            d.decision.event_id().map(EventId::as_str),
            Some(ev.id.as_str())
        );
        assert!(d.decision.is_quiet(), "{d:?}");
        let mut looks: Vec<_> = d.lookalikes.iter().map(|l| l.event_id.clone()).collect();
        looks.sort();
        seen.push(looks);
    }
    assert_eq!(
        seen[0],
        ["copyofthemanagedevent", "invitationfromacolleague"]
    );
    assert!(seen.iter().all(|s| *s == seen[0]), "{seen:?}");
}

#[test]
fn a_look_alike_of_a_mapped_interview_is_reported_never_written() {
    let p = policy();
    let (snap, iv, ev) = agreed(&p);
    let mut copy = copy_of(&ev, "copyofthemanagedevent");
    copy.slot = Some(slot(18));
    copy.status = EventStatus::Cancelled;
    let d = decide_among(
        Some(&snap),
        Seen::Now(&iv),
        Seen::NoNews,
        std::slice::from_ref(&copy),
        &p,
    );
    assert!(d.decision.is_quiet(), "{d:?}");
    assert_eq!(d.lookalikes.len(), 1);
    assert_eq!(d.lookalikes[0].event_id, "copyofthemanagedevent");
}

#[test]
fn a_foreign_event_under_the_interviews_name_is_never_adopted() {
    let p = policy();
    let (_snap, iv, ev) = agreed(&p);
    let foreign = CalendarEvent {
        organizer: Some(Organizer {
            email: Some("colleague@example.co.jp".into()),
            is_self: false,
        }),
        ..ev.clone()
    };
    // even at the derived ID, an invitation is not hitosync's event
    let d = decide_among(
        None,
        Seen::Now(&iv),
        Seen::NoNews,
        std::slice::from_ref(&foreign),
        &p,
    );
    assert_eq!(d.decision.case(), Case::CreateEvent, "{d:?}");
    assert_eq!(d.lookalikes.len(), 1);
}

#[test]
fn a_booked_interview_is_adopted_by_the_event_it_names() {
    // After a lost store, a booking's event (not under a derived ID) is
    // found through the interview's external_event_id.
    let p = policy();
    let (_snap, mut iv, ev) = agreed(&p);
    let booked = copy_of(&ev, "ui00000001abc");
    iv.external_event_id = Some(booked.id.clone());
    let d = decide_among(
        None,
        Seen::Now(&iv),
        Seen::NoNews,
        std::slice::from_ref(&booked),
        &p,
    );
    assert_eq!(d.decision.case(), Case::Adopt, "{d:?}");
    assert_eq!(
        d.decision.event_id().map(EventId::as_str),
        Some("ui00000001abc")
    );
    // an event that claims another interview is never taken
    let mut other = booked.clone();
    other
        .private_properties
        .insert(INTERVIEW_ID_PROPERTY.into(), "iv_999".into());
    let d = decide_among(None, Seen::Now(&iv), Seen::NoNews, &[other], &p);
    assert_eq!(d.decision.case(), Case::CreateEvent, "{d:?}");
}

/// The digest and the stored snapshot are formats: a lost store is rebuilt
/// from digests written by older versions, and a store is read back after
/// an upgrade. A change to either must be deliberate (and migrated).
#[test]
fn the_digest_and_the_snapshot_format_are_pinned() {
    let fields = Fields {
        cancelled: false,
        slot: Some(slot(10)),
        location: Some("本社".into()),
        meeting_url: Some("https://meet.example/abc".into()),
        candidate_declined: false,
        responses: [("suzuki@example.co.jp".to_string(), Response::Accepted)].into(),
    };
    assert_eq!(fields.digest(), "3ad687ed71817bc6");
    let p = policy();
    let (snap, _iv, _ev) = agreed(&p);
    let json = serde_json::to_string(&snap).unwrap();
    assert_eq!(
        json,
        r#"{"interview_id":"iv_000123","event_id":"d5r5uc1g60oj4co","fields":{"cancelled":false,"slot":{"start":"2026-12-01T01:00:00Z","end":"2026-12-01T02:00:00Z"},"location":null,"link":"https://meet.example/abc","candidate_declined":false,"responses":{"suzuki@example.co.jp":"needs_action"}},"presentation":{"title":"【面接】山田 太郎様 一次面接","description":"HITO-Link 面接 iv_000123\n応募者: 山田 太郎\n求人: カスタマーサクセス\n選考ステップ: 一次面接\nWeb会議: https://meet.example/abc\n","invitees":["suzuki@example.co.jp","taro@example.com"],"time_zone":"Asia/Tokyo"},"candidate_email":"taro@example.com","interviewer_ids":{"suzuki@example.co.jp":"us_2"},"hl_version":2,"event_etag":"\"e1\"","event_attendees":[{"email":"suzuki@example.co.jp","display_name":"鈴木 一郎","response":"needs_action","organizer":false,"resource":false,"self":false},{"email":"taro@example.com","display_name":"山田 太郎","response":"needs_action","organizer":false,"resource":false,"self":false}],"retired":false,"link":"written"}"#
    );
    // a snapshot stored before the link was remembered reads as Unknown
    let old = json.replace(r#","link":"written""#, "");
    let back: Snapshot = serde_json::from_str(&old).unwrap();
    assert_eq!(back.event_ref, EventRef::Unknown);
}

#[test]
fn without_a_derived_or_named_event_the_first_made_claimant_is_taken() {
    // A booking whose interview an admin pointed elsewhere, then the store
    // was lost: the booking's event is the original, a later copy is not.
    let p = policy();
    let (_snap, mut iv, ev) = agreed(&p);
    iv.external_event_id = Some("someotherevent0".into());
    let original = CalendarEvent {
        created: Some(t("2026-11-01T09:00:00+09:00")),
        ..copy_of(&ev, "ui00000001abc")
    };
    let later = CalendarEvent {
        created: Some(t("2026-11-10T09:00:00+09:00")),
        ..copy_of(&ev, "c0pee0fthe0ne")
    };
    for claimants in [
        vec![original.clone(), later.clone()],
        vec![later.clone(), original.clone()],
    ] {
        let d = decide_among(None, Seen::Now(&iv), Seen::NoNews, &claimants, &p);
        assert_eq!(d.decision.case(), Case::Adopt, "{d:?}");
        assert_eq!(
            d.decision.event_id().map(EventId::as_str),
            Some("ui00000001abc")
        );
        assert_eq!(d.lookalikes.len(), 1);
        assert!(
            d.decision
                .snapshot()
                .and_then(Snapshot::event_ref_write)
                .is_some()
        );
    }
}
