//! The shapes real calendars hold, through the real binary against the
//! Calendar emulator: colleagues' invitations, series, all-day drags, the
//! web editor's HTML, answers Google resets, the invitation limit, events
//! moved away, and pages shorter than asked for.

use crate::common::*;
use hitosync_emulator::google::{InvitationLimit, Switches};
use serde_json::json;

fn writes_to(env: &Env, id: &str) -> usize {
    env.google
        .emu
        .writes()
        .iter()
        .filter(|w| w.event_id == id && !w.method.starts_with("ui") && w.method != "guest_reply")
        .count()
}

#[tokio::test]
async fn a_colleagues_invitation_is_never_written_nor_booked() {
    let env = Env::start().await;
    let id = env.schedule("ap_1", 1, 10);
    env.sync().await;
    // an invitation carrying the interview's ID, and one with a marker
    for (eid, extra) in [
        (
            "invite0000001",
            json!({"extendedProperties": {"private": {"hitolinkInterviewId": id}}}),
        ),
        ("invite0000002", json!({"summary": "面接 HL:ap_2"})),
    ] {
        let mut body = json!({
            "id": eid,
            "organizer": "colleague@example.co.jp",
            "summary": "打ち合わせ",
            "start": {"dateTime": "2026-12-03T15:00:00+09:00", "timeZone": "Asia/Tokyo"},
            "end": {"dateTime": "2026-12-03T16:00:00+09:00", "timeZone": "Asia/Tokyo"},
            "attendees": [{"email": ORGANIZER}],
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        env.google.emu.ui_invite(ORGANIZER, body).unwrap();
    }
    env.sync().await;
    env.sync().await;
    assert_eq!(writes_to(&env, "invite0000001"), 0);
    assert_eq!(writes_to(&env, "invite0000002"), 0);
    assert_eq!(env.hitolink.emu.interviews().len(), 1, "no booking");
    assert_eq!(
        env.interview(&id)["external_event_id"],
        env.event_of(&id)["id"]
    );
    let (_, out, _) = env.run(&["status"]).await;
    assert!(
        out.contains("invite0000001") && out.contains("invite0000002"),
        "{out}"
    );
}

#[tokio::test]
async fn a_managed_event_made_a_series_or_all_day_gets_its_time_back() {
    let env = Env::start().await;
    let id = env.schedule("ap_1", 1, 10);
    env.sync().await;
    let ev = env.event_of(&id)["id"].as_str().unwrap().to_string();
    env.google
        .emu
        .ui_edit(
            ORGANIZER,
            &ev,
            json!({"recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"],
                   "start": {"timeZone": "Asia/Tokyo"}, "end": {"timeZone": "Asia/Tokyo"}}),
        )
        .unwrap();
    env.sync().await;
    let e = env.event_of(&id);
    assert!(
        e["recurrence"].as_array().is_none_or(|r| r.is_empty()),
        "{e}"
    );
    env.google
        .emu
        .ui_edit(
            ORGANIZER,
            &ev,
            json!({"start": {"date": "2026-12-04", "dateTime": null},
                   "end": {"date": "2026-12-05", "dateTime": null}}),
        )
        .unwrap();
    env.sync().await;
    let e = env.event_of(&id);
    assert_eq!(e["start"]["dateTime"], "2026-12-01T01:00:00Z", "{e}");
    assert!(e["start"]["date"].is_null(), "{e}");
    // HITO-Link kept its time all along
    assert_eq!(env.interview(&id)["start"], "2026-12-01T10:00:00+09:00");
    env.sync().await;
    env.reset_counters();
    env.sync().await;
    assert_eq!(env.writes(), 0);
}

#[tokio::test]
async fn google_wins_parks_a_time_hitolink_cannot_hold() {
    let env = Env::start_with("[sync]\nconflict = \"google-wins\"\n").await;
    let id = env.schedule("ap_1", 1, 10);
    env.sync().await;
    let ev = env.event_of(&id)["id"].as_str().unwrap().to_string();
    env.google
        .emu
        .ui_edit(
            ORGANIZER,
            &ev,
            json!({"start": {"date": "2026-12-04", "dateTime": null},
                   "end": {"date": "2026-12-05", "dateTime": null}}),
        )
        .unwrap();
    let before = writes_to(&env, &ev);
    let (code, out, _) = env.run(&["sync"]).await;
    assert_eq!(code, 1, "a parked record makes sync exit 1: {out}");
    let (_, status, _) = env.run(&["status"]).await;
    assert!(status.contains("all-day"), "{status}");
    assert_eq!(
        writes_to(&env, &ev),
        before,
        "the event is left as the organizer made it"
    );
}

#[tokio::test]
async fn a_round_trip_through_the_web_editor_is_not_a_change() {
    let env = Env::start().await;
    let id = env.schedule("ap_1", 1, 10);
    env.sync().await;
    env.sync().await;
    let ev = env.event_of(&id)["id"].as_str().unwrap().to_string();
    env.google.emu.web_editor_roundtrip(ORGANIZER, &ev).unwrap();
    let html = env.event_of(&id)["description"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(html.contains("<br>"), "{html}");
    env.reset_counters();
    env.sync().await;
    env.sync().await;
    assert_eq!(env.writes(), 0, "the HTML is the same description");
    assert_eq!(
        env.interview(&id)["video_conferencing_url"],
        "https://meet.example/abc"
    );
}

#[tokio::test]
async fn answers_google_resets_are_put_back_once_and_never_declined() {
    let env = Env::start().await;
    env.google
        .emu
        .set_switches(Switches {
            reset_answers_on_time_change: true,
            ..Default::default()
        })
        .unwrap();
    let id = env.schedule("ap_1", 1, 10);
    env.sync().await;
    let ev = env.event_of(&id)["id"].as_str().unwrap().to_string();
    env.google
        .emu
        .guest_reply(ORGANIZER, &ev, "suzuki@example.co.jp", "accepted")
        .unwrap();
    env.sync().await;
    assert_eq!(
        env.interview(&id)["interviewers"][0]["response_status"],
        "accepted"
    );
    // the recruiter moves it; Google resets the answers on the move
    env.hitolink
        .emu
        .admin_edit(
            &id,
            &json!({"start": "2026-12-01T15:00:00+09:00", "end": "2026-12-01T16:00:00+09:00"}),
        )
        .unwrap();
    for _ in 0..4 {
        env.sync().await;
    }
    assert_eq!(
        env.interview(&id)["interviewers"][0]["response_status"],
        "accepted",
        "a reset is not news"
    );
    env.reset_counters();
    env.sync().await;
    assert_eq!(env.writes(), 0, "no loop");
}

#[tokio::test]
async fn the_invitation_limit_holds_back_only_what_notifies() {
    let env = Env::start().await;
    env.google.emu.set_invitation_limit(Some(InvitationLimit {
        per_day: 2,
        window_secs: 86_400,
        internal_domains: ["example.co.jp".to_string()].into(),
    }));
    // each new interview invites an external candidate
    let ids: Vec<String> = (0..4).map(|i| env.schedule("ap_1", 1 + i, 10)).collect();
    let (code, _, _) = env.run(&["sync"]).await;
    assert_eq!(code, 1, "some records wait");
    let inserts = |env: &Env| {
        env.google
            .emu
            .counters()
            .get("events.insert")
            .copied()
            .unwrap_or(0)
    };
    let tried = inserts(&env);
    assert!(tried <= 3, "no tight loop: {tried} inserts");
    let (_, status, _) = env.run(&["status"]).await;
    assert!(status.contains("invitations: HELD until"), "{status}");
    let made: Vec<_> = ids
        .iter()
        .filter(|id| !env.interview(id)["external_event_id"].is_null())
        .collect();
    assert_eq!(made.len(), 2, "the first two were made and linked");
    // while held, what notifies nobody goes on: a recruiter's place edit
    // of a made interview is a visible write, but a link repair is not
    env.hitolink
        .emu
        .admin_edit(made[0], &json!({"external_event_id": null}))
        .unwrap();
    env.run(&["sync"]).await;
    assert!(!env.interview(made[0])["external_event_id"].is_null());
    assert_eq!(inserts(&env), tried, "no insert was tried while held");
}

#[tokio::test]
async fn an_event_moved_to_another_calendar_counts_as_deleted() {
    let env = Env::start().await;
    env.google.emu.add_calendar(
        "other@example.co.jp",
        "別カレンダー",
        &[ORGANIZER.to_string()],
    );
    let id = env.schedule("ap_1", 1, 10);
    env.sync().await;
    let ev = env.event_of(&id)["id"].as_str().unwrap().to_string();
    env.google
        .emu
        .ui_move(ORGANIZER, &ev, "other@example.co.jp")
        .unwrap();
    env.sync().await;
    assert_eq!(env.interview(&id)["status"], "canceled");
}

#[tokio::test]
async fn short_and_empty_pages_lose_nothing() {
    let env = Env::start().await;
    env.google
        .emu
        .set_switches(Switches {
            page_sizes: Some(vec![0, 1, 2]),
            ..Default::default()
        })
        .unwrap();
    let ids: Vec<String> = (0..5).map(|i| env.schedule("ap_1", 1 + i, 10)).collect();
    env.sync().await;
    // the calendar is now read back through short and empty pages
    std::fs::remove_dir_all(env.dir.path().join("state")).unwrap();
    env.sync().await;
    env.sync().await;
    for id in &ids {
        assert_eq!(
            env.interview(id)["external_event_id"],
            env.event_of(id)["id"]
        );
    }
    env.reset_counters();
    env.sync().await;
    assert_eq!(env.writes(), 0);
}
