//! `/metrics` of the real daemon, against both emulators: what an admin's
//! Prometheus scrapes, checked by `promtool check metrics` and read back
//! series by series; and the alert rules of `config/prometheus/`, checked
//! and unit-tested by promtool.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::daemon::{Daemon, NEVER};
use crate::common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `promtool`, or a failure that says how to get it: a metrics check
/// that passes because the checker is missing would prove nothing.
fn promtool() -> &'static str {
    let found = std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "promtool is not installed, so the exposition cannot be checked: \
         run .ci/run or apt-get install prometheus"
    );
    "promtool"
}

/// `GET /metrics` over plain HTTP/1.0: (content type, body).
async fn scrape(port: u16, accept: Option<&str>) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: x\r\n{accept}\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(" 200 "), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (content_type, body.to_string())
}

/// Every sample by its full name with labels.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// The sum of the samples of `metric` whose labels include all of `with`.
fn total(s: &BTreeMap<String, f64>, metric: &str, with: &[&str]) -> f64 {
    s.iter()
        .filter(|(k, _)| k.split('{').next() == Some(metric))
        .filter(|(k, _)| with.iter().all(|w| k.contains(w)))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn a_running_daemon_serves_metrics_promtool_accepts() {
    let promtool = promtool();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let env = Env::start_full(
        &format!("{NEVER}\nmetrics_listen = \"127.0.0.1:{port}\""),
        "",
    )
    .await;
    env.schedule("ap_1", 1, 10);
    // a booking naming an application HITO-Link does not know: parked
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
    // Google's first answer is a 429
    env.google.emu.inject(
        hitosync_emulator::google::Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        1,
    );
    let mut d = Daemon::start(&env, &[]).await;
    // before any cycle, every link series is there at zero
    let (_, before) = scrape(port, None).await;
    let s = samples(&before);
    assert_eq!(
        s["hitosync_cycles_total{link=\"default\",result=\"ok\"}"],
        0.0
    );
    assert_eq!(
        s["hitosync_last_success_timestamp_seconds{link=\"default\"}"],
        0.0
    );

    d.signal(10);
    d.wait_log("cycle done").await;
    // The second cycle does not retry the parked booking (its backoff has
    // not run out), so it parks nothing itself: the gauge must still show
    // the store's parked set.
    d.signal(10);
    d.wait_log("cycle done").await;

    // "cycle done" is logged inside the cycle, the metrics are recorded
    // just after it
    let ok_cycles = "hitosync_cycles_total{link=\"default\",result=\"ok\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    let (content_type, text) = loop {
        let (content_type, text) = scrape(port, None).await;
        if samples(&text).get(ok_cycles) == Some(&2.0) || Instant::now() > deadline {
            break (content_type, text);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let mut check = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- the exposition:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let s = samples(&text);
    assert!(
        s.keys().all(|k| k.contains("link=\"default\"")),
        "a series without its link:\n{text}"
    );
    let get = |name: &str| *s.get(name).unwrap_or_else(|| panic!("no {name}:\n{text}"));
    assert_eq!(
        get("hitosync_cycles_total{link=\"default\",result=\"ok\"}"),
        2.0
    );
    assert_eq!(
        get("hitosync_cycles_total{link=\"default\",result=\"failed\"}"),
        0.0
    );
    assert_eq!(
        get("hitosync_cycle_duration_seconds_count{link=\"default\"}"),
        2.0
    );
    assert!(get("hitosync_last_success_timestamp_seconds{link=\"default\"}") > 1.7e9);
    assert_eq!(get("hitosync_parked_records{link=\"default\"}"), 1.0);
    assert!(get("hitosync_parked_oldest_timestamp_seconds{link=\"default\"}") > 1.7e9);
    assert_eq!(get("hitosync_breaker_held{link=\"default\"}"), 0.0);
    assert_eq!(get("hitosync_mapped_interviews{link=\"default\"}"), 1.0);
    assert!(get("hitosync_writes_total{link=\"default\",side=\"google\"}") >= 1.0);
    assert_eq!(
        get("hitosync_token_refreshes_total{link=\"default\",result=\"ok\"}"),
        1.0
    );
    // per side and endpoint, by result
    let google_list = ["side=\"google\"", "endpoint=\"events.list\""];
    assert_eq!(
        total(
            &s,
            "hitosync_api_requests_total",
            &[google_list[0], "result=\"rate_limited\""]
        ),
        1.0
    );
    assert!(total(&s, "hitosync_api_requests_total", &google_list) >= 2.0);
    assert!(
        total(
            &s,
            "hitosync_api_requests_total",
            &["side=\"hitolink\"", "result=\"ok\""]
        ) >= 1.0
    );
    assert_eq!(
        total(&s, "hitosync_api_retries_total", &[google_list[0]]),
        1.0
    );
    assert!(
        total(
            &s,
            "hitosync_api_request_duration_seconds_count",
            &google_list
        ) >= 2.0
    );
    // the backoff after the 429 counts as a wait on the server's limit
    // (google-calendar3 hands the 429's JSON body over without its
    // headers, so the wait is the jittered backoff, not the Retry-After)
    assert!(
        get(
            "hitosync_rate_limit_wait_seconds_total{link=\"default\",side=\"google\",cause=\"server\"}"
        ) > 0.0
    );

    // Prometheus asks for OpenMetrics first, and gets it
    let (content_type, om) = scrape(
        port,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .await;
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("# UNIT hitosync_cycle_duration_seconds seconds"),
        "{om}"
    );
    assert_eq!(d.stop().await, 0);
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let promtool = promtool();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let out = std::process::Command::new(promtool)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
