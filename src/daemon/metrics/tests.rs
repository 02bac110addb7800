//! The families, labels and expositions, without a daemon.

use super::http::wants_openmetrics;
use super::*;
use axum::http::{HeaderMap, header};
use hitosync_state::Store;

fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn every_series_carries_its_link() {
    let m = Metrics::new();
    m.link("default");
    m.link("osaka");
    let text = m.render(false).unwrap();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            line.contains("link=\"default\"") || line.contains("link=\"osaka\""),
            "{line}"
        );
    }
    // one header per family, however many links
    assert_eq!(
        text.matches("# TYPE hitosync_cycles_total counter").count(),
        1,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "hitosync_cycles_total{link=\"osaka\",result=\"failed\"}"
        ),
        Some(0.0)
    );
}

#[test]
fn attempts_and_pauses_land_by_side_endpoint_and_cause() {
    let m = Metrics::new();
    let link = m.link("default");
    let google = SideObserver {
        link: link.link.clone(),
        side: "google",
        f: link.f.clone(),
    };
    google.attempt(
        "events.list",
        Outcome::RateLimited,
        Duration::from_millis(20),
    );
    google.paused(
        "events.list",
        Pause::Retry(Outcome::RateLimited),
        Duration::from_millis(1500),
    );
    google.attempt(
        "events.list",
        Outcome::ServerError,
        Duration::from_millis(20),
    );
    google.paused(
        "events.list",
        Pause::Retry(Outcome::ServerError),
        Duration::from_secs(4),
    );
    google.paused("events.list", Pause::Budget, Duration::from_millis(250));
    google.attempt("events.list", Outcome::Ok, Duration::from_millis(30));
    let text = m.render(false).unwrap();
    let get = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("{name}:\n{text}"));
    assert_eq!(
        get(
            "hitosync_api_requests_total{link=\"default\",side=\"google\",endpoint=\"events.list\",result=\"ok\"}"
        ),
        1.0
    );
    assert_eq!(
        get(
            "hitosync_api_requests_total{link=\"default\",side=\"google\",endpoint=\"events.list\",result=\"rate_limited\"}"
        ),
        1.0
    );
    assert_eq!(
        get(
            "hitosync_api_retries_total{link=\"default\",side=\"google\",endpoint=\"events.list\"}"
        ),
        2.0
    );
    assert_eq!(
        get(
            "hitosync_api_request_duration_seconds_count{link=\"default\",side=\"google\",endpoint=\"events.list\"}"
        ),
        3.0
    );
    assert_eq!(
        get(
            "hitosync_api_request_duration_seconds_bucket{link=\"default\",side=\"google\",endpoint=\"events.list\",le=\"0.025\"}"
        ),
        2.0
    );
    // a 5xx backoff is a retry, not a rate-limit wait
    assert_eq!(
        get(
            "hitosync_rate_limit_wait_seconds_total{link=\"default\",side=\"google\",cause=\"server\"}"
        ),
        1.5
    );
    assert_eq!(
        get(
            "hitosync_rate_limit_wait_seconds_total{link=\"default\",side=\"google\",cause=\"budget\"}"
        ),
        0.25
    );
    assert_eq!(
        get(
            "hitosync_rate_limit_wait_seconds_total{link=\"default\",side=\"hitolink\",cause=\"budget\"}"
        ),
        0.0
    );
}

#[test]
fn cycles_count_by_result_and_plans_do_not() {
    let m = Metrics::new();
    let link = m.link("default");
    let report = CycleReport {
        applied: 3,
        calendar_writes: 2,
        hitolink_writes: 1,
        conflicts: 1,
        ..Default::default()
    };
    link.cycle_finished(Ok(&report), Duration::from_millis(700), false);
    link.cycle_finished(Ok(&report), Duration::from_millis(700), true);
    let auth = EngineError::Google(GoogleError::Auth(hitosync_google::AuthError::Other(
        "refused".into(),
    )));
    link.cycle_finished(Err(Some(&auth)), Duration::from_millis(40), false);
    let text = m.render(false).unwrap();
    let get = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("{name}:\n{text}"));
    assert_eq!(
        get("hitosync_cycles_total{link=\"default\",result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        get("hitosync_cycles_total{link=\"default\",result=\"failed\"}"),
        1.0
    );
    assert_eq!(
        get("hitosync_cycle_duration_seconds_count{link=\"default\"}"),
        2.0
    );
    assert_eq!(get("hitosync_records_applied_total{link=\"default\"}"), 3.0);
    assert_eq!(
        get("hitosync_writes_total{link=\"default\",side=\"google\"}"),
        2.0
    );
    assert_eq!(get("hitosync_conflicts_total{link=\"default\"}"), 1.0);
    assert_eq!(
        get("hitosync_token_refreshes_total{link=\"default\",result=\"failed\"}"),
        1.0
    );
    assert!(get("hitosync_last_success_timestamp_seconds{link=\"default\"}") > 1.7e9);
}

#[tokio::test]
async fn parked_and_breaker_come_from_the_whole_store() {
    use hitosync_state::WorkKey;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let m = Metrics::new();
    let link = m.link("default");
    let then = chrono::Utc::now() - chrono::Duration::hours(2);
    store
        .park(&WorkKey::Interview("iv_1".into()), "422", then)
        .unwrap();
    store
        .park(
            &WorkKey::Interview("iv_2".into()),
            "422",
            chrono::Utc::now(),
        )
        .unwrap();
    // held by the breaker: counted, but not the oldest "failing" one
    store
        .park_held(
            &WorkKey::Event("e3".into()),
            "too many",
            then - chrono::Duration::hours(1),
        )
        .unwrap();
    store
        .put_meta(
            hitosync_state::BREAKER,
            &Some("7 cancellations".to_string()),
        )
        .unwrap();
    link.store_changed(&store).await;
    let text = m.render(false).unwrap();
    let get = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("{name}:\n{text}"));
    assert_eq!(get("hitosync_parked_records{link=\"default\"}"), 3.0);
    assert_eq!(
        get("hitosync_parked_oldest_timestamp_seconds{link=\"default\"}"),
        then.timestamp() as f64
    );
    assert_eq!(get("hitosync_breaker_held{link=\"default\"}"), 1.0);

    store.put_meta(hitosync_state::BREAKER, &None).unwrap();
    for id in ["iv_1", "iv_2"] {
        store.settle(&WorkKey::Interview(id.into())).unwrap();
    }
    link.store_changed(&store).await;
    let text = m.render(false).unwrap();
    let get = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("{name}:\n{text}"));
    assert_eq!(get("hitosync_parked_records{link=\"default\"}"), 1.0);
    assert_eq!(
        get("hitosync_parked_oldest_timestamp_seconds{link=\"default\"}"),
        0.0
    );
    assert_eq!(get("hitosync_breaker_held{link=\"default\"}"), 0.0);
}

/// What an operator waits on: an invitation hold shows until it ends, and
/// an expired one reads as none.
#[tokio::test]
async fn an_invitation_hold_shows_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let m = Metrics::new();
    let link = m.link("default");
    let until = chrono::Utc::now() + chrono::Duration::minutes(40);
    let hold = |until| {
        Some(hitosync_engine::InvitationHold {
            until,
            reason: "quotaExceeded".into(),
            wait_secs: 60,
        })
    };
    store.put_meta(INVITATION_HOLD, &hold(until)).unwrap();
    // a record waiting for the limit is parked, but it is not failing
    let three_hours_ago = chrono::Utc::now() - chrono::Duration::hours(3);
    store
        .park_until(
            &hitosync_state::WorkKey::Interview("iv_9".into()),
            "invitation limit",
            three_hours_ago,
            until,
        )
        .unwrap();
    link.store_changed(&store).await;
    let text = m.render(false).unwrap();
    let get = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("{name}:\n{text}"));
    assert_eq!(
        get("hitosync_invitation_hold_until_timestamp_seconds{link=\"default\"}"),
        until.timestamp() as f64
    );
    assert_eq!(get("hitosync_parked_records{link=\"default\"}"), 1.0);
    assert_eq!(
        get("hitosync_parked_oldest_timestamp_seconds{link=\"default\"}"),
        0.0
    );
    assert_eq!(get("hitosync_work_waiting{link=\"default\"}"), 0.0);
    assert_eq!(get("hitosync_links_waiting{link=\"default\"}"), 0.0);

    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    store.put_meta(INVITATION_HOLD, &hold(past)).unwrap();
    link.store_changed(&store).await;
    let text = m.render(false).unwrap();
    assert_eq!(
        sample(
            &text,
            "hitosync_invitation_hold_until_timestamp_seconds{link=\"default\"}"
        ),
        Some(0.0)
    );
}

#[test]
fn openmetrics_when_asked() {
    let m = Metrics::new();
    m.link("default");
    let text = m.render(true).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.contains("# UNIT hitosync_cycle_duration_seconds seconds"),
        "{text}"
    );
    let mut h = HeaderMap::new();
    h.insert(
        header::ACCEPT,
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            .parse()
            .unwrap(),
    );
    assert!(wants_openmetrics(&h));
    assert!(!wants_openmetrics(&HeaderMap::new()));
}
