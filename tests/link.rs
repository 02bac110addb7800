//! Both halves of the link, through the real binary: whatever path an
//! interview takes to its event, it ends with `external_event_id` naming the
//! event and the event naming the interview; events that only look like an
//! interview's event are left alone and reported.

mod common;

use common::*;
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
