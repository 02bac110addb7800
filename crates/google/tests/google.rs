//! The real auth and Calendar client against the Calendar emulator over
//! loopback HTTP.

use std::path::Path;

use hitosync_config::Config;
use hitosync_core::model::{Attendee, EventStatus, Response, Slot};
use hitosync_core::reconcile::{EventChange, EventDraft, Notify};
use hitosync_emulator::google::Fault;
use hitosync_google::{
    AuthError, CalendarClient, ClientOptions, GoogleError, KeyError, ServiceAccount, SetupError,
};
use hitosync_net::retry::Backoff;
use hitosync_testkit::*;
use serde_json::json;

fn config(g: &GoogleEmu, key: &Path, organizer: &str, extra: &str) -> Config {
    let text = format!(
        "{}{extra}\n[hitolink]\nbase_url = \"http://127.0.0.1:1/\"\napi_token_file = \"/nonexistent\"\n",
        google_toml(g, key, organizer)
    );
    Config::parse(&text, Path::new("/test/hitosync.toml")).unwrap()
}

async fn client_with(
    g: &GoogleEmu,
    key_name: &str,
    organizer: &str,
    page_size: u32,
) -> Result<CalendarClient, SetupError> {
    let dir = tempfile::tempdir().unwrap();
    let key = private_copy(dir.path(), key_name);
    let cfg = config(g, &key, organizer, "");
    let account = ServiceAccount::from_config(&cfg)?;
    let mut opts = ClientOptions::from_config(&cfg);
    opts.backoff = Backoff::immediate(3);
    opts.page_size = page_size;
    Ok(CalendarClient::new(&account, opts).await?)
}

async fn client(g: &GoogleEmu) -> CalendarClient {
    client_with(g, "google-legacy.p12", ORGANIZER, 250)
        .await
        .unwrap()
}

fn new_event(id: &str, hour: u32) -> EventDraft {
    let t = |h: u32| format!("2026-12-01T{h:02}:00:00+09:00").parse().unwrap();
    EventDraft {
        summary: "【面接】山田 太郎様 一次面接".into(),
        description: String::new(),
        location: Some("本社 5F".into()),
        slot: Slot {
            start: t(hour),
            end: t(hour + 1),
        },
        time_zone: "Asia/Tokyo".into(),
        attendees: vec![Attendee {
            email: "suzuki@example.co.jp".into(),
            display_name: Some("鈴木 一郎".into()),
            response: Response::NeedsAction,
            organizer: false,
            resource: false,
            is_self: false,
        }],
        private: [("hitolinkInterviewId".to_string(), id.to_string())].into(),
    }
}

#[tokio::test]
async fn p12_key_yields_a_token_the_emulator_verified() {
    let g = GoogleEmu::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = private_copy(dir.path(), "google-legacy.p12");
    let c = CalendarClient::connect(&config(&g, &key, ORGANIZER, ""))
        .await
        .unwrap();
    let page = c.list_page(None, None).await.unwrap();
    assert!(page.events.is_empty());
    assert!(page.next_sync_token.is_some());
    let counters = g.emu.counters();
    assert_eq!(counters["token"], 1, "{counters:?}");
    assert_eq!(counters["events.list"], 1);
    // the token is cached: a second call makes no second exchange
    c.list_page(None, None).await.unwrap();
    assert_eq!(g.emu.counters()["token"], 1);
}

#[tokio::test]
async fn delegation_off_is_its_own_error() {
    let g = GoogleEmu::start().await;
    g.emu.with_auth(|a| a.delegated_scopes = None);
    let c = client(&g).await;
    let err = c.list_page(None, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            GoogleError::Auth(AuthError::DelegationNotGranted { .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("API承認設定"), "{err}");
}

#[tokio::test]
async fn missing_scope_in_delegation_is_delegation_error() {
    let g = GoogleEmu::start().await;
    g.emu.with_auth(|a| {
        a.delegated_scopes =
            Some(["https://www.googleapis.com/auth/calendar.readonly".to_string()].into())
    });
    let err = client(&g).await.list_page(None, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            GoogleError::Auth(AuthError::DelegationNotGranted { .. })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn api_disabled_is_its_own_error() {
    let g = GoogleEmu::start().await;
    g.emu.with_auth(|a| a.api_enabled = false);
    let err = client(&g).await.list_page(None, None).await.unwrap_err();
    assert!(matches!(err, GoogleError::ApiDisabled { .. }), "{err:?}");
    assert!(err.to_string().contains("1-②"), "{err}");
}

#[tokio::test]
async fn wrong_subject_is_its_own_error() {
    let g = GoogleEmu::start().await;
    let c = client_with(&g, "google-legacy.p12", "recruit-team@example.co.jp", 250)
        .await
        .unwrap();
    let err = c.list_page(None, None).await.unwrap_err();
    assert!(
        matches!(err, GoogleError::Auth(AuthError::SubjectRejected { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn wrong_key_is_its_own_error() {
    let g = GoogleEmu::start().await;
    let c = client_with(&g, "other-legacy.p12", ORGANIZER, 250)
        .await
        .unwrap();
    let err = c.list_page(None, None).await.unwrap_err();
    assert!(
        matches!(err, GoogleError::Auth(AuthError::KeyRejected { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn clock_skew_is_its_own_error() {
    let g = GoogleEmu::start().await;
    g.emu.with_auth(|a| a.clock_skew_secs = 7200);
    let err = client(&g).await.list_page(None, None).await.unwrap_err();
    assert!(
        matches!(err, GoogleError::Auth(AuthError::ClockSkew { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn wrong_password_is_its_own_error() {
    let g = GoogleEmu::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = private_copy(dir.path(), "google-legacy.p12");
    let cfg = config(&g, &key, ORGANIZER, "p12_password = \"hunter2-pw\"");
    let err = CalendarClient::connect(&cfg).await.unwrap_err();
    assert!(
        matches!(err, SetupError::Key(KeyError::WrongPassword { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("p12_password"));
    assert!(
        !err.to_string().contains("hunter2"),
        "the password must not be echoed: {err}"
    );
}

#[tokio::test]
async fn paging_delivers_every_event_once_and_the_token_last() {
    let g = GoogleEmu::start().await;
    let c = client_with(&g, "google-legacy.p12", ORGANIZER, 3)
        .await
        .unwrap();
    for i in 0..7 {
        c.insert(
            &format!("iv{i:05}"),
            &new_event(&format!("iv{i:05}"), 9 + i),
            Notify::Attendees,
        )
        .await
        .unwrap();
    }
    let mut ids = vec![];
    let mut page_token: Option<String> = None;
    let mut pages = 0;
    let sync = loop {
        let page = c.list_page(None, page_token.as_deref()).await.unwrap();
        pages += 1;
        ids.extend(page.events.iter().map(|e| e.id.clone()));
        match page.next_page_token {
            Some(t) => {
                assert!(
                    page.next_sync_token.is_none(),
                    "sync token before the last page"
                );
                page_token = Some(t);
            }
            None => break page.next_sync_token.expect("sync token on the last page"),
        }
    };
    assert_eq!(pages, 3);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7);
    // quiet: the delta is empty
    let quiet = c.list_page(Some(&sync), None).await.unwrap();
    assert!(quiet.events.is_empty());
    // a deletion in the UI comes back as a tombstone
    g.emu.ui_delete(ORGANIZER, "iv00003").unwrap();
    let delta = c
        .list_page(quiet.next_sync_token.as_deref(), None)
        .await
        .unwrap();
    assert_eq!(delta.events.len(), 1);
    assert_eq!(delta.events[0].status, EventStatus::Cancelled);
    assert_eq!(delta.events[0].interview_id(), Some("iv00003"));
}

#[tokio::test]
async fn expired_sync_token_is_full_sync_required() {
    let g = GoogleEmu::start().await;
    let c = client(&g).await;
    let page = c.list_page(None, None).await.unwrap();
    g.emu.invalidate_sync_tokens();
    let err = c
        .list_page(page.next_sync_token.as_deref(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, GoogleError::FullSyncRequired), "{err:?}");
}

#[tokio::test]
async fn duplicate_id_precondition_and_restore() {
    let g = GoogleEmu::start().await;
    let c = client(&g).await;
    let ev = c
        .insert("iv00042", &new_event("iv00042", 10), Notify::Attendees)
        .await
        .unwrap();
    assert_eq!(ev.interview_id(), Some("iv00042"));
    assert_eq!(ev.attendees[0].email, "suzuki@example.co.jp");
    let dup = c
        .insert("iv00042", &new_event("iv00042", 10), Notify::Attendees)
        .await
        .unwrap_err();
    assert!(matches!(dup, GoogleError::Duplicate { .. }), "{dup:?}");

    // someone moves it in the UI: our ETag is stale
    g.emu
        .ui_edit(ORGANIZER, "iv00042", json!({"location": "会議室B"}))
        .unwrap();
    let stale = c
        .patch(
            "iv00042",
            None,
            &EventChange {
                location: Some(Some("本社 6F".into())),
                ..Default::default()
            },
            Some(&ev.etag),
            Notify::Attendees,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(stale, GoogleError::PreconditionFailed { .. }),
        "{stale:?}"
    );
    let fresh = c.get("iv00042").await.unwrap();
    assert_eq!(fresh.location.as_deref(), Some("会議室B"));

    let cancelled = c
        .patch(
            "iv00042",
            Some(EventStatus::Cancelled),
            &EventChange::default(),
            Some(&fresh.etag),
            Notify::Attendees,
        )
        .await
        .unwrap();
    assert_eq!(cancelled.status, EventStatus::Cancelled);
    // a cancelled ID still cannot be inserted again...
    let dup = c
        .insert("iv00042", &new_event("iv00042", 10), Notify::Attendees)
        .await
        .unwrap_err();
    assert!(matches!(dup, GoogleError::Duplicate { .. }));
    // ...so it is restored
    let restored = c
        .patch(
            "iv00042",
            Some(EventStatus::Confirmed),
            &EventChange {
                location: Some(Some("本社 5F".into())),
                ..Default::default()
            },
            Some(&cancelled.etag),
            Notify::Attendees,
        )
        .await
        .unwrap();
    assert_eq!(restored.status, EventStatus::Confirmed);
    assert_eq!(restored.location.as_deref(), Some("本社 5F"));

    // bookkeeping writes notify nobody; visible ones notify all
    c.patch(
        "iv00042",
        None,
        &EventChange {
            private: [("hitolinkVersion".to_string(), "3".to_string())].into(),
            ..Default::default()
        },
        None,
        Notify::Nobody,
    )
    .await
    .unwrap();
    let writes = g.emu.writes();
    let last = writes.last().unwrap();
    assert_eq!(
        (
            last.send_updates.as_str(),
            last.changed.contains(&"extendedProperties".to_string())
        ),
        ("none", true)
    );
    assert!(
        writes
            .iter()
            .filter(|w| w.method == "patch")
            .take(2)
            .all(|w| w.send_updates == "all")
    );
    let missing = c.get("iv99999").await.unwrap_err();
    assert!(matches!(missing, GoogleError::NotFound { .. }));
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let g = GoogleEmu::start().await;
    let c = client(&g).await;
    c.list_page(None, None).await.unwrap();
    g.emu.reset_counters();
    g.emu.inject(
        Fault::TooManyRequests {
            retry_after_secs: 0,
        },
        1,
    );
    g.emu.inject(Fault::ServerError, 1);
    c.list_page(None, None).await.unwrap();
    assert_eq!(g.emu.counters()["events.list"], 3);

    g.emu.inject(Fault::RateLimit403, 1);
    c.insert("iv00077", &new_event("iv00077", 10), Notify::Attendees)
        .await
        .unwrap();

    // more faults than attempts: the typed error surfaces
    g.emu.inject(Fault::Unavailable, 5);
    let err = c.list_page(None, None).await.unwrap_err();
    assert!(matches!(err, GoogleError::Transient(_)), "{err:?}");
    g.emu.clear_faults();
    g.emu.inject(
        Fault::TooManyRequests {
            retry_after_secs: 0,
        },
        5,
    );
    let err = c.list_page(None, None).await.unwrap_err();
    assert!(matches!(err, GoogleError::RateLimited { .. }), "{err:?}");
}

#[tokio::test]
async fn a_guest_reply_shows_in_the_delta() {
    let g = GoogleEmu::start().await;
    let c = client(&g).await;
    c.insert("iv00100", &new_event("iv00100", 10), Notify::Attendees)
        .await
        .unwrap();
    let base = c
        .list_page(None, None)
        .await
        .unwrap()
        .next_sync_token
        .unwrap();
    g.emu
        .guest_reply(ORGANIZER, "iv00100", "Suzuki@example.co.jp", "declined")
        .unwrap();
    let delta = c.list_page(Some(&base), None).await.unwrap();
    assert_eq!(delta.events[0].attendees[0].response, Response::Declined);
}
