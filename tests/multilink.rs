//! One daemon, several links: each its own calendar and HITO-Link tenant,
//! its own failures; `--link` on the commands; a reload that adds, removes
//! and changes links touches only those.

use crate::common::daemon::{Daemon, HANG, NEVER, eventually};
use crate::common::links::{Links, run};

fn synced(l: &Links, i: usize, id: &str) -> bool {
    l.tenants[i]
        .emu
        .get(id)
        .map(|a| a.body["external_event_id"].is_string())
        .unwrap_or(false)
        && l.event_of(i, id).len() == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_daemon_runs_each_link_on_its_own() {
    let l = Links::start(3).await;
    let ids: Vec<String> = (0..3).map(|i| l.schedule(i, 10 + i as u32, 10)).collect();
    let config = l.write_config("hitosync.toml", NEVER, &[0, 1, 2], "");

    // without a daemon: one link, then all
    let (code, out, err) = run(&config, &["sync", "--link", "link-1"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(synced(&l, 1, &ids[1]));
    assert!(!synced(&l, 0, &ids[0]), "only the link named");
    let (code, out, err) = run(&config, &["sync"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("== link link-0 ==") && out.contains("== link link-2 =="),
        "{out}"
    );
    for (i, id) in ids.iter().enumerate() {
        assert!(synced(&l, i, id), "link {i}");
        // each interview in its own link's calendar only (the tenants
        // number their interviews alike, so the day tells them apart)
        for j in 0..3 {
            let day = format!("2099-12-{}T", 10 + i);
            let on_day = l
                .events(j)
                .iter()
                .filter(|e| {
                    e["start"]["dateTime"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(&day))
                })
                .count();
            assert_eq!(
                on_day,
                usize::from(i == j),
                "link {i}'s interview in calendar {j}"
            );
        }
    }
    // status and inspect name the link
    let (code, out, _) = run(&config, &["status", "--link", "link-2", "--json"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["link"].as_str(), v["mapped_interviews"].as_u64()),
        (Some("link-2"), Some(1))
    );
    let (code, out, _) = run(&config, &["status", "--json"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["links"].as_array().unwrap().len(), 3, "{v}");
    let (code, _, err) = run(&config, &["inspect", &ids[0]]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("--link") && err.contains("link-0, link-1, link-2"),
        "{err}"
    );
    let (code, out, _) = run(&config, &["inspect", &ids[0], "--link", "link-0"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&ids[0]), "{out}");
    let (code, _, err) = run(&config, &["status", "--link", "link-9"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("link-9"), "{err}");

    // link-1's token is revoked: it fails (401), the others go on, in
    // one-shot commands and in the daemon alike
    l.set_token(1, "a-revoked-token");
    let more: Vec<String> = (0..3).map(|i| l.schedule(i, 20 + i as u32, 11)).collect();
    let (code, out, err) = run(&config, &["sync"]).await;
    assert_eq!(code, 2, "a setup error on one link: {out}{err}");
    assert!(err.contains("link-1"), "{err}");
    assert!(synced(&l, 0, &more[0]) && synced(&l, 2, &more[2]), "{out}");
    assert!(!synced(&l, 1, &more[1]));
    let mut d = Daemon::spawn_config(&config, &[]);
    d.wait_log("daemon started").await;
    let last: Vec<String> = (0..3).map(|i| l.schedule(i, 25 + i as u32, 12)).collect();
    let (code, out, err) = run(&config, &["sync"]).await;
    assert_eq!(code, 1, "one link failed: {out}{err}");
    assert!(synced(&l, 0, &last[0]) && synced(&l, 2, &last[2]), "{out}");
    assert!(!synced(&l, 1, &last[1]));
    assert!(
        out.contains("== link link-1 ==") && out.contains("error"),
        "{out}"
    );
    let (_, out, _) = run(&config, &["status", "--link", "link-1"]).await;
    assert!(out.contains("failed cycles in a row: 2"), "{out}");
    let (_, out, _) = run(&config, &["status", "--link", "link-0"]).await;
    assert!(out.contains("failed cycles in a row: 0"), "{out}");
    assert_eq!(d.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_starts_stops_and_restarts_only_the_links_it_changes() {
    let l = Links::start(4).await;
    let config = l.write_config("hitosync.toml", NEVER, &[0, 1, 2], "");
    let mut d = Daemon::spawn_config(&config, &[]);
    d.wait_log("daemon started").await;
    for name in ["link-0", "link-1", "link-2"] {
        assert_eq!(count_started(&mut d, name), 1, "{}", d.log());
    }
    // link-3 added, link-2 removed, link-1 changed; link-0 as it was
    let mut text = format!(
        "[daemon]\nstate_dir = \"state\"\ncontrol_socket = \"hitosync.toml.sock\"\n{NEVER}\n"
    );
    text.push_str(&l.link_toml(0, ""));
    text.push_str(&l.link_toml(1, "title_template = \"面接 {candidate}\""));
    text.push_str(&l.link_toml(3, ""));
    std::fs::write(&config, text).unwrap();
    d.signal(1);
    d.wait_log("config reloaded").await;
    eventually("link-3 started and link-1 restarted", || {
        count_started(&mut d, "link-3") == 1 && count_started(&mut d, "link-1") == 2
    })
    .await;
    eventually("link-2 stopped", || {
        d.log()
            .lines()
            .any(|l| l.contains("link worker stopped") && l.contains("link-2"))
    })
    .await;
    assert_eq!(
        count_started(&mut d, "link-0"),
        1,
        "link-0 untouched: {}",
        d.log()
    );
    // the new link syncs, the removed one is no longer served
    let id = l.schedule(3, 5, 9);
    let (code, out, err) = run(&config, &["sync", "--link", "link-3"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(synced(&l, 3, &id));
    let (code, _, err) = run(&config, &["sync", "--link", "link-2"]).await;
    assert_eq!(code, 2, "{err}");
    // a reload with a broken link keeps it on its old settings
    let bad = std::fs::read_to_string(&config).unwrap().replacen(
        &l.key.display().to_string(),
        "/nonexistent/key.p12",
        1,
    );
    std::fs::write(&config, bad).unwrap();
    d.signal(1);
    d.wait_log("runs on the old ones").await;
    let id = l.schedule(0, 6, 9);
    let (code, out, err) = run(&config, &["sync", "--link", "link-0"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(synced(&l, 0, &id));
    assert_eq!(d.stop().await, 0);
}

/// A link whose key is missing at start is named and left out; the others
/// run. Only when no link can start does the daemon refuse to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_cannot_start_does_not_keep_the_others_from_running() {
    let l = Links::start(2).await;
    let config = l.write_config("hitosync.toml", NEVER, &[0, 1], "");
    let text = std::fs::read_to_string(&config).unwrap();
    // the second link's key goes missing
    let at = text.rfind(&l.key.display().to_string()).unwrap();
    let mut broken = text.clone();
    broken.replace_range(
        at..at + l.key.display().to_string().len(),
        "/nonexistent/key.p12",
    );
    std::fs::write(&config, &broken).unwrap();
    let mut d = Daemon::spawn_config(&config, &[]);
    d.wait_log("daemon started").await;
    let log = d.log();
    assert!(
        log.contains("link-1") && log.contains("cannot start"),
        "{log}"
    );
    let (_, out, _) = run(&config, &["status", "--link", "link-1"]).await;
    assert!(
        out.contains("NOT RUNNING") && out.contains("/nonexistent/key.p12"),
        "{out}"
    );
    let id = l.schedule(0, 3, 9);
    let (code, out, err) = run(&config, &["sync", "--link", "link-0"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(synced(&l, 0, &id));
    assert_eq!(d.stop().await, 0);
    // both broken: the daemon refuses to start, naming each
    let both = broken.replace(&l.key.display().to_string(), "/nonexistent/key.p12");
    std::fs::write(&config, both).unwrap();
    let mut d = Daemon::spawn_config(&config, &[]);
    assert_eq!(d.exit_code().await, 2);
    let log = d.log();
    assert!(
        log.contains("link \"link-0\"") && log.contains("link \"link-1\""),
        "{log}"
    );
}

fn count_started(d: &mut Daemon, link: &str) -> usize {
    d.log()
        .lines()
        .filter(|l| l.contains("link worker started") && l.contains(&format!("link={link}")))
        .count()
}

/// `doctor` checks every link and names the link in each finding; `plan
/// --link` plans that link alone and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_every_link_and_plan_takes_one() {
    let l = Links::start(2).await;
    let config = l.write_config("hitosync.toml", NEVER, &[0, 1], "");
    l.set_token(1, "a-revoked-token");
    let (code, out, err) = run(&config, &["doctor", "--json"]).await;
    assert_eq!(code, 1, "{out}{err}");
    let checks: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let failed: Vec<&serde_json::Value> =
        checks.iter().filter(|c| c["outcome"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{out}");
    assert_eq!(failed[0]["link"], "link-1", "{out}");
    assert!(
        failed[0]["step"].as_str().unwrap().contains("HITO-Link"),
        "{out}"
    );
    assert!(!out.contains("a-revoked-token"));
    for link in ["link-0", "link-1"] {
        assert!(
            checks
                .iter()
                .any(|c| c["link"] == link && c["what"].as_str().is_some()),
            "{link} not checked: {out}"
        );
    }
    assert!(
        checks.iter().any(|c| c["link"] == "link-0"
            && c["step"].as_str().unwrap().contains("HITO-Link")
            && c["outcome"] == "ok"),
        "{out}"
    );

    let id = l.schedule(0, 4, 9);
    let (code, out, err) = run(&config, &["plan", "--link", "link-0"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&id), "{out}");
    assert!(
        !out.contains("== link link-1 =="),
        "only the link named: {out}"
    );
    assert!(l.event_of(0, &id).is_empty(), "a plan writes nothing");
}

/// `GET /metrics` over plain HTTP/1.0: the body.
async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Every series carries its link's name; a link removed in a reload loses
/// its gauges (it runs nowhere here), its counters stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_labelled_per_link_and_a_removed_link_loses_its_gauges() {
    let l = Links::start(2).await;
    let port = {
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let daemon = format!("{NEVER}\nmetrics_listen = \"127.0.0.1:{port}\"");
    let config = l.write_config("hitosync.toml", &daemon, &[0, 1], "");
    let ids: Vec<String> = (0..2).map(|i| l.schedule(i, 3 + i as u32, 9)).collect();
    let mut d = Daemon::spawn_config(&config, &[]);
    d.wait_log("daemon started").await;
    let (code, out, err) = run(&config, &["sync", "--link", "link-1"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(synced(&l, 1, &ids[1]));
    let text = scrape(port).await;
    let ok = |link: &str| format!("hitosync_cycles_total{{link=\"{link}\",result=\"ok\"}}");
    let mapped = |link: &str| format!("hitosync_mapped_interviews{{link=\"{link}\"}}");
    assert_eq!(sample(&text, &ok("link-1")), Some(1.0), "{text}");
    assert_eq!(sample(&text, &ok("link-0")), Some(0.0), "{text}");
    assert_eq!(sample(&text, &mapped("link-1")), Some(1.0), "{text}");
    assert_eq!(sample(&text, &mapped("link-0")), Some(0.0), "{text}");

    let one = l.write_config("hitosync.toml", &daemon, &[0], "");
    assert_eq!(one, config);
    d.signal(1);
    d.wait_log("config reloaded").await;
    let deadline = std::time::Instant::now() + HANG;
    let text = loop {
        let text = scrape(port).await;
        if sample(&text, &mapped("link-1")).is_none() {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "link-1's gauges stay: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(sample(&text, &ok("link-1")), Some(1.0), "{text}");
    assert_eq!(sample(&text, &mapped("link-0")), Some(0.0), "{text}");
    assert_eq!(d.stop().await, 0);
}
