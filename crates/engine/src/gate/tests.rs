//! The gate's rules, one by one, on decisions the core really makes.

use hitosync_core::model::{Interview, InterviewStatus};
use hitosync_core::reconcile::{
    Book, CalendarOp, Case, Decision, Mapping, Op, Plan, Policy, Quiet, Refusal, Seen, decide,
};

use super::*;

const ORGANIZER: &str = "recruit@example.co.jp";

fn interview() -> Interview {
    Interview::from_json(&serde_json::json!({
        "id": "iv_1", "version": 1, "application_id": "ap_1",
        "candidate": {"id": "cd_1", "display_name": "山田 太郎", "email": "taro@example.com"},
        "job": {"id": "jb_1", "name": "営業"},
        "selection_step": {"id": "st_1", "name": "一次面接"},
        "status": "scheduled",
        "start": "2026-12-10T10:00:00+09:00", "end": "2026-12-10T11:00:00+09:00",
        "time_zone": "Asia/Tokyo", "format": "online", "location": null,
        "video_conferencing_url": null,
        "interviewers": [{"id": "us_1", "name": "鈴木", "email": "suzuki@example.co.jp",
                          "response_status": "needs_action"}],
        "candidate_response": "needs_action", "decline": null,
        "external_event_id": null,
        "created_at": "2026-11-01T10:00:00+09:00", "updated_at": "2026-11-01T10:00:00+09:00",
        "deleted_at": null
    }))
    .unwrap()
}

/// A new interview: insert its event (mails the attendees).
fn create() -> Decision {
    let d = decide(
        None,
        Seen::Now(&interview()),
        Seen::NoNews,
        &Policy::new(ORGANIZER),
    );
    assert!(matches!(d, Decision::Write(_)), "{d:?}");
    d
}

/// The mapped interview cancelled in HITO-Link: cancel its event.
fn cancel() -> Decision {
    let Decision::Write(plan) = create() else {
        unreachable!()
    };
    let mut iv = interview();
    iv.version = 2;
    iv.status = InterviewStatus::Canceled;
    iv.external_event_id = Some(plan.event_id.clone());
    let d = decide(
        Some(&plan.snapshot),
        Seen::Now(&iv),
        Seen::NoNews,
        &Policy::new(ORGANIZER),
    );
    assert!(d.is_destructive(), "{d:?}");
    d
}

/// Only the event's private properties: nobody sees it.
fn stamp() -> Decision {
    let Decision::Write(plan) = create() else {
        unreachable!()
    };
    let d = Decision::Write(Box::new(Plan {
        ops: vec![Op::Calendar(CalendarOp::Stamp {
            event_id: plan.event_id.clone(),
            if_match: None,
            private: Default::default(),
        })],
        ..*plan
    }));
    assert!(d.is_bookkeeping() && !d.notifies());
    d
}

fn at(pass: Pass, attempt: Attempt) -> Conditions {
    Conditions {
        pass,
        attempt,
        breaker: Breaker::Clear,
        invitations: Invitations::Open,
    }
}

fn first() -> Conditions {
    at(Pass::Visible, Attempt::First)
}

#[test]
fn refusals_and_quiet_decisions_are_what_they_are_in_every_pass() {
    let refused = Decision::Refused(Refusal {
        interview_id: None,
        event_id: "e1".into(),
        reason: "a series".into(),
    });
    let quiet = Decision::Quiet(Quiet {
        case: Case::NothingToDo,
        interview_id: None,
        event_id: None,
        mapping: Mapping::Untouched,
        summary: "nothing".into(),
    });
    for c in [
        first(),
        at(Pass::Rest, Attempt::First),
        at(Pass::Visible, Attempt::Again),
        Conditions {
            breaker: Breaker::Tripped,
            invitations: Invitations::Held,
            ..first()
        },
    ] {
        assert!(matches!(fate(&refused, c), Fate::Refused(_)));
        assert!(matches!(fate(&quiet, c), Fate::Quiet(_)));
    }
}

#[test]
fn a_booking_goes_at_once_whatever_holds() {
    let Decision::Write(plan) = create() else {
        unreachable!()
    };
    let booking = hitosync_core::reconcile::Booking {
        application_id: "ap_1".into(),
        slot: plan.snapshot.fields.slot.unwrap(),
        time_zone: "Asia/Tokyo".into(),
        guests: vec![],
        location: None,
        meeting_url: None,
    };
    let book = Decision::Book(Book {
        event_id: "e1".into(),
        booking,
    });
    let c = Conditions {
        breaker: Breaker::Tripped,
        invitations: Invitations::Held,
        ..first()
    };
    assert!(matches!(
        fate(&book, c),
        Fate::Apply {
            work: Work::Book(_),
            probe: false
        }
    ));
}

#[test]
fn the_breaker_decides_cancellations_only() {
    let cancel = cancel();
    let create = create();
    for (breaker, want) in [
        (Breaker::Clear, "apply"),
        (Breaker::Unsure, "later"),
        (Breaker::Tripped, "held"),
    ] {
        let c = Conditions { breaker, ..first() };
        let got = match fate(&cancel, c) {
            Fate::Apply { .. } => "apply",
            Fate::Later => "later",
            Fate::Held => "held",
            other @ (Fate::Refused(_) | Fate::Quiet(_) | Fate::WaitForInvitations) => {
                panic!("{other:?}")
            }
        };
        assert_eq!(got, want, "{breaker:?}");
        assert!(
            matches!(fate(&create, c), Fate::Apply { .. }),
            "an insert is never the breaker's"
        );
    }
}

#[test]
fn a_held_breaker_wins_over_the_invitation_limit() {
    let c = Conditions {
        breaker: Breaker::Tripped,
        invitations: Invitations::Held,
        ..first()
    };
    assert_eq!(fate(&cancel(), c), Fate::Held);
}

#[test]
fn notifying_writes_wait_for_the_invitation_limit_and_one_probes() {
    let held = Conditions {
        invitations: Invitations::Held,
        ..first()
    };
    assert_eq!(fate(&create(), held), Fate::WaitForInvitations);
    let probe = Conditions {
        invitations: Invitations::Probe,
        ..first()
    };
    assert!(matches!(
        fate(&create(), probe),
        Fate::Apply { probe: true, .. }
    ));
    // bookkeeping notifies nobody: the limit is not its business
    assert!(matches!(
        fate(
            &stamp(),
            Conditions {
                pass: Pass::Rest,
                ..held
            }
        ),
        Fate::Apply { probe: false, .. }
    ));
}

#[test]
fn bookkeeping_waits_for_the_rest_pass_unless_the_record_is_in_hand() {
    assert_eq!(fate(&stamp(), first()), Fate::Later);
    assert!(matches!(
        fate(&stamp(), at(Pass::Rest, Attempt::First)),
        Fate::Apply { .. }
    ));
    assert!(matches!(
        fate(&stamp(), at(Pass::Visible, Attempt::Again)),
        Fate::Apply { .. }
    ));
}
