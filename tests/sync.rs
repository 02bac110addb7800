//! `hitosync sync` (the real binary) against both emulators over loopback:
//! each row of the SPEC's decision table, 410 on each side, a wiped state
//! dir and a parked bad record.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn new_interview_becomes_an_event_and_a_quiet_cycle_writes_nothing() {
    let env = Env::start().await;
    let id = env.schedule("ap_1", 1, 10);
    let out = env.sync().await;
    assert!(out.contains("CreateEvent"), "{out}");
    let ev = env.event_of(&id);
    assert_eq!(ev["summary"], "【面接】山田 太郎様 一次面接");
    assert_eq!(ev["start"]["dateTime"], "2026-12-01T01:00:00Z");
    let emails: Vec<_> = ev["attendees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["email"].clone())
        .collect();
    assert_eq!(
        emails,
        [json!("suzuki@example.co.jp"), json!("taro@example.com")]
    );
    assert_eq!(env.interview(&id)["external_event_id"], ev["id"]);

    // the echo of our own writes, then nothing at all
    env.sync().await;
    env.reset_counters();
    env.sync().await;
    let g = env.google.emu.counters();
    let h = env.hitolink.emu.counters();
    assert_eq!(g.get("events.list"), Some(&1), "{g:?}");
    assert_eq!(h.get("changes"), Some(&1), "{h:?}");
    assert_eq!(env.writes(), 0, "a quiet cycle wrote: {g:?} {h:?}");
    assert_eq!(g.len(), 2, "only the token and the list: {g:?}");
}

#[tokio::test]
async fn needs_scheduling_waits_for_a_time() {
    let env = Env::start().await;
    let id = env
        .hitolink
        .emu
        .admin_create(&json!({"application_id": "ap_2"}))
        .unwrap()
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.sync().await;
    assert!(env.events().is_empty());
    env.hitolink
        .emu
        .admin_edit(
            &id,
            &json!({"start": "2026-12-02T14:00:00+09:00", "end": "2026-12-02T15:00:00+09:00"}),
        )
        .unwrap();
    env.sync().await;
    env.event_of(&id);
}

#[tokio::test]
async fn reschedules_travel_both_ways_and_notify_only_when_seen() {
    let env = Env::start().await;
    let id = env.schedule("ap_1", 1, 10);
    env.sync().await;
    // recruiter moves it
    env.hitolink
        .emu
        .admin_edit(
            &id,
            &json!({"start": "2026-12-01T15:00:00+09:00", "end": "2026-12-01T16:00:00+09:00"}),
        )
        .unwrap();
    env.sync().await;
    let ev = env.event_of(&id);
    assert_eq!(ev["start"]["dateTime"], "2026-12-01T06:00:00Z");
    let last = env
        .google
        .emu
        .writes()
        .into_iter()
        .rev()
        .find(|w| w.method == "patch")
        .unwrap();
    assert_eq!(last.send_updates, "all");
    // interviewer moves it in the calendar
    let ev_id = ev["id"].as_str().unwrap().to_string();
    env.google
        .emu
        .ui_edit(
            ORGANIZER,
            &ev_id,
            json!({"start": {"dateTime": "2026-12-03T11:00:00+09:00"}, "end": {"dateTime": "2026-12-03T12:00:00+09:00"}}),
        )
        .unwrap();
    env.sync().await;
    assert_eq!(env.interview(&id)["start"], "2026-12-03T11:00:00+09:00");
    // the write-back of the agreement to the event notified nobody
    let last = env
        .google
        .emu
        .writes()
        .into_iter()
        .rev()
        .find(|w| w.method == "patch")
        .unwrap();
    assert_eq!(last.send_updates, "none", "{last:?}");
    env.reset_counters();
    env.sync().await;
    assert_eq!(env.writes(), 0);
}

#[tokio::test]
async fn declines_in_the_calendar_reach_hitolink() {
    let env = Env::start().await;
    let a = env.schedule("ap_1", 1, 10);
    let b = env.schedule("ap_2", 1, 13);
    env.sync().await;
    let ev_a = env.event_of(&a)["id"].as_str().unwrap().to_string();
    let ev_b = env.event_of(&b)["id"].as_str().unwrap().to_string();
    env.google
        .emu
        .guest_reply(ORGANIZER, &ev_a, "taro@example.com", "declined")
        .unwrap();
    env.google
        .emu
        .guest_reply(ORGANIZER, &ev_b, "suzuki@example.co.jp", "declined")
        .unwrap();
    env.sync().await;
    let iv_a = env.interview(&a);
    assert_eq!(iv_a["status"], "candidate_declined");
    assert_eq!(iv_a["decline"]["by"], "candidate");
    assert_eq!(
        env.event_of(&a)["status"],
        "cancelled",
        "cancel-event is the default"
    );
    let iv_b = env.interview(&b);
    assert_eq!(iv_b["interviewers"][0]["response_status"], "declined");
    assert_eq!(iv_b["status"], "scheduled");
    assert_eq!(env.event_of(&b)["status"], "confirmed");
    env.reset_counters();
    env.sync().await;
    assert_eq!(env.writes(), 0);
}

#[tokio::test]
async fn candidate_declined_in_hitolink_cancels_the_event() {
    let env = Env::start().await;
    let id = env.schedule("ap_1", 1, 10);
    env.sync().await;
    env.hitolink
        .emu
        .admin_decline(&id, &json!({"by": "candidate", "reason": "他社に決定"}))
        .unwrap();
    env.sync().await;
    let ev = env.event_of(&id);
    assert_eq!(ev["status"], "cancelled");
    let cand = ev["attendees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == "taro@example.com")
        .unwrap();
    assert_eq!(cand["responseStatus"], "declined");
}

#[tokio::test]
async fn mark_declined_keeps_the_event() {
    let env = Env::start_with("[sync]\non_decline = \"mark-declined\"").await;
    let id = env.schedule("ap_1", 1, 10);
    env.sync().await;
    env.hitolink
        .emu
        .admin_decline(&id, &json!({"by": "candidate"}))
        .unwrap();
    env.sync().await;
    let ev = env.event_of(&id);
    assert_eq!(ev["status"], "confirmed");
    let cand = ev["attendees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == "taro@example.com")
        .unwrap();
    assert_eq!(cand["responseStatus"], "declined");
}

#[tokio::test]
async fn cancellations_travel_both_ways_and_deleted_interviews_stay_dead() {
    let env = Env::start().await;
    let a = env.schedule("ap_1", 1, 10);
    let b = env.schedule("ap_2", 1, 13);
    env.sync().await;
    env.hitolink
        .emu
        .admin_edit(&a, &json!({"status": "canceled"}))
        .unwrap();
    let ev_b = env.event_of(&b)["id"].as_str().unwrap().to_string();
    env.google.emu.ui_delete(ORGANIZER, &ev_b).unwrap();
    env.sync().await;
    assert_eq!(env.event_of(&a)["status"], "cancelled");
    assert_eq!(env.interview(&b)["status"], "canceled");

    // deleted in HITO-Link: the event is cancelled and never comes back
    let c = env.schedule("ap_1", 2, 10);
    env.sync().await;
    env.hitolink.emu.admin_delete(&c).unwrap();
    env.sync().await;
    let ev_c = env.event_of(&c);
    assert_eq!(ev_c["status"], "cancelled");
    env.google
        .emu
        .ui_edit(
            ORGANIZER,
            ev_c["id"].as_str().unwrap(),
            json!({"status": "confirmed"}),
        )
        .unwrap();
    env.sync().await;
    assert_eq!(env.event_of(&c)["status"], "cancelled", "resurrected");
    env.sync().await;
    env.reset_counters();
    env.sync().await;
    assert_eq!(env.writes(), 0);
}

#[tokio::test]
async fn deleted_event_is_recreated_when_configured() {
    let env = Env::start_with("[sync]\non_event_deleted = \"recreate\"").await;
    let id = env.schedule("ap_1", 1, 10);
    env.sync().await;
    let ev_id = env.event_of(&id)["id"].as_str().unwrap().to_string();
    env.google.emu.ui_delete(ORGANIZER, &ev_id).unwrap();
    env.sync().await;
    assert_eq!(env.event_of(&id)["status"], "confirmed");
    assert_eq!(env.interview(&id)["status"], "scheduled");
}

#[tokio::test]
async fn a_booking_in_the_calendar_creates_one_interview() {
    let env = Env::start().await;
    let ev = env
        .google
        .emu
        .ui_create(
            ORGANIZER,
            json!({
                "summary": "最終面接 HL:ap_2",
                "start": {"dateTime": "2026-12-04T16:00:00+09:00", "timeZone": "Asia/Tokyo"},
                "end": {"dateTime": "2026-12-04T17:00:00+09:00", "timeZone": "Asia/Tokyo"},
                "attendees": [{"email": "takahashi@example.co.jp"}, {"email": "hanako@example.com"}],
            }),
        )
        .unwrap();
    let out = env.sync().await;
    assert!(out.contains("Booking"), "{out}");
    let interviews = env.hitolink.emu.interviews();
    assert_eq!(interviews.len(), 1);
    let iv = &interviews[0];
    assert_eq!(iv.application_id, "ap_2");
    assert_eq!(iv.external_event_id.as_deref(), ev["id"].as_str());
    assert_eq!(
        iv.interviewers.len(),
        1,
        "the candidate is not an interviewer"
    );
    assert_eq!(iv.interviewers[0].email, "takahashi@example.co.jp");
    let stamped = env.event_of(&iv.id);
    assert_eq!(stamped["id"], ev["id"]);
    env.sync().await;
    env.reset_counters();
    env.sync().await;
    assert_eq!(env.writes(), 0);
    assert_eq!(env.hitolink.emu.interviews().len(), 1);
}

#[tokio::test]
async fn expired_sync_token_and_cursor_resync_without_loss() {
    let env = Env::start().await;
    let a = env.schedule("ap_1", 1, 10);
    let b = env.schedule("ap_2", 1, 13);
    env.sync().await;
    env.google.emu.invalidate_sync_tokens();
    env.hitolink.emu.invalidate_cursors();
    // changes made while the tokens were dead
    let ev_a = env.event_of(&a)["id"].as_str().unwrap().to_string();
    env.google
        .emu
        .ui_edit(ORGANIZER, &ev_a, json!({"location": "本社 7F"}))
        .unwrap();
    env.hitolink
        .emu
        .admin_edit(&b, &json!({"location": "大阪支社"}))
        .unwrap();
    let out = env.sync().await;
    assert!(out.contains("full listing of both sides"), "{out}");
    assert_eq!(env.interview(&a)["location"], "本社 7F");
    assert_eq!(env.event_of(&b)["location"], "大阪支社");
    env.sync().await;
    env.reset_counters();
    env.sync().await;
    assert_eq!(env.writes(), 0);
}

#[tokio::test]
async fn a_wiped_state_dir_is_rebuilt_without_duplicates() {
    let env = Env::start().await;
    let ids: Vec<_> = (0..4).map(|i| env.schedule("ap_1", 1 + i, 10)).collect();
    env.sync().await;
    env.sync().await;
    std::fs::remove_dir_all(env.dir.path().join("state")).unwrap();
    // a change on the calendar side while the store was gone must survive
    let ev0 = env.event_of(&ids[0])["id"].as_str().unwrap().to_string();
    env.google
        .emu
        .guest_reply(ORGANIZER, &ev0, "suzuki@example.co.jp", "accepted")
        .unwrap();
    env.reset_counters();
    env.sync().await;
    assert_eq!(env.events().len(), 4, "one event per interview");
    for id in &ids {
        env.event_of(id);
    }
    assert_eq!(
        env.interview(&ids[0])["interviewers"][0]["response_status"],
        "accepted"
    );
    assert_eq!(
        env.google.emu.counters().get("events.insert"),
        None,
        "nothing was created again"
    );
    env.sync().await;
    env.reset_counters();
    env.sync().await;
    assert_eq!(env.writes(), 0);
}

#[tokio::test]
async fn a_bad_record_is_parked_and_shown_by_status() {
    let env = Env::start().await;
    let good = env.schedule("ap_1", 1, 10);
    // a booking naming an application HITO-Link does not know
    env.google
        .emu
        .ui_create(
            ORGANIZER,
            json!({
                "summary": "面接 HL:ap_999",
                "start": {"dateTime": "2026-12-04T16:00:00+09:00"},
                "end": {"dateTime": "2026-12-04T17:00:00+09:00"},
            }),
        )
        .unwrap();
    let (code, out, err) = env.run(&["sync"]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    env.event_of(&good);
    let (code, status, _) = env.run(&["status"]).await;
    assert_eq!(code, 0);
    assert!(status.contains("parked (failing) records: 1"), "{status}");
    assert!(status.contains("ap_999"), "{status}");
    let (_, json_status, _) = env.run(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&json_status).unwrap();
    assert_eq!(v["parked"].as_array().unwrap().len(), 1);
    assert_eq!(v["mapped_interviews"], 1);
    // the next cycle does not retry before the backoff, and stays honest
    let (code, _, _) = env.run(&["sync"]).await;
    assert_eq!(code, 0, "nothing new failed");
}

#[tokio::test]
async fn plan_changes_nothing_and_inspect_explains() {
    let env = Env::start().await;
    let id = env.schedule("ap_1", 1, 10);
    let (code, out, _) = env.run(&["plan"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("interview {id}")) && out.contains("CreateEvent"),
        "{out}"
    );
    assert!(env.events().is_empty(), "plan wrote to the calendar");
    assert_eq!(env.writes(), 0);
    env.sync().await;
    let (code, out, _) = env.run(&["inspect", &id]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("agreed state") && out.contains("CreateEvent"),
        "{out}"
    );
    let (code, _, _) = env.run(&["inspect", "iv_424242"]).await;
    assert_eq!(code, 1);
}

#[tokio::test]
async fn config_errors_exit_2_and_name_the_key() {
    let env = Env::start().await;
    std::fs::write(&env.config, "[google]\nservice_account_email = 3\n").unwrap();
    let (code, _, err) = env.run(&["sync"]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("hitosync.toml") && err.contains("service_account_email"),
        "{err}"
    );
}

#[tokio::test]
async fn mass_cancellation_waits_for_permission() {
    let env = Env::start_with("[sync]\nmax_deletions = 2").await;
    let ids: Vec<_> = (0..4).map(|i| env.schedule("ap_1", 1 + i, 10)).collect();
    env.sync().await;
    for id in &ids {
        env.hitolink
            .emu
            .admin_edit(id, &json!({"status": "canceled"}))
            .unwrap();
    }
    let (code, out, _) = env.run(&["sync"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("mass-deletion breaker tripped"), "{out}");
    assert!(
        ids.iter()
            .all(|id| env.event_of(id)["status"] == "confirmed")
    );
    let (_, status, _) = env.run(&["status"]).await;
    assert!(status.contains("TRIPPED"), "{status}");
    let (code, out, _) = env.run(&["sync", "--allow-mass-delete"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        ids.iter()
            .all(|id| env.event_of(id)["status"] == "cancelled")
    );
}

/// SPEC invariant 7: with everything logging at debug, no secret appears
/// in any output: not the HITO-Link token, not an access token, not the
/// signed JWT, not the key.
#[tokio::test]
async fn secrets_never_reach_logs_or_output() {
    let env = Env::start().await;
    let id = env.schedule("ap_1", 1, 10);
    let debug = [("RUST_LOG", "trace,yup_oauth2=trace,hyper=trace")];
    let mut all = String::new();
    for args in [
        vec!["sync"],
        vec!["plan"],
        vec!["status", "--json"],
        vec!["inspect", id.as_str()],
        vec!["sync", "--full"],
    ] {
        let (_, out, err) = env.run_env(&args, &debug).await;
        all.push_str(&out);
        all.push_str(&err);
    }
    // and the failures: a wrong HITO-Link token, a refused delegation
    std::fs::write(
        env.dir.path().join("hitolink.token"),
        "wrong-token-value-123\n",
    )
    .unwrap();
    let (_, out, err) = env.run_env(&["sync"], &debug).await;
    all.push_str(&out);
    all.push_str(&err);
    env.google.emu.with_auth(|a| a.delegated_scopes = None);
    let (code, out, err) = env.run_env(&["sync"], &debug).await;
    assert_eq!(code, 2, "{err}");
    all.push_str(&out);
    all.push_str(&err);
    assert!(
        all.len() > 1000,
        "the debug run logged too little to mean anything: {all}"
    );
    for secret in [
        HITOLINK_TOKEN,
        "wrong-token-value-123",
        "ya29.",
        "eyJhbGciOiJSUzI1NiIs",
        "PRIVATE KEY",
        "Bearer ",
    ] {
        assert!(!all.contains(secret), "{secret:?} appeared in the output");
    }
}
