//! The real binary against servers that misbehave the way real ones do
//! (issue 11): a cursor that never moves on, a `Retry-After` of a day, a
//! server that never answers, a body of tens of megabytes, items that do
//! not decode, an error that echoes the `Authorization` header. Each test
//! puts a hostile proxy (crates/testkit/src/hostile.rs) in front of the
//! emulators and asserts what hitosync makes of it: the process ends or
//! answers (a generous outer timeout only turns a hang into a failure),
//! the error names the side and the cause, the other records sync, and
//! nothing is lost once the server behaves again.

use std::sync::Arc;

use crate::common::daemon::{Daemon, HANG, NEVER};
use crate::common::hostile::Action;
use crate::common::*;
use axum::http::Method;
use serde_json::{Value, json};

const CHANGES: &str = "/v1/interviews/changes";
const EVENTS: &str = "/calendar/v3/calendars/";

/// `hitosync <args>`, failing the test if it does not end.
async fn run_bounded(env: &Env, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    tokio::time::timeout(HANG, env.run_env(args, envs))
        .await
        .unwrap_or_else(|_| panic!("`hitosync {}` did not end", args.join(" ")))
}

/// The lines of `hitosync`'s own error report (not the log's).
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect()
}

#[tokio::test]
async fn a_hitolink_cursor_that_never_moves_on_is_bounded() {
    let env = Env::start_full(&format!("{NEVER}\ncycle_deadline_secs = 3"), "").await;
    let id = env.schedule("ap_1", 1, 10);
    let (_, h) = env.through_proxies().await;
    // every page says there is more, and the emulator's cursor after the
    // last change does not move: the same next_cursor forever
    h.on(
        Some(Method::GET),
        CHANGES,
        Action::Rewrite(Arc::new(|v: &mut Value| v["has_more"] = json!(true))),
        None,
    );
    let (code, out, err) = run_bounded(&env, &["sync"], &[]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("HITO-Link"), "{}", errors[0]);
    assert!(h.hits(CHANGES) >= 2, "the feed was not paged");
    let status = env.status_json().await;
    assert!(
        status["hitolink_cursor"].is_null(),
        "a cursor was saved: {status}"
    );
    assert_eq!(status["health"]["consecutive_failures"], 1, "{status}");
    // (status and SIGTERM while a cycle waits: see
    // a_server_that_never_answers_blocks_neither_status_nor_sigterm)

    // nothing lost: once the feed behaves, the interview is synced
    h.clear();
    env.sync().await;
    env.event_of(&id);
}

#[tokio::test]
async fn a_google_page_token_that_repeats_is_bounded() {
    let env = Env::start_full(&format!("{NEVER}\ncycle_deadline_secs = 3"), "").await;
    let id = env.schedule("ap_1", 1, 10);
    let (g, _) = env.through_proxies().await;
    g.on(
        Some(Method::GET),
        EVENTS,
        Action::LoopPages {
            query_param: "pageToken",
            field: "nextPageToken",
        },
        None,
    );
    let (code, out, err) = run_bounded(&env, &["sync"], &[]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains("Google") || errors[0].contains("calendar"),
        "{}",
        errors[0]
    );
    assert!(g.hits(EVENTS) >= 2, "the listing was not paged");
    assert!(env.status_json().await["google_sync_token"].is_null());
    g.clear();
    env.sync().await;
    env.event_of(&id);
}

#[tokio::test]
async fn a_retry_after_of_a_day_is_an_error_not_a_wait() {
    let env = Env::start().await;
    let id = env.schedule("ap_1", 1, 10);
    let (g, h) = env.through_proxies().await;
    let too_many = |body: Value| Action::Answer {
        status: 429,
        body: body.to_string().into_bytes(),
        retry_after: Some(86_400),
    };
    h.on(
        None,
        CHANGES,
        too_many(json!({"error": "rate_limited", "message": "slow down"})),
        None,
    );
    let (code, out, err) = run_bounded(&env, &["sync"], &[]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "{err}");
    for part in ["HITO-Link", "86400", "hitolink.max_retry_after_secs = 300"] {
        assert!(errors[0].contains(part), "{part:?} missing: {}", errors[0]);
    }
    assert!(!err.contains("retries ran out"), "{err}");
    assert_eq!(h.hits(CHANGES), 1, "it asked again instead of failing");
    h.clear();

    g.on(
        None,
        EVENTS,
        too_many(
            json!({"error": {"code": 429, "message": "Rate Limit Exceeded",
            "errors": [{"reason": "rateLimitExceeded", "domain": "usageLimits"}]}}),
        ),
        None,
    );
    let (code, _, err) = run_bounded(&env, &["sync"], &[]).await;
    assert_eq!(code, 1, "{err}");
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains("google.max_retry_after_secs") && errors[0].contains("86400"),
        "{}",
        errors[0]
    );
    let status = env.status_json().await;
    assert_eq!(status["health"]["consecutive_failures"], 2, "{status}");
    assert!(
        status["health"]["last_error"]
            .as_str()
            .unwrap()
            .contains("google.max_retry_after_secs"),
        "{status}"
    );
    g.clear();
    env.sync().await;
    env.event_of(&id);
    assert_eq!(env.status_json().await["health"]["consecutive_failures"], 0);
}

#[tokio::test]
async fn a_server_that_never_answers_blocks_neither_status_nor_sigterm() {
    let env = Env::start_full(&format!("{NEVER}\ncycle_deadline_secs = 3"), "").await;
    let id = env.schedule("ap_1", 1, 10);
    let (_, h) = env.through_proxies().await;
    h.on(None, CHANGES, Action::Hang, None);
    // one-shot: ends at the deadline, naming the side it waited for
    let (code, _, err) = run_bounded(&env, &["sync"], &[]).await;
    assert_eq!(code, 1, "{err}");
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains("daemon.cycle_deadline_secs = 3") && errors[0].contains("HITO-Link"),
        "{}",
        errors[0]
    );
    // the daemon: a cycle hangs on the feed; status answers, SIGTERM ends it
    let mut d = Daemon::start(&env, &[]).await;
    d.signal(10);
    d.wait_log("cycle starting").await;
    let (code, out, _) = run_bounded(&env, &["status"], &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("cycle running: since"), "{out}");
    assert_eq!(d.stop().await, 0);
    h.clear();
    env.sync().await;
    env.event_of(&id);
}

#[tokio::test]
async fn a_body_of_forty_megabytes_is_cut_off_and_never_saved() {
    let env = Env::start().await;
    let id = env.schedule("ap_1", 1, 10);
    env.sync().await;
    let before = env.status_json().await["hitolink_cursor"]["saved_at"].clone();
    assert!(before.is_string());
    let (_, h) = env.through_proxies().await;
    h.on(None, CHANGES, Action::Huge { mib: 40 }, None);
    env.hitolink
        .emu
        .admin_edit(&id, &json!({"location": "本社 9F"}))
        .unwrap();
    let (code, _, err) = run_bounded(&env, &["sync"], &[]).await;
    assert_eq!(code, 1, "{err}");
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains("HITO-Link") && errors[0].contains("32 MiB"),
        "{}",
        errors[0]
    );
    assert_eq!(
        h.hits(CHANGES),
        1,
        "an oversized answer was asked for again"
    );
    let status = env.status_json().await;
    assert_eq!(status["hitolink_cursor"]["saved_at"], before, "{status}");
    let (_, text, _) = env.run(&["status"]).await;
    assert!(text.len() < 100_000, "status grew: {} bytes", text.len());
    h.clear();
    env.sync().await;
    assert_eq!(env.event_of(&id)["location"], "本社 9F");
}

/// A HITO-Link record as the API sends it.
fn record(id: Value, start: &str) -> Value {
    json!({
        "id": id, "version": 1, "application_id": "ap_2",
        "candidate": {"id": "cd_2", "display_name": "佐藤 花子", "email": "hanako@example.com"},
        "job": {"id": "jb_2", "name": "エンジニア"}, "selection_step": null,
        "status": "scheduled", "start": start, "end": "2026-12-09T11:00:00+09:00",
        "time_zone": "Asia/Tokyo", "format": "online", "location": null, "video_conferencing_url": null,
        "interviewers": [], "candidate_response": "needs_action", "decline": null, "external_event_id": null,
        "created_at": "2026-11-19T10:00:00+09:00", "updated_at": "2026-11-20T09:00:00+09:00", "deleted_at": null
    })
}

#[tokio::test]
async fn one_bad_item_never_stops_the_rest_of_its_page() {
    let env = Env::start().await;
    let first = env.schedule("ap_1", 1, 10);
    env.sync().await;
    let (g, h) = env.through_proxies().await;
    // HITO-Link: a numeric id, a wrongly typed field on a good id, bytes
    // that are not UTF-8 in a good id's record
    let numeric = record(json!(12345), "2026-12-09T10:00:00+09:00").to_string();
    let mut typed = record(json!("iv_bad_type"), "2026-12-09T10:00:00+09:00");
    typed["version"] = json!("three");
    let latin1 = {
        let mut v = record(json!("iv_bad_bytes"), "2026-12-09T10:00:00+09:00");
        v["location"] = json!("cafMARK");
        let text = v.to_string().into_bytes();
        let at = text.windows(4).position(|w| w == b"MARK").unwrap();
        [&text[..at], &[0xE9u8][..], &text[at + 4..]].concat()
    };
    h.on(
        Some(Method::GET),
        CHANGES,
        Action::AppendItems(vec![
            numeric.into_bytes(),
            typed.to_string().into_bytes(),
            latin1,
        ]),
        None,
    );
    // Google: unmanaged events without an id, with a wrong type, with a
    // dateTime that has no offset and no zone
    let no_id = json!({"etag": "\"9\"", "status": "confirmed", "summary": "lunch",
        "start": {"dateTime": "2026-12-01T12:00:00+09:00"}, "end": {"dateTime": "2026-12-01T13:00:00+09:00"}});
    let wrong_type = json!({"id": "unmanaged1", "etag": "\"9\"", "summary": 42,
        "start": {"dateTime": "2026-12-01T12:00:00+09:00"}, "end": {"dateTime": "2026-12-01T13:00:00+09:00"}});
    let no_offset = json!({"id": "unmanaged2", "etag": "\"9\"", "summary": "call",
        "start": {"dateTime": "2026-12-01T12:00:00"}, "end": {"dateTime": "2026-12-01T13:00:00"}});
    g.on(
        Some(Method::GET),
        EVENTS,
        Action::AppendItems(
            [no_id, wrong_type, no_offset]
                .iter()
                .map(|v| v.to_string().into_bytes())
                .collect(),
        ),
        None,
    );
    // meanwhile, real work on both sides
    let second = env.schedule("ap_2", 2, 11);
    env.hitolink
        .emu
        .admin_edit(&first, &json!({"location": "本社 9F"}))
        .unwrap();
    let (code, out, err) = run_bounded(&env, &["sync"], &[]).await;
    // something is parked, so the exit code says so; nothing failed
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(error_lines(&err).is_empty(), "{err}");
    assert!(
        out.contains("item(s) in the servers' pages could not be read"),
        "{out}"
    );
    env.event_of(&second);
    assert_eq!(env.event_of(&first)["location"], "本社 9F");
    let status = env.status_json().await;
    assert_eq!(status["last_cycle"]["unreadable"], 4, "{status}");
    let parked: Vec<&str> = status["parked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"]["id"].as_str().unwrap())
        .collect();
    assert!(parked.contains(&"iv_bad_type"), "{parked:?}");
    assert!(parked.contains(&"iv_bad_bytes"), "{parked:?}");
    // the log names the unreadable ones by position and hash
    assert!(err.contains("position=") && err.contains("hash="), "{err}");
    assert!(err.contains("12345"), "{err}");
    // the cursors moved on: the next quiet cycle writes nothing
    g.clear();
    h.clear();
    env.reset_counters();
    let (code, _, err) = run_bounded(&env, &["sync"], &[]).await;
    assert!(code <= 1, "{err}");
    assert_eq!(env.writes(), 0);
}

#[tokio::test]
async fn secrets_stay_out_of_logs_even_when_asked_for_and_echoed() {
    let env = Env::start().await;
    env.schedule("ap_1", 1, 10);
    let leaky = [(
        "RUST_LOG",
        "trace,yup_oauth2::service_account=debug,hyper::proto=trace",
    )];
    let (code, out, err) = run_bounded(&env, &["sync"], &leaky).await;
    assert_eq!(code, 0, "{err}");
    let mut all = format!("{out}{err}");
    assert!(all.len() > 1000, "too little logged to mean anything");
    // servers that echo the Authorization header in their error text
    let (g, h) = env.through_proxies().await;
    h.on(None, CHANGES, Action::EchoAuth { status: 400 }, None);
    let (code, out, err) = run_bounded(&env, &["sync"], &leaky).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("you sent Authorization"),
        "the echo did not happen: {err}"
    );
    all.push_str(&out);
    all.push_str(&err);
    h.clear();
    g.on(None, EVENTS, Action::EchoAuth { status: 400 }, None);
    let (code, out, err) = run_bounded(&env, &["sync"], &leaky).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("you sent Authorization"),
        "the echo did not happen: {err}"
    );
    all.push_str(&out);
    all.push_str(&err);
    let (_, status, _) = env.run(&["status", "--json"]).await;
    all.push_str(&status);
    for secret in [
        HITOLINK_TOKEN,
        "ya29.",
        "eyJhbGciOiJSUzI1NiIs",
        "PRIVATE KEY",
    ] {
        assert!(!all.contains(secret), "{secret:?} appeared in the output");
    }
    assert!(all.contains("Bearer [REDACTED]"), "nothing was scrubbed?");
}

/// The engine's part of the looping cursor (issue 11, What to build 1):
/// a repeated cursor or page token is detected and named, long before any
/// deadline.
#[tokio::test]
async fn a_repeated_cursor_or_page_token_is_named() {
    let env = Env::start_full(&format!("{NEVER}\ncycle_deadline_secs = 600"), "").await;
    env.schedule("ap_1", 1, 10);
    let (g, h) = env.through_proxies().await;
    h.on(
        Some(Method::GET),
        CHANGES,
        Action::Rewrite(Arc::new(|v: &mut Value| v["has_more"] = json!(true))),
        None,
    );
    let (code, _, err) = run_bounded(&env, &["sync"], &[]).await;
    assert_eq!(code, 1, "{err}");
    let errors = error_lines(&err);
    assert!(
        errors[0].contains("HITO-Link") && errors[0].contains("cursor"),
        "{}",
        errors[0]
    );
    assert!(!errors[0].contains("cycle_deadline_secs"), "{}", errors[0]);
    h.clear();
    g.on(
        Some(Method::GET),
        EVENTS,
        Action::LoopPages {
            query_param: "pageToken",
            field: "nextPageToken",
        },
        None,
    );
    let (code, _, err) = run_bounded(&env, &["sync"], &[]).await;
    assert_eq!(code, 1, "{err}");
    let errors = error_lines(&err);
    assert!(
        errors[0].contains("hostile-loop-token") || errors[0].contains("page token"),
        "{}",
        errors[0]
    );
    assert!(!errors[0].contains("cycle_deadline_secs"), "{}", errors[0]);
}
