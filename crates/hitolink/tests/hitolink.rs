//! The real HITO-Link client against the HITO-Link emulator over loopback.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use hitosync_core::model::{InterviewStatus, Response, Slot};
use hitosync_core::reconcile::{Decliner, InterviewChange};
use hitosync_emulator::hitolink::Fault;
use hitosync_hitolink::{
    HitolinkClient, HitolinkError, InterviewPatch, NewInterview, TokenError, read_token,
};
use hitosync_net::retry::Backoff;
use hitosync_testkit::*;
use secrecy::SecretString;
use serde_json::json;

fn client(h: &HitolinkEmu) -> HitolinkClient {
    client_with(h, HITOLINK_TOKEN, Backoff::immediate(3))
}

fn client_with(h: &HitolinkEmu, token: &str, backoff: Backoff) -> HitolinkClient {
    HitolinkClient::new(
        h.base_url().parse().unwrap(),
        SecretString::from(token.to_string()),
        60_000,
        backoff,
    )
}

fn schedule(h: &HitolinkEmu, app: &str, hour: u32) -> String {
    h.emu
        .admin_create(&json!({
            "application_id": app,
            "start": format!("2026-12-0{}T{hour:02}:00:00+09:00", 1 + hour % 5),
            "end": format!("2026-12-0{}T{:02}:30:00+09:00", 1 + hour % 5, hour),
            "interviewers": ["suzuki@example.co.jp", "takahashi@example.co.jp"],
            "video_conferencing_url": "https://meet.example/x",
            "format": "online",
        }))
        .unwrap()
        .body["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn change_feed_pages_through_every_record() {
    let h = HitolinkEmu::start(hiring_seed()).await;
    for i in 0..7 {
        schedule(&h, "ap_1", 9 + i);
    }
    let c = client(&h);
    let mut cursor: Option<String> = None;
    let mut ids = vec![];
    loop {
        let page = c.changes(cursor.as_deref(), 3).await.unwrap();
        ids.extend(page.items.into_iter().map(|i| i.unwrap().id));
        cursor = Some(page.next_cursor);
        if !page.has_more {
            break;
        }
    }
    assert_eq!(ids.len(), 7);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 7);
    let quiet = c.changes(cursor.as_deref(), 3).await.unwrap();
    assert!(quiet.items.is_empty() && !quiet.has_more);
    assert_eq!(h.emu.counters()["changes"], 4);
}

/// A writer edits records while the reader pages; no change may be skipped
/// and no (record, version) may come twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_read_during_writes_skips_nothing() {
    let h = HitolinkEmu::start(hiring_seed()).await;
    let mut all = vec![];
    for i in 0..30 {
        all.push(schedule(
            &h,
            if i % 2 == 0 { "ap_1" } else { "ap_2" },
            9 + (i % 8),
        ));
    }
    let writer_emu = h.emu.clone();
    let ids = all.clone();
    let writer = tokio::spawn(async move {
        for round in 0..60u32 {
            let id = &ids[(round as usize * 7) % ids.len()];
            writer_emu
                .admin_edit(id, &json!({"location": format!("会議室{round}")}))
                .unwrap();
            if round % 10 == 0 {
                writer_emu
                    .admin_create(&json!({"application_id": "ap_1", "start": "2026-12-10T10:00:00+09:00", "end": "2026-12-10T11:00:00+09:00"}))
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let c = client(&h);
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut pairs = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut writer_done = false;
    let mut writer = Some(writer);
    loop {
        let page = c.changes(cursor.as_deref(), 4).await.unwrap();
        for item in page.items {
            let iv = item.unwrap();
            assert!(
                pairs.insert((iv.id.clone(), iv.version)),
                "{} v{} twice",
                iv.id,
                iv.version
            );
            let last = seen.insert(iv.id.to_string(), iv.version);
            assert!(last.is_none_or(|v| v < iv.version), "went back in time");
        }
        cursor = Some(page.next_cursor);
        if !page.has_more {
            if writer_done {
                break;
            }
            if let Some(w) = writer.take() {
                w.await.unwrap();
            }
            writer_done = true;
        }
    }
    // the reader ends holding every record's final version
    for r in h.emu.interviews() {
        assert_eq!(
            seen.get(&r.id),
            Some(&r.version),
            "{} missed its last change",
            r.id
        );
    }
}

#[tokio::test]
async fn a_bad_record_is_reported_on_its_own() {
    let mut seed = hiring_seed();
    let mut bad: hitosync_core::model::InterviewRecord = serde_json::from_value(json!({
        "id": "iv_000900", "version": 3, "application_id": "ap_1",
        "candidate": {"id": "cd_1", "display_name": "山田 太郎", "email": "taro@example.com"},
        "job": {"id": "jb_1", "name": "カスタマーサクセス"}, "selection_step": null,
        "status": "scheduled", "start": "2026-12-01T11:00:00+09:00", "end": "2026-12-01T10:00:00+09:00",
        "time_zone": "Asia/Tokyo", "format": "online", "location": null, "video_conferencing_url": null,
        "interviewers": [], "candidate_response": "needs_action", "decline": null, "external_event_id": null,
        "created_at": "2026-11-19T10:00:00+09:00", "updated_at": "2026-11-20T09:00:00+09:00", "deleted_at": null
    }))
    .unwrap();
    seed.interviews.push(bad.clone());
    bad.id = "iv_000901".into();
    bad.end = Some("2026-12-01T12:00:00+09:00".into());
    seed.interviews.push(bad);
    let h = HitolinkEmu::start(seed).await;
    let page = client(&h).changes(None, 200).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let err = page.items[0].as_ref().unwrap_err();
    assert_eq!(err.id, "iv_000900");
    assert!(err.reason.contains("not after"), "{err}");
    assert!(page.items[1].is_ok());
}

#[tokio::test]
async fn get_patch_and_conflicts() {
    let h = HitolinkEmu::start(hiring_seed()).await;
    let id = schedule(&h, "ap_1", 10);
    let c = client(&h);
    let iv = c.get(&id).await.unwrap();
    assert_eq!(iv.status, InterviewStatus::Scheduled);
    assert_eq!(iv.interviewers.len(), 2);

    let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    let to = |start: &str, end: &str| InterviewChange {
        slot: Some(Slot {
            start: t(start),
            end: t(end),
        }),
        ..Default::default()
    };
    let moved = c
        .patch(
            &id,
            InterviewPatch::Change(&to("2026-12-02T05:00:00Z", "2026-12-02T06:00:00Z")),
            iv.version,
        )
        .await
        .unwrap();
    assert_eq!(moved.version, iv.version + 1);
    // answered in +09:00, compared as instants
    assert_eq!(
        moved.slot.unwrap().start.to_rfc3339(),
        "2026-12-02T05:00:00+00:00"
    );

    let stale = c
        .patch(
            &id,
            InterviewPatch::Change(&InterviewChange {
                location: Some(Some("本社".into())),
                ..Default::default()
            }),
            iv.version,
        )
        .await
        .unwrap_err();
    match stale {
        HitolinkError::PreconditionFailed {
            current: Some(cur), ..
        } => assert_eq!(cur.version, moved.version),
        other => panic!("{other:?}"),
    }
    let invalid = c
        .patch(
            &id,
            InterviewPatch::Change(&to("2026-12-02T05:00:00Z", "2026-12-01T00:00:00Z")),
            moved.version,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(invalid, HitolinkError::Invalid { .. }),
        "{invalid:?}"
    );
    assert_eq!(
        c.get(&id).await.unwrap().version,
        moved.version,
        "a 422 changed the record"
    );

    let answered = c
        .patch(
            &id,
            InterviewPatch::Change(&InterviewChange {
                responses: vec![("us_2".into(), Response::Accepted)],
                ..Default::default()
            }),
            moved.version,
        )
        .await
        .unwrap();
    assert_eq!(answered.interviewers[1].response, Response::Accepted);
    let canceled = c
        .patch(&id, InterviewPatch::Cancel, answered.version)
        .await
        .unwrap();
    assert_eq!(canceled.status, InterviewStatus::Canceled);

    h.emu.admin_delete(&id).unwrap();
    let tomb = c.get(&id).await.unwrap();
    assert!(tomb.deleted);
    let gone = c
        .patch(&id, InterviewPatch::ExternalEventId("x0000"), tomb.version)
        .await
        .unwrap_err();
    assert!(matches!(gone, HitolinkError::NotFound { .. }));
    assert!(matches!(
        c.get("iv_424242").await.unwrap_err(),
        HitolinkError::NotFound { .. }
    ));
}

#[tokio::test]
async fn bookings_are_idempotent() {
    let h = HitolinkEmu::start(hiring_seed()).await;
    let c = client(&h);
    let booking = NewInterview {
        application_id: "ap_2".into(),
        selection_step_id: Some("st_2".into()),
        start: "2026-12-03T01:00:00Z".parse().unwrap(),
        end: "2026-12-03T02:00:00Z".parse().unwrap(),
        time_zone: "Asia/Tokyo".into(),
        interviewers: vec!["takahashi@example.co.jp".into()],
        external_event_id: "ui00000001abc".into(),
        location: Some("本社 5F".into()),
        video_conferencing_url: None,
    };
    let first = c.create(&booking, "ui00000001abc").await.unwrap();
    assert_eq!(first.candidate.display_name, "佐藤 花子");
    assert_eq!(first.selection_step.as_ref().unwrap().name, "最終面接");
    assert_eq!(first.external_event_id.as_deref(), Some("ui00000001abc"));
    // the same key again, even with another body, returns the first result
    let mut other = booking.clone();
    other.location = Some("別の場所".into());
    let again = c.create(&other, "ui00000001abc").await.unwrap();
    assert_eq!(again, first);
    assert_eq!(h.emu.interviews().len(), 1);

    let mut unknown = booking.clone();
    unknown.application_id = "ap_999".into();
    assert!(matches!(
        c.create(&unknown, "k2").await.unwrap_err(),
        HitolinkError::NotFound { .. }
    ));
    let mut stranger = booking.clone();
    stranger.interviewers = vec!["nobody@example.co.jp".into()];
    assert!(matches!(
        c.create(&stranger, "k3").await.unwrap_err(),
        HitolinkError::Invalid { .. }
    ));
    let app = c.application("ap_1").await.unwrap();
    assert_eq!(app.candidate.display_name, "山田 太郎");
    assert!(matches!(
        c.application("ap_404").await.unwrap_err(),
        HitolinkError::NotFound { .. }
    ));
}

#[tokio::test]
async fn declines_by_candidate_and_interviewer() {
    let h = HitolinkEmu::start(hiring_seed()).await;
    let id = schedule(&h, "ap_1", 10);
    let c = client(&h);
    let iv = c.get(&id).await.unwrap();
    let by_interviewer = Decliner::Interviewer {
        interviewer_id: "us_1".into(),
    };
    let d1 = c
        .decline(&id, &by_interviewer, Some("出張"), iv.version, "dec-1")
        .await
        .unwrap();
    assert_eq!(d1.interviewers[0].response, Response::Declined);
    assert_eq!(d1.status, InterviewStatus::Scheduled);
    // replayed key: the first result, no second change
    let replay = c
        .decline(&id, &by_interviewer, None, iv.version, "dec-1")
        .await
        .unwrap();
    assert_eq!(replay, d1);
    let d2 = c
        .decline(&id, &Decliner::Candidate, None, d1.version, "dec-2")
        .await
        .unwrap();
    assert_eq!(d2.status, InterviewStatus::CandidateDeclined);
    assert_eq!(d2.candidate_response, Response::Declined);
    let stale = c
        .decline(&id, &Decliner::Candidate, None, iv.version, "dec-3")
        .await
        .unwrap_err();
    assert!(matches!(stale, HitolinkError::PreconditionFailed { .. }));
}

#[tokio::test]
async fn expired_cursor_and_bad_token() {
    let h = HitolinkEmu::start(hiring_seed()).await;
    schedule(&h, "ap_1", 10);
    let c = client(&h);
    let page = c.changes(None, 10).await.unwrap();
    h.emu.invalidate_cursors();
    let err = c.changes(Some(&page.next_cursor), 10).await.unwrap_err();
    assert!(matches!(err, HitolinkError::CursorExpired), "{err:?}");
    let wrong = client_with(&h, "not-the-token", Backoff::immediate(3));
    let err = wrong.changes(None, 10).await.unwrap_err();
    assert!(matches!(err, HitolinkError::Unauthorized), "{err:?}");
    assert!(!err.to_string().contains("not-the-token"));
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried() {
    let h = HitolinkEmu::start(hiring_seed()).await;
    let c = client(&h);
    h.emu.inject(Fault::ServerError, 1);
    h.emu.inject(
        Fault::TooManyRequests {
            retry_after_secs: 0,
        },
        1,
    );
    c.changes(None, 10).await.unwrap();
    assert_eq!(h.emu.counters()["changes"], 3);
    h.emu.inject(Fault::Unavailable, 3);
    assert!(matches!(
        c.changes(None, 10).await.unwrap_err(),
        HitolinkError::Transient(_)
    ));

    // the documented limit answers 429 with Retry-After, which the client reads
    h.emu.clear_faults();
    h.emu.set_rate_limit(Some(2));
    let once = client_with(&h, HITOLINK_TOKEN, Backoff::immediate(1));
    once.changes(None, 10).await.unwrap();
    once.changes(None, 10).await.unwrap();
    match once.changes(None, 10).await.unwrap_err() {
        HitolinkError::RateLimited {
            retry_after: Some(d),
        } => assert!(d >= Duration::from_secs(1)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn token_file_errors_are_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.token");
    assert!(matches!(
        read_token(&missing, false).unwrap_err(),
        TokenError::Missing { .. }
    ));
    let empty = dir.path().join("empty.token");
    std::fs::write(&empty, "\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            read_token(&empty, false).unwrap_err(),
            TokenError::Empty { .. }
        ));
        let open = dir.path().join("open.token");
        std::fs::write(&open, "secret-token-value\n").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_token(&open, false).unwrap_err();
        assert!(matches!(
            err,
            TokenError::InsecurePermissions { mode: 0o644, .. }
        ));
        assert!(!err.to_string().contains("secret-token-value"));
        assert!(read_token(&open, true).is_ok());
    }
}
