//! Both halves of the link, through the real binary: whatever path an
//! interview takes to its event, it ends with `external_event_id` naming the
//! event and the event naming the interview; events that only look like an
//! interview's event are left alone and reported.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn an_admin_clearing_or_changing_the_link_sees_it_repaired() {
    let env = Env::start().await;
    let id = env.schedule("ap_1", 1, 10);
    env.sync().await;
    let ev = env.event_of(&id)["id"].clone();
    assert_eq!(env.interview(&id)["external_event_id"], ev);
    for to in [json!(null), json!("someotherevent0")] {
        env.hitolink
            .emu
            .admin_edit(&id, &json!({ "external_event_id": to }))
            .unwrap();
        // within two cycles
        env.sync().await;
        env.sync().await;
        assert_eq!(env.interview(&id)["external_event_id"], ev);
    }
    // and then it is quiet
    env.sync().await;
    env.reset_counters();
    env.sync().await;
    assert_eq!(env.writes(), 0);
}

#[tokio::test]
async fn a_copy_claiming_an_interview_is_left_alone_after_the_store_is_lost() {
    let env = Env::start().await;
    let id = env.schedule("ap_1", 1, 10);
    env.sync().await;
    let ev = env.event_of(&id);
    // someone copies the event, private properties and all
    env.google
        .emu
        .ui_create(
            ORGANIZER,
            json!({
                "id": "copi0fthemanaged",
                "summary": ev["summary"],
                "start": ev["start"],
                "end": ev["end"],
                "extendedProperties": ev["extendedProperties"],
            }),
        )
        .unwrap();
    std::fs::remove_dir_all(env.dir.path().join("state")).unwrap();
    env.reset_counters();
    env.sync().await;
    env.sync().await;
    // the derived-ID event is the interview's; the copy is never written
    assert_eq!(env.interview(&id)["external_event_id"], ev["id"]);
    for w in env.google.emu.writes() {
        assert_ne!(w.event_id, "copi0fthemanaged", "{w:?}");
    }
    let copies: Vec<_> = env
        .events()
        .into_iter()
        .filter(|e| e["extendedProperties"]["private"]["hitolinkInterviewId"] == id.as_str())
        .collect();
    assert_eq!(copies.len(), 2, "nothing was deleted or made");
    // and status says so, once
    let (code, out, _) = env.run(&["status"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("copi0fthemanaged"), "{out}");
}

use hitosync_emulator::faults::Phase;
use hitosync_emulator::google::Fault as GFault;
use hitosync_emulator::hitolink::Fault as HFault;

#[tokio::test]
async fn an_insert_applied_whose_answer_is_lost_is_adopted_and_linked() {
    let env = Env::start().await;
    let id = env.schedule("ap_1", 1, 10);
    // the insert is applied, then answered 500; the client's retry meets 409
    env.google
        .emu
        .inject_on("events.insert", Phase::After, GFault::ServerError, 1)
        .unwrap();
    env.sync().await;
    let ev = env.event_of(&id);
    assert_eq!(env.interview(&id)["external_event_id"], ev["id"]);
    let inserts = env
        .google
        .emu
        .writes()
        .iter()
        .filter(|w| w.method == "insert")
        .count();
    assert_eq!(inserts, 1, "one event, however many attempts");
    env.sync().await;
    env.reset_counters();
    env.sync().await;
    assert_eq!(env.writes(), 0);
}

#[tokio::test]
async fn a_kill_between_the_insert_and_the_write_back_is_repaired() {
    let env = Env::start().await;
    let id = env.schedule("ap_1", 1, 10);
    // the write-back hangs; the process is killed while it waits
    env.hitolink
        .emu
        .inject_on(
            "patch",
            Phase::Before,
            HFault::Latency { millis: 30_000 },
            1,
        )
        .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hitosync"))
        .args(["sync", "--config"])
        .arg(&env.config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while env
        .hitolink
        .emu
        .counters()
        .get("patch")
        .copied()
        .unwrap_or(0)
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the write-back never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().await.unwrap();
    assert!(env.interview(&id)["external_event_id"].is_null());
    env.hitolink.emu.clear_faults();
    env.sync().await;
    let ev = env.event_of(&id);
    assert_eq!(env.interview(&id)["external_event_id"], ev["id"]);
}

#[tokio::test]
async fn a_booking_marker_on_a_series_books_nothing_and_is_reported() {
    let env = Env::start().await;
    env.google
        .emu
        .ui_create(
            ORGANIZER,
            json!({
                "id": "series0000001",
                "summary": "面接 HL:ap_1",
                "start": {"dateTime": "2026-12-02T10:00:00+09:00", "timeZone": "Asia/Tokyo"},
                "end": {"dateTime": "2026-12-02T11:00:00+09:00", "timeZone": "Asia/Tokyo"},
                "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"],
            }),
        )
        .unwrap();
    env.sync().await;
    env.sync().await;
    assert!(env.hitolink.emu.interviews().is_empty());
    for w in env.google.emu.writes() {
        assert!(
            w.method == "ui_create" || w.event_id != "series0000001",
            "{w:?}"
        );
    }
    let (_, out, _) = env.run(&["status"]).await;
    assert!(out.contains("series0000001"), "{out}");
}

#[tokio::test]
async fn a_room_on_a_booking_is_never_an_interviewer() {
    let env = Env::start().await;
    env.google
        .emu
        .ui_create(
            ORGANIZER,
            json!({
                "summary": "一次面接 HL:ap_1",
                "start": {"dateTime": "2026-12-02T10:00:00+09:00", "timeZone": "Asia/Tokyo"},
                "end": {"dateTime": "2026-12-02T11:00:00+09:00", "timeZone": "Asia/Tokyo"},
                "attendees": [
                    {"email": "suzuki@example.co.jp"},
                    {"email": "room-5f@resource.calendar.google.com", "resource": true},
                ],
            }),
        )
        .unwrap();
    env.sync().await;
    let ivs = env.hitolink.emu.interviews();
    assert_eq!(ivs.len(), 1);
    let emails: Vec<_> = ivs[0]
        .interviewers
        .iter()
        .map(|i| i.email.clone())
        .collect();
    assert_eq!(emails, ["suzuki@example.co.jp"]);
    // and the room stays on the event
    env.sync().await;
    let ev = env.event_of(&ivs[0].id);
    assert!(
        ev["attendees"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["email"] == "room-5f@resource.calendar.google.com"),
        "{ev}"
    );
}
